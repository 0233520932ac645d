"""`hull sandbox run` end to end: every option, every verdict, every bad
input, and the kernel state of a running sandbox seen from the host.

Each run is checked afterwards (sandboxlib.Sandbox): no state directory,
no cgroup in any hierarchy, no host mount and no process of it is left.
"""
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import cached_rootfs
from sandboxlib import (HOST_UID, HULL, RESULT_KEYS, SANDBOX_UID, Sandbox, _cmdline,
                        cancel, cgroup_dirs, cgroup_mounts, is_own_block, pids_with_env,
                        sandbox_uid_base, state_dirs, status_fields, wait_until)

MiB = 1024 * 1024


@pytest.fixture
def sb():
    return Sandbox()


@pytest.fixture
def open_tmp():
    """A directory the sandbox's root can reach (pytest's tmp dirs are 0700,
    which the sandbox refuses to bind: see bad_inputs)."""
    d = Path(tempfile.mkdtemp(prefix="hull-sbtest-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def py(code):
    return ["python3", "-c", code]


# ---- the result ------------------------------------------------------------


@pytest.mark.asan
def test_json_shape(sb):
    r = sb(cmd=["sh", "-c", "echo out; echo err >&2"])
    assert r.rc == 0, r
    j = r.j
    assert RESULT_KEYS <= set(j), j
    assert (j["verdict"], j["exit_code"], j["signal"]) == ("ok", 0, 0)
    assert (j["stdout"], j["stderr"]) == ("out\n", "err\n")
    assert j["stdout_truncated"] is False and j["stderr_truncated"] is False
    for k in ("cpu_time_ms", "wall_time_ms", "max_memory_kb"):
        assert isinstance(j[k], int) and j[k] >= 0, (k, j)
    assert j["max_memory_kb"] > 0  # the cgroup saw the shell's pages
    assert j["files"] == [] and j["isolation"] == "container"
    assert "error" not in j


@pytest.mark.asan
def test_plain_mode_passes_output_then_summary(sb):
    r = sb(cmd=["sh", "-c", "echo out; echo err >&2; exit 3"], json_out=False)
    assert r.rc == 3, r
    assert r.stdout == "out\n"
    lines = r.stderr.splitlines()
    assert lines[0] == "err"
    assert lines[-1].startswith("hull: sandbox: verdict=exit_nonzero exit=3 cpu="), r


def test_help_documents_every_flag_and_the_exit_codes():
    out = subprocess.run([HULL, "sandbox", "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--isolation", "--cpu-time", "--wall-time", "--memory", "--pids", "--output",
                 "--tmp-size", "--open-files", "--cpus", "--rootfs", "--bind", "--workdir",
                 "--stdin", "--copy-in", "--copy-out", "--env", "--network", "--seccomp",
                 "--json"):
        assert flag in out.stdout, flag
    assert "124" in out.stdout and "125" in out.stdout


@pytest.mark.parametrize("script,verdict,code,sig,plain_rc", [
    ("exit 0", "ok", 0, 0, 0),
    ("exit 7", "exit_nonzero", 7, 0, 7),
    ("kill -TERM $$", "signaled", 0, 15, 143),
    ("kill -KILL $$", "signaled", 0, 9, 137),
])
def test_exit_status_and_verdict(sb, script, verdict, code, sig, plain_rc):
    r = sb(cmd=["sh", "-c", script])
    assert (r.verdict, r.j["exit_code"], r.j["signal"]) == (verdict, code, sig), r
    p = sb(cmd=["sh", "-c", script], json_out=False)
    assert p.rc == plain_rc, p


def test_abort_reports_sigabrt(sb):
    """The program is not the namespace's init: the signals it raises itself
    are delivered (as pid 1, abort() would end with SIGSEGV)."""
    r = sb(cmd=py("import os; os.abort()"))
    assert (r.verdict, r.j["signal"]) == ("signaled", signal.SIGABRT), r


def test_orphans_are_reaped(sb):
    """Double-forked grandchildren become orphans; the sandbox's init reaps
    them, so 200 of them never exhaust a pids limit of 16."""
    code = ("import os\n"
            "for i in range(200):\n"
            "    c = os.fork()\n"
            "    if c == 0:\n"
            "        if os.fork() == 0: os._exit(0)\n"
            "        os._exit(0)\n"
            "    os.waitpid(c, 0)\n"
            "print('done', os.getpid())\n")
    r = sb("--pids", "16", cmd=py(code))
    assert r.verdict == "ok", r
    assert r.out == "done 2\n"


def test_background_process_ends_with_the_program(sb):
    """The run ends when the program does, even with a background process
    of it still holding stdout: the reaper's exit takes it along, and the
    sandbox checks afterwards find nothing of it left."""
    r = sb(cmd=["sh", "-c", "sleep 60 & echo started"])
    assert r.verdict == "ok" and r.out == "started\n", r


def test_exec_failure_after_the_clone_is_reported(sb, tmp_path):
    """A program that passes every check before the run but fails at execve
    (no binary format takes it) is reported by the child that shares the
    reaper's memory until its exec, as a command that cannot run (126)."""
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x01garbage\n")
    bad.chmod(0o755)
    r = sb("--copy-in", f"{bad}:/tmp/bad", cmd=["/tmp/bad"])
    assert (r.verdict, r.j["exit_code"]) == ("bad_command", 126), r
    assert "exec /tmp/bad: Exec format error" in r.j["error"], r.j["error"]
    assert sb(cmd=["true"]).verdict == "ok"


def test_utf8_and_binary_output(sb):
    r = sb(cmd=["sh", "-c", "printf '\\377\\376\\000x'; printf 'h\\303\\251llo' >&2"])
    assert r.verdict == "ok", r
    assert "stdout" not in r.j
    assert base64.b64decode(r.j["stdout_base64"]) == b"\xff\xfe\x00x"
    assert r.j["stderr"] == "h\u00e9llo"


# ---- kernel state of a running sandbox -----------------------------------------


def cgroup_of(pid, controller):
    """(mount, path) of pid's cgroup for a v1 controller, or the v2 one."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [l.rstrip("\n").split(":", 2) for l in f]
    for _, ctrls, path in lines:
        if controller in ctrls.split(","):
            return f"/sys/fs/cgroup/{controller}", path
    for hid, ctrls, path in lines:
        if hid == "0":
            return "/sys/fs/cgroup", path
    raise AssertionError(f"no cgroup for {controller}")


def read_cg(pid, controller, v1, v2):
    mount, path = cgroup_of(pid, controller)
    for name in (v1, v2):
        f = Path(mount + path) / name
        if f.exists():
            return f.read_text().strip()
    raise AssertionError(f"neither {v1} nor {v2} in {mount}{path}")


def test_container_kernel_state(sb):
    p, out, err = sb.start("--memory", "100M", "--pids", "10", "--cpus", "0.5",
                           "--open-files", "32", "--tmp-size", "8M", cmd=["sleep", "60"])
    try:
        pid = sb.workload_pid()
        st = status_fields(pid)
        base = sandbox_uid_base(pid)
        assert is_own_block(base), base  # not the shared block: no writable bind
        assert st["Uid"].split() == [str(base + SANDBOX_UID)] * 4, st["Uid"]
        assert st["Gid"].split() == [str(base + SANDBOX_UID)] * 4, st["Gid"]
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
        for ns in ("pid", "mnt", "net", "ipc", "uts", "cgroup", "user"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert Path(f"/proc/{pid}/gid_map").read_text().split() == ["0", str(base), "65536"]
        # The cgroup holds the limits, and the process is in /hull/<id>.
        _, path = cgroup_of(pid, "memory")
        assert path.startswith(f"/hull/sandbox-{p.pid}-"), path
        assert int(read_cg(pid, "memory", "memory.limit_in_bytes", "memory.max")) == 100 * MiB
        swap = read_cg(pid, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
        assert int(swap) in (100 * MiB, 0), swap  # v1: mem+swap == mem; v2: no swap
        # --pids counts the program's tasks; the sandbox's init is one more.
        assert read_cg(pid, "pids", "pids.max", "pids.max") == "11"
        quota = read_cg(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
        assert quota.split()[0] == "50000", quota
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert [l for l in limits.splitlines() if l.startswith("Max open files")][0].split()[3:5] \
            == ["32", "32"]
        # No host fd inside: 0 is /dev/null, 1 and 2 are hull's pipes.
        fds = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
        assert fds == ["0", "1", "2"], fds
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        assert all(os.readlink(f"/proc/{pid}/fd/{i}").startswith("pipe:") for i in (1, 2))
        # Its mounts: a read-only root, read-only host dirs, /tmp.
        mounts = {}
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            parts = line.split()
            sep = parts.index("-")
            mounts[parts[4]] = (parts[sep + 1], parts[5].split(","), parts[sep + 3].split(","))
        # The root is a read-only tmpfs of the run's own, not a host directory.
        assert "ro" in mounts["/"][1]
        assert mounts["/"][0] == "tmpfs"
        assert {"ro", "nosuid", "nodev"} <= set(mounts["/usr"][1])
        assert mounts["/tmp"][0] == "tmpfs" and "rw" in mounts["/tmp"][1]
        assert "size=8192k" in mounts["/tmp"][2]
        allowed = ("/usr", "/bin", "/sbin", "/lib", "/etc/", "/proc", "/dev", "/tmp")
        stray = [m for m in mounts if m != "/" and not m.startswith(allowed)]
        assert not stray, stray
    finally:
        cancel(p)
    r = sb.finish(p, out, err)
    assert r.rc == 128 + signal.SIGTERM and r.verdict == "killed", r


# Sends stdin 200 times a message over a unix socket it never reads, until
# the kernel refuses: every copy counts as in flight for the sender's host
# user.
HOLD_FDS_IN_FLIGHT = """
import array, socket, subprocess
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
a.setblocking(False)
fds = array.array("i", [0] * 200).tobytes()
n = 0
try:
    while n < 100000:
        a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        n += 200
except OSError:
    pass
print("held", n, flush=True)
subprocess.run(["sleep", "600"])
"""

SEND_ONE_FD = """
import array, socket
a, b = socket.socketpair()
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0]).tobytes())])
print("sent")
"""


def test_sandboxes_have_host_uids_of_their_own(sb, open_tmp, tmp_path_factory):
    """Sandboxes running at once run as different blocks of host uids, also
    those that use host files (a --bind, a --rootfs: they shared one block);
    what one writes on a bind is still owned by the shared block's uids on
    the host (docs/sandbox.md "Users")."""
    rw = open_tmp / "rw"
    rw.mkdir()
    os.chown(rw, HOST_UID, HOST_UID)
    root = open_tmp / "root"
    shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
    runs = [sb.start(cmd=["sleep", "600"]), sb.start(cmd=["sleep", "600"]),
            sb.start("--bind", f"{rw}:/data:rw",
                     cmd=["sh", "-c", "echo made > /data/f && exec sleep 600"]),
            sb.start("--rootfs", root, cmd=["sleep", "600"])]
    try:
        def sleepers():
            return [p for p in pids_with_env(sb.token) if _cmdline(p).startswith("sleep")]
        assert wait_until(lambda: len(sleepers()) == 4, timeout=60), pids_with_env(sb.token)
        sleepers = sleepers()
        bases = sorted(sandbox_uid_base(p) for p in sleepers)
        assert all(is_own_block(b) for b in bases) and len(set(bases)) == 4, bases
        for p in sleepers:
            base = sandbox_uid_base(p)
            assert status_fields(p)["Uid"].split() == [str(base + SANDBOX_UID)] * 4
        f = rw / "f"
        assert f.read_text() == "made\n" and (f.stat().st_uid, f.stat().st_gid) == \
            (HOST_UID, HOST_UID)
    finally:
        for p, out, err in runs:
            cancel(p)
        for p, out, err in runs:
            sb.finish(p, out, err, clean=False)
        for p, out, err in runs:
            sb.assert_clean(p.pid)


def test_a_bind_source_made_for_the_sandbox_uid_stays_readable(sb, open_tmp):
    """A read-only bind of a directory only the documented sandbox uid
    (1000001000) may read: the sandbox runs as a block of its own, and the
    bind is idmapped so that it is still that uid there (without, it would
    be nobody)."""
    d = open_tmp / "private"
    d.mkdir(mode=0o700)
    (d / "input").write_text("42\n")
    os.chown(d, HOST_UID, HOST_UID)
    os.chown(d / "input", HOST_UID, HOST_UID)
    (d / "input").chmod(0o600)
    r = sb("--bind", f"{d}:/data", cmd=["cat", "/data/input"])
    assert r.verdict == "ok" and r.out == "42\n", r


def python_root(d):
    """Options for a --rootfs d that runs the host's python3: the host's
    system directories in it as the same symlinks, or bound read-only."""
    for sub in ("proc", "dev", "tmp", "etc"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "etc" / "ld.so.cache").touch()
    opts = ["--rootfs", d, "--bind", "/etc/ld.so.cache:/etc/ld.so.cache"]
    for sys_dir in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        here = d / sys_dir[1:]
        if os.path.islink(sys_dir):
            if not here.is_symlink():
                here.symlink_to(os.readlink(sys_dir))
        elif os.path.isdir(sys_dir):
            here.mkdir(exist_ok=True)
            opts += ["--bind", f"{sys_dir}:{sys_dir}"]
    return opts


@pytest.mark.parametrize("host_files", ["none", "bind", "rootfs"])
def test_fds_one_sandbox_holds_in_flight_do_not_stop_another(sb, open_tmp, host_files):
    """The kernel counts fds in flight over unix sockets per host user and
    refuses a sender when the count is past the sender's open-files limit:
    with one host user for every sandbox, one sandbox holding fds in flight
    made every other sandbox's fd passing fail (ETOOMANYREFS). Sandboxes
    with a --bind or a --rootfs shared one block of host uids, and so the
    count, after the others had blocks of their own."""
    data = open_tmp / "data"
    data.mkdir()
    opts = {"none": [], "bind": ["--bind", f"{data}:/data"],
            "rootfs": python_root(open_tmp / "root")}[host_files]
    holder = Sandbox()
    p, out, err = holder.start("--open-files", "1024", *opts,
                               cmd=["python3", "-c", HOLD_FDS_IN_FLIGHT])
    try:
        holder.workload_pid(cmdline="sleep", timeout=60)
        r = sb("--open-files", "64", *opts, cmd=["python3", "-c", SEND_ONE_FD])
        assert r.verdict == "ok" and r.out == "sent\n", r
    finally:
        cancel(p)
        held = holder.finish(p, out, err)
    assert held.out.startswith("held ") and int(held.out.split()[1]) > 1000, held


def test_process_isolation_refuses_a_cpu_bandwidth_limit(sb):
    """Process level has no cgroup: --cpus was ignored there (a spinning
    program got a whole CPU under --cpus 0.1). Asked for, it is refused
    by name; left out, the run goes on without one."""
    r = sb("--isolation", "process", "--cpus", "0.1", cmd=["true"], json_out=False)
    assert r.rc == 125 and r.stdout == "", r
    assert r.stderr.startswith("hull: sandbox run: cpus: process isolation cannot limit CPU "
                               "bandwidth"), r
    assert sb("--isolation", "process", cmd=["true"]).verdict == "ok"
    assert sb("--cpus", "0.1", cmd=["true"]).verdict == "ok"


def test_process_isolation_kernel_state(sb):
    p, out, err = sb.start("--isolation", "process", "--memory", "300M", "--pids", "20",
                           cmd=["sleep", "60"])
    try:
        pid = sb.workload_pid()
        st = status_fields(pid)
        # No user namespace: a host uid of the run's own (1000100000 + slot),
        # no capabilities, no_new_privs; a filter only of the key calls.
        assert 1000100000 <= int(st["Uid"].split()[0]) < 1000100000 + 1024, st["Uid"]
        assert st["Uid"].split()[0] == st["Gid"].split()[0]
        assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
        assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
        for ns in ("pid", "mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert "/hull/" not in Path(f"/proc/{pid}/cgroup").read_text()
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
        aspace = [l for l in limits if l.startswith("Max address space")][0].split()
        nproc = [l for l in limits if l.startswith("Max processes")][0].split()
        assert aspace[3] == str(300 * MiB) and nproc[2] == "21", (aspace, nproc)  # + the init
    finally:
        cancel(p)
    r = sb.finish(p, out, err)
    assert r.verdict == "killed" and r.j["isolation"] == "process", r


# ---- limits and their verdicts -----------------------------------------------------

SPIN = py("while True: pass")
# Forks sleepers until a fork is refused; prints how many and the errno.
FORK_UNTIL_REFUSED = py("import os, time\n"
                        "n = 0\n"
                        "try:\n"
                        "    while True:\n"
                        "        if os.fork() == 0:\n"
                        "            time.sleep(30); os._exit(0)\n"
                        "        n += 1\n"
                        "except OSError as e:\n"
                        "    print(n, e.errno)\n")


@pytest.mark.parametrize("iso", ["container", "process"])
def test_cpu_time_limit(sb, iso):
    r = sb("--isolation", iso, "--cpu-time", "300ms", cmd=SPIN)
    assert r.verdict == "cpu_time_limit", r
    assert r.j["cpu_time_ms"] >= 300 and r.j["signal"] == signal.SIGKILL
    assert sb("--isolation", iso, "--cpu-time", "300ms", cmd=SPIN, json_out=False).rc == 124


def test_cpu_time_counts_every_process(sb):
    """Two busy children: the cgroup's total decides, not one process's."""
    code = ("import os\n"
            "for i in range(2):\n"
            "    if os.fork() == 0:\n"
            "        while True: pass\n"
            "os.wait()\n")
    r = sb("--cpu-time", "600ms", "--cpus", "2", cmd=py(code))
    assert r.verdict == "cpu_time_limit" and r.j["cpu_time_ms"] >= 600, r


def test_wall_time_limit(sb):
    r = sb("--wall-time", "500ms", cmd=["sleep", "30"])
    assert r.verdict == "wall_time_limit", r
    assert r.j["wall_time_ms"] >= 500 and r.j["signal"] == signal.SIGKILL
    assert sb("--wall-time", "200ms", cmd=["sleep", "30"], json_out=False).rc == 124


def test_memory_limit(sb):
    r = sb("--memory", "64M", cmd=py("x = bytearray(512 << 20)"))
    assert r.verdict == "memory_limit", r
    assert r.j["signal"] == signal.SIGKILL
    # The peak is the kernel's, and the kernel kept it at the limit.
    assert 32 * 1024 < r.j["max_memory_kb"] <= 64 * 1024, r.j["max_memory_kb"]
    assert sb("--memory", "64M", cmd=py("x = bytearray(512 << 20)"), json_out=False).rc == 124


def test_process_isolation_memory_and_pids_are_rlimits(sb):
    """Without a cgroup there is no kernel accounting to give a memory or
    pids verdict: the limits are RLIMIT_AS and RLIMIT_NPROC, so the
    program sees its allocation or fork fail and the verdict is its exit."""
    r = sb("--isolation", "process", "--memory", "64M", cmd=py("x = bytearray(512 << 20)"))
    assert r.verdict == "exit_nonzero" and "MemoryError" in r.err, r
    assert r.j["max_memory_kb"] > 0
    r = sb("--isolation", "process", "--pids", "8", cmd=FORK_UNTIL_REFUSED)
    assert r.verdict == "ok", r
    n, errno_ = r.out.split()
    assert int(n) < 8 and int(errno_) == 11  # EAGAIN (the run's own uid's count)


def test_memory_within_limit_is_ok(sb):
    r = sb("--memory", "128M", cmd=py("x = bytearray(32 << 20); print(len(x))"))
    assert r.verdict == "ok" and r.out == str(32 << 20) + "\n", r
    assert r.j["max_memory_kb"] >= 32 * 1024


def test_pids_limit_counts_the_programs_tasks(sb):
    # One process, the program: allowed. Two: the second fork is refused.
    assert sb("--pids", "1", cmd=["true"]).verdict == "ok"
    r = sb("--pids", "1", cmd=["sh", "-c", "true & wait"])
    assert r.verdict == "pids_limit" and "Cannot fork" in r.err, r
    assert sb("--pids", "2", cmd=["sh", "-c", "true & wait"]).verdict == "ok"


def test_pids_limit(sb):
    """fork fails at the limit; the program copes and exits 0, yet the
    kernel's pids events give the verdict."""
    r = sb("--pids", "16", cmd=FORK_UNTIL_REFUSED)
    assert r.verdict == "pids_limit", r
    n, errno_ = r.out.split()
    assert int(n) == 15 and int(errno_) == 11  # 16 tasks: the program and 15 children
    assert sb("--pids", "16", cmd=FORK_UNTIL_REFUSED, json_out=False).rc == 124


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_limit(sb, stream):
    fd = 1 if stream == "stdout" else 2
    r = sb("--output", "1000", cmd=py(f"import os\nwhile True: os.write({fd}, b'a' * 4096)"))
    assert r.verdict == "output_limit", r
    assert r.j[stream] == "a" * 1000 and r.j[f"{stream}_truncated"] is True
    other = "stderr" if stream == "stdout" else "stdout"
    assert r.j[f"{other}_truncated"] is False


def test_output_at_the_limit_is_not_truncated(sb):
    r = sb("--output", "1000", cmd=py("import os; os.write(1, b'a' * 1000)"))
    assert r.verdict == "ok" and len(r.out) == 1000 and not r.j["stdout_truncated"], r
    r = sb("--output", "1000", cmd=py("import os; os.write(1, b'a' * 1001)"))
    assert r.verdict == "output_limit" and len(r.out) == 1000 and r.j["stdout_truncated"], r


def test_tmp_size(sb):
    r = sb("--tmp-size", "1M", cmd=["sh", "-c", "df -k /tmp | tail -1; "
                                    "dd if=/dev/zero of=/tmp/fill bs=64k count=64"])
    assert r.verdict == "exit_nonzero", r
    assert r.out.split()[1] == "1024"  # 1 MiB in 1K blocks
    assert "No space left on device" in r.err


def test_open_files(sb):
    code = ("fs = []\n"
            "try:\n"
            "    while True: fs.append(open('/dev/null'))\n"
            "except OSError as e:\n"
            "    print(len(fs) + 3, e.errno)\n")
    r = sb("--open-files", "16", cmd=py(code))
    assert r.verdict == "ok", r
    assert r.out.split() == ["16", "24"]  # EMFILE at the limit


def test_open_files_at_the_smallest_limit(sb):
    """4 is accepted, so 4 must work: the sandbox's setup is not held to it."""
    r = sb("--open-files", "4", cmd=["sh", "-c", "ulimit -n; ulimit -Hn; exec 3</dev/null; echo ok"])
    assert r.verdict == "ok" and r.out.split() == ["4", "4", "ok"], r


# ---- filesystem ------------------------------------------------------------------


def test_default_view_of_the_host(sb):
    r = sb(cmd=["sh", "-c", "ls -a /; echo --; ls -a /etc; echo --; "
                "for p in /root /home /var /run /sys /boot /work /etc/shadow; do "
                "test -e $p && echo visible $p; done; true"])
    assert r.verdict == "ok", r
    root, etc, visible = r.out.split("--\n")
    want = {".", "..", "dev", "etc", "proc", "tmp"}
    want |= {d for d in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
             if os.path.lexists("/" + d)}
    assert set(root.split()) == want
    allowed_etc = {".", "..", "passwd", "group", "hosts", "ld.so.cache", "alternatives",
                   "localtime", "nsswitch.conf", "mime.types"}
    assert set(etc.split()) <= allowed_etc, etc
    assert visible == "", visible


def test_python_just_works(sb):
    r = sb(cmd=py("import json, sqlite3, subprocess, threading, multiprocessing\n"
                  "print(subprocess.run(['id', '-un'], capture_output=True, text=True).stdout)"))
    assert r.verdict == "ok" and r.out == "sandbox\n\n", r


def test_read_only_everywhere_but_tmp(sb):
    r = sb(cmd=["sh", "-c", "for d in / /usr /etc /bin /dev /proc/sys; do "
                "touch $d/hull-x 2>/dev/null && echo wrote $d; done; "
                "touch /tmp/ok && echo tmp ok"])
    assert r.out == "tmp ok\n", r


def make_bundle(tmp_path, tmp_path_factory):
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(cached_rootfs(tmp_path_factory), b / "rootfs", symlinks=True)
    (b / "config.json").write_text("{}")
    return b


def test_rootfs_bundle(sb, open_tmp, tmp_path_factory):
    b = make_bundle(open_tmp, tmp_path_factory)
    r = sb("--rootfs", b, cmd=["/bin/sh", "-c", "id; test -e /usr/bin/python3 || echo nopy; "
                                "touch /x 2>/dev/null || echo ro; echo hi > /tmp/t && cat /tmp/t"])
    assert r.verdict == "ok", r
    assert r.out.splitlines() == ["uid=1000(user) gid=1000(user)", "nopy",
                                  "ro", "hi"]


def test_rootfs_plain_directory(sb, open_tmp, tmp_path_factory):
    b = make_bundle(open_tmp, tmp_path_factory)
    r = sb("--rootfs", b / "rootfs", cmd=["/bin/sh", "-c", "cat /etc/group | head -1"])
    assert r.verdict == "ok" and r.out == "root:x:0:\n", r


def test_bind_read_only(sb, open_tmp):
    d = open_tmp / "data"
    d.mkdir()
    (d / "f").write_text("payload\n")
    r = sb("--bind", f"{d}:/data", cmd=["sh", "-c", "cat /data/f; echo x > /data/g"])
    assert r.verdict == "exit_nonzero" and r.out == "payload\n", r
    assert "Read-only file system" in r.err
    assert sorted(os.listdir(d)) == ["f"]


def test_bind_writable(sb, open_tmp):
    d = open_tmp / "rw"
    d.mkdir()
    os.chown(d, HOST_UID, HOST_UID)  # the sandbox user's uid on the host
    r = sb("--bind", f"{d}:/data:rw", cmd=["sh", "-c", "echo made > /data/g"])
    assert r.verdict == "ok", r
    g = d / "g"
    assert g.read_text() == "made\n" and g.stat().st_uid == HOST_UID


def test_bind_single_file_and_workdir(sb, open_tmp):
    f = open_tmp / "input.txt"
    f.write_text("42\n")
    r = sb("--bind", f"{f}:/tmp/input.txt", "--workdir", "/usr/bin",
           cmd=["sh", "-c", "pwd; cat /tmp/input.txt"])
    assert r.out == "/usr/bin\n42\n", r
    assert sb(cmd=["pwd"]).out == "/tmp\n"


# ---- data in and out -------------------------------------------------------------


def test_stdin_file(sb, tmp_path):
    f = tmp_path / "in.bin"
    f.write_bytes(b"\x00\x01binary\xff")
    r = sb("--stdin", f, cmd=["cat"])
    assert base64.b64decode(r.j["stdout_base64"]) == b"\x00\x01binary\xff", r


def test_stdin_dash(sb):
    r = sb("--stdin", "-", cmd=["sh", "-c", "read a; echo got $a"], input="hello\n")
    assert r.out == "got hello\n", r


def test_stdin_default_is_empty(sb):
    r = sb(cmd=["cat"])
    assert r.verdict == "ok" and r.out == "", r


def test_copy_in_keeps_content_and_exec_bit(sb, tmp_path):
    s = tmp_path / "prog.sh"
    s.write_text("#!/bin/sh\necho running as $(id -u)\n")
    s.chmod(0o755)
    d = tmp_path / "data.txt"
    d.write_text("x" * 5000)
    r = sb("--copy-in", f"{s}:/tmp/prog.sh", "--copy-in", f"{d}:/tmp/sub/data.txt",
           cmd=["sh", "-c", "/tmp/prog.sh; wc -c < /tmp/sub/data.txt; stat -c %u /tmp/prog.sh"])
    assert r.verdict == "ok", r
    assert r.out.split("\n")[:3] == ["running as 1000", "5000", "1000"]


def test_copy_in_directories_belong_to_the_sandbox_user(sb, tmp_path):
    """Directories made for copied-in files (and a --workdir under /tmp)
    belong to the sandbox's user: it can write next to its inputs."""
    f = tmp_path / "in.txt"
    f.write_text("in\n")
    r = sb("--copy-in", f"{f}:/tmp/job/data/in.txt", "--workdir", "/tmp/job/run",
           cmd=["sh", "-c", "pwd; stat -c '%U %a %n' /tmp/job /tmp/job/data /tmp/job/run /tmp; "
                "cp /tmp/job/data/in.txt /tmp/job/data/out.txt && echo wrote"])
    assert r.verdict == "ok", r
    assert r.out.splitlines() == ["/tmp/job/run", "sandbox 755 /tmp/job", "sandbox 755 /tmp/job/data",
                                  "sandbox 755 /tmp/job/run", "root 1777 /tmp", "wrote"]


def test_copy_out(sb, tmp_path):
    out = tmp_path / "result.txt"
    missing = tmp_path / "never.txt"
    r = sb("--copy-out", f"/tmp/result.txt:{out}", "--copy-out", f"/tmp/none:{missing}",
           cmd=["sh", "-c", "echo result > /tmp/result.txt"])
    assert r.verdict == "ok", r
    assert out.read_text() == "result\n"
    f0, f1 = r.j["files"]
    assert (f0["sandbox"], f0["host"], f0["size"]) == ("/tmp/result.txt", str(out), 7)
    assert "error" not in f0
    assert "No such file" in f1["error"] and not missing.exists()
    assert sorted(os.listdir(tmp_path)) == ["result.txt"]  # no temp file left beside it


def test_copy_out_after_a_limit(sb, tmp_path):
    """Files written before the program was killed still come out."""
    out = tmp_path / "partial.txt"
    r = sb("--wall-time", "300ms", "--copy-out", f"/tmp/p:{out}",
           cmd=["sh", "-c", "echo partial > /tmp/p; sleep 30"])
    assert r.verdict == "wall_time_limit" and out.read_text() == "partial\n", r


def test_env(sb, monkeypatch):
    monkeypatch.setenv("HULL_HOST_SECRET", "leak")
    r = sb("--env", "FOO=bar", "--env", "EMPTY=", cmd=["env"])
    env = dict(l.split("=", 1) for l in r.out.splitlines())
    assert env["FOO"] == "bar" and env["EMPTY"] == ""
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp" and "/usr/bin" in env["PATH"]
    assert "HULL_HOST_SECRET" not in env


# ---- network -------------------------------------------------------------------


@pytest.fixture
def host_server():
    """A TCP server on the host's 127.0.0.1; counts accepted connections."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                accepted.append(c.recv(100))
                c.close()
            except OSError:
                pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join()
    srv.close()


CONNECT = ("import socket, sys\n"
           "print(socket.if_nameindex())\n"
           "try:\n"
           "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
           "    s.send(b'hello'); s.close(); print('connected')\n"
           "except OSError as e:\n"
           "    print('refused', e.errno)\n")


def test_network_none(sb, host_server):
    port, accepted = host_server
    r = sb(cmd=py(CONNECT) + [port])
    assert r.verdict == "ok", r
    ifaces, outcome = r.out.splitlines()
    assert ifaces == "[(1, 'lo')]"
    assert outcome == "refused 111" and accepted == []
    # lo is up: the sandbox talks to itself.
    loop = ("import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "c = socket.create_connection(s.getsockname()); print('lo ok')")
    assert sb("--network", "none", cmd=py(loop)).out == "lo ok\n"


def test_network_host(sb, host_server):
    port, accepted = host_server
    r = sb("--network", "host", cmd=py(CONNECT) + [port])
    assert r.verdict == "ok", r
    assert "warning" in r.stderr and "--network host" in r.stderr
    assert r.out.splitlines()[1] == "connected"
    assert wait_until(lambda: accepted == [b"hello"])
    assert r.out.splitlines()[0] == str(socket.if_nameindex())


# ---- seccomp ---------------------------------------------------------------------


def test_seccomp_profile_file(sb, tmp_path):
    prof = json.loads(subprocess.run([HULL, "sandbox", "seccomp-profile"], capture_output=True,
                                     check=True).stdout)
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    for entry in prof["syscalls"]:
        entry["names"] = [n for n in entry["names"] if n not in ("mkdir", "mkdirat")]
    f = tmp_path / "seccomp.json"
    f.write_text(json.dumps(prof))
    r = sb("--seccomp", f, cmd=["sh", "-c", "echo ok > /tmp/file && mkdir /tmp/d"])
    assert r.verdict == "exit_nonzero", r
    assert "Operation not permitted" in r.err
    # The built-in profile lets the same command through.
    assert sb(cmd=["sh", "-c", "mkdir /tmp/d"]).verdict == "ok"


def test_seccomp_bad_profile(sb, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"defaultAction": "SCMP_ACT_NOPE"}')
    r = sb("--seccomp", f, cmd=["true"])
    assert r.rc == 125 and "--seccomp" in r.stderr and r.stdout == "", r


# ---- bad input ------------------------------------------------------------------


def bad_inputs(tmp, open_tmp):
    plain = tmp / "plain.txt"
    plain.write_text("x")
    return [
        (["--bind", f"{tmp}:/data"], "Permission denied for the sandbox's root"),
        (["--rootfs", str(tmp)], "Permission denied for the sandbox's root"),
        (["--memory", "12Q"], "--memory: '12Q' is not a size"),
        (["--memory", "1k"], "memory: 1024 bytes is out of range"),
        (["--memory", "2048G"], "memory: 2199023255552 bytes is out of range"),
        (["--cpu-time", "abc"], "--cpu-time: 'abc' is not a duration"),
        (["--cpu-time", "0"], "cpu_time: 0 ms is out of range"),
        (["--wall-time", "-1s"], "--wall-time: '-1s' is not a duration"),
        (["--wall-time", "25h"], "wall_time: 90000000 ms is out of range"),
        (["--pids", "x"], "--pids: 'x' is not a count"),
        (["--pids", "-5"], "--pids: '-5' is not a count"),
        (["--pids", "0"], "pids: 0 is out of range"),
        (["--pids", " 5"], "--pids: ' 5' is not a count"),
        (["--pids", "+5"], "--pids: '+5' is not a count"),
        (["--open-files", " -18446744073709551551"], "is not a count"),
        (["--cpu-time", "0x10"], "--cpu-time: '0x10' is not a duration"),
        (["--memory", " 64M"], "--memory: ' 64M' is not a size"),
        (["--cpus", "0x10"], "--cpus: '0x10' is not a number"),
        (["--bind", "/tmp:/"], "bind[0]: cannot bind over '/'"),
        (["--bind", "/tmp:/proc"], "bind[0]: cannot bind over '/proc'"),
        (["--bind", "/tmp:/proc/sys/x"], "bind[0]: cannot bind over '/proc/sys/x'"),
        (["--output", "2G"], "output: 2147483648 bytes is out of range"),
        (["--tmp-size", "1k"], "tmp_size: 1024 bytes is out of range"),
        (["--open-files", "2"], "open_files: 2 is out of range"),
        (["--cpus", "0"], "cpus: 0 is out of range"),
        (["--cpus", "fast"], "--cpus: 'fast' is not a number"),
        (["--isolation", "vm"], "--isolation: 'vm' is not process, container or microvm"),
        (["--network", "Bridge"], "network: 'Bridge' is not a network name"),
        (["--egress", "all"], "egress: only with a hull network (--network NAME)"),
        (["--publish", "8080:80"], "publish: only with a hull network (--network NAME)"),
        (["--network", "x", "--publish", "80"], "--publish \"80\": want [HOSTIP:]HOSTPORT:PORT"),
        (["--network", "x", "--egress", "1.2.3.4/40"],
         "egress rule \"1.2.3.4/40\": prefix length \"40\" is not a number 0-32"),
        (["--bind", "/tmp"], "--bind: '/tmp' is not SRC:DST[:rw]"),
        (["--bind", "/tmp:/x:rx"], "--bind: '/tmp:/x:rx' is not SRC:DST[:rw]"),
        (["--bind", "/nonexistent-hull:/x"], "--bind /nonexistent-hull: No such file"),
        (["--bind", "/tmp:relative"], "bind[0]: 'relative' must be an absolute path"),
        (["--bind", "/tmp:/usr/nonexistent-hull"], "/usr/nonexistent-hull does not exist"),
        (["--copy-in", "/nonexistent-hull:/tmp/x"], "--copy-in /nonexistent-hull: No such file"),
        (["--copy-in", f"{tmp}:/tmp/x"], "not a regular file"),
        (["--copy-in", f"{plain}:/etc/x"], "copy_in[0]: '/etc/x' must be under /tmp"),
        (["--copy-in", f"{plain}:/tmp/../etc/x"], "must be under /tmp"),
        (["--copy-in", "nocolon"], "--copy-in: 'nocolon' is not HOST:PATH"),
        (["--copy-out", f"/etc/passwd:{tmp}/p"], "copy_out[0]: '/etc/passwd' must be under /tmp"),
        (["--workdir", "tmp"], "workdir: 'tmp' must be an absolute path"),
        (["--env", "NOEQUALS"], "env: 'NOEQUALS' must be KEY=VALUE"),
        (["--rootfs", str(plain)], f"--rootfs {plain}: not a directory"),
        (["--rootfs", "/nonexistent-hull"], "--rootfs /nonexistent-hull: No such file"),
        (["--rootfs", str(open_tmp)], "/proc does not exist in --rootfs"),
        (["--stdin", "/nonexistent-hull"], "--stdin /nonexistent-hull: No such file"),
        (["--stdin", str(tmp)], "is a directory"),
        (["--seccomp", "/nonexistent-hull"], "--seccomp"),
        (["--no-such-flag"], "Try 'hull sandbox --help'"),
    ]


@pytest.mark.asan
def test_bad_input_is_refused_and_leaves_nothing(sb, tmp_path, open_tmp):
    for opts, msg in bad_inputs(tmp_path, open_tmp):
        for json_out in (True, False):
            r = sb(*opts, cmd=["true"], json_out=json_out)
            assert r.rc == 125, (opts, r)
            assert msg in r.stderr, (opts, msg, r.stderr)
            assert r.stderr.startswith("hull: ") or "unrecognized" in r.stderr, r
            assert r.stdout == "", (opts, r)
    assert sorted(os.listdir(tmp_path)) == ["plain.txt"] and os.listdir(open_tmp) == []


def test_host_files_that_are_not_files_are_refused_without_waiting(sb, tmp_path):
    """A FIFO with no writer (or a device that never ends) given as an input
    is refused at once: the open does not wait for a writer before any
    limit applies, and a profile is not read on and on."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for opts, msg in [
            (["--copy-in", f"{fifo}:/tmp/f"], f"--copy-in {fifo}: not a regular file"),
            (["--seccomp", str(fifo)], f"--seccomp {fifo}: not a regular file"),
            (["--seccomp", "/dev/zero"], "--seccomp /dev/zero: not a regular file")]:
        r = sb(*opts, cmd=["true"], timeout=60)
        assert r.rc == 125 and msg in r.stderr, (opts, r)
    # --stdin may be a FIFO: it waits for its writer within the run's limits.
    r = sb("--stdin", str(fifo), "--wall-time", "1s", cmd=["cat"], timeout=60)
    assert r.verdict == "wall_time_limit", (r.stdout, r.stderr)


def test_a_rootfs_device_node_or_a_bound_submount_is_nodev(sb, open_tmp):
    """Device nodes a --rootfs carries (unpacked by root from anywhere) are
    never honoured, nor set-id bits: the root and everything under it, and
    every mount under a --bind source, are nosuid,nodev."""
    root = open_tmp / "root"
    for d in ("proc", "dev", "tmp", "bin", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    os.mknod(root / "bin" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.chmod(root / "bin" / "null", 0o666)
    r = sb("--rootfs", str(root), cmd=["/bin/busybox", "sh", "-c",
                                       "echo x > /bin/null && echo opened; "
                                       "awk '$5 == \"/\"' /proc/self/mountinfo"])
    assert r.verdict == "ok" and "opened" not in r.out, (r.stdout, r.stderr)
    assert "nosuid,nodev" in r.out, r.out
    r = sb("--bind", "/dev:/hd", cmd=["sh", "-c", "grep ' /hd/' /proc/self/mountinfo"])
    lines = r.out.splitlines()
    assert r.verdict == "ok" and lines and all("nosuid,nodev" in ln for ln in lines), r.out


def test_refused_mount_point_keeps_the_reason_for_debug():
    """The clear refusal of a --bind target replaces the resolver's error;
    that one is not dropped but logged for --debug."""
    argv = ["sandbox", "run", "--bind", "/tmp:/usr/nonexistent-hull", "--", "true"]
    plain = subprocess.run([HULL, *argv], capture_output=True, text=True, timeout=120)
    debug = subprocess.run([HULL, "--debug", *argv], capture_output=True, text=True, timeout=120)
    assert plain.returncode == debug.returncode == 125, (plain, debug)
    refusal = "/usr/nonexistent-hull does not exist on the host"
    assert refusal in plain.stderr and refusal in debug.stderr, (plain, debug)
    reason = "--bind: /usr/nonexistent-hull: No such file or directory"
    assert reason not in plain.stderr, plain
    assert f"debug: {reason}" in debug.stderr, debug


def test_no_command(sb):
    r = subprocess.run([HULL, "sandbox", "run", "--json"], capture_output=True, text=True)
    assert r.returncode == 125 and "no command given" in r.stderr
    r = subprocess.run([HULL, "sandbox", "run", "--memory", "64M", "--"], capture_output=True,
                       text=True)
    assert r.returncode == 125 and "no command given" in r.stderr


@pytest.mark.parametrize("cmd,why,code", [
    (["/nonexistent-hull"], 'exec: "/nonexistent-hull": No such file or directory', 127),
    (["nosuchprog-hull"], 'exec: "nosuchprog-hull": executable file not found in $PATH', 127),
    (["/etc/passwd"], 'exec: "/etc/passwd": not an executable file', 126),
])
@pytest.mark.parametrize("isolation", ["container", "process"])
def test_command_that_cannot_run(sb, cmd, why, code, isolation):
    """The caller's mistake, not hull's: verdict bad_command with a shell's
    status (127 missing, 126 not executable), one `hull:` error line."""
    r = sb("--isolation", isolation, cmd=cmd)
    assert r.rc == 0 and (r.verdict, r.j["exit_code"]) == ("bad_command", code), r
    assert why in r.j["error"], r.j["error"]
    p = sb("--isolation", isolation, cmd=cmd, json_out=False)
    assert p.rc == code and "verdict=" not in p.stderr, p
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hull: sandbox: ") and why in lines[0], p


@pytest.mark.parametrize("workdir,why", [
    ("/usr/no-such-dir-hull", "workdir: /usr/no-such-dir-hull is not there and cannot be made: "
                              "mkdir /usr/no-such-dir-hull: Read-only file system"),
    ("/etc/passwd", "workdir: /etc/passwd: not a directory"),
])
def test_workdir_that_cannot_be_made(sb, workdir, why):
    """A --workdir the read-only root lacks is the caller's mistake, said as
    one clear error (bad_command, 126), not an internal error."""
    r = sb("--workdir", workdir, cmd=["pwd"])
    assert r.rc == 0 and (r.verdict, r.j["exit_code"]) == ("bad_command", 126), r
    assert r.j["error"] == why, r.j
    p = sb("--workdir", workdir, cmd=["pwd"], json_out=False)
    assert p.rc == 126 and p.stderr.splitlines() == [f"hull: sandbox: {why}"], p


# ---- the runner going away ----------------------------------------------------------


def test_sigterm_cancels_and_cleans_up(sb):
    p, out, err = sb.start(cmd=["sleep", "60"], json_out=False)
    sb.workload_pid()
    cancel(p)
    r = sb.finish(p, out, err, json_out=False)
    assert r.rc == 143 and "verdict=killed" in r.stderr, r


def test_sigkilled_runner_is_collected_by_the_next_run(sb):
    # A CPU quota: the run joins the cpu hierarchy too.
    p, out, err = sb.start("--cpus", "0.5", cmd=["sleep", "60"])
    pid = sb.workload_pid()
    prefix = f"sandbox-{p.pid}-"
    p.kill()
    p.wait()
    # The workload dies with its runner; the runner's cgroups cannot. A
    # one-shot run has no state directory: its cgroups are all it leaves.
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"))
    assert cgroup_dirs(prefix) and not state_dirs(prefix)
    r = sb(cmd=["true"])
    assert r.verdict == "ok", r
    assert not state_dirs(prefix) and not cgroup_dirs(prefix)
    sb.assert_clean(p.pid)
    out.close()
    err.close()


def _memory_mount():
    """The hierarchy every sandbox joins: v1 memory, or a cgroup2 offering it."""
    mounts = [Path(m) for m in cgroup_mounts()]
    for m in mounts:
        if (m / "memory.limit_in_bytes").exists():
            return m
    for m in mounts:
        ctl = m / "cgroup.controllers"
        if ctl.exists() and "memory" in ctl.read_text().split():
            return m
    pytest.skip("no memory cgroup hierarchy")


def _dead_pid():
    pid = 4000000
    while os.path.exists(f"/proc/{pid}") or os.path.exists(f"/proc/{pid + 1}"):
        pid += 2
    return pid


def _rmdir_quietly(cg):
    try:
        cg.rmdir()
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def _sleeper_in(cg):
    """A process in cgroup cg (made here), as someone's container named like
    a run would hold; killed and the cgroup removed afterwards."""
    cg.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (cg / "cgroup.procs").write_text(str(sleeper.pid))
        yield sleeper
    finally:
        sleeper.kill()
        sleeper.wait()
        if cg.exists():
            assert wait_until(lambda: not cg.exists() or
                              not (cg / "cgroup.procs").read_text().strip())
        _rmdir_quietly(cg)


def test_next_run_kills_nothing_in_a_look_alike_cgroup(sb):
    """The sweep before each run removes a dead runner's empty cgroups by
    name; a cgroup that merely looks like one and holds processes (someone's
    container named sandbox-<dead pid>-...) is left with them."""
    mem = _memory_mount()
    tag = os.urandom(3).hex()
    cg = mem / "hull" / f"sandbox-{_dead_pid()}-1-0-{tag}"
    empty = mem / "hull" / f"sandbox-{_dead_pid() + 1}-1-0-{tag}"
    with _sleeper_in(cg) as sleeper:
        try:
            empty.mkdir()
            assert sb(cmd=["true"]).verdict == "ok"
            if sleeper.poll() is not None:
                # Only a full cleanup kills, and one may run beside this test.
                pytest.skip("a concurrent `hull sandbox cleanup` collected the look-alike")
            assert cg.exists()
            assert not empty.exists()  # a dead runner's empty cgroup does go
        finally:
            _rmdir_quietly(empty)


def test_a_reused_pid_is_no_alibi(sb):
    """A run's id names its runner by pid and start time: a cgroup whose
    pid now belongs to another process (this test's) is a dead runner's.
    Names that only resemble an id are not judged at all."""
    mem = _memory_mount()
    tag = os.urandom(3).hex()
    reused = mem / "hull" / f"sandbox-{os.getpid()}-1-0-{tag}"  # we did not start at tick 1
    # 2**32 + 123: a pid that wraps to 123 in a sloppy parse; a "+", a tail.
    odd = [mem / "hull" / n for n in (f"sandbox-4294967419-1-0-{tag}",
                                      f"sandbox-+{_dead_pid()}-1-0-{tag}",
                                      f"sandbox-{_dead_pid()}-1-0-{tag}-x")]
    made = [reused, *odd]
    try:
        for d in made:
            d.mkdir(parents=True)
        assert sb(cmd=["true"]).verdict == "ok"
        assert not reused.exists()
        assert all(d.exists() for d in odd), [d for d in odd if not d.exists()]
    finally:
        for d in made:
            _rmdir_quietly(d)


def test_cleanup_without_any_session_state():
    """`hull sandbox cleanup` on a host where no session ever kept state
    (no /run/hull/sandbox) still collects a dead runner's cgroups, killing
    what they hold (which only the cleanup verb does)."""
    cg = _memory_mount() / "hull" / f"sandbox-{_dead_pid()}-1-0-{os.urandom(3).hex()}"
    with _sleeper_in(cg) as sleeper:
        # A private mount namespace with an empty /run/hull: no state directory.
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                            "if [ -d /run/hull ]; then mount -t tmpfs tmpfs /run/hull; fi; "
                            'test ! -e /run/hull/sandbox; exec "$0" sandbox cleanup', HULL],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert int(r.stdout.split()[1]) >= 1, r.stdout
        assert sleeper.wait(timeout=30) == -signal.SIGKILL
        assert not cg.exists()


def test_cleanup_verb_collects_a_sigkilled_runner(sb):
    """`hull sandbox cleanup`: what a killed runner left goes, a live run stays."""
    live, lout, lerr = sb.start(cmd=["sleep", "61"])
    p, out, err = sb.start(cmd=["sleep", "60"])
    sb.workload_pid("sleep 61")
    pid = sb.workload_pid("sleep 60")
    prefix, live_prefix = f"sandbox-{p.pid}-", f"sandbox-{live.pid}-"
    p.kill()
    p.wait()
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"))
    assert cgroup_dirs(prefix)
    r = subprocess.run([HULL, "sandbox", "cleanup"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("removed ") and int(r.stdout.split()[1]) >= 1, r.stdout
    assert not cgroup_dirs(prefix)
    assert cgroup_dirs(live_prefix)  # still running: untouched
    cancel(live)
    live.wait(timeout=60)
    sb.assert_clean(p.pid)
    sb.assert_clean(live.pid)
    for f in (out, err, lout, lerr):
        f.close()


def test_cleanup_verb_refuses_arguments_and_non_root():
    r = subprocess.run([HULL, "sandbox", "cleanup", "extra"], capture_output=True, text=True)
    assert r.returncode == 125 and "unexpected argument 'extra'" in r.stderr, r
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        HULL, "sandbox", "cleanup"], capture_output=True, text=True)
    assert r.returncode == 1 and "hull: sandbox cleanup: needs root" in r.stderr, r
