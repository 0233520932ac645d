"""Hostile members and neighbours of hull's networks (docs/network.md).

A sandbox on a network is someone else's code: whatever root in its
namespaces (or a microVM guest, root in its own kernel) can put on the
wire is sent here by hand, with raw frames written from the sandbox's
network namespace (nsenter from the test, since the sandbox itself holds
no CAP_NET_RAW), and from a test namespace standing in for another machine
on the host's LAN. Networks live in this module's own state directories
(test_net_sandbox's netenv); nothing leaves this machine.
"""
import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from netlib import client_ns  # noqa: F401 (fixture)
from sandboxlib import HULL, Sandbox
from test_net_sandbox import (  # noqa: F401 (fixtures)
    assert_nothing_left,
    free_port,
    net,
    netenv,
    netns_addr4,
    run,
    stop_server,
)

# UDP datagrams built by hand and written to IFACE addressed to DST_MAC,
# one process so they leave in order. argv: iface src_mac dst_mac src_ip
# then DST_IP:PORT:PAYLOAD ...
RAW_UDP = r"""
import socket, struct, sys
iface, smac, dmac, sip = sys.argv[1:5]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for n, spec in enumerate(sys.argv[5:]):
    dip, port, payload = spec.split(":", 2)
    data = payload.encode()
    udp = struct.pack("!HHHH", 40000 + n, int(port), 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n + 1, 0, 64, 17, 0,
                     socket.inet_aton(sip), socket.inet_aton(dip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = (bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
           + b"\x08\x00")
    s.send(eth + ip + udp)
"""

# Two UDP ports (9000, 9001): prints every datagram as "PORT PAYLOAD" and
# ends once it has had both "control" and "quit".
UDP_SINK = r"""
import select, socket, sys
socks = {}
for port in (9000, 9001):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks[s] = port
got = []
while not ({"control", "quit"} <= {g.split(" ", 1)[1] for g in got}):
    for s in select.select(list(socks), [], [])[0]:
        got.append("%d %s" % (socks[s], s.recv(100).decode()))
        print(got[-1], flush=True)
"""


def link_mac(ifname, pid=None):
    pre = ["nsenter", "-t", str(pid), "-n"] if pid else []
    out = subprocess.run([*pre, "ip", "-o", "link", "show", ifname], capture_output=True,
                         text=True).stdout
    return re.search(r"link/ether (\S+)", out).group(1)


def udp_sink(netenv, net, *publish):
    """A sandbox on net running UDP_SINK with the given --publish specs:
    (Sandbox, Popen, out, err)."""
    sb = Sandbox()
    opts = ["--network", net]
    for spec in publish:
        opts += ["--publish", spec]
    p, out, err = sb.start(*opts, cmd=["python3", "-u", "-c", UDP_SINK])
    pid = sb.workload_pid(cmdline="python3", timeout=60)

    def bound():
        ss = subprocess.run(["nsenter", "-t", str(pid), "-n", "ss", "-Hlun"],
                            capture_output=True, text=True).stdout
        return ":9000 " in ss and ":9001 " in ss
    from sandboxlib import wait_until
    assert wait_until(bound, timeout=60), "sink never bound"
    return sb, p, out, err


def host_send(addr, port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload.encode(), (addr, port))


# ---- ports published on 127.0.0.1 -------------------------------------------


def test_loopback_publish_unreachable_from_a_member_of_another_network(netenv, net):
    """A port published on 127.0.0.1 is the host's alone. A member of
    another network that sends a frame for 127.0.0.1:HOSTPORT to its
    gateway's MAC must not get it DNATed to the sandbox; the same raw path
    to a port published on every address does arrive (the control), and
    the host itself still reaches the loopback one."""
    other = netenv.create()
    lo_port, all_port = free_port(), free_port()
    sb, p, out, err = udp_sink(netenv, net, f"127.0.0.1:{lo_port}:9000/udp",
                               f"{all_port}:9001/udp")
    att = Sandbox()
    ap, aout, aerr = att.start("--network", other, cmd=["sleep", "1000"])
    try:
        apid = att.workload_pid(cmdline="sleep", timeout=60)
        info = netenv.inspect(other)
        br_mac = Path(f"/sys/class/net/{info['bridge']}/address").read_text().strip()
        r = subprocess.run(["nsenter", "-t", str(apid), "-n", "python3", "-c", RAW_UDP, "eth0",
                            link_mac("eth0", apid), br_mac, netns_addr4(apid),
                            f"127.0.0.1:{lo_port}:loopback", f"{info['gateway']}:{all_port}:control"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        host_send("127.0.0.1", lo_port, "quit")
        rs = sb.finish(p, out, err, timeout=240)
    finally:
        if p.poll() is None:
            stop_server(sb, p, out, err)
        ra = stop_server(att, ap, aout, aerr)
    assert rs.out.splitlines() == ["9001 control", "9000 quit"], rs
    assert ra.verdict == "killed", ra
    assert_nothing_left(netenv, net, [rs.pid, ra.pid])
    assert_nothing_left(netenv, other, [ra.pid])


def test_loopback_publish_unreachable_from_another_machine(netenv, net, client_ns):
    """The same from a machine on the host's LAN (the client namespace):
    127.0.0.1:HOSTPORT in a frame to the host's MAC is not the sandbox's
    port; the host's address and a port published everywhere is."""
    lo_port, all_port = free_port(), free_port()
    sb, p, out, err = udp_sink(netenv, net, f"127.0.0.1:{lo_port}:9000/udp",
                               f"{all_port}:9001/udp")
    try:
        r = client_ns.exec("python3", "-c", RAW_UDP, "eth0", client_mac(client_ns),
                           link_mac(client_ns.host_if),
                           client_ns.addr4, f"127.0.0.1:{lo_port}:loopback",
                           f"{client_ns.host_addr4}:{all_port}:control", check=False)
        assert r.returncode == 0, r
        host_send("127.0.0.1", lo_port, "quit")
        rs = sb.finish(p, out, err, timeout=240)
    finally:
        if p.poll() is None:
            stop_server(sb, p, out, err)
    assert rs.out.splitlines() == ["9001 control", "9000 quit"], rs
    assert_nothing_left(netenv, net, [rs.pid])


def client_mac(ns):
    out = ns.exec("ip", "-o", "link", "show", "eth0").stdout
    return re.search(r"link/ether (\S+)", out).group(1)


# ---- what the sandbox itself may do to its network ---------------------------

# argv: none. Tries what root in the sandbox's network namespace could do
# with CAP_NET_ADMIN / CAP_NET_RAW; prints {attempt: "ok" | errno name}.
SELF_TAMPER = r"""
import errno, json, socket, subprocess
out = {}
st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13
for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
    v = int(st[k], 16)
    out[k] = [n for n, b in (("NET_ADMIN", CAP_NET_ADMIN), ("NET_RAW", CAP_NET_RAW)) if v >> b & 1]
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
attempt("raw_ip", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close())
attempt("raw_ip6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, 58).close())
def ioctl_mtu():
    import fcntl, struct
    s = socket.socket()
    fcntl.ioctl(s, 0x8922, struct.pack("16si12x", b"eth0", 1280))  # SIOCSIFMTU
def ioctl_hw():
    import fcntl, struct
    s = socket.socket()
    fcntl.ioctl(s, 0x8924, struct.pack("16sH6s8x", b"eth0", 1, bytes.fromhex("02aabbccddee")))
attempt("set_mtu", ioctl_mtu)
attempt("set_mac", ioctl_hw)
for name, cmd in (("addr_add", "ip addr add 10.255.255.9/32 dev eth0"),
                  ("route_add", "ip route add 198.18.99.0/24 dev eth0"),
                  ("sysctl_fwd", "sh -c 'echo 1 > /proc/sys/net/ipv4/conf/eth0/proxy_arp'")):
    r = subprocess.run(cmd, shell=True, capture_output=True)
    out[name] = "ok" if r.returncode == 0 else "refused"
print(json.dumps(out))
"""


def test_sandbox_holds_no_network_capability(netenv, net):
    """The sandbox is root in its namespaces only as far as hull lets it:
    no CAP_NET_ADMIN or CAP_NET_RAW in any set, so no packet or raw
    socket, and eth0's MTU, MAC, addresses, routes and sysctls stay hull's."""
    r = run(Sandbox(), "--network", net, cmd=["python3", "-c", SELF_TAMPER])
    assert r.verdict == "ok", r
    got = json.loads(r.out)
    assert {k: got[k] for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == \
        {"CapEff": [], "CapPrm": [], "CapBnd": [], "CapAmb": []}, got
    assert all(got[k] != "ok" for k in ("packet", "raw_ip", "raw_ip6", "set_mtu", "set_mac",
                                        "addr_add", "route_add", "sysctl_fwd")), got
    assert_nothing_left(netenv, net, [r.pid])


# ---- a helper killed half-way --------------------------------------------------


def bridge_state(bridge):
    """What a usable bridge has: up, its gateway address, hull's sysctls and mark."""
    sysfs = Path("/sys/class/net") / bridge
    flags = int((sysfs / "flags").read_text(), 16)
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", bridge],
                           capture_output=True, text=True).stdout
    return {"up": bool(flags & 1),
            "addr": re.findall(r"inet (\S+)", addrs),
            "accept_ra": Path(f"/proc/sys/net/ipv6/conf/{bridge}/accept_ra").read_text().strip(),
            "route_localnet":
                Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip(),
            "alias": (sysfs / "ifalias").read_text().strip()}


@pytest.mark.skipif(not Path("/usr/bin/strace").exists(), reason="needs strace")
def test_create_killed_at_each_netlink_step_leaves_a_usable_network(netenv):
    """`hull network create` SIGKILLed at its k-th netlink request, for every
    k until it finishes: either no network is left, or the next member's
    attach finds its bridge whole (up, the gateway address, accept_ra=0,
    route_localnet=1, hull's mark), however far the killed one got."""
    gw_pre = f"hull {netenv.config_dir}"
    k = 0
    while True:
        k += 1
        assert k < 100, "create never finished"
        name = f"{netenv.tag}-k{k}"
        cp = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=sendto,sendmsg",
                             "-e", f"inject=sendto,sendmsg:signal=KILL:when={k}", HULL, "network",
                             "create", name], capture_output=True, text=True, timeout=120)
        defn = netenv.config_dir / f"{name}.json"
        if not defn.exists():
            assert cp.returncode != 0, cp
            continue
        netenv.made.append(name)
        info = netenv.inspect(name)
        r = run(Sandbox(), "--network", name, cmd=["true"])
        assert r.verdict == "ok", (k, r)
        prefix = info["subnet"].split("/")[1]
        assert bridge_state(info["bridge"]) == {
            "up": True, "addr": [f"{info['gateway']}/{prefix}"], "accept_ra": "0",
            "route_localnet": "1", "alias": gw_pre}, (k, cp.returncode)
        assert_nothing_left(netenv, name, [r.pid])
        rm = subprocess.run([HULL, "network", "remove", name], capture_output=True, text=True,
                            timeout=120)
        assert rm.returncode == 0, rm
        netenv.made.remove(name)
        assert not Path("/sys/class/net", info["bridge"]).exists()
        if cp.returncode == 0:
            break
    assert k > 3, "the kills never hit the set-up"


@pytest.mark.skipif(not Path("/usr/bin/strace").exists(), reason="needs strace")
def test_run_whose_helper_is_killed_at_each_netlink_step_leaves_nothing(netenv, net, tmp_path):
    """The sandbox's hull-net helper SIGKILLed at its k-th netlink (or
    socket) message, for every k until a run goes through: the run fails
    cleanly or finishes, and after the next ordinary run on the network
    (whose attach sweeps) no lease, veth, rule or /etc file is left."""
    helper = Path(HULL).parent / "hull-net"
    wrapper = tmp_path / "hull-net-killed"
    k = 0
    while True:
        k += 1
        assert k < 200, "the run never went through"
        wrapper.write_text("#!/bin/sh\nexec strace -qq -o /dev/null -e trace=sendto,sendmsg "
                           f"-e inject=sendto,sendmsg:signal=KILL:when={k} {helper} \"$@\"\n")
        wrapper.chmod(0o755)
        p = subprocess.run([HULL, "sandbox", "run", "--json", "--network", net, "--", "true"],
                           capture_output=True, text=True, timeout=240,
                           env={**os.environ, "HULL_NET_HELPER": str(wrapper)})
        r = run(Sandbox(), "--network", net, cmd=["true"])
        assert r.verdict == "ok", (k, r)
        assert_nothing_left(netenv, net, [r.pid])
        # With --json a run hull could not finish is the verdict
        # internal_error (exit status 0), one it could not start an error.
        verdict = json.loads(p.stdout)["verdict"] if p.returncode == 0 else None
        if verdict == "ok" and "network helper" not in p.stderr:
            break
        assert "hull: " in p.stderr and "network" in p.stderr, (k, p)
    assert k > 3, "the kills never hit the attach"
