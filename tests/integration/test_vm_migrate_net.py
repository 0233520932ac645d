"""A microVM with a network card migrates between two hosts (`hull vm
migrate` to `hull vm receive`, docs/vm.md "Migration"), under TCG: its
network identity and published ports follow it.

Two "hosts" on this machine: each its own network namespace on a test
bridge of the root namespace (198.18.0.0/15, nothing leaves the machine),
with its own VM state root and hull network state, and a hull network of
the same name and subnet. Every hull command of a host runs in its
namespace (nsenter: the host's mounts and cgroups stay). On each host a
small server listens on the network's gateway address and says which host
it is, so the guest's traffic to its gateway shows which host it reaches.

- Refusals before anything is copied: the target has no such network, has
  it with another subnet, has the guest's address taken, has the published
  host port taken. Each leaves the source VM running with its network
  working (its lease, the published port, the gateway) and nothing on the
  target.
- A live move: the guest's MAC and address are unchanged (the guest's own
  `ip addr`), its gateway answers at once (the same gateway MAC on both
  hosts: docs/network.md), the HTTP server running in the guest answers
  through the TARGET's published port, and the source has no TAP, lease or
  nft rule of it left. A cold move back does the same the other way.

Host-wide (QEMU): run under `flock /work/wt/vm.lock`."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from netlib import BridgedHosts, sh
from test_vm_lib import HULL, MEM, Hull, assert_gone, new_root, qemu_pids, skip_unless_ready
from test_net_vm import free_port
from test_vm_migrate import Receiver, plain

NET = "mig"
SUBNET = "10.213.70.0/24"
GW = "10.213.70.1"
GW_PORT = 8099
NETTOOL = str(Path(HULL).parent / "tests" / "nettool")
HULL_NET = str(Path(HULL).parent / "hull-net")

FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"
         ".read().decode())\n"
         "except Exception as e:\n"
         "    sys.stderr.write(repr(e)); sys.exit(3)\n")


class Host(Hull):
    """A hull of its own in a network namespace of its own."""

    def __init__(self, name, ns, addr):
        super().__init__(new_root())
        self.name, self.ns, self.addr = name, ns, addr
        self.netdir = tempfile.mkdtemp(prefix="hull-vmnetmig-", dir="/run")
        self.env.update(HULL_NET_CONFIG_DIR=os.path.join(self.netdir, "cfg"),
                        HULL_NET_RUN_DIR=os.path.join(self.netdir, "run"),
                        HULL_NET_HELPER=HULL_NET)
        self.procs = []

    def pre(self):
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def run(self, *args, input=None, timeout=300, check=False):
        p = subprocess.run(self.pre() + [HULL, "--root", self.root, *args], input=input,
                           capture_output=True, timeout=timeout, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name}: hull {' '.join(args)} failed ({p.returncode}): "
                                 f"{p.stderr.decode()}")
        return p

    def cmd(self, *args, check=True):
        return sh(*self.pre(), *args, check=check, env=self.env)

    def popen(self, *args, **kw):
        p = subprocess.Popen(self.pre() + [str(a) for a in args], env=self.env,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def serve_gateway(self):
        """Its gateway says which host it is (GET /whoami)."""
        d = tempfile.mkdtemp(prefix="hull-vmnetmig-gw-")
        Path(d, "whoami").write_text(f"{self.name}\n")
        os.chmod(d, 0o755)
        self.popen("python3", "-m", "http.server", "--bind", GW, "--directory", d, GW_PORT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code = (f"import socket,time\nfor i in range(600):\n  try:\n"
                f"    socket.create_connection(({GW!r},{GW_PORT}),1).close(); break\n"
                f"  except OSError: time.sleep(0.05)\n")
        self.cmd("python3", "-c", code)
        self.gwdir = d

    def leases(self):
        d = Path(self.netdir, "run", "leases")
        return sorted(f.name for f in d.iterdir()) if d.exists() else []

    def link_exists(self, name):
        return self.cmd("ip", "link", "show", name, check=False).returncode == 0

    def ruleset(self):
        return self.cmd("nft", "list", "ruleset").stdout

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
            p.wait(timeout=30)
        if getattr(self, "gwdir", None):
            shutil.rmtree(self.gwdir, ignore_errors=True)


class TwoHosts(BridgedHosts):
    """Two machines on one LAN: .hosts are their Hosts."""

    def __init__(self):
        super().__init__(("host-a", "host-b"), prefix="hm")
        self.hosts = [Host(name, ns, addr) for name, (ns, addr) in self.ns.items()]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    skip_unless_ready()
    for tool in ("nsenter", "nft"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
    d = tmp_path_factory.mktemp("vmnetmig")
    token = d / "token"
    token.write_text("a shared secret of the two hosts\n")
    token.chmod(0o600)
    two = TwoHosts()
    a, b = two.hosts
    try:
        a.ok("network", "create", "--subnet", SUBNET, NET)
        a.serve_gateway()
        yield {"a": a, "b": b, "auth": plain(str(token)), "port": free_port()}
    finally:
        for h in (a, b):
            vmdir = os.path.join(h.root, "vm")
            for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
                h.run("vm", "delete", "--force", vid)
                assert_gone(h, vid)
            h.close()
            h.run("network", "remove", "--force", NET)
            assert h.leases() == [], f"{h.name}: leases left"
        two.close()
        for h in (a, b):
            shutil.rmtree(h.root, ignore_errors=True)
            shutil.rmtree(h.netdir, ignore_errors=True)


def fetch(h, vid, url, timeout=15):
    p = h.exec(vid, "python3", "-c", FETCH, url, str(timeout), timeout=300)
    return p.stdout.decode() if p.returncode == 0 else None


def get(addr, port, path="/hi", timeout=5):
    """GET from the root namespace (another machine of the hosts' network)."""
    try:
        return urllib.request.urlopen(f"http://{addr}:{port}{path}", timeout=timeout).read().decode()
    except OSError:
        return None


def wait_get(addr, port, want, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if get(addr, port) == want:
            return True
        time.sleep(0.3)
    return False


def guest_identity(h, vid):
    """(MAC, IPv4/prefix) of eth0 as the guest itself sees them."""
    out = h.sh(vid, "ip addr show dev eth0")
    mac = re.search(r"link/ether ([0-9a-f:]{17})", out)
    addr = re.search(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", out)
    assert mac and addr, out
    return mac.group(1), addr.group(1)


def migrate(src, dst, vid, nid, auth, *extra):
    rcv = Receiver(dst, auth, f"{dst.addr}:0", nid, ns=type("ns", (), {"name": dst.ns}))
    p = src.run("vm", "migrate", "--to", rcv.addr, *auth, *extra, vid, timeout=600)
    rc, out, err = rcv.finish()
    return p, rc, out, err


def source_intact(a, vid, n, port):
    """The source VM runs with its network as before: lease, TAP, published
    port, its gateway."""
    st = a.state(vid)
    assert st["status"] == "running" and st["pid"] in qemu_pids(vid)
    assert st["network"]["ip"] == n["ip"] and st["network"]["mac"] == n["mac"]
    assert any(n["member"] in f for f in a.leases())
    assert a.link_exists(n["tap"])
    assert get(a.addr, port) == "served-by-the-guest\n"
    assert fetch(a, vid, f"http://{GW}:{GW_PORT}/whoami") == "host-a\n"


def nothing_on(b, nid):
    end = time.monotonic() + 60
    while time.monotonic() < end and os.path.exists(os.path.join(b.root, "vm", nid)):
        time.sleep(0.2)
    assert_gone(b, nid)
    assert b.leases() == []
    assert "hullt" not in b.cmd("ip", "-o", "link", "show").stdout


def source_gone(a, vid, n, port):
    """Nothing of the VM's network is left on the host it left."""
    assert_gone(a, vid)
    assert a.leases() == []
    assert not a.link_exists(n["tap"])
    rules = a.ruleset()
    for needle in (n["tap"], n["mac"], f"{n['ip']} ", f"dport {port} "):
        assert needle not in rules, f"nft rule with {needle} left on {a.name}"


def test_refusals_before_the_copy_leave_the_source_running(env):
    a, b, auth, port = env["a"], env["b"], env["auth"], env["port"]
    a.ok("vm", "create", "--memory", MEM, "--from-template", "--network", NET, "--egress",
         f"all,{GW}/32:{GW_PORT}/tcp", "--publish", f"{port}:8000", "nv")
    a.ok("vm", "start", "nv")
    a.ok("vm", "exec", "--detach", "nv", "--", "sh", "-c",
         "mkdir -p /srv && echo served-by-the-guest > /srv/hi && cd /srv && "
         "exec python3 -m http.server 8000")
    assert wait_get(a.addr, port, "served-by-the-guest\n")
    n = a.state("nv")["network"]
    env["n"] = n
    source_intact(a, "nv", n, port)

    # 1. The target has no network of that name (and makes none).
    p, rc, _, err = migrate(a, b, "nv", "nv-b", auth)
    assert p.returncode == 1 and b"no such network on this host" in p.stderr, p.stderr
    assert rc == 1 and "no such network" in err, err
    nothing_on(b, "nv-b")
    assert NET not in b.ok("network", "list", "-q").stdout.decode().split()
    source_intact(a, "nv", n, port)

    # 2. It has one, on another subnet.
    b.ok("network", "create", "--subnet", "10.213.71.0/24", NET)
    p, rc, _, _ = migrate(a, b, "nv", "nv-b", auth)
    assert p.returncode == 1 and b"the subnet differs" in p.stderr, p.stderr
    nothing_on(b, "nv-b")
    source_intact(a, "nv", n, port)
    b.ok("network", "remove", NET)

    # 3. The same subnet, but the guest's address is taken there.
    b.ok("network", "create", "--subnet", SUBNET, NET)
    squat = b.popen(NETTOOL, "attach", NET, "squatter", "--tap", "--want",
                    json.dumps({"mac": "02:00:00:00:00:42", "ip4": n["ip"], "prefix4": 24,
                                "gw4": GW}),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert squat.stdout.readline(), squat.stderr.read()
    p, rc, _, _ = migrate(a, b, "nv", "nv-b", auth)
    assert p.returncode == 1 and f"{n['ip']} is taken".encode() in p.stderr, p.stderr
    squat.stdin.close()
    assert squat.wait(timeout=60) == 0
    nothing_on(b, "nv-b")
    source_intact(a, "nv", n, port)

    # 4. The published host port is taken there.
    holder = b.popen("python3", "-c",
                     "import socket,time\ns=socket.socket()\n"
                     f"s.bind(('0.0.0.0',{port}))\ns.listen()\nprint('up',flush=True)\n"
                     "time.sleep(600)\n", stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"up\n"
    p, rc, _, _ = migrate(a, b, "nv", "nv-b", auth)
    assert p.returncode == 1 and b"host port taken" in p.stderr, p.stderr
    os.killpg(holder.pid, 9)
    holder.wait(timeout=30)
    nothing_on(b, "nv-b")
    source_intact(a, "nv", n, port)
    env["ready"] = True


def moved(src, dst, vid, nid, n, port, auth, *extra):
    """vid moves from src to dst as nid: the same network identity there,
    its gateway (dst's now) at once, its published port on dst; nothing of
    it on src. dst's record of its network."""
    p, rc, out, err = migrate(src, dst, vid, nid, auth, *extra)
    assert p.returncode == 0, p.stderr.decode()
    assert rc == 0, err
    # At once (a 3 s budget, well under the guest's neighbour probing: a
    # stale gateway MAC takes it 40 s and more, docs/vm.md): the guest
    # reaches its gateway, which is now dst's.
    assert fetch(dst, nid, f"http://{GW}:{GW_PORT}/whoami", timeout=3) == f"{dst.name}\n"
    assert guest_identity(dst, nid) == (n["mac"], f"{n['ip']}/24")
    m = dst.state(nid)["network"]
    assert (m["name"], m["ip"], m["mac"], m["gateway"]) == (NET, n["ip"], n["mac"], GW)
    assert m["publish"] == n["publish"] and m["egress"] == n["egress"]
    # The server that ran in the guest before the move answers through
    # dst's published port; src's no longer leads anywhere.
    assert wait_get(dst.addr, port, "served-by-the-guest\n", timeout=30)
    assert get(src.addr, port, timeout=3) is None
    source_gone(src, vid, n, port)
    return json.loads(p.stdout), m


def test_live_move_keeps_mac_address_gateway_and_published_port(env):
    a, b, auth, port = env["a"], env["b"], env["auth"], env["port"]
    if "ready" not in env:
        pytest.skip("needs the VM of the refusals test")
    n = env["n"]
    b.serve_gateway()
    assert guest_identity(a, "nv") == (n["mac"], f"{n['ip']}/24")
    res, env["m"] = moved(a, b, "nv", "nv-b", n, port, auth)
    assert res["mode"] == "live"


def test_cold_move_back(env):
    a, b, auth, port = env["a"], env["b"], env["auth"], env["port"]
    if "m" not in env:
        pytest.skip("needs the VM moved by the live test")
    res, n = moved(b, a, "nv-b", "nv", env["m"], port, auth, "--mode", "cold")
    assert res["mode"] == "cold"
    a.ok("vm", "delete", "--force", "nv")
    source_gone(a, "nv", n, port)
