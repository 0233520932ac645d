"""hulld: the requests that outlive their start — waits, watches, streams,
downloads — treated alike.

- A draining hulld answers a `…/wait` in progress as it answers a new
  request: 503 `shutting_down` with Retry-After (it said 409 `conflict`), and
  a followed output stream ends with that error line.
- An open watch is use of its sandbox: the idle lifetime does not run out
  under it.
- A download is one of its tenant's streams (`--tenant-streams`).
- A `…/wait` or a download in progress ends when its token is revoked, as
  output streams and watches already did."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, Hulld, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

BIG = 32 << 20  # more than any socket buffer holds: a download stays in progress


@pytest.fixture
def make(tmp_path):
    started = []

    def new(*extra):
        h = Hulld(tmp_path / f"h{len(started)}", *extra)
        Path(h.state).mkdir(parents=True)
        h.tok = h.token("user", "acme")
        started.append(h)
        return h

    yield new
    for h in started:
        if h.proc:
            assert h.stop() == 0, h.log.read_text()
        assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def open_raw(h, method, path, token, body=b""):
    """A request on a socket of its own, its head read: (status, headers
    text, socket); the body is left on the socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)  # a request that never ends fails the test here
    s.connect(h.sock)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        got = s.recv(1)
        assert got, head
        head += got
    return int(head.split()[1]), head.decode(), s


def read_all(s):
    got = b""
    while True:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def sandbox_with_sleeper(h, tok, body=None):
    r = h.request("POST", "/v1/sandboxes", body or {}, tok)
    assert r.status == 201, r
    sid = r.json["id"]
    r = h.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["sleep", "100000"]}, tok)
    assert r.status == 201, r
    return sid, r.json["id"]


def big_file(h, sid, tok):
    r = h.request("POST", f"/v1/sandboxes/{sid}/exec",
                  {"cmd": ["sh", "-c", f"head -c {BIG} /dev/urandom > /tmp/big"],
                   "limits": {"wall_time": "120s", "cpu_time": "60s"}}, tok, timeout=180)
    assert r.status == 200 and r.json["exit_code"] == 0, r
    return f"/v1/sandboxes/{sid}/fs/tmp/big"


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    return t, out


def test_a_draining_hulld_answers_a_wait_503_with_retry_after(make):
    h = make().start()
    sid, pid = sandbox_with_sleeper(h, h.tok)
    # A run keeps hulld draining while the new request below is refused.
    r = h.request("POST", "/v1/runs", {"cmd": ["sleep", "10"], "async": True}, h.tok)
    assert r.status in (200, 201, 202), r
    status, _, out = open_raw(h, "GET", f"/v1/sandboxes/{sid}/processes/{pid}/output?follow=true",
                              h.tok)
    assert status == 200
    t, waited = in_thread(lambda: h.request(
        "POST", f"/v1/sandboxes/{sid}/processes/{pid}/wait", {"timeout": "120s"}, h.tok,
        timeout=180))
    time.sleep(1)  # the wait reaches the sandbox's keeper (were it later: 503 all the same)
    h.note_helpers()
    h.proc.send_signal(signal.SIGTERM)
    t.join(180)
    assert waited, "the wait never ended"
    r = waited[0]
    assert r.status == 503 and r.json["error"]["code"] == "shutting_down", r
    assert int(r.headers["Retry-After"]) > 0, r.headers
    lines = [json.loads(x) for x in read_all(out).split(b"\r\n") if x.startswith(b"{")]
    assert lines and lines[-1]["type"] == "error", lines
    assert lines[-1]["error"]["code"] == "shutting_down", lines
    r = h.request("POST", "/v1/runs", {"cmd": ["true"]}, h.tok)
    assert r.status == 503 and r.json["error"]["code"] == "shutting_down", r
    assert int(r.headers["Retry-After"]) > 0, r.headers
    assert h.proc.wait(180) == 0
    h.proc = None


def test_an_open_watch_keeps_its_sandbox_in_use(make):
    h = make().start()
    r = h.request("POST", "/v1/sandboxes", {"lifetime": "2s"}, h.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    status, _, watch = open_raw(h, "GET", f"/v1/sandboxes/{sid}/fs/tmp?op=watch", h.tok)
    assert status == 200
    time.sleep(8)  # four idle lifetimes, nothing but the watch
    r = h.request("GET", f"/v1/sandboxes/{sid}", token=h.tok)
    assert r.status == 200 and r.json["state"] == "running", r
    watch.close()
    # Once nobody watches, the idle lifetime runs out as before.
    assert wait_until(lambda: h.request("GET", f"/v1/sandboxes/{sid}", token=h.tok).json.get(
        "state") != "running", 120)


def test_downloads_count_among_a_tenants_streams(make):
    h = make("--tenant-streams", "1").start()
    r = h.request("POST", "/v1/sandboxes", {}, h.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    path = big_file(h, sid, h.tok)
    status, _, first = open_raw(h, "GET", path, h.tok)
    assert status == 200
    # The first is still in progress (unread): the tenant's one place is taken.
    r = h.request("GET", path, token=h.tok, raw=True)
    assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded", r
    first.close()
    assert wait_until(lambda: h.request("GET", f"{path}?op=stat", token=h.tok).status == 200)
    assert wait_until(lambda: h.request("GET", path, token=h.tok, raw=True).status == 200, 60)
    assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=h.tok).status == 200


def revoke_newest(h):
    """Revoke the token made last (`token list` lists them in order)."""
    r = subprocess.run([HULL, "token", "list", "--state-dir", h.state, "--json"],
                       capture_output=True, text=True, check=True, timeout=120)
    tid = json.loads(r.stdout)[-1]["id"]
    subprocess.run([HULL, "token", "revoke", "--state-dir", h.state, tid], check=True,
                   capture_output=True, timeout=120)


def revoked_setup(make):
    h = make()
    admin = h.token("admin", "ops")
    h.start()
    tok = h.token("user", "acme")  # the newest token: the one revoke_newest() takes
    sid, pid = sandbox_with_sleeper(h, tok)
    return h, admin, tok, sid, pid


def test_a_wait_ends_when_its_token_is_revoked(make):
    h, admin, tok, sid, pid = revoked_setup(make)
    t, waited = in_thread(lambda: h.request(
        "POST", f"/v1/sandboxes/{sid}/processes/{pid}/wait", {"timeout": "90s"}, tok,
        timeout=180))
    time.sleep(1)  # the wait reaches the sandbox's keeper
    revoke_newest(h)
    t.join(180)
    assert waited and waited[0].status == 401, waited
    assert waited[0].json["error"]["code"] == "unauthorized", waited
    # Only the wait ended: the process runs on.
    r = h.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}", token=admin)
    assert r.status == 200 and r.json["state"] == "running", r
    assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=admin).status == 200


def test_a_download_ends_when_its_token_is_revoked(make):
    h, admin, tok, sid, pid = revoked_setup(make)
    path = big_file(h, sid, tok)
    status, head, dl = open_raw(h, "GET", path, tok)
    assert status == 200 and f"Content-Length: {BIG}" in head, head
    revoke_newest(h)
    got = read_all(dl)
    assert len(got) < BIG, "the download went on after its token was revoked"
    # Another token's download of the same file is whole.
    r = h.request("GET", path, token=admin, raw=True, timeout=180)
    assert r.status == 200 and len(r.body) == BIG, r
    assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=admin).status == 200
