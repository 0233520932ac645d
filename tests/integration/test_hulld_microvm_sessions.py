"""Several agent sessions at once in a microVM sandbox (docs/agent-protocol.md,
"Sessions"): a background process no longer holds the sandbox's execs and
file calls back; signals reach the process without ending its session; PTY
processes with resize; ?op=watch; and a template whose start_cmd keeps
running while its ready_cmd runs. TCG unless HULL_VM_ACCEL says otherwise;
run under `flock /work/wt/vm.lock` (the VM tests are host-wide)."""
import base64
import json
import queue
import socket
import threading
from pathlib import Path

import pytest

from hulldlib import UnixConnection, wait_until
from test_hulld_microvm import create, delete, exec_, microvm_hulld


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    with microvm_hulld(tmp_path_factory, "--tenant-sandboxes", "4") as h:
        yield h


def start(d, sid, body):
    r = d.request("POST", f"/v1/sandboxes/{sid}/processes", body, d.tokens["user"])
    assert r.status == 201, r
    return r.json


def verb(d, sid, pid, name, body=None, raw=False):
    return d.request("POST", f"/v1/sandboxes/{sid}/processes/{pid}/{name}", body,
                     d.tokens["user"], raw=raw)


def state(d, sid, pid):
    r = d.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}", token=d.tokens["user"])
    assert r.status == 200, r
    return r.json["state"]


class Stream:
    """A process's output as NDJSON, read line by line as it comes."""

    def __init__(self, d, path):
        self.c = UnixConnection(d.sock, timeout=300)
        self.c.request("GET", path, headers={"Authorization": f"Bearer {d.tokens['user']}"})
        self.r = self.c.getresponse()
        assert self.r.status == 200, self.r.read()

    def lines(self):
        while (line := self.r.readline()):
            yield json.loads(line)

    def close(self):
        self.c.close()


def read_until(lines, needle):
    seen = b""
    for ev in lines:
        if ev["type"] in ("stdout", "stderr"):
            seen += (base64.b64decode(ev["data_b64"]) if "data_b64" in ev
                     else ev["data"].encode())
            if needle in seen:
                return seen
        assert ev["type"] not in ("result", "error"), (ev, seen)
    raise AssertionError(f"stream ended before {needle!r}: {seen!r}")


def test_background_process_does_not_block(d):
    t = d.tokens["user"]
    sid = create(d)
    try:
        # Before: each of these waited for the agent's one session, which
        # this process holds until it ends (never, here).
        p = start(d, sid, {"cmd": ["sh", "-c", "echo up > /tmp/bg; echo up; exec sleep 100000"]})
        q = start(d, sid, {"cmd": ["cat"], "stdin": True})
        st = Stream(d, f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
        read_until(st.lines(), b"up\n")  # started (in a session of its own)
        st.close()
        assert exec_(d, sid, ["cat", "/tmp/bg"]).json["stdout"] == "up\n"
        r = d.request("PUT", f"/v1/sandboxes/{sid}/fs/root/x.bin", b"x" * 70000, t, raw=True)
        assert r.status == 201, r
        assert d.request("GET", f"/v1/sandboxes/{sid}/fs/root/x.bin", token=t).body == b"x" * 70000
        r = d.request("GET", f"/v1/sandboxes/{sid}/fs/root?op=list", token=t)
        assert [e["name"] for e in r.json["entries"]] == ["x.bin"], r
        # Both still run, and the second one still answers on its stdin.
        r = d.request("GET", f"/v1/sandboxes/{sid}/processes/{p['id']}", token=t)
        assert r.json["state"] == "running", r.json
        assert state(d, sid, q["id"]) == "running"
        assert verb(d, sid, q["id"], "stdin", b"ping\n", raw=True).status == 200
        st = Stream(d, f"/v1/sandboxes/{sid}/processes/{q['id']}/output")
        read_until(st.lines(), b"ping\n")
        st.close()
        # At most 6 processes and watches at once (each holds one of the
        # agent's 8 sessions): the seventh is refused, and execs and file
        # calls still have sessions left.
        more = [start(d, sid, {"cmd": ["sleep", "100000"]}) for _ in range(4)]
        r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["true"]}, t)
        assert r.status == 409 and "6 processes and watches" in r.json["error"]["message"], r
        r = d.request("GET", f"/v1/sandboxes/{sid}/fs/root?op=watch", token=t)
        assert r.status == 409, r
        assert exec_(d, sid, ["echo", "still"]).json["stdout"] == "still\n"
        assert d.request("GET", f"/v1/sandboxes/{sid}/fs/root/x.bin?op=stat",
                         token=t).json["size"] == 70000
        for m in more:
            assert verb(d, sid, m["id"], "signal", {"signal": "KILL"}).status == 200
            r = verb(d, sid, m["id"], "wait", {"timeout": "120s"})
            assert r.json["state"] == "exited", r.json
        r = d.request("GET", f"/v1/sandboxes/{sid}/processes/{p['id']}", token=t)
        assert r.json["state"] == "running", r.json
        assert verb(d, sid, p["id"], "signal", {"signal": "KILL"}).status == 200
        r = verb(d, sid, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited" and r.json["result"]["signal"] == 9, r.json
        assert verb(d, sid, q["id"], "close_stdin").status == 200
        r = verb(d, sid, q["id"], "wait", {"timeout": "120s"})
        assert r.json["result"]["verdict"] == "ok", r.json
    finally:
        delete(d, sid)


def test_a_background_command_the_guest_lacks_is_bad_command(d):
    """As an exec's, and as at the container level: the command's fault
    (bad_command, 127), not an internal error."""
    sid = create(d)
    try:
        p = start(d, sid, {"cmd": ["no-such-program-hull"]})
        r = verb(d, sid, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited", r.json
        res = r.json["result"]
        assert (res["verdict"], res["exit_code"]) == ("bad_command", 127), res
    finally:
        delete(d, sid)


def test_signal_reaches_the_process(d):
    sid = create(d)
    try:
        p = start(d, sid, {"cmd": ["sh", "-c", "trap 'echo got-usr1' USR1; echo ready; "
                                   "while :; do sleep 0.2; done"]})
        st = Stream(d, f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
        lines = st.lines()
        read_until(lines, b"ready\n")
        # The session goes on after a signal the process handles...
        assert verb(d, sid, p["id"], "signal", {"signal": "USR1"}).status == 200
        read_until(lines, b"got-usr1\n")
        assert state(d, sid, p["id"]) == "running"
        assert verb(d, sid, p["id"], "signal", {"signal": "USR1"}).status == 200
        read_until(lines, b"got-usr1\n")
        # ...and TERM ends it by that signal, reported as the guest saw it.
        assert verb(d, sid, p["id"], "signal", {"signal": "TERM"}).status == 200
        r = verb(d, sid, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited", r.json
        assert r.json["result"]["verdict"] == "signaled" and r.json["result"]["signal"] == 15
        st.close()
        assert verb(d, sid, p["id"], "signal", {"signal": "TERM"}).status == 409
    finally:
        delete(d, sid)


def test_pty_shell_sees_resize(d):
    sid = create(d)
    try:
        p = start(d, sid, {"cmd": ["sh", "-i"], "pty": {"rows": 24, "cols": 80}})
        assert p["pty"] is True
        st = Stream(d, f"/v1/sandboxes/{sid}/processes/{p['id']}/output")
        lines = st.lines()
        # Its stdin is a terminal (the echo of the line shows the
        # arithmetic, only its output the result).
        assert verb(d, sid, p["id"], "stdin", b"[ -t 0 ] && echo IS-$((1+1))TTY; stty size\n",
                    raw=True).status == 200
        out = read_until(lines, b"24 80")
        assert b"IS-2TTY" in out, out
        # The terminal has a name the guest's /dev resolves (ttyname(3)).
        assert verb(d, sid, p["id"], "stdin", b"tty\n", raw=True).status == 200
        read_until(lines, b"/dev/pts/")
        r = verb(d, sid, p["id"], "resize", {"rows": 40, "cols": 132})
        assert r.status == 200, r
        assert verb(d, sid, p["id"], "stdin", b"stty size\n", raw=True).status == 200
        read_until(lines, b"40 132")
        assert verb(d, sid, p["id"], "stdin", b"exit 3\n", raw=True).status == 200
        r = verb(d, sid, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited" and r.json["result"]["exit_code"] == 3, r.json
        st.close()
        q = start(d, sid, {"cmd": ["true"]})
        assert verb(d, sid, q["id"], "resize", {"rows": 1, "cols": 1}).status == 409
    finally:
        delete(d, sid)


def watch(d, sid, path, query=""):
    """A watch stream in a thread: its lines on a queue, the socket to close."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    s.sendall((f"GET /v1/sandboxes/{sid}/fs{path}?op=watch&{query} HTTP/1.1\r\nHost: h\r\n"
               f"Authorization: Bearer {d.tokens['user']}\r\n\r\n").encode())
    f = s.makefile("rb")
    status = f.readline()
    while f.readline().strip():
        pass
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
    return status, q, s


def wait_event(q, pred):
    seen = []
    while True:
        ev = q.get(timeout=300)
        assert ev is not None, f"the watch ended; saw {seen}"
        seen.append(ev)
        if pred(ev):
            return seen


def test_watch(d):
    t = d.tokens["user"]
    sid = create(d)
    fs = f"/v1/sandboxes/{sid}/fs"
    try:
        assert d.request("POST", f"{fs}/root/w/sub?op=mkdir", token=t).status == 201
        status, q, s = watch(d, sid, "/root/w", "recursive=true")
        assert b" 200 " in status, status
        # Made by a workload and through the API, while the watch holds a session.
        assert exec_(d, sid, ["sh", "-c", "echo a > /root/w/a.txt"]).json["verdict"] == "ok"
        wait_event(q, lambda e: e == {"type": "create", "path": "/root/w/a.txt", "dir": False})
        assert d.request("PUT", f"{fs}/root/w/sub/b.bin", b"bb", t, raw=True).status == 201
        seen = wait_event(q, lambda e: e["path"] == "/root/w/sub/b.bin")
        # put_file's temporary is not news: the file appears as made.
        assert seen[-1]["type"] == "create", seen
        assert not [e for e in seen if ".hull-put-" in e.get("path", "")], seen
        # A directory made under a recursive watch is watched too.
        exec_(d, sid, ["sh", "-c", "mkdir /root/w/new && echo c > /root/w/new/c"])
        wait_event(q, lambda e: e.get("path") == "/root/w/new/c")
        assert d.request("POST", f"{fs}/root/w/a.txt?op=rename", {"to": "/root/w/z.txt"},
                         t).status == 200
        wait_event(q, lambda e: e == {"type": "rename_to", "path": "/root/w/z.txt", "dir": False})
        s.close()
        # Missing: 404, and nothing of it left running.
        r = d.request("GET", f"{fs}/root/none?op=watch", token=t)
        assert r.status == 404, r
        # The watched directory going ends the stream.
        status, q, s = watch(d, sid, "/root/w/sub")
        assert b" 200 " in status, status
        assert d.request("DELETE", f"{fs}/root/w/sub?recursive=true", token=t).status == 200
        seen = []
        while (ev := q.get(timeout=300)) is not None:
            seen.append(ev)
        assert {"type": "delete", "path": "/root/w/sub", "dir": True} in seen, seen
        s.close()
        # Another tenant: 404.
        r = d.request("GET", f"{fs}/root/w?op=watch", token=d.tokens["other"])
        assert r.status == 404, r
    finally:
        delete(d, sid)


def test_template_start_cmd_keeps_running(d):
    t = d.tokens["user"]
    sid = create(d)
    try:
        r = d.request("POST", "/v1/templates",
                      {"sandbox": sid, "name": "svc",
                       "start_cmd": ["sh", "-c", "echo serving > /tmp/svc; exec sleep 100000"],
                       "ready_cmd": ["test", "-s", "/tmp/svc"], "ready_timeout": "5m"}, t)
        assert r.status == 201, r
    finally:
        delete(d, sid)
    r = d.request("POST", "/v1/sandboxes", {"template": "svc"}, t)
    assert r.status == 201, r  # before: 504 not_ready (ready_cmd waited for start_cmd)
    sb = r.json["id"]
    try:
        procs = d.request("GET", f"/v1/sandboxes/{sb}/processes", token=t).json["processes"]
        assert [p["state"] for p in procs] == ["running"], procs
        assert exec_(d, sb, ["cat", "/tmp/svc"]).json["stdout"] == "serving\n"
    finally:
        delete(d, sb)
        assert d.request("DELETE", "/v1/templates/svc", token=t).status == 200
    assert wait_until(lambda: not list((Path(d.state) / "templates").glob("*/vm.snap")), 60)


def test_pause_is_refused_while_a_process_runs(d):
    """A pause to disk needs the guest's agent quiet: with a background
    process running it is refused by name at once (it waited for the
    process, the sandbox's other requests stuck behind it)."""
    t = d.tokens["user"]
    sid = create(d)
    try:
        p = start(d, sid, {"cmd": ["sleep", "100000"]})
        r = d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t)
        assert r.status == 409 and "process" in r.json["error"]["message"], r
        assert d.request("GET", f"/v1/sandboxes/{sid}", token=t).json["state"] == "running"
        assert verb(d, sid, p["id"], "signal", {"signal": "KILL"}).status == 200
        r = verb(d, sid, p["id"], "wait", {"timeout": "120s"})
        assert r.json["state"] == "exited", r.json
        r = d.request("POST", f"/v1/sandboxes/{sid}/pause", token=t)
        assert r.status == 200 and r.json["state"] == "paused", r
        r = d.request("POST", f"/v1/sandboxes/{sid}/resume", token=t)
        assert r.status == 200 and r.json["state"] == "running", r
        assert exec_(d, sid, ["echo", "back"]).json["stdout"] == "back\n"
    finally:
        delete(d, sid)
