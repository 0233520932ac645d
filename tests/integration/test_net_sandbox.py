"""`hull sandbox run --network NAME` end to end (docs/sandbox.md, Networks).

Real bridges, veths and nftables rules; a test "internet" (netlib.py: an
`ip netns` upstream with http.servers behind the root namespace, and a
client namespace standing in for another machine). Traffic never leaves
this machine.

Every test uses networks of its own, in state directories of this module's
own ($HULL_NET_RUN_DIR, $HULL_NET_CONFIG_DIR under the pytest tmp dir), so
other sessions on the machine (their networks, leases and `prune`) and this
one do not meet. After each run: no lease, no veth on the network's bridge,
no nftables rule naming a member that is gone, no /etc files of the run.
"""
import concurrent.futures
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from netlib import Client, Upstream, client_ns, sh, upstream  # noqa: F401 (fixtures)
from sandboxlib import GENEROUS, HULL, Sandbox, state_dirs, wait_until

SANDBOX_NET_DIR = Path("/run/hull/sandbox-net")

# Programs run inside the sandbox (python3 from the host's /usr).
FETCH = r"""
import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except Exception as e:
    print("FAIL", type(e).__name__, e)
    sys.exit(3)
"""
# argv: HOST:PORT ... (IPv6 as [ADDR]:PORT) -> {"HOST:PORT": "open"|"closed"}
PROBE = r"""
import json, socket, sys
out = {}
for t in sys.argv[1:]:
    host, port = t.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        out[t] = "open"
    except Exception as e:
        out[t] = "closed"
print(json.dumps(out))
"""
# What the sandbox sees of its own network: /etc files and the gateway.
SELF = r"""
import json, socket, struct
gw = ""
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    if f[1] == "00000000":
        gw = socket.inet_ntoa(struct.pack("<I", int(f[2], 16)))
print(json.dumps({"hosts": open("/etc/hosts").read(),
                  "resolv": open("/etc/resolv.conf").read(),
                  "mountinfo": open("/proc/self/mountinfo").read(),
                  "gateway": gw,
                  "ifaces": sorted(l.split(":")[0].strip()
                                   for l in open("/proc/net/dev").read().splitlines()[2:])}))
"""
# A web server on port 8000: /quit ends it.
SERVER = r"""
import http.server, socket
class S(http.server.HTTPServer):
    address_family = socket.AF_INET6  # "::" is dual-stack: IPv4 too
class H(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a connection that sends nothing does not hold the server
    def do_GET(self):
        body = ("sandbox says " + self.path + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/quit":
            self.server.done = True
    def log_message(self, *a):
        pass
s = S(("::", 8000), H)
s.done = False
while not s.done:
    s.handle_request()
"""


def hull(*args, timeout=120):
    return subprocess.run([HULL, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


class NetEnv:
    """This module's networks, in state directories of its own."""

    def __init__(self, base: Path):
        self.run_dir = base / "run"
        self.config_dir = base / "config"
        self.run_dir.mkdir(parents=True)
        self.config_dir.mkdir(parents=True)
        self.tag = f"sbt{os.getpid() % 100000}"
        self.made = []
        self._n = 0

    def create(self, *opts):
        """A fresh network (default subnet: the first free one)."""
        self._n += 1
        name = f"{self.tag}-{self._n}"
        r = hull("network", "create", *opts, name)
        assert r.returncode == 0, r
        self.made.append(name)
        return name

    def inspect(self, name):
        r = hull("network", "inspect", name)
        assert r.returncode == 0, r
        return json.loads(r.stdout)[0]

    def remove_all(self):
        for name in self.made:
            hull("network", "remove", "--force", name)
        self.made = []

    def leases(self):
        d = self.run_dir / "leases"
        return sorted(os.listdir(d)) if d.exists() else []

    def bridge_ports(self, name):
        br = self.inspect(name)["bridge"]
        out = subprocess.run(["ip", "-o", "link", "show", "master", br], capture_output=True,
                             text=True).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


@pytest.fixture(scope="module")
def netenv(tmp_path_factory):
    env = NetEnv(tmp_path_factory.mktemp("netstate"))
    saved = {k: os.environ.get(k) for k in ("HULL_NET_RUN_DIR", "HULL_NET_CONFIG_DIR")}
    os.environ["HULL_NET_RUN_DIR"] = str(env.run_dir)
    os.environ["HULL_NET_CONFIG_DIR"] = str(env.config_dir)
    try:
        yield env
    finally:
        env.remove_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def net(netenv):
    """One ordinary network (isolated peers, NAT out) for most tests."""
    return netenv.create()


def nft_text():
    return "".join(subprocess.run(["nft", "list", "table", fam, "hull"], capture_output=True,
                                  text=True).stdout for fam in ("inet", "bridge"))


def nft_orphans():
    """hull-net's per-member veth names (hullv*: a sandbox's) that nftables
    still mentions but no interface has: rules left behind. Other sessions'
    live members have their interfaces, so they do not count; what other
    sessions left before is in NFT_BASELINE."""
    names = set(re.findall(r"\b(hullv[0-9a-f]{8})", nft_text()))
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(n for n in names - NFT_BASELINE
                  if f" {n}:" not in links and f" {n}@" not in links)


NFT_BASELINE = set()
NFT_BASELINE = set(nft_orphans())


def nft_member_addresses(netenv, name):
    """Addresses of the network's members that hull's rules still name
    (the network's own subnet and gateway are its rules, not a member's)."""
    info = netenv.inspect(name)
    nets = [ipaddress.ip_network(info["subnet"])]
    if info.get("ipv6_subnet"):
        nets.append(ipaddress.ip_network(info["ipv6_subnet"]))
    own = {info["gateway"], info.get("ipv6_gateway")}
    found = set()
    for tok in re.findall(r"[0-9a-f:.]+(?![0-9a-f:./])", nft_text()):
        try:
            a = ipaddress.ip_address(tok)
        except ValueError:
            continue
        if any(a in n for n in nets) and tok not in own:
            found.add(tok)
    return sorted(found)


def assert_nothing_left(netenv, name, pids=()):
    """No lease, veth, rule or /etc files of a finished run. Waits (hang
    guard only) because a killed run's helper detaches asynchronously."""
    def left():
        out = {}
        if netenv.leases():
            out["leases"] = netenv.leases()
        if netenv.bridge_ports(name):
            out["veths"] = netenv.bridge_ports(name)
        if nft_orphans():
            out["nft"] = nft_orphans()
        if nft_member_addresses(netenv, name):
            out["nft addresses"] = nft_member_addresses(netenv, name)
        etc = [d for d in (os.listdir(SANDBOX_NET_DIR) if SANDBOX_NET_DIR.exists() else [])
               if any(d.startswith(f"sandbox-{p}-") for p in pids)]
        if etc:
            out["etc"] = etc
        return out
    assert wait_until(lambda: not left(), timeout=30), left()


def run(sb, *opts, cmd, **kw):
    return sb(*opts, cmd=cmd, **kw)


# ---- through NAT to the test upstream ------------------------------------


def test_fetch_from_upstream_through_nat(netenv, net, upstream):
    sb = Sandbox()
    r = run(sb, "--network", net, cmd=["python3", "-c", FETCH, upstream.url(8080)])
    assert r.verdict == "ok", r
    assert r.out == Upstream.body(8080)
    assert_nothing_left(netenv, net, [r.pid])


def test_sandbox_sees_its_own_etc_and_eth0(netenv, net):
    info = netenv.inspect(net)
    sb = Sandbox()
    r = run(sb, "--network", net, cmd=["python3", "-c", SELF])
    assert r.verdict == "ok", r
    me = json.loads(r.out)
    assert "eth0" in me["ifaces"] and "lo" in me["ifaces"], me
    assert me["gateway"] == info["gateway"], me
    # hosts: localhost and the sandbox's own leased address, nothing of the host's.
    lines = [line.split() for line in me["hosts"].splitlines() if line.strip()]
    assert ["127.0.0.1", "localhost"] in lines, me["hosts"]
    own = [f for f in lines if f[1:] == ["sandbox"]]
    assert len(own) == 1, me["hosts"]
    prefix = info["subnet"].rsplit(".", 1)[0] + "."
    assert own[0][0].startswith(prefix), (own, info)
    host_lines = {tuple(line.split("#")[0].split())
                  for line in Path("/etc/hosts").read_text().splitlines()}
    shown = {tuple(f) for f in lines}
    assert not {h for h in host_lines & shown if h and "localhost" not in h}, me["hosts"]
    assert "nameserver" in me["resolv"], me
    assert me["resolv"] != Path("/etc/resolv.conf").read_text()
    # Their mounts name no host path (hull's directory, the runner's pid).
    assert "/run" not in me["mountinfo"] and "sandbox-" not in me["mountinfo"], me["mountinfo"]
    # The files are read-only for the sandbox.
    r = run(sb, "--network", net, cmd=["sh", "-c", "echo x >> /etc/hosts"])
    assert r.verdict == "exit_nonzero", r
    assert_nothing_left(netenv, net, [r.pid])


def test_process_isolation_gets_the_network_too(netenv, net, upstream):
    sb = Sandbox()
    r = run(sb, "--isolation", "process", "--network", net,
            cmd=["python3", "-c", FETCH, upstream.url(8081)])
    assert r.verdict == "ok", r
    assert r.out == Upstream.body(8081)
    assert_nothing_left(netenv, net, [r.pid])


def test_library_request_json(netenv, net, upstream):
    """The REST request's "network" object through the library
    (sandboxtool: hull_policy_from_json + hull_sandbox_run)."""
    tool = Path(HULL).resolve().parent / "tests" / "sandboxtool"
    req = {"cmd": ["python3", "-c", PROBE, f"{upstream.addr4}:8080", f"{upstream.addr4}:8081"],
           "limits": {"cpu_time": "60s", "wall_time": "120s"},
           "network": {"name": net, "egress": [f"{upstream.addr4}:8081/tcp"]}}
    # The tool is not beside hull-net: say where it is.
    env = dict(os.environ, HULL_NET_HELPER=str(Path(HULL).resolve().parent / "hull-net"))
    p = subprocess.run([str(tool)], input=json.dumps(req), capture_output=True, text=True,
                       timeout=240, env=env)
    assert p.returncode == 0, p
    res = json.loads(p.stdout)
    assert res["verdict"] == "ok", res
    assert json.loads(res["stdout"]) == {f"{upstream.addr4}:8080": "closed",
                                         f"{upstream.addr4}:8081": "open"}
    req["network"] = {"name": net, "egress": ["bogus"]}
    p = subprocess.run([str(tool)], input=json.dumps(req), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "network.egress[0]: egress rule \"bogus\"" in p.stderr, p
    assert_nothing_left(netenv, net)


# ---- egress ----------------------------------------------------------------


def test_egress_allow_list_one_port_open_one_closed(netenv, net, upstream):
    sb = Sandbox()
    a, b = f"{upstream.addr4}:8080", f"{upstream.addr4}:8081"
    r = run(sb, "--network", net, "--egress", f"{upstream.addr4}:8080/tcp",
            cmd=["python3", "-c", PROBE, a, b])
    assert r.verdict == "ok", r
    assert json.loads(r.out) == {a: "open", b: "closed"}
    # A CIDR without a port opens both; none closes both; all opens both.
    for egress, want in ((f"{upstream.net4}", "open"), ("none", "closed"), ("all", "open")):
        r = run(sb, "--network", net, "--egress", egress, cmd=["python3", "-c", PROBE, a, b])
        assert r.verdict == "ok", (egress, r)
        assert json.loads(r.out) == {a: want, b: want}, egress
    assert_nothing_left(netenv, net, [r.pid])


def test_egress_all_is_not_the_link_local_range(netenv, net, upstream):
    # 169.254.169.254 is many clouds' metadata service (credentials, user
    # data). The test stands one of the range's addresses up in the test
    # upstream (not .169.254 itself: this host may have a real one) behind
    # a host route of the test's own.
    ll = "169.254.77.1"
    upstream.exec("ip", "addr", "add", f"{ll}/32", "dev", upstream.ifname)
    sh("ip", "route", "add", f"{ll}/32", "via", upstream.addr4, "dev", upstream.host_if)
    try:
        assert upstream.exec("true").returncode == 0
        sb = Sandbox()
        a, b = f"{upstream.addr4}:8080", f"{ll}:8080"
        for publish in ((), ("--publish", f"{free_port()}:9")):  # nft_batch.c's rules, nft.c's
            r = run(sb, "--network", net, *publish, cmd=["python3", "-c", PROBE, a, b])
            assert r.verdict == "ok", r
            assert json.loads(r.out) == {a: "open", b: "closed"}, publish
        # A rule that names it opens it.
        r = run(sb, "--network", net, "--egress", f"{ll}:8080/tcp",
                cmd=["python3", "-c", PROBE, b])
        assert r.verdict == "ok", r
        assert json.loads(r.out) == {b: "open"}
    finally:
        sh("ip", "route", "del", f"{ll}/32", check=False)
    assert_nothing_left(netenv, net, [r.pid])


# ---- the host is closed ------------------------------------------------------


class HostServer:
    """A TCP listener on every address of the host (what a Redis or hulld
    on the host would be), counting the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def host_server():
    s = HostServer()
    yield s
    s.close()


def test_host_closed_unless_egress_names_it(netenv, net, host_server, client_ns):
    sb = Sandbox()
    gw = netenv.inspect(net)["gateway"]
    port = host_server.port
    # Another address of the host: the root side of the client netns' veth.
    other = client_ns.host_addr4
    targets = [f"{gw}:{port}", f"{other}:{port}"]
    r = run(sb, "--network", net, cmd=["python3", "-c", PROBE, *targets])
    assert r.verdict == "ok", r
    assert json.loads(r.out) == {t: "closed" for t in targets}
    # "all" is everything but the host: still closed.
    r = run(sb, "--network", net, "--egress", "all", cmd=["python3", "-c", PROBE, *targets])
    assert json.loads(r.out) == {t: "closed" for t in targets}, r
    assert host_server.accepted == 0
    # Named by a rule: that address and port, and nothing else of the host.
    r = run(sb, "--network", net, "--egress", f"all,{gw}:{port}/tcp",
            cmd=["python3", "-c", PROBE, *targets])
    assert json.loads(r.out) == {targets[0]: "open", targets[1]: "closed"}, r
    r = run(sb, "--network", net, "--egress", f"{other}/32",
            cmd=["python3", "-c", PROBE, *targets])
    assert json.loads(r.out) == {targets[0]: "closed", targets[1]: "open"}, r
    assert_nothing_left(netenv, net, [r.pid])


@pytest.mark.parametrize("wide", ["0.0.0.0/0", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"])
def test_a_wide_egress_range_opens_neither_the_host_nor_other_networks(
        netenv, net, host_server, client_ns, upstream, wide):
    """A range is a way out, not a grant: the host's own addresses take only
    a rule naming one of them exactly, and members of other hull networks
    (another tenant's) no rule at all."""
    other_net = netenv.create()
    a = Sandbox()
    p, out, err, _, peer = serve_in_sandbox(a, "--network", other_net)
    try:
        gw = netenv.inspect(net)["gateway"]
        targets = [f"{gw}:{host_server.port}", f"{client_ns.host_addr4}:{host_server.port}",
                   f"{peer}:8000"]
        r = run(Sandbox(), "--network", net, "--egress", f"{wide},{upstream.net4}",
                cmd=["python3", "-c", PROBE, *targets, f"{upstream.addr4}:8080"])
        assert r.verdict == "ok", r
        assert json.loads(r.out) == {**{t: "closed" for t in targets},
                                     f"{upstream.addr4}:8080": "open"}, r
        assert host_server.accepted == 0
    finally:
        ra = stop_server(a, p, out, err)
    assert ra.verdict == "killed", ra
    assert_nothing_left(netenv, net, [r.pid])


def conntrack_lines(addr):
    """The host's connection-tracking entries naming addr."""
    try:
        text = Path("/proc/net/nf_conntrack").read_text()
    except FileNotFoundError:
        pytest.skip("this kernel has no /proc/net/nf_conntrack to look at")
    return [ln for ln in text.splitlines() if f"src={addr} " in ln or f"dst={addr} " in ln]


def test_a_leaving_member_leaves_no_flows_to_the_next(netenv, net, upstream):
    """Its address goes to the next member at once: an entry of its flows
    left behind would let that flow's packets in past the next one's egress."""
    code = ("import socket, sys\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "u.connect((sys.argv[1], 8080)); u.send(b'x')\n"
            "t = socket.create_connection((sys.argv[1], 8080), timeout=10)\n"
            "print(u.getsockname()[0])\n")
    r = run(Sandbox(), "--network", net, cmd=["python3", "-c", code, upstream.addr4])
    assert r.verdict == "ok", r
    addr = r.out.strip()
    assert addr, r
    assert conntrack_lines(addr) == []
    assert_nothing_left(netenv, net, [r.pid])


def test_a_member_cannot_fill_the_hosts_connection_table(netenv, net, upstream):
    """Past its share (HULL_NET_MAX_CONNS, 4096) a member's new flows are
    dropped before they are tracked: the host's table is everyone's."""
    code = ("import socket, sys, time\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for port in range(20000, 26000):\n"
            "    u.sendto(b'x', (sys.argv[1], port))\n"
            "print('sent', flush=True)\n"
            "time.sleep(120)\n")
    sb = Sandbox()
    p, out, err = sb.start("--network", net, cmd=["python3", "-c", code, upstream.addr4])
    try:
        pid = sb.workload_pid(cmdline="python3", timeout=60)
        addr = netns_addr4(pid)
        assert wait_until(lambda: len(conntrack_lines(addr)) >= 4000, timeout=60)
        # until the count stops growing (the sends are done) or passes the limit
        seen = [0]

        def settled():
            n = len(conntrack_lines(addr))
            done = n == seen[0] or n > 4096 + 8
            seen[0] = n
            return done
        assert wait_until(settled, timeout=60, interval=1.0)
        assert 4000 <= seen[0] <= 4096 + 8, seen[0]
    finally:
        r = stop_server(sb, p, out, err)
    assert r.verdict == "killed", r
    assert conntrack_lines(addr) == []
    assert_nothing_left(netenv, net, [r.pid])


# ---- peers -------------------------------------------------------------------


def netns_addr4(pid):
    """The IPv4 address of eth0 in the network namespace of pid."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-4", "-o", "addr", "show",
                          "dev", "eth0"], capture_output=True, text=True).stdout
    m = re.search(r"inet (\S+)/", out)
    return m.group(1) if m else None


def listening(pid, port):
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ss", "-Hltn"], capture_output=True,
                         text=True).stdout
    return f":{port} " in out


def serve_in_sandbox(sb, *opts):
    """A sandbox running SERVER: (Popen, out, err, host pid, its address)."""
    p, out, err = sb.start(*opts, cmd=["python3", "-c", SERVER])
    pid = sb.workload_pid(cmdline="python3", timeout=60)
    assert wait_until(lambda: listening(pid, 8000), timeout=60), "server never listened"
    return p, out, err, pid, netns_addr4(pid)


def stop_server(sb, p, out, err):
    p.send_signal(signal.SIGTERM)
    return sb.finish(p, out, err)


@pytest.mark.parametrize("allow_peers", [False, True])
def test_peers_isolated_unless_allow_peers(netenv, allow_peers):
    name = netenv.create(*(["--allow-peers"] if allow_peers else []))
    a, b = Sandbox(), Sandbox()
    p, out, err, _, addr = serve_in_sandbox(a, "--network", name)
    try:
        r = run(b, "--network", name, cmd=["python3", "-c", PROBE, f"{addr}:8000"])
        assert r.verdict == "ok", r
        want = "open" if allow_peers else "closed"
        assert json.loads(r.out) == {f"{addr}:8000": want}
    finally:
        ra = stop_server(a, p, out, err)
    assert ra.verdict == "killed", ra
    assert_nothing_left(netenv, name, [ra.pid, r.pid])


# ---- publish -----------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def host_get(host, port, path, timeout=5):
    import urllib.request
    h = f"[{host}]" if ":" in host else host
    try:
        return urllib.request.urlopen(f"http://{h}:{port}{path}", timeout=timeout).read().decode()
    except OSError:
        return None


def test_publish_reachable_from_host_and_another_netns(netenv, net, client_ns):
    sb = Sandbox()
    port = free_port()
    p, out, err, _, _ = serve_in_sandbox(sb, "--network", net, "--publish", f"{port}:8000")
    try:
        # From the host: 127.0.0.1 and another address of the host.
        assert wait_until(lambda: host_get("127.0.0.1", port, "/lo"), timeout=30) == \
            "sandbox says /lo\n"
        assert host_get(client_ns.host_addr4, port, "/addr") == "sandbox says /addr\n"
        # From another machine (the client netns) to the host's address.
        assert client_ns.http_get(client_ns.host_addr4, port, "/client") == \
            "sandbox says /client\n"
        host_get("127.0.0.1", port, "/quit")
        r = sb.finish(p, out, err)
    except BaseException:
        stop_server(sb, p, out, err)
        raise
    assert r.verdict == "ok", r
    assert_nothing_left(netenv, net, [r.pid])
    # Nothing answers there any more.
    assert host_get("127.0.0.1", port, "/after", timeout=3) is None


def test_a_port_another_state_directory_publishes_is_refused_and_kept(netenv, net, tmp_path):
    """Two hull state directories share the kernel's map of published ports:
    the second's refused attach must neither take nor remove the first's."""
    sb = Sandbox()
    port = free_port()
    p, out, err, _, _ = serve_in_sandbox(sb, "--network", net, "--publish", f"{port}:8000")
    try:
        assert wait_until(lambda: host_get("127.0.0.1", port, "/a"), timeout=30) == \
            "sandbox says /a\n"
        other = NetEnv(tmp_path / "other")
        saved = {k: os.environ[k] for k in ("HULL_NET_RUN_DIR", "HULL_NET_CONFIG_DIR")}
        os.environ["HULL_NET_RUN_DIR"] = str(other.run_dir)
        os.environ["HULL_NET_CONFIG_DIR"] = str(other.config_dir)
        try:
            name = other.create()
            r = bad_run("--network", name, "--publish", f"{port}:8000")
            assert "another hull" in r.stderr, r
        finally:
            other.remove_all()
            os.environ.update(saved)
        assert host_get("127.0.0.1", port, "/still") == "sandbox says /still\n"
    finally:
        r = stop_server(sb, p, out, err)
    assert r.verdict == "killed", r
    assert_nothing_left(netenv, net, [r.pid])


def test_publish_on_the_unspecified_address_is_every_address(netenv, net, client_ns):
    """0.0.0.0 as docker and podman take it: it used to match no packet while
    holding the host port."""
    sb = Sandbox()
    port = free_port()
    p, out, err, _, _ = serve_in_sandbox(sb, "--network", net, "--publish", f"0.0.0.0:{port}:8000")
    try:
        assert wait_until(lambda: host_get("127.0.0.1", port, "/any"), timeout=30) == \
            "sandbox says /any\n"
        assert client_ns.http_get(client_ns.host_addr4, port, "/client", timeout=10) == \
            "sandbox says /client\n"
    finally:
        r = stop_server(sb, p, out, err)
    assert r.verdict == "killed", r
    assert_nothing_left(netenv, net, [r.pid])


def test_publish_on_loopback_only(netenv, net, client_ns):
    sb = Sandbox()
    port = free_port()
    p, out, err, _, _ = serve_in_sandbox(sb, "--network", net,
                                         "--publish", f"127.0.0.1:{port}:8000")
    try:
        assert wait_until(lambda: host_get("127.0.0.1", port, "/lo"), timeout=30) == \
            "sandbox says /lo\n"
        assert client_ns.http_get(client_ns.host_addr4, port, "/client", timeout=3) is None
    finally:
        r = stop_server(sb, p, out, err)
    assert r.verdict == "killed", r
    assert_nothing_left(netenv, net, [r.pid])


# ---- IPv6 ----------------------------------------------------------------------


def test_ipv6_when_the_network_has_it(netenv, upstream):
    sub = f"fd{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::/64"
    name = netenv.create("--ipv6", sub)
    sb = Sandbox()
    r = run(sb, "--network", name, cmd=["python3", "-c", FETCH, upstream.url(8080, v6=True)])
    assert r.verdict == "ok", r
    assert r.out == Upstream.body(8080)
    # The egress allow-list speaks IPv6 too.
    a, b = f"[{upstream.addr6}]:8080", f"[{upstream.addr6}]:8081"
    r = run(sb, "--network", name, "--egress", f"[{upstream.addr6}/128]:8081/tcp",
            cmd=["python3", "-c", PROBE, a, b])
    assert r.verdict == "ok", r
    assert json.loads(r.out) == {a: "closed", b: "open"}
    r = run(sb, "--network", name, cmd=["sh", "-c", "cat /etc/hosts"])
    v6 = [line.split()[0] for line in r.out.splitlines()
          if line.split()[1:] == ["sandbox"] and ":" in line.split()[0]]
    assert len(v6) == 1 and ipaddress.ip_address(v6[0]) in ipaddress.ip_network(sub), r
    assert_nothing_left(netenv, name, [r.pid])


# ---- nothing left behind ---------------------------------------------------------


@pytest.mark.slow
def test_thousand_runs_leave_nothing(netenv):
    """Plain runs, runs with egress rules and runs publishing a port (a
    port of each worker's own), two at a time."""
    name = netenv.create()
    sb = Sandbox()
    ports = {}
    lock = threading.Lock()

    def one(i):
        with lock:
            port = ports.setdefault(threading.get_ident(), free_port())
        extra = [[], ["--egress", "198.18.0.0/15:8080/tcp,all"],
                 ["--publish", f"127.0.0.1:{port}:80"]][i % 3]
        a = sb.argv("--network", name, *extra, cmd=["true"], json_out=False)
        p = subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate(timeout=240)
        return i, p.pid, p.returncode, err

    pids = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        for i, pid, rc, err in ex.map(one, range(1000)):
            assert rc == 0, (i, err)
            pids.append(pid)
    assert_nothing_left(netenv, name, pids)
    assert not [d for d in (os.listdir(SANDBOX_NET_DIR) if SANDBOX_NET_DIR.exists() else [])
                if d.startswith("sandbox-") and not Path(f"/proc/{d.split('-')[1]}").exists()]
    assert netenv.inspect(name)["members"] == []


def test_killed_run_leaves_nothing(netenv, net):
    sb = Sandbox()
    port = free_port()
    p, out, err = sb.start("--network", net, "--publish", f"{port}:8000",
                           cmd=["sleep", "100"])
    try:
        assert wait_until(lambda: netenv.leases(), timeout=60), "never attached"
        assert wait_until(lambda: netenv.bridge_ports(net), timeout=30)
        sb.workload_pid(cmdline="sleep", timeout=60)
    except AssertionError:
        err.seek(0)
        raise AssertionError(f"run did not start: {err.read()!r}")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    out.close()
    err.close()
    # The helper holding the attachment saw hull go and undid it.
    assert wait_until(lambda: not netenv.leases() and not netenv.bridge_ports(net), timeout=60), \
        (netenv.leases(), netenv.bridge_ports(net))
    # The /etc files' tmpfs was never in the host's mount table.
    assert " hull-net " not in Path("/proc/self/mountinfo").read_text()
    # The next run sweeps the rest (the state, the /etc files' directory).
    r = run(Sandbox(), "--network", net, cmd=["true"])
    assert r.verdict == "ok", r
    assert not state_dirs(f"sandbox-{p.pid}-")
    assert_nothing_left(netenv, net, [p.pid, r.pid])
    assert host_get("127.0.0.1", port, "/", timeout=3) is None


def test_veth_goes_even_when_its_namespace_outlives_the_run(netenv, net):
    """The detach leaves a finished run's veth to its namespace's teardown,
    which takes the pair away at once. Here the test itself keeps the
    namespace alive (an fd of it), so the veth would stay: the helper must
    see that and delete it. Before hull returns, not eventually."""
    sb = Sandbox()
    p, out, err = sb.start("--network", net, "--stdin", "-", cmd=["cat"], stdin=subprocess.PIPE)
    try:
        pid = sb.workload_pid(cmdline="cat", timeout=60)
        ns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    except (AssertionError, OSError):
        p.kill()
        sb.finish(p, out, err, clean=False)
        raise
    try:
        assert netenv.bridge_ports(net), "no veth while running"
        p.stdin.close()
        r = sb.finish(p, out, err)
        assert r.verdict == "ok", r
        # No wait: the helper answered only once the link was gone.
        assert not netenv.bridge_ports(net)
        assert not netenv.leases()
    finally:
        os.close(ns)
    assert_nothing_left(netenv, net, [r.pid])


def test_torn_lease_is_skipped_and_swept(netenv, net):
    """Leases are not fsynced (nothing they name outlives the machine), so a
    power loss can leave one empty or cut short where /run is a disk. The
    sweep marks the leases directory with the boot it ran in: in one marked
    with an earlier boot, such a lease is skipped and swept by the next run.
    One that does not parse in this boot's directory may be another hull's
    live member, and stays an error (nothing is taken from it)."""
    d = netenv.run_dir / "leases"
    d.mkdir(parents=True, exist_ok=True)
    assert run(Sandbox(), "--network", net, cmd=["true"]).verdict == "ok"
    mark = netenv.run_dir / "leases.boot"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert mark.read_text().strip() == boot_id
    torn = [d / "sandbox-1-2-0-0badc0.json", d / "sandbox-3-4-0-0badc1.json"]
    torn[0].write_text("")
    torn[1].write_text('{\n  "member":"sandbox-3-4-0-0badc1",\n  "netw')
    r = run(Sandbox(), "--network", net, cmd=["true"], json_out=False, clean=False)
    assert r.rc == 125 and "0badc" in r.stderr, r
    assert all(p.exists() for p in torn)
    mark.write_text("00000000-0000-4000-8000-000000000000\n")  # as after a reboot
    r = run(Sandbox(), "--network", net, cmd=["true"])
    assert r.verdict == "ok", r
    assert not [p.name for p in torn if p.exists()]
    assert mark.read_text().strip() == boot_id
    assert_nothing_left(netenv, net, [r.pid])


# ---- bad input -------------------------------------------------------------------


def bad_run(*opts):
    sb = Sandbox()
    r = sb(*opts, cmd=["true"], json_out=True)
    assert r.rc == 125 and r.j is None, r
    assert r.stderr.startswith("hull: sandbox run: "), r
    assert len([line for line in r.stderr.splitlines() if line.startswith("hull: ")]) == 1, r
    return r


def test_bad_input_is_refused_and_nothing_made(netenv, net):
    r = bad_run("--network", "nosuchnet-sbt")
    assert "nosuchnet-sbt" in r.stderr and "no such network" in r.stderr, r
    r = bad_run("--network", net, "--egress", "10.0.0.0/8,bogus")
    assert 'egress rule "bogus"' in r.stderr, r
    r = bad_run("--network", net, "--egress", "1.2.3.4:70000/tcp")
    assert "70000" in r.stderr, r
    # empty is a mistake (a variable that expanded to nothing), not "all"
    r = bad_run("--network", net, "--egress", "")
    assert "egress: empty" in r.stderr, r
    r = bad_run("--network", net, "--publish", "80")
    assert '--publish "80"' in r.stderr, r
    r = bad_run("--network", "Not_A-Name!")
    assert "Not_A-Name!" in r.stderr, r
    r = bad_run("--egress", "all")
    assert "egress: only with a hull network" in r.stderr, r
    r = bad_run("--network", "host", "--publish", "8080:80")
    assert "publish: not with the host's network" in r.stderr, r
    # A host port already taken: refused before the program runs.
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = bad_run("--network", net, "--publish", f"{port}:80")
        assert str(port) in r.stderr and "taken" in r.stderr, r
    assert_nothing_left(netenv, net, [r.pid])
    assert not state_dirs(f"sandbox-{r.pid}-")


def test_network_none_and_host_are_unchanged(netenv):
    sb = Sandbox()
    r = run(sb, "--network", "none", cmd=["python3", "-c", "print(open('/proc/net/dev').read())"])
    assert r.verdict == "ok" and "eth0" not in r.out and "lo:" in r.out, r
    r = run(sb, cmd=["cat", "/etc/hosts"])
    assert r.out == "127.0.0.1 localhost sandbox\n::1 localhost\n", r
    assert not (SANDBOX_NET_DIR.exists() and
                [d for d in os.listdir(SANDBOX_NET_DIR) if d.startswith(f"sandbox-{r.pid}-")])


# ---- long-lived sandboxes (hulld: hull_session_create) --------------------------


def test_long_lived_sandbox_on_a_network(netenv, net, upstream, tmp_path):
    """A hulld sandbox with "network": {...}: every exec has the network,
    the egress list holds for all of them, and destroying the sandbox
    detaches it."""
    from hulldlib import Hulld
    d = Hulld(tmp_path / "hulld")
    Path(d.state).mkdir(parents=True)
    t = d.token("user", "acme")
    d.start()
    try:
        r = d.request("POST", "/v1/sandboxes",
                      {"network": {"name": net, "egress": [f"{upstream.addr4}:8080/tcp"]}}, t)
        assert r.status == 201, r
        sid = r.json["id"]
        assert wait_until(lambda: netenv.leases(), timeout=30)
        a, b = f"{upstream.addr4}:8080", f"{upstream.addr4}:8081"
        for _ in range(2):
            ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                           {"cmd": ["python3", "-c", PROBE, a, b],
                            "limits": {"cpu_time": "60s", "wall_time": "120s"}}, t)
            assert ex.status == 200 and ex.json["verdict"] == "ok", ex
            assert json.loads(ex.json["stdout"]) == {a: "open", b: "closed"}
        ex = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["cat", "/etc/hosts"]}, t)
        assert "\tsandbox\n" in ex.json["stdout"], ex
        # A bad network is refused before a sandbox exists.
        r = d.request("POST", "/v1/sandboxes", {"network": {"name": net, "egress": ["x"]}}, t)
        assert r.status == 400 and "network.egress[0]" in r.body.decode(), r
        r = d.request("POST", "/v1/sandboxes", {"network": "nosuchnet-sbt"}, t)
        assert r.status >= 400 and "nosuchnet-sbt" in r.body.decode(), r
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status in (200, 204)
        assert_nothing_left(netenv, net)
    finally:
        assert d.stop() == 0, d.log.read_text()
    assert wait_until(lambda: d.leaks() == ([], [], []), 30), d.leaks()
    assert_nothing_left(netenv, net)


def test_etc_files_with_a_rootfs_or_binds(netenv, net, tmp_path_factory):
    """A --rootfs keeps what it lacks lacking (its files are not hull's to
    create) and gets hull's file over what it has; the default root with
    --bind (a tmpfs root, not the shared one) gets both."""
    import shutil
    import tempfile
    from conftest import cached_rootfs
    d = Path(tempfile.mkdtemp(prefix="hull-sbnet-", dir="/tmp"))
    try:
        d.chmod(0o755)
        root = d / "rootfs"
        shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
        (root / "etc" / "hosts").write_text("198.51.100.77 fromrootfs\n")
        for p in [d, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o055)
        sb = Sandbox()
        r = run(sb, "--rootfs", root, "--network", net,
                cmd=["sh", "-c", "cat /etc/hosts; test -e /etc/resolv.conf || echo no-resolv"])
        assert r.verdict == "ok", r
        assert "fromrootfs" not in r.out and "\tsandbox\n" in r.out and "no-resolv" in r.out, r
        assert (root / "etc" / "hosts").read_text() == "198.51.100.77 fromrootfs\n"
        assert not (root / "etc" / "resolv.conf").exists()
        r = run(sb, "--bind", f"{d}:/mnt", "--network", net,
                cmd=["sh", "-c", "cat /etc/hosts /etc/resolv.conf"])
        assert r.verdict == "ok" and "\tsandbox\n" in r.out and "nameserver" in r.out, r
        assert_nothing_left(netenv, net, [r.pid])
    finally:
        shutil.rmtree(d)


# A UDP datagram built by hand and sent on eth0 to the gateway's MAC: what a
# member root (a microVM guest is one) can send, whatever its routes say.
# argv: src_mac dst_mac src_ip dst_ip port payload
RAW_UDP = r"""
import socket, struct, sys
smac, dmac, sip, dip, port, payload = sys.argv[1:]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
data = payload.encode()
udp = struct.pack("!HHHH", 40000, int(port), 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(sip), socket.inet_aton(dip))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", "")) + b"\x08\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
s.send(eth + ip + udp)
"""


@pytest.mark.parametrize("wide", ["", "0.0.0.0/0,"])
def test_host_loopback_closed_through_the_gateway(netenv, net, wide):
    """A packet for 127.0.0.1 sent to the gateway's MAC (no route of the
    member's needed) does not reach the host's loopback services; the
    same raw path to an address an egress rule names does (the control)."""
    info = netenv.inspect(net)
    gw = info["gateway"]
    br_mac = Path(f"/sys/class/net/{info['bridge']}/address").read_text().strip()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("0.0.0.0", 0))
    rx.settimeout(3)
    port = rx.getsockname()[1]

    def received():
        got = []
        try:
            while True:
                got.append(rx.recv(100).decode())
        except socket.timeout:
            return got

    sb = Sandbox()
    p, out, err = sb.start("--network", net, "--egress", f"{wide or 'all,'}{gw}:{port}/udp",
                           cmd=["sleep", "100"])
    try:
        pid = sb.workload_pid(cmdline="sleep", timeout=60)
        link = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show",
                               "eth0"], capture_output=True, text=True).stdout
        mac = re.search(r"link/ether (\S+)", link).group(1)
        me = netns_addr4(pid)

        def send(dst, payload):
            r = subprocess.run(["nsenter", "-t", str(pid), "-n", "python3", "-c", RAW_UDP, mac,
                                br_mac, me, dst, str(port), payload], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, r
        send(gw, "control")
        assert received() == ["control"]
        send("127.0.0.1", "loopback")
        send("127.0.0.2", "loopback2")
        assert received() == []
    finally:
        r = stop_server(sb, p, out, err)
        rx.close()
    assert r.verdict == "killed", r
    assert_nothing_left(netenv, net, [r.pid])
