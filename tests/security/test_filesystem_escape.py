"""Attacks on the filesystem: read-only mounts, host secrets, the binaries
that run the sandbox, leaked fds, setuid binaries, and --copy-out tricks."""
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandboxlib import HOST_UID, HULL, cgroup_mounts, sha256

# Writable by design; device nodes (and the masked /proc files bound from
# /dev/null) are files whose writes go nowhere.
WRITABLE = {"/tmp", "/dev/shm"}


@pytest.fixture
def open_tmp():
    d = Path(tempfile.mkdtemp(prefix="hull-sec-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_every_read_only_mount(sb, hostile):
    info = sb(cmd=["cat", "/proc/self/mountinfo"]).out.splitlines()
    targets = []
    for line in info:
        parts = line.split()
        mp, fstype = parts[4], parts[parts.index("-") + 1]
        if mp not in WRITABLE and fstype != "devtmpfs":
            targets.append(mp)
    assert "/" in targets and "/usr" in targets and "/proc/sys" in targets
    targets += ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
                "/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/sys",
                "/sys/kernel/uevent_helper", "/etc/passwd", "/etc/ld.so.cache"]
    r, res = hostile("rofs", *targets)
    assert r.verdict == "ok", r
    for line in r.out.splitlines():
        path, fd, err = line.split()
        if fd == "absent":
            assert err == "ENOENT", line
        else:
            assert fd == "-1" and err in ("EROFS", "EACCES", "EPERM", "ENOENT"), line
    # Nothing reached the host's copies.
    for d in ("/", "/usr", "/etc", "/bin", "/lib", "/usr/lib", "/proc"):
        assert not os.path.exists(os.path.join(d, "hull-escape")), d
    assert Path("/proc/sys/kernel/hostname").read_text().strip() == socket.gethostname()


def test_proc_sys_and_sysrq(sb):
    before = {p: Path(p).read_text() for p in ("/proc/sys/kernel/hostname",
                                                "/proc/sys/kernel/core_pattern",
                                                "/proc/sys/vm/overcommit_memory")}
    r = sb(cmd=["sh", "-c", "echo evil > /proc/sys/kernel/hostname; "
                "echo '|/tmp/x' > /proc/sys/kernel/core_pattern; "
                "echo 2 > /proc/sys/vm/overcommit_memory; echo b > /proc/sysrq-trigger; "
                "echo x > /sys/kernel/uevent_helper; echo end"])
    assert r.out == "end\n", r
    assert r.err.count("Read-only file system") + r.err.count("Permission denied") \
        + r.err.count("nonexistent") + r.err.count("No such file") >= 5, r.err
    for p, v in before.items():
        assert Path(p).read_text() == v, p


def test_host_secrets_absent(hostile):
    r, _ = hostile("secrets", "/etc/shadow", "/etc/gshadow", "/root", "/root/.bashrc",
                   "/home", "/proc/kcore", "/dev/mem", "/dev/kmsg", "/dev/sda", "/dev/vda",
                   "/proc/1/environ", "/sys/fs/cgroup", "/run", "/var/log", "/boot",
                   "/proc/self/root/../../etc/shadow")
    for line in r.out.splitlines():
        path, fd, err = line.split()
        assert fd == "-1" and err in ("ENOENT", "EACCES"), line
    shadow = Path("/etc/shadow").read_text()
    assert shadow.splitlines()[0] not in r.out


@pytest.mark.parametrize("isolation", ["process", "container"])
def test_host_kernel_command_line_hidden(sb, isolation):
    """/proc/cmdline is the host's: its kernel's arguments and its init's."""
    r = sb("--isolation", isolation, cmd=["sh", "-c", "wc -c < /proc/cmdline"])
    assert r.verdict == "ok" and r.out.strip() == "0", r


@pytest.mark.parametrize("isolation", ["process", "container"])
def test_no_host_paths_in_mountinfo(sb, isolation, open_tmp):
    """A mount's root in /proc/self/mountinfo is its path on the host's
    filesystem: hull's own directories and the caller's must not show."""
    src = open_tmp / "in.txt"
    src.write_text("x")
    r = sb("--isolation", isolation, "--copy-in", f"{src}:/tmp/in.txt",
           cmd=["cat", "/proc/self/mountinfo"])
    assert r.verdict == "ok", r
    roots = {line.split()[3] for line in r.out.splitlines()}
    for host in ("/run/hull", "/var/lib/hull", str(open_tmp)):
        assert not [m for m in roots if m.startswith(host)], (host, r.out)
    assert " / / " in r.out and "/run" not in r.out, r.out


@pytest.mark.parametrize("isolation", ["process", "container"])
def test_no_host_cgroup_paths(isolation):
    """/proc/self/cgroup names the caller's cgroups (or hull's, with the
    supervisor's pid) unless the sandbox has a cgroup namespace of its own.
    hull runs from a cgroup of this test's, so the caller's is not "/"."""
    mounts = [Path(m) for m in cgroup_mounts() if Path(m).name == "pids"]
    if not mounts:
        pytest.skip("no v1 pids cgroup hierarchy")
    cg = mounts[0] / f"hull-sec-caller-{os.urandom(3).hex()}"
    cg.mkdir()
    try:
        r = subprocess.run(["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$0" sandbox run '
                            f'--isolation {isolation} -- cat /proc/self/cgroup', HULL],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout, r
        assert all(line.endswith(":/") for line in r.stdout.splitlines()), r.stdout
    finally:
        cg.rmdir()


def test_overwrite_exe_and_hull_binary(hostile, hull_hash, open_tmp):
    """CVE-2019-5736: the sandbox's init is the hull binary (/proc/1/exe);
    the program cannot open it. The hull binary itself, bound read-only,
    cannot be written, truncated, replaced or chmod-ed either."""
    hull_dir = open_tmp / "hullbin"
    hull_dir.mkdir()
    # The real binary when it can be linked here (same filesystem), else a copy.
    try:
        os.link(HULL, hull_dir / "hull")
    except OSError:
        shutil.copy2(HULL, hull_dir / "hull")
    r, res = hostile("exe", "/hullbin/hull", "/tmp/hostile",
                     opts=("--bind", f"{hull_dir}:/hullbin"))
    assert r.verdict == "ok", r
    assert res["open_self_exe_w"][1] == "ETXTBSY" and res["open_self_exe_rw"][1] == "ETXTBSY"
    assert res["open_proc1_exe_w"][1] == "EACCES" and res["open_proc1_exe_path"][1] == "EACCES"
    hull_lines = r.out.split("open_w")[1]  # the first target: /hullbin/hull
    for name in ("open_trunc", "chmod", "unlink", "rename", "truncate"):
        line = [l for l in hull_lines.splitlines() if l.startswith(name)][0]
        assert line.split()[1] == "-1" and line.split()[2] in ("EROFS", "EACCES", "EPERM",
                                                              "ETXTBSY"), line
    assert sha256(HULL) == hull_hash
    assert sha256(hull_dir / "hull") == hull_hash


def test_no_leaked_fds(hostile, bins, open_tmp):
    """CVE-2024-21626: only 0, 1 and 2 are open, none is a host directory or
    cgroup, the cwd is the sandbox's -- also with --copy-in and --stdin FILE,
    which put more fds in play in the runtime."""
    f = open_tmp / "in.txt"
    f.write_text("x")
    for opts in ((), ("--stdin", str(f), "--copy-in", f"{f}:/tmp/in.txt")):
        r, res = hostile("fds", opts=opts)
        assert r.verdict == "ok", r
        fds = [l.split() for l in r.out.splitlines() if l.startswith("fd ")]
        assert [fd[1] for fd in fds] == ["0", "1", "2"], r.out
        assert all(fd[2] == "other" for fd in fds), r.out
        # --stdin FILE arrives through a pipe hull feeds, never the host file.
        assert fds[0][3] == "/dev/null" if not opts else fds[0][3].startswith("pipe:"), fds
        assert fds[1][3].startswith("pipe:") and fds[2][3].startswith("pipe:"), fds
        assert "cwd /tmp" in r.out
        for name in ("readlink_proc1_exe", "open_proc1_exe", "open_proc1_fd", "open_proc1_root",
                     "open_proc1_cwd"):
            assert res[name] == ("-1", "EACCES"), (name, res.get(name))


def test_setuid_binaries(sb, bins):
    """A setuid-root whoami and /bin/id, bound in (nosuid) or copied into
    /tmp (nosuid, and owned by the sandbox user there): never euid 0.
    The host's own setuid binaries in /usr do not help either."""
    r = sb("--bind", f"{bins / 'suid'}:/suid", cmd=[
        "sh", "-c", "ls -l /suid/whoami | cut -c1-10; /suid/whoami; /suid/id -u; "
        "cp /suid/whoami /tmp/w && chmod 4755 /tmp/w && /tmp/w; "
        "/usr/bin/newgrp root </dev/null 2>&1 | head -1; "
        "/usr/bin/mount -t tmpfs none /tmp 2>&1 | head -1; id -u"])
    lines = r.out.splitlines()
    assert lines[0] == "-rwsr-xr-x", r
    assert lines[1] == "1000 1000 1000" and lines[2] == "1000" and lines[3] == "1000 1000 1000"
    assert lines[-1] == "1000"
    # A setuid-root /bin/id copied into /tmp arrives without the bit.
    r = sb("--copy-in", f"{bins / 'suid' / 'id'}:/tmp/id",
           cmd=["sh", "-c", "ls -l /tmp/id | cut -c1-10; /tmp/id -u"])
    assert r.out.splitlines() == ["-rwxr-xr-x", "1000"], r
    # nosuid on every place a setuid binary could come from
    mounts = sb("--bind", f"{bins / 'suid'}:/suid", cmd=["cat", "/proc/self/mountinfo"]).out
    for mp in ("/suid", "/tmp", "/usr"):
        opts = [l.split()[5] for l in mounts.splitlines() if l.split()[4] == mp][0]
        assert "nosuid" in opts.split(","), (mp, opts)


# ---- --copy-out ----------------------------------------------------------------------


def copy_out(sb, script, host_target, sandbox_path="/tmp/out"):
    return sb("--copy-out", f"{sandbox_path}:{host_target}", cmd=["sh", "-c", script])


def test_copy_out_symlink_to_shadow(sb, open_tmp):
    shadow = sha256("/etc/shadow")
    t = open_tmp / "out"
    r = copy_out(sb, "ln -s /etc/shadow /tmp/out", t)
    assert "not a regular file" in r.j["files"][0]["error"], r
    assert not t.exists() and not t.is_symlink()
    assert sha256("/etc/shadow") == shadow
    assert os.listdir(open_tmp) == []


def test_copy_out_through_a_symlinked_directory(sb, open_tmp):
    t = open_tmp / "out"
    for script in ("ln -s /etc /tmp/d", "ln -s ../../../../etc /tmp/d",
                   "mkdir /tmp/d && ln -s /root /tmp/d/x"):
        path = "/tmp/d/passwd" if "/tmp/d/x" not in script else "/tmp/d/x/.bashrc"
        r = copy_out(sb, script, t, sandbox_path=path)
        assert "error" in r.j["files"][0], (script, r)
        assert not t.exists(), script
    assert os.listdir(open_tmp) == []


def test_copy_out_directory_swapped_for_a_symlink(sb, open_tmp):
    """While the main process writes /tmp/d/out, a child keeps swapping
    the directory /tmp/d for a symlink to /etc. The run ends, every process
    is dead, then the copy happens: it gets the regular file or refuses."""
    t = open_tmp / "out"
    script = ("mkdir -p /tmp/real && echo mine > /tmp/real/passwd && "
              "(while :; do ln -sfn /etc /tmp/d; ln -sfn /tmp/real /tmp/d; "
              " rm -f /tmp/d; mv /tmp/real /tmp/d 2>/dev/null; mv /tmp/d /tmp/real 2>/dev/null;"
              " done) & sleep 0.3")
    for _ in range(3):
        r = copy_out(sb, script, t, sandbox_path="/tmp/d/passwd")
        f = r.j["files"][0]
        if "error" in f:
            assert not t.exists()
        else:
            assert t.read_text() == "mine\n", r
            t.unlink()


def test_copy_out_hard_link(sb, open_tmp):
    t = open_tmp / "out"
    r = copy_out(sb, "echo x > /tmp/a && ln /tmp/a /tmp/out", t)
    assert "hard links" in r.j["files"][0]["error"], r
    assert not t.exists()


def test_copy_out_fifo_and_directory(sb, open_tmp):
    t = open_tmp / "out"
    r = copy_out(sb, "mkfifo /tmp/out", t)
    assert "not a regular file" in r.j["files"][0]["error"], r
    r = copy_out(sb, "mkdir /tmp/out", t)
    assert "not a regular file" in r.j["files"][0]["error"], r
    assert not t.exists()


def test_copy_out_host_target_is_a_symlink(sb, open_tmp):
    """The host target is a symlink to a file elsewhere: the copy replaces
    the link; the file it pointed to is unchanged."""
    outside = open_tmp / "precious"
    outside.write_text("precious\n")
    t = open_tmp / "target"
    t.symlink_to(outside)
    r = copy_out(sb, "echo evil > /tmp/out", t)
    assert "error" not in r.j["files"][0], r
    assert outside.read_text() == "precious\n"
    assert not t.is_symlink() and t.read_text() == "evil\n"


def test_copy_out_host_target_is_a_hard_link(sb, open_tmp):
    outside = open_tmp / "precious"
    outside.write_text("precious\n")
    t = open_tmp / "target"
    os.link(outside, t)
    copy_out(sb, "echo evil > /tmp/out", t)
    assert outside.read_text() == "precious\n" and t.read_text() == "evil\n"


def test_copy_out_file_owned_by_sandbox_is_not_setuid_on_host(sb, open_tmp):
    t = open_tmp / "out"
    r = copy_out(sb, "cp /bin/true /tmp/out && chmod 6755 /tmp/out", t)
    assert "error" not in r.j["files"][0], r
    st = t.stat()
    assert st.st_mode & 0o6000 == 0 and st.st_uid == 0
    assert st.st_uid != HOST_UID
