"""microVM sandboxes on a hull network under hulld (docs/api.md, "microVM
sandboxes"): the guest gets a TAP and a lease of its own, egress follows
the network's allow-list, and a port of the guest is reached through the
sandbox's port URL with its access token only. The lease, TAP and nft
rules go with the VM: on DELETE, on pause to disk (a resume leases again),
and when hulld dies (SIGKILL) and a new one resumes a paused sandbox.

A real hulld, real QEMU (TCG unless HULL_VM_ACCEL says otherwise), a
network in state directories of this module's own, netlib's test
"internet" (198.18.0.0/15, a namespace on this machine) behind hull's NAT.
Run under `flock /work/wt/vm.lock` (the VM tests are host-wide). No test
compares a time."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from hulldlib import HULL, SRC, hull_cli, private_net_dirs
from netlib import upstream  # noqa: F401 (fixture)
from test_hulld_microvm import microvm_hulld, vm_qemus
from test_hulld_ports import ECHO, fetch, host_port, nft_ruleset, refused

sys.path.insert(0, str(SRC / "sdk" / "python"))
import hull  # noqa: E402

TAG = f"vmn{os.getpid() % 100000}"
LIMITS = {"cpu_time": "60s", "wall_time": "300s"}
FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())\n"
         "except Exception as e:\n"
         "    sys.stderr.write(repr(e)); sys.exit(3)\n")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    if not shutil.which("nft"):
        pytest.skip("nft missing (scripts/deps.sh net)")
    base = tmp_path_factory.mktemp("netstate")
    with private_net_dirs(base) as made:

        def make_network(h):
            h.netbase = base
            h.net = f"{TAG}-net"
            r = hull_cli("network", "create", h.net)
            assert r.returncode == 0, r
            made.append(h.net)

        with microvm_hulld(tmp_path_factory, "--tenant-sandboxes", "6",
                           before_start=make_network) as h:
            yield h
        assert leases(h) == [], "a lease was left behind"


def wait_until(pred, timeout):
    """A hang guard polling at a pace a busy TCG host keeps up with (each
    poll may list nftables or connect to the guest), never a speed check."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.5)
    return pred()


def leases(d):
    p = d.netbase / "run" / "leases"
    return sorted(os.listdir(p)) if p.is_dir() else []


def post(d, path, body=None, who="user"):
    return d.request("POST", path, body, d.tokens[who])


def create(d, body):
    r = post(d, "/v1/sandboxes", dict({"isolation": "microvm"}, **body))
    assert r.status == 201, r
    return r.json


def exec_(d, sid, cmd):
    return post(d, f"/v1/sandboxes/{sid}/exec", {"cmd": cmd, "limits": LIMITS})


def delete(d, sid):
    r = d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"])
    assert r.status == 200 and r.json["state"] == "destroyed", r


def vm_net(d, sid):
    """The network part of the sandbox's VM record (`hull vm list`), found
    by the MAC the guest's card has (asked in the guest)."""
    r = exec_(d, sid, ["ip", "-o", "link", "show", "eth0"])
    assert r.status == 200 and r.json["verdict"] == "ok", r
    mac = r.json["stdout"].split("link/ether ")[1].split()[0]
    r = subprocess.run([HULL, "vm", "list", "--format", "json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    found = [v["network"] for v in json.loads(r.stdout)
             if v["id"].startswith("hulld-") and (v.get("network") or {}).get("mac") == mac]
    assert len(found) == 1, (mac, r.stdout)
    assert found[0]["name"] == d.net, found
    return found[0]


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def net_gone(d, n):
    """Nothing of lease n is left on the host: TAP, lease, nft rule."""
    if link_exists(n["tap"]) or [f for f in leases(d) if n["member"] in f]:
        return False
    rules = nft_ruleset()
    return all(x not in rules for x in (n["tap"], n["mac"], f"{n['ip']} "))


def guest_addrs(d, sid):
    r = exec_(d, sid, ["ip", "-o", "-4", "addr", "show", "eth0"])
    assert r.status == 200 and r.json["verdict"] == "ok", r
    return r.json["stdout"]


def serve(d, sid, port):
    """The echo server on the guest's every address, a background process
    (it holds the guest's agent until killed: no exec meanwhile)."""
    r = post(d, f"/v1/sandboxes/{sid}/processes",
             {"cmd": ["python3", "-c", ECHO, "0.0.0.0", str(port)],
              "limits": {"cpu_time": "1h", "wall_time": "1h"}})
    assert r.status == 201, r
    return r.json["id"]


def stop_serving(d, sid, pid):
    base = f"/v1/sandboxes/{sid}/processes/{pid}"
    r = post(d, f"{base}/signal", {"signal": "KILL"})
    assert r.status == 200 or "has exited" in r.json["error"]["message"], r
    r = post(d, f"{base}/wait", {"timeout": "300s"})
    assert r.status == 200 and r.json["state"] == "exited", r


def served(hport, token):
    """Until the guest's server answers through the proxy (python starting
    under TCG; 502 until then): its status."""
    got = []

    def up():
        try:
            got[:] = [fetch(hport, "/ready", {"X-Hull-Access-Token": token})[0]]
        except OSError:
            return False
        return got[0] == 200
    wait_until(up, 600)
    return got[0] if got else None


def test_port_reached_with_the_token_only(d):
    sb = create(d, {"network": {"name": d.net}, "ports": [8080]})
    sid, token = sb["id"], sb["access_token"]
    hport = host_port(sb["ports"][0]["url"])
    n = vm_net(d, sid)
    assert n["name"] == d.net and n["ip"] and n["mac"], n
    assert link_exists(n["tap"]), "the guest's TAP is not on the host"
    # The guest's card has its lease's address.
    assert f"inet {n['ip']}/{n['prefix']}" in guest_addrs(d, sid)
    # Before anything listens in the guest: 502, the sandbox goes on.
    status, body = fetch(hport, "/", {"X-Hull-Access-Token": token})
    assert status == 502 and b"bad_gateway" in body, body
    pid = serve(d, sid, 8080)
    try:
        assert served(hport, token) == 200
        # Without the token 401, with another one 403; the guest's server
        # never sees it (header and query parameter taken out).
        assert fetch(hport, "/x")[0] == 401
        assert fetch(hport, "/x", {"X-Hull-Access-Token": "0" * 64})[0] == 403
        assert fetch(hport, "/x", {"X-Hull-Access-Token": d.tokens["user"]})[0] == 403
        status, body = fetch(hport, f"/q?token={token}&a=1", {"X-Probe": "yes"})
        assert status == 200, body
        seen = json.loads(body)
        assert seen["path"] == "/q?a=1" and seen["headers"]["x-probe"] == "yes", seen
        assert token not in body.decode()
        status, body = fetch(hport, "/post", {"X-Hull-Access-Token": token}, "POST",
                             "z" * 100000)
        assert status == 200 and json.loads(body)["body"] == "z" * 100000
        # Another tenant cannot see or open its ports.
        assert d.request("GET", f"/v1/sandboxes/{sid}/ports",
                         token=d.tokens["other"]).status == 404
    finally:
        stop_serving(d, sid, pid)
    delete(d, sid)
    assert refused(hport), "the port's listener outlived the sandbox"
    assert wait_until(lambda: net_gone(d, n), 60), (n, leases(d))


def running(d):
    listed = d.request("GET", "/v1/sandboxes", token=d.tokens["user"]).json["sandboxes"]
    return {s["id"] for s in listed if s["state"] == "running"}


def test_refused_by_name_and_nothing_made(d):
    qemus, live = set(vm_qemus()), running(d)
    # Ports need an address: a microVM sandbox without a network has none.
    r = post(d, "/v1/sandboxes", {"isolation": "microvm", "ports": [8080]})
    assert r.status == 409 and r.json["error"]["field"] == "ports", r
    assert "network" in r.json["error"]["message"], r
    r = post(d, "/v1/sandboxes", {"isolation": "microvm",
                                  "network": {"name": d.net, "publish": ["127.0.0.1:18080:80"]}})
    assert r.status == 501 and "network.publish" in r.json["error"]["message"], r
    r = post(d, "/v1/sandboxes", {"isolation": "microvm", "network": f"{TAG}-nosuch"})
    assert r.status in (400, 404) and f"{TAG}-nosuch" in r.json["error"]["message"], r
    assert running(d) == live
    assert wait_until(lambda: set(vm_qemus()) <= qemus, 60), "a refused create left a QEMU"
    assert leases(d) == []


def test_egress_follows_the_networks_allow_list(d, upstream):
    open_port, closed_port = upstream.http_ports
    sb = create(d, {"network": {"name": d.net,
                                "egress": [f"{upstream.addr4}/32:{open_port}/tcp"]}})
    sid = sb["id"]
    n = vm_net(d, sid)
    r = exec_(d, sid, ["python3", "-c", FETCH, upstream.url(open_port)])
    assert r.json["verdict"] == "ok" and r.json["stdout"] == upstream.body(open_port), r
    r = exec_(d, sid, ["python3", "-c", FETCH, upstream.url(closed_port)])
    assert r.json["exit_code"] == 3 and r.json["stdout"] == "", r
    delete(d, sid)
    assert wait_until(lambda: net_gone(d, n), 60), (n, leases(d))


def test_pause_releases_the_lease_and_resume_leases_again(d):
    sb = create(d, {"network": {"name": d.net}, "ports": [8080]})
    sid, token = sb["id"], sb["access_token"]
    hport = host_port(sb["ports"][0]["url"])
    assert exec_(d, sid, ["sh", "-c", "echo kept > /root/k"]).json["verdict"] == "ok"
    n1 = vm_net(d, sid)
    assert post(d, f"/v1/sandboxes/{sid}/pause").status == 200
    # On disk: no QEMU, so no TAP, lease or rule; its port says why.
    assert wait_until(lambda: net_gone(d, n1), 60), (n1, leases(d))
    status, body = fetch(hport, "/", {"X-Hull-Access-Token": token})
    assert status == 502 and b"paused" in body, body
    r = post(d, f"/v1/sandboxes/{sid}/resume")
    assert r.status == 200 and r.json["state"] == "running", r
    assert "access_token" not in r.json  # the same hulld: the same token
    n2 = vm_net(d, sid)
    assert n2["ip"] and link_exists(n2["tap"]), n2
    assert f"inet {n2['ip']}/{n2['prefix']}" in guest_addrs(d, sid)
    assert exec_(d, sid, ["cat", "/root/k"]).json["stdout"] == "kept\n"
    pid = serve(d, sid, 8080)
    try:
        assert served(hport, token) == 200
    finally:
        stop_serving(d, sid, pid)
    delete(d, sid)
    assert wait_until(lambda: net_gone(d, n2), 60), (n2, leases(d))


def test_sigkill_of_hulld_leaves_no_lease_and_a_paused_one_comes_back(d):
    live = create(d, {"network": {"name": d.net}})
    kept = create(d, {"network": {"name": d.net}, "ports": [8080]})
    n_live = vm_net(d, live["id"])
    sid, old_token = kept["id"], kept["access_token"]
    old_port = host_port(kept["ports"][0]["url"])
    assert exec_(d, sid, ["sh", "-c", "echo survived > /root/r"]).json["verdict"] == "ok"
    n_kept = vm_net(d, sid)
    assert post(d, f"/v1/sandboxes/{sid}/pause").status == 200
    d.kill()  # SIGKILL: the keepers see hulld go
    # The running one's VM goes with its keeper, and its lease with it.
    assert wait_until(lambda: net_gone(d, n_live), 120), (n_live, leases(d))
    assert net_gone(d, n_kept)
    assert refused(old_port)
    d.start()
    # Resumed through the SDK: the old token was in the dead hulld's
    # memory; the answer has a new one (shown once), which the SDK keeps.
    sb = hull.Client(socket_path=d.sock, token=d.tokens["user"]).attach(sid)
    info = sb.resume()
    assert info.state == "running", info
    token = info.raw["access_token"]
    assert len(token) == 64 and token != old_token and sb.access_token == token
    assert "access_token" not in d.request("GET", f"/v1/sandboxes/{sid}",
                                           token=d.tokens["user"]).json
    n = vm_net(d, sid)
    assert n["ip"] and link_exists(n["tap"]), n
    assert exec_(d, sid, ["cat", "/root/r"]).json["stdout"] == "survived\n"
    r = post(d, f"/v1/sandboxes/{sid}/ports", {"port": 8080})
    assert r.status == 201, r
    hport = host_port(r.json["url"])
    pid = serve(d, sid, 8080)
    try:
        assert served(hport, token) == 200
        assert fetch(hport, "/x", {"X-Hull-Access-Token": old_token})[0] == 403
    finally:
        stop_serving(d, sid, pid)
    delete(d, sid)
    assert wait_until(lambda: net_gone(d, n), 60), (n, leases(d))
    assert signal.SIGKILL


def test_sandboxes_from_a_template_lease_their_own(d):
    src = create(d, {"network": {"name": d.net}})["id"]
    r = post(d, "/v1/templates", {"sandbox": src, "name": f"{TAG}-tpl"})
    assert r.status == 201, r
    n_src = vm_net(d, src)
    made = []
    try:
        for _ in range(2):
            r = post(d, "/v1/sandboxes", {"template": f"{TAG}-tpl"})
            assert r.status == 201 and r.json["isolation"] == "microvm", r
            sb = r.json
            made.append(sb["id"])
            assert len(sb["access_token"]) == 64
        nets = [vm_net(d, s) for s in made]
        addrs = {n_src["ip"]} | {n["ip"] for n in nets}
        macs = {n_src["mac"]} | {n["mac"] for n in nets}
        assert len(addrs) == 3 and len(macs) == 3, (n_src, nets)
        for s, n in zip(made, nets):
            assert f"inet {n['ip']}/{n['prefix']}" in guest_addrs(d, s)
    finally:
        for s in made + [src]:
            delete(d, s)
        d.request("DELETE", f"/v1/templates/{TAG}-tpl", token=d.tokens["user"])
    for n in [n_src] + nets:
        assert wait_until(lambda: net_gone(d, n), 60), (n, leases(d))
