"""hulld end to end: a real daemon on a tmp socket, real runs and sandboxes,
checked through the API and against the host (namespaces, cgroups, state).

One hulld serves the module (2 run slots, a queue of 2, small quotas and
body limit, a 2 s client timeout) so back-pressure is easy to reach."""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, Hulld, UnixConnection, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-runs", "2", "--queue-depth", "2",
              "--tenant-runs", "3", "--tenant-sandboxes", "2", "--max-body", "64K",
              "--client-timeout", "2")
    Path(h.state).mkdir(parents=True)
    h.tokens = {
        "admin": h.token("admin", "ops"),
        "user": h.token("user", "acme"),
        "other": h.token("user", "globex"),
        "reader": h.token("reader", "acme"),
    }
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def post_run(d, body, who="user"):
    return d.request("POST", "/v1/runs", body, d.tokens[who])


def metric(d, name):
    text = d.request("GET", "/metrics", token=d.tokens["reader"]).body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")


# ---- runs -----------------------------------------------------------------

@pytest.mark.asan
def test_healthz_and_openapi_need_no_token(d):
    r = d.request("GET", "/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}
    r = d.request("GET", "/v1/openapi.json")
    assert r.status == 200
    doc = r.json
    assert doc["openapi"].startswith("3.")
    for p in ("/v1/runs", "/v1/runs/{id}", "/v1/sandboxes", "/v1/sandboxes/{id}/exec",
              "/v1/sandboxes/{id}/files/{path}", "/metrics", "/healthz", "/v1/audit"):
        assert p in doc["paths"], p


@pytest.mark.asan
def test_sync_run_is_isolated_and_recorded(d):
    r = post_run(d, {"cmd": ["sh", "-c", "cat /tmp/in.txt; echo $FOO; cat; id -u; "
                                         "readlink /proc/self/ns/pid /proc/self/ns/net"],
                     "stdin": "from stdin\n", "env": {"FOO": "bar"},
                     "files": {"in.txt": "a file\n"}, "limits": {"memory": "128M"}})
    assert r.status == 200, r
    res = r.json
    assert res["state"] == "finished" and res["verdict"] == "ok" and res["id"].startswith("r-")
    lines = res["stdout"].splitlines()
    assert lines[:4] == ["a file", "bar", "from stdin", "1000"]
    # Its own pid and network namespaces, not the host's.
    assert lines[4] != host_ns("pid") and lines[5] != host_ns("net")
    g = d.request("GET", f"/v1/runs/{res['id']}", token=d.tokens["user"])
    assert g.status == 200 and g.json["stdout"] == res["stdout"] and g.json["state"] == "finished"


def test_answered_run_is_what_readers_see_at_once(d):
    # A run handed straight to a worker is answered before its end is
    # written (after-answer thread); a reader on another connection right
    # after the answer must still get exactly what was answered.
    for _ in range(5):
        res = post_run(d, {"cmd": ["true"]}).json
        g = d.request("GET", f"/v1/runs/{res['id']}", token=d.tokens["user"]).json
        assert g == res, (g, res)
        listed = d.request("GET", "/v1/runs?state=finished&limit=1000",
                           token=d.tokens["user"]).json
        assert res["id"] in json.dumps(listed), listed
        c = d.request("DELETE", f"/v1/runs/{res['id']}", token=d.tokens["user"])
        assert c.status == 409, c


def test_run_verdicts(d):
    r = post_run(d, {"cmd": ["sleep", "10"], "limits": {"wall_time": "300ms"}})
    assert r.status == 200 and r.json["verdict"] == "wall_time_limit", r
    r = post_run(d, {"cmd": ["sh", "-c", "exit 3"]})
    assert r.json["verdict"] == "exit_nonzero" and r.json["exit_code"] == 3
    # A command that cannot start is the request's mistake: its own verdict.
    r = post_run(d, {"cmd": ["no-such-program"]})
    assert r.status == 200 and (r.json["verdict"], r.json["exit_code"]) == ("bad_command", 127), r
    assert "executable file not found in $PATH" in r.json["error"], r
    r = post_run(d, {"cmd": ["/etc/passwd"]})
    assert r.status == 200 and (r.json["verdict"], r.json["exit_code"]) == ("bad_command", 126), r
    r = post_run(d, {"cmd": ["pwd"], "workdir": "/usr/no-such-dir"})
    assert r.status == 200 and (r.json["verdict"], r.json["exit_code"]) == ("bad_command", 126), r
    assert r.json["error"].startswith("workdir: /usr/no-such-dir is not there"), r
    assert metric(d, 'hull_runs_total{verdict="bad_command"}') >= 3


@pytest.mark.parametrize("body,field", [
    ({"cmd": ["true"], "limits": {"memory": "12X"}}, "limits.memory"),
    ({"cmd": []}, "cmd"),
    ({"stdin": "x"}, "cmd"),
    ({"cmd": ["true"], "isolation": "vm"}, "isolation"),
    ({"cmd": ["true"], "limits": {"cpu_time": "0ms"}}, "limits.cpu_time"),
    ({"cmd": ["true"], "async": "yes"}, "async"),
    ({"cmd": ["true"], "limits": {"bogus": 1}}, "limits.bogus"),
    # keys that are not names still make the field (they are the client's own)
    ({"cmd": ["true"], "env": {"A=B": "x"}}, "env.A=B"),
    ({"cmd": ["true"], "files": {"/tmp/x": 5}}, "files./tmp/x"),
])
def test_validation_errors_name_the_field(d, body, field):
    r = post_run(d, body)
    assert r.status == 400, r
    e = r.json["error"]
    assert e["code"] == "invalid_request" and e["field"] == field and e["message"]


def test_bad_json_and_queue_without_redis(d):
    r = d.request("POST", "/v1/runs", b"{not json", d.tokens["user"], raw=True)
    assert r.status == 400 and r.json["error"]["code"] == "invalid_json"
    r = post_run(d, {"cmd": ["true"], "queue": True})
    assert r.status == 501 and r.json["error"]["field"] == "queue"


def test_routes_and_methods(d):
    t = d.tokens["user"]
    assert d.request("GET", "/v2/runs", token=t).status == 404
    assert d.request("GET", "/v1/nothing", token=t).status == 404
    assert d.request("GET", "/v1/runs/r-1/extra", token=t).status == 404
    r = d.request("PUT", "/v1/runs", b"{}", t, raw=True)
    assert r.status == 405 and r.headers["Allow"] == "GET, POST"
    assert r.json["error"]["code"] == "method_not_allowed"
    r = d.request("POST", "/v1/sandboxes/s-1/files/x", b"", t, raw=True)
    assert r.status == 405 and r.headers["Allow"] == "GET, PUT"


# ---- auth and tenancy -------------------------------------------------------

@pytest.mark.asan
def test_auth_rules(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["true"]})
    assert r.status == 401 and r.json["error"]["code"] == "unauthorized"
    r = d.request("POST", "/v1/runs", {"cmd": ["true"]}, "hull_" + "0" * 64)
    assert r.status == 401
    r = d.request("GET", "/metrics", token="garbage")
    assert r.status == 401
    # A reader reads but never writes.
    r = post_run(d, {"cmd": ["true"]}, "reader")
    assert r.status == 403 and r.json["error"]["code"] == "forbidden"
    mine = post_run(d, {"cmd": ["echo", "acme"]}).json["id"]
    assert d.request("GET", f"/v1/runs/{mine}", token=d.tokens["reader"]).status == 200
    assert d.request("DELETE", f"/v1/runs/{mine}", token=d.tokens["reader"]).status == 403
    # Another tenant does not even learn that the id exists.
    for m in ("GET", "DELETE"):
        r = d.request(m, f"/v1/runs/{mine}", token=d.tokens["other"])
        assert r.status == 404 and r.json["error"]["code"] == "not_found", (m, r)
    theirs = post_run(d, {"cmd": ["true"]}, "other").json["id"]
    listed = [x["id"] for x in d.request("GET", "/v1/runs", token=d.tokens["user"]).json["runs"]]
    assert mine in listed and theirs not in listed
    # The admin sees every tenant.
    assert d.request("GET", f"/v1/runs/{theirs}", token=d.tokens["admin"]).status == 200


def test_revoked_token(d):
    r = subprocess.run([HULL, "token", "create", "--state-dir", d.state, "--tenant", "acme"],
                       capture_output=True, text=True, check=True)
    tok, tid = r.stdout.strip(), r.stderr.splitlines()[0].split(": ")[1]
    assert d.request("POST", "/v1/runs", {"cmd": ["true"]}, tok).status == 200
    listed = json.loads(subprocess.run([HULL, "token", "list", "--state-dir", d.state, "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert [t for t in listed if t["id"] == tid][0]["tenant"] == "acme"
    assert all(tok not in json.dumps(t) for t in listed)  # the secret is never shown again
    subprocess.run([HULL, "token", "revoke", "--state-dir", d.state, tid], check=True,
                   capture_output=True)
    r = d.request("POST", "/v1/runs", {"cmd": ["true"]}, tok)
    assert r.status == 401 and r.json["error"]["code"] == "unauthorized"



def token_create(d, tenant="acme"):
    r = subprocess.run([HULL, "token", "create", "--state-dir", d.state, "--tenant", tenant],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip(), r.stderr.splitlines()[0].split(": ")[1]


def test_revoke_killed_after_its_commit_is_still_seen_by_hulld(d, tmp_path):
    """`hull token revoke` SIGKILLed between its commit and its append to
    tokens.revoked (strace kills it as it opens the file the last time):
    `token list` says revoked, so hulld must refuse the token too, not keep
    accepting it from its cache until it restarts."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is needed to kill at that exact step")
    probe, probe_id = token_create(d)
    trace = tmp_path / "revoke.trace"
    subprocess.run([strace, "-o", str(trace), "-e", "trace=openat", HULL, "token", "revoke",
                    "--state-dir", d.state, probe_id], check=True, capture_output=True)
    opens = [ln for ln in trace.read_text().splitlines() if ln.startswith("openat(")]
    last = max(i for i, ln in enumerate(opens) if "tokens.revoked" in ln) + 1
    tok, tid = token_create(d)
    assert d.request("GET", "/v1/runs", token=tok).status == 200  # verified: in hulld's cache
    r = subprocess.run([strace, "-o", os.devnull, "-e", "trace=openat", "-e",
                        f"inject=openat:signal=KILL:when={last}", HULL, "token", "revoke",
                        "--state-dir", d.state, tid], capture_output=True, text=True)
    assert r.returncode != 0 and "revoked" not in r.stdout, r
    listed = json.loads(subprocess.run([HULL, "token", "list", "--state-dir", d.state, "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert [t for t in listed if t["id"] == tid][0].get("revoked"), listed
    r = d.request("GET", "/v1/runs", token=tok)
    assert r.status == 401 and r.json["error"]["code"] == "unauthorized", r

# ---- async, cancel, lists ----------------------------------------------------

def test_async_run_and_cancel(d):
    r = post_run(d, {"cmd": ["sleep", "60"], "async": True, "limits": {"wall_time": "2m"}})
    assert r.status == 202 and r.json["state"] == "queued"
    rid = r.json["id"]
    get = lambda: d.request("GET", f"/v1/runs/{rid}", token=d.tokens["user"]).json
    assert wait_until(lambda: get()["state"] == "running")
    d.note_helpers()
    r = d.request("DELETE", f"/v1/runs/{rid}", token=d.tokens["user"])
    assert r.status == 200 and r.json["state"] == "finished" and r.json["verdict"] == "killed"
    assert get()["verdict"] == "killed"
    r = d.request("DELETE", f"/v1/runs/{rid}", token=d.tokens["user"])
    assert r.status == 409 and r.json["error"]["code"] == "conflict"
    listed = d.request("GET", "/v1/runs?state=finished&limit=1000", token=d.tokens["user"]).json
    assert rid in [x["id"] for x in listed["runs"]]
    assert all(x["state"] == "finished" for x in listed["runs"])
    r = d.request("GET", "/v1/runs?state=bogus", token=d.tokens["user"])
    assert r.status == 400 and r.json["error"]["field"] == "state"


def test_quota_and_queue_full(d):
    """2 slots + 2 queued; acme may have 3 runs at once."""
    slow = {"cmd": ["sleep", "60"], "async": True, "limits": {"wall_time": "2m"}}
    before = metric(d, 'hull_requests_rejected_total{code="queue_full"}')
    ids = []
    for _ in range(3):
        r = post_run(d, slow)
        assert r.status == 202, r
        ids.append(r.json["id"])
    r = post_run(d, slow)
    assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded", r
    assert int(r.headers["Retry-After"]) > 0
    r = post_run(d, slow, "other")
    assert r.status == 202
    theirs = r.json["id"]
    assert wait_until(lambda: metric(d, "hull_runs_running") == 2)
    assert metric(d, "hull_queue_depth") == 2
    r = post_run(d, slow, "other")
    assert r.status == 429 and r.json["error"]["code"] == "queue_full", r
    assert r.headers["Retry-After"] == "1"
    assert metric(d, 'hull_requests_rejected_total{code="queue_full"}') == before + 1
    # The newest are the queued ones: cancelled before a slot frees up.
    for rid, who in [(theirs, "other")] + [(i, "user") for i in reversed(ids)]:
        r = d.request("DELETE", f"/v1/runs/{rid}", token=d.tokens[who])
        assert r.status == 200 and r.json["state"] in ("finished", "cancelled"), r
    states = {d.request("GET", f"/v1/runs/{i}", token=d.tokens["admin"]).json["state"]
              for i in ids + [theirs]}
    assert states <= {"finished", "cancelled"} and "cancelled" in states
    assert wait_until(lambda: metric(d, "hull_runs_running") == 0)


# ---- limits on the connection -------------------------------------------------

def test_body_limit(d):
    big = {"cmd": ["true"], "stdin": "x" * 100000}
    r = post_run(d, big)
    assert r.status == 413 and r.json["error"]["code"] == "payload_too_large"


def test_slow_client_is_cut_off(d):
    """--client-timeout 2: a client stalling in its headers, or half-way
    through its body, is disconnected by hulld (the 60 s socket timeout is
    only a hang guard: reaching it fails the test)."""
    partial = [
        b"POST /v1/runs HTTP/1.1\r\nHost: x\r\n",
        b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + d.tokens["user"].encode() + b"\r\nContent-Length: 100\r\n\r\n{\"cmd\":",
    ]
    for req in partial:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(d.sock)
        s.sendall(req)
        data = s.recv(4096)  # socket.timeout here means hulld never let go
        s.close()
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
    assert d.request("GET", "/healthz").status == 200


# ---- audit and metrics --------------------------------------------------------

def test_audit_log(d):
    last = d.request("GET", "/v1/audit", token=d.tokens["admin"]).json["entries"]
    since = last[-1]["id"] if last else 0
    rid = post_run(d, {"cmd": ["true"]}).json["id"]
    post_run(d, {"cmd": ["true"]}, "reader")
    d.request("POST", "/v1/runs", {"cmd": ["true"]})
    d.request("DELETE", f"/v1/runs/{rid}", token=d.tokens["user"])
    d.request("GET", f"/v1/runs/{rid}", token=d.tokens["user"])  # reads are not audited
    es = d.request("GET", f"/v1/audit?since_id={since}", token=d.tokens["admin"]).json["entries"]
    got = [(e["method"], e["path"], e["status"], e["outcome"], e.get("tenant"), e.get("role"))
           for e in es]
    assert got == [
        ("POST", "/v1/runs", 200, "ok", "acme", "user"),
        ("POST", "/v1/runs", 403, "forbidden", "acme", "reader"),
        ("POST", "/v1/runs", 401, "unauthorized", None, None),
        ("DELETE", f"/v1/runs/{rid}", 409, "conflict", "acme", "user"),
    ], got
    assert es[0]["target"] == rid and es[0]["token"].startswith("t") and es[0]["time"]
    assert "token" not in es[2]
    # A tenant sees its own entries only.
    mine = d.request("GET", f"/v1/audit?since_id={since}", token=d.tokens["user"]).json
    assert [e["status"] for e in mine["entries"]] == [200, 403, 409]
    theirs = d.request("GET", f"/v1/audit?since_id={since}", token=d.tokens["other"]).json
    assert theirs["entries"] == []
    # Append-only, enforced by the database.
    db = sqlite3.connect(os.path.join(d.state, "hulld.db"))
    for sql in ("UPDATE audit SET status = 200", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()


def test_metrics_after_known_runs(d):
    ok0 = metric(d, 'hull_runs_total{verdict="ok"}')
    wall0 = metric(d, 'hull_runs_total{verdict="wall_time_limit"}')
    n0 = metric(d, "hull_run_duration_seconds_count")
    inf0 = metric(d, 'hull_run_duration_seconds_bucket{le="+Inf"}')
    for _ in range(3):
        assert post_run(d, {"cmd": ["true"]}).json["verdict"] == "ok"
    assert post_run(d, {"cmd": ["sleep", "5"], "limits": {"wall_time": "100ms"}}).json[
        "verdict"] == "wall_time_limit"
    assert metric(d, 'hull_runs_total{verdict="ok"}') == ok0 + 3
    assert metric(d, 'hull_runs_total{verdict="wall_time_limit"}') == wall0 + 1
    assert metric(d, "hull_run_duration_seconds_count") == n0 + 4
    assert metric(d, 'hull_run_duration_seconds_bucket{le="+Inf"}') == inf0 + 4
    assert metric(d, "hull_run_slots") == 2
    text = d.request("GET", "/metrics", token=d.tokens["user"])
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")


# ---- sandboxes ---------------------------------------------------------------

def cgroup_dir(hierarchy, container):
    return Path("/sys/fs/cgroup") / hierarchy / "hull" / container


def sandbox_container(d, sid):
    db = sqlite3.connect(os.path.join(d.state, "hulld.db"))
    (c,) = db.execute("SELECT container FROM sandboxes WHERE id = ?", (sid,)).fetchone()
    db.close()
    return c


@pytest.mark.asan
def test_sandbox_lifecycle(d):
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "96M", "pids": 32},
                                             "env": {"GREETING": "hi"}, "lifetime": "5m"}, t)
    assert r.status == 201, r
    sb = r.json
    sid = sb["id"]
    assert sb["state"] == "running" and sb["isolation"] == "container" and sb["lifetime_s"] == 300
    c = sandbox_container(d, sid)
    d.note_helpers()
    assert (Path("/run/hull/sandbox") / c).exists()  # its state, gone below
    # A real container: its cgroup has the limits asked for.
    assert int((cgroup_dir("memory", c) / "memory.limit_in_bytes").read_text()) == 96 << 20
    # --pids counts the program's tasks; the sandbox's own init is one more.
    assert (cgroup_dir("pids", c) / "pids.max").read_text().strip() == "33"

    r = d.request("PUT", f"/v1/sandboxes/{sid}/files/src/main.py", b"print(6*7)", t, raw=True)
    assert r.status == 200 and r.json == {"path": "/tmp/src/main.py", "size": 10}
    ex = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                   {"cmd": ["sh", "-c", "python3 /tmp/src/main.py; echo $GREETING; id -u; "
                                        "echo out > /tmp/result.txt; ln -s /etc/shadow /tmp/l; "
                                        "readlink /proc/self/ns/pid; sleep 30 &"]}, t)
    assert ex.status == 200, ex
    out = ex.json["stdout"].splitlines()
    assert ex.json["verdict"] == "ok" and out[:3] == ["42", "hi", "1000"]
    assert out[3] != host_ns("pid")
    # A command the sandbox lacks is the caller's mistake, as for a run.
    bad = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["no-such-program"]}, t)
    assert bad.status == 200 and (bad.json["verdict"], bad.json["exit_code"]) == (
        "bad_command", 127), bad
    # State kept between execs, also a background process.
    ex2 = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                    {"cmd": ["sh", "-c", "cat /tmp/result.txt; pgrep -c sleep"]}, t).json
    assert ex2["stdout"].split() == ["out", "2"]  # the idle init's sleep and ours
    r = d.request("GET", f"/v1/sandboxes/{sid}/files/result.txt", token=t)
    assert r.status == 200 and r.body == b"out\n"
    assert r.headers["Content-Type"] == "application/octet-stream"
    # No way out of /tmp: a symlink is not followed, '..' is refused.
    r = d.request("GET", f"/v1/sandboxes/{sid}/files/l", token=t)
    assert r.status == 400, r
    r = d.request("GET", f"/v1/sandboxes/{sid}/files/%2e%2e/etc/passwd", token=t)
    assert r.status == 400 and r.json["error"]["field"] == "path"
    r = d.request("GET", f"/v1/sandboxes/{sid}/files/missing", token=t)
    assert r.status == 404
    # Exec limits.
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                  {"cmd": ["sleep", "10"], "limits": {"wall_time": "200ms"}}, t)
    assert r.json["verdict"] == "wall_time_limit"

    # Pause freezes the cgroup for real.
    r = d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t)
    assert r.status == 200 and r.json["state"] == "paused"
    assert (cgroup_dir("freezer", c) / "freezer.state").read_text().strip() == "FROZEN"
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["true"]}, t)
    assert r.status == 409
    r = d.request("POST", f"/v1/sandboxes/{sid}/resume", token=t)
    assert r.status == 200 and r.json["state"] == "running"
    assert (cgroup_dir("freezer", c) / "freezer.state").read_text().strip() == "THAWED"

    # Metrics read its cgroup.
    text = d.request("GET", "/metrics", token=t).body.decode()
    assert f'hull_sandbox_memory_bytes{{tenant="acme",sandbox="{sid}"}}' in text
    assert f'hull_sandbox_cpu_seconds_total{{tenant="acme",sandbox="{sid}"}}' in text

    # Other tenants: 404 for everything; readers: 403 for writes.
    for m, p in (("GET", ""), ("POST", "/exec"), ("DELETE", ""), ("GET", "/files/result.txt")):
        body = {"cmd": ["true"]} if m == "POST" else None
        r = d.request(m, f"/v1/sandboxes/{sid}{p}", body, d.tokens["other"])
        assert r.status == 404, (m, p, r)
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["true"]}, d.tokens["reader"])
    assert r.status == 403
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=d.tokens["reader"]).status == 200

    r = d.request("DELETE", f"/v1/sandboxes/{sid}", token=t)
    assert r.status == 200 and r.json["state"] == "destroyed"
    assert not (Path("/run/hull/sandbox") / c).exists()
    assert not cgroup_dir("memory", c).exists()
    assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "destroyed"
    assert d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["true"]}, t).status == 404


def test_sandbox_lifetime_and_quota(d):
    t = d.tokens["other"]
    a = d.request("POST", "/v1/sandboxes", {"lifetime": "1s"}, t).json["id"]
    b = d.request("POST", "/v1/sandboxes", {"lifetime": "1h"}, t).json["id"]
    r = d.request("POST", "/v1/sandboxes", {}, t)
    assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded"
    ca = sandbox_container(d, a)
    assert wait_until(lambda: d.request("GET", f"/v1/sandboxes/{a}", token=t).json["state"]
                      == "destroyed", 30)
    got = d.request("GET", f"/v1/sandboxes/{a}", token=t).json
    assert got["reason"] == "lifetime expired"
    assert not (Path("/run/hull/sandbox") / ca).exists()
    listed = [s["id"] for s in d.request("GET", "/v1/sandboxes", token=t).json["sandboxes"]]
    assert listed == [b]
    assert d.request("DELETE", f"/v1/sandboxes/{b}", token=t).status == 200
    r = d.request("POST", "/v1/sandboxes", {"lifetime": "forever"}, t)
    assert r.status == 400 and r.json["error"]["field"] == "lifetime"
    # Long-lived microVM sandboxes are served too: test_hulld_microvm.py.


def test_curl_client(d, tmp_path):
    f = tmp_path / "code.py"
    f.write_text("import sys; print(sys.argv[1:])\n")
    base = ["curl", "-s", "--unix-socket", d.sock, "-H",
            f"Authorization: Bearer {d.tokens['user']}"]
    sb = json.loads(subprocess.run(base + ["-d", "{}", "http://hulld/v1/sandboxes"],
                                   capture_output=True, text=True, check=True).stdout)
    sid = sb["id"]
    subprocess.run(base + ["-X", "PUT", "--data-binary", f"@{f}",
                           f"http://hulld/v1/sandboxes/{sid}/files/code.py"], check=True,
                   capture_output=True)
    out = json.loads(subprocess.run(
        base + ["-d", json.dumps({"cmd": ["python3", "/tmp/code.py", "a", "b"]}),
                f"http://hulld/v1/sandboxes/{sid}/exec"],
        capture_output=True, text=True, check=True).stdout)
    assert out["stdout"] == "['a', 'b']\n"
    subprocess.run(base + ["-X", "DELETE", f"http://hulld/v1/sandboxes/{sid}"], check=True,
                   capture_output=True)


def test_microvm_run(d):
    """A one-shot run at microvm isolation: the same request and result,
    the workload in its own guest kernel."""
    from test_vm_lib import skip_unless_ready
    skip_unless_ready()
    r = post_run(d, {"cmd": ["sh", "-c", "uname -r"], "isolation": "microvm",
                     "limits": {"cpu_time": "30s", "wall_time": "120s"}})
    assert r.status == 200, r
    assert r.json["verdict"] == "ok" and r.json["isolation"] == "microvm", r.json
    assert r.json["stdout"].strip() != os.uname().release
