"""A container-level sandbox's user namespace is owned by a host uid of its
own, not by root.

The kernel charges what a user inside a user namespace holds (inotify
instances and watches, POSIX message queue bytes, pending signals) to that
user and also to the namespace's owner in the parent namespace, against the
host's per-user limits. With root as the owner, one sandbox holding its
inotify instances used up root's host-wide budget (128 by default): the
host's own root processes, hulld's file watches among them, got EMFILE.

Each sandbox's namespace is now owned by a uid of 1000200000-1000204095
that no process runs as; concurrent sandboxes have different owners."""
import ctypes
import fcntl
import os
import struct
import subprocess
import sys
import uuid

import pytest

from conftest import pid_alive
from hulldlib import HULLD, Hulld, wait_until
from sandboxlib import Sandbox, cancel

NS_GET_OWNER_UID = 0xB704
OWNER_BASE, OWNER_COUNT = 1000200000, 4096

# Open inotify instances until the kernel says no, then exec sleep, which
# keeps them (no close-on-exec): the sleep's argument names the run.
HOARD = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 4000 and libc.inotify_init1(0) >= 0:
    n += 1
os.execvp("sleep", ["sleep", sys.argv[1]])
"""


def userns_owner(pid):
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    try:
        buf = bytearray(4)
        fcntl.ioctl(fd, NS_GET_OWNER_UID, buf)
        return struct.unpack("I", buf)[0]
    finally:
        os.close(fd)


def inotify_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                n += 1
        except OSError:
            pass
    return n


def unique_sleep():
    return f"3600.{uuid.uuid4().int % 10**9:09d}"


def test_each_sandbox_namespace_has_its_own_owner():
    sb = Sandbox()
    runs = []
    try:
        for _ in range(2):
            arg = unique_sleep()
            runs.append((sb.start("--wall-time", "600", cmd=["sleep", arg]), arg))
        owners = [userns_owner(sb.workload_pid(f"sleep {arg}")) for _, arg in runs]
    finally:
        for (p, _, _), _ in runs:
            cancel(p)
        for (p, out, err), _ in runs:
            sb.finish(p, out, err)
    for o in owners:
        assert OWNER_BASE <= o < OWNER_BASE + OWNER_COUNT, owners
    assert owners[0] != owners[1], owners


def max_user_instances():
    with open("/proc/sys/fs/inotify/max_user_instances") as f:
        return int(f.read())


@pytest.mark.skipif(max_user_instances() > 900,
                    reason="the host's inotify limit is above what a sandbox may open here")
def test_a_sandbox_cannot_use_up_roots_inotify_instances():
    sb = Sandbox()
    arg = unique_sleep()
    p, out, err = sb.start("--open-files", "1024", "--wall-time", "600",
                           cmd=["python3", "-c", HOARD, arg])
    try:
        pid = sb.workload_pid(f"sleep {arg}", timeout=120)
        held = inotify_fds(pid)
        # The sandbox got the per-user limit for itself...
        assert held >= min(max_user_instances(), 1000) - 1, held
        # ...and host root still has its own.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_CLOEXEC)
        assert fd >= 0, f"host root's inotify_init1 failed: errno {ctypes.get_errno()}"
        os.close(fd)
    finally:
        cancel(p)
        sb.finish(p, out, err)


@pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")
def test_hulld_sandbox_namespace_has_its_own_owner(tmp_path):
    h = Hulld(tmp_path / "hulld")
    (tmp_path / "hulld").mkdir(exist_ok=True)
    os.makedirs(h.state, exist_ok=True)
    tok = h.token("user", "acme")
    h.start()
    try:
        r = h.request("POST", "/v1/sandboxes", {}, tok)
        assert r.status == 201, r
        sid = r.json["id"]
        arg = unique_sleep()
        r = h.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": ["sleep", arg]}, tok)
        assert r.status in (200, 201), r

        found = []

        def find():
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/cmdline", "rb") as f:
                            if f.read() == f"sleep\0{arg}\0".encode():
                                found.append(int(d))
                    except OSError:
                        pass
            return found

        assert wait_until(find, 60), "the sandbox's process never appeared"
        owner = userns_owner(found[0])
        assert OWNER_BASE <= owner < OWNER_BASE + OWNER_COUNT, owner
        assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=tok).status in (200, 204)
    finally:
        rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


# Starts argv with a parent-death signal armed (as hulld arms it for its
# runners), prints its pid, and waits to be killed.
ARMED_PARENT = r"""
import ctypes, subprocess, sys, time
libc = ctypes.CDLL(None)
p = subprocess.Popen(sys.argv[1:], preexec_fn=lambda: libc.prctl(1, 9),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(p.pid, flush=True)
time.sleep(3600)
"""


def test_the_supervisor_still_dies_with_its_parent():
    """The owner's uid is taken for the clone alone, and the kernel clears a
    thread's parent-death signal when its euid changes: it is armed again,
    so a supervisor whose parent dies (a runner whose worker died) still
    dies, and its sandbox with it."""
    sb = Sandbox()
    arg = unique_sleep()
    parent = subprocess.Popen([sys.executable, "-c", ARMED_PARENT,
                               *sb.argv("--wall-time", "600", cmd=["sleep", arg])],
                              stdout=subprocess.PIPE, text=True)
    try:
        hull_pid = int(parent.stdout.readline())
        sb.workload_pid(f"sleep {arg}", timeout=120)
    finally:
        parent.kill()
        parent.wait()
    assert wait_until(lambda: not pid_alive(hull_pid), 60), "hull outlived its parent"
    # Its sandbox died with it; the cgroups a SIGKILLed supervisor cannot
    # remove are the cleanup verb's (or the next run's) to collect.
    subprocess.run([sb.binary, "sandbox", "cleanup"], check=True, capture_output=True,
                   timeout=120)
    sb.assert_clean(hull_pid)
