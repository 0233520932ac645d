"""`hull vm receive` against a hostile source that passed the handshake
(it knows the token; with TLS, any certificate of the fleet's CA): the
manifest it sends names files of the receiver's host by path. Only hull's
own artifacts may be hashed and given to QEMU, no file's digest is told to
the peer, and a device named as a kernel does not hang the receiver.
Each refusal leaves nothing on the receiver.

The source here is this file's own client of the wire protocol
(src/lib/vm/migrate.h) on the plain channel.

Host-wide (checks for stray QEMU): run under `flock /work/wt/vm.lock`.
"""
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from test_vm_lib import HULL, MEM, Hull, assert_gone, new_root, qemu_pids, skip_unless_ready

TOKEN = b"a shared secret of the two nodes"


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError(f"the receiver hung up after {len(b)} of {n} bytes")
        b += c
    return b


class Source:
    """The source's side of the handshake and of control frames."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        # A hang guard only: a receiver that never answers fails the test.
        self.s = socket.create_connection((host, int(port)), timeout=120)
        assert recvn(self.s, 8) == b"HULLMIG1"
        nr, ns = recvn(self.s, 32), os.urandom(32)
        mac = hmac.new(TOKEN, b"hull-migrate client" + nr + ns, hashlib.sha256).digest()
        self.s.sendall(b"HULLMIG1" + ns + mac)
        want = hmac.new(TOKEN, b"hull-migrate server" + nr + ns, hashlib.sha256).digest()
        assert recvn(self.s, 32) == want
        self.key = hmac.new(TOKEN, b"hull-migrate session" + nr + ns, hashlib.sha256).digest()
        self.seq = 0

    def send(self, kind, obj):
        p = json.dumps(obj).encode()
        hdr = kind.encode() + struct.pack(">I", len(p))
        t = hmac.new(self.key, b"s" + struct.pack(">Q", self.seq) + hdr + p,
                     hashlib.sha256).digest()
        self.seq += 1
        self.s.sendall(hdr + p + t)

    def reply(self):
        hdr = recvn(self.s, 5)
        p = recvn(self.s, struct.unpack(">I", hdr[1:])[0])
        recvn(self.s, 32)
        return hdr[:1].decode(), json.loads(p)

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    skip_unless_ready()
    d = tmp_path_factory.mktemp("hostile")
    token = d / "token"
    token.write_bytes(TOKEN + b"\n")
    token.chmod(0o600)
    # A file others may read, in a directory they may not enter: the
    # receiver's host keeps it from everyone but root.
    private = d / "private"
    private.mkdir(mode=0o700)
    secret = private / "secret.img"
    secret.write_bytes(os.urandom(1 << 20))
    secret.chmod(0o644)
    h = Hull(new_root())
    # A VM record measures (and caches) the real artifacts; nothing runs.
    h.ok("vm", "create", "--memory", MEM, "base")
    yield {"h": h, "token": str(token), "secret": str(secret),
           "measured": h.state("base")["measured"]}
    h.run("vm", "delete", "--force", "base")
    shutil.rmtree(h.root, ignore_errors=True)


def manifest(env, **files):
    m = env["measured"]
    out = {"vm": "evil", "memory_mb": int(MEM[:-1]), "vcpus": 1, "agent_ports": 1,
           "accelerator": "tcg", "kernel": dict(m["kernel"]), "initrd": dict(m["initrd"]),
           "rootfs": dict(m["rootfs"])}
    for what, fields in files.items():
        out[what].update(fields)
    return out


@contextlib.contextmanager
def receiver(env, timeout):
    """`vm receive` of VM evil on a free port, with the test's token:
    (its Popen, "host:port"); killed at the end if it still runs."""
    h = env["h"]
    rcv = subprocess.Popen([HULL, "--root", h.root, "vm", "receive", "--listen", "127.0.0.1:0",
                            "--insecure-plain", "--token-file", env["token"], "--id", "evil",
                            "--timeout", str(timeout)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.env)
    try:
        line = rcv.stderr.readline().decode()
        assert line.startswith("listening on "), line
        yield rcv, line.split()[-1]
    finally:
        if rcv.poll() is None:
            rcv.kill()
            rcv.communicate(timeout=60)


def offer(env, m):
    """Receive with a hostile source sending manifest m: the receiver's
    first answer, its exit status and stderr."""
    h = env["h"]
    with receiver(env, 120) as (rcv, addr):
        src = Source(addr)
        src.send("M", m)
        try:
            answer = src.reply()
        except (socket.timeout, EOFError) as e:
            answer = ("?", {"error": repr(e)})
        src.close()
        _, err = rcv.communicate(timeout=120)
    assert_gone(h, "evil")
    return answer, rcv.returncode, err.decode()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_a_file_outside_the_cache_is_not_the_guests_disk(env):
    # The source knows the file's digest: before, the receiver said 'A' with
    # a paused QEMU holding the file as the guest's disk.
    m = manifest(env, rootfs={"path": env["secret"], "sha256": sha(env["secret"])})
    (kind, body), rc, err = offer(env, m)
    assert kind == "X", (kind, body)
    assert "not one of hull's" in body["error"], body
    assert rc == 1 and "not one of hull's" in err, err
    assert not qemu_pids("evil")


def test_the_vmlinux_must_be_the_caches(env):
    # The vmlinux must be the cache's; the bzImage only a regular file.
    m = manifest(env, kernel={"vmlinux": env["secret"]})
    (kind, body), rc, _ = offer(env, m)
    assert kind == "X" and "vmlinux" in body["error"], (kind, body)


def test_a_refusal_tells_no_digest_of_the_hosts_files(env):
    # A wrong digest for a file the source may name (the bzImage is any
    # regular file): the refusal must not carry the file's real digest.
    m = manifest(env, kernel={"path": env["secret"], "sha256": "0" * 64})
    (kind, body), rc, err = offer(env, m)
    assert kind == "X", (kind, body)
    real = sha(env["secret"])
    assert real not in body["error"] and real not in err, body


def test_a_device_as_the_kernel_does_not_hang_the_receiver(env):
    # Before, the receiver hashed /dev/zero until it was killed.
    m = manifest(env, kernel={"path": "/dev/zero"})
    (kind, body), rc, err = offer(env, m)
    assert kind == "X" and "not a file" in body["error"], (kind, body)
    assert rc == 1


@pytest.mark.parametrize("memory_mb,vcpus", [(128 << 10, 1), (-1, 1), (128, 200), (128, 0)])
def test_a_vm_larger_than_create_allows_is_refused(env, memory_mb, vcpus):
    # `vm create` gives at most 64 GiB and 64 vCPUs; before, the receiver
    # started a paused QEMU of whatever size the source named (its cgroup
    # sized to match) and said 'A'.
    m = manifest(env)
    m["memory_mb"], m["vcpus"] = memory_mb, vcpus
    (kind, body), rc, err = offer(env, m)
    assert kind == "X" and "outside" in body["error"], (kind, body)
    assert rc == 1 and not qemu_pids("evil"), err


def test_a_peer_that_trickles_its_handshake_is_cut_off(env):
    # Anyone who can connect, before proving anything: a byte a second
    # never lets a wait for the peer's next byte time out. Before, only the
    # 72 bytes' end (here a wrong proof) stopped the receiver; now the
    # handshake and manifest must be done within --timeout of connecting.
    h = env["h"]
    with receiver(env, 3) as (rcv, addr):
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=120)
        recvn(s, 40)
        for b in b"HULLMIG1" + os.urandom(64):
            if rcv.poll() is not None:
                break
            try:
                s.send(bytes([b]))
            except OSError:
                break
            time.sleep(1)
        s.close()
        _, err = rcv.communicate(timeout=120)
    assert rcv.returncode == 1 and "handshake in time" in err.decode(), err
    assert_gone(h, "evil")


def test_connections_that_prove_nothing_do_not_end_the_receive(env):
    # Anyone who reaches the port, before proving anything: a wrong proof,
    # a hang-up, garbage. Before, the first of them ended the receive (the
    # move it waited for failed); now each is dropped and the receive waits
    # on, until its --timeout, for a source that proves itself.
    h = env["h"]
    with receiver(env, 300) as (rcv, addr):
        host, port = addr.rsplit(":", 1)
        for junk in (b"HULLMIG1" + os.urandom(64), b"", b"GET / HTTP/1.1\r\n\r\n"):
            s = socket.create_connection((host, int(port)), timeout=120)
            recvn(s, 40)
            s.sendall(junk)
            try:  # the receiver hangs up on it
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
        assert rcv.poll() is None, rcv.communicate(timeout=60)
        # The real source still gets through, and is heard: its manifest
        # (here one the receiver refuses) is answered.
        src = Source(addr)
        src.send("M", manifest(env, rootfs={"path": env["secret"], "sha256": sha(env["secret"])}))
        kind, body = src.reply()
        src.close()
        _, err = rcv.communicate(timeout=120)
    err = err.decode()
    assert kind == "X" and "not one of hull's" in body["error"], (kind, body)
    assert err.count("did not prove itself") == 3, err
    assert rcv.returncode == 1 and "not one of hull's" in err, err
    assert_gone(h, "evil")
