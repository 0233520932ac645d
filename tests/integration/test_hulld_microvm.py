"""Long-lived microVM sandboxes under hulld (docs/api.md, "microVM
sandboxes"): create, exec, files, pause to disk, resume, delete, and a
paused one surviving a hulld restart. TCG unless HULL_VM_ACCEL says
otherwise; run under `flock /work/wt/vm.lock` (the VM tests are host-wide)."""
import contextlib
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from hulldlib import MiB, Hulld, UnixConnection, alive, children, put_stream, wait_until
from test_vm_lib import ACCEL, qemu_pids, skip_unless_ready


@contextlib.contextmanager
def microvm_hulld(tmp_path_factory, *args, before_start=None):
    """A hulld for microVM sandboxes with tokens "user" and "other"
    (before_start(h) may prepare more); afterwards it is stopped, and
    nothing of its sandboxes may be left: helper processes, sandbox state,
    cgroups, QEMUs, snapshots. Shared by the microVM test files."""
    skip_unless_ready()
    os.environ["HULL_VM_ACCEL"] = ACCEL
    before = set(vm_qemus())
    h = Hulld(tmp_path_factory.mktemp("hulld"), *args)
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme"), "other": h.token("user", "globex")}
    if before_start:
        before_start(h)
    h.start()
    yield h
    if h.proc:
        assert h.stop() == 0, h.log.read_text()
    procs, entries, cgroups = h.leaks()
    assert (procs, entries, cgroups) == ([], [], []), h.log.read_text()
    assert set(vm_qemus()) <= before, "a QEMU was left behind"
    assert not list((Path(h.state) / "microvm").glob("*.snap*"))


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with microvm_hulld(tmp_path_factory, "--tenant-sandboxes", "4") as h:
        yield h


def vm_qemus():
    """QEMUs of hulld's microVM sandboxes (their VMs are named hulld-...)."""
    out = []
    for pid in qemu_pids():
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[argv.index(b"-name") + 1].startswith(b"hull-hulld-"):
            out.append(pid)
    return out


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
    assert r.status == 200 and (r.json["verdict"], r.json["exit_code"]) == ("bad_command", 127), r
    # Another tenant sees nothing.
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=d.tokens["other"]).status == 404
    assert exec_(d, sid, ["true"], who="other").status == 404
    vm = vm_qemus()
    assert vm, "no QEMU runs for the sandbox"
    delete(d, sid)
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "destroyed"
    assert exec_(d, sid, ["true"]).status == 404
    assert wait_until(lambda: not set(vm) & set(vm_qemus()), 30)


def test_refused_by_name(d):
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {"isolation": "microvm",
                                            "limits": {"tmp_size": "10M"}}, t)
    assert r.status == 501 and "limits.tmp_size" in r.json["error"]["message"], r
    # PTY processes and op=watch: test_hulld_microvm_sessions.py.


def stream_lines(d, method, path, body):
    c = UnixConnection(d.sock, timeout=300)
    c.request(method, path, body=json.dumps(body),
              headers={"Authorization": f"Bearer {d.tokens['user']}",
                       "Content-Type": "application/json",
                       "Accept": "application/x-ndjson"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    assert r.getheader("Content-Type") == "application/x-ndjson"
    out = [json.loads(line) for line in r.read().splitlines()]
    c.close()
    return out


def test_streamed_exec_and_processes(d):
    t = d.tokens["user"]
    sid = create(d)
    try:
        lines = stream_lines(d, "POST", f"/v1/sandboxes/{sid}/exec",
                             {"cmd": ["sh", "-c", "for i in $(seq 1 2000); do echo line$i; done;"
                                      " echo oops >&2; exit 4"],
                              "limits": {"cpu_time": "60s", "wall_time": "120s"}})
        assert lines[0]["type"] == "start" and lines[0]["process"]["id"].startswith("p-")
        assert lines[-1]["type"] == "result", lines[-3:]
        assert lines[-1]["result"]["exit_code"] == 4
        assert lines[-1]["result"]["isolation"] == "microvm"
        out = "".join(x["data"] for x in lines if x["type"] == "stdout")
        err = "".join(x["data"] for x in lines if x["type"] == "stderr")
        assert out == "".join(f"line{i}\n" for i in range(1, 2001)) and err == "oops\n"
        offs = [x["offset"] for x in lines if x["type"] in ("stdout", "stderr")]
        assert offs == sorted(offs) and offs[0] == 0
        # A background process fed through stdin, then waited for.
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes",
                      {"cmd": ["sh", "-c", "tr a-z A-Z; echo done"], "stdin": True}, t)
        assert r.status == 201, r
        pid = r.json["id"]
        base = f"/v1/sandboxes/{sid}/processes/{pid}"
        r = d.request("POST", f"{base}/stdin", b"hello microvm\n", t, raw=True)
        assert r.status == 200 and r.json["written"] == 14, r
        assert d.request("POST", f"{base}/close_stdin", token=t).status == 200
        r = d.request("POST", f"{base}/wait", {"timeout": "120s"}, t)
        assert r.status == 200 and r.json["state"] == "exited", r
        assert r.json["result"]["verdict"] == "ok", r.json
        lines = stream_lines(d, "GET", f"{base}/output?offset=0&follow=false", None)
        out = "".join(x["data"] for x in lines if x["type"] == "stdout")
        assert out == "HELLO MICROVM\ndone\n", lines
        # A killed process ends, and the sandbox goes on.
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["sleep", "600"]}, t)
        pid = r.json["id"]
        base = f"/v1/sandboxes/{sid}/processes/{pid}"
        assert d.request("POST", f"{base}/signal", {"signal": "KILL"}, t).status == 200
        r = d.request("POST", f"{base}/wait", {"timeout": "120s"}, t)
        assert r.json["state"] == "exited" and r.json["result"]["verdict"] != "ok", r.json
        assert exec_(d, sid, ["echo", "after"]).json["stdout"] == "after\n"
        listed = d.request("GET", f"/v1/sandboxes/{sid}/processes", token=t).json["processes"]
        assert len(listed) == 3
    finally:
        delete(d, sid)


def test_hundred_thousand_lines_and_reattach(d):
    """A process printing 100 000 lines: streamed whole and in order; a
    client that goes away mid-stream leaves it running, and re-attaching at
    the offset it had reached gives exactly what it missed."""
    t = d.tokens["user"]
    sid = create(d)
    want = "".join(f"{i}\n" for i in range(1, 100001))
    limits = {"cpu_time": "5m", "wall_time": "10m", "output": "4M"}
    try:
        lines = stream_lines(d, "POST", f"/v1/sandboxes/{sid}/exec",
                             {"cmd": ["seq", "1", "100000"], "limits": limits})
        assert lines[-1]["type"] == "result" and lines[-1]["result"]["exit_code"] == 0, lines[-1]
        assert "".join(x["data"] for x in lines if x["type"] == "stdout") == want
        # The same from a background process, read partly, then re-attached.
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes",
                      {"cmd": ["sh", "-c", "seq 1 50000; read go; seq 50001 100000"],
                       "stdin": True, "limits": limits}, t)
        assert r.status == 201, r
        base = f"/v1/sandboxes/{sid}/processes/{r.json['id']}"
        c = UnixConnection(d.sock, timeout=300)
        c.request("GET", f"{base}/output?offset=0&follow=true",
                  headers={"Authorization": f"Bearer {t}", "Accept": "application/x-ndjson"})
        resp = c.getresponse()
        assert resp.status == 200
        got, end = "", 0
        while end < 1000:  # some of it, then the client goes away
            e = json.loads(resp.readline())
            if e["type"] == "stdout":
                got += e["data"]
                end = e["offset"] + len(e["data"].encode())
        c.close()
        assert d.request("POST", f"{base}/stdin", b"go\n", t, raw=True).status == 200
        r = d.request("POST", f"{base}/wait", {"timeout": "300s"}, t)
        assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 0, r.json
        rest = stream_lines(d, "GET", f"{base}/output?offset={end}&follow=false", None)
        assert not [x for x in rest if x["type"] == "cut"], rest[:3]
        got += "".join(x["data"] for x in rest if x["type"] == "stdout")
        assert got == want
    finally:
        delete(d, sid)


def test_fs_api(d):
    t = d.tokens["user"]
    sid = create(d)
    fs = f"/v1/sandboxes/{sid}/fs"
    try:
        data = os.urandom(3 << 20)
        r = d.request("PUT", f"{fs}/root/w/big.bin", data, t, raw=True)
        assert r.status == 201 and r.json["size"] == len(data), r
        assert r.json["type"] == "file" and r.json["path"] == "/root/w/big.bin"
        assert d.request("GET", f"{fs}/root/w/big.bin", token=t).body == data
        r = d.request("POST", f"{fs}/root/w/sub/deeper?op=mkdir", token=t)
        assert r.status == 201 and r.json["type"] == "dir", r
        r = d.request("GET", f"{fs}/root/w?op=list&depth=2", token=t)
        names = sorted(e["path"] for e in r.json["entries"])
        assert names == ["/root/w/big.bin", "/root/w/sub", "/root/w/sub/deeper"], r
        r = d.request("POST", f"{fs}/root/w/big.bin?op=rename", {"to": "/tmp/moved.bin"}, t)
        assert r.status == 200 and r.json["path"] == "/tmp/moved.bin", r
        r = d.request("GET", f"{fs}/tmp/moved.bin?op=stat", token=t)
        assert r.json["size"] == len(data) and r.json["mode"] == "0644", r
        assert d.request("GET", f"{fs}/root/w/big.bin?op=stat", token=t).status == 404
        r = d.request("DELETE", f"{fs}/root/w", token=t)
        assert r.status >= 400, r  # not empty
        r = d.request("DELETE", f"{fs}/root/w?recursive=true", token=t)
        assert r.status == 200 and r.json["removed"] is True, r
        assert exec_(d, sid, ["ls", "/root"]).json["stdout"] == ""
        # Written in the guest, read through the API: the same file.
        exec_(d, sid, ["sh", "-c", "printf guest > /tmp/g.txt"])
        assert d.request("GET", f"{fs}/tmp/g.txt", token=t).body == b"guest"
    finally:
        delete(d, sid)


def test_fs_api_answers_are_the_agents_not_a_workloads(d):
    """stat, list, mkdir, rename and remove are the agent's own: a python3
    (or mkdir) a workload puts first on the guest's PATH, or over
    /usr/bin/python3, answers nothing for them."""
    t = d.tokens["user"]
    sid = create(d)
    fs = f"/v1/sandboxes/{sid}/fs"
    forged = ('{"name": "forged", "path": "/forged", "type": "file", "size": 4242, '
              '"mode": "0644", "mtime": "1970-01-01T00:00:00Z", "entries": [], "removed": true}')
    fake = f"#!/bin/sh\necho '{forged}'\n"
    try:
        r = exec_(d, sid, ["sh", "-c",
                           "mkdir -p /usr/local/bin && for p in /usr/local/bin/python3 "
                           "/usr/local/bin/mkdir /usr/bin/python3; do "
                           f"printf %s \"$0\" > $p && chmod 755 $p; done; "
                           "printf twelve-bytes > /tmp/real.txt", fake])
        assert r.status == 200 and r.json["exit_code"] == 0, r
        r = d.request("GET", f"{fs}/tmp/real.txt?op=stat", token=t)
        assert r.status == 200 and r.json["size"] == 12 and r.json["path"] == "/tmp/real.txt", r
        r = d.request("GET", f"{fs}/tmp?op=list", token=t)
        assert "/tmp/real.txt" in [e["path"] for e in r.json["entries"]], r
        r = d.request("POST", f"{fs}/tmp/made/here?op=mkdir&mode=0700", token=t)
        assert r.status == 201 and r.json["path"] == "/tmp/made/here", r
        assert r.json["mode"] == "0700" and r.json["type"] == "dir", r
        r = d.request("POST", f"{fs}/tmp/real.txt?op=rename", {"to": "/tmp/made/moved.txt"}, t)
        assert r.status == 200 and r.json["path"] == "/tmp/made/moved.txt", r
        r = d.request("GET", f"{fs}/tmp/real.txt?op=stat", token=t)
        assert r.status == 404, r
        r = d.request("PUT", f"{fs}/tmp/new/dir/f.txt", b"abc", t, raw=True)
        assert r.status == 201 and r.json["size"] == 3 and r.json["path"] == "/tmp/new/dir/f.txt", r
        r = d.request("DELETE", f"{fs}/tmp/made?recursive=true", token=t)
        assert r.status == 200 and r.json["path"] == "/tmp/made", r
        assert exec_(d, sid, ["ls", "/tmp/made"]).json["exit_code"] != 0
        # The workload's /dev, /proc and /sys are not the client's to change.
        r = d.request("DELETE", f"{fs}/dev?recursive=true", token=t)
        assert r.status == 403, r
        assert exec_(d, sid, ["true"]).json["exit_code"] == 0
        # A symlink is reported as itself, never followed out of the root.
        exec_(d, sid, ["ln", "-s", "/etc/hostname", "/tmp/link"])
        r = d.request("GET", f"{fs}/tmp/link?op=stat", token=t)
        assert r.json["type"] == "symlink" and r.json["target"] == "/etc/hostname", r
    finally:
        delete(d, sid)


def test_fs_api_refuses_dev_proc_sys_however_spelled(d):
    """The guest's kernel reads "//dev" as "/dev": a change the agent
    refuses for /dev, /proc and /sys (their mount points in the workload
    root) is refused however many slashes lead the path, and "//" is the
    root, not a file."""
    t = d.tokens["user"]
    sid = create(d)
    fs = f"/v1/sandboxes/{sid}/fs"
    try:
        for path in ("//dev", "///proc", "//sys/x"):
            r = d.request("DELETE", f"{fs}/{path}?recursive=true", token=t)
            assert r.status == 403, (path, r)
        r = d.request("POST", f"{fs}//dev/made?op=mkdir", token=t)
        assert r.status == 403, r
        r = d.request("DELETE", f"{fs}//?recursive=true", token=t)
        assert r.status == 403, r
        # The workload's /dev and /proc are still mounted where they were.
        r = exec_(d, sid, ["sh", "-c", "test -c /dev/null && test -r /proc/self/status"])
        assert r.status == 200 and r.json["exit_code"] == 0, r
    finally:
        delete(d, sid)


def test_one_gib_round_trip(d):
    """1 GiB up and down with a digest check, through the agent. The
    guest's files live in its RAM: the sandbox asks for enough of it."""
    t = d.tokens["user"]
    sid = create(d, {"limits": {"memory": "2400M"}})
    fs = f"/v1/sandboxes/{sid}/fs"
    try:
        (status, entry), digest = put_stream(d, f"{fs}/root/big.bin", 1024, t)
        assert status == 201 and entry["size"] == 1024 * MiB, entry
        # Hashing 1 GiB under TCG takes from seconds to minutes, as busy
        # as the host is: the client waits as long as the exec may run.
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                      {"cmd": ["sha256sum", "/root/big.bin"],
                       "limits": {"cpu_time": "10m", "wall_time": "20m"}}, t, timeout=1260)
        assert r.status == 200 and r.json["stdout"].split()[0] == digest, r
        c = UnixConnection(d.sock, timeout=1200)
        c.request("GET", f"{fs}/root/big.bin", headers={"Authorization": f"Bearer {t}"})
        resp = c.getresponse()
        assert resp.status == 200
        h, n = hashlib.sha256(), 0
        while b := resp.read(MiB):
            h.update(b)
            n += len(b)
        c.close()
        assert n == 1024 * MiB and h.hexdigest() == digest
    finally:
        delete(d, sid)


def test_pause_to_disk_and_resume(d):
    t = d.tokens["user"]
    sid = create(d)
    assert exec_(d, sid, ["sh", "-c", "echo before > /tmp/p.txt"]).json["verdict"] == "ok"
    running = set(vm_qemus())
    r = d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t)
    assert r.status == 200 and r.json["state"] == "paused", r
    # On disk: its QEMU is gone, its snapshot is there.
    assert running - set(vm_qemus())
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


def keepers(d):
    """hulld's keeper helpers (argv: hulld --helper keeper ...)."""
    out = []
    for pid in children(d.proc.pid):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"--helper", b"keeper"]:
            out.append(pid)
    return out


def stages():
    """Keepers' staging directories on the host (sbx_vm.c)."""
    return set(Path("/run/hull").glob("vmsbx-*"))


def test_killed_keeper_takes_its_vm(d):
    """A QEMU is started detached from its keeper: when the keeper is
    SIGKILLed, hulld removes the VM, not only the record."""
    t = d.tokens["user"]
    staged = stages()
    before = set(vm_qemus())
    old = set(keepers(d))
    sid = create(d)
    mine = set(keepers(d)) - old
    assert len(mine) == 1, (old, mine)
    qemu = set(vm_qemus()) - before
    assert len(qemu) == 1
    keeper = mine.pop()
    os.kill(keeper, signal.SIGKILL)
    assert wait_until(lambda: not alive(keeper), timeout=60)
    # The next call to the keeper finds it gone.
    assert exec_(d, sid, ["true"]).status >= 400
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "destroyed"
    assert stages() <= staged
    assert wait_until(lambda: not (qemu & set(vm_qemus())), timeout=120)
    assert not list((Path(d.state) / "microvm").glob("*.snap*"))
    assert stages() <= staged


def test_vm_of_a_dead_hulld_goes_at_start_up(d):
    """hulld and a keeper that could not clean up (stopped, then killed with
    hulld): the next hulld removes the VM of the sandbox its store still
    lists as running."""
    t = d.tokens["user"]
    staged = stages()
    before = set(vm_qemus())
    old = set(keepers(d))
    sid = create(d)
    keeper = (set(keepers(d)) - old).pop()
    qemu = set(vm_qemus()) - before
    os.kill(keeper, signal.SIGSTOP)  # it cannot see hulld go
    d.kill()
    os.kill(keeper, signal.SIGKILL)
    assert wait_until(lambda: not alive(keeper), timeout=60)
    assert qemu <= set(vm_qemus()), "the VM should still run before the next hulld"
    d.start()
    assert not (qemu & set(vm_qemus()))
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "destroyed"
    assert stages() <= staged
