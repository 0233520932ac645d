"""hulld: one tenant, one token, no more than it was given.

A real hulld on a tmp socket: requests that weaken isolation need a grant
given to the token; /metrics shows a tenant only its own sandboxes; exec
refuses by name what it cannot apply; one rule for durations and sizes;
the SDK reports the server's 413 for a big upload."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, SRC, Hulld

sys.path.insert(0, str(SRC / "sdk" / "python"))
import hull  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

GENEROUS = {"cpu_time": "60s", "wall_time": "120s"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-runs", "2", "--tenant-sandboxes", "4",
              "--max-body", "64K")
    Path(h.state).mkdir(parents=True)
    h.tokens = {
        "admin": h.token("admin", "ops"),
        "user": h.token("user", "acme"),
        "reader": h.token("reader", "acme"),
        "other": h.token("user", "globex"),
        "hostnet": h.token("user", "acme", allow="host-network"),
        "process": h.token("user", "acme", allow="process-isolation"),
    }
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()


def post(d, path, body, who="user"):
    return d.request("POST", path, body, d.tokens[who])


def host_netns():
    return os.readlink("/proc/self/ns/net")


NETNS = ["readlink", "/proc/self/ns/net"]


# ---- grants ---------------------------------------------------------------------


def test_host_network_needs_a_grant(d):
    body = {"cmd": NETNS, "network": "host", "limits": GENEROUS}
    for who in ("user", "admin", "process"):
        r = post(d, "/v1/runs", body, who)
        assert r.status == 403, (who, r)
        e = r.json["error"]
        assert e["code"] == "forbidden" and e["field"] == "network", r
        assert e["permission"] == "host-network" and "host-network" in e["message"], r
    # Nor through the Redis queue, nor for a long-lived sandbox.
    r = post(d, "/v1/runs", dict(body, queue=True))
    assert r.status == 403 and r.json["error"]["field"] == "network", r
    r = post(d, "/v1/sandboxes", {"network": "host"})
    assert r.status == 403 and r.json["error"]["permission"] == "host-network", r
    # Granted: the host's network namespace for real.
    r = post(d, "/v1/runs", body, "hostnet")
    assert r.status == 200 and r.json["verdict"] == "ok", r
    assert r.json["stdout"].strip() == host_netns()
    rid = r.json["id"]
    # Without asking, even a granted token gets its own namespace.
    r = post(d, "/v1/runs", {"cmd": NETNS, "limits": GENEROUS}, "hostnet")
    assert r.json["stdout"].strip() != host_netns()
    # The grant used is in the audit log, with the run.
    es = d.request("GET", "/v1/audit", token=d.tokens["admin"]).json["entries"]
    used = [e for e in es if e.get("target") == rid]
    assert used and used[0]["grants"] == "host-network", used
    refused = [e for e in es if e["status"] == 403 and e["path"] == "/v1/runs"]
    assert refused and all("grants" not in e for e in refused)


def test_process_isolation_needs_a_grant(d):
    body = {"cmd": ["true"], "isolation": "process", "limits": GENEROUS}
    r = post(d, "/v1/runs", body, "hostnet")
    assert r.status == 403 and r.json["error"]["field"] == "isolation", r
    assert r.json["error"]["permission"] == "process-isolation"
    r = post(d, "/v1/sandboxes", {"isolation": "process"})
    assert r.status == 403 and r.json["error"]["field"] == "isolation", r
    r = post(d, "/v1/runs", body, "process")
    assert r.status == 200 and r.json["isolation"] == "process", r
    # Granted, it still has no cgroup: a CPU bandwidth is refused by name.
    r = post(d, "/v1/sandboxes", {"isolation": "process", "limits": {"cpus": 0.5}}, "process")
    assert r.status == 400 and r.json["error"]["field"] == "limits.cpus", r


def test_token_list_shows_grants(d):
    r = subprocess.run([HULL, "token", "list", "--json", "--state-dir", d.state],
                       capture_output=True, text=True, check=True)
    allow = sorted(tuple(t["allow"]) for t in json.loads(r.stdout))
    assert allow == [(), (), (), (), ("host-network",), ("process-isolation",)]
    r = subprocess.run([HULL, "token", "list", "--state-dir", d.state],
                       capture_output=True, text=True, check=True)
    assert "ALLOW" in r.stdout.splitlines()[0] and "host-network" in r.stdout
    r = subprocess.run([HULL, "token", "create", "--state-dir", d.state, "--allow",
                        "seccomp-off"], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.startswith("hull: ")
    assert "unknown grant 'seccomp-off'" in r.stderr


# ---- metrics ----------------------------------------------------------------------


def test_metrics_show_a_tenant_only_its_own_sandboxes(d):
    mine = post(d, "/v1/sandboxes", {}, "user")
    theirs = post(d, "/v1/sandboxes", {}, "other")
    assert mine.status == 201 and theirs.status == 201, (mine, theirs)
    a, b = mine.json["id"], theirs.json["id"]
    try:
        def text(who):
            r = d.request("GET", "/metrics", token=d.tokens[who])
            assert r.status == 200
            return r.body.decode()
        for who in ("user", "reader"):
            t = text(who)
            assert a in t and b not in t, who
        t = text("other")
        assert b in t and a not in t
        t = text("admin")
        assert a in t and b in t
        assert f'hull_sandbox_memory_bytes{{tenant="globex",sandbox="{b}"}}' in t
        # Aggregates for everyone.
        for who in ("user", "other", "admin"):
            assert "\nhull_sandboxes_active 2\n" in text(who), who
    finally:
        d.request("DELETE", f"/v1/sandboxes/{a}", token=d.tokens["user"])
        d.request("DELETE", f"/v1/sandboxes/{b}", token=d.tokens["other"])


# ---- exec takes only what it applies ----------------------------------------------


def test_exec_refuses_what_it_cannot_apply(d):
    r = post(d, "/v1/sandboxes", {"limits": {"memory": "256M"}})
    assert r.status == 201, r
    sid = r.json["id"]
    path = f"/v1/sandboxes/{sid}/exec"
    alloc = ["python3", "-c", "b = bytearray(100 << 20); print(len(b))"]
    try:
        for body, field in (
                ({"cmd": alloc, "limits": {"memory": "64M"}}, "limits.memory"),
                ({"cmd": ["true"], "limits": {"pids": 4}}, "limits.pids"),
                ({"cmd": ["true"], "limits": {"cpus": 0.5}}, "limits.cpus"),
                ({"cmd": ["true"], "limits": {"tmp_size": "1M"}}, "limits.tmp_size"),
                ({"cmd": ["true"], "limits": {"open_files": 8}}, "limits.open_files"),
                ({"cmd": ["true"], "files": {"a": "b"}}, "files"),
                ({"cmd": ["true"], "isolation": "process"}, "isolation"),
                ({"cmd": ["true"], "network": "none"}, "network"),
                ({"cmd": ["true"], "bogus": 1}, "bogus")):
            r = post(d, path, body)
            assert r.status == 400, (body, r)
            e = r.json["error"]
            assert e["code"] == "invalid_request" and e["field"] == field, r
        e = post(d, path, {"cmd": ["true"], "bogus": 1}).json["error"]
        assert "cmd, stdin, env, workdir, limits" in e["message"], e
        e = post(d, path, {"cmd": ["true"], "limits": {"memory": "64M"}}).json["error"]
        assert "cpu_time, wall_time, output" in e["message"], e
        # What it can apply, it applies.
        r = post(d, path, {"cmd": ["sh", "-c", "while :; do :; done"],
                           "limits": {"cpu_time": "300ms", "wall_time": "120s"}})
        assert r.status == 200 and r.json["verdict"] == "cpu_time_limit", r
        r = post(d, path, {"cmd": ["sh", "-c", "yes | head -c 100000"],
                           "limits": {"output": "1K", "cpu_time": "60s", "wall_time": "120s"}})
        assert r.json["verdict"] == "output_limit" and len(r.json["stdout"]) <= 1024, r
        # The sandbox's own memory limit is what applies.
        r = post(d, path, {"cmd": alloc, "limits": GENEROUS})
        assert r.status == 200 and r.json["verdict"] == "ok", r
    finally:
        d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"])


def test_sandbox_create_refuses_per_command_fields(d):
    for body, field in (({"limits": {"cpu_time": "1s"}}, "limits.cpu_time"),
                        ({"limits": {"wall_time": "1s"}}, "limits.wall_time"),
                        ({"limits": {"output": "1K"}}, "limits.output"),
                        ({"stdin": "x"}, "stdin"),
                        ({"workdir": "/tmp"}, "workdir"),
                        ({"cmd": ["true"]}, "cmd")):
        r = post(d, "/v1/sandboxes", body)
        assert r.status == 400 and r.json["error"]["field"] == field, (body, r)
    e = post(d, "/v1/sandboxes", {"bogus": 1}).json["error"]
    assert e["field"] == "bogus" and "lifetime" in e["message"], e


# ---- units --------------------------------------------------------------------------


def test_bare_numbers_are_seconds_and_bytes(d):
    # wall_time: 1 is one second (it was one millisecond).
    r = post(d, "/v1/runs", {"cmd": ["sleep", "30"], "limits": {"wall_time": 1}})
    assert r.status == 200 and r.json["verdict"] == "wall_time_limit", r
    assert r.json["wall_time_ms"] >= 1000, r
    # The same as the string "1" and as "1s".
    for v in ("1", "1s", 1.0):
        r = post(d, "/v1/runs", {"cmd": ["sleep", "30"], "limits": {"wall_time": v}})
        assert r.json["verdict"] == "wall_time_limit" and r.json["wall_time_ms"] >= 1000, (v, r)
    r = post(d, "/v1/runs", {"cmd": ["sh", "-c", "while :; do :; done"],
                             "limits": {"cpu_time": 0.3, "wall_time": 120}})
    assert r.json["verdict"] == "cpu_time_limit" and r.json["cpu_time_ms"] >= 300, r
    # Sizes: a bare number is bytes, as a number or a string.
    for v in (64 << 20, str(64 << 20), "64M"):
        r = post(d, "/v1/runs", {"cmd": ["true"], "limits": dict(GENEROUS, memory=v)})
        assert r.status == 200 and r.json["verdict"] == "ok", (v, r)
    # lifetime follows the same rule.
    for v, s in ((2, 2), ("2", 2), ("2s", 2), (90.5, 90)):
        r = post(d, "/v1/sandboxes", {"lifetime": v})
        assert r.status == 201 and r.json["lifetime_s"] == s, (v, r)
        d.request("DELETE", f"/v1/sandboxes/{r.json['id']}", token=d.tokens["user"])


@pytest.mark.parametrize("body,field,text", [
    ({"limits": {"cpu_time": "0ms"}}, "limits.cpu_time", "limits.cpu_time: 0 ms is out of range"),
    ({"limits": {"memory": "1k"}}, "limits.memory", "limits.memory: 1024 bytes is out of range"),
    ({"limits": {"memory": 1.5}}, "limits.memory", "limits.memory: must be a size"),
    ({"limits": {"cpus": 0}}, "limits.cpus", "limits.cpus: "),
    ({"isolation": "process", "limits": {"cpus": 0.5}}, "limits.cpus",
     "limits.cpus: process isolation cannot limit CPU bandwidth"),
    ({"limits": {"bogus": 1}}, "limits.bogus",
     "accepted: cpu_time, wall_time, memory, output, tmp_size, pids, open_files, cpus"),
    ({"bogus": 1}, "bogus",
     "accepted: cmd, stdin, env, files, limits, isolation, workdir, network, async, queue"),
])
def test_errors_name_the_full_path_and_list_the_fields(d, body, field, text):
    r = post(d, "/v1/runs", dict(body, cmd=["true"]))
    assert r.status == 400, r
    e = r.json["error"]
    assert e["field"] == field and text in e["message"], e


# ---- SDK: big uploads --------------------------------------------------------------


def test_sdk_reports_the_servers_413(d):
    """files.write streams (the file API): bounded by the sandbox's disk,
    not --max-body; a run's inline files are one body, bounded by it."""
    c = hull.Client(socket_path=d.sock, token=d.tokens["user"])
    with c.sandbox(limits={"tmp_size": "1M"}) as sb:
        with pytest.raises(hull.PayloadTooLarge) as ex:
            sb.files.write("big.bin", b"x" * (8 << 20))
        assert ex.value.status == 413 and "tmp_size" in (ex.value.limit or "") + str(ex.value)
        # The connection is fine for what follows.
        assert sb.files.write("small.bin", b"y" * 1000)["size"] == 1000
    with pytest.raises(hull.PayloadTooLarge) as ex:
        c.run(["true"], files={"big.txt": "z" * (8 << 20)})
    assert "65536" in str(ex.value)
