"""hulld's API against a hostile sandbox and a hostile tenant: what the
files API, exec and the other routes show must be what the sandbox itself
sees, and nothing of the host's or of another tenant's.

test_hulld_sandbox_escape.py runs the kernel-escape probes through the
API's ways of starting a program; this file attacks the API's own work
done on a sandbox's behalf (the files API's helper process, which runs in
the keeper's place on the host until it joins the sandbox)."""
import base64
import json
import os
import socket
import subprocess
import uuid

import pytest

from hulldlib import HULLD, Hulld, put_stream, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hulld-api-hostile")
    h = Hulld(tmp, "--metrics-interval", "100")
    os.makedirs(h.state, exist_ok=True)
    h.a = h.token("user", "acme", allow="process-isolation")
    h.b = h.token("user", "beta")
    h.start()
    try:
        yield h
    finally:
        rc = h.stop()
        assert rc == 0, h.log.read_text()
        assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


@pytest.fixture(scope="module", params=["container", "process"])
def sbx(request, d):
    r = d.request("POST", "/v1/sandboxes", {"isolation": request.param}, d.a)
    assert r.status == 201, r
    sid = r.json["id"]
    yield sid
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.a).status == 200


@pytest.fixture
def host_link():
    """A network interface of the host's own, named uniquely, for the
    length of a test (a veth pair: its both ends are the host's)."""
    name = "hx" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def names(h, sid, path):
    r = h.request("GET", f"/v1/sandboxes/{sid}/fs{path}?op=list", token=h.a)
    assert r.status == 200, r
    return sorted(e["name"] for e in r.json["entries"])


def inside(h, sid, *cmd):
    r = h.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": list(cmd)}, h.a)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    return r.json["stdout"]


@pytest.mark.parametrize("path", ["/proc/sys/net/ipv4/conf", "/proc/sys/net/ipv6/conf",
                                  "/proc/sys/net/ipv4/neigh"])
def test_files_api_lists_the_sandboxs_network_not_the_hosts(d, sbx, host_link, path):
    """/proc/sys/net shows the network namespace of whoever reads it. The
    files API's helper read it from the keeper's, the host's: a list there
    named every interface of the host (its bridges, other tenants' veths)
    to a tenant whose sandbox has nothing but lo."""
    if not os.path.isdir(path):
        pytest.skip(f"no {path} on this kernel")
    assert os.path.isdir(f"{path}/{host_link}")  # the host has it
    listed = names(d, sbx, path)
    assert host_link not in listed, listed
    assert listed == sorted(inside(d, sbx, "ls", "-1", path).split()), listed


def test_another_tenant_reaches_nothing_of_the_sandbox(d, sbx):
    base = f"/v1/sandboxes/{sbx}"
    for method, path, body in [
            ("GET", base, None), ("GET", f"{base}/fs/tmp?op=list", None),
            ("GET", f"{base}/fs/tmp?op=watch", None), ("GET", f"{base}/files/x", None),
            ("PUT", f"{base}/fs/tmp/x", b"x"), ("GET", f"{base}/metrics", None),
            ("GET", f"{base}/processes", None), ("GET", f"{base}/ports", None),
            ("POST", f"{base}/exec", {"cmd": ["true"]}), ("POST", f"{base}/pause", {}),
            ("POST", f"{base}/timeout", {"lifetime": "1s"}),
            ("POST", "/v1/templates", {"sandbox": sbx, "name": "stolen"}),
            ("DELETE", base, None)]:
        r = d.request(method, path, body, d.b, raw=isinstance(body, bytes), timeout=30)
        assert r.status == 404, (method, path, r)
        assert "acme" not in r.body.decode(), r
    r = d.request("GET", "/v1/sandboxes", token=d.b)
    assert r.status == 200 and sbx not in r.body.decode(), r
    r = d.request("GET", "/v1/audit?limit=1000", token=d.b)
    assert r.status == 200, r
    assert {e["tenant"] for e in r.json["entries"]} <= {"beta"}, r.json
    assert sbx in [e.get("target") for e in r.json["entries"]]  # its own refused tries
    assert inside(d, sbx, "ls", "-1", "/tmp") == ""  # the PUT left nothing


def test_hostile_names_come_back_as_valid_json(d, sbx):
    """Names a program made (a newline, an escape sequence, bytes that are
    not UTF-8) listed and watched: valid UTF-8 JSON, one entry a name."""
    inside(d, sbx, "sh", "-c",
           "mkdir -p /tmp/n && cd /tmp/n && : > \"$(printf 'a\\nb')\" && "
           ": > \"$(printf '\\033[2J')\" && : > \"$(printf 'x\\377y')\"")
    r = d.request("GET", f"/v1/sandboxes/{sbx}/fs/tmp/n?op=list", token=d.a)
    assert r.status == 200, r
    r.body.decode("utf-8")  # strict
    got = sorted(e["name"] for e in json.loads(r.body)["entries"])
    assert got == sorted(["a\nb", "\x1b[2J", "x\ufffdy"]), got
    inside(d, sbx, "rm", "-rf", "/tmp/n")


def memory_bytes(h, sid):
    r = h.request("GET", f"/v1/sandboxes/{sid}/metrics", token=h.a)
    assert r.status == 200, r
    samples = r.json["samples"]
    return samples[-1]["memory_bytes"] if samples else 0


@pytest.fixture
def small(d):
    """A container sandbox whose /tmp may be larger than its memory."""
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "32M", "tmp_size": "1G"}}, d.a)
    assert r.status == 201, r
    sid = r.json["id"]
    yield sid
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.a).status == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_counts_against_the_sandboxs_memory(d, small, chunked):
    """A tmpfs page is charged to the memory cgroup of whoever allocates it.
    hulld wrote an upload's pages itself: a sandbox limited to 32 MiB took
    a 48 MiB upload (any size /tmp holds) into its /tmp, host memory its limit never counted
    (its own writes there do count). Now the sandbox allocates them: what
    does not fit its memory is a 413, and what fits shows in its usage."""
    (status, body), _ = put_stream(d, f"/v1/sandboxes/{small}/fs/tmp/big", 48, d.a,
                                   chunked=chunked)
    assert status == 413, body
    assert "limits.memory" in body["error"]["message"], body
    assert inside(d, small, "ls", "-A", "/tmp") == ""
    # What fits is taken, and is the sandbox's.
    (status, body), _ = put_stream(d, f"/v1/sandboxes/{small}/fs/tmp/fits", 16, d.a,
                                   chunked=chunked)
    assert status == 201 and body["size"] == 16 << 20, body
    assert wait_until(lambda: memory_bytes(d, small) >= 16 << 20, 60), memory_bytes(d, small)
    assert inside(d, small, "ls", "-A", "/tmp") == "fits\n"


def test_the_first_files_api_counts_against_the_sandboxs_memory(d, small):
    """PUT …/files/{path} (one body of at most --max-body) was written by the
    sandbox's keeper, on the host's account: 8 MiB at a time, a 32 MiB
    sandbox took as many as its tmp_size held."""
    chunk = os.urandom(1 << 20) * 8
    statuses = []
    for i in range(8):
        r = d.request("PUT", f"/v1/sandboxes/{small}/files/f{i}", chunk, d.a, raw=True)
        statuses.append(r.status)
        if r.status != 200:
            assert r.status == 413 and "limits.memory" in r.json["error"]["message"], r
            break
    assert statuses[0] == 200 and statuses[-1] == 413, statuses
    stored = (len(statuses) - 1) * len(chunk)
    assert wait_until(lambda: memory_bytes(d, small) >= stored, 60), (memory_bytes(d, small), stored)


def test_a_templates_files_count_against_the_new_sandboxs_memory(d):
    """A template's files were copied into a new sandbox by its keeper, on
    the host's account: the sandbox's programs still had all of its memory
    besides."""
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "64M"}}, d.a)
    assert r.status == 201, r
    src = r.json["id"]
    made = []
    try:
        inside(d, src, "sh", "-c", "head -c 40000000 /dev/urandom > /tmp/data")
        r = d.request("POST", "/v1/templates", {"sandbox": src, "name": "charged"}, d.a)
        assert r.status == 201, r
        r = d.request("POST", "/v1/sandboxes", {"template": "charged"}, d.a)
        assert r.status == 201, r
        made.append(r.json["id"])
        assert wait_until(lambda: memory_bytes(d, made[0]) >= 40000000, 60), \
            memory_bytes(d, made[0])
    finally:
        for sid in [src, *made]:
            d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.a)
        d.request("DELETE", "/v1/templates/charged", token=d.a)


def test_a_list_of_hostile_names_is_bounded_and_answers(d):
    """4000 entries whose 4 KiB paths are control characters, each escaped
    to six bytes in JSON: about 100 MiB of answer, over what the keeper
    takes from its child (64 MiB). The keeper refused it and then waited
    for the child, which waited to write the rest: the sandbox's keeper
    hung forever, and hulld's shutdown with it. Now a list stops at 16 MiB
    of entries ("truncated") and a refused answer ends its child."""
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "256M"}}, d.a)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        script = ("import os\nos.chdir('/tmp')\nfor i in range(15):\n"
                  "    os.mkdir('\\x01' * 250); os.chdir('\\x01' * 250)\n"
                  "for i in range(4000):\n    open('\\x01' * 190 + '%05d' % i, 'w').close()\n")
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                      {"cmd": ["python3", "-c", script],
                       "limits": {"cpu_time": "5m", "wall_time": "10m"}}, d.a, timeout=900)
        assert r.status == 200 and r.json["verdict"] == "ok", r
        r = d.request("GET", f"/v1/sandboxes/{sid}/fs/tmp?op=list&depth=32", token=d.a,
                      timeout=900)
        assert r.status == 200, r
        body = r.json
        assert body.get("truncated") is True and 0 < len(body["entries"]) < 4016, len(r.body)
        assert len(r.body) <= 17 << 20
        # The sandbox answers on.
        assert inside(d, sid, "echo", "alive") == "alive\n"
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.a, timeout=300).status == 200


@pytest.mark.parametrize("path, doc, field", [
    ("/v1/runs", {"cmd": ["true"], "env": {"PATH\u0000x": "/tmp"}}, None),
    ("/v1/runs", {"cmd": ["true"], "files": {"a\u0000/../b": "x"}}, None),
    ("/v1/runs", {"cmd": ["true"], "network": "none\u0000x"}, "network"),
    ("/v1/runs", {"cmd": ["true"], "image": "busybox\u0000x"}, "image"),
    ("/v1/sandboxes", {"metadata": {"team\u0000x": "a", "team": "b"}}, None),
    ("/v1/sandboxes", {"files": {"a\u0000b": "x"}}, None),
    ("/v1/templates", {"sandbox": "SID", "name": "t\u0000x"}, "name"),
    ("/v1/templates", {"sandbox": "SID", "name": "tn", "start_cmd": ["sh\u0000x"]}, "start_cmd[0]"),
    ("/v1/sandboxes/SID/fs/tmp/x?op=rename", {"to": "/tmp/y\u0000z"}, "to"),
])
def test_a_nul_anywhere_but_data_is_refused(d, sbx, path, doc, field):
    """json-c keeps a field name only up to a NUL ({"a\\u0000x": 1} is
    {"a": 1}: two metadata keys in one, an env name or a file path cut
    short), and C reads a network, an image, a template name or a path only
    up to one: each was accepted and used cut. A NUL is data only in stdin
    and in the contents of files."""
    path = path.replace("SID", sbx)
    doc = json.loads(json.dumps(doc).replace("SID", sbx))
    r = d.request("POST", path, doc, d.a)
    assert r.status == 400, r
    e = r.json["error"]
    assert "NUL" in e["message"] and e.get("field") == field, e


def test_a_nul_in_data_is_kept(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "cat; cat /tmp/f"],
                                       "stdin": "a\u0000b", "files": {"f": "x\u0000y"}}, d.a)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    assert base64.b64decode(r.json["stdout_base64"]) == b"a\0bx\0y", r.json


def test_a_recursive_watch_of_hostile_names_is_bounded_and_watches(d):
    """The watch's answer lists each watched directory's path: 4000 deep
    directories named in control characters made it about 100 MiB, which
    hung the keeper (then, once refused, failed the watch). It is bounded
    as a list is: the directories past 16 MiB of paths go unwatched, as
    past the 4096th, and the watch runs."""
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "256M"}}, d.a)
    assert r.status == 201, r
    sid = r.json["id"]
    s = None
    try:
        script = ("import os\nos.chdir('/tmp')\nos.mkdir('w'); os.chdir('w')\nfor i in range(15):\n"
                  "    os.mkdir('\\x01' * 250); os.chdir('\\x01' * 250)\n"
                  "for i in range(4000):\n    os.mkdir('\\x01' * 190 + '%05d' % i)\n")
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec",
                      {"cmd": ["python3", "-c", script],
                       "limits": {"cpu_time": "5m", "wall_time": "10m"}}, d.a, timeout=900)
        assert r.status == 200 and r.json["verdict"] == "ok", r
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(900)
        s.connect(d.sock)
        s.sendall(f"GET /v1/sandboxes/{sid}/fs/tmp/w?op=watch&recursive=true HTTP/1.1\r\n"
                  f"Host: h\r\nAuthorization: Bearer {d.a}\r\n\r\n".encode())
        f = s.makefile("rb")
        status = f.readline()
        assert b" 200 " in status, status + f.read1(4096)
        while f.readline() not in (b"\r\n", b""):
            pass  # headers
        inside(d, sid, "touch", "/tmp/w/new")
        seen = b""
        while b'"/tmp/w/new"' not in seen:
            line = f.readline()
            assert line, seen
            seen += line
    finally:
        if s:
            s.close()
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.a, timeout=300).status == 200
