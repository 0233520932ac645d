"""`hull exec`, checked from the host: the exec'd process is in every
namespace and cgroup of the container's init and has its seccomp filter,
capabilities and rlimits; each option lands in the process's kernel state;
the exit status passes through; an exec into a stopped or paused container,
or of a missing program, is refused clearly with nothing left behind.
"""
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
import subprocess
from pathlib import Path

import pytest

from conftest import pid_alive, wait_until
from rt4 import (ConsoleListener, LAYOUT, assert_error, assert_nothing_left, cgroup_of, dump,
                 ns_inodes, proc_status, read_until, running)


def exec_detached(hull, c, tmp_path, *args, opts=()):
    """exec --detach --pid-file; returns the exec'd process's host pid."""
    pidfile = tmp_path / f"exec{len(list(tmp_path.glob('exec*.pid')))}.pid"
    r = hull("exec", "--detach", "--pid-file", str(pidfile), *opts, c, *args)
    assert r.returncode == 0, r
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    return pid


@pytest.mark.asan
def test_exec_args_output_and_exit_status(hull, bundle):
    with running(hull, bundle) as (c, _):
        r = hull("exec", c, "sh", "-c", "echo out; echo err >&2; exit 7")
        assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
        r = hull("exec", c, "--", "sh", "-c", "kill -TERM $$")
        assert r.returncode == 128 + signal.SIGTERM
        assert hull("exec", c, "true").returncode == 0


@pytest.mark.asan
def test_exec_shares_every_namespace_and_cgroup_of_the_init(hull, bundle, tmp_path):
    bundle.linux["namespaces"].append({"type": "time"})
    with running(hull, bundle) as (c, init):
        pid = exec_detached(hull, c, tmp_path, "sleep", "999")
        assert ns_inodes(pid) == ns_inodes(init)
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
        # it is listed in the container's cgroup, in every joined hierarchy
        for ctrl in ("memory", "pids", "freezer"):
            d = Path(LAYOUT["v1"][ctrl] + cgroup_of(init, ctrl))
            assert str(pid) in (d / "cgroup.procs").read_text().split(), ctrl
        # and sees the container's root and its pid namespace
        assert os.readlink(f"/proc/{pid}/root") == "/"
        assert os.stat(f"/proc/{pid}/root/bin/busybox").st_ino == \
            os.stat(bundle.rootfs / "bin" / "busybox").st_ino
        assert proc_status(pid)["NSpid"].split()[1] != "1"
        hull("kill", c, "KILL", check=True)


@contextlib.contextmanager
def traversable(path):
    """Let a uid mapped from 100000 reach the bundle (pytest's dirs are 0700)
    for the length of a test; the modes are put back, since other tests
    rely on those directories being unreachable."""
    changed = []
    try:
        for d in [path, *path.parents]:
            if d == Path("/tmp"):
                break
            mode = d.stat().st_mode
            changed.append((d, mode))
            d.chmod(mode | 0o711)
        yield
    finally:
        for d, mode in reversed(changed):
            d.chmod(mode & 0o7777)


def test_exec_shares_a_user_namespace(hull, bundle, tmp_path):
    with traversable(tmp_path):
        _exec_shares_a_user_namespace(hull, bundle, tmp_path)


def _exec_shares_a_user_namespace(hull, bundle, tmp_path):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(bundle.rootfs, 100000, 100000)
    with running(hull, bundle) as (c, init):
        pid = exec_detached(hull, c, tmp_path, "sleep", "999")
        assert ns_inodes(pid) == ns_inodes(init)
        assert proc_status(pid)["Uid"].split()[0] == "100000"
        r = hull("exec", c, "id", "-u")
        assert r.stdout.strip() == "0", r


def test_exec_has_the_containers_seccomp_caps_rlimits_nnp(hull, bundle, tmp_path):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512},
                                 {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200}]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    bundle.config["root"]["readonly"] = False
    with running(hull, bundle) as (c, init):
        pid = exec_detached(hull, c, tmp_path, "sleep", "999")
        s, si = proc_status(pid), proc_status(init)
        assert s["Seccomp"] == "2" and s["Seccomp_filters"] == si["Seccomp_filters"] == "1"
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
            assert s[k] == si[k], k
        assert s["NoNewPrivs"] == "1"
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert limits == Path(f"/proc/{init}/limits").read_text()
        assert [ln.split()[-3:-1] for ln in limits.splitlines() if "open files" in ln] == \
            [["512", "1024"]]
        # the filter bites the exec'd process
        r = hull("exec", c, "mkdir", "/tmp/x")
        assert r.returncode != 0 and os.strerror(errno.EXDEV) in r.stderr, r
        assert not (bundle.rootfs / "tmp" / "x").exists()


def test_exec_process_file(hull, bundle, tmp_path):
    proc = {
        "terminal": False, "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 7]},
        "args": ["sh", "-c", "echo $0 $1 $FOO; pwd; id -u; id -g; id -G", "arg1"],
        "env": ["PATH=/bin", "FOO=from-file"], "cwd": "/tmp",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "permitted": []},
        "noNewPrivileges": True,
    }
    with running(hull, bundle) as (c, _):
        r = hull("exec", "--process", dump(proc, tmp_path / "p.json"), c)
        assert r.returncode == 0, r
        # sh -c SCRIPT ARG: ARG is $0
        assert r.stdout.split("\n")[:5] == ["arg1 from-file", "/tmp", "1000", "1000",
                                            "1000 5 7"]
        # the file replaces the container's process: only its caps
        proc["args"] = ["sh", "-c", "grep CapBnd /proc/self/status"]
        r = hull("exec", "-p", dump(proc, tmp_path / "p.json"), c)
        assert r.stdout.split()[1] == f"{1 << 5:016x}", r


@pytest.mark.parametrize("own_caps", [True, False])
def test_exec_process_file_without_capabilities_gets_the_containers(hull, bundle, tmp_path,
                                                                    own_caps):
    """A --process file without capabilities runs with the container's
    (as runc), not with the full set of the root that runs hull."""
    if not own_caps:
        del bundle.process["capabilities"]
    proc = {"args": ["grep", "Cap", "/proc/self/status"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}
    with running(hull, bundle) as (c, init):
        r = hull("exec", "--process", dump(proc, tmp_path / "p.json"), c)
        assert r.returncode == 0, r
        got = dict(line.split(":\t") for line in r.stdout.splitlines())
        want = proc_status(init)
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert got[k] == want[k], (k, got[k], want[k])
        assert int(got["CapBnd"], 16) == (0x20000420 if own_caps else 0)


def _oom_score_adj(value):
    def set_own():
        Path("/proc/self/oom_score_adj").write_text(str(value))
    return set_own


def test_exec_gets_the_containers_oom_score_adj_not_the_callers(hull, bundle, tmp_path):
    """An exec'd process has process.oomScoreAdj: the container's (as runc),
    or its --process file's own, never that of whoever ran hull (older
    conmon runs the runtime at -1000; here the caller is at 300)."""
    bundle.process["oomScoreAdj"] = 500
    with running(hull, bundle) as (c, init):
        r = hull("exec", c, "cat", "/proc/self/oom_score_adj", preexec_fn=_oom_score_adj(300))
        assert (r.returncode, r.stdout) == (0, "500\n"), r
        proc = {"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "env": ["PATH=/bin"],
                "user": {"uid": 0, "gid": 0}}
        r = hull("exec", "-p", dump(proc, tmp_path / "p.json"), c,
                 preexec_fn=_oom_score_adj(300))
        assert (r.returncode, r.stdout) == (0, "500\n"), r
        proc["oomScoreAdj"] = 100
        r = hull("exec", "-p", dump(proc, tmp_path / "p.json"), c,
                 preexec_fn=_oom_score_adj(300))
        assert (r.returncode, r.stdout) == (0, "100\n"), r


@pytest.mark.parametrize("proc, fragment", [
    ({"args": ["true"], "cwd": "/"}, None),  # a minimal process is fine
    ({"cwd": "/"}, "--process"),
    ({"args": ["true"], "cwd": "relative"}, "process.cwd"),
    ({"args": ["true"], "cwd": "/", "user": {"uid": "x"}}, "process.user.uid"),
])
def test_exec_process_file_validated(hull, bundle, tmp_path, proc, fragment):
    with running(hull, bundle) as (c, _):
        r = hull("exec", "--process", dump(proc, tmp_path / "p.json"), c)
        if fragment is None:
            assert r.returncode == 0, r
        else:
            assert_error(r, f"exec {c}", fragment)
        r = hull("exec", "--process", str(tmp_path / "missing.json"), c)
        assert_error(r, f"exec {c}", "--process", "missing.json")


def test_exec_options_land_in_the_process(hull, bundle, tmp_path):
    bundle.process["noNewPrivileges"] = False
    bundle.process["env"].append("KEEP=1")
    with running(hull, bundle) as (c, init):
        r = hull("exec", "--cwd", "/etc", "--env", "FOO=bar", "-e", "TERM=dumb",
                 "--user", "1000:1000", "--additional-gids", "5", "-g", "9",
                 c, "sh", "-c", "pwd; echo $FOO $TERM $KEEP $HOME; id -u; id -g; id -G")
        assert r.returncode == 0, r
        assert r.stdout.splitlines() == ["/etc", "bar dumb 1 /home/user", "1000", "1000",
                                         "1000 5 9"]
        # --cap adds to every set, --no-new-privs sets the flag; from the host
        pid = exec_detached(hull, c, tmp_path, "sleep", "999",
                            opts=("--cap", "CAP_SYS_ADMIN", "--no-new-privs"))
        s = proc_status(pid)
        sys_admin = 1 << 21
        for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(s[k], 16) & sys_admin, k
        assert not int(proc_status(init)["CapBnd"], 16) & sys_admin
        assert s["NoNewPrivs"] == "1" and proc_status(init)["NoNewPrivs"] == "0"
        # without options: the container's own user, env, cwd
        r = hull("exec", c, "sh", "-c", "pwd; id -u; echo $KEEP")
        assert r.stdout.split() == ["/", "0", "1"]


@pytest.mark.parametrize("opts, fragment", [
    (("--user", "abc"), "--user: 'abc' must be UID[:GID]"),
    (("--cwd", "rel"), "--cwd: 'rel' must be an absolute path"),
    (("--cwd", "/no/such/dir"), "process.cwd: /no/such/dir"),
    (("--env", "NOEQUALS"), "--env: 'NOEQUALS' must be KEY=VALUE"),
    (("--cap", "NONSENSE"), "--cap: 'NONSENSE' is not a capability name"),
    (("--additional-gids", "x"), "--additional-gids: 'x' is not a gid"),
    (("--tty", "--detach"), "needs --console-socket"),
    (("--detach", "--pid-file", "/no/such/dir/pid"), "--pid-file: /no/such/dir/pid"),
    (("--pid-file", "/no/such/dir/pid"), "--pid-file: /no/such/dir/pid"),
    (("--tty", "--console-socket", "/no/such.sock"), "--console-socket /no/such.sock"),
])
def test_exec_bad_options(hull, bundle, tmp_path, opts, fragment):
    with running(hull, bundle) as (c, init):
        before = set(map(int, Path(LAYOUT["v1"]["pids"] + cgroup_of(init, "pids"),
                                   "cgroup.procs").read_text().split()))
        r = hull("exec", *opts, c, "sleep", "999")
        assert_error(r, f"exec {c}", fragment)
        after = set(map(int, Path(LAYOUT["v1"]["pids"] + cgroup_of(init, "pids"),
                                  "cgroup.procs").read_text().split()))
        assert after == before == {init}


def test_exec_missing_binary(hull, bundle):
    with running(hull, bundle) as (c, init):
        r = hull("exec", c, "no-such-program")
        assert_error(r, f"exec {c}", 'exec: "no-such-program": executable file not found in $PATH')
        r = hull("exec", c, "/bin/nope")
        assert_error(r, f"exec {c}", '"/bin/nope": No such file or directory')
        assert cg_pids(init) == [init]


def cg_pids(init):
    return sorted(map(int, Path(LAYOUT["v1"]["pids"] + cgroup_of(init, "pids"),
                                "cgroup.procs").read_text().split()))


@pytest.mark.asan
def test_exec_into_stopped_or_paused_refused(hull, bundle):
    with running(hull, bundle) as (c, init):
        hull("pause", c, check=True)
        r = hull("exec", c, "true")
        assert_error(r, f"exec {c}", "cannot exec in a container that is paused")
        hull("resume", c, check=True)
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        r = hull("exec", c, "true")
        assert_error(r, f"exec {c}", "cannot exec in a container that is stopped")
    r = hull("exec", c, "true")
    assert_error(r, f"exec {c}", "does not exist")


def test_exec_into_a_created_container(hull, bundle):
    """runc allows exec before start; the exec'd process runs in the init's
    namespaces while the init still waits."""
    with running(hull, bundle, start=False) as (c, init):
        r = hull("exec", c, "sh", "-c", "hostname")
        assert r.stdout.strip() == "hull", r
        assert hull.state(c)["status"] == "created"


def test_exec_tty_with_console_socket(hull, bundle, tmp_path):
    with running(hull, bundle) as (c, init):
        lst = ConsoleListener(tmp_path / "console.sock")
        try:
            pidfile = tmp_path / "tty.pid"
            r = hull("exec", "--tty", "--detach", "--console-socket", str(lst.path),
                     "--pid-file", str(pidfile), c,
                     "sh", "-c", "tty; read line; echo got:$line; sleep 999")
            assert r.returncode == 0, r
            m = lst.master()
            pid = int(pidfile.read_text())
            out = read_until(m, "\n")
            assert out.strip().startswith("/dev/pts/"), out
            os.write(m, b"hello\n")
            assert "got:hello" in read_until(m, "got:hello")
            # the pty is the process's controlling terminal, in the container
            s = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            assert int(s[4]) != 0  # tty_nr
            assert os.readlink(f"/proc/{pid}/fd/0").startswith("/dev/pts/")
        finally:
            lst.close()


def test_exec_tty_foreground_through_a_test_pty(hull, bundle):
    """hull relays the pty: our terminal goes raw (one \r per line, the
    container's own), the container's starts at our window size."""
    with running(hull, bundle) as (c, init):
        master, slave = pty.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        try:
            p = subprocess.Popen(hull.cmd("exec", "-t", c, "sh", "-c", "tty; stty size; exit 3"),
                                 stdin=slave, stdout=slave, stderr=slave, close_fds=True)
            os.close(slave)
            out = read_until(master, "\n", timeout=20)
            assert p.wait(30) == 3
            out += read_until(master, "zzz", timeout=0.5)
        finally:
            os.close(master)
        assert "\r\r" not in out, out
        lines = out.split("\r\n")
        assert lines[0].startswith("/dev/pts/"), out
        assert lines[1] == "33 101", out


def test_exec_preserve_fds_and_no_leaks(hull, bundle, tmp_path):
    with running(hull, bundle) as (c, _):
        f = tmp_path / "shared"
        f.write_text("through fd 3\n")
        # fd 3 opened by a shell that then becomes hull
        r = subprocess.run(["sh", "-c", 'exec 3<"$0"; exec "$@"', str(f),
                            *hull.cmd("exec", "--preserve-fds", "1", c, "sh", "-c",
                                      "cat <&3; ls /proc/$$/fd; true")],
                           capture_output=True, text=True, timeout=60)
        lines = r.stdout.split()
        assert lines[:3] == ["through", "fd", "3"], r
        assert sorted(lines[3:]) == ["0", "1", "2", "3"], r


GONE = ("the container stopped", "does not exist", "container that is stopped")


def _assert_ran_or_gone(c, rc, out, err):
    """An exec racing its container's end: it ran (perhaps killed with the
    container), or one line says the container is gone."""
    if rc == 1:
        assert err.startswith(f"hull: exec {c}: ") and err.count("\n") == 1, err
        assert any(g in err for g in GONE), err
    else:
        assert rc in (0, 128 + signal.SIGKILL), (rc, out, err)


def test_exec_racing_delete_force_says_the_container_stopped(hull, bundle, tmp_path):
    """An exec that a `delete --force` overtakes while it joins the container
    either ran (and was killed with it) or fails with one line saying the
    container is gone -- never with the step of the join that met the
    dying namespace (`sync: send: Broken pipe`, `clone: Cannot allocate
    memory`). Repeated: the interleaving differs from round to round."""
    from hullrt import Background, cid
    bundle.set_args("sleep", "1000").write()
    for i in range(15):
        c = cid(f"x{i}")
        hull("create", "--bundle", str(bundle.path), c, check=True)
        hull("start", c, check=True)
        execs = [Background(hull, "exec", c, "sh", "-c", "echo hi; sleep 100") for _ in range(3)]
        rc, out, err = Background(hull, "delete", "--force", c).wait(60)
        assert (rc, err) == (0, ""), err
        for bg in execs:
            _assert_ran_or_gone(c, *bg.wait(60))
    assert_nothing_left(hull, tmp_path)


def test_exec_racing_the_inits_exit_says_the_container_stopped(hull, bundle, tmp_path):
    """The same when the init ends by itself while execs join it (its
    namespaces vanish under them: `open net namespace: No such file`)."""
    from hullrt import Background, cid
    bundle.set_args("sh", "-c", "usleep $((RANDOM % 60000))").write()
    for i in range(40):
        c = cid(f"y{i}")
        hull("create", "--bundle", str(bundle.path), c, check=True)
        hull("start", c, check=True)
        execs = [Background(hull, "exec", c, "true") for _ in range(3)]
        for bg in execs:
            _assert_ran_or_gone(c, *bg.wait(60))
        assert wait_until(lambda: hull.state(c)["status"] == "stopped", 60)
        hull("delete", c, check=True)
    assert_nothing_left(hull, tmp_path)
