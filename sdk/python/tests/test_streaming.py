"""The SDK's issue-14 surface against a stub hulld (stub.py): what each
call sends, and how NDJSON streams, chunked bodies and errors are read,
by the sync Client and by hull.AsyncClient alike. The real daemon is
exercised by test_e2e_streams.py."""
import asyncio
import base64
import io
import json
import threading

import pytest
from stub import Cut, Lines, Stub

import hull

RESULT = {"verdict": "ok", "exit_code": 0, "signal": 0, "cpu_time_ms": 1, "wall_time_ms": 2,
          "max_memory_kb": 9, "stdout": "a\nb\n", "stderr": "e", "files": [],
          "isolation": "container"}
PROC = {"id": "p-1", "sandbox": "s-1", "cmd": ["cat"], "state": "running", "pty": False,
        "started": "2026-12-02T00:00:00Z"}
SBX = {"id": "s-1", "state": "running", "isolation": "container", "metadata": {"team": "ml"}}
ENTRY = {"name": "a.txt", "path": "/work/a.txt", "type": "file", "size": 3, "mode": "0644",
         "mtime": "2026-12-02T00:00:00Z"}


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()
    assert not s.answers, "answers left unused"


@pytest.fixture(params=["sync", "async"])
def api(request, stub):
    """The same calls through either client: ``api.call(lambda c: ...)``
    runs the function on a sync Client, or awaits it on an AsyncClient."""

    class Api:
        kind = request.param

        def client(self):
            cls = hull.Client if self.kind == "sync" else hull.AsyncClient
            return cls(socket_path=stub.path, token="tok")

        def run(self, fn):
            c = self.client()
            if self.kind == "sync":
                return fn(c, self.sb(c))
            return asyncio.run(fn(c, self.sb(c)))

        def sb(self, c):
            if self.kind == "sync":
                return hull.Sandbox(c, hull.SandboxInfo.from_json(SBX))
            return hull.AsyncSandbox(c, hull.SandboxInfo.from_json(SBX))

        async def aw(self, v):
            return await v if asyncio.iscoroutine(v) or isinstance(v, asyncio.Future) else v

    return Api()


def chunk_lines():
    return [{"type": "start", "process": PROC},
            {"type": "stdout", "offset": 0, "data": "héllo\n"},
            {"type": "stderr", "offset": 7, "data_b64": base64.b64encode(b"\xff\xfe").decode()},
            {"type": "cut", "offset": 9, "lost": 100},
            {"type": "stdout", "offset": 109, "data": "end\n"},
            {"type": "result", "result": RESULT}]


# ---- streaming exec -------------------------------------------------------------------


def test_exec_streams_to_callbacks_in_order(stub, api):
    stub.answer(200, Lines(chunk_lines()))
    seen = []

    def body(c, sb):
        kw = dict(on_stdout=lambda t: seen.append(("out", t)),
                  on_stderr=lambda t: seen.append(("err", t)),
                  on_cut=lambda o, n: seen.append(("cut", o, n)),
                  on_start=lambda p: seen.append(("start", p.id, p.state)), timeout=30)
        if api.kind == "sync":
            return sb.exec(["sh", "-c", "x"], **kw)

        async def go():
            async def out(t):  # a coroutine callback is awaited
                seen.append(("out", t))
            kw["on_stdout"] = out
            return await sb.exec(["sh", "-c", "x"], **kw)
        return go()

    r = api.run(body)
    assert isinstance(r, hull.Result) and r.ok and r.stdout == "a\nb\n"
    assert seen == [("start", "p-1", "running"), ("out", "héllo\n"), ("err", "\ufffd\ufffd"),
                    ("cut", 9, 100), ("out", "end\n")]
    req = stub.requests[0]
    assert req["method"] == "POST" and req["path"] == "/v1/sandboxes/s-1/exec"
    assert "application/x-ndjson" in req["headers"]["Accept"]
    assert stub.last_json() == {"cmd": ["sh", "-c", "x"], "limits": {"wall_time": 30}}


def test_exec_without_callbacks_is_one_json_answer(stub, api):
    stub.answer(200, RESULT)
    r = api.run(lambda c, sb: sb.exec("echo", limits={"wall_time": "5s"}, timeout=30))
    assert r.stdout == "a\nb\n"
    assert stub.requests[0]["headers"]["Accept"] == "application/json"
    assert stub.last_json()["limits"] == {"wall_time": "5s"}  # limits win over timeout


def test_exec_against_a_server_without_streaming_still_calls_back(stub, api):
    stub.answer(200, RESULT)
    seen = []
    r = api.run(lambda c, sb: sb.exec("x", on_stdout=seen.append, on_stderr=seen.append))
    assert r.ok and seen == ["a\nb\n", "e"]


@pytest.mark.parametrize("lines,exc,check", [
    ([{"type": "stdout", "offset": 0, "data": "x"},
      {"type": "error", "error": {"code": "conflict", "message": "sandbox is paused"}}],
     hull.Conflict, lambda e: e.message == "sandbox is paused" and e.status == 409),
    ([{"type": "error", "error": {"code": "payload_too_large", "message": "big",
                                  "field": "limits.output"}}],
     hull.PayloadTooLarge, lambda e: e.limit == "limits.output"),
    ([{"type": "stdout", "offset": 0, "data": "x"}], hull.TransportError,
     lambda e: "before the result" in str(e)),
    ([b"not json\n"], hull.TransportError, lambda e: "not JSON" in str(e)),
])
def test_exec_stream_errors(stub, api, lines, exc, check):
    stub.answer(200, Lines(lines))
    with pytest.raises(exc) as ei:
        api.run(lambda c, sb: sb.exec("x", on_stdout=lambda t: None))
    assert check(ei.value)


@pytest.mark.parametrize("code,cls", [
    ("queue_full", hull.RateLimited), ("too_many_pulls", hull.RateLimited),
    ("store_unavailable", hull.Unavailable), ("queue_unavailable", hull.Unavailable),
    ("method_not_allowed", hull.MethodNotAllowed), ("registry_error", hull.RegistryError),
    ("registry_timeout", hull.RegistryError), ("lost", hull.Conflict),
])
def test_an_error_line_is_typed_by_every_code_hulld_sends(stub, api, code, cls):
    """An error after the 200 has no status of its own: its code says the
    class, the same as the status would have (docs/api.md's table)."""
    stub.answer(200, Lines([{"type": "error", "error": {"code": code, "message": "m"}}]))
    with pytest.raises(cls) as ei:
        api.run(lambda c, sb: sb.exec("x", on_stdout=lambda t: None))
    assert ei.value.code == code and ei.value.message == "m"


def test_exec_stream_cut_mid_chunk_is_a_transport_error(stub, api):
    stub.answer(200, Lines([{"type": "stdout", "offset": 0, "data": "x"}], end=False))
    with pytest.raises(hull.TransportError):
        api.run(lambda c, sb: sb.exec("x", on_stdout=lambda t: None))


# ---- processes ------------------------------------------------------------------------


def test_start_sends_the_process_request_and_feeds_stdin(stub, api):
    stub.answer(201, PROC)
    stub.answer(200, {"written": 6})
    stub.answer(200, dict(PROC, state="running"))

    def body(c, sb):
        return sb.start("cat", stdin=b"hello\n", pty=(30, 100), env={"A": 1}, workdir="/w",
                        limits={"cpu_time": "1s"})

    p = api.run(body)
    assert p.id == "p-1" and p.state == "running"
    assert stub.requests[0]["path"] == "/v1/sandboxes/s-1/processes"
    assert json.loads(stub.requests[0]["body"]) == {
        "cmd": ["sh", "-c", "cat"], "stdin": True, "pty": {"rows": 30, "cols": 100},
        "env": {"A": "1"}, "workdir": "/w", "limits": {"cpu_time": "1s"}}
    assert stub.requests[1]["path"] == "/v1/sandboxes/s-1/processes/p-1/stdin"
    assert stub.requests[1]["body"] == b"hello\n"
    assert stub.requests[1]["headers"]["Content-Type"] == "application/octet-stream"
    assert stub.requests[2]["path"] == "/v1/sandboxes/s-1/processes/p-1/close_stdin"


def test_process_verbs(stub, api):
    exited = dict(PROC, state="exited", ended="2026-12-02T00:00:01Z", result=RESULT)
    stub.answer(200, PROC)                       # process(id)
    stub.answer(200, {"processes": [PROC, exited]})
    stub.answer(200, {"written": 2})
    stub.answer(200, PROC)                       # signal
    stub.answer(200, PROC)                       # kill
    stub.answer(200, PROC)                       # resize
    stub.answer(200, PROC)                       # wait: still running
    stub.answer(200, exited)                     # wait: done

    async def aw(v):
        return await v if asyncio.iscoroutine(v) else v

    async def body(c, sb):
        p = await aw(sb.process("p-1"))
        ps = await aw(sb.processes())
        assert [x.id for x in ps] == ["p-1", "p-1"] and ps[1].result.ok
        assert await aw(p.send_stdin("hi")) == 2
        await aw(p.signal(__import__("signal").SIGINT))
        await aw(p.kill())
        await aw(p.resize(50, 132))
        return await aw(p.wait())

    r = asyncio.run(body(*((lambda c: (c, api.sb(c)))(api.client())))) \
        if api.kind == "async" else None
    if api.kind == "sync":
        def sync_body(c, sb):
            p = sb.process("p-1")
            ps = sb.processes()
            assert [x.id for x in ps] == ["p-1", "p-1"] and ps[1].result.ok
            assert p.send_stdin("hi") == 2
            p.signal(__import__("signal").SIGINT)
            p.kill()
            p.resize(50, 132)
            return p.wait()
        r = api.run(sync_body)
    assert r.ok
    paths = [(q["method"], q["path"]) for q in stub.requests]
    base = "/v1/sandboxes/s-1/processes"
    assert paths == [("GET", f"{base}/p-1"), ("GET", base), ("POST", f"{base}/p-1/stdin"),
                     ("POST", f"{base}/p-1/signal"), ("POST", f"{base}/p-1/signal"),
                     ("POST", f"{base}/p-1/resize"), ("POST", f"{base}/p-1/wait"),
                     ("POST", f"{base}/p-1/wait")]
    bodies = [json.loads(q["body"]) for q in stub.requests[3:]]
    assert bodies[:3] == [{"signal": "INT"}, {"signal": "KILL"}, {"rows": 50, "cols": 132}]
    assert bodies[3] == {"timeout": 60.0}


def test_wait_with_a_timeout_gives_up(stub, api):
    stub.answer(200, PROC)
    with pytest.raises(TimeoutError):
        api.run(lambda c, sb: (hull.Process if api.kind == "sync" else hull.AsyncProcess)(
            sb, hull.ProcessInfo.from_json(PROC)).wait(timeout=0.01))
    assert json.loads(stub.requests[0]["body"])["timeout"] <= 0.01


def test_iterating_a_process_resumes_where_the_last_reader_stopped(stub, api):
    lines = chunk_lines()[1:]
    stub.answer(200, Lines(lines[:2], end=False))   # a reader that goes away
    stub.answer(200, Lines(lines[2:]))              # re-attached

    def sync_body(c, sb):
        p = hull.Process(sb, hull.ProcessInfo.from_json(PROC))
        first = []
        for ch in p:
            first.append(ch)
            if len(first) == 1:
                break
        return p, first, list(p)

    async def async_body(c, sb):
        p = hull.AsyncProcess(sb, hull.ProcessInfo.from_json(PROC))
        first = []
        async for ch in p:
            first.append(ch)
            break
        return p, first, [ch async for ch in p]

    p, first, rest = api.run(sync_body if api.kind == "sync" else async_body)
    assert [(c.stream, c.data, c.offset) for c in first] == [("stdout", "héllo\n".encode(), 0)]
    assert [(c.stream, c.data, c.offset, c.lost) for c in rest] == [
        ("cut", b"", 9, 100), ("stdout", b"end\n", 109, 0)]
    q = [r["path"] for r in stub.requests]
    assert q[0].endswith("/processes/p-1/output?offset=0&follow=true")
    assert q[1].endswith("/processes/p-1/output?offset=7&follow=true")
    assert p.offset == 113 and p.state == "exited" and p.result.ok



def test_a_process_stream_cut_short_is_a_transport_error(stub, api):
    """hulld ends a followed stream with the result (or an error line):
    one that stops mid-way (hulld gone, the connection lost) is an error
    the caller sees, never the end of the output; the Process keeps where
    it was, to re-attach."""
    stub.answer(200, Lines(chunk_lines()[1:3], end=False))

    def sync_body(c, sb):
        p = hull.Process(sb, hull.ProcessInfo.from_json(PROC))
        got = []
        with pytest.raises(hull.TransportError):
            for ch in p:
                got.append(ch)
        return p, got

    async def async_body(c, sb):
        p = hull.AsyncProcess(sb, hull.ProcessInfo.from_json(PROC))
        got = []
        with pytest.raises(hull.TransportError):
            async for ch in p:
                got.append(ch)
        return p, got

    p, got = api.run(sync_body if api.kind == "sync" else async_body)
    assert [(c.stream, c.offset) for c in got] == [("stdout", 0), ("stderr", 7)]
    assert p.offset == 9 and p.state == "running" and p.result is None


def test_a_watch_cut_short_is_a_transport_error(stub, api):
    stub.answer(200, Lines([{"type": "create", "path": "/tmp/a", "dir": False}], end=False))

    def sync_body(c, sb):
        got = []
        with pytest.raises(hull.TransportError), sb.files.watch("/tmp") as w:
            for ev in w:
                got.append(ev)
        return got

    async def async_body(c, sb):
        got = []
        with pytest.raises(hull.TransportError):
            async with sb.files.watch("/tmp") as w:
                async for ev in w:
                    got.append(ev)
        return got

    got = api.run(sync_body if api.kind == "sync" else async_body)
    assert [(e.type, e.path) for e in got] == [("create", "/tmp/a")]


def test_a_watch_closed_while_another_thread_iterates_it_ends(stub, api):
    """The usual shape: a thread (or task) iterates the watch, another one
    closes it. The close must not raise, and the iteration must end (it
    used to wait for the next event for ever)."""
    hold = threading.Event()
    stub.answer(200, Lines([{"type": "create", "path": "/tmp/a", "dir": False}], hold=hold))

    def sync_body(c, sb):
        w = sb.files.watch("/tmp")
        got, first = [], threading.Event()

        def reader():
            for ev in w:
                got.append(ev)
                first.set()
            got.append("end")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        assert first.wait(60)
        w.close()
        t.join(60)
        return got, t.is_alive()

    async def async_body(c, sb):
        w = await sb.files.watch("/tmp")
        got, first = [], asyncio.Event()

        async def reader():
            async for ev in w:
                got.append(ev)
                first.set()
            got.append("end")

        t = asyncio.ensure_future(reader())
        await asyncio.wait_for(first.wait(), 60)
        await w.aclose()
        await asyncio.wait([t], timeout=60)
        alive = not t.done()
        t.cancel()
        return got, alive

    try:
        got, alive = api.run(sync_body if api.kind == "sync" else async_body)
    finally:
        hold.set()
    assert not alive
    assert [(e.type, e.path) for e in got[:-1]] == [("create", "/tmp/a")] and got[-1] == "end"


@pytest.mark.parametrize("how", ["read", "read_stream", "download"])
def test_a_download_cut_short_is_a_transport_error(stub, api, how):
    """A file that shrinks while hulld sends it (or hulld stopping) cuts
    the answer short of its Content-Length: never a shorter file read as
    whole."""
    stub.answer(200, Cut(b"x" * 1000, 5000))

    def sync_body(c, sb):
        with pytest.raises(hull.TransportError) as ei:
            if how == "read":
                sb.files.read("/tmp/f")
            elif how == "read_stream":
                list(sb.files.read_stream("/tmp/f"))
            else:
                sb.files.download("/tmp/f", io.BytesIO())
        return ei.value

    async def async_body(c, sb):
        with pytest.raises(hull.TransportError) as ei:
            if how == "read":
                await sb.files.read("/tmp/f")
            elif how == "read_stream":
                [b async for b in sb.files.read_stream("/tmp/f")]
            else:
                await sb.files.download("/tmp/f", io.BytesIO())
        return ei.value

    api.run(sync_body if api.kind == "sync" else async_body)


# ---- files ----------------------------------------------------------------------------


def test_files_write_bytes_and_streams(stub, api):
    for _ in range(4):
        stub.answer(201, ENTRY)
    big = bytes(range(256)) * 5000

    def gen():
        yield b"abc"
        yield b"def"

    def sync_body(c, sb):
        e = sb.files.write("/work/a.txt", b"abc", mode=0o600)
        sb.files.write("rel/a.txt", "é")
        sb.files.write("/work/big", io.BytesIO(big))
        sb.files.write("/work/gen", gen())
        return e

    async def async_body(c, sb):
        e = await sb.files.write("/work/a.txt", b"abc", mode=0o600)
        await sb.files.write("rel/a.txt", "é")
        await sb.files.write("/work/big", io.BytesIO(big))

        async def agen():
            yield b"abc"
            yield b"def"
        await sb.files.write("/work/gen", agen())
        return e

    e = api.run(sync_body if api.kind == "sync" else async_body)
    assert isinstance(e, hull.FileEntry) and e.mode == "0644" and e["size"] == 3
    r = stub.requests
    assert r[0]["method"] == "PUT" and r[0]["path"] == "/v1/sandboxes/s-1/fs/work/a.txt?mode=0600"
    assert r[0]["body"] == b"abc" and not r[0]["chunked"]
    assert r[1]["path"] == "/v1/sandboxes/s-1/fs/tmp/rel/a.txt" and r[1]["body"] == "é".encode()
    assert r[2]["chunked"] and r[2]["body"] == big
    assert r[3]["chunked"] and r[3]["body"] == b"abcdef"


def test_files_read_list_stat_mkdir_remove_rename(stub, api):
    stub.answer(200, b"\x00\x01")
    stub.answer(200, b"x" * 3000000)
    stub.answer(200, {"entries": [ENTRY, dict(ENTRY, name="d", path="/work/d", type="dir")]})
    stub.answer(200, ENTRY)
    stub.answer(404, {"error": {"code": "not_found", "message": "no such file"}})
    stub.answer(201, dict(ENTRY, type="dir"))
    stub.answer(200, {"path": "/work/d", "removed": True})
    stub.answer(200, dict(ENTRY, path="/work/b.txt"))

    async def aw(v):
        return await v if asyncio.iscoroutine(v) else v

    async def body(c, sb):
        assert await aw(sb.files.read("/work/a.txt")) == b"\x00\x01"
        sink = io.BytesIO()
        assert await aw(sb.files.download("/work/big", sink)) == 3000000
        entries = await aw(sb.files.list("/work", depth=2))
        assert [(x.name, x.type, x.is_dir) for x in entries] == [
            ("a.txt", "file", False), ("d", "dir", True)]
        assert (await aw(sb.files.stat("/work/a.txt"))).size == 3
        assert await aw(sb.files.exists("/nope")) is False
        assert (await aw(sb.files.mkdir("/work/d/e"))).type == "dir"
        await aw(sb.files.remove("/work/d", recursive=True))
        assert (await aw(sb.files.rename("/work/a.txt", "/work/b.txt"))).path == "/work/b.txt"

    if api.kind == "sync":
        c = api.client()
        asyncio.run(body(c, api.sb(c)))  # the sync calls, awaited as plain values
    else:
        api.run(body)
    got = [(q["method"], q["path"]) for q in stub.requests]
    f = "/v1/sandboxes/s-1/fs"
    assert got == [("GET", f"{f}/work/a.txt"), ("GET", f"{f}/work/big"),
                   ("GET", f"{f}/work?op=list&depth=2"), ("GET", f"{f}/work/a.txt?op=stat"),
                   ("GET", f"{f}/nope?op=stat"), ("POST", f"{f}/work/d/e?op=mkdir"),
                   ("DELETE", f"{f}/work/d?recursive=true"),
                   ("POST", f"{f}/work/a.txt?op=rename")]
    assert json.loads(stub.requests[-1]["body"]) == {"to": "/work/b.txt"}


def test_watch_gives_events_until_closed(stub, api):
    stub.answer(200, Lines([{"type": "create", "path": "/tmp/a", "dir": False},
                            {"type": "create", "path": "/tmp/d", "dir": True},
                            {"type": "delete", "path": "/tmp/a"}], end=False))

    def sync_body(c, sb):
        with sb.files.watch("/tmp", recursive=True) as w:
            return [next(w), next(w)]

    async def async_body(c, sb):
        async with sb.files.watch("/tmp", recursive=True) as w:
            return [await w.__anext__(), await w.__anext__()]

    evs = api.run(sync_body if api.kind == "sync" else async_body)
    assert [(e.type, e.path, e.dir) for e in evs] == [("create", "/tmp/a", False),
                                                      ("create", "/tmp/d", True)]
    assert stub.requests[0]["path"] == "/v1/sandboxes/s-1/fs/tmp?op=watch&recursive=true"


def test_payload_too_large_names_the_limit(stub, api):
    stub.answer(413, {"error": {"code": "payload_too_large", "field": "limits.tmp_size",
                                "message": "the sandbox's disk is full"}})
    with pytest.raises(hull.PayloadTooLarge) as ei:
        api.run(lambda c, sb: sb.files.write("/tmp/x", b"x" * 1000))
    assert ei.value.limit == "limits.tmp_size" and ei.value.status == 413


# ---- lifecycle ------------------------------------------------------------------------


def test_metadata_filter_and_set_timeout(stub, api):
    stub.answer(201, SBX)
    stub.answer(200, {"sandboxes": [SBX]})
    stub.answer(200, dict(SBX, lifetime_s=1800))
    stub.answer(200, {"id": "s-1", "state": "destroyed"})

    def sync_body(c, _):
        with c.sandbox(metadata={"team": "ml"}, lifetime="5m") as sb:
            found = c.sandboxes(metadata={"team": "ml", "job": "a b"})
            info = sb.set_timeout("30m")
        return sb, found, info

    async def async_body(c, _):
        async with c.sandbox(metadata={"team": "ml"}, lifetime="5m") as sb:
            found = await c.sandboxes(metadata={"team": "ml", "job": "a b"})
            info = await sb.set_timeout("30m")
        return sb, found, info

    sb, found, info = api.run(sync_body if api.kind == "sync" else async_body)
    assert json.loads(stub.requests[0]["body"]) == {"lifetime": "5m", "metadata": {"team": "ml"}}
    assert sb.metadata == {"team": "ml"} and found[0].metadata == {"team": "ml"}
    assert stub.requests[1]["path"] == "/v1/sandboxes?metadata.team=ml&metadata.job=a+b"
    assert stub.requests[2]["path"] == "/v1/sandboxes/s-1/timeout"
    assert json.loads(stub.requests[2]["body"]) == {"lifetime": "30m"}
    assert info.lifetime_s == 1800
    assert stub.requests[3]["method"] == "DELETE" and sb.state == "destroyed"


def test_async_client_runs_and_errors(stub):
    stub.answer(200, dict(RESULT, id="r-1"))
    stub.answer(409, {"error": {"code": "conflict", "message": "paused"}})
    stub.answer(429, {"error": {"code": "queue_full", "message": "busy"}}, **{"Retry-After": "3"})

    async def body():
        async with hull.AsyncClient(socket_path=stub.path, token="t") as c:
            r = await c.run(["echo"], stdin="x")
            with pytest.raises(hull.Conflict):
                await c.get("r-1")
            with pytest.raises(hull.RateLimited) as ei:
                await c.submit(["x"])
            return r, ei.value

    r, e = asyncio.run(body())
    assert r.id == "r-1" and e.retry_after == 3.0
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer t"
    assert json.loads(stub.requests[0]["body"]) == {"cmd": ["echo"], "stdin": "x"}


def test_async_client_without_a_daemon_is_a_transport_error():
    async def body():
        await hull.AsyncClient(socket_path="/nonexistent/hulld.sock", token="t").health()
    with pytest.raises(hull.TransportError, match="/nonexistent/hulld.sock"):
        asyncio.run(body())
