"""hull.AsyncClient: the Client's surface as coroutines and async iterators,
on asyncio, over hulld's unix socket or TCP+TLS.

    async with hull.AsyncClient(token=...) as client:
        async with client.sandbox(metadata={"job": "a"}) as sb:
            r = await sb.exec("echo hi", on_stdout=print)
            p = await sb.start(["cat"], stdin=True)
            await p.send_stdin(b"x")
            async for chunk in p: ...

HTTP/1.1 is spoken here directly (one connection per request, chunked
bodies both ways); requests and answers are built and read by the same
code as the sync client's (hull._api, hull.models, hull.errors)."""
import asyncio
import inspect
import json
import ssl
import time
import urllib.parse
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import _api, errors
from .client import PULL_TIMEOUT, Client, NetworkArg
from .models import (Chunk, FileEntry, ImageInfo, MetricsSample, NetworkInfo, ProcessInfo,
                     Result, Run, SandboxInfo, TemplateInfo, WatchEvent)
from .sandbox import WAIT_STEP, Data

_LIMIT = 1 << 16  # header lines and NDJSON lines are read in pieces of this


class _Body:
    """A response body: Content-Length, chunked, or until the connection
    closes; read in blocks or lines."""

    def __init__(self, reader, writer, headers):
        self._r, self._w = reader, writer
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        cl = headers.get("content-length")
        self._left = int(cl) if cl is not None and not self._chunked else None
        self._chunk_left = 0
        self._done = self._left == 0
        self._buf = bytearray()

    async def _raw(self, n):
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                line = await self._r.readline()
                if not line:
                    raise errors.TransportError("stream: connection closed mid-chunk")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await self._r.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._done = True
                    return b""
                self._chunk_left = size
            data = await self._r.read(min(n, self._chunk_left))
            if not data:
                raise errors.TransportError("stream: connection closed mid-chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await self._r.readexactly(2)
            return data
        want = n if self._left is None else min(n, self._left)
        data = await self._r.read(want)
        if not data:
            if self._left:
                raise errors.TransportError("answer cut short")
            self._done = True
            return b""
        if self._left is not None:
            self._left -= len(data)
            self._done = self._left == 0
        return data

    async def read(self, n=_api.BLOCK):
        if self._buf:
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out
        return await self._raw(n)

    async def read_all(self):
        parts = []
        while True:
            b = await self.read()
            if not b:
                return b"".join(parts)
            parts.append(b)

    async def readline(self):
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            b = await self._raw(_LIMIT)
            if not b:
                line, self._buf = bytes(self._buf), bytearray()
                return line
            self._buf += b

    def close(self):
        self._w.close()


async def _call_back(fn, *args):
    if fn is not None:
        r = fn(*args)
        if inspect.isawaitable(r):
            await r


class _Opening:
    """What both ``await x(...)`` and ``async with x(...) as y`` take: the
    object a coroutine makes, closed (``aclose``/``delete``) by the with."""

    def __init__(self, coro, exit_name):
        self._coro, self._exit, self._obj = coro, exit_name, None

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self):
        self._obj = await self._coro
        return self._obj

    async def __aexit__(self, *exc):
        await getattr(self._obj, self._exit)()
        return False


class AsyncClient:
    """A connection to hulld for asyncio code: the same arguments as
    ``hull.Client`` and the same methods, as coroutines."""

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = 120.0,
                 cafile: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None):
        # The sync client's checks and defaults, and its settings.
        self._cfg = Client(socket_path=socket_path, url=url, token=token, timeout=timeout,
                           cafile=cafile, ssl_context=ssl_context)
        self.images = AsyncImages(self)

    @property
    def token(self):
        return self._cfg.token

    @property
    def timeout(self):
        return self._cfg.timeout

    def __repr__(self):
        return repr(self._cfg).replace("hull.Client", "hull.AsyncClient")

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def aclose(self):
        """Nothing is kept open between requests: here for symmetry."""

    # ---- transport ------------------------------------------------------------------

    async def _connect(self):
        c = self._cfg
        if c._socket:
            return await asyncio.open_unix_connection(c._socket, limit=_LIMIT)
        if c._scheme == "https":
            return await asyncio.open_connection(c._host, c._port, ssl=c._ssl,
                                                 server_hostname=c._host, limit=_LIMIT)
        return await asyncio.open_connection(c._host, c._port, limit=_LIMIT)

    async def _send_body(self, writer, data):
        if isinstance(data, bytes):
            writer.write(data)
            await writer.drain()
            return

        async def blocks():
            if hasattr(data, "read"):
                loop = asyncio.get_running_loop()
                while True:
                    b = data.read(_api.BLOCK)
                    if inspect.isawaitable(b):
                        b = await b
                    elif b is None:
                        b = await loop.run_in_executor(None, data.read, _api.BLOCK)
                    if not b:
                        return
                    yield b
            elif hasattr(data, "__aiter__"):
                async for b in data:
                    yield b
            else:
                for b in data:
                    yield b

        async for b in blocks():
            if b:
                writer.write(b"%x\r\n" % len(b) + bytes(b) + b"\r\n")
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _exchange(self, method, path, body, query, accept, content_type):
        c = self._cfg
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        headers = {"Host": c._host if not c._socket else "hulld", "Accept": accept,
                   "Connection": "close"}
        if c.token:
            headers["Authorization"] = f"Bearer {c.token}"
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray, memoryview)):
                data = bytes(body)
                headers["Content-Type"] = "application/octet-stream"
            elif _api.is_stream_body(body) or hasattr(body, "__aiter__"):
                data = body
                headers["Content-Type"] = "application/octet-stream"
                headers["Transfer-Encoding"] = "chunked"
            else:
                data = json.dumps(body).encode("utf-8")
                headers["Content-Type"] = content_type
            if isinstance(data, bytes):
                headers["Content-Length"] = str(len(data))
        elif method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        reader, writer = await self._connect()
        try:
            head = f"{method} {c._base}{path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head.encode("latin-1"))
            unsent = None
            try:
                if data is not None:
                    await self._send_body(writer, data)
                else:
                    await writer.drain()
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
                unsent = e  # a 413 before the body was read: read the answer
            try:
                status, resp_headers = await self._head(reader)
            except (OSError, asyncio.IncompleteReadError, errors.TransportError):
                if unsent is not None:
                    raise unsent from None
                raise
            resp = _Body(reader, writer, resp_headers)
            if status >= 400:
                payload = await resp.read_all()
                writer.close()
                raise errors.from_response(status, payload, resp_headers)
            return status, resp_headers, resp
        except (OSError, asyncio.IncompleteReadError) as e:
            writer.close()
            raise errors.TransportError(f"hulld at {c._where()}: {e}") from e
        except BaseException:
            writer.close()
            raise

    @staticmethod
    async def _head(reader):
        line = await reader.readline()
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise errors.TransportError(f"not an HTTP answer: {line[:100]!r}")
        status = int(parts[1])
        headers = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if status == 100:
            return await AsyncClient._head(reader)
        return status, headers

    async def _open(self, method, path, body=None, *, query=None, accept="application/json",
                    content_type="application/json", timeout=None):
        """(headers, body reader) of an answer under 400; timeout: for the
        answer's head (None: the client's; 0: none)."""
        t = self._cfg.timeout if timeout is None else timeout
        coro = self._exchange(method, path, body, query, accept, content_type)
        try:
            _, headers, resp = await (asyncio.wait_for(coro, t) if t else coro)
        except asyncio.TimeoutError as e:
            raise errors.TransportError(f"hulld at {self._cfg._where()}: timed out") from e
        return headers, resp

    async def request(self, method: str, path: str, body: Any = None, *, raw: bool = False,
                      query: Optional[Mapping[str, Any]] = None,
                      content_type: str = "application/json",
                      timeout: Optional[float] = None):
        """One API call, as Client.request."""
        t = self._cfg.timeout if timeout is None else timeout

        async def whole():
            headers, resp = await self._open(method, path, body, query=query,
                                             content_type=content_type, timeout=0)
            try:
                return await resp.read_all()
            finally:
                resp.close()

        try:
            payload = await (asyncio.wait_for(whole(), t) if t else whole())
        except asyncio.TimeoutError as e:
            raise errors.TransportError(f"hulld at {self._cfg._where()}: timed out") from e
        except (OSError, asyncio.IncompleteReadError) as e:
            raise errors.TransportError(f"hulld at {self._cfg._where()}: {e}") from e
        if raw:
            return payload
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError as e:
            raise errors.TransportError(f"{method} {path}: answer is not JSON: {e}") from e

    async def _events(self, resp) -> AsyncIterator[Dict[str, Any]]:
        try:
            while True:
                try:
                    line = await resp.readline()
                except (OSError, asyncio.IncompleteReadError) as e:
                    raise errors.TransportError(f"hulld at {self._cfg._where()}: {e}") from e
                if not line:
                    return
                ev = _api.parse_line(line)
                if ev is not None:
                    yield ev
        finally:
            resp.close()

    async def _stream(self, method, path, body=None, *, query=None):
        _, resp = await self._open(method, path, body, query=query, accept=_api.NDJSON)
        return self._events(resp)

    # ---- runs -------------------------------------------------------------------------

    async def run(self, cmd: Union[str, Sequence[str]], *, stdin: Optional[Data] = None,
                  files=None, env=None, limits=None, isolation=None, workdir=None,
                  network: Optional[NetworkArg] = None, image=None, queue: bool = False,
                  poll: float = 0.05, timeout: Optional[float] = None,
                  on_stdout: Optional[Callable[[str], Any]] = None,
                  on_stderr: Optional[Callable[[str], Any]] = None,
                  on_cut: Optional[Callable[[int, int], Any]] = None,
                  on_start: Optional[Callable[[str], Any]] = None) -> Result:
        """As Client.run; the callbacks may be coroutine functions."""
        body = _api.run_body(cmd, stdin, files, env, limits, isolation, workdir, network, {},
                             image)
        if on_stdout or on_stderr or on_cut or on_start:
            _api.check_run_stream(queue)
            return await self._run_streamed(body, on_stdout, on_stderr, on_cut, on_start)
        if queue:
            body["queue"] = True
            run = Run.from_json(await self.request("POST", "/v1/runs", body))
            return await self.wait(run.id, poll=poll, timeout=timeout)
        return Result.from_json(await self.request("POST", "/v1/runs", body))

    async def _run_streamed(self, body, on_stdout, on_stderr, on_cut, on_start) -> Result:
        started = None
        if on_start:
            async def started(ev, _st):
                await _call_back(on_start, (ev.get("run") or {}).get("id", ""))
        return await self._streamed("/v1/runs", body, on_stdout, on_stderr, on_cut, started)

    async def _streamed(self, path, body, on_stdout, on_stderr, on_cut, started) -> Result:
        """As Client._streamed, with coroutine callbacks allowed."""
        headers, resp = await self._open("POST", path, body,
                                         accept=_api.NDJSON + ", application/json")
        if _api.NDJSON not in headers.get("content-type", ""):
            try:
                doc = json.loads(await resp.read_all())
            finally:
                resp.close()
            res, chunks = _api.result_as_chunks(doc)
            for c in chunks:
                await AsyncSandbox._deliver(c, on_stdout, on_stderr, on_cut)
            return res
        st = _api.ExecEvents()
        events = self._events(resp)
        try:
            async for ev in events:
                c = st.take(ev)
                if c is not None:
                    await AsyncSandbox._deliver(c, on_stdout, on_stderr, on_cut)
                elif ev["type"] == "start" and started:
                    await started(ev, st)
        finally:
            await events.aclose()  # a callback that raised leaves: the run or command goes on
        return st.end()

    async def submit(self, cmd, *, stdin=None, files=None, env=None, limits=None,
                     isolation=None, workdir=None, network=None, image=None,
                     queue: bool = False) -> Run:
        extra = {"queue": True} if queue else {"async": True}
        body = _api.run_body(cmd, stdin, files, env, limits, isolation, workdir, network, extra,
                             image)
        return Run.from_json(await self.request("POST", "/v1/runs", body))

    async def get(self, run_id: str) -> Run:
        return Run.from_json(await self.request("GET", f"/v1/runs/{_api.seg(run_id)}"))

    async def wait(self, run_id: str, *, poll: float = 0.05,
                   timeout: Optional[float] = None) -> Result:
        end = None if timeout is None else time.monotonic() + timeout
        delay = poll
        while True:
            run = await self.get(run_id)
            if run.done:
                if run.result is None:
                    raise errors.Conflict(409, "not_finished",
                                          f"run {run_id} ended as {run.state}, with no result")
                return run.result
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(f"run {run_id} still {run.state} after {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def cancel(self, run_id: str) -> Run:
        return Run.from_json(await self.request("DELETE", f"/v1/runs/{_api.seg(run_id)}"))

    async def runs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Run]:
        doc = await self.request("GET", "/v1/runs", query={"state": state, "limit": limit})
        return [Run.from_json(r) for r in doc.get("runs", [])]

    # ---- sandboxes --------------------------------------------------------------------

    def sandbox(self, isolation: Optional[str] = None, *, limits=None, env=None, network=None,
                lifetime=None, image=None, metadata: Optional[Mapping[str, str]] = None,
                ports=None, template: Optional[str] = None):
        """``sb = await client.sandbox(...)``, or ``async with
        client.sandbox(...) as sb:`` to have it deleted on exit."""
        body = _api.sandbox_body(isolation, limits, env, network, lifetime, image, metadata,
                                 template)
        if ports:
            body["ports"] = [int(p) for p in ports]

        async def create():
            doc = await self.request("POST", "/v1/sandboxes", body)
            return AsyncSandbox(self, SandboxInfo.from_json(doc))

        return _Opening(create(), "delete")

    async def create_template(self, sandbox, name: str, *, start_cmd=None, ready_cmd=None,
                              ready_timeout=None) -> TemplateInfo:
        """As Client.create_template."""
        sid = sandbox.id if isinstance(sandbox, AsyncSandbox) else str(sandbox)
        body = _api.template_body(sid, name, start_cmd, ready_cmd, ready_timeout)
        return TemplateInfo.from_json(await self.request("POST", "/v1/templates", body))

    async def templates(self) -> List[TemplateInfo]:
        doc = await self.request("GET", "/v1/templates")
        return [TemplateInfo.from_json(t) for t in doc.get("templates", [])]

    async def template(self, name: str) -> TemplateInfo:
        return TemplateInfo.from_json(await self.request("GET", _api.template_path(name)))

    async def delete_template(self, name: str) -> None:
        await self.request("DELETE", _api.template_path(name))

    async def sandboxes(self, metadata: Optional[Mapping[str, str]] = None) -> List[SandboxInfo]:
        doc = await self.request("GET", "/v1/sandboxes", query=_api.metadata_query(metadata))
        return [SandboxInfo.from_json(s) for s in doc.get("sandboxes", [])]

    async def attach(self, sandbox_id: str) -> "AsyncSandbox":
        doc = await self.request("GET", _api.sandbox_path(sandbox_id))
        return AsyncSandbox(self, SandboxInfo.from_json(doc))

    # ---- operations -------------------------------------------------------------------

    async def health(self) -> Dict[str, Any]:
        return await self.request("GET", "/healthz")

    async def metrics(self) -> str:
        return (await self.request("GET", "/metrics", raw=True)).decode("utf-8")

    async def networks(self) -> List[NetworkInfo]:
        doc = await self.request("GET", "/v1/networks")
        return [NetworkInfo.from_json(n) for n in doc.get("networks", [])]

    async def audit(self, limit: Optional[int] = None, since_id: Optional[int] = None):
        doc = await self.request("GET", "/v1/audit", query={"limit": limit, "since_id": since_id})
        return doc.get("entries", [])


class AsyncImages:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def list(self) -> List[ImageInfo]:
        doc = await self._client.request("GET", "/v1/images")
        return [ImageInfo.from_json(i) for i in doc.get("images", [])]

    async def get(self, ref: str) -> ImageInfo:
        return ImageInfo.from_json(await self._client.request("GET",
                                                              f"/v1/images/{_api.seg(ref)}"))

    async def pull(self, ref: str, *, platform=None, tls_verify=None,
                   timeout: Optional[float] = PULL_TIMEOUT) -> ImageInfo:
        body: Dict[str, Any] = {"ref": str(ref)}
        if platform is not None:
            body["platform"] = platform
        if tls_verify is not None:
            body["tls_verify"] = bool(tls_verify)
        return ImageInfo.from_json(await self._client.request("POST", "/v1/images", body,
                                                              timeout=timeout))

    async def remove(self, ref: str, *, force: bool = False) -> Dict[str, Any]:
        return await self._client.request("DELETE", f"/v1/images/{_api.seg(ref)}",
                                          query={"force": "true"} if force else None)


class AsyncFiles:
    """``sb.files`` of an AsyncSandbox: as hull.Files, as coroutines."""

    def __init__(self, sandbox):
        self._sb = sandbox

    def _url(self, path):
        return _api.fs_path(self._sb.id, path)

    async def _req(self, method, path, body=None, query=None, raw=False, timeout=None):
        return await self._sb._client.request(method, self._url(path), body, query=query,
                                              raw=raw, timeout=timeout)

    async def write(self, path: str, data, *, mode=None,
                    timeout: Optional[float] = None) -> FileEntry:
        """bytes, str, a file object (sync or async read()) or an (async)
        iterable of bytes, streamed with chunked encoding."""
        body = data if hasattr(data, "__aiter__") else _api.write_data(data)
        return FileEntry.from_json(await self._req("PUT", path, body, _api.mode_query(mode),
                                                   timeout=timeout))

    async def read(self, path: str, *, timeout: Optional[float] = None) -> bytes:
        return await self._req("GET", path, raw=True, timeout=timeout)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read(path)).decode(encoding)

    async def read_stream(self, path: str, block: int = _api.BLOCK) -> AsyncIterator[bytes]:
        _, resp = await self._sb._client._open("GET", self._url(path),
                                               accept="application/octet-stream")
        try:
            while True:
                b = await resp.read(block)
                if not b:
                    return
                yield b
        finally:
            resp.close()

    async def download(self, path: str, file) -> int:
        n = 0
        async for b in self.read_stream(path):
            file.write(b)
            n += len(b)
        return n

    async def stat(self, path: str) -> FileEntry:
        return FileEntry.from_json(await self._req("GET", path, query={"op": "stat"}))

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
            return True
        except errors.NotFound:
            return False

    async def list(self, path: str = "/tmp", *, depth: Optional[int] = None) -> List[FileEntry]:
        doc = await self._req("GET", path, query={"op": "list", "depth": depth})
        return [FileEntry.from_json(e) for e in doc.get("entries", [])]

    async def mkdir(self, path: str) -> FileEntry:
        return FileEntry.from_json(await self._req("POST", path, query={"op": "mkdir"}))

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._req("DELETE", path, query={"recursive": "true"} if recursive else None)

    async def rename(self, path: str, to: str) -> FileEntry:
        return FileEntry.from_json(await self._req("POST", path, {"to": _api.sandbox_file(to)},
                                                   query={"op": "rename"}))

    def watch(self, path: str = "/tmp", *, recursive: bool = False):
        """``async with sb.files.watch(path) as w: async for ev in w`` (or
        ``w = await ...; await w.aclose()``); in place once awaited."""

        async def open_():
            _, resp = await self._sb._client._open(
                "GET", self._url(path),
                query={"op": "watch", "recursive": "true" if recursive else None},
                accept=_api.NDJSON)
            return AsyncWatch(self._sb._client._events(resp), resp)

        return _Opening(open_(), "aclose")


class AsyncWatch:
    """``aclose()`` may come from another task than the one iterating:
    that iteration then ends."""

    def __init__(self, events, resp=None):
        self._events = events
        self._resp = resp
        self._closed = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            return WatchEvent.from_json(await self._events.__anext__())
        except errors.TransportError:
            if self._closed:  # our own aclose() cut the connection
                raise StopAsyncIteration from None
            raise

    async def aclose(self):
        self._closed = True
        # A task iterating is waiting in a read: closing the connection
        # ends it there (a generator cannot be closed while it runs).
        if self._resp is not None:
            self._resp.close()
        try:
            await self._events.aclose()
        except RuntimeError:
            pass  # running in another task, which ends it now


class AsyncProcess:
    """As hull.Process: ``async for chunk in p`` for its output."""

    def __init__(self, sandbox, info: ProcessInfo):
        self._sb = sandbox
        self.info = info
        self.offset = 0

    id = property(lambda self: self.info.id)
    state = property(lambda self: self.info.state)
    result = property(lambda self: self.info.result)

    def __repr__(self):
        return f"<hull.AsyncProcess {self.id} {self.state}>"

    async def _call(self, action="", body=None, timeout=None):
        return await self._sb._client.request("POST" if action else "GET",
                                              _api.process_path(self._sb.id, self.id, action),
                                              body, timeout=timeout)

    def _update(self, doc):
        self.info = ProcessInfo.from_json(doc)
        return self.info

    async def refresh(self) -> ProcessInfo:
        return self._update(await self._call())

    async def send_stdin(self, data: Data) -> int:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        doc = await self._call("stdin", raw)
        return int((doc or {}).get("written", len(raw)))

    async def close_stdin(self) -> ProcessInfo:
        return self._update(await self._call("close_stdin", {}))

    async def signal(self, sig: Union[int, str] = "TERM") -> ProcessInfo:
        return self._update(await self._call("signal", {"signal": _api.signal_name(sig)}))

    async def kill(self) -> ProcessInfo:
        return await self.signal("KILL")

    async def resize(self, rows: int, cols: int) -> ProcessInfo:
        return self._update(await self._call("resize", {"rows": int(rows), "cols": int(cols)}))

    async def wait(self, timeout: Optional[float] = None) -> Result:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            step = WAIT_STEP if left is None else min(WAIT_STEP, left)
            info = self._update(await self._call("wait", {"timeout": round(step, 3)},
                                                 timeout=step + 60.0))
            if info.state != "running":
                if info.result is None:
                    raise errors.TransportError(f"process {self.id}: exited without a result")
                return info.result
            if left is not None and left <= WAIT_STEP:  # hulld waited out the rest
                raise TimeoutError(f"process {self.id} still running after {timeout} s")

    async def output(self, offset: Optional[int] = None, *,
                     follow: bool = True) -> AsyncIterator[Chunk]:
        st = _api.ExecEvents(self.offset if offset is None else offset)
        events = await self._sb._client._stream(
            "GET", _api.process_path(self._sb.id, self.id, "output"),
            query={"offset": st.offset, "follow": "true" if follow else "false"})
        try:
            async for ev in events:
                c = st.take(ev)
                self.offset = max(self.offset, st.offset)
                if c is not None:
                    yield c
                if st.result is not None:
                    self.info.result = st.result
                    self.info.state = "exited"
        finally:
            await events.aclose()

    def __aiter__(self):
        return self.output().__aiter__()


class AsyncSandbox:
    """As hull.Sandbox, as coroutines; ``async with`` deletes it on exit."""

    def __init__(self, client: AsyncClient, info: SandboxInfo):
        self._client = client
        self.info = info
        self.files = AsyncFiles(self)
        self._deleted = False
        self._access_token = info.raw.get("access_token")  # shown once, at create

    id = property(lambda self: self.info.id)
    state = property(lambda self: self.info.state)
    metadata = property(lambda self: self.info.metadata)

    def __repr__(self):
        return f"<hull.AsyncSandbox {self.id} {self.info.state}>"

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.delete()
        return False

    def _path(self, action=""):
        return _api.sandbox_path(self.id, action)

    async def exec(self, cmd, *, stdin: Optional[Data] = None, env=None, workdir=None,
                   limits=None, on_stdout: Optional[Callable[[str], Any]] = None,
                   on_stderr: Optional[Callable[[str], Any]] = None,
                   on_cut: Optional[Callable[[int, int], Any]] = None,
                   on_start: Optional[Callable[["AsyncProcess"], Any]] = None,
                   timeout=None) -> Result:
        """As Sandbox.exec; the callbacks may be coroutine functions."""
        body = _api.exec_body(cmd, stdin, env, workdir, limits, timeout)
        wait = _api.wait_margin(timeout)
        if not (on_stdout or on_stderr or on_cut or on_start):
            return Result.from_json(await self._client.request("POST", self._path("exec"), body,
                                                               timeout=wait))
        started = None
        if on_start:
            async def started(_ev, st):
                await _call_back(on_start, AsyncProcess(self, st.process))
        return await self._client._streamed(self._path("exec"), body, on_stdout, on_stderr,
                                            on_cut, started)

    @staticmethod
    async def _deliver(c, on_stdout, on_stderr, on_cut):
        if c.stream == "stdout":
            await _call_back(on_stdout, c.text)
        elif c.stream == "stderr":
            await _call_back(on_stderr, c.text)
        elif c.stream == "cut":
            await _call_back(on_cut, c.offset, c.lost)

    async def start(self, cmd, *, stdin: Union[bool, Data] = False, pty=None, env=None,
                    workdir=None, limits=None) -> AsyncProcess:
        data = None if isinstance(stdin, bool) else stdin
        body = _api.start_body(cmd, stdin is not False, pty, env, workdir, limits)
        p = AsyncProcess(self, ProcessInfo.from_json(
            await self._client.request("POST", self._path("processes"), body)))
        if data is not None:
            if data:
                await p.send_stdin(data)
            await p.close_stdin()
        return p

    async def process(self, process_id: str) -> AsyncProcess:
        doc = await self._client.request("GET", _api.process_path(self.id, process_id))
        return AsyncProcess(self, ProcessInfo.from_json(doc))

    async def processes(self) -> List[AsyncProcess]:
        doc = await self._client.request("GET", self._path("processes"))
        return [AsyncProcess(self, ProcessInfo.from_json(p)) for p in doc.get("processes", [])]

    async def set_timeout(self, lifetime) -> SandboxInfo:
        self.info = SandboxInfo.from_json(await self._client.request(
            "POST", self._path("timeout"), {"lifetime": _api.duration(lifetime)}))
        return self.info

    async def refresh(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(await self._client.request("GET", self._path()))
        return self.info

    async def metrics(self, since=None) -> List[MetricsSample]:
        """As Sandbox.metrics."""
        doc = await self._client.request("GET", self._path("metrics"),
                                         query=_api.metrics_query(since))
        return [MetricsSample.from_json(s) for s in doc.get("samples", [])]

    async def snapshot_template(self, name: str, **kw) -> TemplateInfo:
        """As Sandbox.snapshot_template."""
        return await self._client.create_template(self.id, name, **kw)

    async def pause(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(await self._client.request("POST",
                                                                     self._path("pause")))
        return self.info

    async def resume(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(await self._client.request("POST",
                                                                     self._path("resume")))
        # A microVM sandbox paused by an earlier hulld gets a new token.
        self._access_token = self.info.raw.get("access_token") or self._access_token
        return self.info

    @property
    def access_token(self) -> Optional[str]:
        """As Sandbox.access_token."""
        return self._access_token

    async def port_url(self, port: int, with_token: bool = False) -> str:
        """As Sandbox.port_url."""
        doc = await self._client.request("POST", _api.sandbox_path(self.id, "ports"),
                                         {"port": int(port)})
        if with_token and not self._access_token:
            raise ValueError("no access token: only the sandbox made by client.sandbox() has it")
        return doc["url"] + (f"?token={self._access_token}" if with_token else "")

    async def ports(self) -> Dict[int, str]:
        doc = await self._client.request("GET", _api.sandbox_path(self.id, "ports"))
        return {p["port"]: p["url"] for p in doc.get("ports", [])}

    async def close_port(self, port: int) -> None:
        await self._client.request("DELETE", _api.sandbox_path(self.id, f"ports/{int(port)}"))

    async def delete(self) -> None:
        if self._deleted:
            return
        try:
            await self._client.request("DELETE", self._path())
        except errors.NotFound:
            pass
        self._deleted = True
        self.info.state = "destroyed"
