"""microVM lifecycle end to end: boot, exec, cp, pause/resume, state,
confinement of QEMU, stop/delete and what the host looks like afterwards."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from test_vm_lib import (h,  # noqa: F401 (the fixture)
                         ACCEL, HULL, MEM, Hull, assert_gone, cgroup_leaves, new_root, proc_state,
                         qemu_pids, running, sha256, skip_unless_ready)


@pytest.fixture(scope="module")
def vm(h):
    """One booted VM shared by the read-mostly tests."""
    h.ok("vm", "create", "--memory", MEM, "shared")
    h.ok("vm", "start", "shared")
    yield "shared"
    h.ok("vm", "delete", "--force", "shared")
    assert_gone(h, "shared")


def test_boot_and_exec_runs_in_the_guest(h, vm):
    st = h.state(vm)
    assert st["status"] == "running"
    assert st["accelerator"] == ACCEL
    assert st["memory_mb"] == 128 and st["vcpus"] == 1
    assert st["uptime_ms"] > 0
    pid = st["pid"]
    assert pid in qemu_pids(vm)
    # The guest runs Debian's kernel, not the host's.
    release = st["measured"]["kernel"]["release"]
    assert h.sh(vm, "uname -r").strip() == release
    assert release != os.uname().release
    # Exit status, stdout and stderr kept apart, stdin streamed in.
    p = h.exec(vm, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (p.returncode, p.stdout, p.stderr) == (7, b"out\n", b"err\n")
    p = h.exec(vm, "sh", "-c", "tr a-z A-Z", input=b"hello guest")
    assert p.returncode == 0 and p.stdout == b"HELLO GUEST"
    p = h.exec(vm, "sh", "-c", "kill -TERM $$")
    assert p.returncode == 128 + signal.SIGTERM
    p = h.exec(vm, "no-such-command")
    assert p.returncode == 127 and b"No such file" in p.stderr
    # python3 of the default rootfs works in the guest.
    assert h.sh(vm, "python3 -c 'print(sum(range(10)))'").strip() == "45"


def test_workload_is_sandboxed_inside_the_guest(h, vm):
    status = h.sh(vm, "cat /proc/self/status")
    fields = dict(l.split(":\t", 1) for l in status.splitlines() if ":\t" in l)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    # Its own pid namespace, under a small init.
    assert h.sh(vm, "echo $$").strip() == "2"  # PID 1 is its init
    # mount is refused (no capability, and seccomp).
    p = h.exec(vm, "mount", "-t", "tmpfs", "x", "/mnt")
    assert p.returncode != 0


def test_qemu_is_confined(h, vm):
    pid = h.state(vm)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    uid = int(status["Uid"].split()[0])
    assert uid != 0 and int(status["Uid"].split()[1]) == uid
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # QEMU's -sandbox on
    for ns in ("mnt", "pid", "net", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    with open(f"/proc/{pid}/cgroup") as f:
        cg = f.read()
    assert f"hull-vm/{vm}" in cg
    leaves = cgroup_leaves(vm)
    mem = [l for l in leaves if "/memory/" in l]
    if mem:
        with open(os.path.join(mem[0], "memory.limit_in_bytes")) as f:
            limit = int(f.read())
        assert 128 << 20 < limit <= (128 + 512) << 20
    # Only what it needs is visible: its root has no /home, /etc/shadow, /root.
    root = f"/proc/{pid}/root"
    assert sorted(os.listdir(root)) == sorted(["bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "tmp",
                                               "usr", "vm"])
    assert sorted(os.listdir(f"{root}/vm")) == ["initrd", "kernel", "rootfs"]
    assert os.listdir(f"{root}/etc") == ["ld.so.cache"]
    run = os.path.join(h.root, "vm", vm, "run")
    st = os.stat(run)
    assert st.st_mode & 0o777 == 0o700 and st.st_uid == uid
    assert {"qmp.sock", "agent.sock"} <= set(os.listdir(run))


def test_qemu_inherits_no_fd_of_its_caller(h, tmp_path):
    """QEMU keeps 0-2 and its own fds: none that hull's caller left open
    reaches it, wherever it sits (fd 100 too, next to hull's error pipe)."""
    marker = tmp_path / "inherited"
    marker.write_text("not for QEMU")
    def free_fd(n):
        while True:
            try:
                os.fstat(n)
            except OSError:
                return n
            n += 1

    fd = os.open(marker, os.O_RDONLY)
    fds = (free_fd(10), free_fd(100))
    for n in fds:
        os.dup2(fd, n, inheritable=True)
    os.close(fd)
    try:
        for args in (("create", "--memory", MEM, "fds"), ("start", "fds")):
            p = subprocess.run([HULL, "--root", h.root, "vm", *args], pass_fds=fds, env=h.env,
                               capture_output=True, timeout=300)
            assert p.returncode == 0, p.stderr.decode()
        pid = h.state("fds")["pid"]
        fd_dir = f"/proc/{pid}/fd"
        open_fds = {int(n): os.readlink(os.path.join(fd_dir, n)) for n in os.listdir(fd_dir)}
        assert str(marker) not in open_fds.values(), open_fds
        assert open_fds[2].endswith("qemu.log"), open_fds
    finally:
        for n in fds:
            os.close(n)
        h.run("vm", "delete", "--force", "fds")
    assert_gone(h, "fds")


def test_cp_both_ways_is_binary_safe(h, vm, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 1000 + os.urandom(100_000) + b"\0\0end")
    src.chmod(0o640)
    h.ok("vm", "cp", str(src), f"{vm}:/tmp/blob")
    got = h.sh(vm, "sha256sum /tmp/blob; stat -c %a /tmp/blob").split()
    assert got[0] == sha256(src) and got[2] == "640"
    h.sh(vm, "head -c 300000 /dev/urandom > /tmp/out; printf '\\0x' >> /tmp/out")
    dst = tmp_path / "out"
    h.ok("vm", "cp", f"{vm}:/tmp/out", str(dst))
    assert h.sh(vm, "sha256sum /tmp/out").split()[0] == sha256(dst)
    assert dst.read_bytes().endswith(b"\0x")


def test_cp_into_a_directory_takes_the_files_name(h, vm, tmp_path):
    h.sh(vm, "echo hello > /tmp/greeting")
    d = tmp_path / "into"
    d.mkdir()
    for target in (str(d), str(d) + "/"):
        h.ok("vm", "cp", f"{vm}:/tmp/greeting", target)
        assert (d / "greeting").read_text() == "hello\n"
        (d / "greeting").unlink()
    p = h.run("vm", "cp", f"{vm}:/tmp/", str(d))
    assert p.returncode != 0 and b"not a directory" in p.stderr, p
    assert os.listdir(d) == []


def test_cp_refuses_paths_outside_the_guest_tree(h, vm, tmp_path):
    h.sh(vm, "ln -sf /../../../etc/passwd /tmp/escape")
    for bad in ("/etc/../etc/passwd", "/proc/1/environ", "/sys/kernel/notes", "relative", "/dev/null"):
        p = h.run("vm", "cp", f"{vm}:{bad}", str(tmp_path / "x"))
        assert p.returncode != 0, bad
        assert b"hull: vm cp" in p.stderr
        assert not (tmp_path / "x").exists()
        assert not [f for f in os.listdir(tmp_path) if "hull-cp" in f]
    # A symlink in the guest resolves inside the guest's root, never the host's.
    h.ok("vm", "cp", f"{vm}:/tmp/escape", str(tmp_path / "passwd"))
    assert (tmp_path / "passwd").read_text() == h.sh(vm, "cat /etc/passwd")
    with open("/etc/passwd") as f:
        assert (tmp_path / "passwd").read_text() != f.read()
    p = h.run("vm", "cp", str(tmp_path / "passwd"), f"{vm}:/proc/sys/kernel/hostname")
    assert p.returncode != 0


def test_pause_resume(h, vm):
    h.ok("vm", "pause", vm)
    st = h.state(vm)
    assert st["status"] == "paused" and running(st["pid"])
    p = h.exec(vm, "true")
    assert p.returncode != 0 and b"paused" in p.stderr
    h.ok("vm", "resume", vm)
    assert h.state(vm)["status"] == "running"
    assert h.sh(vm, "echo back").strip() == "back"


def test_list(h, vm):
    listed = json.loads(h.ok("vm", "list", "--format", "json").stdout)
    assert vm in [v["id"] for v in listed]


def test_stop_start_delete_leave_nothing(h):
    h.ok("vm", "create", "--memory", MEM, "cycle")
    assert h.state("cycle")["status"] == "created"
    h.ok("vm", "start", "cycle")
    pid = h.state("cycle")["pid"]
    p = h.run("vm", "delete", "cycle")
    assert p.returncode != 0 and b"stop it first" in p.stderr
    h.ok("vm", "stop", "cycle")
    st = h.state("cycle")
    assert st["status"] == "stopped" and st["pid"] == 0
    assert not running(pid)
    assert not cgroup_leaves("cycle")
    assert not {"qmp.sock", "agent.sock"} & set(os.listdir(os.path.join(h.root, "vm", "cycle", "run")))
    p = h.exec("cycle", "true")
    assert p.returncode != 0 and b"stopped" in p.stderr
    h.ok("vm", "delete", "cycle")
    assert_gone(h, "cycle")


def test_qemu_killed_is_reported_stopped(h):
    h.ok("vm", "create", "--memory", MEM, "victim")
    h.ok("vm", "start", "victim")
    pid = h.state("victim")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while running(pid) and time.time() < deadline:
        time.sleep(0.05)
    st = h.state("victim")
    assert st["status"] == "stopped"
    assert not cgroup_leaves("victim")
    h.ok("vm", "delete", "victim")
    assert_gone(h, "victim")


def test_unresponsive_agent_is_reported_failed(h):
    h.ok("vm", "create", "--memory", MEM, "frozen")
    h.ok("vm", "start", "frozen")
    pid = h.state("frozen")["pid"]
    os.kill(pid, signal.SIGSTOP)  # the guest, and so its agent, stops answering
    try:
        p = h.exec("frozen", "true", timeout=120)
        assert p.returncode != 0 and b"did not answer" in p.stderr
        st = h.state("frozen")
        assert st["status"] == "failed" and "agent" in st["failure"]
    finally:
        os.kill(pid, signal.SIGCONT)
    h.ok("vm", "delete", "--force", "frozen")
    assert_gone(h, "frozen")


def test_bad_input_is_refused_and_leaves_nothing(h, tmp_path):
    cases = [
        (["--kernel", "/nonexistent"], b"/nonexistent"),
        (["--kernel", "/bin/true"], b"not an x86 bzImage"),
        (["--memory", "64M"], b"too small"),
        (["--rootfs", "/nonexistent"], b"/nonexistent"),
        (["--expect-kernel-sha256", "xyz"], b"not a sha256"),
        (["--accel", "warp"], b"must be kvm, tcg or auto"),
    ]
    for args, msg in cases:
        p = h.run("vm", "create", *args, "bad")
        assert p.returncode != 0, args
        assert msg in p.stderr, (args, p.stderr)
        assert p.stderr.startswith(b"hull: ")
        assert not os.path.exists(os.path.join(h.root, "vm", "bad"))
    for vid in ("../x", "a/b", "", "x" * 65):
        assert h.run("vm", "create", vid).returncode != 0
    assert h.run("vm", "exec", "nosuch", "--", "true").returncode != 0
    assert h.run("vm", "start", "nosuch").returncode != 0
    assert not qemu_pids("bad")


def test_attestation(h):
    p = h.run("vm", "create", "--memory", MEM, "--expect-kernel-sha256", "0" * 64, "att")
    assert p.returncode != 0 and b"attestation failed: kernel sha256" in p.stderr
    assert not os.path.exists(os.path.join(h.root, "vm", "att"))
    p = h.run("vm", "create", "--memory", MEM, "--expect-initrd-sha256", "1" * 64, "att")
    assert p.returncode != 0 and b"attestation failed: initrd sha256" in p.stderr
    p = h.run("vm", "create", "--memory", MEM, "--expect-rootfs-sha256", "2" * 64, "att")
    assert p.returncode != 0 and b"attestation failed: rootfs sha256" in p.stderr
    # The right digests, measured independently, are accepted and reported.
    kernel = sorted(f for f in os.listdir("/boot") if f.startswith("vmlinuz-"))[-1]
    ksha = sha256(f"/boot/{kernel}")
    isha, ipath = h.ok("vm", "initrd").stdout.decode().split()
    assert sha256(ipath) == isha
    h.ok("vm", "create", "--memory", MEM, "--expect-kernel-sha256", ksha, "--expect-initrd-sha256", isha, "att")
    m = h.state("att")["measured"]
    assert m["kernel"]["sha256"] == ksha and m["initrd"]["sha256"] == isha
    assert sha256(m["rootfs"]["path"]) == m["rootfs"]["sha256"]
    h.ok("vm", "delete", "att")
    assert_gone(h, "att")


def test_initrd_is_reproducible(h):
    sha, path = h.ok("vm", "initrd").stdout.decode().split()
    os.unlink(path)
    sha2, path2 = h.ok("vm", "initrd").stdout.decode().split()
    assert (sha2, path2) == (sha, path) and sha256(path) == sha
    listing = subprocess.run(["cpio", "-it"], stdin=open(path, "rb"), capture_output=True).stdout.decode().split()
    assert "init" in listing and "hull/modules.order" in listing
    assert "hull/modules.net" in listing  # the network driver, loaded on demand
    assert all(f in ("init", "hull", "hull/modules", "hull/modules.order", "hull/modules.net")
               or f.endswith(".ko") for f in listing)


def test_custom_rootfs_directory(h, tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "sh")
    (root / "hello.txt").write_text("from my rootfs\n")
    h.ok("vm", "create", "--memory", MEM, "--rootfs", str(root), "custom")
    h.ok("vm", "start", "custom")
    assert h.sh("custom", "cat /hello.txt") == "from my rootfs\n"
    # Writes go to the guest's overlay, never to the directory or the image.
    h.sh("custom", "echo changed > /hello.txt")
    assert (root / "hello.txt").read_text() == "from my rootfs\n"
    h.ok("vm", "delete", "--force", "custom")
    assert_gone(h, "custom")
