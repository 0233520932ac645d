"""The hulld client: transport (unix socket or HTTPS), runs, sandboxes, images."""
import datetime
import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _api, errors
from .models import ImageInfo, NetworkInfo, Result, Run, SandboxInfo, TemplateInfo
from .sandbox import Files, Process, Sandbox, Watch  # noqa: F401  (hull.client.Sandbox)
from .sandbox import _deliver

DEFAULT_SOCKET = "/run/hull/hulld.sock"
# hulld answers a pull when it is done; its own limit is --pull-timeout
# (default 1 h), so the client waits a little longer than that by default.
PULL_TIMEOUT = 3660.0

Data = Union[str, bytes]

# Kept for code that imported them from here.
_text, _cmd, _duration, _limits = _api.text, _api.cmd_list, _api.duration, _api.limits_body
_request_body, _seg = _api.run_body, _api.seg


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("hulld", timeout=timeout, blocksize=_api.BLOCK)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


# Idle connections a Client keeps open for its next requests (keep-alive):
# hulld serves each connection with a thread of its own, so a connection per
# request cost it a thread's start and end every time.
_KEEP_IDLE = 4


def _still_open(conn) -> bool:
    """An idle connection hulld has not closed: nothing to read on it (a
    readable idle socket is hulld's close after --client-timeout)."""
    if conn.sock is None:
        return False
    try:
        return not select.select([conn.sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


# "none", "host", a network's name, or {"name", "egress", "publish"}.
NetworkArg = Union[str, Mapping[str, Any]]


class Client:
    """A connection to hulld.

    ``Client()`` talks to the local socket (/run/hull/hulld.sock);
    ``Client(url="https://host:8080", cafile=...)`` to a TCP listener.
    The token is the ``token`` argument or $HULL_TOKEN.
    """

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = 120.0,
                 cafile: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None):
        if socket_path and url:
            raise ValueError("give socket_path or url, not both")
        self.token = token if token is not None else os.environ.get("HULL_TOKEN")
        self.timeout = timeout
        self._socket = None
        self._base = ""
        if url is None:
            self._socket = socket_path or DEFAULT_SOCKET
        else:
            u = urllib.parse.urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"url {url!r}: want https://HOST:PORT (or http://)")
            self._scheme, self._host = u.scheme, u.hostname
            self._port = u.port or (443 if u.scheme == "https" else 80)
            self._base = u.path.rstrip("/")
            if u.scheme == "https" and ssl_context is None:
                ssl_context = ssl.create_default_context(cafile=cafile)
            self._ssl = ssl_context
        self.images = Images(self)
        self._idle: List[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        self._idle_pid = os.getpid()

    def close(self) -> None:
        """Close the idle connections kept for the next requests (the
        client stays usable: it opens new ones)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __repr__(self):
        where = self._socket or f"{self._scheme}://{self._host}:{self._port}"
        return f"<hull.Client {where}>"

    # ---- transport ------------------------------------------------------------------

    def _where(self):
        return self._socket or f"{self._host}:{self._port}"

    def _connection(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if timeout is not None and timeout <= 0:
            timeout = None  # 0: wait as long as it takes (a stream)
        if self._socket:
            return _UnixHTTPConnection(self._socket, timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._ssl, blocksize=_api.BLOCK)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout,
                                          blocksize=_api.BLOCK)

    def _take(self, timeout=None):
        """An idle kept-alive connection still open, else a new one."""
        while True:
            with self._idle_lock:
                if self._idle_pid != os.getpid():  # forked: the parent's sockets
                    self._idle, self._idle_pid = [], os.getpid()
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connection(timeout)
            if _still_open(conn):
                t = self.timeout if timeout is None else timeout
                conn.timeout = None if t is not None and t <= 0 else t
                conn.sock.settimeout(conn.timeout)
                return conn
            conn.close()

    def _give_back(self, conn, resp):
        """A connection whose answer was read to its end, kept for the next
        request unless hulld said it closes it."""
        if not resp.will_close and conn.sock is not None:
            with self._idle_lock:
                if self._idle_pid == os.getpid() and len(self._idle) < _KEEP_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()

    def _open(self, method, path, body=None, *, query=None, accept="application/json",
              content_type="application/json", timeout=None):
        """Send one request; (connection, response) with the body unread,
        for a status under 400. Error statuses raise the matching
        errors.APIError subclass. ``body``: JSON-able, bytes, or a file
        object / iterable of bytes (sent chunked)."""
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
                headers["Content-Type"] = "application/octet-stream"
            elif _api.is_stream_body(body):
                data = body  # http.client sends it with Transfer-Encoding: chunked
                headers["Content-Type"] = "application/octet-stream"
            else:
                data = json.dumps(body).encode("utf-8")
                headers["Content-Type"] = content_type
        conn = self._take(timeout)
        try:
            unsent = None
            try:
                conn.request(method, self._base + path, body=data, headers=headers)
                # http.client lets go of the socket once an answer that
                # closes the connection (a stream) is read: kept to cut it.
                conn.hull_sock = conn.sock
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as e:
                # hulld answers a body over its --max-body (or a disk
                # limit) with 413 before reading it, and closes: the answer
                # is there to be read.
                if data is None:
                    raise
                unsent = e
            try:
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                if unsent is not None:
                    raise unsent from None
                raise
            if resp.status >= 400:
                payload = resp.read()
                conn.close()
                raise errors.from_response(resp.status, payload, dict(resp.getheaders()))
            return conn, resp
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise errors.TransportError(f"hulld at {self._where()}: {e}") from e
        except BaseException:
            conn.close()
            raise

    def request(self, method: str, path: str, body: Any = None, *, raw: bool = False,
                query: Optional[Mapping[str, Any]] = None,
                content_type: str = "application/json", timeout: Optional[float] = None):
        """One API call: the decoded JSON (or the bytes, with raw=True).
        Error statuses raise the matching errors.APIError subclass.
        ``timeout`` (seconds) replaces the client's for this call."""
        conn, resp = self._open(method, path, body, query=query, content_type=content_type,
                                timeout=timeout)
        try:
            payload = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise errors.TransportError(f"hulld at {self._where()}: {e}") from e
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, resp)
        if raw:
            return payload
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError as e:
            raise errors.TransportError(f"{method} {path}: answer is not JSON: {e}") from e

    def _blocks(self, resp, block=_api.BLOCK) -> Iterator[bytes]:
        """An open response's body as it arrives, in pieces of at most
        ``block`` bytes, until its end. A body cut short (hulld stopped, a
        file that shrank while sent, a connection lost mid-chunk) raises
        TransportError: it never reads as a complete one. (http.client's
        readline() takes a chunked body cut mid-way for its end, and
        read(n) one short of its Content-Length.)"""
        declared = resp.getheader("Content-Length")
        want = int(declared) if declared and declared.isdigit() and not resp.chunked else None
        got = 0
        while True:
            try:
                b = resp.read1(block)
            except (OSError, http.client.HTTPException) as e:
                raise errors.TransportError(f"hulld at {self._where()}: answer cut short: "
                                            f"{e!r}") from e
            if not b:
                if want is not None and got < want:
                    raise errors.TransportError(f"hulld at {self._where()}: answer cut short: "
                                                f"{got} of {want} bytes")
                return
            got += len(b)
            yield b

    def _events(self, conn, resp) -> Iterator[Dict[str, Any]]:
        """The NDJSON events of an open response, until it ends; the
        connection is closed when the generator is (a break closes it).
        A stream cut short raises TransportError."""
        lines = _api.LineSplitter()
        try:
            for b in self._blocks(resp):
                for line in lines.feed(b):
                    ev = _api.parse_line(line)
                    if ev is not None:
                        yield ev
            ev = _api.parse_line(lines.rest())
            if ev is not None:
                yield ev
        finally:
            conn.close()

    def _stream(self, method, path, body=None, *, query=None, timeout=0):
        """An NDJSON request's events (a generator); by default no read
        timeout: a quiet process is not a dead connection."""
        conn, resp = self._open(method, path, body, query=query, accept=_api.NDJSON,
                                timeout=timeout)
        return self._events(conn, resp)

    # ---- runs -------------------------------------------------------------------------

    def run(self, cmd: Union[str, Sequence[str]], *, stdin: Optional[Data] = None,
            files: Optional[Mapping[str, Data]] = None, env: Optional[Mapping[str, str]] = None,
            limits: Optional[Mapping[str, Any]] = None, isolation: Optional[str] = None,
            workdir: Optional[str] = None, network: Optional[NetworkArg] = None,
            image: Optional[str] = None, queue: bool = False, poll: float = 0.05,
            timeout: Optional[float] = None,
            on_stdout: Optional[Callable[[str], Any]] = None,
            on_stderr: Optional[Callable[[str], Any]] = None,
            on_cut: Optional[Callable[[int, int], Any]] = None,
            on_start: Optional[Callable[[str], Any]] = None) -> Result:
        """Run cmd once in a fresh sandbox and return how it went.

        With ``on_stdout`` / ``on_stderr`` the output is streamed: each is
        called with each piece of output (text) while the run runs;
        ``on_cut(offset, lost)`` when this client was too slow and hulld
        skipped output (the Result still has all of it); ``on_start(id)``
        with the run's id (a client cut off can ``wait(id)``: the run goes
        on). Not with ``queue=True``.

        ``files`` land under /tmp (relative names) with their contents;
        ``limits`` as the API takes them: {"cpu_time": "2s", "memory": "256M", ...}:
        a duration is a string with a unit, a number of SECONDS or a
        timedelta; a size a string with a unit or a number of BYTES.
        ``image`` (a name or digest in hulld's store, see ``images``) runs it
        rooted in that image; hulld never pulls for a run (NotFound).
        ``network``: "none" (default), "host" (needs the token's host-network
        grant), a network's name (see ``networks()``), or
        {"name": ..., "egress": "...", "publish": ["127.0.0.1:8080:80"]}
        (a port published beyond the host's loopback needs publish-public).
        With ``queue=True`` the run goes through hulld's Redis queue to a
        worker, and this waits for its result."""
        body = _request_body(cmd, stdin, files, env, limits, isolation, workdir, network, {},
                             image)
        if on_stdout or on_stderr or on_cut or on_start:
            _api.check_run_stream(queue)
            return self._run_streamed(body, on_stdout, on_stderr, on_cut, on_start)
        if queue:
            body["queue"] = True
            run = Run.from_json(self.request("POST", "/v1/runs", body))
            return self.wait(run.id, poll=poll, timeout=timeout)
        return Result.from_json(self.request("POST", "/v1/runs", body))

    def _run_streamed(self, body, on_stdout, on_stderr, on_cut, on_start) -> Result:
        started = None
        if on_start:
            def started(ev, _state):
                on_start((ev.get("run") or {}).get("id", ""))
        return self._streamed("/v1/runs", body, 0, on_stdout, on_stderr, on_cut, started)

    def _streamed(self, path, body, timeout, on_stdout, on_stderr, on_cut, started) -> Result:
        """POST body to path asking for NDJSON (a streamed run or exec):
        output to the callbacks as it comes, ``started(event, state)`` on the
        start line, then the Result."""
        conn, resp = self._open("POST", path, body, accept=_api.NDJSON + ", application/json",
                                timeout=timeout)
        if _api.NDJSON not in (resp.getheader("Content-Type") or ""):
            # A hulld without streaming answers with the result at the end.
            try:
                doc = json.loads(resp.read())
            finally:
                conn.close()
            res, chunks = _api.result_as_chunks(doc)
            for c in chunks:
                _deliver(c, on_stdout, on_stderr, on_cut)
            return res
        state = _api.ExecEvents()
        events = self._events(conn, resp)
        try:
            for ev in events:
                c = state.take(ev)
                if c is not None:
                    _deliver(c, on_stdout, on_stderr, on_cut)
                elif ev["type"] == "start" and started:
                    started(ev, state)
        finally:
            events.close()  # a callback that raised leaves: the run or command goes on
        return state.end()

    def submit(self, cmd: Union[str, Sequence[str]], *, stdin: Optional[Data] = None,
               files: Optional[Mapping[str, Data]] = None, env: Optional[Mapping[str, str]] = None,
               limits: Optional[Mapping[str, Any]] = None, isolation: Optional[str] = None,
               workdir: Optional[str] = None, network: Optional[NetworkArg] = None,
               image: Optional[str] = None, queue: bool = False) -> Run:
        """Start a run without waiting: a Run to get(), wait() on or cancel()."""
        extra = {"queue": True} if queue else {"async": True}
        body = _request_body(cmd, stdin, files, env, limits, isolation, workdir, network, extra,
                             image)
        return Run.from_json(self.request("POST", "/v1/runs", body))

    def get(self, run_id: str) -> Run:
        return Run.from_json(self.request("GET", f"/v1/runs/{_seg(run_id)}"))

    def wait(self, run_id: str, *, poll: float = 0.05, timeout: Optional[float] = None) -> Result:
        """Poll until the run is over. Its Result when it finished; a run
        cancelled or interrupted before it finished raises Conflict."""
        end = None if timeout is None else time.monotonic() + timeout
        delay = poll
        while True:
            run = self.get(run_id)
            if run.done:
                if run.result is None:
                    raise errors.Conflict(409, "not_finished",
                                          f"run {run_id} ended as {run.state}, with no result")
                return run.result
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(f"run {run_id} still {run.state} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def cancel(self, run_id: str) -> Run:
        """Cancel: a queued run never runs, a running one is killed."""
        return Run.from_json(self.request("DELETE", f"/v1/runs/{_seg(run_id)}"))

    def runs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Run]:
        doc = self.request("GET", "/v1/runs", query={"state": state, "limit": limit})
        return [Run.from_json(r) for r in doc.get("runs", [])]

    # ---- sandboxes --------------------------------------------------------------------

    def sandbox(self, isolation: Optional[str] = None, *,
                limits: Optional[Mapping[str, Any]] = None,
                env: Optional[Mapping[str, str]] = None, network: Optional[NetworkArg] = None,
                lifetime: Optional[Union[str, float, datetime.timedelta]] = None,
                image: Optional[str] = None,
                metadata: Optional[Mapping[str, str]] = None,
                ports: Optional[Sequence[int]] = None,
                template: Optional[str] = None) -> "Sandbox":
        """Create a long-lived sandbox. Use it as a context manager to have it
        deleted on exit: ``with client.sandbox() as sb: sb.exec(...)``.
        ``lifetime`` (how long it may stay idle) is "10m", a number of
        seconds or a timedelta (``sb.set_timeout()`` changes it later);
        ``limits`` are the sandbox's own (memory, pids, cpus, tmp_size,
        open_files), shared by every command in it. ``image`` (in hulld's
        store) is the sandbox's root; it cannot be removed while the
        sandbox lives. ``metadata``: labels ({"team": "ml"}, at most 32,
        strings of at most 256 bytes) to find it by with
        ``sandboxes(metadata=...)``. ``ports``: ports of the sandbox to
        expose at once (``sb.port_url(port)`` gives their URLs).
        ``template``: made from that template (``create_template``): its
        files, limits, env and image, its start command started and its
        ready command passed (else ``errors.NotReady`` and no sandbox); only
        lifetime and metadata may be given with it."""
        body = _api.sandbox_body(isolation, limits, env, network, lifetime, image, metadata,
                                 template)
        if ports:
            body["ports"] = [int(p) for p in ports]
        return Sandbox(self, SandboxInfo.from_json(self.request("POST", "/v1/sandboxes", body)))

    # ---- templates ----------------------------------------------------------------------

    def create_template(self, sandbox: Union[str, "Sandbox"], name: str, *,
                        start_cmd: Optional[Sequence[str]] = None,
                        ready_cmd: Optional[Sequence[str]] = None,
                        ready_timeout: Optional[Union[str, float, datetime.timedelta]] = None
                        ) -> TemplateInfo:
        """Keep a prepared sandbox (its /tmp, limits, env, image) as
        template ``name`` of this tenant. Sandboxes made from it start
        ``start_cmd`` in the background and are handed over once
        ``ready_cmd`` exits 0 (within ``ready_timeout``, default 30s)."""
        sid = sandbox.id if isinstance(sandbox, Sandbox) else str(sandbox)
        body = _api.template_body(sid, name, start_cmd, ready_cmd, ready_timeout)
        return TemplateInfo.from_json(self.request("POST", "/v1/templates", body))

    def templates(self) -> List[TemplateInfo]:
        doc = self.request("GET", "/v1/templates")
        return [TemplateInfo.from_json(t) for t in doc.get("templates", [])]

    def template(self, name: str) -> TemplateInfo:
        return TemplateInfo.from_json(self.request("GET", f"/v1/templates/{_seg(name)}"))

    def delete_template(self, name: str) -> None:
        """Remove it and its files (sandboxes made from it go on)."""
        self.request("DELETE", f"/v1/templates/{_seg(name)}")

    def sandboxes(self, metadata: Optional[Mapping[str, str]] = None) -> List[SandboxInfo]:
        """The live sandboxes of this token's tenant; with ``metadata``,
        only those labelled with every one of its pairs."""
        doc = self.request("GET", "/v1/sandboxes", query=_api.metadata_query(metadata))
        return [SandboxInfo.from_json(s) for s in doc.get("sandboxes", [])]

    def attach(self, sandbox_id: str) -> "Sandbox":
        """A Sandbox object for an existing sandbox id."""
        return Sandbox(self, SandboxInfo.from_json(
            self.request("GET", f"/v1/sandboxes/{_seg(sandbox_id)}")))

    # ---- operations -------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/healthz")

    def metrics(self) -> str:
        return self.request("GET", "/metrics", raw=True).decode("utf-8")

    def networks(self) -> List[NetworkInfo]:
        """hull's networks, to name in ``network=`` (any token may list;
        an operator makes them with ``hull network create``)."""
        doc = self.request("GET", "/v1/networks")
        return [NetworkInfo.from_json(n) for n in doc.get("networks", [])]

    def audit(self, limit: Optional[int] = None, since_id: Optional[int] = None):
        doc = self.request("GET", "/v1/audit", query={"limit": limit, "since_id": since_id})
        return doc.get("entries", [])


class Images:
    """hulld's image store (``client.images``): any token may list and get;
    pull and remove need an admin token (PermissionDenied otherwise)."""

    def __init__(self, client: Client):
        self._client = client

    def list(self) -> List[ImageInfo]:
        doc = self._client.request("GET", "/v1/images")
        return [ImageInfo.from_json(i) for i in doc.get("images", [])]

    def get(self, ref: str) -> ImageInfo:
        """By name ("localhost:5000/app:1"), full digest or a digest prefix
        of 12+ hex digits; NotFound when absent."""
        return ImageInfo.from_json(self._client.request("GET", f"/v1/images/{_seg(ref)}"))

    def pull(self, ref: str, *, platform: Optional[str] = None,
             tls_verify: Optional[bool] = None,
             timeout: Optional[float] = PULL_TIMEOUT) -> ImageInfo:
        """Have hulld pull ref from its registry (with hulld's credentials)
        and wait until it is done. ``tls_verify=False`` allows plain HTTP.
        Errors: NotFound (the registry has no such image), RegistryError
        (unreachable, refused, timed out), RateLimited (too many pulls)."""
        body: Dict[str, Any] = {"ref": str(ref)}
        if platform is not None:
            body["platform"] = platform
        if tls_verify is not None:
            body["tls_verify"] = bool(tls_verify)
        return ImageInfo.from_json(self._client.request("POST", "/v1/images", body,
                                                        timeout=timeout))

    def remove(self, ref: str, *, force: bool = False) -> Dict[str, Any]:
        """Remove the name (Conflict while a run or sandbox uses it, unless
        force). Its blobs go at the store's next prune."""
        return self._client.request("DELETE", f"/v1/images/{_seg(ref)}",
                                    query={"force": "true"} if force else None)

    def __iter__(self):
        return iter(self.list())

