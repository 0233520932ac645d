"""The file API (/v1/sandboxes/{sid}/fs/{path}) end to end, over raw HTTP
against a real hulld: streamed uploads and downloads of any size (1 GiB
with a digest check, the test's and hulld's memory watched), cut uploads
and uploads past the sandbox's disk limit leaving nothing, metadata round
trips, inotify watches, and every way out of the sandbox refused."""
import hashlib
import json
import os
import queue
import resource
import socket
import threading
import time
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, UnixConnection, block, put_stream, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

MiB = 1 << 20


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-body", "64K", "--tenant-sandboxes", "4",
              "--client-timeout", "2")
    Path(h.state).mkdir(parents=True)
    h.tokens = {
        "user": h.token("user", "acme"),
        "proc": h.token("user", "acme", allow="process-isolation"),
        "other": h.token("user", "globex"),
    }
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


@pytest.fixture
def sbx(d):
    made = []

    def make(isolation="container", limits=None, who="user"):
        body = {"isolation": isolation}
        if limits:
            body["limits"] = limits
        r = d.request("POST", "/v1/sandboxes", body, d.tokens[who])
        assert r.status == 201, r
        made.append((r.json["id"], who))
        return r.json["id"]

    yield make
    for sid, who in made:
        d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens[who])


def fs(d, method, sid, path, query="", body=None, who="user", raw=True):
    url = f"/v1/sandboxes/{sid}/fs{path}" + (f"?{query}" if query else "")
    return d.request(method, url, body, d.tokens[who], raw=raw)


def sh(d, sid, script, who="user", limits=None):
    body = {"cmd": ["sh", "-c", script]}
    if limits:
        body["limits"] = limits
    # The client waits as long as the exec may run (a loaded host is slow).
    r = d.request("POST", f"/v1/sandboxes/{sid}/exec", body, d.tokens[who], timeout=900)
    assert r.status == 200, r
    return r.json


def tmp_used_kb(d, sid):
    return int(sh(d, sid, "df -k /tmp | tail -1")["stdout"].split()[2])


def tmp_names(d, sid):
    return sh(d, sid, "ls -A /tmp")["stdout"].split()


def vm_hwm_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reset_hwm(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- streaming ----------------------------------------------------------------

def test_one_gib_round_trip_streams(d, sbx):
    """1 GiB up and down with a digest check; neither the test nor hulld
    holds the file in memory. The sandbox's memory holds its /tmp: an
    upload counts there, as the sandbox's own writes do."""
    sid = sbx(limits={"tmp_size": "1100M", "memory": "1200M"})
    t = d.tokens["user"]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset_hwm(d.proc.pid)
    hwm0 = vm_hwm_kb(d.proc.pid)
    (status, entry), digest = put_stream(d, f"/v1/sandboxes/{sid}/fs/tmp/big/blob.bin", 1024, t)
    assert status == 201, entry
    assert entry["size"] == 1024 * MiB and entry["type"] == "file"
    assert entry["path"] == "/tmp/big/blob.bin" and entry["mode"] == "0644"
    # What the sandbox sees is what was sent.
    res = sh(d, sid, "sha256sum /tmp/big/blob.bin", limits={"cpu_time": "5m", "wall_time": "10m"})
    assert res["verdict"] == "ok", res
    out = res["stdout"].split()[0]
    assert out == digest
    c = UnixConnection(d.sock, timeout=600)
    c.request("GET", f"/v1/sandboxes/{sid}/fs/tmp/big/blob.bin",
              headers={"Authorization": f"Bearer {t}"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/octet-stream"
    assert int(r.getheader("Content-Length")) == 1024 * MiB
    h, n = hashlib.sha256(), 0
    while True:
        b = r.read(MiB)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.close()
    assert n == 1024 * MiB and h.hexdigest() == digest
    # A 1 GiB body through memory would show in either high-water mark.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200 * 1024
    assert vm_hwm_kb(d.proc.pid) - hwm0 < 200 * 1024


def test_a_file_shrunk_while_sent_cuts_the_answer(d, sbx):
    """The sandbox truncates a file while hulld sends it: the answer ends
    short of its Content-Length and the connection closes: the client sees
    a cut answer, not a hang (hulld's thread for it used to spin on a CPU
    for as long as the client waited), and hulld serves on."""
    sid = sbx()
    t = d.tokens["user"]
    size = 40 * MiB
    res = sh(d, sid, f"head -c {size} /dev/urandom > /tmp/shrinks")
    assert res["verdict"] == "ok", res
    s = socket.socket(socket.AF_UNIX)
    # Generous: a connection that ends does so at once; one that hangs is
    # the defect.
    s.settimeout(120)
    s.connect(d.sock)
    s.sendall(f"GET /v1/sandboxes/{sid}/fs/tmp/shrinks HTTP/1.1\r\nHost: h\r\n"
              f"Authorization: Bearer {t}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    head, got = head.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert f"Content-Length: {size}".encode() in head, head
    # Cut to 1 MiB while most of it is still to be sent (the socket holds
    # far less than 39 MiB).
    res = sh(d, sid, "truncate -s 1048576 /tmp/shrinks")
    assert res["verdict"] == "ok", res
    n = len(got)
    while True:
        try:
            b = s.recv(MiB)
        except socket.timeout:
            pytest.fail(f"the connection hangs after {n} of {size} bytes")
        if not b:
            break
        n += len(b)
    s.close()
    assert n < size
    assert d.request("GET", "/healthz").status == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_cut_upload_leaves_nothing(d, sbx, chunked):
    sid = sbx()
    base = tmp_used_kb(d, sid)
    res, _ = put_stream(d, f"/v1/sandboxes/{sid}/fs/tmp/cut.bin", 32, d.tokens["user"],
                        chunked=chunked, cut_after=12)
    assert res is None
    # Once hulld has seen the close, the unnamed file and its space are gone.
    assert wait_until(lambda: tmp_used_kb(d, sid) <= base + 64, 60), tmp_used_kb(d, sid)
    assert tmp_names(d, sid) == []
    r = fs(d, "GET", sid, "/tmp/cut.bin", "op=stat")
    assert r.status == 404, r


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_over_the_disk_limit_is_413_and_leaves_nothing(d, sbx, chunked):
    sid = sbx(limits={"tmp_size": "8M"})
    (status, body), _ = put_stream(d, f"/v1/sandboxes/{sid}/fs/tmp/huge.bin", 16,
                                   d.tokens["user"], chunked=chunked)
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert "limits.tmp_size" in body["error"]["message"]
    assert tmp_names(d, sid) == []
    assert wait_until(lambda: tmp_used_kb(d, sid) <= 64, 30)
    # The sandbox still takes what fits.
    r = fs(d, "PUT", sid, "/tmp/small", b"x" * 1000)
    assert r.status == 201, r


def test_a_slow_upload_keeps_its_sandbox_alive(d):
    """A body still flowing is use: an idle lifetime (2 s) shorter than the
    upload does not reap the sandbox under it."""
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {"lifetime": "2s"}, t)
    assert r.status == 201, r
    sid = r.json["id"]
    c = UnixConnection(d.sock, timeout=120)
    c.putrequest("PUT", f"/v1/sandboxes/{sid}/fs/tmp/slow.bin")
    c.putheader("Authorization", f"Bearer {t}")
    c.putheader("Content-Length", str(6 * MiB))
    c.endheaders()
    for i in range(6):
        c.send(block(i))
        time.sleep(1.5)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 201, body
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200


# ---- metadata round trips -----------------------------------------------------

@pytest.mark.parametrize("iso", ["container", "process"])
def test_mkdir_stat_list_rename_remove(d, sbx, iso):
    who = "proc" if iso == "process" else "user"
    sid = sbx(iso, who=who)
    r = fs(d, "POST", sid, "/tmp/p/q/r", "op=mkdir&mode=0750", who=who)
    assert r.status == 201, r
    assert r.json["type"] == "dir" and r.json["mode"] == "0750" and r.json["name"] == "r"
    r = fs(d, "PUT", sid, "/tmp/p/q/r/f.txt", "mode=0600", b"hello\n", who=who)
    assert r.status == 201, r
    assert r.json == {**r.json, "name": "f.txt", "path": "/tmp/p/q/r/f.txt", "type": "file",
                      "size": 6, "mode": "0600"}
    assert r.json["mtime"].endswith("Z")
    # Owned by the sandbox's user, as the sandbox sees it.
    out = sh(d, sid, "stat -c '%u %a %s' /tmp/p/q/r/f.txt; id -u", who=who)["stdout"].split()
    assert out[0] == out[3] and out[1:3] == ["600", "6"]
    sh(d, sid, "ln -s f.txt /tmp/p/q/r/link", who=who)
    r = fs(d, "GET", sid, "/tmp/p/q/r/link", "op=stat", who=who)
    assert r.json["type"] == "symlink" and r.json["target"] == "f.txt", r
    r = fs(d, "GET", sid, "/tmp/p", "op=list&depth=3", who=who)
    assert r.status == 200, r
    paths = {e["path"]: e for e in r.json["entries"]}
    assert set(paths) == {"/tmp/p/q", "/tmp/p/q/r", "/tmp/p/q/r/f.txt", "/tmp/p/q/r/link"}
    assert paths["/tmp/p/q/r/f.txt"]["size"] == 6
    assert [e["name"] for e in fs(d, "GET", sid, "/tmp/p", "op=list", who=who).json["entries"]] \
        == ["q"]
    r = fs(d, "POST", sid, "/tmp/p/q/r/f.txt", "op=rename", {"to": "/tmp/p/g.txt"}, who=who,
           raw=False)
    assert r.status == 200 and r.json["path"] == "/tmp/p/g.txt", r
    assert fs(d, "GET", sid, "/tmp/p/g.txt", who=who).body == b"hello\n"
    assert fs(d, "GET", sid, "/tmp/p/q/r/f.txt", "op=stat", who=who).status == 404
    # A directory: 409 to read, 409 to remove without recursive.
    assert fs(d, "GET", sid, "/tmp/p", who=who).status == 409
    r = fs(d, "DELETE", sid, "/tmp/p", who=who)
    assert r.status == 409, r
    r = fs(d, "DELETE", sid, "/tmp/p", "recursive=true", who=who)
    assert r.status == 200 and r.json == {"path": "/tmp/p", "removed": True}, r
    assert fs(d, "GET", sid, "/tmp/p", "op=stat", who=who).status == 404
    assert fs(d, "DELETE", sid, "/tmp/p", who=who).status == 404
    # The sandbox's permissions apply: /etc is read-only, /dev is root's.
    assert fs(d, "PUT", sid, "/etc/x", body=b"x", who=who).status == 403
    assert fs(d, "POST", sid, "/dev/x", "op=mkdir", who=who).status == 403


def test_bad_queries_are_400(d, sbx):
    sid = sbx()
    for method, query in (("GET", "op=nope"), ("GET", "op=list&depth=0"),
                          ("POST", "op=mkdir&mode=9"), ("PUT", "mode=abc"),
                          ("DELETE", "recursive=maybe"), ("POST", "op=rename")):
        r = fs(d, method, sid, "/tmp/x", query, b"" if method == "PUT" else None)
        assert r.status == 400, (method, query, r)


# ---- watch --------------------------------------------------------------------

def watch(d, sid, path, query="recursive=true"):
    """A watch stream in a thread: its lines on a queue, the socket to close."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    s.sendall((f"GET /v1/sandboxes/{sid}/fs{path}?op=watch&{query} HTTP/1.1\r\nHost: h\r\n"
               f"Authorization: Bearer {d.tokens['user']}\r\n\r\n").encode())
    f = s.makefile("rb")
    status = f.readline()
    headers = {}
    while (line := f.readline().strip()):
        k, v = line.decode().split(":", 1)
        headers[k.lower()] = v.strip()
    q = queue.Queue()

    def pump():
        try:
            while (size := f.readline().strip()):
                n = int(size, 16)
                if n == 0:
                    break
                chunk = f.read(n)
                f.readline()
                for ln in chunk.decode().splitlines():
                    q.put(json.loads(ln))
        except (OSError, ValueError):
            pass
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return status, headers, q, s


def events_until(q, pred, timeout=60):
    seen = []
    while True:
        ev = q.get(timeout=timeout)
        if ev is None:
            return seen
        seen.append(ev)
        if pred(ev):
            return seen


def test_watch_reports_create_modify_delete_rename(d, sbx):
    sid = sbx()
    fs(d, "POST", sid, "/tmp/w", "op=mkdir")
    status, headers, q, s = watch(d, sid, "/tmp/w")
    assert b" 200 " in status
    assert headers["content-type"] == "application/x-ndjson"
    assert headers.get("transfer-encoding") == "chunked"
    fs(d, "PUT", sid, "/tmp/w/a.txt", body=b"one")
    sh(d, sid, "echo more >> /tmp/w/a.txt")
    fs(d, "POST", sid, "/tmp/w/a.txt", "op=rename", {"to": "/tmp/w/b.txt"}, raw=False)
    fs(d, "POST", sid, "/tmp/w/sub", "op=mkdir")
    # The new directory is watched too (recursive): give it a moment by
    # waiting for its create event, then write in it.
    seen = events_until(q, lambda e: e["type"] == "create" and e["path"] == "/tmp/w/sub")
    fs(d, "PUT", sid, "/tmp/w/sub/c.txt", body=b"c")
    fs(d, "PUT", sid, "/tmp/w/sub/c.txt", body=b"c2")  # replaced: still one create
    fs(d, "DELETE", sid, "/tmp/w/b.txt")
    seen += events_until(q, lambda e: e["type"] == "delete" and e["path"] == "/tmp/w/b.txt")
    kinds = {(e["type"], e["path"]) for e in seen}
    assert ("modify", "/tmp/w/b.txt") in kinds or ("modify", "/tmp/w/a.txt") in kinds, seen
    assert ("rename_from", "/tmp/w/a.txt") in kinds and ("rename_to", "/tmp/w/b.txt") in kinds
    assert ("create", "/tmp/w/a.txt") in kinds and ("create", "/tmp/w/sub/c.txt") in kinds
    assert [e for e in seen if e["path"] == "/tmp/w/sub/c.txt"] == \
        [{"type": "create", "path": "/tmp/w/sub/c.txt", "dir": False}] * 2, seen
    assert not any(".hull-upload" in e["path"] for e in seen), seen
    assert all(set(e) == {"type", "path", "dir"} for e in seen), seen
    # Deleting the watched directory ends the stream.
    fs(d, "DELETE", sid, "/tmp/w", "recursive=true")
    rest = events_until(q, lambda e: False)
    assert {"type": "delete", "path": "/tmp/w", "dir": True} in rest, rest
    s.close()


def test_watch_of_a_moved_directory(d, sbx):
    """A subdirectory renamed out of the watched tree is no longer told of
    by its old path; the watched directory renamed ends the stream."""
    sid = sbx()
    fs(d, "POST", sid, "/tmp/w/sub", "op=mkdir")
    status, _, q, s = watch(d, sid, "/tmp/w")
    assert b" 200 " in status
    sh(d, sid, "mv /tmp/w/sub /tmp/out && touch /tmp/out/x /tmp/w/marker")
    seen = events_until(q, lambda e: e["path"] == "/tmp/w/marker")
    assert {"type": "rename_from", "path": "/tmp/w/sub", "dir": True} in seen, seen
    assert not any(e["path"].startswith("/tmp/w/sub/") for e in seen), seen
    sh(d, sid, "mv /tmp/w /tmp/w2 && mkdir /tmp/w && touch /tmp/w2/late /tmp/w/new")
    rest = events_until(q, lambda e: False)
    assert rest == [{"type": "rename_from", "path": "/tmp/w", "dir": True}], rest
    s.close()


def test_a_quiet_watch_outlives_the_client_timeout(d, sbx):
    """Waiting for events is not an idle client (--client-timeout 2 s)."""
    sid = sbx()
    status, _, q, s = watch(d, sid, "/tmp")
    assert b" 200 " in status
    time.sleep(4)
    fs(d, "PUT", sid, "/tmp/late", body=b"x")
    assert events_until(q, lambda e: e["path"] == "/tmp/late")[-1] == \
        {"type": "create", "path": "/tmp/late", "dir": False}
    s.close()


def test_watch_ends_when_the_client_goes(d, sbx):
    sid = sbx()
    base = fd_count(d.proc.pid)
    status, _, q, s = watch(d, sid, "/tmp")
    assert b" 200 " in status
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    assert wait_until(lambda: fd_count(d.proc.pid) <= base, 30), (fd_count(d.proc.pid), base)


# ---- escapes ------------------------------------------------------------------

def test_no_way_out_of_the_sandbox(d, sbx, tmp_path):
    sid = sbx()
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    os.chmod(tmp_path, 0o755)
    ups = "/".join([".."] * 12)
    sh(d, sid, f"""
        ln -s /etc/shadow /tmp/shadow
        ln -s /proc/1/root /tmp/proc-root
        ln -s {secret} /tmp/abs
        ln -s {ups}{secret} /tmp/rel
        ln -s / /tmp/top
        mkfifo /tmp/fifo
    """)
    for path in ("/tmp/shadow", "/tmp/abs", "/tmp/rel"):
        r = fs(d, "GET", sid, path)
        assert r.status == 400 and b"host only" not in r.body, (path, r)
    # Through the symlinks as directories: resolved in the sandbox's root.
    for path in (f"/tmp/top{secret}", f"/tmp/proc-root{secret}", "/tmp/proc-root/etc/passwd",
                 "/proc/self/root/etc/passwd", f"/proc/1/root{secret}"):
        r = fs(d, "GET", sid, path)
        assert r.status in (400, 404) and b"host only" not in r.body, (path, r)
    for path in (f"/tmp/{ups}{secret}", "/tmp/../etc/passwd", "/tmp/%2e%2e/etc/passwd"):
        r = fs(d, "GET", sid, path)
        assert r.status == 400 and "'..'" in r.json["error"]["message"], (path, r)
    assert fs(d, "PUT", sid, f"/tmp/{ups}{secret}", body=b"x").status == 400
    # Kernel pseudo-files and devices are not served, a FIFO does not block.
    for path in ("/tmp/fifo", "/dev/null", "/proc/1/environ"):
        r = fs(d, "GET", sid, path)
        assert r.status == 400, (path, r)
    r = fs(d, "GET", sid, "/tmp/" + "a/" * 2100 + "b")
    assert r.status == 400 and r.json["error"]["field"] == "path", r
    # Writing through a symlink replaces the link, never its target.
    r = fs(d, "PUT", sid, "/tmp/abs", body=b"pwned")
    assert r.status == 201 and r.json["type"] == "file", r
    assert secret.read_text() == "host only\n"
    assert fs(d, "GET", sid, "/tmp/abs").body == b"pwned"
    assert fs(d, "POST", sid, "/tmp/top", "op=rename", {"to": "/tmp/x"}, raw=False).status == 200
    assert secret.read_text() == "host only\n"


def test_symlink_swapped_in_during_an_upload(d, sbx, tmp_path):
    """The target (and its directory) become symlinks to the host's file
    while the body is on its way: the upload lands in the sandbox only."""
    sid = sbx()
    secret = tmp_path / "victim"
    secret.write_text("host only\n")
    os.chmod(tmp_path, 0o755)
    c = UnixConnection(d.sock, timeout=120)
    c.putrequest("PUT", f"/v1/sandboxes/{sid}/fs/tmp/d/target")
    c.putheader("Authorization", f"Bearer {d.tokens['user']}")
    c.putheader("Content-Length", str(4 * MiB))
    c.endheaders()
    c.send(b"a" * (2 * MiB))
    sh(d, sid, f"rm -rf /tmp/d; mkdir -p {secret.parent}; ln -s {secret.parent} /tmp/d;"
               f"ln -sf {secret} {secret.parent}/target")
    c.send(b"a" * (2 * MiB))
    r = c.getresponse()
    body = r.read()
    c.close()
    assert secret.read_text() == "host only\n"
    # Linked in where the path now leads inside the sandbox, replacing the
    # symlink there (the sandbox's own copy of that directory).
    assert r.status == 201, body
    out = sh(d, sid, f"stat -c '%F %s' {secret.parent}/target; ls -A /tmp {secret.parent}")
    assert out["stdout"].startswith("regular file 4194304\n"), out
    assert ".hull-upload" not in out["stdout"]


# ---- tenants, the old API, the host afterwards ---------------------------------

def test_other_tenants_get_404(d, sbx):
    sid = sbx()
    fs(d, "PUT", sid, "/tmp/mine", body=b"mine")
    for method, query, body in (("GET", "", None), ("GET", "op=stat", None),
                                ("GET", "op=list", None), ("GET", "op=watch", None),
                                ("PUT", "", b"theirs"), ("POST", "op=mkdir", None),
                                ("DELETE", "", None)):
        r = fs(d, method, sid, "/tmp/mine", query, body, who="other")
        assert r.status == 404, (method, query, r)
    assert fs(d, "GET", sid, "/tmp/mine").body == b"mine"


def test_old_files_api_still_works(d, sbx):
    sid = sbx()
    r = d.request("PUT", f"/v1/sandboxes/{sid}/files/old/a.txt", b"old api", d.tokens["user"],
                  raw=True)
    assert r.status == 200, r
    assert fs(d, "GET", sid, "/tmp/old/a.txt").body == b"old api"
    fs(d, "PUT", sid, "/tmp/new.txt", body=b"new api")
    r = d.request("GET", f"/v1/sandboxes/{sid}/files/new.txt", token=d.tokens["user"])
    assert r.status == 200 and r.body == b"new api"
    # Its --max-body limit stays; the new API streams past it.
    r = d.request("PUT", f"/v1/sandboxes/{sid}/files/big", b"x" * (128 << 10),
                  d.tokens["user"], raw=True)
    assert r.status == 413
    assert fs(d, "PUT", sid, "/tmp/big", body=b"x" * (128 << 10)).status == 201


def test_nothing_left_after_delete(d):
    pid = d.proc.pid
    base = fd_count(pid)
    t = d.tokens["user"]
    r = d.request("POST", "/v1/sandboxes", {}, t)
    sid = r.json["id"]
    fs(d, "PUT", sid, "/tmp/f.bin", body=b"z" * (4 * MiB))
    # A download abandoned half-way, a watch left open while the sandbox goes.
    c = UnixConnection(d.sock)
    c.request("GET", f"/v1/sandboxes/{sid}/fs/tmp/f.bin", headers={"Authorization": f"Bearer {t}"})
    resp = c.getresponse()
    resp.read(MiB)
    _, _, q, s = watch(d, sid, "/tmp")
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status == 200
    assert events_until(q, lambda e: False, timeout=60) is not None  # the stream ended
    c.close()
    s.close()
    assert wait_until(lambda: fd_count(pid) <= base, 30), (fd_count(pid), base)
    assert fs(d, "GET", sid, "/tmp/f.bin", "op=stat").status == 404
