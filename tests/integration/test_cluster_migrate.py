"""Moving microVM sandboxes between hull nodes (docs/cluster.md, "Moving
sandboxes", "Draining a node"): three hulld, each in its own network
namespace on a test bridge (test_cluster.py's), sharing a real
redis-server and a cluster secret, under TCG.

- POST /v1/sandboxes/{id}/migrate through a node that does not run it
  (refused while a background process holds the guest's agent): a
  process in the guest keeps counting across the live move (no restart,
  no gap beyond the reported downtime), the guest's files are still there,
  the sandbox's record, node and forwarding follow, nothing stays on the
  source;
- a sandbox on a hull network (the same network on every node) with a
  port moves with its guest's address and MAC; its port URL, now the
  target's, answers with the same access token;
- a move whose target hulld is SIGKILLed half-way leaves the sandbox
  running on its source, and nothing on the target;
- POST /v1/nodes/{name}/drain moves every running microVM sandbox off the
  node (one on a network with a port: its address and port follow), says a container sandbox stays, and placement skips the node;
  `hull cluster drain` reads the same;
- bad requests (fields, nodes, a container sandbox, an unsigned or
  replayed node-to-node request) are refused by name, nothing moved.

Host-wide (QEMU): run under `flock /work/wt/vm.lock`."""
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, wait_until
from queuelib import REDIS_SERVER
from registrylib import make_ca
from test_cluster import NAMES, running_fleet
from test_vm_lib import ACCEL, COUNTER, qemu_pids, skip_unless_ready

pytestmark = [
    pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built"),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed"),
]

# Keeps dirtying 16 MiB of guest memory, so a move has something to chase.
WRITER = (
    "b = bytearray(16 << 20)\n"
    "while True:\n"
    "    for o in range(0, len(b), 4096):\n"
    "        b[o] = (b[o] + 1) & 255\n")


def vm_names():
    """name -> pid of every live QEMU of a hulld microVM sandbox."""
    out = {}
    for pid in qemu_pids():
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        name = argv[argv.index(b"-name") + 1].decode()
        if name.startswith("hull-hulld-"):
            out[name[len("hull-"):]] = pid
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    skip_unless_ready()
    os.environ["HULL_VM_ACCEL"] = ACCEL
    before = set(vm_names())
    staged = set(Path("/run/hull").glob("vmsbx-*"))  # keepers' staging directories
    tmp = tmp_path_factory.mktemp("fleet")
    secret = tmp / "secret"
    secret.write_text("the secret every node of this fleet shares\n")
    secret.chmod(0o600)
    # Each node's hull networks are its own (state directories of its own,
    # bridges in its namespace), with one network of the same name and
    # subnet on every node: a guest moves with its address.
    netdirs = {name: tmp / f"net-{name}" for name in NAMES}
    with running_fleet(tmp, lambda name: (
            "--cluster-secret", str(secret), "--node-down-after", "8", "--node-capacity",
            "memory=2G,cpus=2,vm-slots=3", "--tenant-sandboxes", "8"),
            lambda n1: {"admin": n1.token("admin", "ops"), "secret": secret},
            lambda name: net_env(netdirs[name])) as f:
        nodes = f["nodes"]
        for name in NAMES:
            subprocess.run(["nsenter", f"--net=/run/netns/{f['net'].ns[name][0]}", HULL,
                            "network", "create", "--subnet", MOVE_SUBNET, MOVE_NET], check=True,
                           capture_output=True, env=dict(os.environ, **net_env(netdirs[name])))
        yield f
    for d in netdirs.values():
        leases = d / "run" / "leases"
        assert not (leases.exists() and list(leases.iterdir())), f"leases left in {d}"
    assert wait_until(lambda: set(vm_names()) <= before, 60), "a QEMU was left behind"
    assert set(Path("/run/hull").glob("vmsbx-*")) <= staged, "a staging directory was left"
    for n in nodes.values():
        assert not list((Path(n.state) / "microvm").glob("*.snap*"))
    assert not f["net"].leftovers()


MOVE_NET, MOVE_SUBNET = "mvnet", "10.213.72.0/24"
SERVE = ("import http.server, os\n"
         "os.makedirs('/tmp/www', exist_ok=True)\n"
         "open('/tmp/www/hi', 'w').write('moved-with-its-port\\n')\n"
         "os.chdir('/tmp/www')\n"
         "http.server.ThreadingHTTPServer(('0.0.0.0', 8000),"
         " http.server.SimpleHTTPRequestHandler).serve_forever()\n")


def net_env(d):
    return {"HULL_NET_CONFIG_DIR": str(d / "cfg"), "HULL_NET_RUN_DIR": str(d / "run")}


def port_get(f, node, url, token):
    """GET url (a port URL: 127.0.0.1 of node) with the access token, from
    the node's namespace: the body, or None."""
    code = ("import sys, urllib.request\n"
            "try:\n"
            "    q = urllib.request.Request(sys.argv[1] + 'hi', headers={'X-Hull-Access-Token':"
            " sys.argv[2]})\n"
            "    sys.stdout.write(urllib.request.urlopen(q, timeout=10).read().decode())\n"
            "except Exception as e:\n"
            "    sys.stderr.write(repr(e)); sys.exit(3)\n")
    p = subprocess.run(["nsenter", f"--net=/run/netns/{f['net'].ns[node][0]}", "python3", "-c",
                        code, url, token], capture_output=True, text=True, timeout=60)
    return p.stdout if p.returncode == 0 else None


def call(f, node, method, path, body=None, token=None, **kw):
    return f["nodes"][node].request(method, path, body, token or f["token"], **kw)


def microvm(f, node):
    """A microVM sandbox made through n1, pinned to node: (id, VM name)."""
    seen = set(vm_names())
    r = call(f, "n1", "POST", "/v1/sandboxes",
             {"isolation": "microvm", "placement": {"node": node}, "lifetime": "30m"})
    assert r.status == 201 and r.json["node"] == node, r
    new = set(vm_names()) - seen
    assert len(new) == 1, new
    return r.json["id"], new.pop()


def sh(f, via, sid, script):
    r = call(f, via, "POST", f"/v1/sandboxes/{sid}/exec",
             {"cmd": ["sh", "-c", script], "limits": {"cpu_time": "30s", "wall_time": "120s"}})
    assert r.status == 200 and r.json["verdict"] == "ok", r
    return r.json["stdout"]


def detach(vm, program):
    """A process of the guest that outlives its exec (hulld's API has no
    detached exec for microVMs yet: the VM library's own)."""
    subprocess.run([HULL, "--root", "/run/hull", "vm", "exec", "--detach", vm, "--", "python3",
                    "-c", program], check=True, capture_output=True, timeout=300,
                   env=dict(os.environ, HULL_VM_ACCEL=ACCEL))


def counts(f, via, sid):
    text = sh(f, via, sid, "cat /tmp/count 2>/dev/null; true")
    return [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]


def wait_counting(f, via, sid, more_than):
    end = time.monotonic() + 180
    while time.monotonic() < end:
        c = counts(f, via, sid)
        if c and c[-1][0] > more_than:
            return c
        time.sleep(0.5)
    pytest.fail(f"the counter in {sid} does not advance past {more_than}")


def nodes_of(f):
    r = call(f, "n1", "GET", "/v1/nodes")
    assert r.status == 200, r
    return {n["name"]: n for n in r.json["nodes"]}


def delete(f, via, sid):
    r = call(f, via, "DELETE", f"/v1/sandboxes/{sid}")
    assert r.status == 200, r


def test_a_live_move_keeps_the_guest_counting(fleet):
    f = fleet
    sid, vm = microvm(f, "n1")
    try:
        blob = os.urandom(8192)
        r = call(f, "n2", "PUT", f"/v1/sandboxes/{sid}/files/keep.bin", blob, raw=True)
        assert r.status == 200, r
        detach(vm, COUNTER)
        before = wait_counting(f, "n1", sid, 5)
        # While a background process runs (it holds the guest's agent), the
        # move is refused and the sandbox stays.
        r = call(f, "n1", "POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["sleep", "600"]})
        assert r.status == 201, r
        base = f"/v1/sandboxes/{sid}/processes/{r.json['id']}"
        r = call(f, "n3", "POST", f"/v1/sandboxes/{sid}/migrate", {"to": "n2"})
        assert r.status == 409 and "process" in r.json["error"]["message"], r
        assert call(f, "n1", "POST", f"{base}/signal", {"signal": "KILL"}).status == 200
        r = call(f, "n1", "POST", f"{base}/wait", {"timeout": "120s"})
        assert r.json["state"] == "exited", r
        assert call(f, "n2", "GET", f"/v1/sandboxes/{sid}").json["node"] == "n1"
        # Asked through n3: forwarded to n1, which runs it.
        r = call(f, "n3", "POST", f"/v1/sandboxes/{sid}/migrate", {"to": "n2"})
        assert r.status == 200, (r, f["nodes"]["n1"].log.read_text()[-3000:])
        res = r.json
        assert res["id"] == sid and res["node"] == "n2" and res["from"] == "n1", res
        assert res["mode"] == "live" and res["downtime_ms"] >= 0 and res["bytes"] > 0, res
        assert res["total_ms"] >= res["downtime_ms"], res
        # The nodes have certificates and --cluster-ca: the guest's memory
        # went over TLS, not the secret's plain channel.
        assert res.get("transport") == "tls", res
        print("live move:", json.dumps(res))
        # The source's VM is gone; one new VM runs the guest on n2.
        assert wait_until(lambda: vm not in vm_names(), 60, 0.2)
        # Found from every node, on n2, running.
        for via in NAMES:
            g = call(f, via, "GET", f"/v1/sandboxes/{sid}")
            assert g.status == 200 and g.json["node"] == "n2", g
            assert g.json["state"] == "running", g
        ns = nodes_of(f)
        assert (ns["n1"]["vms"], ns["n2"]["vms"]) == (0, 1), ns
        assert (ns["n1"]["sandboxes"], ns["n2"]["sandboxes"]) == (0, 1), ns
        assert ns["n1"]["reserved_memory"] == 0, ns
        # The very process keeps counting: nothing restarted or skipped, and
        # no pause in the guest beyond what was reported (+ slack: the guest
        # sleeps 100 ms between lines and the host is busy).
        after = wait_counting(f, "n1", sid, before[-1][0] + 10)
        assert after[:len(before)] == before
        ids = [i for i, _ in after]
        assert ids == list(range(1, len(ids) + 1)), "the count restarted or skipped"
        gaps = [b[1] - a[1] for a, b in zip(after, after[1:])]
        assert max(gaps) <= 100 + res["downtime_ms"] + 5000, (max(gaps), res)
        # Its files too.
        r = call(f, "n1", "GET", f"/v1/sandboxes/{sid}/files/keep.bin")
        assert r.status == 200 and r.body == blob, r
        # And it moves back (cold this time, asked with the CLI through
        # Redis of the node running it): the id's old row on n1 is replaced.
        p = subprocess.run([HULL, "vm", "migrate", "--to", "n1", "--mode", "cold",
                            "--cluster", f["redis"].url, sid], capture_output=True, text=True,
                           timeout=900)
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)
        assert res["mode"] == "cold" and res["node"] == "n1" and res["from"] == "n2", res
        assert call(f, "n3", "GET", f"/v1/sandboxes/{sid}").json["node"] == "n1"
        wait_counting(f, "n3", sid, counts(f, "n3", sid)[-1][0] + 3)
        assert call(f, "n3", "GET", f"/v1/sandboxes/{sid}/files/keep.bin").body == blob
    finally:
        delete(f, "n3", sid)
    assert call(f, "n1", "GET", f"/v1/sandboxes/{sid}").json["state"] == "destroyed"
    ns = nodes_of(f)
    assert [ns[n]["vms"] for n in NAMES] == [0, 0, 0], ns


def vm_nets():
    """The network part of every hulld VM's record on this machine."""
    vms = json.loads(subprocess.run([HULL, "--root", "/run/hull", "vm", "list", "--format",
                                     "json"], check=True, capture_output=True).stdout)
    return [v["network"] for v in vms if v.get("network")]


def netbox(f, node):
    """A microVM sandbox on node, on MOVE_NET, whose guest serves port 8000
    (a port of the sandbox): (id, access token, its VM's network record)."""
    seen = set(vm_names())
    r = call(f, "n1", "POST", "/v1/sandboxes",
             {"isolation": "microvm", "placement": {"node": node}, "lifetime": "30m",
              "network": {"name": MOVE_NET}, "ports": [8000]})
    assert r.status == 201 and r.json["node"] == node, r
    sid, token = r.json["id"], r.json["access_token"]
    vm = (set(vm_names()) - seen).pop()
    net = json.loads(subprocess.run([HULL, "--root", "/run/hull", "vm", "state", vm], check=True,
                                    capture_output=True).stdout)["network"]
    assert net["name"] == MOVE_NET and net["ip"].startswith("10.213.72.")
    detach(vm, SERVE)
    url = r.json["ports"][0]["url"]
    assert wait_until(lambda: port_get(f, node, url, token) == "moved-with-its-port\n", 120)
    return sid, token, net


def net_followed(f, sid, token, net, old):
    """sid runs on another node than old with the same address and MAC, and
    its port URL there (the same token) reaches the same server."""
    g = call(f, old, "GET", f"/v1/sandboxes/{sid}")
    assert g.status == 200 and g.json["node"] != old, g
    assert [p["port"] for p in g.json["ports"]] == [8000], g
    assert port_get(f, g.json["node"], g.json["ports"][0]["url"], token) == \
        "moved-with-its-port\n"
    after = [n for n in vm_nets() if n.get("mac") == net["mac"]]
    assert len(after) == 1 and after[0]["ip"] == net["ip"], (net, after)


def test_a_sandbox_with_a_network_and_a_port_moves(fleet):
    """Its guest keeps its address and MAC, and its port URL (now the
    target's, behind the same access token) reaches the server that kept
    running in it."""
    f = fleet
    sid, token, net = netbox(f, "n1")
    url = call(f, "n1", "GET", f"/v1/sandboxes/{sid}").json["ports"][0]["url"]
    try:
        r = call(f, "n3", "POST", f"/v1/sandboxes/{sid}/migrate", {"to": "n2"})
        assert r.status == 200 and r.json["node"] == "n2", (r, f["nodes"]["n1"].log.read_text()[-3000:])
        net_followed(f, sid, token, net, "n1")
        assert port_get(f, "n1", url, token) is None
    finally:
        delete(f, "n1", sid)
    ns = nodes_of(f)
    assert [ns[n]["vms"] for n in NAMES] == [0, 0, 0], ns


def test_a_target_killed_half_way_leaves_it_running_on_the_source(fleet):
    f = fleet
    n3 = f["nodes"]["n3"]
    sid, vm = microvm(f, "n1")
    try:
        detach(vm, COUNTER)
        detach(vm, WRITER)
        before = wait_counting(f, "n1", sid, 3)
        out = {}
        t = threading.Thread(target=lambda: out.update(
            r=call(f, "n2", "POST", f"/v1/sandboxes/{sid}/migrate", {"to": "n3"})))
        t.start()
        # The target's keeper has a QEMU reading the stream (a VM besides
        # the source's): n3's hulld dies now (SIGKILL), before the guest
        # could run there.
        assert wait_until(lambda: set(vm_names()) - {vm} or not t.is_alive(), 120, 0.02)
        assert t.is_alive(), out
        n3.kill()
        t.join(600)
        r = out["r"]
        assert r.status in (409, 502), r
        # Still n1's, running, the same process counting on.
        g = call(f, "n2", "GET", f"/v1/sandboxes/{sid}")
        assert g.status == 200 and g.json["node"] == "n1" and g.json["state"] == "running", g
        after = wait_counting(f, "n1", sid, before[-1][0] + 5)
        assert after[:len(before)] == before
        assert vm in vm_names()
        # Nothing of it on n3: its keeper and half-received VM went.
        assert wait_until(lambda: set(vm_names()) == {vm}, 60, 0.2)
    finally:
        if n3.proc is None:
            n3.start()
        assert wait_until(lambda: nodes_of(f)["n3"]["state"] == "up", 60, 0.5)
        delete(f, "n2", sid)


def test_drain_moves_every_microvm_off_a_node(fleet):
    f = fleet
    a, _ = microvm(f, "n2")
    b, token, net = netbox(f, "n2")  # on a network, with a port: they follow it
    r = call(f, "n1", "POST", "/v1/sandboxes", {"placement": {"node": "n2"}})
    assert r.status == 201, r
    c = r.json["id"]
    ids = [a, b, c]
    try:
        sh(f, "n2", a, "echo kept-a > /tmp/mark")
        # Admins only.
        r = call(f, "n3", "POST", "/v1/nodes/n2/drain")
        assert r.status == 403, r
        r = call(f, "n3", "POST", "/v1/nodes/n2/drain", token=f["admin"])
        assert r.status == 200, r
        rep = r.json
        print("drain:", json.dumps(rep))
        assert rep["node"] == "n2" and rep["state"] == "done", rep
        by = {s["id"]: s for s in rep["sandboxes"]}
        assert sorted(by) == sorted(ids), rep
        for sid in (a, b):
            assert by[sid]["result"] == "moved" and by[sid]["node"] in ("n1", "n3"), rep
            assert by[sid]["downtime_ms"] >= 0
        assert by[c]["result"] == "stays" and "container" in by[c]["reason"], rep
        assert (rep["moved"], rep["stayed"], rep["failed"]) == (2, 1, 0), rep
        ns = nodes_of(f)
        assert ns["n2"]["vms"] == 0 and ns["n2"]["sandboxes"] == 1, ns
        assert ns["n2"]["draining"] == "1", ns
        assert sh(f, "n2", a, "cat /tmp/mark") == "kept-a\n"
        net_followed(f, b, token, net, "n2")
        # Nothing new is placed there.
        r = call(f, "n1", "POST", "/v1/sandboxes", {"placement": {"node": "n2"}})
        assert r.status == 409, r
        r = call(f, "n1", "POST", f"/v1/sandboxes/{a}/migrate", {"to": "n2"})
        assert r.status == 409 and "draining" in r.json["error"]["message"], r
        # The CLI marks and reads the same (nothing left to move).
        p = subprocess.run([HULL, "cluster", "drain", "n2", "--cluster", f["redis"].url,
                            "--json"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        rep = json.loads(p.stdout)
        assert rep["state"] == "done" and rep["moved"] == 0 and rep["stayed"] == 1, rep
        p = subprocess.run([HULL, "cluster", "drain", "n9", "--cluster", f["redis"].url],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "no node named 'n9'" in p.stderr, p.stderr
        r = call(f, "n1", "GET", "/v1/nodes/n2/drain", token=f["admin"])
        assert r.status == 200 and r.json["state"] == "done", r
    finally:
        for sid in ids:
            delete(f, "n1", sid)


def test_bad_moves_are_refused_by_name(fleet):
    f = fleet
    r = call(f, "n1", "POST", "/v1/sandboxes", {"placement": {"node": "n1"}})
    assert r.status == 201, r
    box = r.json["id"]
    try:
        for body, status, field in (
                ({}, 400, "to"),
                ({"to": 3}, 400, "to"),
                ({"to": "bad name"}, 400, "to"),
                ({"to": "n9"}, 400, "to"),
                ({"to": "n1"}, 409, None),
                ({"to": "n3", "mode": "warm"}, 400, "mode"),
                ({"to": "n3", "speed": 1}, 400, "speed"),
                ({"to": "n3"}, 501, None)):
            r = call(f, "n2", "POST", f"/v1/sandboxes/{box}/migrate", body)
            assert r.status == status, (body, r)
            assert r.json["error"].get("field") == field, (body, r)
        assert call(f, "n2", "GET", f"/v1/sandboxes/{box}").json["node"] == "n1"
        assert call(f, "n2", "POST", "/v1/sandboxes/s-nonesuch/migrate",
                    {"to": "n3"}).status == 404
        # The CLI's fleet move, refused by name: the node running it says
        # why (asked through Redis), or the CLI before asking.
        url = f["redis"].url
        env = {k: v for k, v in os.environ.items() if k != "HULL_CLUSTER"}
        for args, rc, message in (
                (["--to", "n3", "--cluster", url, box], 1, "only microVM sandboxes"),
                (["--to", "n3", "--cluster", url, "s-nonesuch"], 1, "not found in the cluster"),
                (["--to", "bad name", "--cluster", url, box], 1, "node name"),
                (["--to", "n3", box], 1, "needs --cluster"),
                (["--to", "n3", "--cluster", url, "--tls-cert", "/x", box], 1, "do not apply")):
            p = subprocess.run([HULL, "vm", "migrate", *args], capture_output=True, text=True,
                               timeout=120, env=env)
            assert p.returncode == rc and message in p.stderr, (args, p.stderr)
            assert p.stderr.startswith("hull: "), p.stderr
    finally:
        delete(f, "n1", box)
    # The node-to-node request: a signature made with the secret, once.
    n2 = f["nodes"]["n2"]
    body = json.dumps({"sandbox": "s-x", "tenant": "acme", "spec": "{}", "key": "-",
                       "lifetime_s": 60}).encode()

    def signed(key, ts=None, to="n2"):
        ts = ts or int(time.time() * 1000)
        msg = f"hull-cluster v2\nn1\n{to}\nPOST\n/v1/cluster/receive\n{ts}\n".encode() + body
        mac = hmac.new(key, msg, hashlib.sha256).hexdigest()
        return {"Authorization": f"HullCluster n1 {ts} {mac}",
                "Content-Type": "application/json"}
    secret = f["secret"].read_text().strip().encode()
    for headers in ({"Content-Type": "application/json"},
                    signed(b"not the secret of this fleet"),
                    signed(secret, int(time.time() * 1000) - 600000)):
        r = n2.request("POST", "/v1/cluster/receive", body, headers=headers, raw=True)
        assert r.status == 401, r
    # A user token is not a node's signature.
    r = n2.request("POST", "/v1/cluster/receive", body, token=f["admin"], raw=True)
    assert r.status == 401, r
    # A request signed for another node is no good here, even fresh and
    # never seen by this one (a copy of what n1 sent to n3).
    r = n2.request("POST", "/v1/cluster/receive", body, headers=signed(secret, to="n3"), raw=True)
    assert r.status == 401, r
    # Signed right (its spec is no sandbox's: refused by the keeper), and
    # the same request again is a replay.
    h = signed(secret)
    r = n2.request("POST", "/v1/cluster/receive", body, headers=h, raw=True)
    assert r.status != 401, r
    r = n2.request("POST", "/v1/cluster/receive", body, headers=h, raw=True)
    assert r.status == 401, r
    # A moved sandbox counts against its tenant's quota on the target
    # (--tenant-sandboxes 8): a tenant at its quota there gets none moved
    # in; one that did not come (the keeper refused its spec) is not
    # counted afterwards.
    # (n3: n2 is draining since the drain test.)
    n3 = f["nodes"]["n3"]
    tok = f["token"]  # tenant acme, with no sandbox left by now
    small = {"placement": {"node": "n3"}, "limits": {"memory": "64M"}}  # 8 fit its memory
    full = []
    try:
        for _ in range(8):
            r = call(f, "n1", "POST", "/v1/sandboxes", small, token=tok)
            assert r.status == 201, r
            full.append(r.json["id"])
        r = n3.request("POST", "/v1/cluster/receive", body, headers=signed(secret, to="n3"),
                       raw=True)
        assert r.status == 409 and b"quota" in r.body, r
        delete(f, "n1", full.pop())
        r = n3.request("POST", "/v1/cluster/receive", body, headers=signed(secret, to="n3"),
                       raw=True)
        assert r.status not in (401, 409), r
        r = call(f, "n1", "POST", "/v1/sandboxes", small, token=tok)
        assert r.status == 201, r
        full.append(r.json["id"])
    finally:
        for sid in full:
            delete(f, "n1", sid)


@pytest.mark.parametrize("mode, message", [
    (0o644, "only its owner may read"),
    (0o600, "must hold 16 to 256 bytes"),
])
def test_a_bad_cluster_secret_stops_hulld(tmp_path, mode, message):
    secret = tmp_path / "secret"
    secret.write_text("short\n" if mode == 0o600 else "long enough to be a secret, but open\n")
    secret.chmod(mode)
    ca, crt, key = make_ca(tmp_path / "tls")
    # Checked before Redis is asked: nothing needs to listen on port 1.
    r = subprocess.run([HULLD, "--socket", str(tmp_path / "s.sock"), "--state-dir",
                        str(tmp_path), "--listen", "127.0.0.1:0", "--tls-cert", str(crt),
                        "--tls-key", str(key), "--cluster", "redis://127.0.0.1:1", "--node", "n1",
                        "--advertise", "127.0.0.1:8443", "--cluster-secret", str(secret)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r
    assert r.stderr.startswith("hulld: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "s.sock").exists()
