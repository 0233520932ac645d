"""hulld's run workers: the lean static hull-worker beside hulld, or hulld
itself (--helper worker) where hull-worker is not installed (or $HULL_WORKER
names no program); runs, their records and a worker's death behave the same
in both."""
import os
import shutil
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, children, pid_alive, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

LEAN = str(Path(HULLD).resolve().parent / "hull-worker")


def workers(h, with_names=False):
    """The executables of hulld's run workers (with argv[0] when with_names)."""
    out = []
    for pid in children(h.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if argv[1:3] == [b"--helper", b"worker"]:
            out.append((exe, argv[0].decode()) if with_names else exe)
    return out


@pytest.fixture(params=["lean", "hulld", "hulld-dir"])
def d(request, tmp_path, monkeypatch):
    if request.param == "lean" and not os.access(LEAN, os.X_OK):
        pytest.skip("hull-worker not built")
    if request.param == "hulld":
        monkeypatch.setenv("HULL_WORKER", str(tmp_path / "missing"))
    if request.param == "hulld-dir":  # not a program: every worker would die at once
        monkeypatch.setenv("HULL_WORKER", str(tmp_path))
    h = Hulld(tmp_path, "--max-runs", "2")
    Path(h.state).mkdir(parents=True)
    h.user = h.token()
    h.start()
    h.kind = request.param.split("-")[0]
    yield h
    assert h.stop() == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def test_runs_go_to_the_expected_worker_program(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "echo hi; exit 3"]}, d.user)
    assert r.status == 200 and r.json["verdict"] == "exit_nonzero", r
    assert r.json["exit_code"] == 3
    assert r.json["stdout"] == "hi\n"
    got = d.request("GET", f"/v1/runs/{r.json['id']}", token=d.user)
    assert got.status == 200 and got.json["exit_code"] == 3, got
    d.note_helpers()
    exes = workers(d)
    assert len(exes) == 2, exes
    want = LEAN if d.kind == "lean" else str(Path(HULLD).resolve())
    assert all(os.path.realpath(e) == os.path.realpath(want) for e in exes), exes
    # ps names the program that runs.
    names = {name for _, name in workers(d, with_names=True)}
    assert names == {"hull-worker" if d.kind == "lean" else "hulld"}, names


def test_a_killed_worker_is_replaced(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["true"]}, d.user)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    d.note_helpers()
    killed = []
    for pid in children(d.proc.pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv[1:3] == [b"--helper", b"worker"]:
            os.kill(pid, 9)
            killed.append(pid)
    # Gone (a zombie until hulld reaps it): its socket shows EOF, and hulld
    # starts another before handing it a run.
    assert wait_until(lambda: all(not pid_alive(p) for p in killed), 10)
    for _ in range(3):
        r = d.request("POST", "/v1/runs", {"cmd": ["true"]}, d.user)
        assert r.status == 200 and r.json["verdict"] == "ok", r


def test_a_worker_program_gone_after_start_falls_back_to_hulld(tmp_path, monkeypatch):
    """hull-worker removed while hulld runs (an upgrade, an uninstall): the
    next worker is hulld itself, and runs go on."""
    if not os.access(LEAN, os.X_OK):
        pytest.skip("hull-worker not built")
    copy = tmp_path / "hull-worker"
    shutil.copy2(LEAN, copy)
    monkeypatch.setenv("HULL_WORKER", str(copy))
    h = Hulld(tmp_path, "--max-runs", "1")
    Path(h.state).mkdir(parents=True)
    h.user = h.token()
    h.start()
    try:
        r = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.user)
        assert r.status == 200 and r.json["verdict"] == "ok", r
        h.note_helpers()
        assert [os.path.realpath(e) for e in workers(h)] == [os.path.realpath(copy)]
        copy.unlink()
        killed = []
        for pid in children(h.proc.pid):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == \
                    [b"--helper", b"worker"]:
                os.kill(pid, 9)
                killed.append(pid)
        # A run is handed to a worker at most once: one sent while SIGKILL is
        # still on its way ends "the worker process running it died" rather
        # than being run again. So the test waits for the exit (its socket
        # closes before it is a zombie), as an idle worker's death looks.
        assert killed and wait_until(lambda: all(not pid_alive(p) for p in killed), 10)
        r = h.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "echo fine"]}, h.user)
        assert r.status == 200 and r.json["verdict"] == "ok" and r.json["stdout"] == "fine\n", r
        h.note_helpers()
        assert [os.path.realpath(e) for e in workers(h)] == [str(Path(HULLD).resolve())]
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()
