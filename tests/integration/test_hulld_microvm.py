"""Long-lived microVM sandboxes under hulld (docs/api.md, "microVM
sandboxes"): create, exec, files, pause to disk, resume, delete, and a
paused one surviving a hulld restart. TCG unless HULL_VM_ACCEL says
otherwise; run under `flock /work/wt/vm.lock` (the VM tests are host-wide)."""
import os
import signal
from pathlib import Path

import pytest

from hulldlib import Hulld
from test_vm_lib import ACCEL, qemu_pids, skip_unless_ready


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    skip_unless_ready()
    os.environ["HULL_VM_ACCEL"] = ACCEL
    before = set(qemu_pids())
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--tenant-sandboxes", "4")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme"), "other": h.token("user", "globex")}
    h.start()
    yield h
    if h.proc:
        assert h.stop() == 0, h.log.read_text()
    procs, entries, cgroups = h.leaks()
    assert (procs, entries, cgroups) == ([], [], []), h.log.read_text()
    assert set(qemu_pids()) <= before, "a QEMU was left behind"
    assert not list((Path(h.state) / "microvm").glob("*.snap*"))


def create(d, body=None, who="user"):
    r = d.request("POST", "/v1/sandboxes", dict({"isolation": "microvm"}, **(body or {})),
                  d.tokens[who])
    assert r.status == 201, r
    assert r.json["isolation"] == "microvm" and r.json["state"] == "running"
    return r.json["id"]


def exec_(d, sid, cmd, who="user"):
    return d.request("POST", f"/v1/sandboxes/{sid}/exec",
                     {"cmd": cmd, "limits": {"cpu_time": "20s", "wall_time": "60s"}},
                     d.tokens[who])


def delete(d, sid):
    r = d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"])
    assert r.status == 200 and r.json["state"] == "destroyed", r


def test_create_exec_files_delete(d):
    t = d.tokens["user"]
    sid = create(d)
    r = exec_(d, sid, ["sh", "-c", "uname -r; echo err >&2; exit 3"])
    assert r.status == 200, r
    res = r.json
    assert res["isolation"] == "microvm" and res["sandbox"] == sid
    assert res["verdict"] == "exit_nonzero" and res["exit_code"] == 3
    # Its own kernel: the guest's release, not (necessarily) the host's,
    # and the stderr apart.
    assert res["stdout"].strip() and res["stderr"] == "err\n"
    # State persists between execs (one guest), and files go both ways.
    assert exec_(d, sid, ["sh", "-c", "echo kept > /tmp/state"]).json["verdict"] == "ok"
    assert exec_(d, sid, ["cat", "/tmp/state"]).json["stdout"] == "kept\n"
    data = bytes(range(256)) * 64
    r = d.request("PUT", f"/v1/sandboxes/{sid}/files/dir/blob.bin", data, t, raw=True)
    assert r.status == 200 and r.json["path"] == "/tmp/dir/blob.bin", r
    assert d.request("GET", f"/v1/sandboxes/{sid}/files/dir/blob.bin", token=t).body == data
    r = exec_(d, sid, ["sha256sum", "/tmp/dir/blob.bin"])
    import hashlib
    assert r.json["stdout"].split()[0] == hashlib.sha256(data).hexdigest()
    # A missing command is a result, as at the container level.
    r = exec_(d, sid, ["/no/such/program"])
    assert r.status == 200 and r.json["verdict"] == "internal_error", r
    # Another tenant sees nothing.
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=d.tokens["other"]).status == 404
    assert exec_(d, sid, ["true"], who="other").status == 404
    vm = [p for p in qemu_pids()]
    assert vm, "no QEMU runs for the sandbox"
    delete(d, sid)
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "destroyed"
    assert exec_(d, sid, ["true"]).status == 404
    assert not set(vm) & set(qemu_pids())


def test_refused_by_name(d):
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {"isolation": "microvm",
                                            "limits": {"tmp_size": "10M"}}, t)
    assert r.status == 501 and "limits.tmp_size" in r.json["error"]["message"], r
    sid = create(d)
    try:
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["true"]}, t)
        assert r.status == 501 and "processes" in r.json["error"]["message"], r
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["true"]}, t,
                      headers={"Accept": "application/x-ndjson"})
        assert r.status == 501 and "processes" in r.json["error"]["message"], r
        r = d.request("GET", f"/v1/sandboxes/{sid}/fs/tmp?op=list", token=t)
        assert r.status == 501 and "fs" in r.json["error"]["message"], r
    finally:
        delete(d, sid)


def test_pause_to_disk_and_resume(d):
    t = d.tokens["user"]
    sid = create(d)
    assert exec_(d, sid, ["sh", "-c", "echo before > /tmp/p.txt"]).json["verdict"] == "ok"
    running = set(qemu_pids())
    r = d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t)
    assert r.status == 200 and r.json["state"] == "paused", r
    # On disk: its QEMU is gone, its snapshot is there.
    assert running - set(qemu_pids())
    assert len(list((Path(d.state) / "microvm").glob("*.snap"))) == 1
    assert exec_(d, sid, ["true"]).status == 409
    assert d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t).status == 409
    r = d.request("POST", f"/v1/sandboxes/{sid}/resume", token=t)
    assert r.status == 200 and r.json["state"] == "running", r
    assert exec_(d, sid, ["cat", "/tmp/p.txt"]).json["stdout"] == "before\n"
    assert not list((Path(d.state) / "microvm").glob("*.snap"))
    delete(d, sid)


def test_paused_survives_hulld_restart(d):
    t = d.tokens["user"]
    sid = create(d)
    keep = create(d)  # running: destroyed with hulld, as every live sandbox
    assert exec_(d, sid, ["sh", "-c", "echo survived > /root/r.txt"]).json["verdict"] == "ok"
    assert d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t).status == 200
    assert d.stop() == 0, d.log.read_text()
    assert len(list((Path(d.state) / "microvm").glob("*.snap"))) == 1
    d.start()
    listed = {s["id"]: s["state"] for s in
              d.request("GET", "/v1/sandboxes", token=t).json["sandboxes"]}
    assert listed.get(sid) == "paused", listed
    assert keep not in listed or listed[keep] == "destroyed"
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "paused"
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=d.tokens["other"]).status == 404
    r = d.request("POST", f"/v1/sandboxes/{sid}/resume", token=t)
    assert r.status == 200 and r.json["state"] == "running", r
    assert exec_(d, sid, ["cat", "/root/r.txt"]).json["stdout"] == "survived\n"
    delete(d, sid)


def test_paused_deleted_after_restart_leaves_nothing(d):
    t = d.tokens["user"]
    sid = create(d)
    assert d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t).status == 200
    # A hulld that dies outright: its keepers see it go; the file stays.
    d.kill()
    d.start()
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "paused"
    delete(d, sid)
    assert not list((Path(d.state) / "microvm").glob("*.snap*"))
    # SIGTERM afterwards stops cleanly with nothing left (the fixture checks).
    assert signal.SIGTERM
