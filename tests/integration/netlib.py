"""A test "internet" for hull's network tests, built on this machine only.

    from netlib import upstream, client_ns   # pytest fixtures

    def test_fetch(upstream):
        # upstream.addr4 (198.18.x.2), upstream.addr6 (2001:2:0:x::2),
        # upstream.http_ports (two python3 http.servers), upstream.iperf_port
        ...

Upstream ("the internet"): a network namespace made with `ip netns add`,
joined to the root namespace by a veth pair. Addresses come from the
benchmarking ranges 198.18.0.0/15 and 2001:2::/48 (never the machine's real
uplink, 192.0.2.0/24 on eth0): the root side is .1 / ::1 of a /24 / /64 of
its own, the upstream .2 / ::2, with a default route back through the root
namespace (so replies to anything NATed by hull, or routed to it, come
back). The root namespace reaches the upstream through the connected route;
a sandbox on a hull network reaches it through hull's NAT.

Servers inside: python3 -m http.server on two ports (each serves a file
"whoami" whose text names the port: "upstream <port>\n"), and optionally
iperf3 -s. Everything is torn down afterwards: servers killed and reaped,
the namespace deleted (which deletes the veth pair).

Client: another namespace joined the same way (its own /24), standing in for
a second machine on the host's network: it reaches the host at
client.host_addr4 (the root side of its veth), e.g. a port hull published.

Several test sessions (other branches, other testers) may use this at the
same time: each namespace gets a name with this process's pid and a /24 no
other interface of the root namespace has (chosen under a lock file), and
sweep_stale() removes namespaces of test processes that died.

Nothing here sends traffic off this machine.
"""
import fcntl
import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

import pytest

PREFIX = "hullnt"          # netns names: hullnt-<pid>-<n>
LOCK = "/run/hull-netlib.lock"
V4_RANGE = ipaddress.ip_network("198.18.0.0/15")
HTTP_PORTS = (8080, 8081)
IPERF_PORT = 5201

_counter = [0]


def sh(*cmd, check=True, timeout=30, **kw):
    """Run a command; on failure the error shows its output."""
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                        **kw)
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({cp.returncode}): "
                             f"{cp.stdout}{cp.stderr}")
    return cp


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Delete netlib namespaces whose test process is gone (a crashed or
    killed pytest); never another live session's."""
    for name in netns_list():
        m = re.fullmatch(rf"{PREFIX}-(\d+)-\d+", name)
        if m and not _pid_alive(int(m.group(1))):
            sh("ip", "netns", "del", name, check=False)


def netns_list():
    cp = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


@contextmanager
def _lock():
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_v4_networks():
    """Every IPv4 network the root namespace has an address or route in."""
    used = []
    for cmd in (("ip", "-4", "-o", "addr", "show"), ("ip", "-4", "route", "show", "table", "all")):
        for tok in sh(*cmd, check=False).stdout.split():
            try:
                n = ipaddress.ip_network(tok, strict=False)
            except ValueError:
                continue
            if n.version == 4 and n.prefixlen > 0:
                used.append(n)
    return used


def _free_slot():
    """A free /24 of 198.18.0.0/15 (its index 0..511)."""
    used = _used_v4_networks()
    slots = list(range(1, 512))
    random.shuffle(slots)
    for i in slots:
        net = ipaddress.ip_network(f"{V4_RANGE.network_address + i * 256}/24")
        if not any(net.overlaps(u) for u in used):
            return i, net
    raise AssertionError("netlib: no free /24 left in 198.18.0.0/15")


class Netns:
    """A test namespace joined to the root namespace by a veth pair."""

    def __init__(self, role, ipv6=True):
        sweep_stale()
        _counter[0] += 1
        self.role = role
        self.name = f"{PREFIX}-{os.getpid()}-{_counter[0]}"
        tag = f"{os.getpid() % 100000:05d}{_counter[0] % 100:02d}"
        self.host_if = f"hnt{tag}"   # root side, <= 15 characters
        self.ifname = "eth0"         # inside
        self.ipv6 = ipv6
        self._procs = []
        self._dirs = []
        with _lock():
            slot, net = _free_slot()
            self.net4 = net
            self.host_addr4 = str(net.network_address + 1)
            self.addr4 = str(net.network_address + 2)
            self.net6 = ipaddress.ip_network(f"2001:2:0:{slot:x}::/64")
            self.host_addr6 = str(self.net6.network_address + 1)
            self.addr6 = str(self.net6.network_address + 2)
            try:
                self._build()
            except BaseException:
                self.close()
                raise

    def _build(self):
        sh("ip", "netns", "add", self.name)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ifname,
           "netns", self.name)
        # The root side must not take router advertisements from the test
        # namespace (accept_ra=1 is this machine's default).
        sh("sysctl", "-qw", f"net.ipv6.conf.{self.host_if}.accept_ra=0", check=False)
        sh("ip", "addr", "add", f"{self.host_addr4}/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("ip", "addr", "add", f"{self.addr4}/24", "dev", self.ifname)
        self.exec("ip", "link", "set", self.ifname, "up")
        self.exec("ip", "route", "add", "default", "via", self.host_addr4)
        if self.ipv6:
            sh("ip", "-6", "addr", "add", f"{self.host_addr6}/64", "dev", self.host_if, "nodad")
            self.exec("ip", "-6", "addr", "add", f"{self.addr6}/64", "dev", self.ifname, "nodad")
            self.exec("ip", "-6", "route", "add", "default", "via", self.host_addr6)

    def exec(self, *cmd, check=True, timeout=30, **kw):
        """A command inside the namespace."""
        return sh("ip", "netns", "exec", self.name, *cmd, check=check, timeout=timeout, **kw)

    def popen(self, *cmd, **kw):
        """A long-running process inside the namespace, stopped by close()."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", self.name, *map(str, cmd)],
                             start_new_session=True, **kw)
        self._procs.append(p)
        return p

    def http_get(self, host, port, path="/whoami", timeout=10):
        """GET from inside the namespace: the body (str), or None when the
        connection fails or times out."""
        h = f"[{host}]" if ":" in host else host
        code = ("import sys,urllib.request\n"
                "try:\n"
                f"  sys.stdout.write(urllib.request.urlopen('http://{h}:{port}{path}',"
                f" timeout={timeout}).read().decode())\n"
                "except Exception as e:\n"
                "  sys.stderr.write(repr(e)); sys.exit(3)\n")
        cp = self.exec("python3", "-c", code, check=False, timeout=timeout + 30)
        return cp.stdout if cp.returncode == 0 else None

    def tcp_open(self, host, port, timeout=5):
        """Whether a TCP connection from inside the namespace succeeds."""
        code = ("import socket,sys\n"
                "try:\n"
                f"  socket.create_connection(({host!r}, {port}), timeout={timeout}).close()\n"
                "except Exception:\n"
                "  sys.exit(3)\n")
        return self.exec("python3", "-c", code, check=False, timeout=timeout + 30).returncode == 0

    def close(self):
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self._procs = []
        # Deleting the namespace deletes the veth pair with it; the root side
        # is deleted too in case the namespace was never made.
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "link", "del", self.host_if, check=False)
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs = []


class BridgedHosts:
    """A bridge in the root namespace (.1 of a free /24 of 198.18.0.0/15) and
    one namespace per name on it (.11, .12, ...), standing in for machines
    on one LAN. .ns[name] is (namespace, address); .host the bridge's address.

    Every name here is this instance's own (pid and a counter): `ip netns
    del` only drops the mount, and the namespace with its veth lingers while
    anything still runs in it or the kernel's cleanup is behind, so a later
    instance in the same process must not reuse a name. close() deletes the
    root-side veths itself, which takes both ends at once."""

    def __init__(self, names, prefix="hb"):
        sweep_stale()
        _counter[0] += 1
        tag = f"{prefix}{os.getpid() % 100000:05d}{_counter[0] % 100:02d}"
        self.br = f"{tag}b"
        self.ns, self._ifs = {}, []
        try:
            with _lock():  # the /24 is ours once the bridge has its address
                _, net = _free_slot()
                self.net = net
                self.host = str(net.network_address + 1)
                sh("ip", "link", "add", self.br, "type", "bridge")
                sh("ip", "addr", "add", f"{self.host}/24", "dev", self.br)
            sh("ip", "link", "set", self.br, "up")
            for i, name in enumerate(names):
                _counter[0] += 1
                ns, veth = f"{PREFIX}-{os.getpid()}-{_counter[0]}", f"{tag}{i}"
                addr = str(net.network_address + 11 + i)
                sh("ip", "netns", "add", ns)
                self.ns[name] = (ns, addr)
                sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._ifs.append(veth)
                sh("ip", "link", "set", veth, "master", self.br)
                sh("ip", "link", "set", veth, "up")
                for c in (("link", "set", "lo", "up"), ("addr", "add", f"{addr}/24", "dev", "eth0"),
                          ("link", "set", "eth0", "up")):
                    sh("ip", "netns", "exec", ns, "ip", *c)
        except BaseException:
            self.close()
            raise

    def close(self):
        for veth in self._ifs:
            sh("ip", "link", "del", veth, check=False)
        for ns, _ in self.ns.values():
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.br, check=False)

    def leftovers(self):
        """Whatever of this instance is still on the host."""
        left = [ns for ns, _ in self.ns.values() if ns in netns_list()]
        return left + [i for i in (*self._ifs, self.br)
                       if sh("ip", "link", "show", i, check=False).returncode == 0]


def wait_port(host, port, timeout=30):
    """Until a TCP port accepts connections from the root namespace (a hang
    guard for a server starting up, not a speed check)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Upstream(Netns):
    """The test "internet": http.servers on HTTP_PORTS, optionally iperf3."""

    def __init__(self, ipv6=True, iperf=False, http_ports=HTTP_PORTS):
        super().__init__("upstream", ipv6=ipv6)
        self.http_ports = tuple(http_ports)
        self.iperf_port = IPERF_PORT if iperf else None
        try:
            for port in self.http_ports:
                d = tempfile.mkdtemp(prefix="hull-netlib-")
                self._dirs.append(d)
                with open(os.path.join(d, "whoami"), "w") as f:
                    f.write(f"upstream {port}\n")
                os.chmod(d, 0o755)
                # "::" is dual-stack here (bindv6only=0): IPv4 and IPv6.
                self.popen("python3", "-m", "http.server", "--bind", "::" if ipv6 else
                           self.addr4, "--directory", d, port)
            if iperf:
                self.popen("iperf3", "-s", "-p", IPERF_PORT)
            for port in self.http_ports + ((IPERF_PORT,) if iperf else ()):
                if not wait_port(self.addr4, port):
                    raise AssertionError(f"netlib: upstream server on port {port} never came up")
        except BaseException:
            self.close()
            raise

    def url(self, port=None, path="/whoami", v6=False):
        port = port or self.http_ports[0]
        host = f"[{self.addr6}]" if v6 else self.addr4
        return f"http://{host}:{port}{path}"

    @staticmethod
    def body(port):
        """What GET /whoami returns from the server on port."""
        return f"upstream {port}\n"


class Client(Netns):
    """Another machine on the host's network (reaches the host at host_addr4)."""

    def __init__(self, ipv6=True):
        super().__init__("client", ipv6=ipv6)


@pytest.fixture
def upstream():
    u = Upstream()
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def upstream_iperf():
    u = Upstream(iperf=True)
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def client_ns():
    c = Client()
    try:
        yield c
    finally:
        c.close()


def host_leftovers(prefix=PREFIX):
    """netlib's own leftovers of this process (for tests checking the host)."""
    mine = f"{prefix}-{os.getpid()}-"
    return [n for n in netns_list() if n.startswith(mine)]
