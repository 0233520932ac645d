"""A sandbox's ports (docs/api.md "Ports"): POST /v1/sandboxes {"ports":
[...]} or POST …/ports {"port": N} gives a URL on the host's loopback that
hulld forwards into the sandbox, only for a request carrying the sandbox's
access token (X-Hull-Access-Token, or ?token=): 401 without, 403 with
another sandbox's. The token never reaches the sandbox's server. After
DELETE the listener is gone, and so are the sandbox's veth and lease.

A real hulld on a tmp socket, networks in state directories of this
module's own, a server in the sandbox written by the test (python3,
http.server) that echoes what it got."""
import http.client
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hulldlib import HULLD, SRC, Hulld, hull_cli, private_net_dirs, wait_until

sys.path.insert(0, str(SRC / "sdk" / "python"))
import hull  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

TAG = f"prt{os.getpid() % 100000}"

# Echoes each request as JSON: method, path, headers, body; /ws switches
# to a raw echo of bytes after the 101 (what a WebSocket does after its
# upgrade, without the framing).
ECHO = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        if self.path == "/ws":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                b = self.connection.recv(65536)
                if not b:
                    return
                self.connection.sendall(b)
        out = json.dumps({"method": self.command, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = answer

ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
'''


@pytest.fixture(scope="module")
def netdirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("netstate")
    with private_net_dirs(base) as made:
        yield base, made


@pytest.fixture(scope="module")
def d(tmp_path_factory, netdirs):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--max-runs", "1")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme"), "other": h.token("user", "globex"),
                "reader": h.token("reader", "acme")}
    h.netbase, made = netdirs
    h.start()
    name = f"{TAG}-net"
    r = hull_cli("network", "create", name)
    assert r.returncode == 0, r
    made.append(name)
    h.net = name
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    procs, entries, cgroups = h.leaks()
    assert (procs, entries, cgroups) == ([], [], []), h.log.read_text()


def post(d, path, body, who="user"):
    return d.request("POST", path, body, d.tokens[who])


def host_port(url):
    assert url.startswith("http://127.0.0.1:") and url.endswith("/"), url
    return int(url[len("http://127.0.0.1:"):-1])


def fetch(port, path="/", headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start_echo(d, sid, port, bind="0.0.0.0"):
    """The echo server in the sandbox, as a background process."""
    r = d.request("PUT", f"/v1/sandboxes/{sid}/fs/tmp/echo.py", ECHO.encode(),
                  d.tokens["user"], raw=True)
    assert r.status == 201, r
    r = post(d, f"/v1/sandboxes/{sid}/processes",
             {"cmd": ["python3", "/tmp/echo.py", bind, str(port)]})
    assert r.status == 201, r
    return r.json["id"]


def wait_served(hport, token):
    """Until the server in the sandbox answers through the proxy (it takes
    a moment to start: until then the proxy says 502)."""
    def up():
        try:
            return fetch(hport, "/ready", {"X-Hull-Access-Token": token})[0] == 200
        except OSError:
            return False
    assert wait_until(up, 120), "the sandbox's server never answered through its port"


def listeners(pid):
    """127.0.0.1 TCP listeners of process pid (by the socket inodes it holds)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    ports = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and inode in inodes and local.startswith("0100007F:"):
                ports.add(int(local.split(":")[1], 16))
    return ports


def refused(port):
    s = socket.socket()
    try:
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def our_veths(d):
    """Host interfaces hull-net marked as this module's run dir's."""
    mark = f"hull {d.netbase / 'run'}"
    found = []
    for n in os.listdir("/sys/class/net"):
        try:
            if Path(f"/sys/class/net/{n}/ifalias").read_text().strip() == mark:
                found.append(n)
        except OSError:
            pass
    return found


def nft_ruleset():
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_port_reachable_with_the_token_only(d):
    before = listeners(d.proc.pid)
    r = post(d, "/v1/sandboxes", {"network": {"name": d.net}, "ports": [8080]})
    assert r.status == 201, r
    sb = r.json
    sid, token = sb["id"], sb["access_token"]
    assert len(token) == 64 and all(c in "0123456789abcdef" for c in token), sb
    assert [p["port"] for p in sb["ports"]] == [8080], sb
    hport = host_port(sb["ports"][0]["url"])
    assert listeners(d.proc.pid) - before == {hport}
    veths = our_veths(d)
    assert len(veths) == 1, veths
    assert veths[0] in nft_ruleset()  # its member chains, named after it
    # the token is shown once: not by GET, nor in the list
    r = d.request("GET", f"/v1/sandboxes/{sid}", token=d.tokens["user"])
    assert r.status == 200 and "access_token" not in r.json, r
    assert r.json["ports"] == sb["ports"], r
    assert token.encode() not in d.request("GET", "/v1/sandboxes", token=d.tokens["user"]).body
    other = post(d, "/v1/sandboxes", {}, "other")
    assert other.status == 201, other
    try:
        # nothing listens yet: the proxy says so
        st, body = fetch(hport, "/", {"X-Hull-Access-Token": token})
        assert st == 502 and json.loads(body)["error"]["code"] == "bad_gateway", body
        assert b"nothing listens" in body, body
        start_echo(d, sid, 8080)
        wait_served(hport, token)
        # the header, then ?token=: the server sees neither
        st, body = fetch(hport, "/a?x=1", {"X-Hull-Access-Token": token, "X-Other": "y"})
        assert st == 200, body
        got = json.loads(body)
        assert got["path"] == "/a?x=1" and got["headers"]["x-other"] == "y", got
        assert "x-hull-access-token" not in got["headers"], got
        st, body = fetch(hport, f"/b?token={token}&y=2")
        assert st == 200 and json.loads(body)["path"] == "/b?y=2", body
        st, body = fetch(hport, f"/c?token={token}")
        assert st == 200 and json.loads(body)["path"] == "/c", body
        # a body passes, and what was sent goes unchanged
        st, body = fetch(hport, "/p", {"X-Hull-Access-Token": token,
                                       "Content-Type": "text/plain"}, "POST", "x" * 100000)
        assert st == 200 and json.loads(body)["body"] == "x" * 100000
        # without a token, with a wrong one, with another sandbox's
        st, body = fetch(hport, "/")
        assert st == 401 and json.loads(body)["error"]["code"] == "unauthorized", body
        assert token.encode() not in body
        for bad in ("0" * 64, token[:-1], token + "0", other.json["access_token"], ""):
            st, body = fetch(hport, "/", {"X-Hull-Access-Token": bad})
            assert st == (401 if bad == "" else 403), (bad, body)
            st, body = fetch(hport, f"/?token={bad}")
            assert st == (401 if bad == "" else 403), (bad, body)
        # a hulld API token is not the access token
        st, _ = fetch(hport, "/", {"X-Hull-Access-Token": d.tokens["user"]})
        assert st == 403
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{other.json['id']}",
                         token=d.tokens["other"]).status == 200
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"]).status == 200
    # gone with it: the listener, the veth, the lease; the token is not logged
    assert listeners(d.proc.pid) == before
    assert refused(hport)
    assert our_veths(d) == []
    assert veths[0] not in nft_ruleset()
    assert os.listdir(d.netbase / "run" / "leases") == []
    assert token not in d.log.read_text()


def test_expose_later_list_remove_and_tenancy(d):
    """POST …/ports on a running sandbox (here on network "none": the port
    goes into the sandbox's own namespace, a server on its loopback is
    reached); GET, DELETE of one port; other tenants get 404."""
    r = post(d, "/v1/sandboxes", {})
    assert r.status == 201 and r.json["ports"] == [], r
    sid, token = r.json["id"], r.json["access_token"]
    try:
        start_echo(d, sid, 9000, bind="127.0.0.1")
        r = post(d, f"/v1/sandboxes/{sid}/ports", {"port": 9000})
        assert r.status == 201 and r.json["port"] == 9000, r
        url = r.json["url"]
        r = post(d, f"/v1/sandboxes/{sid}/ports", {"port": 9000})
        assert r.status == 200 and r.json["url"] == url, r
        r = d.request("GET", f"/v1/sandboxes/{sid}/ports", token=d.tokens["reader"])
        assert r.status == 200 and r.json == {"ports": [{"port": 9000, "url": url}]}, r
        r = d.request("GET", f"/v1/sandboxes/{sid}/ports/9000", token=d.tokens["user"])
        assert r.status == 200 and r.json["url"] == url, r
        hport = host_port(url)
        wait_served(hport, token)
        # a keep-alive connection: the token belongs to its first request
        c = http.client.HTTPConnection("127.0.0.1", hport, timeout=60)
        c.request("GET", "/one", headers={"X-Hull-Access-Token": token})
        assert c.getresponse().read() and True
        c.request("GET", "/two")
        r2 = c.getresponse()
        assert r2.status == 200 and json.loads(r2.read())["path"] == "/two"
        # an upgraded connection carries raw bytes both ways
        s = socket.create_connection(("127.0.0.1", hport), timeout=60)
        s.sendall(f"GET /ws HTTP/1.1\r\nHost: x\r\nX-Hull-Access-Token: {token}\r\n"
                  "Upgrade: echo\r\nConnection: Upgrade\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        rest = head.split(b"\r\n\r\n", 1)[1]
        payload = os.urandom(200000)
        s.sendall(payload)
        while len(rest) < len(payload):
            chunk = s.recv(65536)
            assert chunk
            rest += chunk
        assert rest == payload
        # other tenants: 404, whatever the verb
        for m, p, b in (("GET", "/ports", None), ("POST", "/ports", {"port": 1}),
                        ("DELETE", "/ports/9000", None)):
            r = d.request(m, f"/v1/sandboxes/{sid}{p}", b, d.tokens["other"])
            assert r.status == 404, (m, p, r)
        # readers may look, not expose
        assert post(d, f"/v1/sandboxes/{sid}/ports", {"port": 1}, "reader").status == 403
        # bad input
        for body, field in (({"port": 0}, "port"), ({"port": "80"}, "port"), ({}, "port"),
                            ({"port": 70000}, "port"), ({"port": 80, "x": 1}, "x")):
            r = post(d, f"/v1/sandboxes/{sid}/ports", body)
            assert r.status == 400 and r.json["error"]["field"] == field, (body, r)
        r = d.request("DELETE", f"/v1/sandboxes/{sid}/ports/9001", token=d.tokens["user"])
        assert r.status == 404, r
        # removing the port ends its listener and the connections through it
        r = d.request("DELETE", f"/v1/sandboxes/{sid}/ports/9000", token=d.tokens["user"])
        assert r.status == 200 and r.json == {"port": 9000, "removed": True}, r
        assert refused(hport)
        s.settimeout(60)
        assert s.recv(10) == b""
        s.close()
        c.close()
        r = d.request("GET", f"/v1/sandboxes/{sid}/ports", token=d.tokens["user"])
        assert r.json == {"ports": []}, r
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"]).status == 200


def test_create_refuses_bad_ports_and_makes_nothing(d):
    before = listeners(d.proc.pid)
    n = len(d.request("GET", "/v1/sandboxes", token=d.tokens["user"]).json["sandboxes"])
    for ports, field in (("8080", "ports"), ([0], "ports[0]"), ([80, "81"], "ports[1]"),
                         ([80, 80], "ports[1]"), (list(range(1, 18)), "ports"),
                         ([65536], "ports[0]")):
        r = post(d, "/v1/sandboxes", {"ports": ports})
        assert r.status == 400 and r.json["error"]["field"] == field, (ports, r)
    assert len(d.request("GET", "/v1/sandboxes",
                         token=d.tokens["user"]).json["sandboxes"]) == n
    assert listeners(d.proc.pid) == before


def test_sdk_port_url(d):
    c = hull.Client(socket_path=d.sock, token=d.tokens["user"])
    with c.sandbox(network={"name": d.net}, ports=[8081]) as sb:
        assert sb.access_token and len(sb.access_token) == 64
        url = sb.port_url(8081)
        assert sb.ports() == {8081: url}
        start_echo(d, sb.id, 8081)
        hport = host_port(url)
        wait_served(hport, sb.access_token)
        st, body = fetch(hport, "/sdk", {"X-Hull-Access-Token": sb.access_token})
        assert st == 200 and json.loads(body)["path"] == "/sdk"
        # a URL with the token in it, for a browser's first request
        full = sb.port_url(8081, with_token=True)
        assert full == f"{url}?token={sb.access_token}"
        st, _ = fetch(hport, f"/?token={sb.access_token}")
        assert st == 200
        url2 = sb.port_url(8082)  # exposed on demand
        assert host_port(url2) != hport and set(sb.ports()) == {8081, 8082}
        sb.close_port(8082)
        assert set(sb.ports()) == {8081}
    assert refused(hport)


def raw(port, data):
    """Send data on a new connection to the proxy; what it answers, to EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        s.close()


def test_malformed_heads_are_refused_before_anything(d):
    """What the proxy cannot read the same way as the sandbox's server
    (a line not ending in CRLF, a NUL) is a 400, a head over 16 KiB a 431,
    with or without a good token: the sandbox is never asked."""
    r = post(d, "/v1/sandboxes", {"ports": [8000]})
    assert r.status == 201, r
    sid, token = r.json["id"], r.json["access_token"]
    hport = host_port(r.json["ports"][0]["url"])
    try:
        for head in (f"GET / HTTP/1.1\r\nHost: x\nX-Hull-Access-Token: {token}\r\n\r\n",
                     f"GET / HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\nA: \rb\r\n\r\n",
                     f"GET /\0 HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\n\r\n"):
            got = raw(hport, head.encode())
            assert got.startswith(b"HTTP/1.1 400 "), (head, got)
            assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "invalid_request"
        got = raw(hport, f"GET / HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\nA: {'a' * 17000}"
                         "\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 431 "), got[:100]
        # a client that goes before its head is complete gets nothing, and
        # the port still serves (nothing listens: the proxy's 502)
        s = socket.create_connection(("127.0.0.1", hport), timeout=60)
        s.sendall(b"GET / HTTP/1.1\r\n")
        s.close()
        got = raw(hport, f"GET / HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 502 "), got
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"]).status == 200
    assert refused(hport)


def test_token_headers_the_proxy_would_not_take_out_are_refused(d):
    """A token header a server may read but the proxy would not take out
    (a name with a blank before its colon, a folded line) is a 400 with
    any token: the sandbox's server never gets its token that way."""
    r = post(d, "/v1/sandboxes", {"ports": [8000]})
    assert r.status == 201, r
    sid, token = r.json["id"], r.json["access_token"]
    hport = host_port(r.json["ports"][0]["url"])
    try:
        for head in (f"GET /?token={token} HTTP/1.1\r\nX-Hull-Access-Token : {token}\r\n\r\n",
                     f"GET /?token={token} HTTP/1.1\r\nX-Hull-Access-Token\t: {token}\r\n\r\n",
                     f"GET /?token={token} HTTP/1.1\r\nX-Hull-Access-Token:\r\n {token}\r\n\r\n",
                     f"GET / HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\nA: b\r\n\tc\r\n\r\n"):
            got = raw(hport, head.encode())
            assert got.startswith(b"HTTP/1.1 400 "), (head, got)
            assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "invalid_request"
        # Blanks after the colon, or in a value, are as before (nothing
        # listens: the proxy's 502 once the token passed).
        got = raw(hport, f"GET / HTTP/1.1\r\nX-Hull-Access-Token: \t{token} \r\nA: b c\r\n\r\n"
                  .encode())
        assert got.startswith(b"HTTP/1.1 502 "), got
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tokens["user"]).status == 200
    assert refused(hport)


def test_async_sdk_port_url(d):
    import asyncio

    async def main():
        c = hull.AsyncClient(socket_path=d.sock, token=d.tokens["user"])
        async with c.sandbox(ports=[8083]) as sb:
            assert sb.access_token and len(sb.access_token) == 64
            url = await sb.port_url(8083)
            assert await sb.ports() == {8083: url}
            full = await sb.port_url(8083, with_token=True)
            assert full == f"{url}?token={sb.access_token}"
            await sb.close_port(8083)
            assert await sb.ports() == {}
            return host_port(url)

    hport = asyncio.run(main())
    assert refused(hport)


def test_hulld_stopping_cuts_open_port_connections(tmp_path):
    """SIGTERM with a proxied connection open (an upgraded one, idle): hulld
    destroys the sandbox, cuts the connection, closes the listener and
    exits 0, leaving nothing."""
    h = Hulld(tmp_path)
    Path(h.state).mkdir(parents=True)
    tok = h.token("user", "acme")
    h.start()
    try:
        r = h.request("POST", "/v1/sandboxes", {"ports": [8000]}, tok)
        assert r.status == 201, r
        sid, token = r.json["id"], r.json["access_token"]
        hport = host_port(r.json["ports"][0]["url"])
        r = h.request("PUT", f"/v1/sandboxes/{sid}/fs/tmp/echo.py", ECHO.encode(), tok, raw=True)
        assert r.status == 201, r
        r = h.request("POST", f"/v1/sandboxes/{sid}/processes",
                      {"cmd": ["python3", "/tmp/echo.py", "127.0.0.1", "8000"]}, tok)
        assert r.status == 201, r
        wait_served(hport, token)
        s = socket.create_connection(("127.0.0.1", hport), timeout=120)
        s.sendall(f"GET /ws HTTP/1.1\r\nX-Hull-Access-Token: {token}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        pid = h.proc.pid
        assert hport in listeners(pid)
    finally:
        rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert s.recv(10) == b""
    s.close()
    assert refused(hport)
    procs, entries, cgroups = h.leaks()
    assert (procs, entries, cgroups) == ([], [], []), h.log.read_text()
