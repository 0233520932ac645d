"""hulld and hull's networks: GET /v1/networks lists them; a run or sandbox
request may carry "network" (a name, or {"name", "egress", "publish"});
"network": "host" and a port published beyond the host's loopback need a
grant given to the token (403 naming it otherwise, audited either way).

A real hulld on a tmp socket, with networks in state directories of this
module's own ($HULL_NET_RUN_DIR, $HULL_NET_CONFIG_DIR under the pytest tmp
dir; hulld inherits them), removed afterwards."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, SRC, Hulld, hull_cli, private_net_dirs

sys.path.insert(0, str(SRC / "sdk" / "python"))
import hull  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

GENEROUS = {"cpu_time": "60s", "wall_time": "120s"}
TAG = f"ocid{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def netdirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("netstate")
    with private_net_dirs(base) as made:
        yield made


@pytest.fixture(scope="module")
def d(tmp_path_factory, netdirs):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-runs", "2")
    Path(h.state).mkdir(parents=True)
    h.tokens = {
        "admin": h.token("admin", "ops"),
        "user": h.token("user", "acme"),
        "reader": h.token("reader", "acme"),
        "public": h.token("user", "acme", allow="publish-public"),
        "hostegress": h.token("user", "acme", allow="host-egress"),
    }
    h.netdirs = netdirs
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()


def create_network(d, suffix, *opts):
    name = f"{TAG}-{suffix}"
    r = hull_cli("network", "create", *opts, name)
    assert r.returncode == 0, r
    d.netdirs.append(name)
    return name


def post(d, path, body, who="user"):
    return d.request("POST", path, body, d.tokens[who])


def audit(d):
    return d.request("GET", "/v1/audit", token=d.tokens["admin"]).json["entries"]


def test_networks_are_listed_for_every_role(d):
    r = d.request("GET", "/v1/networks", token=d.tokens["reader"])
    assert r.status == 200, r
    assert r.json == {"networks": [], "default": "hull0"}
    name = create_network(d, "list", "--internal")
    for who in ("reader", "user", "admin"):
        r = d.request("GET", "/v1/networks", token=d.tokens[who])
        assert r.status == 200, r
        nets = {n["name"]: n for n in r.json["networks"]}
        assert name in nets, r.json
        n = nets[name]
        assert n["internal"] is True and n["allow_peers"] is False
        assert n["members"] == 0 and "/" in n["subnet"] and n["gateway"]
    # the same as the CLI says (minus the members, which are other tenants')
    cli = json.loads(hull_cli("network", "inspect", name).stdout)[0]
    assert cli["subnet"] == n["subnet"] and cli["gateway"] == n["gateway"]
    # no token, no list; not writable
    assert d.request("GET", "/v1/networks").status == 401
    r = d.request("POST", "/v1/networks", {"name": "x"}, d.tokens["admin"])
    assert r.status == 405 and r.headers.get("Allow") == "GET", r


def test_publishing_beyond_loopback_needs_a_grant(d):
    name = create_network(d, "pub")
    for pub in ("18080:80", "0.0.0.0:18080:80", "[::]:18080:80/udp"):
        body = {"cmd": ["true"], "limits": GENEROUS,
                "network": {"name": name, "publish": ["127.0.0.1:18081:81", pub]}}
        for who in ("user", "admin"):
            r = post(d, "/v1/runs", body, who)
            assert r.status == 403, (pub, who, r)
            e = r.json["error"]
            assert e["code"] == "forbidden" and e["permission"] == "publish-public", r
            assert e["field"] == "network.publish[1]" and "publish-public" in e["message"], r
        r = post(d, "/v1/sandboxes", {"network": {"name": name, "publish": [pub]}})
        assert r.status == 403 and r.json["error"]["field"] == "network.publish[0]", r
    # the grant is one `hull token` knows and lists
    r = subprocess.run([HULL, "token", "list", "--json", "--state-dir", d.state],
                       capture_output=True, text=True, check=True)
    assert ["publish-public"] in [t["allow"] for t in json.loads(r.stdout)]
    # refused requests are in the audit log as 403s, with no grant used
    refused = [e for e in audit(d) if e["status"] == 403 and e["path"] in ("/v1/runs",
                                                                             "/v1/sandboxes")]
    assert len(refused) >= 9 and all("grants" not in e for e in refused), refused


def test_network_run_on_loopback_publish_and_granted_public(d):
    """Loopback publishing needs nothing; the granted token's run goes
    through and the audit log says which grant it used."""
    name = create_network(d, "run")
    body = {"cmd": ["sh", "-c", "cat /proc/net/dev | cut -d: -f1 | tr -d ' '"],
            "limits": GENEROUS,
            "network": {"name": name, "egress": "none", "publish": ["127.0.0.1:18090:90"]}}
    r = post(d, "/v1/runs", body)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    assert "eth0" in r.json["stdout"].split(), r.json
    body["network"]["publish"] = ["18091:91"]
    r = post(d, "/v1/runs", body, "public")
    assert r.status == 200 and r.json["verdict"] == "ok", r
    rid = r.json["id"]
    used = [e for e in audit(d) if e.get("target") == rid]
    assert used and used[0]["grants"] == "publish-public", used
    # the leases are gone with the runs
    r = d.request("GET", "/v1/networks", token=d.tokens["user"])
    assert {n["name"]: n["members"] for n in r.json["networks"]}[name] == 0


def test_unknown_network_and_bad_fields_are_400(d):
    r = post(d, "/v1/runs", {"cmd": ["true"], "network": {"name": "Bad Name"}})
    assert r.status == 400 and r.json["error"]["field"].startswith("network"), r
    r = post(d, "/v1/runs", {"cmd": ["true"], "network": {"name": "x", "publish": ["nope"]}})
    assert r.status == 400 and "network.publish[0]" in r.json["error"]["message"], r


def test_sdk_lists_networks(d):
    name = create_network(d, "sdk")
    c = hull.Client(socket_path=d.sock, token=d.tokens["reader"])
    nets = {n.name: n for n in c.networks()}
    assert name in nets and nets[name].members == 0 and nets[name].subnet
    assert isinstance(nets[name], hull.NetworkInfo)
    # a run on it through the SDK, publishing on loopback
    u = hull.Client(socket_path=d.sock, token=d.tokens["user"])
    r = u.run(["cat", "/etc/resolv.conf"], limits=GENEROUS,
              network={"name": name, "publish": ["127.0.0.1:18095:95"]})
    assert r.verdict == "ok" and "nameserver" in r.stdout, r
    with pytest.raises(hull.PermissionDenied) as e:
        u.run(["true"], network={"name": name, "publish": ["18095:95"]})
    assert e.value.permission == "publish-public"


def test_long_lived_sandbox_on_a_network(d):
    name = create_network(d, "sbx")
    r = post(d, "/v1/sandboxes", {"network": {"name": name, "egress": "none"}})
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        r = post(d, f"/v1/sandboxes/{sid}/exec", {"cmd": ["cat", "/proc/net/dev"]})
        assert r.status == 200 and r.json["verdict"] == "ok", r
        assert "eth0:" in r.json["stdout"], r.json
        nets = d.request("GET", "/v1/networks", token=d.tokens["user"]).json["networks"]
        assert {n["name"]: n["members"] for n in nets}[name] == 1
    finally:
        r = d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"])
        assert r.status in (200, 204), r
    nets = d.request("GET", "/v1/networks", token=d.tokens["user"]).json["networks"]
    assert {n["name"]: n["members"] for n in nets}[name] == 0


def test_a_run_on_a_missing_network_says_so_for_the_level_asked(d):
    """It ends before its program starts; its result still names the level
    it was asked for, not the zero value's "process"."""
    r = post(d, "/v1/runs", {"cmd": ["true"], "network": "hn-nosuch-net"})
    assert r.status == 200, r
    assert r.json["verdict"] == "internal_error", r
    assert "no such network" in r.json["error"] and r.json["isolation"] == "container", r


def test_egress_to_an_address_of_the_host_needs_a_grant(d):
    """A rule naming the gateway (the host's own address on the bridge)
    opens the host's services there: not for every tenant."""
    name = create_network(d, "hostegress")
    gw = [n for n in d.request("GET", "/v1/networks", token=d.tokens["user"]).json["networks"]
          if n["name"] == name][0]["gateway"]
    probe = ("import socket,sys\n"
             "try:\n  socket.create_connection((sys.argv[1], 9), timeout=3); print('open')\n"
             "except ConnectionRefusedError: print('refused')\n"
             "except OSError: print('closed')\n")
    for egress in (f"all,{gw}:9/tcp", [f"{gw}/32"]):
        body = {"cmd": ["python3", "-c", probe, gw], "limits": GENEROUS,
                "network": {"name": name, "egress": egress}}
        for who in ("user", "admin", "public"):
            r = post(d, "/v1/runs", body, who)
            assert r.status == 403, (egress, who, r)
            e = r.json["error"]
            assert e["code"] == "forbidden" and e["permission"] == "host-egress", r
            assert e["field"].startswith("network.egress"), r
        # granted: the host's port answers (refused: nothing listens on 9)
        r = post(d, "/v1/runs", body, "hostegress")
        assert r.status == 200 and r.json["verdict"] == "ok", r
        assert r.json["stdout"].strip() == "refused", r.json
    # the host's link-local addresses (no scope: not bindable) are the host's too
    for egress in ("fe80::1", ["[fe80::1/128]:22/tcp"]):
        r = post(d, "/v1/runs", {"cmd": ["true"], "network": {"name": name, "egress": egress}})
        assert r.status == 403 and r.json["error"]["permission"] == "host-egress", (egress, r)
    # a range is no grant's business: it does not reach the host (nft.c)
    body["network"]["egress"] = "0.0.0.0/0"
    r = post(d, "/v1/runs", body, "user")
    assert r.status == 200 and r.json["stdout"].strip() == "closed", r.json
