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

from netlib import client_ns, upstream  # noqa: F401 (fixtures)
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


# ---- neighbour spoofing on the bridge -------------------------------------------

# Frames root in a member could send (a microVM guest is such a root), all
# from the member's own MAC, in one process so they leave in order.
# argv: iface own_mac then specs: "garp:IP" (a gratuitous ARP request
# claiming IP for own_mac) or "na:SRC6:TARGET6" (an unsolicited neighbour
# advertisement to ff02::1 with the override flag: TARGET6 is at own_mac).
RAW_NEIGH = r"""
import socket, struct, sys
iface, mac = sys.argv[1:3]
me = bytes.fromhex(mac.replace(":", ""))
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s >> 16) + (s & 0xffff)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for spec in sys.argv[3:]:
    kind, rest = spec.split(":", 1)
    if kind == "garp":
        ip = socket.inet_aton(rest)
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, me, ip, b"\0" * 6, ip)
        s.send(b"\xff" * 6 + me + b"\x08\x06" + arp)
    else:
        src, target = rest.split("|")
        src, target = (socket.inet_pton(socket.AF_INET6, a) for a in (src, target))
        dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
        body = struct.pack("!I", 0x20000000) + target + b"\x02\x01" + me
        pseudo = src + dst + struct.pack("!I3xB", 4 + len(body), 58)
        icmp = struct.pack("!BBH", 136, 0, csum(pseudo + struct.pack("!BBH", 136, 0, 0) + body))
        icmp += body
        ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 255, src, dst)
        s.send(b"\x33\x33\x00\x00\x00\x01" + me + b"\x86\xdd" + ip6 + icmp)
"""


def neigh_mac(addr, dev, pid=None):
    pre = ["nsenter", "-t", str(pid), "-n"] if pid else []
    out = subprocess.run([*pre, "ip", "neigh", "show", addr, "dev", dev], capture_output=True,
                         text=True).stdout
    m = re.search(r"lladdr (\S+)", out)
    return m.group(1) if m else None


def neigh_set(addr, mac, dev, pid=None):
    pre = ["nsenter", "-t", str(pid), "-n"] if pid else []
    subprocess.run([*pre, "ip", "neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud",
                    "stale"], check=True, capture_output=True)


def netns_addr6(pid):
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-6", "-o", "addr", "show",
                          "dev", "eth0", "scope", "global"], capture_output=True, text=True).stdout
    return re.search(r"inet6 (\S+)/", out).group(1)


def test_a_member_cannot_claim_a_peers_or_the_gateways_address(netenv):
    """On a network whose peers see each other (--allow-peers, so frames do
    reach them), member A sends gratuitous ARP and unsolicited override
    neighbour advertisements claiming member B's addresses (to the host)
    and the gateway's (to B). The host's neighbour entries for B and B's
    for the gateway keep their MACs; the same frames claiming A's own
    addresses, sent last, do update the host's and B's entries (the
    control: the frames are well made and arrive)."""
    import uuid
    sub = f"fd{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::/64"
    name = netenv.create("--allow-peers", "--ipv6", sub)
    info = netenv.inspect(name)
    br = info["bridge"]
    br_mac = link_mac(br)
    gw4, gw6 = info["gateway"], info["ipv6_gateway"]
    bogus = "02:00:5e:00:53:99"
    a, b = Sandbox(), Sandbox()
    ap, aout, aerr = a.start("--network", name, cmd=["sleep", "1000"])
    bp, bout, berr = b.start("--network", name, cmd=["sleep", "1001"])
    try:
        apid = a.workload_pid(cmdline="sleep 1000", timeout=60)
        bpid = b.workload_pid(cmdline="sleep 1001", timeout=60)
        amac, bmac = link_mac("eth0", apid), link_mac("eth0", bpid)
        a4, b4, a6, b6 = netns_addr4(apid), netns_addr4(bpid), netns_addr6(apid), netns_addr6(bpid)
        # What each side believes now: B at B's MAC (host), the gateway at
        # the bridge's (B); A's own entries wrong, for the control to fix.
        for addr, mac in ((b4, bmac), (b6, bmac), (a4, bogus), (a6, bogus)):
            neigh_set(addr, mac, br)
        for addr, mac in ((gw4, br_mac), (gw6, br_mac), (a4, bogus), (a6, bogus)):
            neigh_set(addr, mac, "eth0", bpid)
        r = subprocess.run(["nsenter", "-t", str(apid), "-n", "python3", "-c", RAW_NEIGH, "eth0",
                            amac, f"garp:{b4}", f"garp:{gw4}", f"na:{a6}|{b6}",
                            f"na:{a6}|{gw6}", f"garp:{a4}", f"na:{a6}|{a6}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        from sandboxlib import wait_until

        def controls():
            return {"host": (neigh_mac(a4, br), neigh_mac(a6, br)),
                    "peer": (neigh_mac(a4, "eth0", bpid), neigh_mac(a6, "eth0", bpid))}
        want = {"host": (amac, amac), "peer": (amac, amac)}
        assert wait_until(lambda: controls() == want, timeout=60), controls()
        assert (neigh_mac(b4, br), neigh_mac(b6, br)) == (bmac, bmac)
        assert (neigh_mac(gw4, "eth0", bpid), neigh_mac(gw6, "eth0", bpid)) == (br_mac, br_mac)
    finally:
        ra = stop_server(a, ap, aout, aerr)
        rb = stop_server(b, bp, bout, berr)
    assert ra.verdict == "killed" and rb.verdict == "killed", (ra, rb)
    assert_nothing_left(netenv, name, [ra.pid, rb.pid])


# ---- the host over IPv6 ---------------------------------------------------------

# argv: port then targets (IPv6 text, "%eth0" for link-local; "::ffff:a.b.c.d"
# is IPv4 on the wire): one UDP datagram each, its payload the target.
UDP6_SEND = r"""
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for t in sys.argv[2:]:
    try:
        s.sendto(t.encode(), socket.getaddrinfo(t, port, socket.AF_INET6)[0][4])
    except OSError as e:
        print("unsent", t, e)
"""


def test_host_closed_over_ipv6_except_the_named_address(netenv, client_ns):
    """With egress `all` plus one rule naming the IPv6 gateway's UDP port,
    a member reaches that port on the gateway and on no other way to the
    same host socket: the bridge's link-local address, the host's address
    on another link, all-nodes multicast, the IPv4 gateway written as
    ::ffff:a.b.c.d."""
    import uuid
    sub = f"fd{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}::/64"
    name = netenv.create("--ipv6", sub)
    info = netenv.inspect(name)
    from sandboxlib import wait_until

    def bridge_ll():
        out = subprocess.run(["ip", "-6", "-o", "addr", "show", "dev", info["bridge"], "scope",
                              "link"], capture_output=True, text=True).stdout
        m = re.search(r"inet6 (\S+)/.*", out)
        return m.group(1) if m and "tentative" not in m.group(0) else None
    # The bridge has its link-local address once a port is up: a member
    # that only holds it.
    hold = Sandbox()
    hp, hout, herr = hold.start("--network", name, cmd=["sleep", "1000"])
    try:
        assert wait_until(bridge_ll, timeout=60), "the bridge never had a link-local address"
        br_ll = bridge_ll()
    finally:
        rh = stop_server(hold, hp, hout, herr)
    assert rh.verdict == "killed", rh
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    rx.bind(("::", 0))
    port = rx.getsockname()[1]
    rx.settimeout(5)
    targets = [f"{br_ll}%eth0", client_ns.host_addr6, "ff02::1%eth0",
               f"::ffff:{info['gateway']}", info["ipv6_gateway"]]
    try:
        r = run(Sandbox(), "--network", name, "--egress",
                f"all,[{info['ipv6_gateway']}/128]:{port}/udp",
                cmd=["python3", "-c", UDP6_SEND, str(port), *targets])
        assert r.verdict == "ok" and r.out == "", r  # every datagram left
        got = []
        while got[-1:] != [info["ipv6_gateway"]]:  # the control is sent last
            got.append(rx.recv(200).decode())
    finally:
        rx.close()
    assert got == [info["ipv6_gateway"]], got
    assert_nothing_left(netenv, name, [r.pid])


# ---- internal networks ---------------------------------------------------------


def test_internal_member_reaches_no_published_port(netenv, net, upstream):
    """A member of an --internal network has no way out: not to the test
    upstream, and not into another network's member through a port that
    member publishes on every host address (DNATed, so it used to pass as a
    published port's connection), whichever host address it uses. A member
    of an ordinary network reaches the same port (the control)."""
    from test_net_sandbox import PROBE, serve_in_sandbox
    internal = netenv.create("--internal")
    gw_int, gw_net = netenv.inspect(internal)["gateway"], netenv.inspect(net)["gateway"]
    port = free_port()
    sb = Sandbox()
    p, out, err, _, _ = serve_in_sandbox(sb, "--network", net, "--publish", f"{port}:8000")
    targets = [f"{gw_int}:{port}", f"{gw_net}:{port}", f"{upstream.addr4}:8080"]
    try:
        ri = run(Sandbox(), "--network", internal, cmd=["python3", "-c", PROBE, *targets])
        other = netenv.create()
        gw_other = netenv.inspect(other)["gateway"]
        ro = run(Sandbox(), "--network", other,
                 cmd=["python3", "-c", PROBE, f"{gw_other}:{port}", f"{gw_net}:{port}"])
    finally:
        rs = stop_server(sb, p, out, err)
    assert ri.verdict == "ok" and ro.verdict == "ok", (ri, ro)
    assert json.loads(ri.out) == {t: "closed" for t in targets}, ri.out
    assert json.loads(ro.out) == {f"{gw_other}:{port}": "open", f"{gw_net}:{port}": "open"}, ro.out
    assert rs.verdict == "killed", rs
    for n, pids in ((net, [rs.pid]), (internal, [ri.pid]), (other, [ro.pid])):
        assert_nothing_left(netenv, n, pids)


def test_internal_network_with_allow_peers_lets_peers_talk(netenv, upstream):
    """--internal --allow-peers: the peers reach each other (the bridged
    frames pass the forward chain with br_netfilter, where the internal
    drop used to come before the member's peer rule), and still nothing
    leaves the network."""
    from test_net_sandbox import PROBE, serve_in_sandbox
    name = netenv.create("--internal", "--allow-peers")
    a = Sandbox()
    p, out, err, _, addr = serve_in_sandbox(a, "--network", name)
    try:
        r = run(Sandbox(), "--network", name,
                cmd=["python3", "-c", PROBE, f"{addr}:8000", f"{upstream.addr4}:8080"])
    finally:
        ra = stop_server(a, p, out, err)
    assert r.verdict == "ok", r
    assert json.loads(r.out) == {f"{addr}:8000": "open", f"{upstream.addr4}:8080": "closed"}
    assert ra.verdict == "killed", ra
    assert_nothing_left(netenv, name, [ra.pid, r.pid])


# ---- other ether types -----------------------------------------------------------

# argv: iface then markers; prints each marker seen in a frame on iface
# (any protocol), ends once the last one was seen.
SNIFF = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
s.bind((sys.argv[1], 0))
print("ready", flush=True)
want = [m.encode() for m in sys.argv[2:]]
while True:
    f = s.recv(65535)
    for m in want:
        if m in f:
            print(m.decode(), flush=True)
            if m == want[-1]:
                sys.exit(0)
"""

# argv: iface src_mac dst_mac then "ETHERTYPE_HEX:PAYLOAD" ...: frames as given
# (a payload starting with "vlan" gets an 802.1Q tag 5 and inner type IPv4).
RAW_ETHER = r"""
import socket, struct, sys
iface, smac, dmac = sys.argv[1:4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
hdr = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
for spec in sys.argv[4:]:
    et, payload = spec.split(":", 1)
    body = payload.encode().ljust(46, b"\0")
    if payload.startswith("vlan"):
        s.send(hdr + struct.pack("!HHH", 0x8100, 5, 0x0800) + body)
    else:
        s.send(hdr + struct.pack("!H", int(et, 16)) + body)
"""


def test_no_vlan_or_other_ether_types_reach_a_peer(netenv):
    """On an --allow-peers network (frames do reach peers), member A sends
    an 802.1Q-tagged frame and frames of other ether types (LLDP, IPX,
    0x88b5) to peer B's MAC. B's eth0 sees none of them; an untagged IPv4
    frame sent last arrives (the control)."""
    name = netenv.create("--allow-peers")
    a, b = Sandbox(), Sandbox()
    ap, aout, aerr = a.start("--network", name, cmd=["sleep", "1000"])
    bp, bout, berr = b.start("--network", name, cmd=["sleep", "1001"])
    sniff = None
    try:
        apid = a.workload_pid(cmdline="sleep 1000", timeout=60)
        bpid = b.workload_pid(cmdline="sleep 1001", timeout=60)
        amac, bmac = link_mac("eth0", apid), link_mac("eth0", bpid)
        markers = ["vlanraw", "lldp", "ipx", "local", "control"]
        sniff = subprocess.Popen(["nsenter", "-t", str(bpid), "-n", "python3", "-u", "-c", SNIFF,
                                  "eth0", *markers], stdout=subprocess.PIPE, text=True)
        assert sniff.stdout.readline() == "ready\n"
        na = ["nsenter", "-t", str(apid), "-n"]
        for cmd in (["python3", "-c", RAW_ETHER, "eth0", amac, bmac, "0800:vlanraw",
                     "88cc:lldp", "8137:ipx", "88b5:local"],
                    ["python3", "-c", RAW_UDP, "eth0", amac, bmac, netns_addr4(apid),
                     f"{netns_addr4(bpid)}:9:control"]):
            r = subprocess.run([*na, *cmd], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r
        out, _ = sniff.communicate(timeout=60)
    finally:
        if sniff and sniff.poll() is None:
            sniff.kill()
            sniff.wait()
        ra = stop_server(a, ap, aout, aerr)
        rb = stop_server(b, bp, bout, berr)
    assert out.split() == ["control"], out
    assert ra.verdict == "killed" and rb.verdict == "killed", (ra, rb)
    assert_nothing_left(netenv, name, [ra.pid, rb.pid])
