"""microVMs on hull networks (issue 12), end to end under TCG.

A VM created with --network gets a TAP made by hull (QEMU, confined, could
not make one), a virtio-net card with the lease's MAC, and its address,
route and resolver from hull-agent. These tests drive build/hull against a
private VM state root and private network state directories, on a network
of their own, with netlib's test "internet" (a namespace on this machine,
198.18.0.0/15) behind hull's NAT. They check real traffic both ways and the
host afterwards: no TAP, lease or nftables rule of a VM once it is stopped,
deleted, or its QEMU killed.

Slow only because TCG is: no test compares a time.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from netlib import client_ns, upstream  # noqa: F401 (fixtures)
from test_vm_lib import HULL, MEM, Hull, assert_gone, new_root, qemu_pids, running, skip_unless_ready

FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=15).read().decode())\n"
         "except Exception as e:\n"
         "    sys.stderr.write(repr(e)); sys.exit(3)\n")


@pytest.fixture(scope="module")
def net():
    """A Hull with private VM and network state, and a network of its own."""
    skip_unless_ready()
    if not shutil.which("nft"):
        pytest.skip("nft missing (scripts/deps.sh net)")
    root = new_root()
    netdir = tempfile.mkdtemp(prefix="hull-vmnet-", dir="/run")
    h = Hull(root)
    h.env.update(HULL_NET_CONFIG_DIR=os.path.join(netdir, "cfg"),
                 HULL_NET_RUN_DIR=os.path.join(netdir, "run"))
    h.netdir = netdir
    h.net = f"microvm-t{os.getpid()}"
    h.ok("network", "create", h.net)
    yield h
    vmdir = os.path.join(root, "vm")
    for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
        h.run("vm", "delete", "--force", vid)
    h.run("network", "remove", "--force", h.net)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(netdir, ignore_errors=True)


def free_port():
    """A TCP port nothing on the host listens on now."""
    for _ in range(100):
        port = random.randint(20000, 40000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port")


def vm_net(h, vid):
    return h.state(vid).get("network")


def leases(h):
    d = os.path.join(h.netdir, "run", "leases")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def ruleset():
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                          check=True).stdout


def assert_net_gone(h, n, ports=()):
    """Nothing of lease n (a state document's "network") is left on the host."""
    assert not link_exists(n["tap"]), f"TAP {n['tap']} left"
    assert not [f for f in leases(h) if n["member"] in f], f"lease of {n['member']} left"
    rules = ruleset()
    for needle in (n["tap"], n["mac"], f"{n['ip']} "):
        assert needle not in rules, f"nft rule with {needle} left"
    for port in ports:
        assert f"dport {port} " not in rules, f"nft rule for published port {port} left"


def fetch(h, vid, url):
    p = h.exec(vid, "python3", "-c", FETCH, url, timeout=300)
    return p.stdout.decode() if p.returncode == 0 else None


def wait_http(url, timeout=120):
    """GET url from the host until it answers (the guest's server starting
    under TCG); the body, or None."""
    import urllib.request
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            time.sleep(0.2)
    return None


def serve(h, vid, port, text):
    """An http.server in the guest on port whose /hi says text."""
    h.ok("vm", "exec", "--detach", vid, "--", "sh", "-c",
         f"mkdir -p /srv && echo {text} > /srv/hi && cd /srv && exec python3 -m http.server {port}")


def test_vm_fetches_from_upstream_through_nat(net, upstream):
    h = net
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "fetcher")
    # Only recorded so far: no lease before it runs.
    n = vm_net(h, "fetcher")
    assert n["name"] == h.net and "ip" not in n
    h.ok("vm", "start", "fetcher")
    n = vm_net(h, "fetcher")
    assert n["ip"] and n["gateway"] and n["mac"].startswith("02:")
    assert link_exists(n["tap"]), "the VM's TAP is not on the host"
    # QEMU got the TAP as an fd; it made nothing itself and holds no privilege.
    pid = h.state("fetcher")["pid"]
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    assert b"tap,id=net0,fd=4,vhost=off" in cmdline
    assert any(a.startswith(b"virtio-net-device,netdev=net0,mac=" + n["mac"].encode())
               for a in cmdline)
    assert os.readlink(f"/proc/{pid}/fd/4") == "/dev/net/tun"
    # The guest's card: the lease's MAC and address, default route, resolver.
    out = h.sh("fetcher", "ip -o addr show eth0; ip route; cat /etc/resolv.conf")
    assert f"inet {n['ip']}/{n['prefix']}" in out
    assert f"default via {n['gateway']}" in out
    for ns in n["dns"]:
        assert f"nameserver {ns}" in out
    assert f"link/ether {n['mac']}" in h.sh("fetcher", "ip link show eth0")
    # Real traffic out through hull's NAT to the test upstream, both ports.
    for port in upstream.http_ports:
        assert fetch(h, "fetcher", upstream.url(port)) == upstream.body(port)
    h.ok("vm", "delete", "--force", "fetcher")
    assert_gone(h, "fetcher")
    assert_net_gone(h, n)


def test_published_port_reachable_from_host_and_other_machines(net, client_ns):
    h = net
    lo_port, any_port = free_port(), free_port()
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "--publish",
         f"127.0.0.1:{lo_port}:8000", "--publish", f"{any_port}:8000", "server")
    h.ok("vm", "start", "server")
    n = vm_net(h, "server")
    assert {(p["host_ip"], p["host_port"], p["port"], p["proto"]) for p in n["publish"]} == {
        ("127.0.0.1", lo_port, 8000, "tcp"), ("", any_port, 8000, "tcp")}
    serve(h, "server", 8000, "hello-from-the-guest")
    # From the host, on loopback (published on 127.0.0.1 and on every address).
    assert wait_http(f"http://127.0.0.1:{lo_port}/hi") == "hello-from-the-guest\n"
    assert wait_http(f"http://127.0.0.1:{any_port}/hi") == "hello-from-the-guest\n"
    # From another machine on the host's network: only the port published
    # on every address.
    assert client_ns.http_get(client_ns.host_addr4, any_port, "/hi") == "hello-from-the-guest\n"
    assert not client_ns.tcp_open(client_ns.host_addr4, lo_port)
    h.ok("vm", "stop", "server")
    assert_net_gone(h, n, ports=(lo_port, any_port))
    # Nothing answers there any more, and the lease is gone from the record.
    assert wait_http(f"http://127.0.0.1:{lo_port}/hi", timeout=2) is None
    assert "ip" not in vm_net(h, "server")
    # A new start: a new lease, the ports published again.
    h.ok("vm", "start", "server")
    n2 = vm_net(h, "server")
    assert n2["tap"] != n["tap"]
    serve(h, "server", 8000, "again")
    assert wait_http(f"http://127.0.0.1:{lo_port}/hi") == "again\n"
    h.ok("vm", "delete", "--force", "server")
    assert_gone(h, "server")
    assert_net_gone(h, n2, ports=(lo_port, any_port))


def test_egress_allow_list_is_passed_through(net, upstream):
    h = net
    open_port, closed_port = upstream.http_ports
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "--egress",
         f"{upstream.addr4}/32:{open_port}/tcp", "walled")
    h.ok("vm", "start", "walled")
    assert fetch(h, "walled", upstream.url(open_port)) == upstream.body(open_port)
    assert fetch(h, "walled", upstream.url(closed_port)) is None
    n = vm_net(h, "walled")
    h.ok("vm", "delete", "--force", "walled")
    assert_net_gone(h, n)


def test_restored_vm_has_its_own_tap_and_address(net, upstream, tmp_path):
    h = net
    port = free_port()
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "--publish",
         f"127.0.0.1:{port}:8000", "orig")
    h.ok("vm", "start", "orig")
    serve(h, "orig", 8000, "served-before-the-snapshot")
    assert wait_http(f"http://127.0.0.1:{port}/hi") == "served-before-the-snapshot\n"
    snap = str(tmp_path / "orig.snap")
    h.ok("vm", "snapshot", "orig", snap)
    h.ok("vm", "restore", snap, "copy")
    a, b = vm_net(h, "orig"), vm_net(h, "copy")
    assert b["name"] == h.net
    assert b["ip"] != a["ip"] and b["mac"] != a["mac"] and b["tap"] != a["tap"]
    # The published port stays the source VM's: the copy publishes nothing.
    assert b["publish"] == []
    # The guest was told its new address (and MAC), and both have network.
    out = h.sh("copy", "ip -o addr show eth0; ip link show eth0")
    assert f"inet {b['ip']}/" in out and f"inet {a['ip']}/" not in out and b["mac"] in out
    for vid in ("orig", "copy"):
        assert fetch(h, vid, upstream.url()) == upstream.body(upstream.http_ports[0])
    # The source still serves its port, which the copy did not take.
    assert wait_http(f"http://127.0.0.1:{port}/hi") == "served-before-the-snapshot\n"
    for vid, n in (("copy", b), ("orig", a)):
        h.ok("vm", "delete", "--force", vid)
        assert_gone(h, vid)
        assert_net_gone(h, n)
    assert f"dport {port} " not in ruleset()


def test_killed_qemu_leaves_no_lease_once_seen(net):
    h = net
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "victim")
    h.ok("vm", "start", "victim")
    n = vm_net(h, "victim")
    pid = h.state("victim")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while running(pid) and time.time() < deadline:
        time.sleep(0.05)
    # The kernel takes the TAP with QEMU's last fd (its last thread may end
    # a moment after the pid shows it a zombie); the next look at the VM
    # releases the lease and the rules.
    deadline = time.time() + 30
    while link_exists(n["tap"]) and time.time() < deadline:
        time.sleep(0.05)
    assert not link_exists(n["tap"])
    assert h.state("victim")["status"] == "stopped"
    assert_net_gone(h, n)
    h.ok("vm", "delete", "victim")
    assert_gone(h, "victim")


def test_killed_qemu_is_swept_by_the_next_attach(net):
    """Nobody looks at the VM again: the lease belongs to QEMU's pid, so the
    helper's sweep at the next attach on this host releases it."""
    h = net
    h.ok("vm", "create", "--memory", MEM, "--network", h.net, "unseen")
    h.ok("vm", "start", "unseen")
    n = vm_net(h, "unseen")
    pid = h.state("unseen")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while running(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert [f for f in leases(h) if n["member"] in f]
    p = h.run("vm", "run", "--network", h.net, "--", "true", timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    assert_net_gone(h, n)
    h.ok("vm", "delete", "unseen")
    assert_gone(h, "unseen")


def test_oneshot_run_on_a_network_cold_and_warm(net, upstream):
    h = net
    before = leases(h)
    for _ in range(2):  # the first boots (and saves the template), the second restores it
        p = h.run("vm", "run", "--network", h.net, "--", "python3", "-c", FETCH, upstream.url(),
                  timeout=600)
        assert p.returncode == 0, p.stderr.decode()
        r = json.loads(p.stdout)
        assert r["verdict"] == "ok", r
        assert r["stdout"] == upstream.body(upstream.http_ports[0])
    assert r["warm_start"], "the second run did not restore the template"
    # Each run's VM took a lease and gave it back with the VM.
    assert leases(h) == before
    vmdir = os.path.join(h.root, "vm")
    assert not [v for v in os.listdir(vmdir) if v.startswith("oneshot-")]


def test_sandbox_run_microvm_with_network(net, upstream):
    h = net
    before = leases(h)
    p = h.run("sandbox", "run", "--isolation", "microvm", "--network", h.net, "--json",
              "--wall-time", "120s", "--cpu-time", "120s", "--",
              "python3", "-c", FETCH, upstream.url(), timeout=600)
    if p.returncode != 0 and b"--network" in p.stderr and b"unknown" in p.stderr.lower():
        pytest.skip("hull sandbox run --network is not in this build")
    assert p.returncode == 0, p.stderr.decode()
    r = json.loads(p.stdout)
    assert r["verdict"] == "ok" and r["isolation"] == "microvm", r
    assert r["stdout"] == upstream.body(upstream.http_ports[0])
    assert leases(h) == before


def test_bad_input_is_refused_and_leaves_nothing(net):
    h = net
    before = leases(h)
    cases = [
        (["--network", "nosuchnet"], b"no such network"),
        (["--network", "host"], b"cannot share the host's network"),
        (["--network", "Bad_Name!"], b"not a network name"),
        (["--publish", "8080:80"], b"needs --network"),
        (["--egress", "none"], b"needs --network"),
        (["--network", h.net, "--publish", "notaport"], b"notaport"),
        (["--network", h.net, "--egress", "10.0.0.0/99"], b"10.0.0.0/99"),
    ]
    for args, msg in cases:
        p = h.run("vm", "create", "--memory", MEM, *args, "bad")
        assert p.returncode == 1, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
        # One line (a usage error adds the "Try --help" hint).
        assert p.stderr.startswith(b"hull: ") and b"\n" not in p.stderr.split(b"\n", 1)[0], p.stderr
        assert not os.path.exists(os.path.join(h.root, "vm", "bad"))
    p = h.run("sandbox", "run", "--isolation", "microvm", "--network", "host", "--", "true")
    assert p.returncode != 0 and b"--network host is refused" in p.stderr, p.stderr
    p = h.run("vm", "run", "--network", "nosuchnet", "--", "true")
    assert p.returncode == 1 and b"no such network" in p.stderr, p.stderr
    assert leases(h) == before
    assert not qemu_pids("bad")


def test_start_fails_cleanly_when_the_network_is_gone(net):
    h = net
    other = f"microvm-g{os.getpid()}"
    h.ok("network", "create", other)
    h.ok("vm", "create", "--memory", MEM, "--network", other, "orphan")
    h.ok("network", "remove", other)
    before = leases(h)
    p = h.run("vm", "start", "orphan")
    assert p.returncode == 1 and p.stderr.startswith(b"hull: "), p.stderr
    assert other.encode() in p.stderr, p.stderr
    assert not qemu_pids("orphan")
    assert leases(h) == before
    h.ok("vm", "delete", "orphan")
    assert_gone(h, "orphan")


def test_oneshot_killed_leaves_no_lease(net):
    h = net
    before = leases(h)
    p = subprocess.Popen([HULL, "--root", h.root, "vm", "run", "--network", h.net,
                          "--wall-time", "600s", "--cpu-time", "600s", "--", "sleep", "600"],
                         env=h.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def its_qemu():
        name = f"hull-oneshot-{p.pid}-".encode()
        for pid in qemu_pids():
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            if argv[argv.index(b"-name") + 1].startswith(name):
                return pid
        return None

    try:
        # Until its VM's QEMU runs (with the lease handed to it). Killed
        # between the lease and QEMU, hull leaves a lease whose owner is
        # gone, which the next attach's sweep (or `network prune`) takes.
        def adopted():
            new = [f for f in leases(h) if f not in before]
            if not new or not its_qemu():
                return False
            try:
                with open(os.path.join(h.netdir, "run", "leases", new[0])) as f:
                    return json.load(f).get("owner_pid") == its_qemu()
            except (OSError, ValueError):
                return False

        deadline = time.time() + 300
        while not adopted() and time.time() < deadline:
            time.sleep(0.1)
        assert adopted(), "the run's VM never came up with its lease"
    finally:
        p.kill()
        p.wait()
    # Its monitor kills QEMU, releases the lease and removes the VM.
    deadline = time.time() + 60
    while leases(h) != before and time.time() < deadline:
        time.sleep(0.1)
    assert leases(h) == before
    deadline = time.time() + 30
    vmdir = os.path.join(h.root, "vm")
    while [v for v in os.listdir(vmdir) if v.startswith("oneshot-")] and time.time() < deadline:
        time.sleep(0.1)
    assert not [v for v in os.listdir(vmdir) if v.startswith("oneshot-")]


def test_ipv6_network(net, upstream):
    h = net
    v6net = f"microvm-6t{os.getpid()}"
    ula = f"fd6c:{os.getpid() % 65536:x}:{random.randint(1, 65535):x}::/64"
    h.ok("network", "create", "--ipv6", ula, v6net)
    try:
        h.ok("vm", "create", "--memory", MEM, "--network", v6net, "dual")
        h.ok("vm", "start", "dual")
        n = vm_net(h, "dual")
        assert n["ip6"] and n["gateway6"], n
        out = h.sh("dual", "ip -6 addr show eth0; ip -6 route; cat /etc/hosts")
        assert f"inet6 {n['ip6']}/{n['prefix6']}" in out
        assert f"default via {n['gateway6']}" in out
        assert f"{n['ip6']}\tdual" in out
        port = upstream.http_ports[0]
        assert fetch(h, "dual", upstream.url(port, v6=True)) == upstream.body(port)
        assert fetch(h, "dual", upstream.url(port)) == upstream.body(port)
        h.ok("vm", "delete", "--force", "dual")
        assert_gone(h, "dual")
        assert_net_gone(h, n)
        assert n["ip6"] not in ruleset()
    finally:
        h.run("vm", "delete", "--force", "dual")
        h.run("network", "remove", "--force", v6net)
