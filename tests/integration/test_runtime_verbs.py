"""One test per verb of the runc-compatible command line (issue 3): spec,
create, start, run, state, kill, delete, list, --help, --version, --log,
--debug. Each drives build/hull and checks the kernel's view from the host."""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import pid_alive, reap_orphans, wait_until
from hullrt import (RFC3339, Background, ConsoleListener, assert_nothing_left, cid,
                    read_pty, started, wait_exec)

VERBS = ["spec", "create", "start", "run", "state", "kill", "delete", "list"]


def status_of(hull, c):
    return hull.state(c)["status"]


# ---- spec ---------------------------------------------------------------------

@pytest.mark.asan
def test_spec_writes_runc_defaults(hull, tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    r = hull("spec", "--bundle", str(d))
    assert r.returncode == 0, r
    c = json.loads((d / "config.json").read_text())
    assert c["ociVersion"].startswith("1.")
    p = c["process"]
    assert p["terminal"] is True
    assert p["args"] == ["sh"]
    assert p["cwd"] == "/"
    assert p["user"] == {"uid": 0, "gid": 0}
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in p["env"]
    default_caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    for s in ("bounding", "effective", "permitted"):
        assert p["capabilities"][s] == default_caps
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert p["noNewPrivileges"] is True
    assert c["root"] == {"path": "rootfs", "readonly": True}
    assert [m["destination"] for m in c["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    ns = [n["type"] for n in c["linux"]["namespaces"]]
    assert {"pid", "network", "ipc", "uts", "mount"} <= set(ns)
    assert "user" not in ns
    assert "/proc/kcore" in c["linux"]["maskedPaths"]
    assert "/proc/sys" in c["linux"]["readonlyPaths"]


def test_spec_matches_runc_spec(hull, tmp_path):
    """Field by field against `runc spec` where the two should agree."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    (tmp_path / "h").mkdir()
    (tmp_path / "r").mkdir()
    hull("spec", "--bundle", str(tmp_path / "h"), check=True)
    subprocess.run([runc, "spec", "--bundle", str(tmp_path / "r")], check=True)
    h = json.loads((tmp_path / "h/config.json").read_text())
    r = json.loads((tmp_path / "r/config.json").read_text())
    assert h["mounts"] == r["mounts"]
    assert h["root"] == r["root"]
    assert h["linux"]["maskedPaths"] == r["linux"]["maskedPaths"]
    assert h["linux"]["readonlyPaths"] == r["linux"]["readonlyPaths"]
    assert h["linux"]["resources"] == r["linux"]["resources"]
    for k in ("terminal", "user", "args", "env", "cwd", "rlimits", "noNewPrivileges"):
        assert h["process"][k] == r["process"][k], k
    for s in ("bounding", "effective", "permitted"):
        assert h["process"]["capabilities"][s] == r["process"]["capabilities"][s]


def test_spec_rootless_maps_the_caller(hull, tmp_path):
    hull("spec", "--rootless", "--bundle", str(tmp_path), check=True)
    c = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in c["linux"]["namespaces"]
    assert c["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert c["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]


@pytest.mark.asan
def test_spec_refuses_to_overwrite(hull, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text("mine")
    r = hull("spec", "--bundle", str(tmp_path))
    assert r.returncode != 0
    assert r.stderr == f"hull: spec: {cfg}: already exists (remove it first)\n"
    assert cfg.read_text() == "mine"


def test_spec_output_runs(hull, tmp_path, make_bundle):
    """What `hull spec` writes is a config hull runs (terminal turned off)."""
    b = make_bundle()
    (b.path / "config.json").unlink(missing_ok=True)
    hull("spec", "--bundle", str(b.path), check=True)
    c = json.loads((b.path / "config.json").read_text())
    c["process"]["terminal"] = False
    c["process"]["args"] = ["sh", "-c", "echo ok; hostname"]
    (b.path / "config.json").write_text(json.dumps(c))
    r = hull("run", "--bundle", str(b.path), cid())
    assert r.returncode == 0, r
    assert r.stdout.split() == ["ok", "hull"]


# ---- create -------------------------------------------------------------------

@pytest.mark.asan
def test_create_leaves_init_waiting(hull, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo started > /dev/shm/s; sleep 1000")
    with started(hull, bundle, start=False) as (c, pid):
        st = hull.state(c)
        assert st["status"] == "created"
        assert pid_alive(pid)
        # Namespaces exist already, the user program has not run.
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        assert Path(f"/proc/{pid}/comm").read_text().strip() != "sleep"
        assert not os.path.exists(f"/proc/{pid}/root/dev/shm/s")
        assert sorted(os.listdir(hull.root / c)) == ["exec.error", "exec.fifo", "state.json"]
    assert_nothing_left(hull, tmp_path)


@pytest.mark.asan
def test_create_pid_file(hull, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    pf = tmp_path / "sub" / "init.pid"
    pf.parent.mkdir()
    with started(hull, bundle, start=False, create_args=("--pid-file", str(pf))) as (c, pid):
        assert pf.read_text().strip() == str(pid)
        # Written atomically: nothing but the pid file in its directory.
        assert os.listdir(pf.parent) == ["init.pid"]


def test_create_relative_pid_file(hull, bundle, tmp_path):
    """A relative --pid-file is relative to hull's working directory."""
    bundle.set_args("sleep", "1000").write()
    c = cid()
    try:
        r = hull("create", "--pid-file", "rel.pid", "--bundle", str(bundle.path), c,
                 cwd=str(tmp_path))
        assert r.returncode == 0, r
        assert (tmp_path / "rel.pid").read_text() == str(hull.state(c)["pid"])
    finally:
        hull("delete", "--force", c)


def test_create_no_pivot(hull, bundle, tmp_path):
    """--no-pivot still gives the container its own root and mounts."""
    bundle.set_args("sh", "-c", "echo $$; ls /; hostname")
    bundle.write()
    r = hull("run", "--no-pivot", "--bundle", str(bundle.path), cid())
    assert r.returncode == 0, r
    out = r.stdout.split()
    assert out[0] == "1" and out[-1] == "hull"
    assert set(out[1:-1]) == set(os.listdir(bundle.rootfs))
    assert_nothing_left(hull, tmp_path)


def test_create_console_socket(hull, bundle, tmp_path):
    """--console-socket: the pty master arrives by SCM_RIGHTS and carries
    the container's output; the container's stdio is that pty."""
    bundle.set_args("sh", "-c", "echo out-$((6*7)); tty; [ -t 0 ] && echo stdin-is-tty")
    bundle.process["terminal"] = True
    lst = ConsoleListener(tmp_path / "console.sock")
    try:
        with started(hull, bundle, start=False,
                     create_args=("--console-socket", lst.path)) as (c, pid):
            name, fd = lst.receive()
            try:
                assert re.fullmatch(r"/dev/pts/\d+", name), name
                hull("start", c, check=True)
                out = read_pty(fd)
            finally:
                os.close(fd)
            assert "out-42" in out
            assert name in out  # `tty` names the same pty inside
            assert "stdin-is-tty" in out
            wait_until(lambda: hull.state(c)["status"] == "stopped")
    finally:
        lst.close()


def test_create_terminal_without_console_socket_refused(hull, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert r.returncode != 0
    assert "--console-socket" in r.stderr
    assert_nothing_left(hull, tmp_path)


def test_create_bundle_defaults_to_cwd_and_runc_flag_spellings(hull, bundle, tmp_path):
    """No --bundle means the working directory; runc's callers also write
    -bundle (Go flag style), -b and --bundle=DIR."""
    bundle.set_args("sleep", "1000").write()
    spellings = [(), ("-bundle", str(bundle.path)), ("-b", str(bundle.path)),
                 (f"--bundle={bundle.path}",)]
    for i, flags in enumerate(spellings):
        c = cid(f"b{i}")
        try:
            r = hull("create", *flags, c, cwd=str(bundle.path))
            assert r.returncode == 0, (flags, r)
            assert hull.state(c)["bundle"] == str(bundle.path)
        finally:
            hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path)


# ---- start --------------------------------------------------------------------

@pytest.mark.asan
def test_start_runs_the_process(hull, bundle):
    bundle.set_args("sleep", "1000")
    with started(hull, bundle) as (c, pid):
        # start returns once the program runs: no waiting here.
        assert Path(f"/proc/{pid}/comm").read_text() == "sleep\n"
        assert hull.state(c)["status"] == "running"
        assert hull.state(c)["pid"] == pid
        # start consumed the fifo: only state.json stays.
        assert os.listdir(hull.root / c) == ["state.json"]


def test_start_user_program_exit_makes_stopped(hull, bundle):
    bundle.set_args("true")
    with started(hull, bundle) as (c, pid):
        assert wait_until(lambda: status_of(hull, c) == "stopped")
        assert hull.state(c)["pid"] == 0


# ---- run ----------------------------------------------------------------------

@pytest.mark.asan
def test_run_exit_status(hull, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo out; echo err >&2; exit 7").write()
    r = hull("run", "--bundle", str(bundle.path), cid())
    assert r.returncode == 7
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    assert_nothing_left(hull, tmp_path)


def test_run_keep_leaves_the_container_stopped(hull, bundle, tmp_path):
    """run --keep (runc's): the container stays, stopped, with its state and
    cgroup; delete then removes it and runs the poststop hooks."""
    out = tmp_path / "poststop.out"
    bundle.config["hooks"] = {"poststop": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", f"cat > {out}"]}]}
    bundle.set_args("sh", "-c", "exit 7").write()
    c = cid()
    try:
        r = hull("run", "--keep", "--bundle", str(bundle.path), c)
        assert r.returncode == 7, r
        assert status_of(hull, c) == "stopped"
        assert not out.exists()
        assert hull("delete", c).returncode == 0
        assert json.loads(out.read_text())["status"] == "stopped"
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path)
    # --keep is run's: create refuses it
    r = hull("create", "--keep", "--bundle", str(bundle.path), c)
    assert r.returncode != 0 and not (hull.root / c).exists(), r


def test_run_reads_stdin(hull, bundle):
    bundle.set_args("sh", "-c", "read x; echo got-$x").write()
    r = hull("run", "--bundle", str(bundle.path), cid(), input="abc\n")
    assert r.returncode == 0, r
    assert r.stdout == "got-abc\n"


def _wait_running(hull, c):
    assert wait_until(lambda: (hull.root / c / "state.json").exists()
                      and status_of(hull, c) == "running")


@pytest.mark.parametrize("action", [("kill", "{c}", "KILL"), ("delete", "--force", "{c}")])
def test_run_killed_from_outside_exits_128_plus_signal(hull, bundle, tmp_path, action):
    """A foreground run whose container is killed (or deleted with --force)
    by another hull ends with 128+9 and leaves nothing, state included."""
    bundle.set_args("sleep", "1000").write()
    c = cid()
    bg = Background(hull, "run", "--bundle", str(bundle.path), c)
    try:
        _wait_running(hull, c)
        hull(*[a.format(c=c) for a in action], check=True)
        rc, out, err = bg.wait()
        assert rc == 128 + signal.SIGKILL, (rc, out, err)
        assert err == ""
    finally:
        bg.kill()
    assert_nothing_left(hull, tmp_path)


def _run_with_trap(hull, bundle, script, namespaces=None):
    bundle.set_args("sh", "-c", script)
    if namespaces is not None:
        bundle.linux["namespaces"] = [{"type": t} for t in namespaces]
    bundle.write()
    c = cid()
    bg = Background(hull, "run", "--bundle", str(bundle.path), c)
    return c, bg


def _ignore_some_signals():
    for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2, signal.SIGRTMIN + 3, signal.SIGRTMAX):
        signal.signal(s, signal.SIG_IGN)


@pytest.mark.parametrize("verb", ["run", "create"])
def test_signals_the_caller_ignored_are_default_in_the_container(hull, bundle, tmp_path, verb):
    """Ignored dispositions survive execve; hull's init sets back exactly
    those its caller ignored (standard and real-time), and blocks nothing."""
    c = cid("sig")
    if verb == "run":
        # grep as sh's child, not exec'd in its place: busybox sh, the
        # container's init, ignores SIGQUIT itself.
        bundle.set_args("sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; true").write()
        r = hull("run", "--bundle", str(bundle.path), c, preexec_fn=_ignore_some_signals)
        assert r.returncode == 0, r
        out = r.stdout
    else:
        bundle.set_args("sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status > /dev/shm/sig; "
                        "sleep 100").write()
        hull("create", "--bundle", str(bundle.path), c, preexec_fn=_ignore_some_signals,
             check=True)
        try:
            hull("start", c, preexec_fn=_ignore_some_signals, check=True)
            pid = hull.state(c)["pid"]
            assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/dev/shm/sig") and
                              Path(f"/proc/{pid}/root/dev/shm/sig").read_text().count("\n") == 2)
            out = Path(f"/proc/{pid}/root/dev/shm/sig").read_text()
        finally:
            hull("delete", "--force", c)
    assert out.split("\n")[:2] == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"], out
    assert_nothing_left(hull, tmp_path)


def test_run_forwards_signals(hull, bundle, tmp_path):
    """Signals sent to the foreground hull reach the container's init."""
    script = ("trap 'echo got-usr1' USR1; trap 'echo got-term; exit 3' TERM; "
              "echo ready > /dev/shm/ready; while :; do sleep 0.05; done")
    c, bg = _run_with_trap(hull, bundle, script)
    try:
        def ready():
            st = hull.state(c) if (hull.root / c / "state.json").exists() else None
            return st and st["status"] == "running" and \
                os.path.exists(f"/proc/{st['pid']}/root/dev/shm/ready")
        assert wait_until(ready)
        bg.p.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: "got-usr1" in bg.read()[0])
        bg.p.send_signal(signal.SIGTERM)
        rc, out, err = bg.wait()
        assert rc == 3, (rc, out, err)
        assert out.split() == ["got-usr1", "got-term"]
    finally:
        bg.kill()
    assert_nothing_left(hull, tmp_path)


def test_run_forwarded_sigterm_kills_untrapped_process(hull, bundle, tmp_path):
    """Without a pid namespace the process has default dispositions, so a
    forwarded SIGTERM ends it and hull exits 128+15."""
    ns = ["network", "ipc", "uts", "mount"]
    c, bg = _run_with_trap(hull, bundle, "exec sleep 1000", namespaces=ns)
    try:
        def sleeping():
            if not (hull.root / c / "state.json").exists():
                return False
            st = hull.state(c)
            try:
                return Path(f"/proc/{st['pid']}/comm").read_text().strip() == "sleep"
            except OSError:
                return False
        assert wait_until(sleeping)
        bg.p.send_signal(signal.SIGTERM)
        rc, out, err = bg.wait()
        assert rc == 128 + signal.SIGTERM, (rc, out, err)
    finally:
        bg.kill()
    assert_nothing_left(hull, tmp_path)


@pytest.mark.asan
def test_run_detach(hull, bundle, tmp_path):
    bundle.set_args("sleep", "1000").write()
    c = cid()
    pf = tmp_path / "pid"
    r = hull("run", "--detach", "--pid-file", str(pf), "--bundle", str(bundle.path), c)
    try:
        assert r.returncode == 0, r
        st = hull.state(c)
        assert st["status"] == "running"
        assert pf.read_text().strip() == str(st["pid"])
        wait_exec(st["pid"], "sleep")
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path)


def test_run_pid_file_foreground(hull, bundle, tmp_path):
    pf = tmp_path / "pid"
    bundle.set_args("sh", "-c", "echo $$").write()
    r = hull("run", "--pid-file", str(pf), "--bundle", str(bundle.path), cid())
    assert r.returncode == 0, r
    assert int(pf.read_text()) > 1  # host pid, not the container's 1
    assert r.stdout == "1\n"


# ---- state --------------------------------------------------------------------

@pytest.mark.asan
def test_state_json_fields(hull, bundle):
    bundle.set_args("sleep", "1000")
    bundle.config["annotations"] = {"org.example.key": "value", "other": "x y"}
    with started(hull, bundle, start=False) as (c, pid):
        st = hull.state(c)
        assert st["ociVersion"] == bundle.config["ociVersion"]
        assert st["id"] == c
        assert st["pid"] == pid
        assert st["status"] == "created"
        assert st["bundle"] == str(bundle.path)
        assert RFC3339.match(st["created"]), st["created"]
        assert st["annotations"] == {"org.example.key": "value", "other": "x y"}
        hull("start", c, check=True)
        assert hull.state(c)["status"] == "running"
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        assert hull.state(c)["pid"] == 0
        assert hull.state(c)["created"] == st["created"]


# ---- kill ---------------------------------------------------------------------

TRAPS = ("for s in HUP USR1 USR2 TERM 37 40; do trap \"echo $s >> /dev/shm/log\" $s; done; "
         "echo ready > /dev/shm/ready; while :; do sleep 0.02; done")


@pytest.mark.parametrize("given,expect", [
    ("USR1", "USR1"), ("SIGUSR2", "USR2"), ("1", "HUP"), ("sigterm", "TERM"),
    ("RTMIN+3", "37"), ("SIGRTMIN+6", "40"), ("12", "USR2"),
])
def test_kill_signal_names_and_numbers(hull, bundle, given, expect):
    assert signal.SIGRTMIN == 34  # glibc's, which the trap numbers assume
    bundle.set_args("sh", "-c", TRAPS)
    with started(hull, bundle) as (c, pid):
        log = Path(f"/proc/{pid}/root/dev/shm/log")
        assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/dev/shm/ready"))
        hull("kill", c, given, check=True)
        assert wait_until(lambda: log.exists() and log.read_text().split() == [expect])


@pytest.mark.asan
def test_kill_default_is_term(hull, bundle):
    bundle.set_args("sh", "-c", TRAPS)
    with started(hull, bundle) as (c, pid):
        log = Path(f"/proc/{pid}/root/dev/shm/log")
        assert wait_until(lambda: os.path.exists(f"/proc/{pid}/root/dev/shm/ready"))
        hull("kill", c, check=True)
        assert wait_until(lambda: log.exists() and log.read_text().split() == ["TERM"])


def test_kill_9_stops(hull, bundle):
    bundle.set_args("sleep", "1000")
    with started(hull, bundle) as (c, pid):
        hull("kill", c, "9", check=True)
        assert wait_until(lambda: status_of(hull, c) == "stopped")
        assert not pid_alive(pid)


def test_kill_created_container(hull, bundle):
    """runc lets kill reach a created container (podman stops them so)."""
    bundle.set_args("sleep", "1000")
    with started(hull, bundle, start=False) as (c, pid):
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: status_of(hull, c) == "stopped")


def _children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("pidns", [True, False])
def test_kill_all(hull, bundle, pidns):
    """--all reaches every process of the container; without a pid
    namespace (where the init's death takes nobody with it) through the
    container's cgroup."""
    if not pidns:
        bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                      if n["type"] != "pid"]
    bundle.set_args("sh", "-c", "setsid sleep 1000 & sleep 1000 & wait")
    with started(hull, bundle) as (c, pid):
        assert wait_until(lambda: len(_children_of(pid)) == 2)
        kids = _children_of(pid)
        # runc's callers put --all before or after the arguments.
        args = ("--all", c, "KILL") if pidns else (c, "KILL", "--all")
        hull("kill", *args, check=True)
        assert wait_until(lambda: (reap_orphans(),
                                   not any(pid_alive(p) for p in [pid] + kids))[1])
        assert status_of(hull, c) == "stopped"


# ---- delete -------------------------------------------------------------------

@pytest.mark.asan
def test_delete_stopped(hull, bundle, tmp_path):
    bundle.set_args("true").write()
    c = cid()
    hull("create", "--bundle", str(bundle.path), c, check=True)
    hull("start", c, check=True)
    assert wait_until(lambda: status_of(hull, c) == "stopped")
    r = hull("delete", c)
    assert r.returncode == 0 and r.stderr == "", r
    assert not (hull.root / c).exists()
    assert_nothing_left(hull, tmp_path)


@pytest.mark.asan
def test_delete_created(hull, bundle, tmp_path):
    bundle.set_args("sleep", "1000").write()
    c = cid()
    hull("create", "--bundle", str(bundle.path), c, check=True)
    pid = hull.state(c)["pid"]
    r = hull("delete", c)
    assert r.returncode == 0, r
    assert wait_until(lambda: not pid_alive(pid))
    assert_nothing_left(hull, tmp_path)


def test_delete_running_refused_then_forced(hull, bundle, tmp_path):
    bundle.set_args("sleep", "1000").write()
    c = cid()
    hull("create", "--bundle", str(bundle.path), c, check=True)
    hull("start", c, check=True)
    pid = hull.state(c)["pid"]
    r = hull("delete", c)
    assert r.returncode != 0
    assert r.stderr == (f"hull: delete {c}: cannot delete a container that is running "
                        "(stop it or use --force)\n")
    assert pid_alive(pid) and hull.state(c)["status"] == "running"
    r = hull("delete", "--force", c)
    assert r.returncode == 0, r
    assert not pid_alive(pid)
    assert_nothing_left(hull, tmp_path)


@pytest.mark.asan
def test_delete_force_unknown_is_ok(hull, tmp_path):
    r = hull("delete", "--force", cid("never"))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    assert_nothing_left(hull, tmp_path)


# ---- list ---------------------------------------------------------------------

@pytest.mark.asan
def test_list_formats(hull, make_bundle):
    a, b = make_bundle(), make_bundle()
    a.set_args("sleep", "1000")
    b.set_args("sleep", "1000")
    with started(hull, a, "la", start=False) as (ca, pa), started(hull, b, "lb") as (cb, pb):
        r = hull("list", check=True)
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        rows = [line.split() for line in lines[1:]]
        assert [(x[0], int(x[1]), x[2], x[3], x[5]) for x in rows] == [
            (ca, pa, "created", str(a.path), "root"), (cb, pb, "running", str(b.path), "root")]

        r = hull("list", "--format", "json", check=True)
        js = json.loads(r.stdout)
        assert [(x["id"], x["pid"], x["status"], x["bundle"]) for x in js] == [
            (ca, pa, "created", str(a.path)), (cb, pb, "running", str(b.path))]
        assert all(RFC3339.match(x["created"]) for x in js)

        r = hull("list", "-q", check=True)
        assert r.stdout == f"{ca}\n{cb}\n"


@pytest.mark.asan
def test_list_empty(hull):
    r = hull("list", check=True)
    assert r.stdout.splitlines()[0].split()[0] == "ID"
    assert len(r.stdout.splitlines()) == 1
    assert json.loads(hull("list", "--format", "json", check=True).stdout) == []
    assert hull("list", "-q", check=True).stdout == ""


def test_list_bad_format(hull):
    r = hull("list", "--format", "yaml")
    assert r.returncode != 0
    assert r.stderr.startswith("hull: list: --format: unknown format 'yaml'")


# ---- --help, --version, --log, --debug ----------------------------------------

@pytest.mark.parametrize("verb", VERBS)
def test_help_for_every_verb(hull, verb):
    r = hull(verb, "--help")
    assert r.returncode == 0, r
    assert r.stdout.startswith(f"usage: hull {verb}"), r.stdout
    assert r.stderr == ""


def test_global_help_lists_every_verb(hull):
    r = hull("--help")
    assert r.returncode == 0
    listed = [line.split()[0] for line in r.stdout.split("Commands:\n")[1].split("\n\n")[0]
              .splitlines()]
    assert set(VERBS) <= set(listed)


@pytest.mark.asan
def test_version(hull):
    r = hull("--version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"hull version \d+\.\d+\.\d+", lines[0]), lines
    assert re.fullmatch(r"spec: 1\.\d+\.\d+", lines[1]), lines


@pytest.mark.asan
def test_log_json_errors(hull, bundle, tmp_path):
    log = tmp_path / "log.json"
    g = ("--log", str(log), "--log-format", "json")
    c = cid("nope")
    assert hull("start", c, global_args=g).returncode != 0
    assert hull("state", c, global_args=g).returncode != 0
    assert hull("kill", c, "NOSUCHSIG", global_args=g).returncode != 0
    bundle.config["ociVersion"] = "2.0.0"
    bundle.write()
    assert hull("create", "--bundle", str(bundle.path), c, global_args=g).returncode != 0
    lines = log.read_text().splitlines()
    objs = [json.loads(x) for x in lines]
    assert [o["level"] for o in objs] == ["error"] * 4
    assert all(RFC3339.match(o["time"]) for o in objs)
    assert objs[0]["msg"] == f"start {c}: container '{c}' does not exist"
    assert objs[1]["msg"] == f"state {c}: container '{c}' does not exist"
    assert objs[2]["msg"] == f"kill {c}: unknown signal 'NOSUCHSIG'"
    assert objs[3]["msg"].startswith(f"create {c}: config.json: ociVersion: ")


def test_log_text_file(hull, tmp_path):
    log = tmp_path / "log.txt"
    c = cid("nope")
    r = hull("start", c, global_args=("--log", str(log)))
    assert r.returncode != 0
    assert log.read_text() == f"hull: start {c}: container '{c}' does not exist\n"


def test_log_bad_format(hull, tmp_path):
    r = hull("list", global_args=("--log-format", "xml"))
    assert r.returncode != 0
    assert r.stderr == "hull: --log-format: unknown format 'xml' (text or json)\n"


def test_debug_logs_lifecycle(hull, bundle, tmp_path):
    bundle.set_args("true").write()
    log = tmp_path / "debug.json"
    c = cid()
    g = ("--debug", "--log", str(log), "--log-format", "json")
    r = hull("run", "--bundle", str(bundle.path), c, global_args=g)
    assert r.returncode == 0, r
    objs = [json.loads(x) for x in log.read_text().splitlines()]
    debug = [o["msg"] for o in objs if o["level"] == "debug"]
    assert any(c in m for m in debug), debug
    # Without --debug, nothing is logged for a good run.
    log.unlink()
    r = hull("run", "--bundle", str(bundle.path), c,
             global_args=("--log", str(log), "--log-format", "json"))
    assert r.returncode == 0, r
    assert not log.exists() or log.read_text() == ""
