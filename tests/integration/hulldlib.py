"""A real hulld for tests: started on a tmp socket and state dir, with
tokens made by `hull token create`, talked to over the unix socket with
Python's http.client (and curl where a test wants a second client)."""
import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from conftest import pid_alive, wait_until  # noqa: F401 (re-exported)

SRC = Path(__file__).resolve().parents[2]
HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))
HULLD = os.environ.get("HULLD", str(Path(HULL).resolve().parent / "hulld"))
SANDBOX_ROOT = Path("/run/hull/sandbox")
MiB = 1 << 20


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("hulld", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def children(pid):
    """The processes whose parent is pid (any of its threads), from each
    process's stat: the per-thread /proc/PID/task/TID/children lists are
    only reliable for stopped tasks (proc(5)), and a child whose forking
    thread has just ended is missed while it is reparented."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) comes after the command, which may hold spaces.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


alive = pid_alive


def _ours(name, pids):
    """Run and session ids embed their supervisor's pid: sandbox-PID-..., session-PID-..."""
    parts = name.split("-")
    return len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) in pids


def sandbox_entries_of(pids):
    """Sandbox state directories supervised by one of pids."""
    if not SANDBOX_ROOT.exists():
        return []
    return [n for n in os.listdir(SANDBOX_ROOT) if _ours(n, pids)]


def cgroups_of(pids):
    """Sandbox cgroups (/hull/<id> in every hierarchy) supervised by one of pids."""
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        d = base / "hull"
        if d.is_dir():
            found += [str(d / n) for n in os.listdir(d) if _ours(n, pids)]
    return found


class Hulld:
    def __init__(self, tmp: Path, *extra):
        self.tmp = tmp
        self.sock = str(tmp / "hulld.sock")
        self.state = str(tmp / "state")
        self.extra = list(extra)
        self.proc = None
        self.helpers_seen = set()
        self.log = tmp / "hulld.log"

    def token(self, role="user", tenant="acme", allow=None):
        extra = ["--allow", allow] if allow else []
        r = subprocess.run([HULL, "token", "create", "--state-dir", self.state, "--role", role,
                            "--tenant", tenant, *extra], capture_output=True, text=True,
                           check=True)
        return r.stdout.strip().splitlines()[-1]

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([HULLD, "--socket", self.sock, "--state-dir", self.state,
                                      *self.extra], stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        assert wait_until(lambda: self.ready() or self.proc.poll() is not None, 30)
        assert self.proc.poll() is None, self.log.read_text()
        self.note_helpers()
        return self

    def ready(self):
        try:
            return self.request("GET", "/healthz").status == 200
        except OSError:
            return False

    def note_helpers(self):
        if self.proc and self.proc.poll() is None:
            self.helpers_seen.update(children(self.proc.pid))

    def request(self, method, path, body=None, token=None, headers=None, raw=False, timeout=60):
        c = UnixConnection(self.sock, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None and not raw:
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            c.close()

    def stop(self, sig=signal.SIGTERM, timeout=120):
        if self.proc is None:
            return None
        self.note_helpers()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def kill(self):
        self.note_helpers()
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def leaks(self):
        """What hulld's helpers left: live processes, sandbox state, cgroups."""
        procs = [p for p in self.helpers_seen if alive(p)]
        entries = sandbox_entries_of(self.helpers_seen)
        return procs, entries, cgroups_of(self.helpers_seen)


def hull_cli(*args):
    return subprocess.run([HULL, *args], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def private_net_dirs(base):
    """hull networks kept in state directories under base (hulld started
    meanwhile inherits them); yields a list to which a test appends the
    networks it makes: they are removed afterwards, and the environment is
    restored."""
    saved = {k: os.environ.get(k) for k in ("HULL_NET_RUN_DIR", "HULL_NET_CONFIG_DIR")}
    os.environ["HULL_NET_RUN_DIR"] = str(base / "run")
    os.environ["HULL_NET_CONFIG_DIR"] = str(base / "config")
    made = []
    try:
        yield made
    finally:
        for name in made:
            hull_cli("network", "remove", "--force", name)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def block(i):
    """1 MiB of deterministic, incompressible-looking data, number i."""
    seed = hashlib.sha256(i.to_bytes(8, "little")).digest()
    return (seed * (MiB // len(seed)))[:MiB]


def put_stream(d, url, n_mib, token, chunked=False, cut_after=None):
    """PUT n_mib MiB, sent a block at a time; the response, or None when cut."""
    c = UnixConnection(d.sock, timeout=600)
    c.putrequest("PUT", url)
    c.putheader("Authorization", f"Bearer {token}")
    if chunked:
        c.putheader("Transfer-Encoding", "chunked")
    else:
        c.putheader("Content-Length", str(n_mib * MiB))
    c.endheaders()
    h = hashlib.sha256()
    try:
        for i in range(n_mib):
            if cut_after is not None and i == cut_after:
                c.sock.shutdown(socket.SHUT_RDWR)
                c.close()
                return None, h.hexdigest()
            b = block(i)
            h.update(b)
            c.send(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
        if chunked:
            c.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered early (413): the answer is still there to read
    r = c.getresponse()
    body = r.read()
    c.close()
    return (r.status, json.loads(body)), h.hexdigest()


def self_signed_cert(tmp):
    """A key and a self-signed certificate for 127.0.0.1 (a --listen's TLS),
    as (key, cert) paths under tmp."""
    key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert
