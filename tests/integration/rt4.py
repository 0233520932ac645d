"""Helpers for the issue-4 runtime tests (test_runtime_{cgroups,exec,hooks,
terminal,misc}.py): containers started in the background, the host's cgroup
layout read independently of hull, a console-socket listener, and the check
that a refused request left nothing behind in any hierarchy.

Container ids carry a per-process token (cid("c1") -> "c1-r4_1234") so that
cgroups named after them can be told from those of other runs sharing the
machine.
"""
import array
import contextlib
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

from conftest import host_mounts_under, pid_alive, reap_orphans, wait_until

TOKEN = f"r4_{os.getpid()}"


def cid(name="c1"):
    return f"{name}-{TOKEN}"


# ---- the host's cgroup layout, from mountinfo -----------------------------------

CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
               "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"}


def cgroup_mounts():
    """{'v1': {controller or name=X: mountpoint}, 'v2': mountpoint or None}"""
    v1, v2 = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, opts = post.split()[:3]
            mnt = pre.split()[4]
            if fstype == "cgroup2" and v2 is None:
                v2 = mnt
            elif fstype == "cgroup":
                for o in opts.split(","):
                    if o in CONTROLLERS or o.startswith("name="):
                        v1.setdefault(o, mnt)
    return {"v1": v1, "v2": v2}


LAYOUT = cgroup_mounts()


def cgroup_of(pid, controller):
    """The pid's cgroup path in the hierarchy of controller ('' = cgroup2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(",") or (controller == "" and ctrls == ""):
                return path
    raise KeyError(controller)


def cg_dir(pid, controller):
    """The host directory of the pid's cgroup for a v1 controller."""
    return Path(LAYOUT["v1"][controller] + cgroup_of(pid, controller))


def cg_read(pid, controller, file):
    return (cg_dir(pid, controller) / file).read_text().strip()


def cgroup_dirs_named(token):
    """Every cgroup directory in every mounted hierarchy whose name holds token."""
    roots = set(LAYOUT["v1"].values()) | ({LAYOUT["v2"]} if LAYOUT["v2"] else set())
    found = []
    for root in roots:
        for d, dirs, _ in os.walk(root):
            found += [os.path.join(d, x) for x in dirs if token in x]
    return found


def assert_nothing_left(hull, tmp_path, token=None):
    """No state dir, no cgroup dir named after the token, no mount, no process."""
    root = Path(hull.root)
    left = sorted(os.listdir(root)) if root.exists() else []
    assert not left, f"state left in --root: {left}"
    if token:
        assert wait_until(lambda: not cgroup_dirs_named(token), timeout=5), \
            f"cgroups left: {cgroup_dirs_named(token)}"
    assert not host_mounts_under(tmp_path), host_mounts_under(tmp_path)


def assert_error(r, *fragments):
    """Non-zero exit, one 'hull: ...' line holding every fragment."""
    assert r.returncode != 0, r
    assert r.stderr.startswith("hull: "), r
    for f in fragments:
        assert f in r.stderr, (f, r)


# ---- containers in the background ----------------------------------------------

def wait_exec(pid, comm, timeout=10):
    """Wait until the init has exec'd its program (comm no longer hull)."""
    def done():
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() == comm
        except OSError:
            return False
    assert wait_until(done, timeout=timeout), f"pid {pid} never became {comm}"


@contextlib.contextmanager
def running(hull, bundle, name="c1", args=("sleep", "1000"), start=True, create_args=(),
            global_args=(), comm=None):
    """create (+ start) a container running args; yields (id, init pid);
    always deleted with --force. With start, waits until the init has
    exec'd (comm: the name it then has, default args[0]'s)."""
    c = cid(name)
    pid = None
    if args is not None:
        bundle.set_args(*args)
    bundle.write()
    try:
        r = hull("create", "--bundle", str(bundle.path), *create_args, c,
                 global_args=global_args)
        assert r.returncode == 0, r
        pid = hull.state(c)["pid"]
        if start:
            hull("start", c, check=True, global_args=global_args)
            if comm or args is not None:
                wait_exec(pid, comm or Path(args[0]).name[:15])
        yield c, pid
    finally:
        # exec'd processes are our children (we are the subreaper): the
        # init of a pid namespace only finishes dying once they are reaped,
        # and delete would wait for that while we wait for delete.
        if pid and hull("kill", "--all", c, "KILL", global_args=global_args).returncode == 0:
            wait_until(lambda: reap_orphans() or not pid_alive(pid), timeout=10)
        hull("delete", "--force", c, global_args=global_args)


def ns_inodes(pid):
    return {n: os.stat(f"/proc/{pid}/ns/{n}").st_ino
            for n in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time")}


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children_of(pid):
    """Host pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def find_pid(root_pid, comm, timeout=10):
    """A live process named comm among the descendants of root_pid."""
    found = []

    def look():
        todo, seen = [root_pid], set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            try:
                if Path(f"/proc/{p}/comm").read_text().strip() == comm and pid_alive(p):
                    found.append(p)
                    return True
            except OSError:
                pass
            todo += children_of(p)
        return False
    assert wait_until(look, timeout=timeout), f"no {comm} below {root_pid}"
    return found[0]


# ---- console sockets -----------------------------------------------------------

class ConsoleListener:
    """An AF_UNIX listener that takes one pty master sent with SCM_RIGHTS,
    as conmon or containerd-shim does."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.fds = []
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(30)
                fds = array.array("i")
                _msg, anc, _flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self.fds = list(fds)
        except OSError as e:
            self.error = e

    def master(self, timeout=30):
        self.thread.join(timeout)
        assert self.fds, f"no fd received on {self.path}: {self.error}"
        return self.fds[0]

    def close(self):
        self.sock.close()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


def read_until(fd, needle, timeout=10):
    """Read from a pty master until needle shows up; returns all read."""
    import select
    buf = b""
    needle = needle.encode() if isinstance(needle, str) else needle

    def more():
        nonlocal buf
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return True  # EIO: the other side closed
            buf += chunk
        return needle in buf
    wait_until(more, timeout=timeout, interval=0)
    return buf.decode(errors="replace")


def dump(obj, path):
    Path(path).write_text(json.dumps(obj))
    return str(path)


def sh(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)
