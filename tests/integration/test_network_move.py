"""A member moving in from another host (a migrated microVM, docs/vm.md
"Migration"): the attach request carries the lease the member had
("want": MAC, addresses, subnet and gateway) and gets exactly it, or is
refused by name with nothing made. And every bridge's MAC is derived from
the network's name and subnet, so the same network has the same gateway
MAC on every host (docs/network.md, "Bridges and sysctls").

No VM here (nettool attaches a TAP member through the library's client,
as the VM library does): the VM-level move is test_vm_migrate_net.py."""
import json

from netlib import sh
from test_network_cli import assert_member_gone, net, nft  # noqa: F401 (fixture)


def bridge_mac(name, subnet):
    """docs/network.md's derivation: FNV-1a 64 of "hull-bridge NAME SUBNET",
    the low five bytes after 02."""
    h = 14695981039346656037
    for b in f"hull-bridge {name} {subnet}".encode():
        h = ((h ^ b) * 1099511628211) & (2**64 - 1)
    return "02:" + ":".join(f"{(h >> s) & 0xff:02x}" for s in (32, 24, 16, 8, 0))


def link_mac(ifname):
    return open(f"/sys/class/net/{ifname}/address").read().strip()


def want(ip4, mac="02:aa:bb:cc:dd:07", prefix4=24, gw4="10.213.61.1", **kw):
    w = {"mac": mac, "ip4": ip4, "prefix4": prefix4, "gw4": gw4}
    w.update(kw)
    return json.dumps(w)


def test_bridge_mac_is_derived_from_name_and_subnet(net):
    d = net.create("nc-mac", "--subnet", "10.213.60.0/24")
    mac = link_mac(d["bridge"])
    assert mac == bridge_mac("nc-mac", "10.213.60.0/24")
    assert int(mac[:2], 16) & 3 == 2, "locally administered, unicast"
    # Made again (here as on any other host): the same gateway MAC.
    net.hull("remove", "nc-mac", check=True)
    d = net.create("nc-mac", "--subnet", "10.213.60.0/24")
    assert link_mac(d["bridge"]) == mac
    # Another subnet of the same name is another gateway.
    net.hull("remove", "nc-mac", check=True)
    d = net.create("nc-mac", "--subnet", "10.213.59.0/24")
    assert link_mac(d["bridge"]) == bridge_mac("nc-mac", "10.213.59.0/24") != mac


def test_a_member_moving_in_gets_exactly_its_lease(net):
    net.create("nc-mv", "--subnet", "10.213.61.0/24")
    p, lease = net.attach("nc-mv", None, "--want", want("10.213.61.7", mac="02:AA:BB:CC:DD:07"))
    assert lease["ip4"] == "10.213.61.7" and lease["mac"] == "02:aa:bb:cc:dd:07"
    assert lease["gw4"] == "10.213.61.1" and lease["prefix4"] == 24
    # The bridge's anti-spoofing rules hold it to that MAC and address.
    bridge = nft("bridge")
    assert "02:aa:bb:cc:dd:07" in bridge and "10.213.61.7" in bridge
    # A new member (no want) still gets the lowest free address, not .7.
    q, other = net.attach("nc-mv", None)
    assert other["ip4"] == "10.213.61.2" and other["mac"] != lease["mac"]
    net.detach(q)
    net.detach(p)
    assert_member_gone(net, lease)


def test_a_member_moving_in_is_refused_by_name_and_nothing_made(net):
    net.create("nc-mv2", "--subnet", "10.213.62.0/24")
    held, lease = net.attach("nc-mv2", None, "--want",
                             want("10.213.62.9", mac="02:aa:bb:cc:dd:09", gw4="10.213.62.1"))
    before = net.leases()
    cases = [
        # taken: the address, the MAC
        (want("10.213.62.9", mac="02:aa:bb:cc:dd:0a", gw4="10.213.62.1"),
         "10.213.62.9 is taken on network nc-mv2 (by member"),
        (want("10.213.62.10", mac="02:aa:bb:cc:dd:09", gw4="10.213.62.1"),
         "02:aa:bb:cc:dd:09 is taken on network nc-mv2"),
        # another subnet, another gateway, another prefix
        (want("10.213.61.9"), "the subnet differs"),
        (want("10.213.62.10", gw4="10.213.62.254"), "the subnet differs"),
        (want("10.213.62.10", prefix4=16, gw4="10.213.62.1"), "the subnet differs"),
        # not a member address of the subnet: the gateway, the broadcast
        (want("10.213.62.1", gw4="10.213.62.1"), "address 10.213.62.1: not a member address"),
        (want("10.213.62.255", gw4="10.213.62.1"), "not a member address"),
        # IPv6 where the network has none
        (want("10.213.62.10", gw4="10.213.62.1", ip6="fd00::a", prefix6=64, gw6="fd00::1"),
         "network nc-mv2 here has no IPv6 and the member has one"),
        # not a unicast MAC
        (want("10.213.62.10", mac="03:00:00:00:00:01", gw4="10.213.62.1"), "not a unicast MAC"),
    ]
    for w, why in cases:
        p, err = net.attach("nc-mv2", None, "--want", w, expect_ok=False)
        assert p.returncode == 1 and why in err, (w, err)
        assert net.leases() == before, w
    # A network this host does not have is never made for it, not even hull0.
    for name in ("nc-elsewhere", "hull0"):
        p, err = net.attach(name, None, "--want", want("10.213.62.10"), expect_ok=False)
        assert p.returncode == 1 and "no such network on this host" in err, err
        assert name not in net.hull("list", "-q").stdout
    net.detach(held)
    assert_member_gone(net, lease)
    assert sh("ip", "-o", "link", "show", "type", "tun").stdout.count(lease["host_ifname"]) == 0


def test_a_member_moving_in_keeps_its_ipv6_address(net):
    net.create("nc-mv6", "--subnet", "10.213.63.0/24", "--ipv6", "fd5c:63::/64")
    w = want("10.213.63.5", mac="02:aa:bb:cc:dd:05", gw4="10.213.63.1", ip6="fd5c:63::5",
             prefix6=64, gw6="fd5c:63::1")
    p, lease = net.attach("nc-mv6", None, "--want", w)
    assert (lease["ip4"], lease["ip6"], lease["prefix6"]) == ("10.213.63.5", "fd5c:63::5", 64)
    assert "fd5c:63::5" in nft("bridge")
    # Without IPv6 where the network has it, another IPv6 gateway, taken.
    for w2, why in [(want("10.213.63.6", gw4="10.213.63.1"), "has an IPv6 and the member has none"),
                    (want("10.213.63.6", gw4="10.213.63.1", ip6="fd5c:63::6", prefix6=64,
                          gw6="fd5c:63::fe"), "the subnet differs"),
                    (want("10.213.63.6", mac="02:aa:bb:cc:dd:06", gw4="10.213.63.1",
                          ip6="fd5c:63::5", prefix6=64, gw6="fd5c:63::1"),
                     "fd5c:63::5 is taken")]:
        q, err = net.attach("nc-mv6", None, "--want", w2, expect_ok=False)
        assert q.returncode == 1 and why in err, (w2, err)
    net.detach(p)
    assert_member_gone(net, lease)


def test_an_older_random_bridge_mac_is_replaced_while_the_network_is_empty(net):
    d = net.create("nc-old", "--subnet", "10.213.64.0/24")
    br, old = d["bridge"], "02:11:22:33:44:55"
    sh("ip", "link", "set", br, "address", old)  # as an older hull made it
    p, lease = net.attach("nc-old", None)
    assert link_mac(br) == bridge_mac("nc-old", "10.213.64.0/24")
    # With a member on it (its neighbour entry for the gateway), never.
    sh("ip", "link", "set", br, "address", old)
    q, other = net.attach("nc-old", None)
    assert link_mac(br) == old
    net.detach(q)
    net.detach(p)
