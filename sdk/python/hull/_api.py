"""What the sync Client and the AsyncClient share: request bodies and URLs
built from the SDK's arguments, and the reading of hulld's NDJSON streams.
Nothing here does I/O, so both transports send exactly the same requests."""
import datetime
import json
import posixpath
import signal as _signal
import urllib.parse
from typing import Any, Dict, Mapping, Optional

from . import errors
from .models import Chunk, ProcessInfo, Result

NDJSON = "application/x-ndjson"
# A read of a file or a stream hands over blocks of this size.
BLOCK = 1 << 20


def seg(s):
    """One URL path segment, whatever the string holds."""
    return urllib.parse.quote(str(s), safe="")


def text(value, what):
    """The API carries stdin and file contents as JSON strings: UTF-8 text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: bytes that are not UTF-8 cannot travel in a run "
                             "request; upload them to a sandbox with files.write()") from None
    if not isinstance(value, str):
        raise TypeError(f"{what}: must be str or bytes, not {type(value).__name__}")
    return value


def cmd_list(cmd):
    """A list of arguments; a string is run by sh -c."""
    if isinstance(cmd, str):
        return ["sh", "-c", cmd]
    cmd = [str(a) for a in cmd]
    if not cmd:
        raise ValueError("cmd: must not be empty")
    return cmd


def duration(value):
    """The API's rule for a duration: a string with a unit ("2s", "500ms")
    or a number of seconds; a datetime.timedelta becomes seconds."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def limits_body(limits):
    """Limits as the API takes them: durations (cpu_time, wall_time) are a
    string with a unit or seconds, sizes (memory, output, tmp_size) a
    string with a unit ("64M") or bytes; pids, open_files and cpus are
    plain numbers."""
    return {str(k): duration(v) for k, v in limits.items()}


def run_body(cmd, stdin, files, env, limits, isolation, workdir, network, extra, image=None):
    body: Dict[str, Any] = {"cmd": cmd_list(cmd)}
    if stdin is not None:
        body["stdin"] = text(stdin, "stdin")
    if files:
        body["files"] = {p: text(v, f"files[{p!r}]") for p, v in files.items()}
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if limits:
        body["limits"] = limits_body(limits)
    if isolation is not None:
        body["isolation"] = isolation
    if workdir is not None:
        body["workdir"] = workdir
    if network is not None:
        body["network"] = network if isinstance(network, str) else dict(network)
    if image is not None:
        body["image"] = str(image)
    body.update(extra)
    return body


def exec_body(cmd, stdin, env, workdir, limits, timeout):
    """An exec: ``timeout`` (seconds, or a duration) is the command's
    wall-clock limit unless limits name one."""
    limits = dict(limits or {})
    if timeout is not None and "wall_time" not in limits:
        limits["wall_time"] = duration(timeout)
    return run_body(cmd, stdin, None, env, limits, None, workdir, None, {})


def wait_margin(timeout):
    """How long a client waits for an exec whose limit is ``timeout``."""
    if timeout is None:
        return None
    t = duration(timeout)
    return float(t) + 60.0 if isinstance(t, (int, float)) else None


def metadata_body(metadata):
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata: must be a mapping of str to str")
    return {str(k): str(v) for k, v in metadata.items()}


def sandbox_body(isolation, limits, env, network, lifetime, image, metadata, template=None):
    body: Dict[str, Any] = {}
    if template is not None:
        body["template"] = str(template)
    if isolation is not None:
        body["isolation"] = isolation
    if limits:
        body["limits"] = limits_body(limits)
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if network is not None:
        body["network"] = network if isinstance(network, str) else dict(network)
    if lifetime is not None:
        body["lifetime"] = duration(lifetime)
    if image is not None:
        body["image"] = str(image)
    if metadata:
        body["metadata"] = metadata_body(metadata)
    return body


def template_body(sandbox_id, name, start_cmd, ready_cmd, ready_timeout):
    """POST /v1/templates."""
    body: Dict[str, Any] = {"sandbox": str(sandbox_id), "name": str(name)}
    if start_cmd is not None:
        body["start_cmd"] = cmd_list(start_cmd)
    if ready_cmd is not None:
        body["ready_cmd"] = cmd_list(ready_cmd)
    if ready_timeout is not None:
        body["ready_timeout"] = duration(ready_timeout)
    return body


def metadata_query(metadata):
    """GET /v1/sandboxes?metadata.K=V (several ANDed)."""
    if not metadata:
        return None
    return {f"metadata.{k}": v for k, v in metadata_body(metadata).items()}


def start_body(cmd, stdin, pty, env, workdir, limits):
    body: Dict[str, Any] = {"cmd": cmd_list(cmd), "stdin": bool(stdin)}
    if pty is not None and pty is not False:
        rows, cols = (24, 80) if pty is True else pty
        body["pty"] = {"rows": int(rows), "cols": int(cols)}
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if workdir is not None:
        body["workdir"] = workdir
    if limits:
        body["limits"] = limits_body(limits)
    return body


def signal_name(sig):
    """"TERM", 15, signal.SIGTERM or "SIGTERM" as the API takes it."""
    if isinstance(sig, _signal.Signals):
        return sig.name[3:]
    if isinstance(sig, int):
        return int(sig)
    s = str(sig).upper()
    return s[3:] if s.startswith("SIG") else s


def sandbox_path(sid, action=""):
    return f"/v1/sandboxes/{seg(sid)}" + (f"/{action}" if action else "")


def template_path(name):
    return f"/v1/templates/{seg(name)}"


def process_path(sid, pid, action=""):
    return sandbox_path(sid, f"processes/{seg(pid)}" + (f"/{action}" if action else ""))


def sandbox_file(path):
    """A path in a sandbox: absolute as given; relative ones are under /tmp
    (as the first files API had them) and may not climb out of it."""
    p = str(path)
    if not p:
        raise ValueError("path: must not be empty")
    if "\0" in p:
        raise ValueError(f"{path!r}: a path cannot hold NUL")
    if p.startswith("/"):
        return p
    full = posixpath.normpath(posixpath.join("/tmp", p))
    if full != "/tmp" and not full.startswith("/tmp/"):
        raise ValueError(f"{path}: a relative path is under /tmp; give an absolute path")
    return full


def fs_path(sid, path):
    return sandbox_path(sid, "fs") + urllib.parse.quote(sandbox_file(path), safe="/")


def is_stream_body(data):
    """A file object or an iterator of bytes (a generator): sent with
    chunked encoding. (A dict or list is a JSON body.)"""
    return hasattr(data, "read") or hasattr(data, "__next__")


def write_data(data):
    """bytes for a body, or the stream as is."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if is_stream_body(data):
        return data
    raise TypeError(f"data: bytes, str, a file object or an iterable of bytes, "
                    f"not {type(data).__name__}")


def mode_query(mode):
    if mode is None:
        return None
    return {"mode": mode if isinstance(mode, str) else format(int(mode), "04o")}


# ---- NDJSON streams -------------------------------------------------------------------

def parse_line(line):
    """One NDJSON line as a dict (None for a blank one)."""
    line = line.strip()
    if not line:
        return None
    try:
        ev = json.loads(line)
    except ValueError as e:
        raise errors.TransportError(f"stream: a line that is not JSON: {e}") from e
    if not isinstance(ev, dict) or "type" not in ev:
        raise errors.TransportError(f"stream: a line without a type: {line[:200]!r}")
    if ev["type"] == "error":
        raise errors.from_stream_error(ev.get("error"))
    return ev


class LineSplitter:
    """Bytes in, complete lines out: for transports that read blocks."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        out = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                return out
            out.append(bytes(self._buf[:i]))
            del self._buf[:i + 1]

    def rest(self):
        rest, self._buf = bytes(self._buf), bytearray()
        return rest


class ExecEvents:
    """An exec's or a process's stream, event by event: output chunks for
    the caller, then its result. ``offset`` is where a re-attach resumes."""

    def __init__(self, offset=0):
        self.process: Optional[ProcessInfo] = None
        self.result: Optional[Result] = None
        self.offset = offset

    def take(self, ev):
        """The Chunk in ev, or None (start/result, kept here)."""
        t = ev["type"]
        if t == "start":
            self.process = ProcessInfo.from_json(ev.get("process") or {"id": ""})
            return None
        if t == "result":
            self.result = Result.from_json(ev.get("result") or {})
            return None
        if t in ("stdout", "stderr", "cut"):
            c = Chunk.from_json(ev)
            self.offset = max(self.offset, c.end)
            return c
        return None  # a type this SDK does not know yet: skipped

    def end(self):
        if self.result is None:
            raise errors.TransportError("stream ended before the result")
        return self.result


def result_as_chunks(doc):
    """A server that answered an exec with plain JSON: its output as two
    chunks, so callbacks still see it."""
    res = Result.from_json(doc)
    chunks = []
    if res.stdout_bytes:
        chunks.append(Chunk("stdout", res.stdout_bytes, 0))
    if res.stderr_bytes:
        chunks.append(Chunk("stderr", res.stderr_bytes, len(res.stdout_bytes)))
    return res, chunks


def metrics_query(since):
    """GET …/metrics's query: ``since`` a datetime (naive = UTC) or an
    RFC 3339 string."""
    if since is None:
        return None
    if isinstance(since, datetime.datetime):
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime.timezone.utc)
        since = since.isoformat()
    return {"since": str(since)}


def check_run_stream(queue):
    """A queued run is not streamed: refused here, before anything is sent."""
    if queue:
        raise ValueError("on_stdout/on_stderr/on_cut/on_start: not with queue=True "
                         "(a run through the Redis queue is not streamed)")
