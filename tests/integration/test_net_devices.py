"""OCI linux.netDevices (runtime-spec 1.2): a host interface named in the
config is moved into the container's network namespace at create (renamed
if asked, up, its permanent global addresses kept) and, as issue 12 asks,
back to the host under its own name with its addresses at delete, however
the container ended. Bad configs fail before anything moves.

Interfaces are veth ends (this kernel has no dummy driver) made by each
test with names carrying the session token's digits, removed afterwards;
the container's side is read from the host with nsenter (the host's ip,
not busybox's).
"""
import json
import os
import subprocess

import pytest

from conftest import pid_alive, reap_orphans, wait_until
from rt4 import TOKEN, assert_error, assert_nothing_left, cid, running

SUFFIX = "".join(ch for ch in TOKEN if ch.isalnum())[-6:]


def ifname(stem):
    return f"{stem}{SUFFIX}"[:14]


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def links(pid=None):
    """{name: link json} on the host, or in pid's network namespace."""
    cmd = ["ip", "-j", "addr", "show"]
    if pid:
        cmd = ["nsenter", "-t", str(pid), "-n", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {l["ifname"]: l for l in json.loads(out)}


def addrs(link):
    return sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                  if a.get("scope") == "global")


@pytest.fixture
def dummy():
    """An interface to move: this kernel has no dummy driver, so one end of
    a veth pair (its peer, "<name>p", stays on the host), up, with an IPv4
    and an IPv6 address. A veth end left in a dying namespace is destroyed
    with it, so finding it back on the host shows it was moved back.
    Removed after the test wherever it is."""
    made = []

    def make(stem="hd", up=True):
        name = ifname(stem)
        ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
        made.append(name)
        ip("addr", "add", "198.18.200.1/24", "dev", name)
        ip("addr", "add", "fd00:4855:4c4c::1/64", "dev", name, "nodad")
        if up:
            ip("link", "set", name, "up")
            ip("link", "set", name + "p", "up")
        return name

    yield make
    for name in made:
        ip("link", "del", name + "p", check=False)


def kill_and_reap(hull, c, pid):
    if hull("kill", "--all", c, "KILL").returncode == 0:
        wait_until(lambda: reap_orphans() or not pid_alive(pid), timeout=10)


def test_device_moves_in_renamed_and_comes_back(hull, bundle, tmp_path, dummy):
    name = dummy()
    bundle.config["ociVersion"] = "1.2.0"
    bundle.linux["netDevices"] = {name: {"name": "eth1"}}
    with running(hull, bundle) as (c, pid):
        inside = links(pid)
        assert "eth1" in inside, inside
        eth1 = inside["eth1"]
        # runtime-spec: up, permanent global addresses of every family kept
        assert "UP" in eth1["flags"], eth1
        assert addrs(eth1) == ["198.18.200.1/24", "fd00:4855:4c4c::1/64"], eth1
        assert name not in links(), "still on the host while the container lives"
        # the container itself sees it (busybox's view of /sys)
        r = hull("exec", c, "cat", "/sys/class/net/eth1/operstate")
        assert r.returncode == 0, r
        kill_and_reap(hull, c, pid)
        # the init is gone, the namespace is held: still there until delete
        assert name not in links()
        r = hull("delete", c)
        assert r.returncode == 0, r
        back = links()
        assert name in back, "not back on the host after delete"
        assert addrs(back[name]) == ["198.18.200.1/24", "fd00:4855:4c4c::1/64"], back[name]
        assert "UP" in back[name]["flags"]
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_device_keeps_its_name_and_comes_back_after_delete_force(hull, bundle, tmp_path, dummy):
    name = dummy()
    bundle.linux["netDevices"] = {name: {}}
    bundle.set_args("sleep", "1000").write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert r.returncode == 0, r
    try:
        pid = hull.state(c)["pid"]
        assert name in links(pid)
        assert name not in links()
    finally:
        r = hull("delete", "--force", c)
    assert r.returncode == 0, r
    assert name in links()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_run_moves_back_when_the_program_exits(hull, bundle, tmp_path, dummy):
    """hull run: the program ends on its own, the namespace would die with
    it; the device is back on the host when run returns."""
    name = dummy()
    bundle.linux["netDevices"] = {name: {"name": "net0"}}
    bundle.set_args("cat", "/sys/class/net/net0/address").write()
    r = hull("run", "--bundle", str(bundle.path), cid("r1"))
    assert r.returncode == 0, r
    assert r.stdout.strip() == links()[name]["address"]
    assert addrs(links()[name]) == ["198.18.200.1/24", "fd00:4855:4c4c::1/64"]
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_template_name_is_resolved_by_the_kernel(hull, bundle, tmp_path, dummy):
    name = dummy()
    bundle.linux["netDevices"] = {name: {"name": "hx%d"}}
    with running(hull, bundle) as (c, pid):
        inside = [n for n in links(pid) if n.startswith("hx")]
        assert inside == ["hx0"], links(pid)
    assert name in links()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_veth_end_moves_and_the_pair_survives(hull, bundle, tmp_path):
    """A veth would be destroyed with the namespace; brought back, the pair
    still works from the host."""
    a, b = ifname("hva"), ifname("hvb")
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        ip("addr", "add", "198.18.201.2/24", "dev", b)
        ip("link", "set", a, "up")
        ip("link", "set", b, "up")
        bundle.linux["netDevices"] = {b: {"name": "eth0"}}
        with running(hull, bundle) as (c, pid):
            assert addrs(links(pid)["eth0"]) == ["198.18.201.2/24"]
        assert b in links() and a in links()
        assert addrs(links()[b]) == ["198.18.201.2/24"]
    finally:
        ip("link", "del", a, check=False)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_two_devices_and_one_missing_moves_nothing(hull, bundle, tmp_path, dummy):
    name = dummy()
    missing = ifname("hnone")
    bundle.linux["netDevices"] = {name: {}, missing: {}}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", f"linux.netDevices: no interface '{missing}' on the host")
    assert r.stderr.count("\n") == 1, r.stderr
    assert name in links()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_name_taken_inside_fails_and_puts_back_what_moved(hull, bundle, tmp_path, dummy):
    """The second device wants 'lo', which the new namespace has: create
    fails with the kernel's reason and the first device is home again."""
    first, second = dummy("hda"), dummy("hdb")
    bundle.linux["netDevices"] = {first: {"name": "eth0"}, second: {"name": "lo"}}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", f"linux.netDevices: {second}:", "'lo'")
    here = links()
    assert first in here and second in here, here
    assert addrs(here[first]) == ["198.18.200.1/24", "fd00:4855:4c4c::1/64"]
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("devices, fragment", [
    ({"bad/name": {}}, "'bad/name' is not an interface name"),
    ({"a" * 16: {}}, "is not an interface name"),
    ({"eth%d": {}}, "'eth%d' is not an interface name"),
    ({"dummyx": {"name": "has space"}}, "linux.netDevices.dummyx.name: 'has space'"),
    ({"dummyx": {"name": "a%db%d"}}, "is not an interface name"),
    ({"dummyx": {"name": 3}}, "linux.netDevices.dummyx.name"),
    ({"dummyx": "eth1"}, "linux.netDevices.dummyx"),
    ({"dx1": {"name": "e1"}, "dx2": {"name": "e1"}}, "would both be 'e1'"),
])
def test_bad_config_is_refused(hull, bundle, tmp_path, devices, fragment):
    bundle.linux["netDevices"] = devices
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", "config.json:", fragment)
    assert r.stderr.count("\n") == 1, r.stderr
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_without_a_network_namespace_is_refused(hull, bundle, tmp_path, dummy):
    """Sharing the host's network, there is nowhere to move it to."""
    name = dummy()
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                  if n["type"] != "network"]
    bundle.linux["netDevices"] = {name: {}}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", "linux.netDevices: needs a network namespace")
    assert name in links()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_joined_namespace_gets_the_device_and_gives_it_back(hull, bundle, tmp_path, dummy):
    """linux.namespaces network with a path (an `ip netns`): moved into that
    one; at delete it comes back and the namespace stays its owner's."""
    name = dummy()
    ns = f"hullnd{SUFFIX}"
    ip("netns", "add", ns)
    try:
        for n in bundle.linux["namespaces"]:
            if n["type"] == "network":
                n["path"] = f"/run/netns/{ns}"
        bundle.linux["netDevices"] = {name: {"name": "eth5"}}
        with running(hull, bundle) as (c, pid):
            r = ip("-n", ns, "-j", "addr", "show", "eth5")
            assert addrs(json.loads(r.stdout)[0]) == ["198.18.200.1/24", "fd00:4855:4c4c::1/64"]
        assert name in links()
        assert ip("-n", ns, "link", "show", "eth5", check=False).returncode != 0
    finally:
        ip("netns", "del", ns, check=False)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_features_say_net_devices_are_supported(hull):
    r = hull("features")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["linux"]["netDevices"] == {"enabled": True}
