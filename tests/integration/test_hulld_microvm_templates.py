"""Templates of microVM sandboxes (docs/api.md, "Templates"): a prepared
microVM sandbox kept as a template (its VM's snapshot: RAM, so its files
and memory), sandboxes restored from it warm, each its own copy; start and
ready commands through the agent; tenancy, refusals, delete, a hulld
restart. TCG unless HULL_VM_ACCEL says otherwise; run under
`flock /work/wt/vm.lock` (the VM tests are host-wide)."""
import hashlib
import os
import threading
from pathlib import Path

import pytest

from hulldlib import Hulld, wait_until
from test_hulld_microvm import microvm_hulld, vm_qemus

CLONES = 3


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with microvm_hulld(tmp_path_factory, "--tenant-sandboxes", "8") as h:
        yield h
    # Every template was deleted by the tests: no copy is left.
    assert not list((Path(h.state) / "templates").iterdir())


def ram_keepers():
    """Live processes holding a template's shared guest RAM (ramkeeper.c);
    one that exited is gone even before the init that inherited it reaps
    it (it is an orphan by design: it outlives whoever started it)."""
    out = set()
    for p in Path("/proc").iterdir():
        try:
            if not p.name.isdigit() or (p / "comm").read_text().strip() != "hull-ramkeeper":
                continue
            if (p / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.add(int(p.name))
        except OSError:
            pass
    return out


def create(d, body, who="user"):
    r = d.request("POST", "/v1/sandboxes", body, d.tokens[who])
    assert r.status == 201, r
    assert r.json["isolation"] == "microvm" and r.json["state"] == "running", r.json
    return r.json


def exec_(d, sid, cmd, who="user"):
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                  {"cmd": cmd, "limits": {"cpu_time": "30s", "wall_time": "120s"}},
                  d.tokens[who])
    assert r.status == 200, r
    return r.json


def delete(d, sid):
    r = d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"])
    assert r.status == 200 and r.json["state"] == "destroyed", r


def keep(d, sid, name, **extra):
    return d.request("POST", "/v1/templates", dict({"sandbox": sid, "name": name}, **extra),
                     d.tokens["user"])


def prepare(d):
    """A microVM sandbox with prepared files; their digests."""
    sid = create(d, {"isolation": "microvm"})["id"]
    data = os.urandom(1 << 20)
    r = d.request("PUT", f"/v1/sandboxes/{sid}/fs/root/work/data.bin", data, d.tokens["user"],
                  raw=True)
    assert r.status == 201, r
    res = exec_(d, sid, ["sh", "-c", "echo prepared > /tmp/prep.txt && "
                         "printf '#!/bin/sh\\necho script ran\\n' > /root/work/run.sh && "
                         "chmod 0750 /root/work/run.sh"])
    assert res["verdict"] == "ok", res
    return sid, hashlib.sha256(data).hexdigest()


def test_many_from_one(d):
    t = d.tokens["user"]
    sid, digest = prepare(d)
    r = keep(d, sid, "vt", start_cmd=["sh", "-c", "date +%s%N > /tmp/started"],
             ready_cmd=["test", "-s", "/tmp/started"], ready_timeout="5m")
    assert r.status == 201, r
    tpl = r.json
    assert tpl["isolation"] == "microvm" and tpl["source"] == sid, tpl
    assert tpl["bytes"] > 0 and tpl["sandbox"]["isolation"] == "microvm", tpl
    snap = Path(d.state) / "templates" / tpl["id"] / "vm.snap"
    ram = Path(str(snap) + ".ram")
    # The stream, and the guest RAM beside it (holes for zero pages).
    assert snap.stat().st_size + ram.stat().st_blocks * 512 == tpl["bytes"]
    assert ram.stat().st_size >= 128 << 20 and ram.stat().st_uid == 0
    assert sorted(p.name for p in snap.parent.iterdir()) == ["vm.snap", "vm.snap.ram"]
    assert snap.parent.stat().st_mode & 0o777 == 0o700 and snap.stat().st_uid == 0
    # The source goes on running after its snapshot, with its files.
    assert exec_(d, sid, ["cat", "/tmp/prep.txt"])["stdout"] == "prepared\n"
    delete(d, sid)  # the template does not need its source

    before, keepers = set(vm_qemus()), ram_keepers()
    made, errors = [], []

    def one():
        try:
            made.append(create(d, {"template": "vt", "metadata": {"n": "x"}}))
        except AssertionError as e:  # reported below, with the others'
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(CLONES)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(made) == CLONES
    ids = [s["id"] for s in made]
    try:
        # Each its own QEMU, all mapping one copy of the template's RAM,
        # held by one keeper whose socket is beside the RAM file.
        assert len(set(vm_qemus()) - before) == CLONES
        assert len(ram_keepers() - keepers) == 1
        assert len(list(snap.parent.glob("ram-*.sock"))) == 1
        for s in made:
            assert s["template"] == "vt" and s["start_process"].startswith("p-"), s
            sb = s["id"]
            # The prepared files, as they were.
            assert exec_(d, sb, ["cat", "/tmp/prep.txt"])["stdout"] == "prepared\n"
            out = exec_(d, sb, ["sha256sum", "/root/work/data.bin"])["stdout"]
            assert out.split()[0] == digest
            assert exec_(d, sb, ["/root/work/run.sh"])["stdout"] == "script ran\n"
            assert exec_(d, sb, ["stat", "-c", "%a", "/root/work/run.sh"])["stdout"] == "750\n"
            # Its start command ran before the 201 (the ready one saw it).
            assert exec_(d, sb, ["test", "-s", "/tmp/started"])["exit_code"] == 0
            r = d.request("GET", f"/v1/sandboxes/{sb}/processes/{s['start_process']}",
                          token=t)
            assert r.status == 200 and r.json["state"] == "exited", r
            # Each writes its own mark, and changes a prepared file.
            assert exec_(d, sb, ["sh", "-c", f"echo {sb} > /tmp/mine && "
                                 f"echo {sb} >> /tmp/prep.txt"])["verdict"] == "ok"
        for s in made:
            sb = s["id"]
            # Its own copy: only its own mark, only its own change.
            assert exec_(d, sb, ["cat", "/tmp/mine"])["stdout"] == f"{sb}\n"
            assert exec_(d, sb, ["cat", "/tmp/prep.txt"])["stdout"] == f"prepared\n{sb}\n"
    finally:
        for sb in ids:
            delete(d, sb)
    assert wait_until(lambda: not set(vm_qemus()) - before, 60)
    # The RAM's keeper leaves with the last clone.
    assert wait_until(lambda: ram_keepers() <= keepers, 60)
    r = d.request("DELETE", "/v1/templates/vt", token=t)
    assert r.status == 200 and r.json["deleted"] is True, r
    assert not snap.parent.exists()
    r = d.request("POST", "/v1/sandboxes", {"template": "vt"}, t)
    assert r.status == 404, r


def test_tenancy_and_refusals(d):
    t, o = d.tokens["user"], d.tokens["other"]
    sid, _ = prepare(d)
    try:
        # Another tenant can neither keep it nor see or use the template.
        r = d.request("POST", "/v1/templates", {"sandbox": sid, "name": "vx"}, o)
        assert r.status == 404, r
        assert keep(d, sid, "vt2").status == 201
        r = d.request("GET", "/v1/templates", token=t)
        assert [x["isolation"] for x in r.json["templates"] if x["name"] == "vt2"] == ["microvm"]
        assert d.request("GET", "/v1/templates", token=o).json["templates"] == []
        assert d.request("GET", "/v1/templates/vt2", token=o).status == 404
        assert d.request("DELETE", "/v1/templates/vt2", token=o).status == 404
        assert d.request("POST", "/v1/sandboxes", {"template": "vt2"}, o).status == 404
        # A taken name: 409, and nothing more kept.
        assert keep(d, sid, "vt2").status == 409
        # Fields of the template cannot be given beside it.
        r = d.request("POST", "/v1/sandboxes", {"template": "vt2", "limits": {"memory": "1G"}}, t)
        assert r.status == 400 and "limits" in r.json["error"]["message"], r
        # A process running in it holds the agent: refused, by name.
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["sleep", "600"]}, t)
        assert r.status == 201, r
        pid = r.json["id"]
        r = keep(d, sid, "vt3")
        assert r.status == 409 and "process" in r.json["error"]["message"], r
        base = f"/v1/sandboxes/{sid}/processes/{pid}"
        assert d.request("POST", f"{base}/signal", {"signal": "KILL"}, t).status == 200
        assert d.request("POST", f"{base}/wait", {"timeout": "120s"}, t).status == 200
        # A paused one (on disk): refused.
        assert d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t).status == 200
        r = keep(d, sid, "vt3")
        assert r.status == 409 and "paused" in r.json["error"]["message"], r
        assert d.request("POST", f"/v1/sandboxes/{sid}/resume", token=t).status == 200
        # Nothing half-made of the refused ones.
        names = [x["name"] for x in d.request("GET", "/v1/templates", token=t).json["templates"]]
        assert names == ["vt2"], names
        assert len(list((Path(d.state) / "templates").iterdir())) == 1
    finally:
        delete(d, sid)
    assert d.request("DELETE", "/v1/templates/vt2", token=t).status == 200


def test_template_survives_hulld_restart(d):
    t = d.tokens["user"]
    sid, digest = prepare(d)
    assert keep(d, sid, "vr").status == 201
    delete(d, sid)
    assert d.stop() == 0, d.log.read_text()
    d.start()
    assert d.request("GET", "/v1/templates/vr", token=t).json["isolation"] == "microvm"
    sb = create(d, {"template": "vr"})["id"]
    try:
        out = exec_(d, sb, ["sha256sum", "/root/work/data.bin"])["stdout"]
        assert out.split()[0] == digest
        assert exec_(d, sb, ["cat", "/tmp/prep.txt"])["stdout"] == "prepared\n"
        # A sandbox from a template pauses to disk and comes back after a
        # restart like any other, with what it wrote since.
        assert exec_(d, sb, ["sh", "-c", "echo since > /tmp/since"])["verdict"] == "ok"
        assert d.request("POST", f"/v1/sandboxes/{sb}/pause", token=t).status == 200
        assert d.stop() == 0, d.log.read_text()
        d.start()
        r = d.request("POST", f"/v1/sandboxes/{sb}/resume", token=t)
        assert r.status == 200 and r.json["state"] == "running", r
        assert exec_(d, sb, ["cat", "/tmp/since", "/tmp/prep.txt"])["stdout"] == \
            "since\nprepared\n"
    finally:
        delete(d, sb)
    assert d.request("DELETE", "/v1/templates/vr", token=t).status == 200


def test_template_max_bounds_the_snapshot(tmp_path):
    # A hulld of its own whose --template-max is below any VM's snapshot.
    before = set(vm_qemus())
    h = Hulld(tmp_path / "small", "--template-max", "1M")
    Path(h.state).mkdir(parents=True)
    t = h.token("user", "acme")
    h.start()
    try:
        r = h.request("POST", "/v1/sandboxes", {"isolation": "microvm"}, t)
        assert r.status == 201, r
        sid = r.json["id"]
        r = h.request("POST", "/v1/templates", {"sandbox": sid, "name": "big"}, t)
        assert r.status == 413 and "--template-max" in r.json["error"]["message"], r
        assert h.request("GET", "/v1/templates", token=t).json["templates"] == []
        assert not list((Path(h.state) / "templates").iterdir())
        # The source goes on.
        r = h.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["echo", "on"]}, t)
        assert r.status == 200 and r.json["stdout"] == "on\n", r
        assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200
    finally:
        assert h.stop() == 0, h.log.read_text()
    procs, entries, cgroups = h.leaks()
    assert (procs, entries, cgroups) == ([], [], []), h.log.read_text()
    assert wait_until(lambda: set(vm_qemus()) <= before, 60), "a QEMU was left behind"


def test_delete_racing_creates(d):
    # Each create racing the template's delete is whole (201 with the
    # files) or a 404; nothing is left of the template afterwards.
    t = d.tokens["user"]
    sid, digest = prepare(d)
    r = keep(d, sid, "vd")
    assert r.status == 201, r
    copy = Path(d.state) / "templates" / r.json["id"]
    delete(d, sid)
    before = set(vm_qemus())
    got = []

    def make():
        got.append(d.request("POST", "/v1/sandboxes", {"template": "vd"}, t))

    threads = [threading.Thread(target=make) for _ in range(2)]
    for th in threads:
        th.start()
    r = d.request("DELETE", "/v1/templates/vd", token=t)
    for th in threads:
        th.join()
    assert r.status == 200, r
    for r in got:
        assert r.status in (201, 404), r
        if r.status == 201:
            sb = r.json["id"]
            out = exec_(d, sb, ["sha256sum", "/root/work/data.bin"])["stdout"]
            assert out.split()[0] == digest
            delete(d, sb)
    assert not copy.exists()
    assert wait_until(lambda: not set(vm_qemus()) - before, 60)
