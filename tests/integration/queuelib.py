"""Helpers for the Redis queue's tests and benchmark: a private redis-server
(Debian's) on a loopback port, a minimal RESP client, and `hulld --worker`
processes.

The RESP client lets a test look at (and, to stage a crash at an exact
point, write) the queue's keys directly; docs/queue.md documents them.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hulldlib import HULL, HULLD, SRC, wait_until  # noqa: F401  (re-exported)
from hulldlib import alive as pid_alive  # noqa: F401

QUEUETOOL = str(Path(HULL).resolve().parent / "tests" / "queuetool")
REDIS_SERVER = "/usr/bin/redis-server"

P = "hull:"  # the queue's key prefix (HULL_QUEUE_PREFIX)


class RedisError(Exception):
    pass


class Resp:
    """A synchronous RESP2 client: r("SET", "k", "v") -> reply."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self.f.read(n + 2)[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError(f"bad reply {line!r}")

    def hash(self, key):
        flat = self("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, its own directory, nothing
    persisted; stop() leaves neither process nor directory."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="hull-redis-"))
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            if self._start():
                break
        if self.proc is None:
            log = (self.dir / "redis.log").read_text(errors="replace")
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"redis-server did not start: {log[-2000:]}")
        self.url = f"redis://127.0.0.1:{self.port}"
        self.r = Resp(self.port)

    def _start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.dir), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self._wait_ready():
            return True
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        return False

    def restart(self):
        """Stop and start again on the same port: every key is gone (no
        persistence), and every client's connection breaks."""
        self.r.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        assert self._start(), (self.dir / "redis.log").read_text(errors="replace")
        self.r = Resp(self.port)

    def _wait_ready(self):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                c = Resp(self.port, timeout=1)
                ok = c("PING") == "PONG"
                c.close()
                if ok:
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self):
        if self.r:
            self.r.close()
            self.r = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """One `hulld --worker` process; its log goes to a file."""

    def __init__(self, redis_url, name, concurrency=1, heartbeat_ms=100, reap_ms=200,
                 max_attempts=None, extra=(), binary=HULLD):
        self.name = name
        self.log = tempfile.TemporaryFile()
        # --debug: the log names each job's runner process (see runners()).
        argv = [binary, "--worker", "--debug", "--redis", redis_url, "--name", name,
                "--concurrency", str(concurrency), "--heartbeat", str(heartbeat_ms),
                "--reap-interval", str(reap_ms)]
        if max_attempts is not None:
            argv += ["--max-attempts", str(max_attempts)]
        self.proc = subprocess.Popen(argv + list(extra), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        """The per-job runner processes (the worker's direct children, of
        whichever of its threads forked them)."""
        kids = []
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return []
        for t in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{t}/children") as f:
                    kids += [int(p) for p in f.read().split()]
            except OSError:
                pass  # that thread ended meanwhile
        return kids

    def runners(self):
        """Pids of every runner this worker forked (from its debug log)."""
        return {int(m) for m in re.findall(r": runner (\d+)$", self.output(), re.M)}

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=60):
        """SIGTERM: finish running jobs, deregister, exit 0. A worker that
        does not stop in time is killed (and its status says so: -9), so
        that whoever tears down can go on and stop Redis too."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def queuetool(*args, check=True):
    cp = subprocess.run([QUEUETOOL, *args], capture_output=True, text=True, timeout=60)
    if check and cp.returncode != 0:
        raise AssertionError(f"queuetool {args[0]} failed: {cp.stderr}")
    return cp


def submit(url, request):
    return queuetool("submit", url, json.dumps(request)).stdout.strip()
