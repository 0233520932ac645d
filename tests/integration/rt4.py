"""Helpers for the issue-4 runtime tests (test_runtime_{cgroups,exec,hooks,
terminal,misc}.py): containers started in the background, the host's cgroup
layout read independently of hull, a console-socket listener, and the check
that a refused request left nothing behind in any hierarchy.

Builds on hullrt.py (the issue-3 battery's helpers): container ids and
cgroup names carry conftest's SESSION_TOKEN, so the end-of-suite check finds
whatever these tests leave in global places.
"""
import contextlib
import json
import os
from pathlib import Path

import hullrt
from conftest import SESSION_TOKEN, cgroup_dirs_named, pid_alive, reap_orphans, wait_until

# hullrt's, for the test modules to take from here with the rest
TOKEN = SESSION_TOKEN
cid, proc_status, wait_exec = hullrt.cid, hullrt.proc_status, hullrt.wait_exec


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


def memory_limits(limit, swap=None):
    """linux.resources.memory with a swap limit only where the host accounts
    swap (v1 memsw files; v2 memory.swap.max): elsewhere it is an error."""
    m = LAYOUT["v1"].get("memory")
    accounted = os.path.exists(f"{m}/memory.memsw.limit_in_bytes") if m else True
    return {"limit": limit, **({"swap": swap} if swap is not None and accounted else {})}


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


def assert_nothing_left(hull, tmp_path, token=None):
    """hullrt's check (no state dir, mount or process) and no cgroup dir
    named after the token in any hierarchy."""
    hullrt.assert_nothing_left(hull, tmp_path)
    if token:
        assert wait_until(lambda: not cgroup_dirs_named(token), timeout=5), \
            f"cgroups left: {cgroup_dirs_named(token)}"


def assert_error(r, *fragments):
    """Non-zero exit, one 'hull: ...' line holding every fragment."""
    assert r.returncode != 0, r
    assert r.stderr.startswith("hull: "), r
    for f in fragments:
        assert f in r.stderr, (f, r)


# ---- containers in the background ----------------------------------------------

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


# ---- console sockets -----------------------------------------------------------

class ConsoleListener(hullrt.ConsoleListener):
    """hullrt's listener that keeps the pty master it received (hull sends
    it without waiting for accept) and closes it with the socket."""

    fd = None

    def master(self):
        if self.fd is None:
            _name, self.fd = self.receive()
        return self.fd

    def close(self):
        super().close()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


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
