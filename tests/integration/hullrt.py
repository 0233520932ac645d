"""Helpers for the OCI runtime tests (test_runtime_*.py): reading kernel
state of a container's process from the host, running a container in the
background, receiving a console fd, and checking the one-line error shape.

Container ids carry a per-session token (cid("c1") -> "c1-t1234") so that
global resources named after them (cgroups) can be told apart from those of
other test runs sharing the machine; conftest's end-of-session check looks
for that token.
"""
import array
import contextlib
import ctypes
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

from conftest import SESSION_TOKEN, host_mounts_under, pid_alive, reap_orphans, wait_until

# Capability numbers from linux/capability.h, in order.
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def cid(name="c1"):
    return f"{name}-{SESSION_TOKEN}"


def caps_of_mask(hexmask: str):
    """Decode a /proc/PID/status Cap* mask into capability names."""
    m = int(hexmask, 16)
    return {CAP_NAMES[i] for i in range(len(CAP_NAMES)) if m >> i & 1}


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def ns_inode(pid, name):
    return os.stat(f"/proc/{pid}/ns/{name}").st_ino


def mountinfo(pid):
    """/proc/PID/mountinfo as dicts (paths as the process sees them)."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            pre, _, post = line.rstrip("\n").partition(" - ")
            a = pre.split()
            b = post.split()
            out.append({
                "id": int(a[0]), "parent": int(a[1]), "dev": a[2], "root": a[3],
                "mountpoint": a[4], "opts": set(a[5].split(",")), "optional": a[6:],
                "fstype": b[0], "source": b[1] if len(b) > 1 else "",
                "super": set(b[2].split(",")) if len(b) > 2 else set(),
            })
    return out


def mount_at(pid, mountpoint):
    """The topmost mount at mountpoint in the container's view."""
    found = [m for m in mountinfo(pid) if m["mountpoint"] == mountpoint]
    assert found, f"no mount at {mountpoint} in {[m['mountpoint'] for m in mountinfo(pid)]}"
    return found[-1]


def in_root(pid, path):
    """A path inside the container's root, reached from the host."""
    return f"/proc/{pid}/root{path}"


@contextlib.contextmanager
def started(hull, bundle, name="c1", start=True, create_args=()):
    """create (+ start) a container; yields (id, init pid); always deleted."""
    c = cid(name)
    bundle.write()
    try:
        r = hull("create", "--bundle", str(bundle.path), *create_args, c)
        assert r.returncode == 0, r
        pid = hull.state(c)["pid"]
        if start:
            hull("start", c, check=True)
        yield c, pid
    finally:
        hull("delete", "--force", c)


def run_out(hull, bundle, *args, name="r1", check=True):
    """Foreground run of sh -c SCRIPT style args; returns the Result."""
    bundle.set_args(*args).write()
    r = hull("run", "--bundle", str(bundle.path), cid(name))
    if check:
        assert r.returncode == 0, r
    return r


def wait_exec(pid, comm, timeout=10):
    """Wait until the init has exec'd the program (comm changes from hull)."""
    def done():
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() == comm
        except OSError:
            return False
    assert wait_until(done, timeout), f"pid {pid} never became {comm}"


class Background:
    """A hull command running in the background with output in files."""

    def __init__(self, hull, *args, global_args=(), **kw):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(hull.cmd(*args, global_args=global_args), stdout=self.out,
                                  stderr=self.err, stdin=subprocess.DEVNULL, **kw)

    def read(self):
        self.out.seek(0)
        self.err.seek(0)
        return (self.out.read().decode(errors="replace"),
                self.err.read().decode(errors="replace"))

    def wait(self, timeout=30):
        rc = self.p.wait(timeout)
        out, err = self.read()
        self.out.close()
        self.err.close()
        return rc, out, err

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class ConsoleListener:
    """An AF_UNIX listener that receives the pty master (SCM_RIGHTS), as
    podman's conmon does for --console-socket."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self):
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[:fds.itemsize])
        assert len(fds) == 1, f"no fd received (payload {msg!r})"
        return msg.decode(), fds[0]

    def close(self):
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def read_pty(fd):
    """Everything the container writes until its side of the pty closes."""
    out = b""
    while True:
        try:
            d = os.read(fd, 4096)
        except OSError:  # EIO: the last slave fd closed
            break
        if not d:
            break
        out += d
    return out.decode(errors="replace")


def assert_error(r, verb, id_, *fragments):
    """A failed verb: non-zero exit, exactly one line on stderr of the shape
    `hull: <verb> <id>: ...`, containing each fragment."""
    assert r.returncode != 0, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one error line, got {r.stderr!r}"
    prefix = f"hull: {verb} {id_}: "
    assert lines[0].startswith(prefix), f"{lines[0]!r} does not start with {prefix!r}"
    for frag in fragments:
        assert frag in lines[0], f"{frag!r} not in {lines[0]!r}"
    return lines[0]


def assert_nothing_left(hull, tmp_path):
    """No state directory, no mount under the test's dir, no process from it."""
    root = hull.root
    left = sorted(os.listdir(root)) if root.exists() else []
    assert left == [], f"state left in --root: {left}"
    assert wait_until(lambda: not host_mounts_under(tmp_path), 5), host_mounts_under(tmp_path)
    from conftest import pids_with_cmdline_containing, reap_orphans
    reap_orphans()
    assert wait_until(lambda: not [p for p in pids_with_cmdline_containing(str(tmp_path))
                                   if pid_alive(p)], 5), "processes left behind"


# ---- mount namespace enumeration ------------------------------------------

_SYS_LISTMOUNT = 458
_NS_GET_MNTNS_ID = 0x8008B705  # _IOR(0xb7, 5, __u64)
_LSMT_ROOT = 0xFFFFFFFFFFFFFFFF


def mounts_in_namespace(pid):
    """Ids of every mount in PID's mount namespace, including those its root
    hides (listmount(2) on the namespace, Linux >= 6.11); None if the kernel
    cannot tell."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        buf = bytearray(8)
        try:
            fcntl.ioctl(fd, _NS_GET_MNTNS_ID, buf)
        except OSError:
            return None
    finally:
        os.close(fd)
    nsid = struct.unpack("Q", buf)[0]
    req = struct.pack("IIQQQ", 32, 0, _LSMT_ROOT, 0, nsid)
    ids = (ctypes.c_uint64 * 8192)()
    libc.syscall.restype = ctypes.c_long
    n = libc.syscall(ctypes.c_long(_SYS_LISTMOUNT), ctypes.c_char_p(req), ids,
                     ctypes.c_size_t(8192), ctypes.c_uint(0))
    if n < 0:
        return None
    return list(ids[:n])


def setns_run(pid, nstype_flag, fn):
    """Run fn() in a forked child that joined one namespace of pid; returns
    what fn returns (JSON-serialisable)."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            name = {0x00020000: "mnt", 0x04000000: "uts", 0x40000000: "net"}[nstype_flag]
            fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY)
            if libc.setns(fd, nstype_flag) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            os.write(w, json.dumps({"ok": fn()}).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        d = os.read(r, 65536)
        if not d:
            break
        data += d
    os.close(r)
    os.waitpid(child, 0)
    res = json.loads(data)
    if "error" in res:
        raise AssertionError(f"in namespace of {pid}: {res['error']}")
    return res["ok"]


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@contextlib.contextmanager
def ns_holder(*unshare_flags):
    """A process in new namespaces (as `ip netns add` would keep one):
    `unshare ... --fork sleep`; yields the sleep's pid, which (like the
    unshare) is killed afterwards: it is no child of ours to reap."""
    p = subprocess.Popen(["unshare", *unshare_flags, "--fork", "--kill-child", "sleep", "1000"])
    found = []

    def child():
        try:
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
            if kids and Path(f"/proc/{kids[0]}/comm").read_text().strip() == "sleep":
                found.append(int(kids[0]))
                return True
        except OSError:
            pass
        return False
    try:
        assert wait_until(child)
        yield found[0]
    finally:
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        p.kill()
        p.wait()
        # A pid namespace's init exits only once every member is reaped,
        # and we (the subreaper) may hold exited members of it.
        assert wait_until(lambda: (reap_orphans(), not any(pid_alive(x) for x in found))[1])
