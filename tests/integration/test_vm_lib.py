"""Shared helpers for the microVM tests (no tests here).

The VM tests drive build/hull (or $HULL) against a private state root, and
check the host afterwards: QEMU processes, state directories, cgroups and
sockets. They run under TCG unless HULL_VM_ACCEL says otherwise, so they
pass on machines without /dev/kvm.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

HULL = os.environ.get("HULL") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "hull")
HULL = os.path.abspath(HULL)
# The suite's accelerator: TCG by default (it is what every machine has).
ACCEL = os.environ.get("HULL_VM_ACCEL", "tcg")
MEM = "128M"


def prerequisites():
    """Why the VM tests cannot run here, or None."""
    if not os.path.exists(HULL):
        return f"{HULL} not built"
    if os.geteuid() != 0:
        return "needs root (QEMU is confined with namespaces, cgroups and a uid switch)"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 missing (scripts/deps.sh vm installs it)"
    if not any(f.startswith("vmlinuz-") for f in os.listdir("/boot")):
        return "no /boot/vmlinuz-* (scripts/deps.sh vm installs linux-image-amd64)"
    if not shutil.which("mksquashfs"):
        return "mksquashfs missing (scripts/deps.sh vm installs squashfs-tools)"
    return None


def skip_unless_ready():
    why = prerequisites()
    if why:
        print(f"SKIP microVM tests: {why}")
        pytest.skip(why)


class Hull:
    """`hull --root ROOT ...` with a private state root."""

    def __init__(self, root, accel=ACCEL):
        self.root = root
        self.env = dict(os.environ, HULL_VM_ACCEL=accel)

    def run(self, *args, input=None, timeout=300, check=False):
        p = subprocess.run([HULL, "--root", self.root, *args], input=input, capture_output=True,
                           timeout=timeout, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"hull {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check=True, **kw)

    def state(self, vid):
        return json.loads(self.ok("vm", "state", vid).stdout)

    def exec(self, vid, *cmd, input=None, timeout=300):
        return self.run("vm", "exec", vid, "--", *cmd, input=input, timeout=timeout)

    def sh(self, vid, script):
        p = self.exec(vid, "sh", "-c", script)
        assert p.returncode == 0, p.stderr.decode()
        return p.stdout.decode()


def proc_state(pid):
    """The /proc state letter of pid, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def running(pid):
    # A zombie has exited; this host's init does not reap orphans.
    return proc_state(pid) not in (None, "Z", "X")


def qemu_pids(vid=None):
    """Live QEMU processes of hull VMs (all, or the one named vid)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"qemu-system-x86_64") or b"-name" not in argv:
            continue
        name = argv[argv.index(b"-name") + 1].decode()
        if name.startswith("hull-") and (vid is None or name == f"hull-{vid}") and running(int(d)):
            out.append(int(d))
    return out


def cgroup_leaves(vid):
    """Existing cgroup directories of a VM, in any hierarchy."""
    found = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(base):
            continue
        for h in os.listdir(base):
            p = os.path.join(base, h, "hull-vm", vid)
            if os.path.isdir(p):
                found.append(p)
        p = os.path.join(base, "hull-vm", vid)
        if os.path.isdir(p):
            found.append(p)
    return found


def assert_gone(h, vid):
    """Nothing of VM vid is left on the host."""
    deadline = time.time() + 10
    while qemu_pids(vid) and time.time() < deadline:
        time.sleep(0.1)
    assert not qemu_pids(vid), f"QEMU of {vid} still running"
    assert not os.path.exists(os.path.join(h.root, "vm", vid)), f"state directory of {vid} left"
    assert not cgroup_leaves(vid), f"cgroups of {vid} left: {cgroup_leaves(vid)}"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def new_root():
    return tempfile.mkdtemp(prefix="hull-vmtest-", dir="/run")


@pytest.fixture(scope="module")
def h():
    """A Hull on a private state root for one test module; whatever VM a
    test module leaves is deleted, the root removed."""
    skip_unless_ready()
    root = new_root()
    hull = Hull(root)
    yield hull
    vmdir = os.path.join(root, "vm")
    for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
        hull.run("vm", "delete", "--force", vid)
    shutil.rmtree(root, ignore_errors=True)


# A guest program that counts, a line per 0.1 s with its monotonic time in ms,
# into /tmp/count: a migration must neither restart nor skip it.
COUNTER = (
    "import time\n"
    "f = open('/tmp/count', 'a')\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    f.write('%d %d\\n' % (i, time.monotonic_ns() // 1000000))\n"
    "    f.flush()\n"
    "    time.sleep(0.1)\n")
