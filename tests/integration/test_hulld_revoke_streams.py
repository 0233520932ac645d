"""hulld: a revoked token's open streams end.

A token is checked at each request, but a followed output stream or a
watch is one request that may last for days: one opened before `hull token
revoke` went on delivering what the sandbox did for as long as its client
liked. Now it ends at its next delivery (a watch: within its tick), while
the process itself runs on."""
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, Hulld

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

TICKER = ["sh", "-c", "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.2; done"]


@pytest.fixture
def d(tmp_path):
    h = Hulld(tmp_path)
    Path(h.state).mkdir(parents=True)
    h.admin = h.token("admin", "ops")
    h.start()
    yield h
    assert h.stop() == 0, h.log.read_text()


def token_and_id(d):
    tok = d.token("user", "acme")
    r = subprocess.run([HULL, "token", "list", "--state-dir", d.state, "--json"],
                       capture_output=True, text=True, check=True, timeout=120)
    return tok, json.loads(r.stdout)[-1]["id"]


def open_stream(d, path, tok):
    """A GET of path on a raw socket, its head read: the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)  # a stream that never ends fails the test here
    s.connect(d.sock)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    assert got.startswith(b"HTTP/1.1 200 "), got
    return s, got.split(b"\r\n\r\n", 1)[1]


def read_to_end(s, got=b"", most=None):
    """What s gives until it ends; failing once more than `most` new
    ticker lines came (a stream that goes on: the ticker writes forever)."""
    start = got.count(b"line")
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
        assert most is None or got.count(b"line") - start <= most, "the stream goes on"
    s.close()
    return got


def revoke(d, tid):
    subprocess.run([HULL, "token", "revoke", "--state-dir", d.state, tid], check=True,
                   capture_output=True, timeout=120)


def test_revoked_tokens_streams_end(d):
    tok, tid = token_and_id(d)
    r = d.request("POST", "/v1/sandboxes", {}, tok)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": TICKER}, tok)
        assert r.status == 201, r
        pid = r.json["id"]
        out, got = open_stream(d, f"/v1/sandboxes/{sid}/processes/{pid}/output", tok)
        watch, _ = open_stream(d, f"/v1/sandboxes/{sid}/fs/tmp?op=watch", tok)
        while b"line1" not in got:
            got += out.recv(65536)
        revoke(d, tid)
        got = read_to_end(out, got, most=300)  # a minute of the ticker
        assert b'"type":"result"' not in got, got[-300:]
        read_to_end(watch)
        # Only the streams ended: the process runs on, and its owner's
        # next request is refused as before.
        r = d.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}", token=d.admin)
        assert r.status == 200 and r.json["state"] == "running", r
        assert d.request("GET", f"/v1/sandboxes/{sid}", token=tok).status == 401
        # Another token's stream is not touched by the revocation.
        other = d.token("user", "acme")
        s, got = open_stream(d, f"/v1/sandboxes/{sid}/processes/{pid}/output?follow=true", other)
        n = got.count(b"line")
        while got.count(b"line") < n + 3:  # the ticker's next lines come
            got += s.recv(65536)
        s.close()
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.admin).status == 200
