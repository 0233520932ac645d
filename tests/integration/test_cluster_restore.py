"""hulld --cluster: "restart": "from-snapshot" (docs/cluster.md, "Restart
from a snapshot") with real microVMs under TCG, three nodes each in its own
network namespace sharing a real redis-server and one --cluster-snapshots
directory. Run under `flock /work/wt/vm.lock` (VM tests are host-wide).

- the owning node saves the sandbox's snapshot into the directory and its
  time into the sandbox's record;
- SIGKILL that node: the sandbox comes back on exactly one other node
  (claimed once, restored once), same id, "state": "restored", its node's
  counts moved, its files as of the snapshot, reached through any node;
- a microVM sandbox made without "restart" stays "lost";
- a paused one comes back paused (its file copied once), resumes with its
  files; its old node, restarted, drops the copy it kept on its disk;
- fencing: a node whose hulld was stopped (SIGSTOP) long enough for
  another to restore its sandbox ends its own copy when it continues;
- DELETE leaves no QEMU and no snapshot; the killed node rejoins empty;
  nothing leaks (processes, cgroups, snapshots, namespaces, links)."""
import os
import signal
from pathlib import Path

import pytest

from hulldlib import HULLD, wait_until
from queuelib import REDIS_SERVER, Resp
from test_cluster import NAMES, call, create, delete, nodes_of, running_fleet

pytestmark = [
    pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built"),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed"),
]

EVERY = 2  # --cluster-snapshot-every: short, so the test waits little


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from test_hulld_microvm import vm_qemus
    from test_vm_lib import ACCEL, skip_unless_ready
    skip_unless_ready()
    os.environ["HULL_VM_ACCEL"] = ACCEL
    before = set(vm_qemus())
    tmp = tmp_path_factory.mktemp("fleet")
    snaps = tmp / "snapshots"
    with running_fleet(tmp, lambda name: (
            "--node-down-after", "6", "--node-capacity", "memory=2G,cpus=2,vm-slots=2",
            "--tenant-sandboxes", "8", "--cluster-snapshots", str(snaps),
            "--cluster-snapshot-every", str(EVERY))) as f:
        f["snaps"] = snaps
        nodes = f["nodes"]
        yield f
    for n in nodes.values():
        assert not list((Path(n.state) / "microvm").glob("*.snap*"))
    assert wait_until(lambda: set(vm_qemus()) <= before, 60), "a QEMU was left behind"
    assert not list(snaps.glob("*")), list(snaps.glob("*"))


def vm_exec(c, via, sid, cmd):
    return call(c, via, "POST", f"/v1/sandboxes/{sid}/exec",
                {"cmd": cmd, "limits": {"cpu_time": "20s", "wall_time": "60s"}})


def test_a_killed_nodes_microvm_sandbox_comes_back_from_its_snapshot(fleet):
    from test_hulld_microvm import vm_qemus
    r = Resp(fleet["redis"].port)
    n3 = fleet["nodes"]["n3"]
    made = []
    try:
        keep = create(fleet, "n1", isolation="microvm", restart="from-snapshot",
                      metadata={"app": "counter"}, placement={"node": "n3"})
        made.append(keep["id"])
        plain = create(fleet, "n1", isolation="microvm", placement={"node": "n3"})
        made.append(plain["id"])
        sid = keep["id"]
        assert keep["node"] == "n3" and keep["restart"] == "from-snapshot", keep
        assert "restart" not in plain
        w = vm_exec(fleet, "n2", sid, ["sh", "-c", "echo before > /root/kept; cat /root/kept"])
        assert w.status == 200 and w.json["stdout"] == "before\n", w
        written = int(r("TIME")[0]) * 1000
        # A snapshot taken after the write: its time in the record.
        assert wait_until(lambda: int(r.hash(f"hull:cluster:sbx:{sid}").get("snap_at", 0))
                          > written + 1000, 120, 0.5)
        assert (fleet["snaps"] / f"{sid}.snap").exists()
        assert not (fleet["snaps"] / f"{plain['id']}.snap").exists()
        vms_before = set(vm_qemus())
        n3.kill()  # SIGKILL: no goodbye; its keepers end their VMs
        # Back on exactly one other node, same id, restored.
        def restored():
            g = call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
            return g.status == 200 and g.json.get("state") == "restored" and g
        assert wait_until(restored, 180, 0.5), call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
        g = call(fleet, "n2", "GET", f"/v1/sandboxes/{sid}").json
        assert g["node"] in ("n1", "n2") and g["restored_from"] == "n3", g
        assert g["metadata"] == {"app": "counter"}, g
        rec = r.hash(f"hull:cluster:sbx:{sid}")
        assert rec["node"] == g["node"] and rec["state"] == "restored", rec
        # Its files as of the snapshot, and it works.
        for via in NAMES[:2]:
            x = vm_exec(fleet, via, sid, ["cat", "/root/kept"])
            assert x.status == 200 and x.json["stdout"] == "before\n", x
        # Claimed and restored exactly once, by one node.
        logs = [fleet["nodes"][n].log.read_text() for n in NAMES[:2]]
        assert sum(t.count(f"sandbox {sid}: claimed from down node n3") for t in logs) == 1
        assert sum(t.count(f"sandbox {sid}: restored from node n3") for t in logs) == 1
        counts = nodes_of(fleet)
        assert counts[g["node"]]["vms"] == 1 and counts[g["node"]]["sandboxes"] == 1, counts
        # The one without "restart" stays lost.
        p = call(fleet, "n1", "GET", f"/v1/sandboxes/{plain['id']}")
        assert p.status == 200 and p.json["state"] == "lost" and p.json["node"] == "n3", p
        # One QEMU for it: n3's went with its keeper, the restored one runs.
        assert wait_until(lambda: not (vms_before & set(vm_qemus())), 60)
        # Deleted: its QEMU and its snapshot go.
        delete(fleet, "n1", sid)
        made.remove(sid)
        assert wait_until(lambda: not list(fleet["snaps"].glob(f"{sid}*")), 30)
        assert wait_until(lambda: not set(vm_qemus()) - vms_before, 60)
        delete(fleet, "n2", plain["id"])
        made.remove(plain["id"])
    finally:
        for x in made:
            call(fleet, "n1", "DELETE", f"/v1/sandboxes/{x}")
        r.close()
        if n3.proc is None or n3.proc.poll() is not None:
            n3.start()
    assert wait_until(lambda: nodes_of(fleet)["n3"]["state"] == "up", 60)
    assert nodes_of(fleet)["n3"]["sandboxes"] == 0


def test_a_stopped_node_back_ends_its_own_copy(fleet):
    """Fencing: n3's hulld stopped (SIGSTOP: its keepers and QEMU run on)
    for longer than --node-down-after: another node restores the sandbox
    from its snapshot; n3, continued, ends its own copy at once, so one
    QEMU is left, and it is reached through n3 where it runs now."""
    from test_hulld_microvm import vm_qemus
    r = Resp(fleet["redis"].port)
    n3 = fleet["nodes"]["n3"]
    before = set(vm_qemus())
    sid = None
    stopped = False
    try:
        sid = create(fleet, "n1", isolation="microvm", restart="from-snapshot",
                     placement={"node": "n3"})["id"]
        mine = set(vm_qemus()) - before
        assert len(mine) == 1, mine
        w = vm_exec(fleet, "n2", sid, ["sh", "-c", "echo fenced > /root/f"])
        assert w.status == 200, w
        written = int(r("TIME")[0]) * 1000
        assert wait_until(lambda: int(r.hash(f"hull:cluster:sbx:{sid}").get("snap_at", 0))
                          > written + 1000, 120, 0.5)
        n3.proc.send_signal(signal.SIGSTOP)
        stopped = True

        def restored():
            g = call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
            return g.status == 200 and g.json.get("state") == "restored" and g
        assert wait_until(restored, 180, 0.5), call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
        # Two copies run now: n3's (its hulld stopped) and the restored one.
        assert len(set(vm_qemus()) - before) == 2
        n3.proc.send_signal(signal.SIGCONT)
        stopped = False
        g = call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}").json
        assert g["node"] in ("n1", "n2") and g["restored_from"] == "n3", g
        assert wait_until(lambda: not (mine & set(vm_qemus())), 60, 0.5), "n3's copy runs on"
        assert len(set(vm_qemus()) - before) == 1
        assert f"sandbox {sid}: restored on node {g['node']}" in n3.log.read_text()
        g3 = call(fleet, "n3", "GET", f"/v1/sandboxes/{sid}")
        assert g3.status == 200 and g3.json["node"] == g["node"], g3
        x = vm_exec(fleet, "n3", sid, ["cat", "/root/f"])
        assert x.status == 200 and x.json["stdout"] == "fenced\n", x
        assert r.hash(f"hull:cluster:sbx:{sid}")["node"] == g["node"]
        assert wait_until(lambda: nodes_of(fleet)["n3"]["state"] == "up", 60)
        assert nodes_of(fleet)["n3"]["sandboxes"] == 0
        delete(fleet, "n1", sid)
        sid = None
        assert wait_until(lambda: not list(fleet["snaps"].glob("*")), 30)
        assert wait_until(lambda: not set(vm_qemus()) - before, 60)
    finally:
        if stopped:
            n3.proc.send_signal(signal.SIGCONT)
        if sid:
            call(fleet, "n1", "DELETE", f"/v1/sandboxes/{sid}")
        r.close()
    assert wait_until(lambda: nodes_of(fleet)["n3"]["state"] == "up", 60)


def test_a_paused_sandbox_comes_back_paused(fleet):
    r = Resp(fleet["redis"].port)
    n3 = fleet["nodes"]["n3"]
    sid = None
    try:
        s = create(fleet, "n2", isolation="microvm", restart="from-snapshot",
                   placement={"node": "n3"})
        sid = s["id"]
        w = vm_exec(fleet, "n1", sid, ["sh", "-c", "echo paused-state > /root/p"])
        assert w.status == 200, w
        p = call(fleet, "n1", "POST", f"/v1/sandboxes/{sid}/pause")
        assert p.status == 200 and p.json["state"] == "paused", p
        # Its paused file copied to the shared directory, marked paused.
        assert wait_until(lambda: r.hash(f"hull:cluster:sbx:{sid}").get("paused") == "1",
                          120, 0.5)
        n3.kill()

        def back():
            g = call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
            return g.status == 200 and g.json.get("restored_from") == "n3"
        assert wait_until(back, 180, 0.5), call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}")
        g = call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}").json
        assert g["state"] == "paused" and g["node"] in ("n1", "n2"), g
        x = vm_exec(fleet, "n2", sid, ["true"])
        assert x.status == 409, x  # paused, as it was
        u = call(fleet, "n2", "POST", f"/v1/sandboxes/{sid}/resume")
        assert u.status == 200, u
        assert call(fleet, "n1", "GET", f"/v1/sandboxes/{sid}").json["state"] == "restored"
        x = vm_exec(fleet, "n1", sid, ["cat", "/root/p"])
        assert x.status == 200 and x.json["stdout"] == "paused-state\n", x
        # n3 comes back: it kept the paused sandbox on its disk, but the
        # sandbox lives elsewhere now: its copy goes, requests go there.
        n3.start()
        assert wait_until(lambda: nodes_of(fleet)["n3"]["state"] == "up", 60)
        assert not list((Path(n3.state) / "microvm").glob("*.snap*"))
        g3 = call(fleet, "n3", "GET", f"/v1/sandboxes/{sid}")
        assert g3.status == 200 and g3.json["node"] == g["node"], g3
        assert g3.json["state"] == "restored", g3
        assert "this copy is destroyed" in n3.log.read_text()
        delete(fleet, "n3", sid)
        sid = None
        assert not list(fleet["snaps"].glob("*"))
    finally:
        if sid:
            call(fleet, "n1", "DELETE", f"/v1/sandboxes/{sid}")
        r.close()
        if n3.proc is None or n3.proc.poll() is not None:
            n3.start()
    assert wait_until(lambda: nodes_of(fleet)["n3"]["state"] == "up", 60)
    assert not list(fleet["snaps"].glob("*"))
