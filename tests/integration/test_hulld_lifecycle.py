"""hulld's own life: SIGTERM drains, SIGKILL loses nothing, overload gives
only 429s, TLS on TCP, and clear errors for bad flags. Each test starts its
own hulld and checks the host afterwards: no process, sandbox state or
cgroup of its helpers (workers, keepers) is left."""
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, self_signed_cert, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


_started = []


@pytest.fixture(autouse=True)
def _stop_leftover_hullds():
    """A failing test must not leave its hulld (and helpers) running."""
    yield
    while _started:
        h = _started.pop()
        if h.proc is not None:
            h.proc.send_signal(15)
            try:
                h.proc.wait(10)
            except subprocess.TimeoutExpired:
                h.proc.send_signal(15)  # the second one cancels what is still running
                h.proc.wait(120)
            h.proc = None
        wait_until(lambda: h.leaks() == ([], [], []), 30)


def make(tmp_path, *extra):
    h = Hulld(tmp_path, *extra)
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    _started.append(h)
    return h


def clean(h):
    return wait_until(lambda: h.leaks() == ([], [], []), 30)


def get_run(h, rid):
    return h.request("GET", f"/v1/runs/{rid}", token=h.tok).json


def test_sigterm_drains_in_flight_runs(tmp_path):
    h = make(tmp_path, "--max-runs", "1").start()
    queued = h.request("POST", "/v1/runs", {"cmd": ["sleep", "1"], "async": True}, h.tok).json
    answers = []
    t = threading.Thread(target=lambda: answers.append(
        h.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "sleep 1; echo done"]}, h.tok)))
    t.start()
    assert wait_until(lambda: get_run(h, queued["id"])["state"] == "running")
    time.sleep(0.2)  # let the synchronous request reach the queue
    h.note_helpers()
    h.proc.send_signal(15)
    # New work is refused while the old finishes.
    assert wait_until(lambda: h.request("GET", "/healthz").status == 503)
    r = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok)
    assert r.status == 503 and r.json["error"]["code"] == "shutting_down"
    t.join(60)
    assert answers and answers[0].status == 200, answers
    assert answers[0].json["stdout"] == "done\n"
    assert h.proc.wait(60) == 0
    h.proc = None
    assert not os.path.exists(h.sock)
    h.start()
    assert get_run(h, queued["id"])["verdict"] == "ok"
    assert h.stop() == 0
    assert clean(h), h.leaks()


def test_sigkill_mid_run_loses_nothing(tmp_path):
    """One slot: run A is in a sandbox, run B waits, a sandbox is kept.
    hulld dies by SIGKILL. After the restart A has finished with its result
    (its worker outlived hulld and recorded it) or is interrupted, B is
    interrupted, the sandbox is destroyed; nothing is left on the host."""
    h = make(tmp_path, "--max-runs", "1").start()
    a = h.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "sleep 1; echo A"], "async": True},
                  h.tok).json["id"]
    b = h.request("POST", "/v1/runs", {"cmd": ["echo", "B"], "async": True}, h.tok).json["id"]
    sb = h.request("POST", "/v1/sandboxes", {}, h.tok).json["id"]
    assert wait_until(lambda: get_run(h, a)["state"] == "running")
    assert get_run(h, b)["state"] == "queued"
    h.kill()
    h.start()
    final = ("finished", "interrupted")
    assert wait_until(lambda: get_run(h, a)["state"] in final, 60)
    ra, rb = get_run(h, a), get_run(h, b)
    assert rb["state"] == "interrupted", rb
    if ra["state"] == "finished":
        assert ra["verdict"] == "ok" and ra["stdout"] == "A\n"
    assert h.request("GET", f"/v1/sandboxes/{sb}", token=h.tok).json["state"] == "destroyed"
    # Reported once: the state does not move again.
    time.sleep(0.5)
    assert get_run(h, a) == ra
    listed = h.request("GET", "/v1/runs", token=h.tok).json["runs"]
    assert sorted(x["id"] for x in listed) == sorted([a, b])
    assert h.stop() == 0
    assert clean(h), h.leaks()


def test_sigkill_of_hulld_and_its_worker(tmp_path):
    """The worker dies too (the whole process group): the run is
    interrupted and hull_sandbox_cleanup removes its sandbox on restart."""
    h = make(tmp_path, "--max-runs", "1")
    h.start()
    a = h.request("POST", "/v1/runs", {"cmd": ["sleep", "30"], "async": True,
                                        "limits": {"wall_time": "2m"}}, h.tok).json["id"]
    assert wait_until(lambda: get_run(h, a)["state"] == "running")
    h.note_helpers()
    # Killed once the program runs: the run's cgroups stay (named by the
    # killed worker's pid and start time) until hulld's start-up cleanup.
    assert wait_until(lambda: sleeping_in_sandbox(h))
    for p in list(h.helpers_seen):
        os.kill(p, 9)
    h.kill()
    h.start()
    assert get_run(h, a)["state"] == "interrupted"
    assert h.stop() == 0
    assert clean(h), h.leaks()


def sleeping_in_sandbox(h):
    from hulldlib import cgroups_of
    for cg in cgroups_of(h.helpers_seen):
        if "/pids/" not in cg:
            continue
        for pid in Path(cg, "cgroup.procs").read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                    return True
            except OSError:
                pass
    return False


def test_overload_gives_only_429(tmp_path):
    """16 clients, 5 short runs each, 2 slots and a queue of 4: every answer
    is a result or a 429; afterwards nothing is left."""
    h = make(tmp_path, "--max-runs", "2", "--queue-depth", "4", "--tenant-runs", "1000").start()

    def client(i):
        out = []
        for _ in range(5):
            r = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok)
            out.append((r.status, r.json.get("verdict") or r.json["error"]["code"]))
        return out

    with ThreadPoolExecutor(16) as ex:
        results = [x for xs in ex.map(client, range(16)) for x in xs]
    h.note_helpers()
    assert set(results) <= {(200, "ok"), (429, "queue_full")}, set(results)
    assert (200, "ok") in results
    assert h.stop() == 0
    assert clean(h), h.leaks()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_one_client_address_cannot_hold_every_tls_connection(tmp_path):
    """--max-client-connections: idle connections from one address beyond it
    are closed at once; the ones it holds still work, and one freed makes
    room again."""
    import ssl
    key, cert = self_signed_cert(tmp_path)
    port = free_port()
    h = make(tmp_path, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
             "--tls-key", str(key), "--max-client-connections", "3").start()
    ctx = ssl.create_default_context(cafile=str(cert))

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            return ctx.wrap_socket(s, server_hostname="127.0.0.1")
        except (ssl.SSLError, OSError):
            s.close()
            return None

    def healthz(conn):
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return conn.recv(4096)

    held = [connect() for _ in range(3)]
    try:
        assert all(held), held
        extra = connect()
        got = b""
        if extra is not None:
            try:
                got = healthz(extra)
            except OSError:
                pass
            extra.close()
        assert b" 200 " not in got, got
        assert b" 200 " in healthz(held[0])
        held.pop().close()
        # MHD sees the close on its next round: a new one fits again.
        fresh = []
        assert wait_until(lambda: (fresh.append(connect()) or fresh[-1]) is not None and
                          b" 200 " in healthz(fresh[-1]), 30)
        for c in fresh:
            if c:
                c.close()
    finally:
        for c in held:
            c.close()
    assert h.stop() == 0


def test_tls_listener(tmp_path):
    key, cert = self_signed_cert(tmp_path)
    port = free_port()
    h = make(tmp_path, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
             "--tls-key", str(key)).start()
    url = f"https://127.0.0.1:{port}"
    r = subprocess.run(["curl", "-s", "--cacert", str(cert), f"{url}/healthz"],
                       capture_output=True, text=True)
    assert json.loads(r.stdout) == {"status": "ok"}, r
    r = subprocess.run(["curl", "-s", "--cacert", str(cert), "-H",
                        f"Authorization: Bearer {h.tok}", "-d", '{"cmd":["echo","tls"]}',
                        f"{url}/v1/runs"], capture_output=True, text=True)
    assert json.loads(r.stdout)["stdout"] == "tls\n"
    # Plain HTTP on the TLS port gets nowhere.
    r = subprocess.run(["curl", "-s", "-m", "10", f"http://127.0.0.1:{port}/healthz"],
                       capture_output=True, text=True)
    assert '"ok"' not in r.stdout
    assert h.stop() == 0


@pytest.mark.parametrize("args,msg", [
    (["--listen", "127.0.0.1:1"], "TLS only"),
    (["--tls-cert", "/x"], "only used with --listen"),
    (["--max-runs", "0"], "--max-runs"),
    (["--worker"], "--redis"),
    (["--worker", "--redis", "redis://127.0.0.1:1"], None),
    (["--bogus"], "hulld: unknown option '--bogus'"),
    # Every option of parse_args' table, read and range-checked as before
    # it was a table (issue 16).
    (["--max-runs", "4097"], "--max-runs: '4097' is not a number from 1 to 4096"),
    (["--concurrency", "257"], "--concurrency: '257' is not a number from 1 to 256"),
    (["--queue-depth", "x"], "--queue-depth: 'x' is not a number from 0 to 1000000"),
    (["--tenant-runs", "0"], "--tenant-runs: '0' is not a number from 1 to 1000000"),
    (["--tenant-sandboxes", "100001"],
     "--tenant-sandboxes: '100001' is not a number from 0 to 100000"),
    (["--client-timeout", "0"], "--client-timeout: '0' is not a number from 1 to 86400"),
    (["--max-connections", "65537"],
     "--max-connections: '65537' is not a number from 1 to 65536"),
    (["--heartbeat", "9"], "--heartbeat: '9' is not a number from 10 to 600000"),
    (["--reap-interval", "9"], "--reap-interval: '9' is not a number from 10 to 3600000"),
    (["--max-attempts", "101"], "--max-attempts: '101' is not a number from 1 to 100"),
    (["--result-ttl", "0"], "--result-ttl: '0' is not a number from 1 to 31536000"),
    (["--max-body", "1023"], "--max-body: '1023' is not a size from 1K to 256M"),
    (["--max-body", "257M"], "--max-body: '257M' is not a size from 1K to 256M"),
    (["--allow", "bogus"], "--allow: "),
    (["--allow", "host-network"], "--allow: only for --worker"),
    (["--listen", "127.0.0.1:1", "--tls-cert", "/x"], "TLS only"),
    (["--max-runs"], "hulld: option '--max-runs' needs a value"),
    (["--max-runs", " 5"], "--max-runs: ' 5' is not a number from 1 to 4096"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_bad_flags(tmp_path, args, msg):
    r = subprocess.run([HULLD, "--state-dir", str(tmp_path / "s"), "--socket",
                        str(tmp_path / "s.sock"), *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert r.stderr.startswith("hulld: "), r.stderr
    if msg:
        assert msg in r.stderr, r.stderr
    assert not (tmp_path / "s.sock").exists()


def test_help_lists_every_option():
    r = subprocess.run([HULLD, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for opt in ("--socket", "--state-dir", "--listen", "--tls-cert", "--tls-key", "--max-runs",
                "--queue-depth", "--tenant-runs", "--tenant-sandboxes", "--max-body",
                "--client-timeout", "--max-connections", "--worker", "--redis", "--concurrency",
                "--name", "--heartbeat", "--reap-interval", "--max-attempts", "--result-ttl",
                "--allow", "--debug", "--help"):
        assert f"  {opt} " in r.stdout, opt


def test_one_hulld_per_state_dir(tmp_path):
    h = make(tmp_path).start()
    r = subprocess.run([HULLD, "--state-dir", h.state, "--socket", str(tmp_path / "b.sock")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "another hulld" in r.stderr
    r = subprocess.run([HULLD, "--state-dir", str(tmp_path / "other"), "--socket", h.sock],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "another hulld is listening" in r.stderr
    assert h.stop() == 0


def test_help():
    r = subprocess.run([HULLD, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--socket PATH" in r.stdout and "--state-dir" in r.stdout


def test_second_sigterm_cancels(tmp_path):
    h = make(tmp_path, "--max-runs", "1").start()
    a = h.request("POST", "/v1/runs", {"cmd": ["sleep", "60"], "async": True,
                                        "limits": {"wall_time": "2m"}}, h.tok).json["id"]
    b = h.request("POST", "/v1/runs", {"cmd": ["sleep", "60"], "async": True}, h.tok).json["id"]
    assert wait_until(lambda: get_run(h, a)["state"] == "running")
    h.note_helpers()
    h.proc.send_signal(15)
    assert wait_until(lambda: h.request("GET", "/healthz").status == 503)
    h.proc.send_signal(15)
    assert h.proc.wait(60) == 0
    h.proc = None
    h.start()
    assert get_run(h, a)["verdict"] == "killed"
    assert get_run(h, b)["state"] == "cancelled"
    assert h.stop() == 0
    assert clean(h), h.leaks()


def test_worker_or_keeper_dying_under_hulld(tmp_path):
    """A helper killed while hulld lives: its run ends as internal_error, its
    sandbox as destroyed, the next run gets a fresh worker, and the dead
    helper's container state and cgroups are swept at once."""
    h = make(tmp_path, "--max-runs", "1").start()
    a = h.request("POST", "/v1/runs", {"cmd": ["sleep", "30"], "async": True,
                                        "limits": {"wall_time": "2m"}}, h.tok).json["id"]
    assert wait_until(lambda: get_run(h, a)["state"] == "running")
    h.note_helpers()
    assert wait_until(lambda: sleeping_in_sandbox(h))
    (worker,) = [p for p in h.helpers_seen]
    os.kill(worker, 9)
    assert wait_until(lambda: get_run(h, a)["state"] == "finished")
    ra = get_run(h, a)
    assert ra["verdict"] == "internal_error" and "died" in ra["error"]
    assert wait_until(lambda: not [e for e in h.leaks()[1] if f"-{worker}-" in e])
    r = h.request("POST", "/v1/runs", {"cmd": ["echo", "again"]}, h.tok)
    assert r.json["stdout"] == "again\n"
    sb = h.request("POST", "/v1/sandboxes", {}, h.tok).json["id"]

    def keepers_seen():
        h.note_helpers()
        found = []
        for p in h.helpers_seen - {worker}:
            try:
                argv = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[2:3] == [b"keeper"]:
                found.append(p)
        return found

    # A loaded host may show the keeper's task list a moment late.
    assert wait_until(keepers_seen)
    keepers = keepers_seen()
    assert len(keepers) == 1
    os.kill(keepers[0], 9)
    r = h.request("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": ["true"]}, h.tok)
    assert r.status == 409, r
    got = h.request("GET", f"/v1/sandboxes/{sb}", token=h.tok).json
    assert got["state"] == "destroyed" and got["reason"] == "its keeper died"
    assert h.stop() == 0
    assert clean(h), h.leaks()


def test_run_retention_removes_only_runs_that_ended(tmp_path):
    """--run-retention: a run that ended longer ago goes, with its result
    (GET is 404, no row is left), while one still running stays however old
    it is, until it ends too; the audit log keeps its entries."""
    import sqlite3
    h = make(tmp_path, "--run-retention", "2s").start()
    status = lambda rid: h.request("GET", f"/v1/runs/{rid}", token=h.tok).status  # noqa: E731
    slow = h.request("POST", "/v1/runs", {"cmd": ["sleep", "600"], "async": True,
                                          "limits": {"wall_time": "900s", "cpu_time": "60s"}},
                     h.tok).json["id"]
    assert wait_until(lambda: get_run(h, slow)["state"] == "running", 60)
    done = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok).json
    assert done["state"] == "finished", done
    assert wait_until(lambda: status(done["id"]) == 404, 120), get_run(h, done["id"])
    # Older than the retention by now (it began before `done`), but running.
    assert get_run(h, slow)["state"] == "running"
    assert "run retention: removed 1 runs" in h.log.read_text()
    db = sqlite3.connect(os.path.join(h.state, "hulld.db"))
    try:
        for table, col in (("runs", "id"), ("results", "run_id")):
            n = db.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} = ?", (done["id"],))
            assert n.fetchone()[0] == 0, table
        assert db.execute("SELECT COUNT(*) FROM audit WHERE target = ?",
                          (done["id"],)).fetchone()[0] >= 1
    finally:
        db.close()
    # Once it ends (cancelled: killed), it goes as well.
    assert h.request("DELETE", f"/v1/runs/{slow}", token=h.tok).status == 200
    assert wait_until(lambda: status(slow) == 404, 120), get_run(h, slow)
    assert h.stop() == 0 and clean(h)


@pytest.mark.parametrize("value", ["0", "500ms", "36501d", "soon", "-1d"])
def test_run_retention_refuses_what_is_not_an_age(tmp_path, value):
    r = subprocess.run([HULLD, "--socket", str(tmp_path / "s"), "--state-dir", str(tmp_path / "d"),
                        "--run-retention", value], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith(
        f"hulld: --run-retention: '{value}' is not a duration"), r


def test_sandbox_and_audit_retention(tmp_path):
    """--sandbox-retention: a destroyed sandbox's record goes once it ended
    longer ago (GET is 404, no row is left), a live one stays however old;
    --audit-retention: audit entries written longer ago go, the newer stay."""
    import sqlite3
    h = make(tmp_path, "--sandbox-retention", "2s", "--audit-retention", "2s")
    admin = h.token("admin", "ops")
    h.start()
    live = h.request("POST", "/v1/sandboxes", {}, h.tok).json["id"]
    gone = h.request("POST", "/v1/sandboxes", {}, h.tok).json["id"]
    assert h.request("DELETE", f"/v1/sandboxes/{gone}", token=h.tok).status == 200
    status = lambda sid: h.request("GET", f"/v1/sandboxes/{sid}", token=h.tok).status  # noqa: E731
    assert wait_until(lambda: status(gone) == 404, 120)
    assert h.request("GET", f"/v1/sandboxes/{live}", token=h.tok).json["state"] == "running"
    targets = lambda: [e.get("target") for e in h.request(  # noqa: E731
        "GET", "/v1/audit?limit=1000", token=admin).json["entries"]]
    assert wait_until(lambda: gone not in targets(), 120), targets()
    # A request made now is logged, and stays until it is that old.
    assert h.request("POST", f"/v1/sandboxes/{live}/timeout", {"lifetime": "30m"},
                     h.tok).status == 200
    assert live in targets()
    log = h.log.read_text()
    assert "sandbox retention: removed 1 sandboxes" in log, log
    assert "audit retention: removed" in log, log
    db = sqlite3.connect(os.path.join(h.state, "hulld.db"))
    try:
        assert db.execute("SELECT COUNT(*) FROM sandboxes WHERE id = ?", (gone,)).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM sandboxes WHERE id = ?", (live,)).fetchone()[0] == 1
        # Outside hulld's retention the log is as append-only as before.
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
    finally:
        db.close()
    assert h.request("DELETE", f"/v1/sandboxes/{live}", token=h.tok).status == 200
    assert h.stop() == 0 and clean(h)


@pytest.mark.parametrize("option", ["--sandbox-retention", "--audit-retention"])
def test_sandbox_and_audit_retention_refuse_what_is_not_an_age(tmp_path, option):
    r = subprocess.run([HULLD, "--socket", str(tmp_path / "s"), "--state-dir", str(tmp_path / "d"),
                        option, "500ms"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith(
        f"hulld: {option}: '500ms' is not a duration"), r
