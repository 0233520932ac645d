"""The host side against a hostile guest: the agent in the VM is the
guest's, so whatever it says is held to the host's own limits and
deadlines. A fake agent in this process takes the place of the real one
at the VM's run/agent.sock (the guest is the attacker; this is what it
could send), and hull is run against it.

Outcomes only (verdicts, sizes, that hull ends); the hang guards are
generous, so a slow machine does not fail these."""
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from test_vm_lib import h  # noqa: F401 (the fixture)
from test_vm_lib import HULL, MEM, Hull

MAGIC = 0x4c4c5548
REQ, RESP, STDIN, STDOUT, STDERR, DATA, EXIT = 1, 2, 3, 4, 5, 6, 7
HANG_GUARD = 90  # seconds: three times the longest deadline hull has here


def frame(t, body):
    return struct.pack("<IBBHI", MAGIC, t, 0, 0, len(body)) + body


def resp(o):
    return frame(RESP, json.dumps(o).encode())


class FakeAgent:
    """Serves run/agent.sock of a running VM in place of its agent (which
    is put back afterwards). handler(conn, req) answers each request; it
    may loop sending as long as the host reads."""

    def __init__(self, run_dir, handler):
        self.path = os.path.join(run_dir, "agent.sock")
        self.real = self.path + ".real"
        self.handler = handler
        self.closed = threading.Event()  # the host ended a session
        self.requests = []
        os.rename(self.path, self.real)
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            # A deep queue: a flood never lets hull find the socket empty
            # (SO_SNDBUFFORCE, 32 on Linux, passes wmem_max; we are root).
            c.setsockopt(socket.SOL_SOCKET, 32, 16 << 20)
            try:
                while not self.stop:
                    t, body = self.read_frame(c)
                    if t == REQ:
                        req = json.loads(body)
                        self.requests.append(req)
                        self.handler(self, c, req)
            except (EOFError, OSError):
                self.closed.set()
            finally:
                c.close()

    @staticmethod
    def read_frame(c):
        def exactly(n):
            b = b""
            while len(b) < n:
                d = c.recv(n - len(b))
                if not d:
                    raise EOFError
                b += d
            return b
        _, t, _, _, n = struct.unpack("<IBBHI", exactly(12))
        return t, exactly(n)

    def close(self):
        self.stop = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.srv.close()
        self.thread.join(timeout=30)
        os.unlink(self.path)
        os.rename(self.real, self.path)


def hello(req):
    return resp({"ok": True, "id": req["id"], "nonce": req.get("nonce"), "version": 1})


@pytest.fixture
def vm(h):
    """A running VM of its own (a failed session may mark it failed)."""
    vid = f"hostile{os.getpid() % 1000}-{time.monotonic_ns() % 100000}"
    h.ok("vm", "create", "--memory", MEM, vid)
    h.ok("vm", "start", vid, timeout=600)
    yield vid
    h.run("vm", "delete", "--force", vid)


@pytest.fixture
def fake(h, vm):
    agents = []

    def make(handler):
        a = FakeAgent(os.path.join(h.root, "vm", vm, "run"), handler)
        agents.append(a)
        return a
    yield make
    for a in agents:
        a.close()


def flooder(stream):
    """The exec answered, then output frames for as long as the host reads
    (paced, so hull without a cap grows slowly enough to be watched)."""
    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
        elif req["op"] == "exec":
            c.sendall(resp({"ok": True, "id": req["id"], "pid": 5}))
            chunk = frame(stream, b"A" * 65536)
            while True:
                c.sendall(chunk)
                time.sleep(0.02)
        else:
            c.sendall(resp({"ok": True, "id": req["id"]}))
    return handler


@pytest.mark.parametrize("stream", [STDOUT, STDERR])
def test_output_over_the_limit_is_cut_by_the_host(h, vm, fake, stream):
    """An agent sending past --output: the host takes output_bytes, ends
    the exec as output_limit and drops the session (it stops reading)."""
    agent = fake(flooder(stream))
    p = h.run("vm", "exec", "--json", "--output", "256K", vm, "--", "echo", "hi",
              timeout=HANG_GUARD)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    key = "stdout" if stream == STDOUT else "stderr"
    assert r["verdict"] == "output_limit", r["verdict"]
    assert len(r[key]) == 256 << 10 and r[key] == "A" * (256 << 10)
    assert r[f"{key}_truncated"] is True
    assert agent.closed.wait(30), "the host kept the flooding session"


def test_output_to_a_terminal_fd_is_cut_too(h, vm, fake, tmp_path):
    """Without --json the output goes straight to hull's stdout: the same
    cap holds there, and the exit says a limit was hit (124)."""
    fake(flooder(STDOUT))
    out = tmp_path / "out"
    with open(out, "wb") as f:
        p = subprocess.run([HULL, "--root", h.root, "vm", "exec", "--output", "256K", vm, "--",
                            "echo", "hi"], stdout=f, stderr=subprocess.PIPE, env=h.env,
                           timeout=HANG_GUARD)
    assert p.returncode == 124, p.stderr
    assert b"verdict=output_limit" in p.stderr, p.stderr
    assert out.stat().st_size == 256 << 10


def test_hello_flood_does_not_hold_the_host(h, vm, fake):
    """On connect, endless answers to nothing: hello's deadline is fixed
    when it starts, so the other frames do not keep hull waiting."""
    def handler(agent, c, req):
        while True:
            c.sendall(resp({"ok": True, "id": 1}) * 100)
    fake(handler)
    p = h.run("vm", "exec", vm, "--", "true", timeout=HANG_GUARD)
    assert p.returncode == 125, p.stderr
    assert b"did not answer" in p.stderr, p.stderr


def test_call_with_unrelated_answers_ends_at_its_deadline(h, vm, fake):
    """A request answered only with frames that are not its answer ends at
    the request's deadline all the same."""
    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
            return
        # Small answers to another id, many at a time: hull parses each
        # slower than this sends it, so it always finds more waiting.
        other = resp({"ok": True, "id": req["id"] - 1000}) * 1000
        while True:
            c.sendall(other)
    fake(handler)
    p = h.run("vm", "exec", vm, "--", "true", timeout=HANG_GUARD)
    assert p.returncode == 125, p.stderr
    assert b"did not answer" in p.stderr, p.stderr


def test_trickled_output_does_not_extend_the_wall_deadline(h, vm, fake):
    """A byte now and then, never the end: the exec gives up at its wall
    time plus the margin, however often the guest sends."""
    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
        elif req["op"] == "exec":
            c.sendall(resp({"ok": True, "id": req["id"], "pid": 5}))
            while True:
                c.sendall(frame(STDOUT, b"x"))
                time.sleep(1)
    fake(handler)
    p = h.run("vm", "exec", "--wall-time", "1s", vm, "--", "sleep", "100", timeout=HANG_GUARD)
    assert p.returncode == 125, p.stderr
    assert b"did not report the end" in p.stderr, p.stderr


def test_a_wall_time_past_int_range_is_not_cut_short(h, vm):
    """--wall-time of 2^32 + 1000 ms (about 50 days): hull used to keep
    the deadline in an int, so it wrapped to 1 s + the 30 s margin and a
    40 s workload failed as a hung agent. The real agent here."""
    p = h.run("vm", "exec", "--wall-time", f"{(1 << 32) + 1000}ms", vm, "--", "sleep", "40",
              timeout=HANG_GUARD + 60)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("extents", ['"zz"', "[1, 2]", '[[0, "a"]]', "[[0]]", "{}"])
def test_malformed_extents_are_an_error_not_a_crash(h, vm, fake, tmp_path, extents):
    """get_file's extents of the wrong shape: json-c's asserts used to
    abort hull (SIGABRT); now an error, and nothing is written."""
    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
        elif req["op"] == "get_file":
            c.sendall(frame(RESP, b'{"ok": true, "id": %d, "size": 4, "mode": 420, '
                            b'"extents": %s, "length": 4}' % (req["id"], extents.encode()))
                      + frame(DATA, b"ABCD") + frame(DATA, b""))
        else:
            c.sendall(resp({"ok": True, "id": req["id"]}))
    fake(handler)
    out = tmp_path / "out"
    p = h.run("vm", "cp", f"{vm}:/x", str(out), timeout=HANG_GUARD)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert b"malformed answer from the agent" in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mode", ["error", "verdict"])
def test_guest_text_reaches_the_terminal_printable(h, vm, fake, mode):
    """The agent's error text and verdict are the guest's words: control
    characters (escape sequences, a bell, a newline forging a hull: line)
    reach the host's stderr as '?'."""
    evil = "\x1b[2J\x1b[31mFAKE\nhull: all good\x07\x9b"

    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
        elif req["op"] == "exec" and mode == "error":
            c.sendall(resp({"ok": False, "id": req["id"], "errno": 2, "error": evil}))
        elif req["op"] == "exec":
            c.sendall(resp({"ok": True, "id": req["id"], "pid": 5}))
            c.sendall(frame(EXIT, json.dumps({"id": req["id"], "verdict": evil[:20],
                                              "exit_code": 1, "signal": 0}).encode()))
        else:
            c.sendall(resp({"ok": True, "id": req["id"]}))
    fake(handler)
    p = h.run("vm", "exec", vm, "--", "true", timeout=HANG_GUARD)
    err = p.stderr.decode()
    assert "FAKE" in err, err
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7f <= ord(ch) < 0xa0 for ch in err), err
    assert not any(line.startswith("hull: all good") for line in err.splitlines()), err


def agent_lib_sources(src_root):
    """The library files the agent is built with besides src/guest/*.c: the
    Makefile's AGENT_SRCS, so this copy stays what `make` builds."""
    text = open(os.path.join(src_root, "Makefile")).read().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if l.startswith("AGENT_SRCS :="))
    return [w[len("src/lib/"):] for w in line.split(":=", 1)[1].split()
            if w.startswith("src/lib/")]


def build_agent(src_root, gen_dir, out, patch):
    """The real agent's source with patch (old, new) applied: a guest root
    that does not keep the protocol's limits."""
    tree = os.path.join(os.path.dirname(out), "src")
    shutil.copytree(os.path.join(src_root, "src", "guest"), os.path.join(tree, "guest"))
    shutil.copytree(os.path.join(src_root, "src", "lib"), os.path.join(tree, "lib"))
    path = os.path.join(tree, "guest", patch[0])
    text = open(path).read()
    assert patch[1] in text, "the agent source changed: update the patch"
    open(path, "w").write(text.replace(patch[1], patch[2]))
    cflags = subprocess.run(["pkg-config", "--cflags", "json-c"], capture_output=True,
                            text=True).stdout.split()
    srcs = [os.path.join(tree, "guest", f) for f in os.listdir(os.path.join(tree, "guest"))
            if f.endswith(".c")] + [os.path.join(tree, "lib", f)
                                    for f in agent_lib_sources(src_root)]
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-static", "-I",
                    os.path.join(src_root, "include"), "-iquote", os.path.join(tree, "lib"),
                    "-iquote", gen_dir, *cflags, "-o", out, *srcs, "-ljson-c"], check=True,
                   timeout=600)


def hostile_env(h, tmp_path, agent):
    """hull's environment for VMs of agent: a cache of its own (their
    initramfs and templates are that agent's), sharing only the kernels
    and root filesystems."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    shared = os.environ.get("HULL_VM_CACHE", "/var/cache/hull/vm")
    for d in ("kernels", "rootfs"):
        if os.path.isdir(os.path.join(shared, d)):
            os.symlink(os.path.join(shared, d), cache / d)
    return dict(h.env, HULL_AGENT=agent, HULL_VM_CACHE=str(cache))


def test_copy_out_max_is_the_hosts_limit(h, tmp_path):
    """An agent that ignores max_data: the host refuses data announced past
    --copy-out-max (hull used to write all 3 MB), and what it wrote never
    passes the limit."""
    agent = str(tmp_path / "agent" / "hull-agent")
    os.makedirs(os.path.dirname(agent))
    build_agent(os.path.join(os.path.dirname(__file__), "..", ".."),
                os.path.join(os.path.dirname(HULL), "gen"), agent,
                ("agent_files.c", 'int64_t max_data = get_i64(req, "max_data", -1);',
                 'int64_t max_data = get_i64(req, "max_data", -1) >= 0 ? INT64_MAX : -1;'))
    env = hostile_env(h, tmp_path, agent)
    big, small = tmp_path / "big", tmp_path / "small"
    p = subprocess.run([HULL, "--root", h.root, "sandbox", "run", "--isolation", "microvm",
                        "--json", "--copy-out-max", "1M", "--copy-out", f"/tmp/big:{big}",
                        "--copy-out", f"/tmp/small:{small}", "--", "/bin/sh", "-c",
                        "head -c 3000000 /dev/zero | tr '\\0' A > /tmp/big; "
                        "echo hi > /tmp/small"],
                       capture_output=True, env=env, timeout=900)
    r = json.loads(p.stdout)
    assert r["verdict"] == "ok", r
    files = {f["host"]: f for f in r["files"]}
    assert not big.exists() and files[str(big)]["status"] == "failed", files
    assert "over the limit" in files[str(big)]["error"], files
    written = sum(f.stat().st_size for f in (big, small) if f.exists())
    assert written <= 1 << 20, written


def test_hulld_fs_read_of_a_vm_file_is_bounded(tmp_path_factory):
    """hulld stages a microVM sandbox's file on the host before sending it:
    an agent announcing 8 GiB of data (past the guest's RAM, the bound) is
    refused before a byte is staged, whatever it was asked to keep to."""
    from test_hulld_microvm import create, delete, microvm_hulld
    vms = "/run/hull/vm"
    with microvm_hulld(tmp_path_factory) as d:
        before = set(os.listdir(vms)) if os.path.isdir(vms) else set()
        sid = create(d)
        try:
            (vid,) = set(os.listdir(vms)) - before

            def handler(agent, c, req):
                if req["op"] == "hello":
                    c.sendall(hello(req))
                elif req["op"] == "get_file":
                    n = 8 << 30
                    c.sendall(resp({"ok": True, "id": req["id"], "size": n, "mode": 0o644,
                                    "extents": [[0, n]], "length": n, "cut": False}))
                else:
                    c.sendall(resp({"ok": True, "id": req["id"]}))
            agent = FakeAgent(os.path.join(vms, vid, "run"), handler)
            try:
                r = d.request("GET", f"/v1/sandboxes/{sid}/fs/tmp/big", token=d.tokens["user"],
                              timeout=HANG_GUARD)
            finally:
                agent.close()
            assert any(q["op"] == "get_file" for q in agent.requests)
            assert r.status >= 400 and b"over the limit" in r.body, r
            stage = os.path.join("/run/hull", f"vmsbx-{vid}")
            assert not [f for f in os.listdir(stage) if f.startswith("read")], os.listdir(stage)
        finally:
            delete(d, sid)


def agent_call(sock_path, op, timeout):
    """One request straight to a VM's agent (hello first, repeated until it
    answers, as hull does): the answer's JSON."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.settimeout(0.5)
    try:
        for i in range(1, 200):
            s.sendall(frame(REQ, json.dumps({"op": "hello", "id": i}).encode()))
            try:
                t, body = FakeAgent.read_frame(s)
                if t == RESP and json.loads(body).get("id") is not None:
                    break
            except socket.timeout:
                continue
        s.settimeout(timeout)
        s.sendall(frame(REQ, json.dumps({"op": op, "id": 1000}).encode()))
        while True:
            t, body = FakeAgent.read_frame(s)
            if t == RESP and json.loads(body).get("id") == 1000:
                return json.loads(body)
    finally:
        s.close()


def test_the_console_log_is_capped(h, tmp_path):
    """Guest root printing 12 MB to its serial console: QEMU writes
    run/console.log on the host's disk, and it stops at 8 MiB; the VM goes
    on (its QEMU is not killed by the file size limit)."""
    agent = str(tmp_path / "agent" / "hull-agent")
    os.makedirs(os.path.dirname(agent))
    flood = ('else if (strcmp(op, "ping") == 0) {\n'
             '        static char junk[65536];\n'
             '        memset(junk, \'Z\', sizeof(junk));\n'
             '        int t = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);\n'
             '        for (int i = 0; t >= 0 && i < 12000000 / 65536; i++)\n'
             '            if (write(t, junk, sizeof(junk)) < 0)\n'
             '                break;\n'
             '        if (t >= 0)\n'
             '            close(t);\n'
             '        conn_send_ok(c);\n'
             '    }')
    build_agent(os.path.join(os.path.dirname(__file__), "..", ".."),
                os.path.join(os.path.dirname(HULL), "gen"), agent,
                ("agent_main.c", 'else if (strcmp(op, "ping") == 0)\n        conn_send_ok(c);',
                 flood))
    hc = Hull(h.root)
    hc.env = hostile_env(h, tmp_path, agent)
    vid = "console-cap"
    hc.ok("vm", "create", "--memory", MEM, vid)
    try:
        hc.ok("vm", "start", vid, timeout=600)
        run = os.path.join(h.root, "vm", vid, "run")
        assert agent_call(os.path.join(run, "agent.sock"), "ping", 600)["ok"] is True
        size = os.path.getsize(os.path.join(run, "console.log"))
        assert 0 < size <= 8 << 20, size
        assert hc.exec(vid, "echo", "alive").stdout == b"alive\n"
    finally:
        hc.run("vm", "delete", "--force", vid)


def test_trickled_file_data_does_not_hold_the_host(h, vm, fake, tmp_path):
    """get_file's data a byte a second: each byte used to renew the 30 s
    wait, so an announced file held hull for ever. Now the data must keep
    an average pace, and the copy fails with nothing left behind."""
    def handler(agent, c, req):
        if req["op"] == "hello":
            c.sendall(hello(req))
        elif req["op"] == "get_file":
            n = 10 << 20
            c.sendall(resp({"ok": True, "id": req["id"], "size": n, "mode": 0o644,
                            "extents": [[0, n]], "length": n, "cut": False}))
            while True:
                c.sendall(frame(DATA, b"x"))
                time.sleep(1)
        else:
            c.sendall(resp({"ok": True, "id": req["id"]}))
    fake(handler)
    p = h.run("vm", "cp", f"{vm}:/x", str(tmp_path / "out"), timeout=HANG_GUARD)
    assert p.returncode == 1, p.stderr
    assert b"stopped sending" in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []
