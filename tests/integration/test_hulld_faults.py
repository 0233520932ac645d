"""hulld under faults and hostile bytes: store errors, a full state disk,
bytes that are not UTF-8, malformed HTTP. Every answer is hull's JSON error
body with the right status, and everything hulld writes stays valid JSON.

HTTP tests speak raw bytes over the unix socket, so they see exactly what
hulld sends (a status line twice, an HTML page, a reset)."""
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-body", "64K", "--client-timeout", "5")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"admin": h.token("admin", "ops"), "user": h.token("user", "acme")}
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def raw(d, data, timeout=30):
    """Send bytes, read until hulld closes or stops talking; returns (bytes, how it ended)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(d.sock)
    out, end = b"", "closed"
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if one_answer(out) is not None and b"connection: close" not in out.lower():
                end = "open"  # a whole answer on a connection kept open
                break
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    finally:
        s.close()
    return out, end


def one_answer(data):
    """(status, headers, body) when data holds one whole answer, else None."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    n = int(headers.get("content-length", "-1"))
    if n < 0 or len(body) < n:
        return None
    return int(lines[0].split()[1]), headers, body[:n], body[n:]


def json_error(data, status, code=None):
    """data is exactly one answer: status, hull's JSON error body, valid UTF-8."""
    got = one_answer(data)
    assert got is not None, data
    st, headers, body, rest = got
    assert rest == b"", data  # nothing after it: no second status line
    assert st == status, data
    assert headers.get("content-type") == "application/json", data
    e = json.loads(body.decode("utf-8"))["error"]  # strict UTF-8: raises on bad bytes
    if code:
        assert e["code"] == code, data
    return e


def metric(d, series):
    text = d.request("GET", "/metrics", token=d.tokens["admin"]).body.decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


def auth(d, who="user"):
    return b"Authorization: Bearer " + d.tokens[who].encode() + b"\r\n"


def strict_json(resp):
    return json.loads(resp.body.decode("utf-8"))


# ---- bytes that are not UTF-8 -------------------------------------------------

def test_non_utf8_path_is_escaped_in_answer_and_audit(d):
    last = strict_json(d.request("GET", "/v1/audit", token=d.tokens["admin"]))["entries"]
    since = last[-1]["id"] if last else 0
    out, _ = raw(d, b"POST /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    e = json_error(out, 404, "not_found")
    assert "/v1/\ufffd\ufffd" in e["message"]
    out, _ = raw(d, b"DELETE /v1/runs/r-\xff HTTP/1.1\r\nHost: x\r\n" + auth(d) + b"\r\n")
    json_error(out, 404, "not_found")
    r = d.request("GET", "/v1/runs?state=%FF", token=d.tokens["user"])
    assert r.status == 400 and "\ufffd" in strict_json(r)["error"]["message"]
    out, _ = raw(d, b"P\xffST /v1/runs HTTP/1.1\r\nHost: x\r\n" + auth(d) + b"\r\n")
    e = json_error(out, 405, "method_not_allowed")
    assert "P\ufffdST" in e["message"], e
    a = d.request("GET", f"/v1/audit?since_id={since}", token=d.tokens["admin"])
    es = strict_json(a)["entries"]
    assert [(e["method"], e["path"], e["status"]) for e in es] == [
        ("POST", "/v1/\ufffd\ufffd", 404), ("DELETE", "/v1/runs/r-\ufffd", 404),
        ("P\ufffdST", "/v1/runs", 405)], es
    assert es[1]["target"] == "r-\ufffd"
    # Stored as valid text, for every reader of the database too.
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(d.state, 'hulld.db')}?mode=ro", uri=True)
    db.text_factory = bytes
    for row in db.execute("SELECT method, path, target FROM audit WHERE id > ?", (since,)):
        for v in row:
            if v is not None:
                v.decode("utf-8")
    db.close()


@pytest.mark.parametrize("body", [
    b'{"cmd": ["\xff\xfe"]}',
    b'{"cmd": ["true"], "limits": {"memory": "1\xff"}}',
    b'{"cmd": ["true"], "env": {"A\xc0\xaf": "x"}}',
])
def test_non_utf8_body_is_refused(d, body):
    r = d.request("POST", "/v1/runs", body, d.tokens["user"], raw=True,
                  headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    e = strict_json(r)["error"]
    assert e["code"] == "invalid_json" and "UTF-8" in e["message"], e


def test_program_output_that_is_not_utf8(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["sh", "-c", r"printf 'a\377\376b'; printf '\377' >&2"]},
                  d.tokens["user"])
    assert r.status == 200, r
    res = strict_json(r)
    assert res["verdict"] == "ok"
    import base64
    assert base64.b64decode(res["stdout_base64"]) == b"a\xff\xfeb"
    assert base64.b64decode(res["stderr_base64"]) == b"\xff"
    got = strict_json(d.request("GET", f"/v1/runs/{res['id']}", token=d.tokens["user"]))
    assert got["stdout_base64"] == res["stdout_base64"]
    # A command named with escapes is valid UTF-8; its error message too.
    r = d.request("POST", "/v1/runs", {"cmd": ["\udcff\u00fe"]}, d.tokens["user"])
    res = strict_json(r)
    assert res["verdict"] != "ok", res


# ---- sandbox files ----------------------------------------------------------------

def test_put_onto_a_fifo_is_the_clients_error(d):
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {"lifetime": "5m"}, t)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["sh", "-c", "mkfifo /tmp/f && mkdir /tmp/dir"]}, t)
        assert ex.status == 200 and ex.json["verdict"] == "ok", ex
        for path in ("f", "dir"):
            r = d.request("PUT", f"/v1/sandboxes/{sid}/files/{path}", b"data", t, raw=True)
            assert r.status == 400, (path, r)
            assert r.json["error"]["code"] == "invalid_request"
        r = d.request("PUT", f"/v1/sandboxes/{sid}/files/f", b"data", t, raw=True)
        assert "not a regular file" in r.json["error"]["message"]
        r = d.request("GET", f"/v1/sandboxes/{sid}/files/f", token=t)
        assert r.status == 400, r
        # The fifo is still a fifo, and nobody is left blocked on it.
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["sh", "-c", "test -p /tmp/f && echo fifo"]}, t)
        assert ex.json["stdout"] == "fifo\n", ex
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200


# ---- store faults -------------------------------------------------------------------

def stop(h):
    """SIGTERM; a second one cancels runs still running (a failed test's)."""
    if h.proc is None:
        return 0
    h.note_helpers()
    h.proc.send_signal(15)
    try:
        rc = h.proc.wait(30)
    except subprocess.TimeoutExpired:
        h.proc.send_signal(15)
        rc = h.proc.wait(120)
    h.proc = None
    return rc


def start_own(tmp_path, state=None, *extra):
    h = Hulld(tmp_path, *extra)
    if state:
        h.state = str(state)
    Path(h.state).mkdir(parents=True, exist_ok=True)
    h.tok = h.token("user", "acme")
    h.admin = h.token("admin", "ops")
    return h


def test_store_errors_are_answered_not_hidden(tmp_path):
    """A broken database (here: a table renamed under hulld) is a 500 with
    the store's message, never a 404 that says the run does not exist."""
    import sqlite3
    h = start_own(tmp_path).start()
    try:
        rid = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok).json["id"]
        sid = h.request("POST", "/v1/sandboxes", {}, h.tok).json["id"]
        assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=h.tok).status == 200
        db = sqlite3.connect(os.path.join(h.state, "hulld.db"))
        db.execute("ALTER TABLE runs RENAME TO runs_away")
        db.execute("ALTER TABLE sandboxes RENAME TO sandboxes_away")
        db.commit()
        try:
            for m, p in (("GET", f"/v1/runs/{rid}"), ("DELETE", f"/v1/runs/{rid}"),
                         ("GET", "/v1/runs"), ("GET", f"/v1/sandboxes/{sid}"),
                         ("GET", "/v1/sandboxes")):
                r = h.request(m, p, token=h.tok)
                assert r.status == 500, (m, p, r)
                e = strict_json(r)["error"]
                assert e["code"] == "internal" and "store" in e["message"], (m, p, e)
            r = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok)
            assert r.status == 500 and "store" in r.json["error"]["message"], r
        finally:
            db.execute("ALTER TABLE runs_away RENAME TO runs")
            db.execute("ALTER TABLE sandboxes_away RENAME TO sandboxes")
            db.commit()
            db.close()
        assert "store:" in h.log.read_text()  # logged, not only answered
        assert h.request("GET", f"/v1/runs/{rid}", token=h.tok).json["verdict"] == "ok"
    finally:
        assert stop(h) == 0


def test_redis_errors_are_answered_not_hidden(tmp_path):
    """Redis gone: a queued run is neither shown as still queued (200) nor
    marked cancelled while it may still be in the queue; 503 says why."""
    from queuelib import RedisServer
    redis = RedisServer()
    h = start_own(tmp_path, None, "--redis", redis.url)
    try:
        h.start()
        r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, h.tok)
        assert r.status == 202, r
        rid = r.json["id"]
        assert h.request("GET", f"/v1/runs/{rid}", token=h.tok).json["state"] == "queued"
        redis.stop()
        for m, p, body in (("GET", f"/v1/runs/{rid}", None), ("DELETE", f"/v1/runs/{rid}", None),
                           ("POST", "/v1/runs", {"cmd": ["true"], "queue": True})):
            r = h.request(m, p, body, h.tok)
            assert r.status == 503, (m, p, r)
            e = strict_json(r)["error"]
            assert e["code"] == "queue_unavailable" and "redis" in e["message"], (m, e)
        db_state = h.request("GET", "/v1/runs?state=cancelled", token=h.tok).json["runs"]
        assert db_state == [], db_state
    finally:
        assert stop(h) == 0
        redis.stop()


def test_queued_runs_count_against_the_tenants_quota(tmp_path):
    """--tenant-runs holds for "queue": true too (no worker here: the runs
    stay queued); another tenant is not held by it."""
    from queuelib import RedisServer
    redis = RedisServer()
    h = start_own(tmp_path, None, "--redis", redis.url, "--tenant-runs", "2")
    try:
        h.start()
        for _ in range(2):
            r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, h.tok)
            assert r.status == 202, r
        r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, h.tok)
        assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded", r
        assert "tenant acme has 2 queued runs" in r.json["error"]["message"], r
        other = h.token("user", "other")
        r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, other)
        assert r.status == 202, r
        assert len(redis.r("LRANGE", "hull:jobs", 0, -1)) == 3
    finally:
        assert stop(h) == 0
        redis.stop()


def test_queued_runs_settled_in_redis_are_said_so(tmp_path):
    """A job a worker is running is cancelled by asking it to stop (its
    worker kills it at its next heartbeat; the run says cancelled at once,
    its result then ignored). One that finished cannot be cancelled (409);
    its result is recorded when read. A job gone from Redis (its result
    expired) is "interrupted", not a 503 for ever."""
    from queuelib import RedisServer
    redis = RedisServer()
    h = start_own(tmp_path, None, "--redis", redis.url)
    try:
        h.start()
        ids = []
        for _ in range(3):
            r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, h.tok)
            assert r.status == 202, r
            ids.append(r.json["id"])
        jobs = redis.r("LRANGE", "hull:jobs", 0, -1)  # newest first
        running, finished, gone = jobs[2], jobs[1], jobs[0]
        # a worker took the first two: out of the list, running
        for job in (running, finished):
            redis.r("LREM", "hull:jobs", 0, job)
            redis.r("HSET", f"hull:job:{job}", "state", "running")
        r = h.request("DELETE", f"/v1/runs/{ids[0]}", token=h.tok)
        assert r.status == 200, r
        assert redis.r("HGET", f"hull:job:{running}", "stop") == "1"
        assert h.request("GET", f"/v1/runs/{ids[0]}", token=h.tok).json["state"] == "cancelled"
        # ... and finished the second
        result = {"verdict": "ok", "exit_code": 0, "stdout": "done\n"}
        redis.r("SET", f"hull:result:{finished}", json.dumps(result))
        redis.r("HSET", f"hull:job:{finished}", "state", "finished")
        r = h.request("DELETE", f"/v1/runs/{ids[1]}", token=h.tok)
        assert r.status == 409 and "is over" in r.json["error"]["message"], r
        r = h.request("GET", f"/v1/runs/{ids[1]}", token=h.tok)
        assert r.json["state"] == "finished" and r.json["stdout"] == "done\n", r
        # the third's keys expired
        redis.r("LREM", "hull:jobs", 0, gone)
        redis.r("DEL", f"hull:job:{gone}")
        r = h.request("GET", f"/v1/runs/{ids[2]}", token=h.tok)
        assert r.status == 200 and r.json["state"] == "interrupted", r
    finally:
        assert stop(h) == 0
        redis.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A state directory on its own 8 MiB tmpfs, and a way to fill it."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path):
    """Write until the file system is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 1):  # then the last bytes of the last page
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_run_ending_on_a_full_disk_is_kept_and_stored_later(tmp_path, small_disk):
    import sqlite3
    h = start_own(tmp_path, small_disk / "state", "--max-runs", "1").start()
    try:
        t = h.tok
        a = h.request("POST", "/v1/runs", {"cmd": ["sleep", "600"], "async": True,
                                            "limits": {"wall_time": "20m"}}, t).json["id"]
        assert wait_until(lambda: h.request("GET", f"/v1/runs/{a}", token=t).json["state"]
                          == "running", 60)
        b = h.request("POST", "/v1/runs", {"cmd": ["echo", "hello"], "async": True}, t).json["id"]
        c = h.request("POST", "/v1/runs", {"cmd": ["true"], "async": True}, t).json["id"]
        assert h.request("GET", "/healthz").status == 200
        fill(small_disk / "fill")

        # Cancelling a queued run: done, but the store cannot say so: not a 200.
        r = h.request("DELETE", f"/v1/runs/{c}", token=t)
        assert r.status == 503, r
        assert r.json["error"]["code"] == "store_unavailable"
        # ... and the run reads as cancelled meanwhile (a state kept without a result)
        r = h.request("GET", f"/v1/runs/{c}", token=t)
        assert r.status == 200 and r.json["state"] == "cancelled", r
        # a ends (killed), then b runs and ends: neither can be written.
        r = h.request("DELETE", f"/v1/runs/{a}", token=t)
        assert r.json["state"] == "finished" and r.json["verdict"] == "killed", r
        assert wait_until(lambda: h.request("GET", f"/v1/runs/{b}", token=t).json["state"]
                          == "finished", 60)
        got = h.request("GET", f"/v1/runs/{b}", token=t).json
        assert got["verdict"] == "ok" and got["stdout"] == "hello\n", got
        hz = h.request("GET", "/healthz")
        assert hz.status == 503 and hz.json["status"] == "store_failing", hz
        assert "full" in hz.json["reason"], hz
        db = sqlite3.connect(f"file:{small_disk / 'state' / 'hulld.db'}?mode=ro", uri=True)
        states = dict(db.execute("SELECT id, state FROM runs").fetchall())
        db.close()
        assert states[b] != "finished" and states[c] == "queued", states

        os.unlink(small_disk / "fill")  # space is back
        assert wait_until(lambda: h.request("GET", "/healthz").status == 200, 60), \
            h.request("GET", "/healthz")

        # Nothing waiting, only a request refused: healthy again by itself
        # once space is back (no later write needed to find out).
        fill(small_disk / "fill")
        r = h.request("POST", "/v1/runs", {"cmd": ["echo", "x" * 200000]}, t)
        assert r.status == 503 and r.json["error"]["code"] == "store_unavailable", r
        assert h.request("GET", "/healthz").status == 503
        os.unlink(small_disk / "fill")
        assert wait_until(lambda: h.request("GET", "/healthz").status == 200, 60), \
            h.request("GET", "/healthz")
    finally:
        if (small_disk / "fill").exists():
            os.unlink(small_disk / "fill")
        assert stop(h) == 0
    # Stored for real: a new hulld finds the real results, nothing interrupted.
    h.start()
    try:
        got = {rid: h.request("GET", f"/v1/runs/{rid}", token=h.tok).json for rid in (a, b, c)}
        assert got[a]["state"] == "finished" and got[a]["verdict"] == "killed", got[a]
        assert got[b]["state"] == "finished" and got[b]["stdout"] == "hello\n", got[b]
        assert got[c]["state"] == "cancelled", got[c]
    finally:
        assert stop(h) == 0
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


# ---- HTTP that libmicrohttpd would answer on its own ----------------------------------------

def chunked(data, size=16384):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


POST = b"POST /v1/runs HTTP/1.1\r\nHost: x\r\n"


MALFORMED = [
    ("header over the pool", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 300000
     + b"\r\n\r\n", 431, "headers_too_large"),
    ("request line over the pool", b"GET /" + b"a" * 300000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "uri_too_long"),
    ("query of 20 KB", b"GET /v1/runs?" + b"a=b&" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "uri_too_long"),
    ("HTTP/2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    ("HTTP/0.9", b"GET /healthz HTTP/0.9\r\n\r\n", 505, "http_version_not_supported"),
    ("not HTTP", b"GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
    ("header without a colon", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400,
     "invalid_request"),
    ("Content-Length not a number", POST + b"Content-Length: abc\r\n\r\n", 400,
     "invalid_request"),
    ("Content-Length negative", POST + b"Content-Length: -1\r\n\r\n", 400, "invalid_request"),
    ("Content-Length beyond 64 bits", POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
     413, "payload_too_large"),
    ("two Content-Lengths", POST + b"Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}", 400,
     "invalid_request"),
    ("Content-Length and chunked", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n0\r\n\r\n", 400, "invalid_request"),
    ("Transfer-Encoding gzip", POST + b"Transfer-Encoding: gzip\r\n\r\nabc", 501,
     "not_implemented"),
    ("malformed chunk", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400,
     "invalid_request"),
]


@pytest.mark.parametrize("name,request_bytes,status,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_http_gets_a_json_answer(d, name, request_bytes, status, code):
    series = f'hull_requests_rejected_total{{code="{code}"}}'
    before = metric(d, series)
    out, end = raw(d, request_bytes)
    assert end != "timeout", (name, out)
    e = json_error(out, status, code)
    assert e["message"], name
    assert d.request("GET", "/healthz").status == 200
    assert metric(d, series) == before + 1, series


def test_two_authorization_headers_are_refused(d):
    """Whose request it is must be clear: with a valid token first and
    another after (a client's and a proxy's, say), hulld runs nothing."""
    body = json.dumps({"cmd": ["true"]}).encode()
    for second in (b"Authorization: Bearer not-a-token\r\n", auth(d)):
        out, _ = raw(d, POST + auth(d) + second + b"Content-Length: %d\r\n\r\n" % len(body)
                     + body)
        e = json_error(out, 400, "invalid_request")
        assert "Authorization is given 2 times" in e["message"], e
    assert d.request("GET", "/healthz").status == 200


def test_chunked_body_over_the_limit_gets_its_413(d):
    body = json.dumps({"cmd": ["true"], "stdin": "x" * (2 * MAX_BODY)}).encode()
    out, end = raw(d, POST + auth(d) + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))
    json_error(out, 413, "payload_too_large")
    assert end == "closed", end
    # Within the limit, chunked works.
    body = json.dumps({"cmd": ["echo", "hi"]}).encode()
    out, _ = raw(d, POST + auth(d) + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 7))
    st, _, b, _ = one_answer(out)
    assert st == 200 and json.loads(b)["stdout"] == "hi\n", out
    # A refused request (no token) with a chunked body over the limit: its 401.
    out, _ = raw(d, POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 2 * MAX_BODY))
    json_error(out, 401, "unauthorized")


def test_declared_body_a_little_over_the_limit_is_read_then_refused(d):
    """Python's http.client sends the whole body before it reads: it gets the
    413, not a broken pipe."""
    for _ in range(3):
        r = d.request("POST", "/v1/runs", {"cmd": ["true"], "stdin": "x" * (4 * MAX_BODY)},
                      d.tokens["user"])
        assert r.status == 413 and r.json["error"]["code"] == "payload_too_large", r


# ---- what a client sends that must not be cut short or wedge hulld -----------

def test_declared_body_far_over_the_limit_gets_its_413(d):
    """A Content-Length over --max-body marks the request refused before any
    of the body comes: the parts that follow are dropped, up to a point, and
    the client gets the 413 rather than a reset."""
    for size in (MAX_BODY + 1, 16 * MAX_BODY):
        body = json.dumps({"cmd": ["true"], "stdin": "x" * size}).encode()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(d.sock)
        out = b""
        try:
            # The first part alone, well below the limit, then the rest.
            s.sendall(POST + auth(d) + b"Content-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:1000])
            time.sleep(0.3)
            s.sendall(body[1000:])
            while one_answer(out) is None:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (ConnectionResetError, BrokenPipeError) as e:
            raise AssertionError(f"{size}: {e!r} instead of an answer") from None
        finally:
            s.close()
        json_error(out, 413, "payload_too_large")
    assert d.request("GET", "/healthz").status == 200


@pytest.mark.parametrize("path", [
    "/v1/sandboxes/sb-1%00x",
    "/v1/sandboxes/sb-1/fs/tmp/keep%00/../../etc/passwd",
    "/v1/runs?state=done%00x",
])
def test_an_encoded_nul_in_the_uri_is_refused(d, path):
    r = d.request("GET", path, token=d.tokens["user"])
    assert r.status == 400 and "NUL" in strict_json(r)["error"]["message"], r


@pytest.mark.parametrize("doc, field", [
    ({"cmd": ["echo", "a\u0000b"]}, "cmd[1]"),
    ({"cmd": ["true"], "env": {"A": "x\u0000y"}}, "env.A"),
    ({"cmd": ["true"], "workdir": "/tmp\u0000/x"}, "workdir"),
])
def test_a_nul_in_a_request_string_is_refused_by_name(d, doc, field):
    r = d.request("POST", "/v1/runs", doc, d.tokens["user"])
    e = strict_json(r)["error"]
    assert r.status == 400 and e["message"].startswith(f"{field}: holds a NUL byte"), r


def test_an_env_name_holding_an_equals_sign_is_refused(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["true"], "env": {"A=B": "x"}}, d.tokens["user"])
    assert r.status == 400 and "env.A=B: a name cannot hold '='" in r.json["error"]["message"], r


def test_the_audit_log_keeps_a_bounded_path(d):
    last = strict_json(d.request("GET", "/v1/audit", token=d.tokens["admin"]))["entries"]
    since = last[-1]["id"] if last else 0
    long = "/v1/" + "a" * 20000
    out, _ = raw(d, f"POST {long} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    json_error(out, 404, "not_found")
    es = strict_json(d.request("GET", f"/v1/audit?since_id={since}",
                               token=d.tokens["admin"]))["entries"]
    assert len(es) == 1 and es[0]["status"] == 404, es
    assert es[0]["path"] == long[:1024], len(es[0]["path"])


def test_an_exec_result_too_large_for_one_answer_is_refused_and_the_sandbox_lives(d):
    """50 MiB of control characters is 300 MiB of JSON (\\u0001 each): more
    than one answer between the keeper and hulld carries. The keeper says
    so instead of sending it; hulld answers, the sandbox goes on."""
    t = d.tokens["user"]
    sid = d.request("POST", "/v1/sandboxes", {"lifetime": "5m"}, t).json["id"]
    try:
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                      {"cmd": ["sh", "-c", "head -c 50M /dev/zero | tr '\\0' '\\1'"],
                       "limits": {"output": "64M", "wall_time": "120s", "cpu_time": "120s"}},
                      t, timeout=300)
        e = strict_json(r)["error"]
        assert r.status == 413 and "lower limits.output" in e["message"], r
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["echo", "still"]}, t)
        assert ex.status == 200 and ex.json["stdout"] == "still\n", ex
        assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "running"
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200


def test_an_upload_through_a_symlinked_directory_is_refused(d):
    """PUT …/files/{path} walks one directory at a time: a symlink on the
    way would resolve against that directory (up -> / landing in /tmp/d),
    where neither the sandbox nor a GET of the same path finds the file."""
    t = d.tokens["user"]
    sid = d.request("POST", "/v1/sandboxes", {"lifetime": "5m"}, t).json["id"]
    try:
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["sh", "-c", "mkdir /tmp/d /tmp/real && ln -s / /tmp/d/up && "
                                "ln -s /tmp/real /tmp/abs"]}, t)
        assert ex.status == 200 and ex.json["exit_code"] == 0, ex
        for path in ("d/up/usr/pwn", "abs/f"):
            r = d.request("PUT", f"/v1/sandboxes/{sid}/files/{path}", b"X", t, raw=True)
            assert r.status == 400, (path, r)
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["sh", "-c", "ls /tmp/d /tmp/real"]}, t)
        assert ex.json["stdout"].split() == ["/tmp/d:", "up", "/tmp/real:"], ex.json
        r = d.request("PUT", f"/v1/sandboxes/{sid}/files/new/dir/f", b"X", t, raw=True)
        assert r.status == 200, r
        assert d.request("GET", f"/v1/sandboxes/{sid}/files/new/dir/f", token=t).body == b"X"
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200


def test_a_request_head_sent_a_byte_at_a_time_is_cut_at_the_timeout(d):
    """--client-timeout (5 s here) bounds the whole request head, not only
    the silence between its bytes: a client trickling header lines (each
    within the idle timer) is closed, so a few of them cannot hold every
    connection slot without a token. Keep-alive and slow bodies are
    unaffected (the tests above use both)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(d.sock)
    start = time.monotonic()
    closed_after = None
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(120):  # up to 120 s of trickling, a line a second
            time.sleep(1)
            try:
                s.sendall(f"X-{i}: a\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
    finally:
        s.close()
    assert closed_after is not None, "still open after 120 s of trickled headers"
    assert d.request("GET", "/healthz").status == 200


def test_a_run_result_too_large_for_one_answer_is_an_error_not_a_dead_worker(d):
    """As for an exec: the worker answers with the error rather than send a
    result no frame carries (which hulld took for a dead worker)."""
    t = d.tokens["user"]
    r = d.request("POST", "/v1/runs",
                  {"cmd": ["sh", "-c", "head -c 50M /dev/zero | tr '\\0' '\\1'"],
                   "limits": {"output": "64M", "wall_time": "120s", "cpu_time": "120s"}},
                  t, timeout=300)
    assert r.status == 200, r
    assert r.json["verdict"] == "internal_error" and "lower limits.output" in r.json["error"], \
        {k: v for k, v in r.json.items() if k not in ("stdout", "stderr")}
    ok = d.request("POST", "/v1/runs", {"cmd": ["echo", "next"]}, t)
    assert ok.status == 200 and ok.json["stdout"] == "next\n", ok
    assert "died" not in d.log.read_text()


def test_a_refused_requests_body_trickled_is_cut_at_the_timeout(d):
    """A request refused at its head (no token here) has its body drained,
    but within the head's deadline: trickling it a byte at a time does not
    keep the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(d.sock)
    closed = False
    try:
        s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        for _ in range(120):
            time.sleep(1)
            try:
                s.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
    finally:
        s.close()
    assert closed, "still open after 120 s of a trickled body without a token"
