"""A long-lived sandbox through the sync client: commands (streamed or
not), background processes, files anywhere in it, its lifetime."""
import socket
import time
from typing import (IO, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Union)

from . import _api, errors
from .models import (Chunk, FileEntry, MetricsSample, ProcessInfo, Result, SandboxInfo,
                     WatchEvent)

Data = Union[str, bytes]
Writable = Union[str, bytes, IO[bytes], Iterable[bytes]]
# How long one wait request asks hulld to hold on, when the caller waits longer.
WAIT_STEP = 60.0


class Files:
    """The files of a sandbox (``sb.files``): absolute paths anywhere the
    sandbox can write, resolved inside it; a relative path is under /tmp."""

    def __init__(self, sandbox):
        self._sb = sandbox

    def _url(self, path):
        return _api.fs_path(self._sb.id, path)

    def _req(self, method, path, body=None, query=None, raw=False, timeout=None):
        return self._sb._client.request(method, self._url(path), body, query=query, raw=raw,
                                        timeout=timeout)

    def write(self, path: str, data: Writable, *, mode: Union[int, str, None] = None,
              timeout: Optional[float] = None) -> FileEntry:
        """Write data to path (parents made): bytes, str (as UTF-8), a
        binary file object or an iterable of bytes, streamed with chunked
        encoding. hulld renames it into place only once all of it arrived.
        Over the sandbox's disk: PayloadTooLarge (``.limit`` names it)."""
        body = _api.write_data(data)
        return FileEntry.from_json(self._req("PUT", path, body, _api.mode_query(mode),
                                             timeout=timeout))

    def read(self, path: str, *, timeout: Optional[float] = None) -> bytes:
        """The whole file (see read_stream/download for big ones)."""
        return self._req("GET", path, raw=True, timeout=timeout)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def read_stream(self, path: str, block: int = _api.BLOCK) -> Iterator[bytes]:
        """The file's bytes in blocks, as they arrive; TransportError when
        the answer is cut short (the file shrank while sent, hulld went)."""
        client = self._sb._client
        conn, resp = client._open("GET", self._url(path), accept="application/octet-stream")
        try:
            yield from client._blocks(resp, block)
        finally:
            conn.close()

    def download(self, path: str, file: IO[bytes]) -> int:
        """Copy the file into a binary file object; the bytes written."""
        n = 0
        for b in self.read_stream(path):
            file.write(b)
            n += len(b)
        return n

    def stat(self, path: str) -> FileEntry:
        return FileEntry.from_json(self._req("GET", path, query={"op": "stat"}))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except errors.NotFound:
            return False

    def list(self, path: str = "/tmp", *, depth: Optional[int] = None) -> List[FileEntry]:
        """A directory's entries (``depth`` > 1: its subdirectories' too)."""
        doc = self._req("GET", path, query={"op": "list", "depth": depth})
        return [FileEntry.from_json(e) for e in doc.get("entries", [])]

    def mkdir(self, path: str) -> FileEntry:
        """mkdir -p."""
        return FileEntry.from_json(self._req("POST", path, query={"op": "mkdir"}))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        self._req("DELETE", path, query={"recursive": "true"} if recursive else None)

    def rename(self, path: str, to: str) -> FileEntry:
        return FileEntry.from_json(self._req("POST", path, {"to": _api.sandbox_file(to)},
                                             query={"op": "rename"}))

    def watch(self, path: str = "/tmp", *, recursive: bool = False) -> "Watch":
        """Changes under a directory, as they happen: iterate the Watch
        (it blocks for the next event) and close it (or use ``with``). The
        watch is in place when this returns."""
        client = self._sb._client
        conn, resp = client._open("GET", self._url(path),
                                  query={"op": "watch",
                                         "recursive": "true" if recursive else None},
                                  accept=_api.NDJSON, timeout=0)
        return Watch(client._events(conn, resp), conn)


class Watch:
    """An open watch: ``for ev in w`` gives WatchEvents until closed.
    ``close()`` may come from another thread than the one iterating: that
    iteration then ends."""

    def __init__(self, events, conn=None):
        self._events = events
        self._conn = conn
        self._closed = False

    def _next(self):
        try:
            return WatchEvent.from_json(next(self._events))
        except errors.TransportError:
            if self._closed:  # our own close() cut the connection
                raise StopIteration from None
            raise

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            try:
                yield self._next()
            except StopIteration:
                return

    def __next__(self) -> WatchEvent:
        return self._next()

    def close(self):
        self._closed = True
        # A thread iterating is waiting in a read: cutting the connection
        # ends it there (a generator cannot be closed while it runs).
        sock = getattr(self._conn, "hull_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already
        try:
            self._events.close()
        except ValueError:
            pass  # running in another thread, which ends it now

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Process:
    """A process of a sandbox (``sb.start()``, ``sb.process(id)``). Iterate
    it for its output chunks, from where the last iteration stopped: a
    reader that went away re-attaches and reads on (or gets a "cut" chunk
    for what the bounded buffer no longer held)."""

    def __init__(self, sandbox, info: ProcessInfo):
        self._sb = sandbox
        self.info = info
        self.offset = 0  # of the next output byte to read

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def result(self) -> Optional[Result]:
        return self.info.result

    def __repr__(self):
        return f"<hull.Process {self.id} {self.state}>"

    def _call(self, action="", body=None, raw_body=None, timeout=None):
        data = raw_body if raw_body is not None else body
        return self._sb._client.request("POST" if action else "GET",
                                        _api.process_path(self._sb.id, self.id, action), data,
                                        timeout=timeout)

    def _update(self, doc):
        self.info = ProcessInfo.from_json(doc)
        return self.info

    def refresh(self) -> ProcessInfo:
        return self._update(self._call())

    def send_stdin(self, data: Data) -> int:
        """Write to its stdin (started with stdin=True); bytes written."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        doc = self._call("stdin", raw_body=raw)
        return int((doc or {}).get("written", len(raw)))

    def close_stdin(self) -> ProcessInfo:
        return self._update(self._call("close_stdin", {}))

    def signal(self, sig: Union[int, str] = "TERM") -> ProcessInfo:
        return self._update(self._call("signal", {"signal": _api.signal_name(sig)}))

    def kill(self) -> ProcessInfo:
        return self.signal("KILL")

    def resize(self, rows: int, cols: int) -> ProcessInfo:
        """A PTY's new size (Conflict for a process without one)."""
        return self._update(self._call("resize", {"rows": int(rows), "cols": int(cols)}))

    def wait(self, timeout: Optional[float] = None) -> Result:
        """Its Result once it has exited; TimeoutError if it still runs
        after ``timeout`` seconds (None: as long as it takes)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            step = WAIT_STEP if left is None else min(WAIT_STEP, left)
            info = self._update(self._call("wait", {"timeout": round(step, 3)},
                                           timeout=step + 60.0))
            if info.state != "running":
                if info.result is None:
                    raise errors.TransportError(f"process {self.id}: exited without a result")
                return info.result
            if left is not None and left <= WAIT_STEP:  # hulld waited out the rest
                raise TimeoutError(f"process {self.id} still running after {timeout} s")

    def output(self, offset: Optional[int] = None, *, follow: bool = True) -> Iterator[Chunk]:
        """Its output chunks from ``offset`` (default: where the last read
        stopped); with follow, live ones too until it ends (its result is
        then in ``result``)."""
        ev_state = _api.ExecEvents(self.offset if offset is None else offset)
        events = self._sb._client._stream(
            "GET", _api.process_path(self._sb.id, self.id, "output"),
            query={"offset": ev_state.offset, "follow": "true" if follow else "false"},
            timeout=0 if follow else None)
        try:
            for ev in events:
                c = ev_state.take(ev)
                self.offset = max(self.offset, ev_state.offset)
                if c is not None:
                    yield c
                if ev_state.result is not None:
                    self.info.result = ev_state.result
                    self.info.state = "exited"
        finally:
            events.close()

    def __iter__(self) -> Iterator[Chunk]:
        return self.output()


def _deliver(chunk: Chunk, on_stdout, on_stderr, on_cut):
    if chunk.stream == "stdout" and on_stdout:
        on_stdout(chunk.text)
    elif chunk.stream == "stderr" and on_stderr:
        on_stderr(chunk.text)
    elif chunk.stream == "cut" and on_cut:
        on_cut(chunk.offset, chunk.lost)


class Sandbox:
    """A long-lived sandbox: exec commands, start processes, move files,
    pause, delete."""

    def __init__(self, client, info: SandboxInfo):
        self._client = client
        self.info = info
        self.files = Files(self)
        self._deleted = False
        # Shown by hulld once, in the answer to the create.
        self._access_token = info.raw.get("access_token")

    @property
    def id(self):
        return self.info.id

    @property
    def state(self):
        """As last seen: running, paused or destroyed (refresh() asks again)."""
        return self.info.state

    @property
    def metadata(self) -> Dict[str, str]:
        return self.info.metadata

    def __repr__(self):
        return f"<hull.Sandbox {self.id} {self.info.state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()
        return False

    def _path(self, action=""):
        return _api.sandbox_path(self.id, action)

    def exec(self, cmd: Union[str, Sequence[str]], *, stdin: Optional[Data] = None,
             env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
             limits: Optional[Mapping[str, Any]] = None,
             on_stdout: Optional[Callable[[str], Any]] = None,
             on_stderr: Optional[Callable[[str], Any]] = None,
             on_cut: Optional[Callable[[int, int], Any]] = None,
             on_start: Optional[Callable[["Process"], Any]] = None,
             timeout: Optional[float] = None) -> Result:
        """Run cmd in the sandbox and return its Result. ``on_stdout`` /
        ``on_stderr`` are called with each piece of output (text) as it
        is produced (the exact bytes: ``start()`` and iterate). ``timeout``
        (seconds or "30s") is the command's wall-clock limit.
        ``on_start`` gets the command's Process once it runs: a client
        cut off mid-stream re-attaches with it (the command goes on).
        ``limits``
        are the command's own: cpu_time, wall_time and output; memory,
        pids and the rest are the sandbox's (hulld refuses them here with
        a ValidationError naming the field)."""
        body = _api.exec_body(cmd, stdin, env, workdir, limits, timeout)
        wait = _api.wait_margin(timeout)
        if not (on_stdout or on_stderr or on_cut or on_start):
            return Result.from_json(self._client.request("POST", self._path("exec"), body,
                                                         timeout=wait))
        started = None
        if on_start:
            def started(_ev, state):
                on_start(Process(self, state.process))
        return self._client._streamed(self._path("exec"), body, wait or 0, on_stdout, on_stderr,
                                      on_cut, started)

    def start(self, cmd: Union[str, Sequence[str]], *,
              stdin: Union[bool, Data] = False,
              pty: Union[None, bool, Sequence[int]] = None,
              env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
              limits: Optional[Mapping[str, Any]] = None) -> Process:
        """Start cmd in the background; its Process at once. ``stdin=True``
        keeps its stdin open for ``send_stdin()``; bytes or str are sent
        and stdin closed. ``pty=(rows, cols)`` (or True: 24x80) runs it on
        a terminal. ``limits``: cpu_time, wall_time, output, at most what
        the sandbox allows."""
        data = None if isinstance(stdin, bool) else stdin
        body = _api.start_body(cmd, stdin is not False, pty, env, workdir, limits)
        p = Process(self, ProcessInfo.from_json(
            self._client.request("POST", self._path("processes"), body)))
        if data is not None:
            if data:
                p.send_stdin(data)
            p.close_stdin()
        return p

    def process(self, process_id: str) -> Process:
        """Re-attach to a process by id (from start() or processes())."""
        return Process(self, ProcessInfo.from_json(
            self._client.request("GET", _api.process_path(self.id, process_id))))

    def processes(self) -> List[Process]:
        """Its processes: running ones and exited ones not yet reaped."""
        doc = self._client.request("GET", self._path("processes"))
        return [Process(self, ProcessInfo.from_json(p)) for p in doc.get("processes", [])]

    def set_timeout(self, lifetime) -> SandboxInfo:
        """A new idle lifetime ("30m", seconds or a timedelta; at most 24h),
        counted from now."""
        self.info = SandboxInfo.from_json(self._client.request(
            "POST", self._path("timeout"), {"lifetime": _api.duration(lifetime)}))
        return self.info

    def refresh(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(self._client.request("GET", self._path()))
        return self.info

    def metrics(self, since=None) -> List[MetricsSample]:
        """The sandbox's usage over time, oldest first (hulld samples it
        every --metrics-interval and keeps the last 720); ``since`` (a
        datetime or RFC 3339 text): only the samples taken after it."""
        doc = self._client.request("GET", self._path("metrics"),
                                   query=_api.metrics_query(since))
        return [MetricsSample.from_json(s) for s in doc.get("samples", [])]

    def pause(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(self._client.request("POST", self._path("pause")))
        return self.info

    def snapshot_template(self, name: str, **kw):
        """Keep this sandbox as template ``name`` (``client.create_template``
        with its keyword arguments); it goes on running."""
        return self._client.create_template(self.id, name, **kw)

    def resume(self) -> SandboxInfo:
        self.info = SandboxInfo.from_json(self._client.request("POST", self._path("resume")))
        # A microVM sandbox paused by an earlier hulld gets a new token.
        self._access_token = self.info.raw.get("access_token") or self._access_token
        return self.info

    @property
    def access_token(self) -> Optional[str]:
        """The token a port's URL wants (header ``X-Hull-Access-Token`` or
        ``?token=``). hulld shows it only when the sandbox is made, so a
        Sandbox from ``client.attach()`` has None."""
        return self._access_token

    def port_url(self, port: int, with_token: bool = False) -> str:
        """The URL on hulld's host (``http://127.0.0.1:P/``) that reaches
        ``port`` of the sandbox, exposing the port now if it is not yet.
        Requests need ``access_token``; ``with_token`` puts it in the
        URL's query (for a browser's first request)."""
        url = self._client.request("POST", self._path("ports"), {"port": int(port)})["url"]
        if with_token:
            if not self._access_token:
                raise ValueError("no access token: only the Sandbox made by client.sandbox() "
                                 "has it")
            url += "?token=" + self._access_token
        return url

    def ports(self) -> Dict[int, str]:
        """The exposed ports and their URLs."""
        doc = self._client.request("GET", self._path("ports"))
        return {p["port"]: p["url"] for p in doc.get("ports", [])}

    def close_port(self, port: int) -> None:
        """Stop exposing ``port``: its URL stops answering, its open
        connections are cut."""
        self._client.request("DELETE", self._path(f"ports/{int(port)}"))

    def delete(self) -> None:
        """Kill everything in it and remove it; deleting twice is fine."""
        if self._deleted:
            return
        try:
            self._client.request("DELETE", self._path())
        except errors.NotFound:
            pass  # already gone (lifetime over, hulld restarted)
        self._deleted = True
        self.info.state = "destroyed"

