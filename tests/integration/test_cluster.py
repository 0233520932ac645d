"""hulld --cluster (docs/cluster.md): three nodes sharing a real
redis-server, each hulld in its own network namespace joined to a test
bridge by a veth pair (addresses from 198.18.0.0/15, nothing leaves the
machine), talking to each other over HTTPS with a test CA.

- every node registers (capacity, labels, accelerator) and beats; GET
  /v1/nodes and `hull cluster nodes` (table, --json) show them up;
- POST /v1/sandboxes on any node places by that node's policy: spread
  (one per node) or binpack (all on one), honours "placement": {"node"} and
  {"labels"}, refuses what cannot be placed (400 / 409, nothing made);
- the prediction: what sandboxes of an image used (EWMA in Redis) is what
  is reserved, not their memory limit, so more of them fit on a node;
- a sandbox is reached from every node (exec, GET, DELETE forwarded), its
  JSON names its node, and a token made on one node works on all (and a
  revoked one on none);
- a SIGKILLed node is down after --node-down-after, its sandbox is "lost"
  from the others, and a restarted node starts clean;
- nothing leaks: processes, sandbox state, cgroups, namespaces, links."""
import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, Hulld, UnixConnection, wait_until
from netlib import BridgedHosts
from queuelib import REDIS_SERVER, RedisServer, Resp
from registrylib import make_ca

pytestmark = [
    pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built"),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed"),
]

NAMES = ("n1", "n2", "n3")
PORT = 8443
DOWN_AFTER = 8  # seconds: generous on a busy machine (beats are every second)


class ClusterRedis(RedisServer):
    """The shared registry: listening on the bridge too."""

    def __init__(self, addr):
        self.addr = addr
        super().__init__()
        self.url = f"redis://{addr}:{self.port}"

    def _start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", self.addr, "--port", str(self.port),
             "--protected-mode", "no", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self._wait_ready():
            return True
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        return False


class Node(Hulld):
    """A hulld in its own network namespace. nsenter, not `ip netns exec`:
    that one also mounts a sysfs of the namespace's own, without the cgroup
    filesystem hulld's sandboxes need. nsenter execs it: the same pid."""

    def __init__(self, tmp, ns, *extra, env=None):
        super().__init__(tmp, *extra)
        self.ns = ns
        self.env = dict(os.environ, **(env or {}))

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.ns}", HULLD, "--socket", self.sock,
                                      "--state-dir", self.state, *self.extra],
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     env=self.env)
        logf.close()
        assert wait_until(lambda: self.ready() or self.proc.poll() is not None, 60)
        assert self.proc.poll() is None, self.log.read_text()
        self.note_helpers()
        return self


@contextlib.contextmanager
def running_fleet(tmp, node_args, tokens=lambda n1: {}, node_env=lambda name: {}):
    """Redis and the three nodes, each hulld in its own namespace with one
    certificate naming every node's address (serverAuth and clientAuth: the
    nodes show it to each other when they move a VM), started with
    node_args(name) on top of the cluster options. Yields {"nodes", "redis",
    "net", "token", "tmp"} plus tokens(n1); node_env(name): more of a node's
    environment (its own hull network state, say). Everything is stopped before any
    complaint: a node that stops badly must not leave Redis, the other nodes
    or the namespaces behind; then nothing of the nodes may be left."""
    net = BridgedHosts(NAMES, prefix="hc")
    redis, nodes = None, {}
    try:
        redis = ClusterRedis(net.host)
        ca, crt, key = make_ca(tmp / "tls", net.ns["n1"][1])
        ext = tmp / "tls" / "all.ext"
        ext.write_text("subjectAltName=" + ",".join(f"IP:{a}" for _, a in net.ns.values()) +
                       "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
        subprocess.run(["openssl", "x509", "-req", "-in", str(tmp / "tls" / "server.csr"), "-CA",
                        str(ca), "-CAkey", str(tmp / "tls" / "ca.key"), "-CAcreateserial",
                        "-out", str(crt), "-days", "2", "-extfile", str(ext)],
                       check=True, capture_output=True)
        for name in NAMES:
            ns, addr = net.ns[name]
            d = tmp / name
            d.mkdir()
            n = Node(d, ns, "--listen", f"{addr}:{PORT}", "--tls-cert", str(crt), "--tls-key",
                     str(key), "--cluster", redis.url, "--node", name, "--advertise",
                     f"{addr}:{PORT}", "--cluster-ca", str(ca), *node_args(name),
                     env=node_env(name))
            Path(n.state).mkdir(parents=True)
            nodes[name] = n
        # A token of n1's store only: the other nodes know it through Redis.
        made = {"nodes": nodes, "redis": redis, "net": net, "tmp": tmp,
                "token": nodes["n1"].token("user", "acme"), **tokens(nodes["n1"])}
        for n in nodes.values():
            n.start()
        yield made
    finally:
        bad = []
        try:
            for n in nodes.values():
                if n.proc and n.stop() != 0:
                    bad.append(n.log.read_text()[-3000:])
        finally:
            if redis:
                redis.stop()
            net.close()
        assert not bad, bad
    for n in nodes.values():
        assert n.leaks() == ([], [], []), n.log.read_text()[-3000:]
    assert not net.leftovers()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    labels = {"n1": "zone=a", "n2": "zone=b", "n3": "zone=a"}
    with running_fleet(tmp_path_factory.mktemp("cluster"),
                       lambda name: ("--node-label", labels[name], "--node-down-after",
                                     str(DOWN_AFTER), "--node-capacity",
                                     "memory=1G,cpus=2,vm-slots=2", "--tenant-sandboxes", "16",
                                     "--placement", "binpack" if name == "n2" else "spread"),
                       lambda n1: {"other": n1.token("user", "globex")}) as c:
        yield c


def call(c, node, method, path, body=None, token=None):
    return c["nodes"][node].request(method, path, body, token or c["token"])


def create(c, via, **body):
    r = call(c, via, "POST", "/v1/sandboxes", body)
    assert r.status == 201, r
    return r.json


def delete(c, via, sid):
    r = call(c, via, "DELETE", f"/v1/sandboxes/{sid}")
    assert r.status == 200, r


def nodes_of(c, via="n1"):
    r = call(c, via, "GET", "/v1/nodes")
    assert r.status == 200, r
    return {n["name"]: n for n in r.json["nodes"]}


def test_every_node_registers_and_shows_the_fleet(cluster):
    for via in NAMES:
        ns = nodes_of(cluster, via)
        assert sorted(ns) == list(NAMES)
        for name, n in ns.items():
            assert n["state"] == "up", n
            assert n["address"] == f"{cluster['net'].ns[name][1]}:{PORT}"
            assert n["memory"] == 1 << 30 and n["cpus"] == 2 and n["vm_slots"] == 2
            assert n["accelerator"] in ("kvm", "tcg")
            assert n["labels"]["zone"] == ("b" if name == "n2" else "a")
            assert n["labels"]["accelerator"] == n["accelerator"]
        assert call(cluster, via, "GET", "/v1/nodes").json["self"] == via
    # The CLI reads the same registry.
    url = cluster["redis"].url
    r = subprocess.run([HULL, "cluster", "nodes", "--cluster", url, "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [n["name"] for n in json.loads(r.stdout)] == list(NAMES)
    r = subprocess.run([HULL, "cluster", "nodes", "--cluster", url], capture_output=True,
                       text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATE"]
    assert [ln.split()[:2] for ln in lines[1:]] == [[n, "up"] for n in NAMES]
    assert "zone=b" in lines[2]
    # Bad use: a message and a non-zero exit.
    r = subprocess.run([HULL, "cluster", "nodes"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "HULL_CLUSTER"})
    assert r.returncode != 0 and "hull: cluster: --cluster" in r.stderr
    r = subprocess.run([HULL, "cluster", "nodes", "--cluster", "redis://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stderr.startswith("hull: cluster nodes")


def test_spread_puts_one_sandbox_on_each_node(cluster):
    made = [create(cluster, "n1") for _ in NAMES]
    try:
        assert sorted(s["node"] for s in made) == list(NAMES)
        ns = nodes_of(cluster)
        assert [ns[n]["sandboxes"] for n in NAMES] == [1, 1, 1]
    finally:
        for s in made:
            delete(cluster, "n1", s["id"])
    assert [nodes_of(cluster)[n]["sandboxes"] for n in NAMES] == [0, 0, 0]


def test_binpack_fills_one_node_first(cluster):
    made = [create(cluster, "n2") for _ in range(3)]
    try:
        assert [s["node"] for s in made] == ["n1"] * 3
    finally:
        for s in made:
            delete(cluster, "n2", s["id"])


def test_pins_and_label_constraints_are_followed(cluster):
    a = create(cluster, "n1", placement={"node": "n3"})
    b = create(cluster, "n1", placement={"labels": {"zone": "b"}})
    acc = nodes_of(cluster)["n1"]["accelerator"]
    c = create(cluster, "n3", placement={"labels": {"accelerator": acc, "zone": "a"}})
    try:
        assert a["node"] == "n3" and b["node"] == "n2" and c["node"] in ("n1", "n3")
        for body, status, field in (
                ({"placement": {"node": "n9"}}, 400, "placement.node"),
                ({"placement": {"node": "bad name"}}, 400, "placement.node"),
                ({"placement": "n1"}, 400, "placement"),
                ({"placement": {"zone": "a"}}, 400, "placement.zone"),
                ({"placement": {"labels": {"zone": 1}}}, 400, "placement.labels"),
                ({"placement": {"labels": {"zone": "nowhere"}}}, 409, None)):
            before = sum(n["sandboxes"] for n in nodes_of(cluster).values())
            r = call(cluster, "n1", "POST", "/v1/sandboxes", body)
            assert r.status == status, (body, r)
            assert r.json["error"].get("field") == field, r
            assert sum(n["sandboxes"] for n in nodes_of(cluster).values()) == before
    finally:
        for s in (a, b, c):
            delete(cluster, "n2", s["id"])


def test_a_sandbox_is_reached_from_every_node(cluster):
    s = create(cluster, "n1", placement={"node": "n2"})
    sid = s["id"]
    try:
        for via in NAMES:
            r = call(cluster, via, "POST", f"/v1/sandboxes/{sid}/exec",
                     {"cmd": ["sh", "-c", f"echo {via} >> /tmp/seen; cat /tmp/seen"]})
            assert r.status == 200, r
            assert r.json["stdout"].split() == list(NAMES[:NAMES.index(via) + 1]), r.json
            g = call(cluster, via, "GET", f"/v1/sandboxes/{sid}")
            assert g.status == 200 and g.json["node"] == "n2" and g.json["state"] == "running", g
            listed = call(cluster, via, "GET", "/v1/sandboxes").json["sandboxes"]
            assert [x["node"] for x in listed if x["id"] == sid] == ["n2"]
        # Files in through one node, out through another; a streamed exec
        # comes back whole.
        blob = bytes(range(256)) * 64
        r = cluster["nodes"]["n3"].request("PUT", f"/v1/sandboxes/{sid}/files/blob", blob,
                                           cluster["token"], raw=True)
        assert r.status == 200, r
        r = call(cluster, "n1", "GET", f"/v1/sandboxes/{sid}/files/blob")
        assert r.status == 200 and r.body == blob, r
        r = cluster["nodes"]["n1"].request("POST", f"/v1/sandboxes/{sid}/exec",
                                           {"cmd": ["sh", "-c", "echo streamed"]},
                                           cluster["token"],
                                           headers={"Accept": "application/x-ndjson"})
        assert r.status == 200 and r.headers["Content-Type"] == "application/x-ndjson", r
        events = [json.loads(line) for line in r.body.splitlines()]
        assert "streamed" in json.dumps(events), events
        # Another tenant's token sees nothing of it, on any node.
        for via in NAMES:
            assert call(cluster, via, "GET", f"/v1/sandboxes/{sid}",
                        token=cluster["other"]).status == 404
            listed = call(cluster, via, "GET", "/v1/sandboxes", token=cluster["other"])
            assert sid not in [x["id"] for x in listed.json["sandboxes"]]
    finally:
        delete(cluster, "n3", sid)
    g = call(cluster, "n2", "GET", f"/v1/sandboxes/{sid}").json
    assert g["state"] == "destroyed" and g["node"] == "n2", g
    assert nodes_of(cluster)["n2"]["sandboxes"] == 0


def test_a_streamed_exec_is_passed_on_as_it_comes(cluster):
    """The forwarding node hands a streamed answer on while it is made: the
    command's first line arrives while the command still waits for a file
    that only a later exec (through a third node) makes."""
    sid = create(cluster, "n1", placement={"node": "n2"})["id"]
    c = UnixConnection(cluster["nodes"]["n1"].sock, timeout=120)  # a hang guard
    try:
        script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"
        c.request("POST", f"/v1/sandboxes/{sid}/exec", body=json.dumps({"cmd": ["sh", "-c", script]}),
                  headers={"Authorization": f"Bearer {cluster['token']}",
                           "Content-Type": "application/json",
                           "Accept": "application/x-ndjson"})
        resp = c.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/x-ndjson"
        seen = []
        while not any(e.get("type") == "stdout" and "first" in e.get("data", "") for e in seen):
            line = resp.readline()
            assert line, seen
            seen.append(json.loads(line))
        assert not any(e.get("type") == "result" for e in seen), seen
        r = call(cluster, "n3", "POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["touch", "/tmp/go"]})
        assert r.status == 200 and r.json["exit_code"] == 0, r
        rest = [json.loads(line) for line in resp.read().splitlines()]
        assert "second" in "".join(e.get("data", "") for e in rest if e.get("type") == "stdout")
        assert rest[-1]["type"] == "result" and rest[-1]["result"]["exit_code"] == 0, rest
    finally:
        c.close()
        delete(cluster, "n3", sid)


def test_a_token_revoked_on_its_node_is_refused_everywhere(cluster):
    n1 = cluster["nodes"]["n1"]
    tok = n1.token("reader", "acme")
    for via in NAMES:
        assert wait_until(lambda: call(cluster, via, "GET", "/v1/nodes", token=tok).status == 200,
                          30)
    tid = subprocess.run([HULL, "token", "list", "--state-dir", n1.state, "--json"],
                         capture_output=True, text=True, check=True)
    tid = [t["id"] for t in json.loads(tid.stdout) if t["role"] == "reader"][-1]
    subprocess.run([HULL, "token", "revoke", "--state-dir", n1.state, tid], check=True,
                   capture_output=True)
    for via in NAMES:
        assert wait_until(lambda: call(cluster, via, "GET", "/v1/nodes", token=tok).status == 401,
                          30)
    bogus = "hull_" + "0" * 64
    assert call(cluster, "n2", "GET", "/v1/nodes", token=bogus).status == 401


def test_a_token_its_node_no_longer_holds_is_refused_everywhere(cluster):
    """A store wiped or restored from an older copy no longer holds a token:
    the node withdraws it from Redis on its next beat, so it stops working
    on every node as on its own. An entry no node of the fleet published
    (an older hull's, or one written by hand) is not taken either."""
    import hashlib
    import sqlite3
    n1 = cluster["nodes"]["n1"]
    tok = n1.token("reader", "acme")
    for via in NAMES:
        assert wait_until(lambda: call(cluster, via, "GET", "/v1/nodes", token=tok).status == 200,
                          30)
    digest = hashlib.sha256(tok.encode()).hexdigest()
    db = sqlite3.connect(os.path.join(n1.state, "hulld.db"), timeout=30)
    try:
        with db:
            assert db.execute("DELETE FROM tokens WHERE hash = ?", (digest,)).rowcount == 1
    finally:
        db.close()
    # (n1 itself keeps what it verified until its revocation file changes;
    # a wiped store comes with a restart.)
    for via in ("n2", "n3"):
        assert wait_until(lambda: call(cluster, via, "GET", "/v1/nodes", token=tok).status == 401,
                          30)
    r = Resp(cluster["redis"].port)
    try:
        forged = "hull_" + "7" * 64
        entry = {"id": "forged", "role": "admin", "tenant": "acme", "created": "", "revoked": "",
                 "allow": ""}
        r("HSET", "hull:cluster:tokens", hashlib.sha256(forged.encode()).hexdigest(),
          json.dumps(entry))
        assert call(cluster, "n2", "GET", "/v1/nodes", token=forged).status == 401
        r("HSET", "hull:cluster:tokens", hashlib.sha256(forged.encode()).hexdigest(),
          json.dumps({**entry, "node": "no-such-node"}))
        assert call(cluster, "n2", "GET", "/v1/nodes", token=forged).status == 401
        r("HDEL", "hull:cluster:tokens", hashlib.sha256(forged.encode()).hexdigest())
    finally:
        r.close()


def test_placement_uses_what_sandboxes_of_an_image_used(cluster):
    r = Resp(cluster["redis"].port)
    try:
        r("DEL", "hull:cluster:predict:acme/-")
        # Nothing learned: a limit no node has room for is refused.
        big = call(cluster, "n1", "POST", "/v1/sandboxes", {"limits": {"memory": "2G"}})
        assert big.status == 409 and big.json["error"]["code"] == "no_capacity", big
        # Nothing learned: a 512 MiB limit reserves 512 MiB; binpack on
        # 1 GiB nodes fits two, not three.
        made = [create(cluster, "n2", limits={"memory": "512M"}) for _ in range(3)]
        try:
            assert sorted(s["node"] for s in made) == ["n1", "n1", "n2"]
            assert nodes_of(cluster)["n1"]["reserved_memory"] == 1 << 30
        finally:
            for s in made:
                delete(cluster, "n1", s["id"])
        # Learned: each used a few MiB (sampled while it ran), the EWMA is
        # far below the limit ...
        learned = r.hash("hull:cluster:predict:acme/-")
        assert int(learned["samples"]) == 3, learned
        assert 0 < int(learned["memory"]) < 128 << 20, learned
        # ... and that is what the next ones reserve: three fit on one node.
        made = [create(cluster, "n2", limits={"memory": "512M"}) for _ in range(3)]
        try:
            assert [s["node"] for s in made] == ["n1"] * 3
            assert nodes_of(cluster)["n1"]["reserved_memory"] == 3 * int(learned["memory"])
        finally:
            for s in made:
                delete(cluster, "n1", s["id"])
    finally:
        r.close()


def test_nodes_register_again_when_redis_lost_everything(cluster):
    s = create(cluster, "n1", placement={"node": "n2"})
    try:
        cluster["redis"].restart()  # no persistence: every key is gone
        # The sandbox keeps working on its own node (n1's token is known
        # there again once n1 published it anew: within a heartbeat).
        assert wait_until(lambda: call(cluster, "n2", "POST", f"/v1/sandboxes/{s['id']}/exec",
                                       {"cmd": ["true"]}).status == 200, 30)

        def back():
            r = call(cluster, "n1", "GET", "/v1/nodes")
            return r.status == 200 and sorted(
                (n["name"], n["state"], n["sandboxes"]) for n in r.json["nodes"]) == [
                    ("n1", "up", 0), ("n2", "up", 1), ("n3", "up", 0)]
        assert wait_until(back, 60)
        # Its record is back too: reached through another node, tokens too.
        assert wait_until(lambda: call(cluster, "n3", "GET",
                                       f"/v1/sandboxes/{s['id']}").status == 200, 30)
        g = call(cluster, "n3", "GET", f"/v1/sandboxes/{s['id']}").json
        assert g["node"] == "n2" and g["state"] == "running", g
    finally:
        delete(cluster, "n2", s["id"])


def test_a_killed_node_goes_down_and_its_sandbox_is_lost(cluster):
    n3 = cluster["nodes"]["n3"]
    s = create(cluster, "n1", placement={"node": "n3"})
    n3.kill()  # SIGKILL: no goodbye to Redis
    assert wait_until(lambda: nodes_of(cluster)["n3"]["state"] == "down", 60)
    assert nodes_of(cluster)["n1"]["state"] == "up"
    g = call(cluster, "n1", "GET", f"/v1/sandboxes/{s['id']}")
    assert g.status == 200 and g.json["state"] == "lost" and g.json["node"] == "n3", g
    listed = call(cluster, "n2", "GET", "/v1/sandboxes").json["sandboxes"]
    assert [x["state"] for x in listed if x["id"] == s["id"]] == ["lost"]
    r = call(cluster, "n2", "POST", f"/v1/sandboxes/{s['id']}/exec", {"cmd": ["true"]})
    assert r.status == 409 and r.json["error"]["code"] == "lost", r
    # Placement skips it; pinning to it is refused.
    made = [create(cluster, "n1") for _ in range(2)]
    try:
        assert sorted(x["node"] for x in made) == ["n1", "n2"]
    finally:
        for x in made:
            delete(cluster, "n1", x["id"])
    r = call(cluster, "n1", "POST", "/v1/sandboxes", {"placement": {"node": "n3"}})
    assert r.status == 409 and "down" in r.json["error"]["message"], r
    # A lost sandbox can be forgotten.
    delete(cluster, "n2", s["id"])
    assert call(cluster, "n1", "GET", f"/v1/sandboxes/{s['id']}").status == 404
    # Back: it cleans what its killed self left and is up again.
    n3.start()
    assert wait_until(lambda: nodes_of(cluster)["n3"]["state"] == "up", 60)
    assert nodes_of(cluster)["n3"]["sandboxes"] == 0
    x = create(cluster, "n2", placement={"node": "n3"})
    delete(cluster, "n1", x["id"])


@pytest.mark.parametrize("args, message", [
    (["--cluster", "redis://127.0.0.1:1"], "--cluster: needs --node NAME, --listen"),
    (["--node", "n1"], "only with --cluster"),
    (["--cluster", "redis://127.0.0.1:1", "--node", "a b", "--listen", "127.0.0.1:1",
      "--advertise", "127.0.0.1:1", "--tls-cert", "x", "--tls-key", "x"], "--node: node name"),
    (["--cluster", "redis://127.0.0.1:1", "--node", "n1", "--listen", "127.0.0.1:1",
      "--advertise", "127.0.0.1:1", "--tls-cert", "x", "--tls-key", "x", "--placement", "random"],
     "--placement: must be spread or binpack"),
    (["--node-label", "novalue"], "--node-label novalue: must be KEY=VALUE"),
    (["--node-down-after", "0"], "--node-down-after: '0' is not a number from 1 to 3600"),
])
def test_bad_cluster_options_are_refused(tmp_path, args, message):
    r = subprocess.run([HULLD, "--socket", str(tmp_path / "s.sock"), "--state-dir",
                        str(tmp_path), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.startswith("hulld: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "s.sock").exists()


@pytest.mark.parametrize("extra, message", [
    ([], "--cluster: redis redis://127.0.0.1:1"),  # nothing listens on port 1
    (["--node-capacity", "memory=lots"], "--node-capacity: 'memory': must be"),
    (["--node-capacity", "gpus=2"], "--node-capacity: unknown 'gpus'"),
])
def test_a_node_that_cannot_join_does_not_start(tmp_path, extra, message):
    ca, crt, key = make_ca(tmp_path / "tls")
    r = subprocess.run([HULLD, "--socket", str(tmp_path / "s.sock"), "--state-dir",
                        str(tmp_path), "--listen", "127.0.0.1:0", "--tls-cert", str(crt),
                        "--tls-key", str(key), "--cluster", "redis://127.0.0.1:1", "--node", "n1",
                        "--advertise", "127.0.0.1:8443", *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r
    assert r.stderr.startswith("hulld: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "s.sock").exists()
