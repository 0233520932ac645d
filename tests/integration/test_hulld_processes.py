"""hulld: background processes in a sandbox, streamed output, PTY, re-attach.

A real hulld on a tmp socket, talked to over raw HTTP (http.client): NDJSON
streams from exec and from a process's output, complete and in order; a
reader that goes does not stop its process, and one that comes back late is
told what it lost (cut); stdin, close_stdin, signal, wait; a PTY whose
resize `stty size` sees; per-process limits applied or refused by name;
404 across tenants, 409 in the wrong state; and after the sandbox is
deleted nothing is left: no process, no sandbox state or cgroup, no fd of
hulld's."""
import base64
import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, UnixConnection, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

NDJSON = {"Accept": "application/x-ndjson"}
GENEROUS = {"cpu_time": "120s", "wall_time": "300s"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    # A small buffer per process, so a late reader's cut is quick to make.
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--process-buffer", "64K")
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.other = h.token("user", "globex")
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


@pytest.fixture
def sb(d):
    r = d.request("POST", "/v1/sandboxes", {}, d.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    yield sid
    d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok)


class Stream:
    """An NDJSON response read line by line as it comes."""

    def __init__(self, d, method, path, body=None, token=None, headers=None):
        self.c = UnixConnection(d.sock, timeout=120)
        h = {"Authorization": f"Bearer {token or d.tok}", **(headers or {})}
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.c.request(method, path, body=body, headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status

    def lines(self):
        while True:
            line = self.r.readline()
            if not line:
                return
            assert line.endswith(b"\n")
            yield json.loads(line)

    def close(self):
        self.c.close()


def chunk_bytes(ev):
    return base64.b64decode(ev["data_b64"]) if "data_b64" in ev else ev["data"].encode()


def collect(events):
    """Output bytes of a stream's events (checking their offsets follow each
    other), with its cut and result lines."""
    out, cuts, result, offset = b"", [], None, None
    for ev in events:
        assert result is None, "nothing after the result line"
        if ev["type"] == "cut":
            cuts.append(ev)
            offset = ev["offset"] + ev["lost"]
        elif ev["type"] in ("stdout", "stderr"):
            if offset is not None:
                assert ev["offset"] == offset, (ev["offset"], offset)
            data = chunk_bytes(ev)
            out += data
            offset = ev["offset"] + len(data)
        elif ev["type"] == "result":
            result = ev["result"]
        else:
            assert ev["type"] in ("start", "error"), ev
            assert ev["type"] != "error", ev
    return out, cuts, result


def start(d, sid, body, token=None):
    r = d.request("POST", f"/v1/sandboxes/{sid}/processes", body, token or d.tok)
    assert r.status == 201, r
    return r.json


def verb(d, sid, pid, name, body=None, raw=False, token=None):
    return d.request("POST", f"/v1/sandboxes/{sid}/processes/{pid}/{name}", body,
                     token or d.tok, raw=raw)


def read_until(lines, needle):
    seen = b""
    for ev in lines:
        if ev["type"] in ("stdout", "stderr"):
            seen += chunk_bytes(ev)
            if needle in seen:
                return seen
        assert ev["type"] not in ("result", "error"), (ev, seen)
    raise AssertionError(f"stream ended before {needle!r}: {seen!r}")


# ---- streaming ----------------------------------------------------------------


def test_exec_streams_100000_lines_in_order(d, sb):
    st = Stream(d, "POST", f"/v1/sandboxes/{sb}/exec",
                {"cmd": ["seq", "1", "100000"], "limits": GENEROUS}, headers=NDJSON)
    assert st.status == 200
    assert st.r.getheader("Content-Type") == "application/x-ndjson"
    events = list(st.lines())
    st.close()
    assert events[0]["type"] == "start"
    proc = events[0]["process"]
    assert proc["id"].startswith("p-") and proc["sandbox"] == sb
    out, cuts, result = collect(events)
    assert cuts == []
    assert out == "".join(f"{i}\n" for i in range(1, 100001)).encode()
    assert result["verdict"] == "ok" and result["exit_code"] == 0 and result["sandbox"] == sb
    # The same exec without the header answers as before: one result.
    r = d.request("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": ["echo", "hi"]}, d.tok)
    assert r.status == 200 and r.json["stdout"] == "hi\n"


def test_process_output_follow_stdout_and_stderr(d, sb):
    p = start(d, sb, {"cmd": ["sh", "-c", "echo out; echo err >&2; printf '\\377\\376'"]})
    assert p["state"] in ("running", "exited") and p["pty"] is False
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    events = list(st.lines())
    st.close()
    by = {"stdout": b"", "stderr": b""}
    for e in events:
        if e["type"] in by:
            by[e["type"]] += chunk_bytes(e)
    assert by == {"stdout": b"out\n\xff\xfe", "stderr": b"err\n"}, events
    # Text as text; what is not UTF-8 as base64.
    assert any(e.get("data", "").startswith("out") for e in events), events
    assert any(base64.b64decode(e.get("data_b64", "")) == b"\xff\xfe" for e in events), events
    _, _, result = collect(events)
    assert result["exit_code"] == 0


def test_split_utf8_character_is_held_back(d, sb):
    # "é" is 2 bytes, written one at a time with a pause between.
    p = start(d, sb, {"cmd": ["sh", "-c", "printf '\\303'; sleep 1; printf '\\251\\n'"]})
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    events = list(st.lines())
    st.close()
    chunks = [e for e in events if e["type"] == "stdout"]
    assert all("data" in e for e in chunks), chunks
    assert "".join(e["data"] for e in chunks) == "é\n"


def test_disconnect_does_not_stop_and_stdin_round_trip(d, sb):
    p = start(d, sb, {"cmd": ["sh", "-c", "echo first; read x; echo got-$x"], "stdin": True})
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output?follow=true")
    read_until(st.lines(), b"first\n")
    st.close()  # the reader goes; the process waits on its stdin still
    r = d.request("GET", f"/v1/sandboxes/{sb}/processes/{p['id']}", token=d.tok)
    assert r.status == 200 and r.json["state"] == "running"
    r = verb(d, sb, p["id"], "stdin", b"hello\n", raw=True)
    assert r.status == 200 and r.json == {"written": 6}
    r = verb(d, sb, p["id"], "wait", {"timeout": "60s"})
    assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 0
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output?offset=0")
    out, cuts, result = collect(st.lines())
    st.close()
    assert out == b"first\ngot-hello\n" and cuts == [] and result["verdict"] == "ok"
    # From an offset: only what follows it.
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output?offset=6")
    out, _, _ = collect(st.lines())
    st.close()
    assert out == b"got-hello\n"


def test_reattach_late_reports_the_cut(d, sb):
    # 288 894 bytes through a 64 KiB buffer: a reader from 0 finds a cut.
    p = start(d, sb, {"cmd": ["sh", "-c", "seq 1 50000; echo end"]})
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    next(st.lines())
    st.close()
    r = verb(d, sb, p["id"], "wait", {"timeout": "120s"})
    assert r.json["state"] == "exited"
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output?offset=0&follow=false")
    events = list(st.lines())
    st.close()
    assert events[0]["type"] == "cut" and events[0]["offset"] == 0
    lost = events[0]["lost"]
    full = ("".join(f"{i}\n" for i in range(1, 50001)) + "end\n").encode()
    assert 0 < lost < len(full) - 32768
    out, _, result = collect(events)
    assert out == full[lost:] and result["exit_code"] == 0
    r = d.request("GET", f"/v1/sandboxes/{sb}/processes/{p['id']}", token=d.tok)
    assert r.json["output"] == {"start": lost, "end": len(full)}


def test_a_sandboxs_processes_hold_at_most_eight_buffers_together(d, sb):
    # The keeper is outside the sandbox's memory limit: 24 processes of
    # 128 KiB each would hold 24 buffers (64 KiB here); together they keep
    # at most 8, each still with what it wrote last.
    n, size = 24, 128 << 10
    procs = [start(d, sb, {"cmd": ["sh", "-c", f"head -c {size} /dev/zero; echo END-{i}"]})
             for i in range(n)]
    kept = 0
    for i, p in enumerate(procs):
        r = verb(d, sb, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited", r.json
    for i, p in enumerate(procs):
        st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output?offset=0&follow=false")
        out, cuts, result = collect(st.lines())
        st.close()
        assert result["exit_code"] == 0 and cuts, (i, result, cuts)
        assert out.endswith(f"END-{i}\n".encode()), (i, out[-20:])
        kept += len(out)
    assert kept <= 8 * (64 << 10), kept


def test_slow_reader_blocks_nobody_and_costs_hulld_nothing(d, sb):
    def rss():
        for line in open(f"/proc/{d.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    before = rss()
    # 64 MiB of output; its reader takes one line, then nothing for a while.
    p = start(d, sb, {"cmd": ["head", "-c", "67108864", "/dev/zero"]})
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    next(st.lines())
    # Others are served meanwhile, in the same sandbox.
    r = d.request("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": ["echo", "other"]}, d.tok)
    assert r.status == 200 and r.json["stdout"] == "other\n"
    r = verb(d, sb, p["id"], "wait", {"timeout": "240s"})
    assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 0
    out, cuts, result = collect(st.lines())
    st.close()
    assert cuts and result["exit_code"] == 0  # it fell behind: told so
    assert rss() - before < 48 << 20


def test_ends_though_a_child_it_left_writes_on(d, sb):
    p = start(d, sb, {"cmd": ["sh", "-c", "(while :; do echo x; done) & echo main"]})
    r = verb(d, sb, p["id"], "wait", {"timeout": "120s"})
    assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 0


def test_processes_served_while_an_exec_runs(d):
    sid = d.request("POST", "/v1/sandboxes", {}, d.tok).json["id"]
    try:
        p = start(d, sid, {"cmd": ["sh", "-c",
                                   "while [ ! -e /tmp/started ]; do sleep 0.1; done; echo from-p"]})
        answers = []
        t = threading.Thread(target=lambda: answers.append(d.request(
            "POST", f"/v1/sandboxes/{sid}/exec",
            {"cmd": ["sh", "-c", "touch /tmp/started; sleep 600"],
             "limits": {"wall_time": "900s"}}, d.tok)))
        t.start()
        # The non-streamed exec holds the sandbox; its processes' output and
        # ends still come.
        st = Stream(d, "GET", f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
        out, _, result = collect(st.lines())
        st.close()
        assert out == b"from-p\n" and result["exit_code"] == 0
        assert t.is_alive() and answers == []
    finally:
        # Its DELETE stops the exec at once (the sandbox's kill fd).
        d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok)
        t.join(120)
    assert answers[0].status == 200 and answers[0].json["verdict"] == "killed", answers


def test_a_stalled_reader_does_not_cost_a_live_one_anything(d, sb):
    # 1.3 MB through a 64 KiB buffer, two followers: one stalls after a
    # line, the other reads on and gets every byte (the stalled one lets
    # go of the process after a while and is cut instead).
    p = start(d, sb, {"cmd": ["sh", "-c", "read x; seq 1 200000"], "stdin": True})
    url = f"/v1/sandboxes/{sb}/processes/{p['id']}/output"
    slow, fast = Stream(d, "GET", url), Stream(d, "GET", url)
    slow_lines = slow.lines()
    verb(d, sb, p["id"], "stdin", b"go\n", raw=True)
    next(slow_lines)
    out, cuts, result = collect(fast.lines())
    fast.close()
    assert cuts == [] and result["exit_code"] == 0
    assert out == "".join(f"{i}\n" for i in range(1, 200001)).encode()
    _, slow_cuts, slow_result = collect(slow_lines)
    slow.close()
    assert slow_cuts and slow_result["exit_code"] == 0


def test_a_sandboxs_processes_queue_at_most_8_mib_of_stdin_together(d, sb):
    # 1 MiB each for processes that never read: the keeper (outside the
    # sandbox's memory limit) takes 8 MiB for them all, plus what their
    # pipes hold, and says so in "written".
    body, written, procs = b"x" * (1 << 20), [], []
    for _ in range(12):
        procs.append(start(d, sb, {"cmd": ["sleep", "600"], "stdin": True}))
        r = verb(d, sb, procs[-1]["id"], "stdin", body, raw=True)
        assert r.status == 200, r
        written.append(r.json["written"])
    for p in procs:
        verb(d, sb, p["id"], "signal", {"signal": "KILL"})
    assert sum(written) <= (8 << 20) + 12 * (64 << 10), written
    assert written[-1] < len(body), written


def test_close_stdin_gives_eof(d, sb):
    p = start(d, sb, {"cmd": ["cat"], "stdin": True})
    assert p["stdin"] is True
    assert verb(d, sb, p["id"], "stdin", b"abc", raw=True).json == {"written": 3}
    r = verb(d, sb, p["id"], "close_stdin")
    assert r.status == 200 and r.json["stdin"] is False
    r = verb(d, sb, p["id"], "wait", {"timeout": "60s"})
    assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 0
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    out, _, _ = collect(st.lines())
    st.close()
    assert out == b"abc"
    # stdin of an exited process: 409.
    r = verb(d, sb, p["id"], "stdin", b"more", raw=True)
    assert r.status == 409, r


def test_signal_and_wait(d, sb):
    p = start(d, sb, {"cmd": ["sleep", "1000"]})
    r = verb(d, sb, p["id"], "wait", {"timeout": "1s"})
    assert r.status == 200 and r.json["state"] == "running" and "result" not in r.json
    r = verb(d, sb, p["id"], "signal", {"signal": "TERM"})
    assert r.status == 200
    r = verb(d, sb, p["id"], "wait", {"timeout": "60s"})
    assert r.json["state"] == "exited"
    assert r.json["result"]["signal"] == 15 and r.json["result"]["verdict"] == "signaled"
    assert "ended" in r.json
    assert verb(d, sb, p["id"], "signal", {"signal": 9}).status == 409
    r = verb(d, sb, p["id"], "signal", {"signal": "NOPE"})
    assert r.status == 400 and r.json["error"]["field"] == "signal"
    lst = d.request("GET", f"/v1/sandboxes/{sb}/processes", token=d.tok).json["processes"]
    assert p["id"] in [x["id"] for x in lst]


def test_a_client_following_or_waiting_keeps_the_sandbox_in_use(d):
    """A client following a quiet process's output, or waiting for it to
    end, is using the sandbox (as a non-streamed exec is): its idle
    lifetime must not run out under the open request and destroy the
    sandbox with the process the client waits for."""
    r = d.request("POST", "/v1/sandboxes", {"lifetime": "3s"}, d.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        p = start(d, sid, {"cmd": ["head", "-n", "1"], "stdin": True})
        stream = Stream(d, "GET", f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
        assert stream.status == 200
        waited = {}

        def waiter():
            waited["r"] = verb(d, sid, p["id"], "wait", {"timeout": "10m"})

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        # Well past the lifetime: an idle sandbox is gone by then (the
        # reaper looks every second).
        time.sleep(9)
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes/{p['id']}/stdin", b"go\n",
                      d.tok, raw=True)
        assert r.status == 200, r
        out, _, result = collect(stream.lines())
        stream.close()
        assert out == b"go\n" and result["verdict"] == "ok", (out, result)
        t.join(120)
        assert waited["r"].status == 200 and waited["r"].json["state"] == "exited", waited
    finally:
        d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok)


def open_raw(h, method, path, token, body=b""):
    """A request on a socket of its own: (status code, socket), the socket
    left open (a stream goes on on it)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(h.sock)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n" not in head:
        got = s.recv(1)
        assert got, head
        head += got
    return int(head.split()[1]), s


def test_one_tenant_cannot_hold_every_connection(tmp_path):
    """Output streams, waits, watches and uploads have no idle timeout (or
    a body as slow as its client likes): the ones a tenant holds open are
    bounded (a quarter of --max-connections unless --tenant-streams says),
    so that tenant cannot take every connection and lock the other tenants
    (and /healthz) out."""
    h = Hulld(tmp_path, "--max-connections", "24")
    Path(h.state).mkdir(parents=True)
    a, b = h.token("user", "acme"), h.token("user", "globex")
    h.start()
    held = []
    try:
        sids = {}
        for who, tok in (("a", a), ("b", b)):
            r = h.request("POST", "/v1/sandboxes", {}, tok)
            assert r.status == 201, r
            sids[who] = r.json["id"]
        p = start(h, sids["a"], {"cmd": ["sleep", "1000"]}, token=a)
        out = f"/v1/sandboxes/{sids['a']}/processes/{p['id']}/output"
        watch = f"/v1/sandboxes/{sids['a']}/fs/tmp?op=watch"
        for i in range(5):  # 24 / 4, the sixth an upload
            status, sock = open_raw(h, "GET", out if i % 2 else watch, a)
            held.append(sock)
            assert status == 200, (i, status)
        # An upload in progress (of any size, as slow as its client likes).
        def slow_upload():
            up = socket.socket(socket.AF_UNIX)
            up.connect(h.sock)
            up.sendall(f"PUT /v1/sandboxes/{sids['a']}/fs/tmp/slow HTTP/1.1\r\nHost: h\r\n"
                       f"Authorization: Bearer {a}\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "1\r\nx\r\n".encode())
            return up

        def upload_holds_the_last_place():
            # The probe below is a stream too: the upload may come in while
            # the probe holds the last place, and be answered 429. Then it
            # is sent again.
            if select.select([held[-1]], [], [], 0)[0]:
                held.pop().close()
                held.append(slow_upload())
                return False
            return h.request("GET", f"{out}?follow=false", token=a).status == 429

        held.append(slow_upload())
        assert wait_until(upload_holds_the_last_place, 120)
        # The next of any kind is refused at once; nothing was started.
        for method, path, body in (
                ("GET", out, b""), ("GET", watch, b""),
                ("POST", f"/v1/sandboxes/{sids['a']}/processes/{p['id']}/wait", b"{}"),
                ("POST", f"/v1/sandboxes/{sids['a']}/exec", b'{"cmd": ["true"]}'),
                ("POST", "/v1/runs", b'{"cmd": ["true"]}'),
                ("PUT", f"/v1/sandboxes/{sids['a']}/fs/tmp/f", b"data")):
            hdr = {"Accept": "application/x-ndjson"} if method == "POST" else None
            r = h.request(method, path, body, a, raw=True, headers=hdr)
            assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded", r
        assert len(h.request("GET", f"/v1/sandboxes/{sids['a']}/processes",
                             token=a).json["processes"]) == 1
        # Another tenant is served, streams included.
        assert h.request("GET", "/healthz").status == 200
        assert h.request("GET", "/v1/sandboxes", token=b).status == 200
        status, sock = open_raw(h, "GET", f"/v1/sandboxes/{sids['b']}/fs/tmp?op=watch", b)
        held.append(sock)
        assert status == 200
        # A stream that ends gives its place back.
        held.pop(0).close()
        assert wait_until(lambda: h.request("GET", f"{out}?follow=false", token=a).status == 200,
                          60)
    finally:
        for sock in held:
            sock.close()
        rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def test_pty_interactive_shell_sees_resize(d, sb):
    p = start(d, sb, {"cmd": ["sh", "-i"], "pty": {"rows": 24, "cols": 80}})
    assert p["pty"] is True
    st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
    lines = st.lines()
    verb(d, sb, p["id"], "stdin", b"stty size\n", raw=True)
    read_until(lines, b"24 80")
    r = verb(d, sb, p["id"], "resize", {"rows": 30, "cols": 100})
    assert r.status == 200
    verb(d, sb, p["id"], "stdin", b"stty size\n", raw=True)
    read_until(lines, b"30 100")
    verb(d, sb, p["id"], "stdin", b"exit 3\n", raw=True)
    out, _, result = collect(lines)
    st.close()
    assert result["exit_code"] == 3
    # Resize of a process without a pty: 409.
    q = start(d, sb, {"cmd": ["true"]})
    assert verb(d, sb, q["id"], "resize", {"rows": 1, "cols": 1}).status == 409


# ---- the sandbox's guarantees hold for what the API starts in it -------------

CONFINED = "grep Seccomp: /proc/self/status; unshare -U true && echo UNSHARED; echo done"


def test_exec_and_processes_run_under_the_sandboxs_seccomp_filter(d, sb):
    """exec, a background process and a PTY process get the built-in filter
    the sandbox's init has: they had none (Seccomp: 0), so `unshare -U` and
    every other denied call worked from them."""
    r = d.request("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": ["sh", "-c", CONFINED]}, d.tok)
    assert r.status == 200, r
    outs = [r.json["stdout"]]
    for pty in (False, True):
        body = {"cmd": ["sh", "-c", CONFINED]}
        if pty:
            body["pty"] = {"rows": 24, "cols": 80}
        p = start(d, sb, body)
        st = Stream(d, "GET", f"/v1/sandboxes/{sb}/processes/{p['id']}/output")
        out, _, result = collect(st.lines())
        st.close()
        assert result["exit_code"] == 0, result
        outs.append(out.decode())
    for out in outs:
        assert "Seccomp:\t2" in out and "done" in out, outs
        assert "UNSHARED" not in out, outs


def test_a_sigxcpu_of_its_own_is_no_cpu_time_limit(d, sb):
    """The verdict comes from the CPU accounting, not from how the program
    died: one that raises SIGXCPU itself, far inside its budget, was
    killed by a signal."""
    r = d.request("POST", f"/v1/sandboxes/{sb}/exec",
                  {"cmd": ["sh", "-c", "kill -XCPU $$"], "limits": {"cpu_time": "60s"}}, d.tok)
    assert r.status == 200, r
    assert (r.json["verdict"], r.json["signal"]) == ("signaled", 24), r.json


# ---- limits and bad input -----------------------------------------------------


def test_wall_time_limit_kills_the_process(d, sb):
    p = start(d, sb, {"cmd": ["sleep", "1000"], "limits": {"wall_time": "1s"}})
    r = verb(d, sb, p["id"], "wait", {"timeout": "120s"})
    assert r.json["state"] == "exited"
    assert r.json["result"]["verdict"] == "wall_time_limit"


def test_output_limit(d, sb):
    p = start(d, sb, {"cmd": ["head", "-c", "10000000", "/dev/zero"],
                      "limits": {"output": "1000"}})
    r = verb(d, sb, p["id"], "wait", {"timeout": "120s"})
    assert r.json["result"]["verdict"] == "output_limit"
    assert r.json["output"]["end"] == 1000


@pytest.mark.parametrize("body,field", [
    ({"cmd": ["true"], "limits": {"memory": "1G"}}, "limits.memory"),
    ({"cmd": ["true"], "limits": {"pids": 10}}, "limits.pids"),
    ({"cmd": ["true"], "limits": {"wall_time": "48h"}}, "limits.wall_time"),
    ({"cmd": ["true"], "limits": {"cpu_time": "25h"}}, "limits.cpu_time"),
    ({"cmd": ["true"], "pty": {"rows": 0, "cols": 80}}, "pty.rows"),
    ({"cmd": ["true"], "stdin": "text"}, "stdin"),
    ({"cmd": ["true"], "isolation": "process"}, "isolation"),
    ({"cmd": []}, "cmd"),
    # a program the sandbox does not have, or cannot execute: the client's error
    ({"cmd": ["no-such-program"]}, "cmd"),
    ({"cmd": ["/etc/passwd"]}, "cmd"),
    ({"cmd": ["true"], "workdir": "/usr/no-such-dir"}, "workdir"),
])
def test_refused_by_name(d, sb, body, field):
    r = d.request("POST", f"/v1/sandboxes/{sb}/processes", body, d.tok)
    assert r.status == 400, r
    assert (r.json["error"]["code"], r.json["error"]["field"]) == ("invalid_request", field), r
    lst = d.request("GET", f"/v1/sandboxes/{sb}/processes", token=d.tok).json
    assert lst["processes"] == []  # nothing half-made


def test_other_tenant_gets_404(d, sb):
    p = start(d, sb, {"cmd": ["sleep", "1000"]})
    base = f"/v1/sandboxes/{sb}/processes"
    for method, path in (("GET", base), ("GET", f"{base}/{p['id']}"),
                         ("GET", f"{base}/{p['id']}/output"),
                         ("POST", f"{base}/{p['id']}/signal")):
        r = d.request(method, path, {"signal": "KILL"} if method == "POST" else None, d.other)
        assert r.status == 404, (path, r)
    assert d.request("GET", f"{base}/p-0000000000000000", token=d.tok).status == 404
    assert d.request("GET", f"{base}/p-0000000000000000/output", token=d.tok).status == 404
    r = d.request("GET", f"/v1/sandboxes/{sb}/processes/{p['id']}", token=d.tok)
    assert r.json["state"] == "running"  # untouched


def test_paused_sandbox_refuses_exec_and_start(d, sb):
    assert d.request("POST", f"/v1/sandboxes/{sb}/pause", token=d.tok).status == 200
    try:
        r = d.request("POST", f"/v1/sandboxes/{sb}/exec", {"cmd": ["true"]}, d.tok,
                      headers=NDJSON)
        assert r.status == 409, r
        r = d.request("POST", f"/v1/sandboxes/{sb}/processes", {"cmd": ["true"]}, d.tok)
        assert r.status == 409, r
    finally:
        assert d.request("POST", f"/v1/sandboxes/{sb}/resume", token=d.tok).status == 200


# ---- nothing left -------------------------------------------------------------


def fds(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def stable_fds(d):
    """hulld's fd count once a connection of an earlier request is gone:
    the same for half a second."""
    last = fds(d)
    for _ in range(100):
        time.sleep(0.5)
        now = fds(d)
        if now == last:
            return now
        last = now
    return last


def test_delete_leaves_nothing(d):
    baseline = stable_fds(d)
    from hulldlib import children
    before = set(children(d.proc.pid))
    r = d.request("POST", "/v1/sandboxes", {}, d.tok)
    sid = r.json["id"]
    keepers = set(children(d.proc.pid)) - before
    assert keepers
    start(d, sid, {"cmd": ["sleep", "1000"]})
    start(d, sid, {"cmd": ["sh", "-i"], "pty": {"rows": 10, "cols": 10}})
    p = start(d, sid, {"cmd": ["sh", "-c", "sleep 1000 & sleep 1000"], "stdin": True})
    st = Stream(d, "GET", f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok).status == 200
    events = list(st.lines())  # the stream ends: its sandbox is gone
    st.close()
    assert events and events[-1]["type"] == "error", events
    assert wait_until(lambda: all(not os.path.exists(f"/proc/{x}") for x in keepers), 30)
    # No more fds than before (one fewer is an earlier client's connection
    # that hulld closed meanwhile).
    assert wait_until(lambda: fds(d) <= baseline, 30), (fds(d), baseline)
    assert wait_until(lambda: d.leaks()[1:] == ([], []), 30), d.leaks()
