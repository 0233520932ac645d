"""Live migration of a running microVM between two hulls (`hull vm migrate`
to `hull vm receive`), under TCG.

The receiver is "another node": its own state root, run inside a network
namespace of its own (netlib's Netns: a veth to the root namespace,
198.18.0.0/15 addresses, nothing leaves the machine), entered with nsenter
so it keeps the host's mounts (cgroups). A process in the guest counts
across the move; its file, the guest's files and the process itself are
checked on the other side; the source is gone afterwards. The channel is
TLS with mutual certificates of a test CA made here (openssl); the plain
token channel only with --insecure-plain. Failures (a certificate of
another CA, a wrong CA, a wrong name, a wrong token, nothing listening, a
receiver SIGKILLed half-way, a bit flipped on the way) leave the VM running
where it was and nothing on the receiver.

Host-wide (checks for stray QEMU): run under `flock /work/wt/vm.lock`.
"""
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

from netlib import Netns
from test_vm_lib import (COUNTER, HULL, MEM, Hull, assert_gone, new_root, qemu_pids,
                         skip_unless_ready)

# Keeps dirtying 16 MiB of guest memory (a 128 MiB guest has ~40 free): a migration has something to chase.
WRITER = (
    "import os\n"
    "b = bytearray(16 << 20)\n"
    "while not os.path.exists('/tmp/stop-writer'):\n"
    "    for o in range(0, len(b), 4096):\n"
    "        b[o] = (b[o] + 1) & 255\n")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"), "-subj",
            f"/CN={name}", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    return str(d / f"{name}.crt")


def make_cert(d, name, ca, sans):
    """A node's certificate (server and client) signed by CA; key 0600."""
    key, csr, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    key.chmod(0o600)
    ext.write_text(f"subjectAltName={','.join(sans)}\n"
                   "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", ca, "-CAkey", ca[:-4] + ".key",
            "-CAcreateserial", "-out", str(d / f"{name}.crt"), "-days", "2", "-extfile", str(ext))
    return {"cert": str(d / f"{name}.crt"), "key": str(key)}


def tls(node, ca):
    return ["--tls-cert", node["cert"], "--tls-key", node["key"], "--tls-ca", ca]


def plain(token):
    return ["--insecure-plain", "--token-file", token]


class Receiver:
    """`hull vm receive` in a namespace (or the root one), stopped by pid."""

    def __init__(self, h, auth, listen, vid, ns=None, timeout=120):
        pre = ["nsenter", f"--net=/run/netns/{ns.name}"] if ns else []
        self.p = subprocess.Popen(
            pre + [HULL, "--root", h.root, "vm", "receive", "--listen", listen, *auth,
                   "--id", vid, "--timeout", str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=h.env)
        self.addr = self._ready()

    def _ready(self):
        # A hang guard for start-up, not a speed check.
        line = b""
        end = time.monotonic() + 60
        while not line.endswith(b"\n") and time.monotonic() < end:
            r, _, _ = select.select([self.p.stderr], [], [], 1)
            if r:
                c = os.read(self.p.stderr.fileno(), 1)
                if not c:
                    break
                line += c
        assert line.startswith(b"listening on "), (line, self.p.poll())
        return line.decode().split()[-1]

    def finish(self, timeout=300):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out.decode(), err.decode()

    def finish_or_dropped(self, timeout=300):
        """finish(); or, when the receiver dropped a source that did not
        prove itself and waits on for another until its --timeout (it says
        so on stderr), the same once stopped here, its status None."""
        err, fd = b"", self.p.stderr.fileno()
        end = time.monotonic() + timeout  # a hang guard, not a speed check
        while b"did not prove itself" not in err or not err.endswith(b"\n"):
            assert time.monotonic() < end, err
            r, _, _ = select.select([fd], [], [], 1)
            c = os.read(fd, 65536) if r else None
            if c == b"":  # it ended by itself
                self.p.wait(timeout=60)
                return self.p.returncode, self.p.stdout.read().decode(), err.decode()
            err += c or b""
        self.p.terminate()
        out, rest = self.p.communicate(timeout=60)
        return None, out.decode(), (err + rest).decode()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate(timeout=60)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    skip_unless_ready()
    if not shutil.which("nsenter"):
        pytest.skip("nsenter missing")
    d = tmp_path_factory.mktemp("migrate")
    token = d / "token"
    token.write_text("a shared secret of the two nodes\n")
    token.chmod(0o600)
    other = d / "other-token"
    other.write_text("not the secret of the receiver\n")
    other.chmod(0o600)
    src, dst = Hull(new_root()), Hull(new_root())
    ns = Netns("migrate", ipv6=False)
    try:
        # Two nodes of the fleet's CA, each named by the addresses it
        # receives on; a "rogue" with the same names from another CA.
        fleet, other_ca = make_ca(d, "fleet"), make_ca(d, "other-ca")
        sans = ["IP:127.0.0.1", f"IP:{ns.addr4}", "DNS:node2"]
        n1, n2 = make_cert(d, "node1", fleet, sans), make_cert(d, "node2", fleet, sans)
        rogue = make_cert(d, "rogue", other_ca, sans)
        yield {"src": src, "dst": dst, "ns": ns, "token": str(token), "other": str(other),
               "dir": d, "fleet": fleet, "other_ca": other_ca, "n1": n1, "n2": n2,
               "rogue": rogue, "t1": tls(n1, fleet), "t2": tls(n2, fleet)}
    finally:
        for h in (src, dst):
            vmdir = os.path.join(h.root, "vm")
            for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
                h.run("vm", "delete", "--force", vid)
                assert_gone(h, vid)
        ns.close()
        for h in (src, dst):
            shutil.rmtree(h.root, ignore_errors=True)
        # No receiver (or its guard) of ours is left.
        left = subprocess.run(["pgrep", "-f", f"--root {dst.root} vm receive"],
                              capture_output=True, text=True).stdout.split()
        assert not left, f"receivers left: {left}"


def start_vm(h, vid, workload=COUNTER):
    h.ok("vm", "create", "--memory", MEM, "--from-template", vid)
    h.ok("vm", "start", vid)
    h.sh(vid, "head -c 4096 /dev/urandom > /root/keep.bin; sha256sum /root/keep.bin > /root/keep.sum")
    h.ok("vm", "exec", "--detach", vid, "--", "python3", "-c", workload)
    wait_counting(h, vid, 0)


def counts(h, vid):
    """The counter's lines: [(i, guest monotonic ms)]."""
    text = h.sh(vid, "cat /tmp/count 2>/dev/null; true")
    return [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]


def wait_counting(h, vid, more_than):
    end = time.monotonic() + 120
    while time.monotonic() < end:
        c = counts(h, vid)
        if c and c[-1][0] > more_than:
            return c
        time.sleep(0.3)
    pytest.fail(f"the counter in {vid} does not advance past {more_than}")


def migrate(h, vid, to, auth, *extra):
    return h.run("vm", "migrate", "--to", to, *auth, *extra, vid, timeout=600)


def check_moved(src, dst, vid, nid, before, res):
    """vid left src; nid runs on dst with the files, the process, its count."""
    assert_gone(src, vid)
    assert h_list(src) == []
    st = dst.state(nid)
    assert st["status"] == "running" and st["pid"] in qemu_pids(nid)
    dst.sh(nid, "sha256sum -c /root/keep.sum")
    # The very process started before the move, still counting: the count
    # goes on from where it was, without a restart (which would begin at 1
    # again) or a skipped number.
    c = wait_counting(dst, nid, before[-1][0] + 5)
    assert c[:len(before)] == before, "the count before the move changed"
    ids = [i for i, _ in c]
    assert ids == list(range(1, len(ids) + 1)), "the count restarted or skipped"
    # Guest time between ticks: the 100 ms sleep, plus at most the pause
    # reported (the guest clock stands while QEMU is stopped), plus slack
    # for a busy host's scheduling of the emulated CPU.
    gap = max(b - a for (_, a), (_, b) in zip(c, c[1:]))
    assert gap <= 100 + res["downtime_ms"] + 5000, (gap, res)


def h_list(h):
    return json.loads(h.ok("vm", "list", "--format", "json").stdout)


def test_live_migration_to_another_node(env):
    src, dst, ns = env["src"], env["dst"], env["ns"]
    start_vm(src, "mv1")
    before = wait_counting(src, "mv1", 10)
    rcv = Receiver(dst, env["t2"], f"{ns.addr4}:0", "mv1-there", ns=ns)
    assert rcv.addr.startswith(ns.addr4 + ":")
    p = migrate(src, "mv1", rcv.addr, env["t1"])
    rc, out, err = rcv.finish()
    assert p.returncode == 0, p.stderr.decode()
    assert rc == 0, err
    res, got = json.loads(p.stdout), json.loads(out)
    assert res["mode"] == "live" and res["target_id"] == "mv1-there"
    assert 0 <= res["qemu_downtime_ms"] <= res["downtime_ms"] <= res["copy_ms"] <= res["total_ms"]
    assert res["rounds"] >= 1 and res["bytes"] == got["bytes"] > 0
    assert got["id"] == "mv1-there" and got["from"].startswith(ns.host_addr4 + ":")
    assert res["transport"] == got["transport"] == "tls"
    check_moved(src, dst, "mv1", "mv1-there", before, res)
    assert dst.state("mv1-there")["restored_from"].startswith("migration from ")
    env["mv1_moved"] = True


def test_cold_migration_back(env):
    """Stop, copy, start: the VM moved above comes back to the first node."""
    src, dst = env["src"], env["dst"]
    if "mv1_moved" not in env:
        pytest.skip("needs the VM moved by test_live_migration_to_another_node")
    before = counts(dst, "mv1-there")
    rcv = Receiver(src, env["t1"], "127.0.0.1:0", "mv1-back")
    # The certificate checked against a name it carries, not the address.
    p = migrate(dst, "mv1-there", rcv.addr, env["t2"], "--mode", "cold", "--tls-name", "node2")
    rc, out, err = rcv.finish()
    assert p.returncode == 0, p.stderr.decode()
    assert rc == 0, err
    res = json.loads(p.stdout)
    assert res["mode"] == "cold" and res["rounds"] >= 1 and res["transport"] == "tls"
    # Cold: the guest is stopped for the whole copy.
    assert res["qemu_downtime_ms"] <= res["downtime_ms"] <= res["total_ms"]
    check_moved(dst, src, "mv1-there", "mv1-back", before, res)
    src.ok("vm", "delete", "--force", "mv1-back")
    assert_gone(src, "mv1-back")


def still_running_here(h, vid):
    assert h.state(vid)["status"] == "running"
    wait_counting(h, vid, counts(h, vid)[-1][0] + 3)
    h.sh(vid, "sha256sum -c /root/keep.sum")


def nothing_received(dst, vid):
    end = time.monotonic() + 60
    while time.monotonic() < end and os.path.exists(os.path.join(dst.root, "vm", vid)):
        time.sleep(0.2)
    assert_gone(dst, vid)


def test_refusals_leave_the_vm_running(env):
    src, dst, ns = env["src"], env["dst"], env["ns"]
    start_vm(src, "mv2")
    # The plain channel, asked for; a wrong token: the receiver hangs up,
    # nothing is made there.
    rcv = Receiver(dst, plain(env["token"]), f"{ns.addr4}:0", "mv2-there", ns=ns)
    p = migrate(src, "mv2", rcv.addr, plain(env["other"]))
    # The receiver drops that source and waits on for one that knows it.
    rc, _, err = rcv.finish_or_dropped()
    assert p.returncode == 1 and b"token" in p.stderr, p.stderr
    assert p.stderr.startswith(b"hull: migrate mv2 to ")
    assert rc is None and "does not know the token" in err, err
    nothing_received(dst, "mv2-there")
    still_running_here(src, "mv2")
    # Nobody listening (the receiver is gone).
    p = migrate(src, "mv2", rcv.addr, env["t1"])
    assert p.returncode == 1 and b"connect to" in p.stderr, p.stderr
    still_running_here(src, "mv2")
    # Bad input: said, nothing touched.
    loose = env["dir"] / "loose-token"
    loose.write_text("a token anyone on the host can read\n")
    loose.chmod(0o644)
    p = migrate(src, "mv2", "127.0.0.1:9", plain(str(loose)))
    assert p.returncode == 1 and b"readable by others" in p.stderr, p.stderr
    p = src.run("vm", "migrate", *env["t1"], "mv2")
    assert p.returncode == 1 and b"--to" in p.stderr
    p = src.run("vm", "migrate", "--to", "127.0.0.1:9", *env["t1"], "--mode", "warm", "mv2")
    assert p.returncode == 1 and b"live or cold" in p.stderr
    p = migrate(src, "no-such-vm", "127.0.0.1:9", env["t1"])
    assert p.returncode == 1 and b"no-such-vm" in p.stderr
    # An id that exists on the receiver: refused there, the source goes on.
    rcv = Receiver(src, env["t2"], "127.0.0.1:0", "mv2")
    p = migrate(src, "mv2", rcv.addr, env["t1"])
    rc, _, err = rcv.finish()
    assert p.returncode == 1 and b"already exists" in p.stderr, p.stderr
    assert rc == 1
    still_running_here(src, "mv2")
    src.ok("vm", "delete", "--force", "mv2")
    assert_gone(src, "mv2")


def test_receiver_killed_half_way(env):
    """SIGKILL of the receiver mid-copy: the source cancels and its guest
    never stops; the receiver's guard removes the half-received VM."""
    src, dst, ns = env["src"], env["dst"], env["ns"]
    start_vm(src, "mv3")
    src.ok("vm", "exec", "--detach", "mv3", "--", "python3", "-c", WRITER)
    rcv = Receiver(dst, env["t2"], f"{ns.addr4}:0", "mv3-there", ns=ns)
    # 1 MiB/s: the first pass alone over 16 MiB being dirtied takes far
    # longer than the wait below.
    mig = subprocess.Popen([HULL, "--root", src.root, "vm", "migrate", "--to", rcv.addr,
                            *env["t1"], "--bandwidth", "1M", "mv3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=src.env)
    try:
        end = time.monotonic() + 120
        while not qemu_pids("mv3-there") and time.monotonic() < end and mig.poll() is None:
            time.sleep(0.1)
        assert qemu_pids("mv3-there"), "the receiver never started its QEMU"
        time.sleep(3)
        assert mig.poll() is None, mig.communicate()
        rcv.kill()
        out, err = mig.communicate(timeout=300)
    finally:
        if mig.poll() is None:
            mig.kill()
            mig.communicate()
    assert mig.returncode == 1, (out, err)
    assert err.startswith(b"hull: migrate mv3 to "), err
    nothing_received(dst, "mv3-there")
    still_running_here(src, "mv3")
    # And it can still move afterwards (without the writer, which the
    # benchmark measures).
    src.sh("mv3", "touch /tmp/stop-writer")
    rcv = Receiver(dst, env["t2"], f"{ns.addr4}:0", "mv3-there", ns=ns)
    p = migrate(src, "mv3", rcv.addr, env["t1"])
    rc, _, err2 = rcv.finish()
    assert p.returncode == 0 and rc == 0, (p.stderr, err2)
    wait_counting(dst, "mv3-there", counts(dst, "mv3-there")[-1][0] + 3)
    assert_gone(src, "mv3")
    dst.ok("vm", "delete", "--force", "mv3-there")
    assert_gone(dst, "mv3-there")


# Writes a counter into the first 8 bytes of each of 2048 pages (8 MiB), in
# page order and whole passes, until /tmp/stop-pages exists; then page p must
# hold last-2047+p. A store the move lost leaves an older value there (or
# crashes the interpreter, whose own memory is as much at risk).
PAGES = (
    "import os, struct\n"
    "N = 2048\n"
    "b = bytearray(N * 4096)\n"
    "i = 0\n"
    "def one_pass():\n"
    "    global i\n"
    "    for p in range(N):\n"
    "        i += 1\n"
    "        struct.pack_into('<Q', b, p * 4096, i)\n"
    "one_pass()\n"
    "open('/tmp/pages-started', 'w').close()\n"
    "while not os.path.exists('/tmp/stop-pages'):\n"
    "    one_pass()\n"
    "bad = [p for p in range(N) if struct.unpack_from('<Q', b, p * 4096)[0] != i - N + 1 + p]\n"
    "open('/tmp/pages.tmp', 'w').write('lost %d of %d pages: %s\\n' % (len(bad), N, bad[:8]))\n"
    "os.rename('/tmp/pages.tmp', '/tmp/pages.result')\n")


def wait_file(h, vid, path):
    """The guest file's text once it exists (the writer's end without it
    fails at once); a hang guard, not a speed check."""
    end = time.monotonic() + 180
    while time.monotonic() < end:
        p = h.exec(vid, "sh", "-c", f"cat {path} || (cat /tmp/pages.log; false)")
        if p.returncode == 0:
            return p.stdout.decode()
        if "exit " in p.stdout.decode():
            break
        time.sleep(0.5)
    log = h.exec(vid, "cat", "/tmp/pages.log").stdout.decode()
    pytest.fail(f"{path} never appeared in {vid} (the writer said: {log!r})")


def test_live_move_loses_no_guest_write(env):
    """Every store the guest made before the move is on the other side.
    QEMU before 9.0 under TCG does not record a store made through a TLB
    entry a dirty-bitmap sync left writable (upstream 03bfc2188f06), so a
    page sent in a round while the guest ran and written again arrived
    stale: guest processes crashed or lost writes, the kernel panicked.
    hull copies a TCG guest's RAM in one pass while it runs, then stops it
    and sends what the pass left dirty: two syncs. The bandwidth cap makes
    the pass slow, so the guest dirties more than QEMU's downtime target
    allows and QEMU on its own would go round again (7-21 syncs, and the
    writer below crashed or came back with stale pages)."""
    src, dst, ns = env["src"], env["dst"], env["ns"]
    src.ok("vm", "create", "--memory", MEM, "--from-template", "mv6")
    src.ok("vm", "start", "mv6")
    src.ok("vm", "exec", "mv6", "--", "sh", "-c", "cat > /tmp/pages.py", input=PAGES.encode())
    src.ok("vm", "exec", "--detach", "mv6", "--", "sh", "-c",
           "python3 /tmp/pages.py > /tmp/pages.log 2>&1; echo exit $? >> /tmp/pages.log")
    wait_file(src, "mv6", "/tmp/pages-started")
    rcv = Receiver(dst, env["t2"], f"{ns.addr4}:0", "mv6-there", ns=ns)
    # The cap makes a TCG guest's pass slow; under KVM the guest would
    # outrun it for good (QEMU never converges), and KVM is not affected.
    tcg = src.state("mv6")["accelerator"] == "tcg"
    p = migrate(src, "mv6", rcv.addr, env["t1"], *(["--bandwidth", "10M"] if tcg else []))
    rc, _, err = rcv.finish()
    assert p.returncode == 0 and rc == 0, (p.stderr, err)
    res = json.loads(p.stdout)
    assert res["mode"] == "live"
    if tcg:
        assert res["rounds"] == 2, res
    dst.ok("vm", "exec", "mv6-there", "--", "touch", "/tmp/stop-pages")
    assert wait_file(dst, "mv6-there", "/tmp/pages.result") == "lost 0 of 2048 pages: []\n"
    assert_gone(src, "mv6")
    dst.ok("vm", "delete", "--force", "mv6-there")
    assert_gone(dst, "mv6-there")


class FlipProxy:
    """A TCP relay between source and receiver that flips one bit in the
    middle of the 10th frame of QEMU's stream ('D'), parsing the framing
    (src/lib/vm/migrate.h) so the change lands in the stream's bytes, not
    in a header: what QEMU may well accept, and the digest must not."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.lsock.getsockname()[1]}"
        self.flipped = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.lsock.settimeout(120)
        try:
            a, _ = self.lsock.accept()
        except OSError:
            return
        b = socket.create_connection(self.target, timeout=120)
        threading.Thread(target=self._copy, args=(b, a), daemon=True).start()
        try:
            self._forward(a, b)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _copy(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def _exact(s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                raise OSError("closed")
            buf += d
        return buf

    def _forward(self, src, dst):
        dst.sendall(self._exact(src, 8 + 32 + 32))  # magic, nonce, HMAC
        n = 0
        while True:
            hdr = self._exact(src, 5)
            length = int.from_bytes(hdr[1:], "big")
            body = bytearray(self._exact(src, length + (0 if hdr[:1] == b"D" else 32)))
            if hdr[:1] == b"D":
                n += 1
                if n == 10:
                    body[length // 2] ^= 0x01
                    self.flipped = True
            dst.sendall(hdr + bytes(body))

    def close(self):
        self.lsock.close()
        self.t.join(timeout=60)


def test_stream_changed_in_transit_is_refused(env):
    """One bit of QEMU's stream flipped on the way: the receiver refuses to
    run the guest (the digest of the end message), the source runs on."""
    src, dst = env["src"], env["dst"]
    start_vm(src, "mv4")
    rcv = Receiver(dst, plain(env["token"]), "127.0.0.1:0", "mv4-there")
    proxy = FlipProxy(rcv.addr)
    try:
        p = migrate(src, "mv4", proxy.addr, plain(env["token"]))
        rc, _, err = rcv.finish()
    finally:
        proxy.close()
    assert proxy.flipped
    print("receiver said:", err.strip())
    assert p.returncode == 1 and rc == 1, (p.stderr, err)
    # QEMU may refuse the changed bytes itself; if it took them, the digest did not.
    assert "does not match its digest" in err or "QEMU" in err, err
    nothing_received(dst, "mv4-there")
    still_running_here(src, "mv4")
    src.ok("vm", "delete", "--force", "mv4")
    assert_gone(src, "mv4")


class TlsFlipProxy(FlipProxy):
    """The same relay for the TLS channel: one bit of what the source sends
    flipped at 2 MiB, inside an encrypted record of QEMU's stream."""

    def _forward(self, src, dst):
        seen = 0
        while True:
            d = bytearray(src.recv(65536))
            if not d:
                break
            at = (2 << 20) - seen
            if 0 <= at < len(d):
                d[at] ^= 0x01
                self.flipped = True
            seen += len(d)
            dst.sendall(bytes(d))


def refused(src, dst, vid, rcv_auth, src_auth, *extra):
    """One migration that must fail on both sides; nothing made there. A
    source that does not get through the handshake is dropped by the
    receiver, which says so and waits on for another: stopped here then."""
    rcv = Receiver(dst, rcv_auth, "127.0.0.1:0", vid + "-there")
    p = migrate(src, vid, rcv.addr, src_auth, *extra)
    rc, _, err = rcv.finish_or_dropped()
    print("source said:", p.stderr.decode().strip(), "| receiver said:", err.strip())
    assert p.returncode == 1 and p.stderr.startswith(f"hull: migrate {vid} to ".encode())
    assert rc == 1 or (rc is None and "did not prove itself" in err), err
    nothing_received(dst, vid + "-there")
    return p.stderr.decode(), err


def test_tls_refusals_leave_the_vm_running(env):
    src, dst = env["src"], env["dst"]
    t1, t2 = env["t1"], env["t2"]
    # Plain only when asked for, on either side.
    p = src.run("vm", "migrate", "--to", "127.0.0.1:9", "--token-file", env["token"], "mv5")
    assert p.returncode == 1 and b"the channel is TLS" in p.stderr, p.stderr
    p = dst.run("vm", "receive", "--listen", "127.0.0.1:0", "--token-file", env["token"])
    assert p.returncode == 1 and b"the channel is TLS" in p.stderr, p.stderr
    p = src.run("vm", "migrate", "--to", "127.0.0.1:9", *t1, *plain(env["token"]), "mv5")
    assert p.returncode == 1 and b"give one of them" in p.stderr, p.stderr
    start_vm(src, "mv5")
    # A source whose certificate another CA signed: the receiver refuses it.
    out, err = refused(src, dst, "mv5", t2, tls(env["rogue"], env["fleet"]))
    assert "refused us" in out, out
    assert "the peer's certificate" in err, err
    # A source that does not trust the receiver's CA.
    out, err = refused(src, dst, "mv5", t2, tls(env["n1"], env["other_ca"]))
    # (OpenSSL sends the receiver's CA along: "self-signed certificate in
    # certificate chain", or without it "unable to get local issuer ...")
    assert "TLS handshake with the receiver: the peer's certificate: " in out, out
    assert "refused us" in err, err
    # A receiver whose certificate does not carry the name asked for.
    out, err = refused(src, dst, "mv5", t2, t1, "--tls-name", "node9")
    assert "the peer's certificate: hostname mismatch" in out, out
    still_running_here(src, "mv5")
    # TLS to a plain receiver, and plain to a TLS one (the source waits for
    # a greeting the receiver never sends: a short --timeout).
    out, err = refused(src, dst, "mv5", plain(env["token"]), t1)
    assert "TLS" in out, out
    out, err = refused(src, dst, "mv5", t2, plain(env["token"]), "--timeout", "5")
    assert "no answer" in out and "TLS handshake" in err, (out, err)
    still_running_here(src, "mv5")
    # A bit of the encrypted stream flipped on the way: TLS refuses the record.
    rcv = Receiver(dst, t2, "127.0.0.1:0", "mv5-there")
    proxy = TlsFlipProxy(rcv.addr)
    try:
        p = migrate(src, "mv5", proxy.addr, t1)
        rc, _, err = rcv.finish()
    finally:
        proxy.close()
    assert proxy.flipped
    print("receiver said:", err.strip())
    assert p.returncode == 1 and rc == 1, (p.stderr, err)
    assert "TLS" in err, err
    nothing_received(dst, "mv5-there")
    still_running_here(src, "mv5")
    src.ok("vm", "delete", "--force", "mv5")
    assert_gone(src, "mv5")
