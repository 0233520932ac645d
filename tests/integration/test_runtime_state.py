"""State survives crashes (issue 3): a create killed half-way, a state
directory left half-made, an init that died behind hull's back, a recorded
pid that now belongs to another process; state.json is replaced whole and
verbs on one container are serialised by its lock."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import pid_alive, reap_orphans, wait_until
from hullrt import Background, assert_error, assert_nothing_left, cid, started


def start_time(pid):
    """Field 22 of /proc/PID/stat, as hull records it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def bystander(tmp_path):
    """A process not started by hull, named after the test's dir so that
    the leak check would see it."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)",
                             str(tmp_path)])


def write_state(hull, c, **fields):
    d = hull.root / c
    d.mkdir(parents=True)
    st = {"id": c, "ociVersion": "1.0.2", "bundle": "/nonexistent", "rootfs": "/nonexistent",
          "created": "2024-01-01T00:00:00Z", "owner": "root", "creating": False, "pid": 0,
          "pidStart": 0}
    st.update(fields)
    (d / "state.json").write_text(json.dumps(st))
    return d


def hook_script(tmp_path, body):
    p = tmp_path / "hook.sh"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return {"path": str(p), "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}


# ---- a create killed half-way ------------------------------------------------------

def test_create_killed_during_hook_is_cleaned_by_delete_force(hull, bundle, tmp_path):
    """SIGKILL `hull create` while a createRuntime hook runs (the rootfs is
    mounted, the init waits): the init and the hook die with it, the state
    says creating, plain delete refuses, delete --force removes every trace."""
    seen_file = tmp_path / "state-seen"
    bundle.config["hooks"] = {"createRuntime": [hook_script(
        tmp_path, f"cat > {seen_file}.tmp; mv {seen_file}.tmp {seen_file}\n"
                  "while :; do sleep 0.05; done")]}
    bundle.set_args("sleep", "1000").write()
    c = cid()
    bg = Background(hull, "create", "--bundle", str(bundle.path), c)
    try:
        assert wait_until(seen_file.exists)
        seen = json.loads(seen_file.read_text())
        assert seen["id"] == c and seen["status"] == "creating" and seen["pid"] > 0
        init = seen["pid"]
        assert pid_alive(init)
        assert hull.state(c)["status"] == "creating"
        bg.p.send_signal(signal.SIGKILL)
        bg.wait()
    finally:
        bg.kill()
    # The init must not outlive the hull that was setting it up.
    assert wait_until(lambda: (reap_orphans(), not pid_alive(init))[1])
    assert hull.state(c)["status"] in ("creating", "stopped")
    r = hull("delete", c)
    assert_error(r, "delete", c, "cannot delete a container that is creating")
    r = hull("delete", "--force", c)
    assert r.returncode == 0, r
    assert_nothing_left(hull, tmp_path)


# ---- half-made state directories ------------------------------------------------------

@pytest.mark.asan
@pytest.mark.parametrize("content", [None, b"", b'{"id": "x", "pid": 12', b"\x00garbage"])
def test_half_made_state_dir(hull, tmp_path, content):
    c = cid()
    d = hull.root / c
    d.mkdir(parents=True)
    if content is not None:
        (d / "state.json").write_bytes(content)
    # list skips it, state and plain delete explain, delete --force cleans.
    r = hull("list", "-q")
    assert r.returncode == 0 and r.stdout == "", r
    r = hull("state", c)
    assert r.returncode != 0 and r.stderr.startswith(f"hull: state {c}: "), r
    r = hull("start", c)
    assert r.returncode != 0 and r.stderr.startswith(f"hull: start {c}: "), r
    r = hull("delete", c)
    assert_error(r, "delete", c, "--force")
    assert d.exists()
    r = hull("delete", "--force", c)
    assert r.returncode == 0, r
    assert_nothing_left(hull, tmp_path)


@pytest.mark.parametrize("content", [b"", b'{"id": "x", "pid": 12'])
def test_delete_force_of_a_torn_state_ends_what_runs_in_its_cgroup(hull, bundle, content):
    """A running container whose state.json was torn: delete --force kills
    what runs in its default cgroup before removing it, rather than report
    success with the process running on, unseen, and the id blocked."""
    bundle.set_args("sleep", "1000")
    with started(hull, bundle) as (c, pid):
        (hull.root / c / "state.json").write_bytes(content)
        r = hull("delete", "--force", c)
        assert r.returncode == 0, r
        assert wait_until(lambda: (reap_orphans(), not pid_alive(pid))[1], 60)
        assert not (hull.root / c).exists()
        # The id is free again: its cgroup is gone too.
        r = hull("create", "--bundle", str(bundle.path), c)
        assert r.returncode == 0, r


def test_delete_force_kills_the_recorded_init(hull, tmp_path):
    """A state left in creating with a live init (pid and start time match):
    delete --force kills it."""
    p = bystander(tmp_path)
    try:
        c = cid()
        write_state(hull, c, creating=True, pid=p.pid, pidStart=start_time(p.pid))
        assert hull.state(c)["status"] == "creating"
        assert hull.state(c)["pid"] == p.pid
        r = hull("delete", "--force", c)
        assert r.returncode == 0, r
        assert p.wait(10) == -signal.SIGKILL
    finally:
        p.kill()
        p.wait()
    assert_nothing_left(hull, tmp_path)


@pytest.mark.asan
def test_reused_pid_is_not_the_container(hull, tmp_path):
    """The recorded pid now belongs to another process (other start time):
    the container is stopped, and neither kill nor delete touches it."""
    p = bystander(tmp_path)
    try:
        c = cid()
        write_state(hull, c, pid=p.pid, pidStart=start_time(p.pid) + 1)
        st = hull.state(c)
        assert st["status"] == "stopped" and st["pid"] == 0
        assert_error(hull("kill", c, "KILL"), "kill", c, "container is not running")
        assert hull("delete", c).returncode == 0
        assert pid_alive(p.pid)
    finally:
        p.kill()
        p.wait()
    assert_nothing_left(hull, tmp_path)


# ---- an init that died behind hull's back -----------------------------------------------

@pytest.mark.asan
def test_dead_init_reported_stopped(hull, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    with started(hull, bundle) as (c, pid):
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        st = hull.state(c)
        assert st["pid"] == 0
        listed = json.loads(hull("list", "--format", "json", check=True).stdout)
        assert [(x["id"], x["status"]) for x in listed] == [(c, "stopped")]
        # A plain delete is enough for a stopped container.
        assert hull("delete", c).returncode == 0
    assert_nothing_left(hull, tmp_path)


def test_zombie_init_is_stopped(hull, bundle):
    """An exited init nobody reaped yet (a zombie) is stopped, not running."""
    bundle.set_args("true")
    with started(hull, bundle) as (c, pid):
        # We are the subreaper: the init is our child now and stays a
        # zombie until we reap it.
        def zombie():
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return False
        if wait_until(zombie, timeout=5):
            assert hull.state(c)["status"] == "stopped"
        reap_orphans()
        assert hull.state(c)["status"] == "stopped"


# ---- atomic state.json and the lock ------------------------------------------------------

@pytest.mark.asan
def test_state_json_complete_at_every_step(hull, bundle, tmp_path):
    """A hook sees a complete state.json in creating state and no temporary
    files; after each verb only state.json (and exec.fifo, exec.error until
    start) are there."""
    c = cid()
    d = hull.root / c
    bundle.config["hooks"] = {"createRuntime": [hook_script(
        tmp_path, f"ls -a {d} > {tmp_path}/listing; cp {d}/state.json {tmp_path}/during")]}
    bundle.set_args("sleep", "1000").write()
    try:
        hull("create", "--bundle", str(bundle.path), c, check=True)
        assert sorted((tmp_path / "listing").read_text().split()) == [
            ".", "..", "exec.error", "exec.fifo", "state.json"]
        during = json.loads((tmp_path / "during").read_text())
        assert during["id"] == c and during["creating"] is True
        assert sorted(os.listdir(d)) == ["exec.error", "exec.fifo", "state.json"]
        final = json.loads((d / "state.json").read_text())
        assert final["creating"] is False and final["pid"] == hull.state(c)["pid"]
        hull("start", c, check=True)
        assert os.listdir(d) == ["state.json"]
        hull("kill", c, "KILL", check=True)
        assert os.listdir(d) == ["state.json"]
        assert (d / "state.json").stat().st_mode & 0o777 == 0o600
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path)


def test_parallel_creates_of_one_id(hull, make_bundle, tmp_path):
    """Racing creates of the same id: exactly one wins, the others are told
    it exists, and one container is left to delete."""
    bundles = [make_bundle() for _ in range(4)]
    for b in bundles:
        b.set_args("sleep", "1000").write()
    c = cid()
    bgs = [Background(hull, "create", "--bundle", str(b.path), c) for b in bundles]
    results = [bg.wait() for bg in bgs]
    try:
        ok = [r for r in results if r[0] == 0]
        assert len(ok) == 1, results
        for rc, out, err in results:
            if rc != 0:
                assert err == f"hull: create {c}: container '{c}' already exists\n"
        assert hull.state(c)["status"] == "created"
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path)


def test_verbs_wait_for_the_lock(hull, bundle, tmp_path):
    """While one verb holds a container's lock, another waits for it instead
    of acting on a state that is being changed."""
    import fcntl
    bundle.set_args("sleep", "1000")
    with started(hull, bundle, start=False) as (c, pid):
        fd = os.open(hull.root / c, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            bg = Background(hull, "start", c)
            time.sleep(0.3)  # give it the chance to act without the lock
            assert bg.p.poll() is None
            assert hull.state(c)["status"] == "created"  # readers need no lock
            fcntl.flock(fd, fcntl.LOCK_UN)
            rc, out, err = bg.wait()
            assert rc == 0, err
            assert hull.state(c)["status"] == "running"
        finally:
            os.close(fd)


def _blocked_on_flock(pids):
    """The pids among these that wait for a flock (/proc/locks: `-> FLOCK`)."""
    with open("/proc/locks") as f:
        waiting = {int(line.split()[5]) for line in f if "-> FLOCK" in line}
    return waiting & set(pids)


def test_verbs_queued_behind_a_delete_find_the_container_gone(hull, bundle, tmp_path):
    """Verbs that waited for a container's lock while a delete removed it
    must act on the id as it is now (gone), not on the removed directory
    they opened before the wait: one clear "does not exist", and a queued
    `delete --force` that finds nothing does nothing. The delete is held
    inside its poststop hook (after the lock, before the removal) until
    every other verb waits for the lock."""
    gate, mark = tmp_path / "gate", tmp_path / "in-hook"
    gate.touch()
    bundle.config["hooks"] = {"poststop": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"touch {mark}; while [ -e {gate} ]; do sleep 0.05; done"]}]}
    bundle.set_args("sleep", "1000")
    c = cid()
    verbs = [("start",), ("kill", "KILL"), ("exec", "true"), ("delete",), ("pause",),
             ("resume",), ("update", "--pids-limit", "10")]
    with started(hull, bundle, start=False) as (c, pid):
        first = Background(hull, "delete", "--force", c)
        assert wait_until(mark.exists, 60), first.wait()
        queued = [Background(hull, v[0], c, *v[1:]) for v in verbs]
        forced = Background(hull, "delete", "--force", c)
        pids = [bg.p.pid for bg in queued] + [forced.p.pid]
        assert wait_until(lambda: _blocked_on_flock(pids) == set(pids), 60), \
            _blocked_on_flock(pids)
        gate.unlink()
        rc, out, err = first.wait(60)
        assert rc == 0, err
        for v, bg in zip(verbs, queued):
            rc, out, err = bg.wait(60)
            assert_error(Result(rc, err), v[0], c, f"container '{c}' does not exist")
        rc, out, err = forced.wait(60)
        assert (rc, err) == (0, "")
        assert not (hull.root / c).exists()
    assert_nothing_left(hull, tmp_path)


class Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr

    def __repr__(self):
        return f"<rc={self.returncode} err={self.stderr!r}>"
