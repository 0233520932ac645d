"""Shared fixtures for hull's end-to-end tests.

Every test drives the real `hull` binary ($HULL, default build/hull) as root
and checks real kernel state from the host: /proc/PID/ns, mountinfo, status,
limits, cgroup files. The fixtures here build busybox bundles, give each test
its own --root, and check after each test that nothing leaked: no state
directory, no mount under the test's tmp dir, no process of the test left.
"""
import copy
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))
BUSYBOX = "/bin/busybox"

PR_SET_CHILD_SUBREAPER = 36
# Part of every container id the runtime tests use (see hullrt.cid), so the
# end-of-session check can find what this run left in global places (cgroups)
# without mistaking another run's containers for ours.
SESSION_TOKEN = f"t{os.getpid()}"


def pytest_configure(config):
    config.addinivalue_line("markers", "asan: quick core test, also run against the ASan build")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    if os.geteuid() != 0:
        raise pytest.UsageError("hull's end-to-end tests must run as root")
    # Containers started with `create` outlive the hull process that made
    # them; as a subreaper, this process inherits them (as conmon or
    # containerd-shim would) and can reap them.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_orphans():
    """Reap exited orphans (inherited as subreaper). Only safe between
    subprocess calls, which is always the case in these tests."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def default_config(args=None):
    """A config.json like `runc spec`, terminal off, for busybox."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args or ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                s: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for s in ("bounding", "effective", "permitted")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "hull",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def make_rootfs(root: Path):
    """busybox-static and its applet links, a minimal /etc."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
              "root", "var", "run", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        p = root / "bin" / a
        if not p.exists():
            p.symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")


_ROOTFS_CACHE = None


def cached_rootfs(tmp_path_factory):
    global _ROOTFS_CACHE
    if _ROOTFS_CACHE is None:
        base = tmp_path_factory.mktemp("rootfs-template")
        make_rootfs(base / "rootfs")
        _ROOTFS_CACHE = base / "rootfs"
    return _ROOTFS_CACHE


class Result:
    def __init__(self, cp):
        self.returncode = cp.returncode
        self.stdout = cp.stdout
        self.stderr = cp.stderr

    def __repr__(self):
        return f"<rc={self.returncode} out={self.stdout!r} err={self.stderr!r}>"


class Hull:
    """Runs the hull binary with a per-test --root."""

    def __init__(self, root: Path, binary=HULL):
        self.root = root
        self.binary = binary

    def cmd(self, *args, global_args=()):
        return [self.binary, "--root", str(self.root), *global_args, *args]

    def __call__(self, *args, check=False, input=None, timeout=60, global_args=(), **kw):
        # Output goes to files, not pipes: a created container inherits
        # hull's stdio and would keep a pipe open long after hull exits.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            if input is not None:
                stdin = tempfile.TemporaryFile()
                stdin.write(input.encode() if isinstance(input, str) else input)
                stdin.seek(0)
            else:
                stdin = kw.pop("stdin", subprocess.DEVNULL)
            try:
                cp = subprocess.run(self.cmd(*args, global_args=global_args), stdout=out,
                                    stderr=err, stdin=stdin, timeout=timeout, **kw)
            finally:
                if input is not None:
                    stdin.close()
            out.seek(0)
            err.seek(0)
            cp.stdout = out.read().decode(errors="replace")
            cp.stderr = err.read().decode(errors="replace")
        r = Result(cp)
        if check and r.returncode != 0:
            raise AssertionError(f"hull {' '.join(args)} failed: {r}")
        return r

    def state(self, cid):
        r = self(("state"), cid, check=True)
        return json.loads(r.stdout)


class Bundle:
    """An OCI bundle in a tmp dir; `config` is edited in Python, then written."""

    def __init__(self, path: Path, rootfs_template: Path, args=None):
        self.path = path
        self.rootfs = path / "rootfs"
        shutil.copytree(rootfs_template, self.rootfs, symlinks=True)
        self.config = default_config(args)

    def write(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def set_args(self, *args):
        self.config["process"]["args"] = list(args)
        return self

    def namespaces(self):
        return [n["type"] for n in self.config["linux"]["namespaces"]]


def host_mounts_under(path: Path):
    p = str(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(p):
                out.append(mp)
    return out


def pids_with_cmdline_containing(token: str):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if token.encode() in cmd:
            found.append(int(d))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_until(pred, timeout=10.0, interval=0.02):
    """Poll for a condition (state changes are asynchronous). The timeout is
    a hang guard, not a speed assertion."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


HULL_ROOTS = []  # every --root the hull fixture handed out, for the end-of-suite check


@pytest.fixture
def hull(tmp_path):
    root = tmp_path / "state"
    HULL_ROOTS.append(root)
    h = Hull(root)
    yield h
    # Anything the test left behind is a leak, unless the test deleted it.
    leftovers = sorted(os.listdir(root)) if root.exists() else []
    for cid in leftovers:
        subprocess.run(h.cmd("delete", "--force", cid), capture_output=True, timeout=60)
    reap_orphans()
    assert not leftovers, f"containers left in --root: {leftovers}"


@pytest.fixture
def make_bundle(tmp_path, tmp_path_factory):
    template = cached_rootfs(tmp_path_factory)
    counter = [0]

    def make(args=None):
        counter[0] += 1
        b = Bundle(tmp_path / f"bundle{counter[0]}", template, args)
        return b

    return make


@pytest.fixture
def bundle(make_bundle):
    return make_bundle()


def cgroup_dirs_named(token: str):
    """Directories (up to 4 levels deep) of every mounted cgroup hierarchy
    whose name contains token."""
    roots = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            post = line.split(" - ", 1)[1].split()
            if post[0] in ("cgroup", "cgroup2"):
                roots.add(line.split()[4])
    found = []
    for root in roots:
        base = root.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(root):
            if dirpath.count("/") - base >= 4:
                dirnames[:] = []
            found += [os.path.join(dirpath, d) for d in dirnames if token in d]
    return found


def _ancestors(pid: int):
    """pid and every process above it."""
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return found


def suite_leftovers(base: Path):
    """What the whole run left on the host: container state in any --root
    the hull fixture handed out, mounts and live processes under the run's
    tmp dir, cgroups named with the session token."""
    reap_orphans()
    out = [f"container state {r / c}" for r in HULL_ROOTS if r.exists() for c in os.listdir(r)]
    if not wait_until(lambda: not host_mounts_under(base), timeout=5):
        out += [f"mount {m}" for m in host_mounts_under(base)]

    # pytest and whatever started it carry the base dir in their argv when
    # it was given as --basetemp: they are not leaks.
    ours = _ancestors(os.getpid())

    def procs():
        return [p for p in pids_with_cmdline_containing(str(base))
                if pid_alive(p) and p not in ours]
    if not wait_until(lambda: not procs(), timeout=5):
        out += [f"process {p} ({_cmdline(p)})" for p in procs()]
    out += [f"cgroup {d}" for d in cgroup_dirs_named(SESSION_TOKEN)]
    return out


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """After the whole suite, with every fixture (engines included) torn
    down: anything left is a leak and fails the run."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or not HULL_ROOTS:
        return
    left = suite_leftovers(factory.getbasetemp())
    if left:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = "left behind after the suite:\n  " + "\n  ".join(left)
        if tr is not None:
            tr.write_line(msg, red=True)
        else:
            print(msg)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def no_leaks(tmp_path):
    """After each test: no mount left under the test's tmp dir, and no
    process still running from its bundles."""
    yield
    reap_orphans()
    ok = wait_until(lambda: not host_mounts_under(tmp_path), timeout=5)
    assert ok, f"mounts left behind: {host_mounts_under(tmp_path)}"
    ok = wait_until(lambda: not [p for p in pids_with_cmdline_containing(str(tmp_path))
                                 if pid_alive(p)], timeout=5)
    assert ok, "processes left behind"


@pytest.fixture
def ubundle(tmp_path_factory):
    """A bundle for a user namespace whose root is an unprivileged host id:
    it must be able to walk down to its rootfs, so it lives in a 0755
    directory outside pytest's 0700 tmp tree (removed afterwards, and
    nothing may stay mounted in it)."""
    d = Path(tempfile.mkdtemp(prefix=f"hull-{SESSION_TOKEN}-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield Bundle(d / "bundle", cached_rootfs(tmp_path_factory))
        assert wait_until(lambda: not host_mounts_under(d), 5), host_mounts_under(d)
    finally:
        shutil.rmtree(d)
