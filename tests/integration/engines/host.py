"""What the host kernel says: cgroups, mounts, processes, namespaces.

The engine tests assert on these rather than on what podman or ctr print, so
a runtime that reports success without doing the work fails them.
"""

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_hierarchies():
    """{name: mount point} of every cgroup hierarchy mounted on the host.
    v1 hierarchies are named by their controllers (or name=...), the cgroup2
    mount is named "" (on a hybrid host it sits at /sys/fs/cgroup/unified)."""
    with open("/proc/cgroups") as f:
        known = {line.split()[0] for line in f if not line.startswith("#")}
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if not rfields or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            mnt = fields[4]
            if rfields[0] == "cgroup2":
                found[""] = mnt
                continue
            opts = rfields[2].split(",")
            ctl = [o for o in opts if o in known or o.startswith("name=")]
            found[",".join(ctl)] = mnt
    return found


def cgroup_dirs(relpath):
    """Every existing directory for cgroup `relpath` (e.g. "/hulltest/c1")
    across all hierarchies."""
    rel = relpath.strip("/")
    return sorted(p for p in (os.path.join(m, rel) for m in cgroup_hierarchies().values()) if os.path.isdir(p))


def cgroup_children(relpath):
    """Child cgroup directories of `relpath` in any hierarchy, as relative paths."""
    out = set()
    for d in cgroup_dirs(relpath):
        for e in os.listdir(d):
            if os.path.isdir(os.path.join(d, e)):
                out.add("/" + relpath.strip("/") + "/" + e)
    return sorted(out)


def pids_in_cgroup_tree(relpath):
    """Every pid found in cgroup.procs below `relpath` in any hierarchy."""
    pids = set()
    for top in cgroup_dirs(relpath):
        for d, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
    return sorted(pids)


def proc_cgroups(pid):
    """{hierarchy name: path} from /proc/PID/cgroup ("" is cgroup2)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctl, path = line.rstrip("\n").split(":", 2)
            out[ctl] = path
    return out


def freezer_state(pid):
    """FROZEN / FREEZING / THAWED for the cgroup holding pid: the v1 freezer
    controller where it is mounted, else cgroup2's cgroup.freeze."""
    cg = proc_cgroups(pid)
    hier = cgroup_hierarchies()
    if "freezer" in cg and "freezer" in hier:
        with open(os.path.join(hier["freezer"], cg["freezer"].lstrip("/"), "freezer.state")) as f:
            return f.read().strip()
    with open(os.path.join(hier[""], cg[""].lstrip("/"), "cgroup.freeze")) as f:
        return "FROZEN" if f.read().strip() == "1" else "THAWED"


def cgroup_file(pid, controller, name):
    """The contents of a file of pid's cgroup in hierarchy `controller`
    (a v1 controller name, or "" for cgroup2)."""
    cg = proc_cgroups(pid)
    with open(os.path.join(cgroup_hierarchies()[controller], cg[controller].lstrip("/"), name)) as f:
        return f.read().strip()


def ns_id(pid, ns):
    """The namespace inode link target, e.g. 'pid:[4026531836]'."""
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def processes_mentioning(needle):
    """Live pids (not zombies) whose command line contains needle."""
    me = os.getpid()
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != me and needle in cmdline(e) and alive(e):
            out.append(int(e))
    return sorted(out)


def mounts_under(prefix):
    """Mount points in the host's mount namespace at or below prefix."""
    prefix = prefix.rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


def wait_until(pred, timeout=30.0, what="condition", interval=0.05):
    """Poll pred() until it returns a true value; fail with `what` after timeout.
    A bound on waiting for an asynchronous engine, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def remove_cgroup_tree(relpath):
    """Kill what still runs in cgroup relpath (a tree only the tests use), then
    rmdir its directories, children first, in every hierarchy."""
    for pid in pids_in_cgroup_tree(relpath):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids_in_cgroup_tree(relpath)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for top in cgroup_dirs(relpath):
        for d, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


def run_in_pty(cmd, timeout=60, env=None, rows=33, cols=101):
    """Run cmd with a new pseudo-terminal as its stdin/stdout/stderr (what a
    user at a terminal gives `ctr run -t`), return (exit status, output text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    break
                if not data:
                    break
                out += data
            elif p.poll() is not None:
                break
        else:
            p.kill()
            raise AssertionError(f"{cmd[0]} still running after {timeout}s; output so far: {out!r}")
        return p.wait(timeout=timeout), out.decode(errors="replace")
    finally:
        os.close(master)


def memory_limit(pid):
    """The memory limit in bytes of pid's cgroup (v1 memory controller, or
    cgroup2 memory.max), None when unlimited."""
    if "memory" in cgroup_hierarchies():
        v = int(cgroup_file(pid, "memory", "memory.limit_in_bytes"))
        return None if v >= 1 << 62 else v
    v = cgroup_file(pid, "", "memory.max")
    return None if v == "max" else int(v)


def pids_limit(pid):
    """pids.max of pid's cgroup as an int, None when unlimited."""
    v = cgroup_file(pid, "pids" if "pids" in cgroup_hierarchies() else "", "pids.max")
    return None if v == "max" else int(v)
