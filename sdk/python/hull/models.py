"""Typed views of hulld's JSON: a run's result, a run, a sandbox, an image, a
network."""
import base64
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import HullError

VERDICTS = ("ok", "exit_nonzero", "signaled", "cpu_time_limit", "wall_time_limit",
            "memory_limit", "output_limit", "pids_limit", "internal_error", "killed",
            "bad_command")


class RunFailed(HullError):
    """Raised by Result.check() when the verdict is not "ok"."""

    def __init__(self, result):
        self.result = result
        msg = f"run ended with verdict {result.verdict}"
        if result.verdict == "exit_nonzero":
            msg += f" (exit code {result.exit_code})"
        if result.error:
            msg += f": {result.error}"
        super().__init__(msg)


def _stream(d, name):
    """(bytes, text) of stdout/stderr: text as is, or base64 when not UTF-8."""
    if f"{name}_base64" in d:
        raw = base64.b64decode(d[f"{name}_base64"])
        return raw, raw.decode("utf-8", "replace")
    text = d.get(name, "") or ""
    return text.encode("utf-8"), text


@dataclass
class Result:
    """How one run (or one exec in a sandbox) went."""
    verdict: str
    exit_code: int = 0
    signal: int = 0
    cpu_time_ms: int = 0
    wall_time_ms: int = 0
    max_memory_kb: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: List[Dict[str, Any]] = field(default_factory=list)
    isolation: Optional[str] = None
    error: Optional[str] = None
    id: Optional[str] = None
    # {"name": "registry/repo:tag", "digest": manifest} when run from an image
    image: Optional[Dict[str, str]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        out_b, out = _stream(d, "stdout")
        err_b, err = _stream(d, "stderr")
        return cls(verdict=d.get("verdict", "internal_error"), exit_code=d.get("exit_code", 0),
                   signal=d.get("signal", 0), cpu_time_ms=d.get("cpu_time_ms", 0),
                   wall_time_ms=d.get("wall_time_ms", 0),
                   max_memory_kb=d.get("max_memory_kb", 0), stdout=out, stderr=err,
                   stdout_bytes=out_b, stderr_bytes=err_b,
                   stdout_truncated=d.get("stdout_truncated", False),
                   stderr_truncated=d.get("stderr_truncated", False),
                   files=d.get("files", []), isolation=d.get("isolation"),
                   error=d.get("error"), id=d.get("id"), image=d.get("image"), raw=d)

    @property
    def ok(self):
        return self.verdict == "ok"

    def check(self):
        """Return self when the verdict is ok, else raise RunFailed."""
        if not self.ok:
            raise RunFailed(self)
        return self


@dataclass
class Run:
    """A run as hulld tracks it: queued, running, finished, cancelled or
    interrupted; ``result`` once finished."""
    id: str
    state: str
    created: Optional[str] = None
    finished: Optional[str] = None
    queue: bool = False
    result: Optional[Result] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    TERMINAL = ("finished", "cancelled", "interrupted")

    @classmethod
    def from_json(cls, d):
        res = Result.from_json(d) if "verdict" in d else None
        return cls(id=d["id"], state=d.get("state", "finished" if res else "queued"),
                   created=d.get("created"), finished=d.get("finished"),
                   queue=bool(d.get("queue", False)), result=res, raw=d)

    @property
    def done(self):
        return self.state in self.TERMINAL


@dataclass
class SandboxInfo:
    id: str
    state: str
    isolation: Optional[str] = None
    created: Optional[str] = None
    last_used: Optional[str] = None
    expires: Optional[str] = None
    lifetime_s: Optional[int] = None
    image: Optional[str] = None  # "REPOSITORY@DIGEST" it was made from, while it lives
    metadata: Dict[str, str] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        return cls(id=d["id"], state=d.get("state", ""), isolation=d.get("isolation"),
                   created=d.get("created"), last_used=d.get("last_used"),
                   expires=d.get("expires"), lifetime_s=d.get("lifetime_s"),
                   image=d.get("image"), metadata=dict(d.get("metadata") or {}), raw=d)


@dataclass
class TemplateInfo:
    """A sandbox template (``client.create_template``): what its sandboxes
    are made with. ``sandbox`` is the create request they get (isolation,
    limits, env, image, network); ``bytes``/``files`` what its copy of the
    source's /tmp holds."""
    name: str
    id: str
    isolation: str = "container"
    bytes: int = 0
    files: int = 0
    source: Optional[str] = None
    created: Optional[str] = None
    start_cmd: Optional[List[str]] = None
    ready_cmd: Optional[List[str]] = None
    ready_timeout: Optional[float] = None
    sandbox: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        return cls(name=d["name"], id=d.get("id", ""), isolation=d.get("isolation", "container"),
                   bytes=d.get("bytes", 0), files=d.get("files", 0), source=d.get("source"),
                   created=d.get("created"), start_cmd=d.get("start_cmd"),
                   ready_cmd=d.get("ready_cmd"), ready_timeout=d.get("ready_timeout"),
                   sandbox=dict(d.get("sandbox") or {}), raw=d)


@dataclass
class ImageInfo:
    """An image in hulld's store. ``size`` is the bytes of its config and
    layers as stored; the fields after ``created`` are filled by
    ``client.images.get()`` and ``pull()`` (inspect), not by ``list()``."""
    name: Optional[str]
    digest: str
    size: int = 0
    created: Optional[str] = None
    media_type: Optional[str] = None
    manifest_digest: Optional[str] = None
    platform: Optional[str] = None
    config: Dict[str, Any] = field(default_factory=dict)
    layers: List[Dict[str, Any]] = field(default_factory=list)
    in_use: Optional[bool] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        return cls(name=d.get("name"), digest=d["digest"], size=d.get("size", 0),
                   created=d.get("created"), media_type=d.get("media_type"),
                   manifest_digest=d.get("manifest_digest"), platform=d.get("platform"),
                   config=d.get("config") or {}, layers=d.get("layers") or [],
                   in_use=d.get("in_use"), raw=d)


@dataclass
class NetworkInfo:
    """One of hull's networks, as ``client.networks()`` lists them (GET
    /v1/networks). ``members`` is how many sandboxes and VMs are on it now
    (whose they are is not told); ``ipv6_subnet`` is None without IPv6."""
    name: str
    subnet: str
    gateway: str
    ipv6_subnet: Optional[str] = None
    ipv6_gateway: Optional[str] = None
    internal: bool = False
    allow_peers: bool = False
    members: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        return cls(name=d["name"], subnet=d.get("subnet", ""), gateway=d.get("gateway", ""),
                   ipv6_subnet=d.get("ipv6_subnet"), ipv6_gateway=d.get("ipv6_gateway"),
                   internal=bool(d.get("internal")), allow_peers=bool(d.get("allow_peers")),
                   members=d.get("members"), raw=d)


@dataclass
class Chunk:
    """A piece of a process's output as it streams: ``stream`` is "stdout"
    or "stderr" (or "cut": ``lost`` bytes at ``offset`` were dropped from a
    bounded buffer before this reader got them); ``data`` the exact bytes;
    ``offset`` where they start in the process's combined output."""
    stream: str
    data: bytes
    offset: int = 0
    lost: int = 0

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    @property
    def end(self) -> int:
        """The offset just past this chunk: where a re-attach resumes."""
        return self.offset + (self.lost if self.stream == "cut" else len(self.data))

    @classmethod
    def from_json(cls, d):
        if d.get("type") == "cut":
            return cls("cut", b"", int(d.get("offset", 0)), int(d.get("lost", 0)))
        if "data_b64" in d:
            data = base64.b64decode(d["data_b64"])
        else:
            data = (d.get("data") or "").encode("utf-8")
        return cls(d["type"], data, int(d.get("offset", 0)))


@dataclass
class ProcessInfo:
    """A process of a sandbox as hulld tracks it (state "running" or
    "exited"; ``result`` once exited)."""
    id: str
    sandbox: Optional[str] = None
    cmd: List[str] = field(default_factory=list)
    state: str = "running"
    pty: bool = False
    started: Optional[str] = None
    ended: Optional[str] = None
    result: Optional[Result] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        res = d.get("result")
        return cls(id=d["id"], sandbox=d.get("sandbox"), cmd=list(d.get("cmd") or []),
                   state=d.get("state", "running"), pty=bool(d.get("pty", False)),
                   started=d.get("started"), ended=d.get("ended"),
                   result=Result.from_json(res) if isinstance(res, dict) else None, raw=d)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass
class FileEntry:
    """A file, directory or symlink in a sandbox (``files.stat``/``list``):
    ``type`` is "file", "dir", "symlink" or "other"; ``mode`` octal text
    ("0644"); ``mtime`` RFC 3339; ``target`` a symlink's."""
    name: str
    path: str
    type: str = "file"
    size: int = 0
    mode: Optional[str] = None
    mtime: Optional[str] = None
    target: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        path = d.get("path", "")
        name = d.get("name") or path.rstrip("/").rsplit("/", 1)[-1]
        return cls(name=name, path=path, type=d.get("type", "file"), size=d.get("size", 0) or 0,
                   mode=d.get("mode"), mtime=d.get("mtime"), target=d.get("target"), raw=d)

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    def __getitem__(self, key):
        """The entry's JSON by key, as files.write() answered it before
        entries were typed (``write(...)["size"]``)."""
        return self.raw[key]


@dataclass
class WatchEvent:
    """One change under a watched directory: ``type`` is "create",
    "modify", "delete", "rename_from", "rename_to" or "overflow" (events
    were lost: look again)."""
    type: str
    path: str = ""
    dir: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d):
        return cls(type=d.get("type", ""), path=d.get("path", ""), dir=bool(d.get("dir", False)),
                   raw=d)


@dataclass
class MetricsSample:
    """One sample of a sandbox's usage (``Sandbox.metrics()``); a field is
    None when hulld could not measure it (no cgroup at process isolation,
    no network of its own)."""
    time: str
    cpu_seconds: Optional[float] = None
    memory_bytes: Optional[int] = None
    memory_peak_bytes: Optional[int] = None
    disk_bytes: Optional[int] = None
    net_rx_bytes: Optional[int] = None
    net_tx_bytes: Optional[int] = None

    @classmethod
    def from_json(cls, d):
        return cls(time=d.get("time", ""), cpu_seconds=d.get("cpu_seconds"),
                   memory_bytes=d.get("memory_bytes"),
                   memory_peak_bytes=d.get("memory_peak_bytes"),
                   disk_bytes=d.get("disk_bytes"), net_rx_bytes=d.get("net_rx_bytes"),
                   net_tx_bytes=d.get("net_tx_bytes"))
