"""`hull sandbox netpool`: fresh network namespaces made ahead of time, each
handed to exactly one `hull sandbox run` and gone with it.

A run that got its namespace from the pool sees it owned by a user
namespace outside its own (the host's): NS_GET_USERNS on it is refused,
where a namespace the run made itself belongs to the run's user namespace.
The keeper counts what it handed out when it stops. Nothing is bind-mounted
and nothing is left when the keeper or a run is SIGKILLed."""
import os
import signal
import socket
import subprocess

import pytest

from conftest import HULL
from sandboxlib import Sandbox, cgroup_dirs, state_dirs, wait_until

SOCK = "/run/hull/sandbox-netpool.sock"

# Who owns the sandbox's network namespace, whether loopback works, and
# which interfaces there are.
PROBE = r"""
import fcntl, os, socket
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
try:
    fcntl.ioctl(fd, 0xb701)  # NS_GET_USERNS
    print("owner=run")
except OSError as e:
    print("owner=host" if e.errno == 1 else "owner=?%d" % e.errno)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
c = socket.create_connection(s.getsockname())
print("lo=ok")
print("ifs=" + ",".join(sorted(l.split(":")[0].strip()
                               for l in open("/proc/net/dev").readlines()[2:])))
"""


def answering(path=SOCK):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Keeper:
    def __init__(self, *args):
        self.p = subprocess.Popen([HULL, "sandbox", "netpool", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()  # printed once the pool is full
        assert "network namespaces ready" in line, (line, self.p.stderr.read())

    def fds(self):
        """The namespaces it holds for runs (fds of network namespaces
        other than its own, which it keeps to come back to)."""
        d = f"/proc/{self.p.pid}/fd"
        own = os.readlink(f"/proc/{self.p.pid}/ns/net")
        return [f for f in os.listdir(d)
                if os.readlink(f"{d}/{f}").startswith("net:[") and os.readlink(f"{d}/{f}") != own]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=60)
        return self.p.returncode, err


@pytest.fixture
def keeper():
    if answering():
        pytest.skip("a netpool keeper already runs on this host")
    started = []

    def start(*args):
        k = Keeper(*args)
        started.append(k)
        return k
    yield start
    for k in started:
        if k.p.poll() is None:
            k.p.kill()
            k.p.wait()


def probe(sb):
    r = sb(cmd=["python3", "-c", PROBE])
    assert r.verdict == "ok", r
    return dict(l.split("=", 1) for l in r.out.split())


def nsfs_mounts():
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if " - nsfs " in l and "netpool" in l]


def test_each_run_takes_a_fresh_namespace_from_the_pool(keeper):
    k = keeper("--size", "2")
    assert len(k.fds()) == 2
    sb = Sandbox()
    # More runs than the pool holds: it refills between them.
    for _ in range(4):
        got = probe(sb)
        assert got == {"owner": "host", "lo": "ok", "ifs": "lo"}, got
    # --network none is the default; the pool is only for a new namespace.
    assert probe(sb)["owner"] == "host"
    rc, err = k.stop()
    assert rc == 0, err
    assert "5 network namespaces handed out" in err, err
    assert not os.path.exists(SOCK)
    assert nsfs_mounts() == []


def test_without_a_keeper_a_run_makes_its_own(keeper):
    assert not answering()
    assert probe(Sandbox()) == {"owner": "run", "lo": "ok", "ifs": "lo"}


def test_host_network_runs_do_not_take_one(keeper):
    k = keeper("--size", "1")
    r = Sandbox()("--network", "host", cmd=["true"])
    assert r.verdict == "ok", r
    rc, err = k.stop()
    assert rc == 0 and "0 network namespaces handed out" in err, err


def test_a_killed_keeper_leaves_nothing_and_runs_go_on(keeper):
    k = keeper("--size", "3")
    k.p.kill()
    k.p.wait()
    # Its namespaces were fds only: nothing mounted stays; the socket file
    # that stays answers nobody, and runs make their own namespace.
    assert nsfs_mounts() == []
    assert not answering()
    assert probe(Sandbox())["owner"] == "run"
    # A new keeper takes the place over.
    k2 = keeper("--size", "1")
    assert probe(Sandbox())["owner"] == "host"
    rc, err = k2.stop()
    assert rc == 0 and "1 network namespaces handed out" in err, err


def test_a_killed_run_with_a_pooled_namespace_is_collected(keeper):
    k = keeper("--size", "2")
    sb = Sandbox()
    p, out, err = sb.start(cmd=["sleep", "60"])
    pid = sb.workload_pid()
    prefix = f"sandbox-{p.pid}-"
    p.kill()
    p.wait()
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"))
    r = sb(cmd=["true"])
    assert r.verdict == "ok", r
    assert wait_until(lambda: not state_dirs(prefix) and not cgroup_dirs(prefix))
    sb.assert_clean(p.pid)
    out.close()
    err.close()
    rc, kerr = k.stop()
    assert rc == 0 and "2 network namespaces handed out" in kerr, kerr


def test_bad_input_is_refused(keeper):
    for args, msg in ((["--size", "0"], "--size"), (["--size", "x"], "--size"),
                      (["extra"], "unexpected argument")):
        r = subprocess.run([HULL, "sandbox", "netpool", *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 125 and msg in r.stderr, r
    k = keeper("--size", "1")
    r = subprocess.run([HULL, "sandbox", "netpool", "--size", "1"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "another keeper answers there" in r.stderr, r
    assert answering()
    rc, err = k.stop()
    assert rc == 0, err
