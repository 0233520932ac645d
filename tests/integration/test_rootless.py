"""hull as an unprivileged user: `spec --rootless` + `run`, the lifecycle
verbs, limits that cannot be enforced, the per-user state root, the sandbox's
refusal and podman rootless with `--runtime hull`.

The suite runs as root; these tests drop to a test user (`hulltest`, made
here if missing, with a subordinate id range for podman) through setpriv.
The user gets its own directory under /tmp (pytest's are root-only), with a
copy of build/hull, its bundles and its XDG_RUNTIME_DIR. After each test no
process of the user may be left, nor any container state.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import HULL, cgroup_dirs_named, reap_orphans, wait_until

sys.path.insert(0, os.path.dirname(__file__))
from engines import busybox  # noqa: E402
from engines.runtime import require_packages  # noqa: E402

USER = "hulltest"
SUBID_SIZE = 65536


def _add_subid(path, user):
    """Give user a subordinate range in /etc/subuid or /etc/subgid unless it
    has one: the next free 65536 ids from 100000 on (idempotent)."""
    lines = Path(path).read_text().splitlines() if os.path.exists(path) else []
    if any(line.split(":")[0] == user for line in lines):
        return
    end = 100000
    for line in lines:
        parts = line.split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            end = max(end, int(parts[1]) + int(parts[2]))
    with open(path, "a") as f:
        f.write(f"{user}:{end}:{SUBID_SIZE}\n")


@pytest.fixture(scope="module")
def user():
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    for f in ("/etc/subuid", "/etc/subgid"):
        _add_subid(f, USER)
    return pw


def user_pids(uid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = os.stat(f"/proc/{d}")
            except OSError:
                continue
            if st.st_uid == uid and d != str(os.getpid()):
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                            continue
                except OSError:
                    continue
                out.append(int(d))
    return out


class As:
    """Runs commands as the test user in its own directory."""

    def __init__(self, pw, top: Path):
        self.pw = pw
        self.top = top
        self.hull = str(top / "hull")
        self.xdg = top / "xdg"
        self.home = top / "home"

    def env(self, **extra):
        e = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.home),
             "XDG_RUNTIME_DIR": str(self.xdg), "LANG": "C"}
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def run(self, *cmd, env=None, timeout=120, input=None, cwd=None):
        # Files, not pipes: a created container inherits hull's stdio.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            cp = subprocess.run(
                ["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--init-groups",
                 "--", *cmd],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL if input is None else None,
                input=input.encode() if input is not None else None, env=env or self.env(),
                timeout=timeout, cwd=cwd or str(self.top))
            out.seek(0)
            err.seek(0)
            cp.stdout = out.read().decode(errors="replace")
            cp.stderr = err.read().decode(errors="replace")
        return cp

    def hull_cmd(self, *args, env=None, **kw):
        return self.run(self.hull, *args, env=env, **kw)

    def bundle(self, name, args, edit=None):
        """`hull spec --rootless` run by the user, then args set."""
        b = self.top / name
        busybox.make_rootfs(str(b / "rootfs"))
        self.chown(b)
        r = self.hull_cmd("spec", "--rootless", "--bundle", str(b))
        assert r.returncode == 0, r.stderr
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        if edit:
            edit(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
        return b

    def chown(self, path):
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), self.pw.pw_uid, self.pw.pw_gid)
        os.lchown(path, self.pw.pw_uid, self.pw.pw_gid)


@pytest.fixture
def rl(user):
    top = Path(tempfile.mkdtemp(prefix="hull-rootless-", dir="/tmp"))
    os.chmod(top, 0o755)
    shutil.copy2(HULL, top / "hull")
    os.chmod(top / "hull", 0o755)
    a = As(user, top)
    for d in (a.xdg, a.home):
        d.mkdir(mode=0o700)
        os.chown(d, user.pw_uid, user.pw_gid)
    fallback = Path(f"/tmp/hull-{user.pw_uid}")
    had_fallback = fallback.exists()
    yield a
    # Nothing of the user may be left running, nor any container state.
    left = []
    if not wait_until(lambda: reap_orphans() or not user_pids(user.pw_uid), timeout=60):
        left.append(f"processes of {USER}: " +
                    ", ".join(f"{p} {open(f'/proc/{p}/cmdline', 'rb').read()[:80]!r}"
                              for p in user_pids(user.pw_uid) if os.path.exists(f"/proc/{p}")))
        for p in user_pids(user.pw_uid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for root in (a.xdg / "hull", fallback):
        if root.is_dir() and os.listdir(root):
            left.append(f"state in {root}: {os.listdir(root)}")
    if fallback.exists() and not had_fallback:
        shutil.rmtree(fallback, ignore_errors=True)
    shutil.rmtree(top, ignore_errors=True)
    assert not left, left


@pytest.fixture
def userns_ok(rl):
    """rl, on a host that lets users make user namespaces (probed: some
    hosts turn that off, and then no rootless runtime can work)."""
    r = rl.run("unshare", "--user", "--map-root-user", "true")
    if r.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not allowed here: {r.stderr.strip()}")
    return rl


def user_may_make_cgroups(a):
    """Whether the user can mkdir in some hierarchy where hull would create
    its cgroup (a host that delegates the cgroup root to users)."""
    for line in open("/proc/self/mountinfo"):
        fs = line.split(" - ", 1)[1].split()[0]
        if fs in ("cgroup", "cgroup2"):
            mp = line.split()[4]
            for d in (mp, os.path.join(mp, "hull")):
                probe = os.path.join(d, f"hull-rootless-probe-{os.getpid()}")
                if a.run("mkdir", probe).returncode == 0:
                    os.rmdir(probe)
                    return True
    return False


@pytest.mark.usefixtures("userns_ok")
def test_spec_rootless_then_run(rl):
    """The issue's reproduction: `hull spec --rootless` + `hull run` as a
    user, on a host where the user may not create cgroups."""
    b = rl.bundle("b", ["sh", "-c", "id -u; cat /proc/self/uid_map; echo done"])
    cid = f"rl-run-{os.getpid()}"
    r = rl.hull_cmd("run", "--bundle", str(b), cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(rl.pw.pw_uid), "1"]
    assert lines[2] == "done"
    assert r.stderr == ""
    assert not cgroup_dirs_named(cid)
    assert os.listdir(rl.xdg / "hull") == []


@pytest.mark.usefixtures("userns_ok")
def test_exit_code_and_stdin(rl):
    b = rl.bundle("b", ["sh", "-c", "read x; echo got-$x; exit 7"])
    r = rl.hull_cmd("run", "--bundle", str(b), f"rl-exit-{os.getpid()}", input="hello\n")
    assert (r.returncode, r.stdout) == (7, "got-hello\n"), r.stderr


@pytest.mark.usefixtures("userns_ok")
def test_lifecycle_verbs(rl):
    b = rl.bundle("b", ["sleep", "1000"])
    cid = f"rl-life-{os.getpid()}"
    h = rl.hull_cmd
    r = h("create", "--bundle", str(b), cid)
    assert r.returncode == 0, r.stderr
    st = json.loads(h("state", cid).stdout)
    assert st["status"] == "created" and st["owner"] == USER
    pid = st["pid"]
    # The init runs as the user on the host, in its own user namespace.
    assert os.stat(f"/proc/{pid}").st_uid == rl.pw.pw_uid
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert (rl.xdg / "hull" / cid).is_dir()
    assert h("start", cid).returncode == 0
    assert json.loads(h("state", cid).stdout)["status"] == "running"
    lst = h("list", "--format", "json")
    assert [c["id"] for c in json.loads(lst.stdout)] == [cid], lst.stderr
    r = h("exec", cid, "sh", "-c", "id -u; cat /proc/1/cmdline; exit 4")
    assert (r.returncode, r.stdout) == (4, "0\nsleep\x001000\x00"), r.stderr
    # What needs the cgroup hull could not make says so.
    for verb in ("pause", "resume", "events"):
        r = h(verb, cid)
        assert r.returncode != 0 and "has no cgroup" in r.stderr, (verb, r.stderr)
    r = h("update", "--pids-limit", "10", cid)
    assert r.returncode != 0 and "has no cgroup" in r.stderr, r.stderr
    # ps and kill --all find the processes through the pid namespace.
    assert h("exec", "--detach", cid, "sleep", "999").returncode == 0
    host_pids = lambda: sorted(json.loads(h("ps", "--format", "json", cid).stdout))  # noqa: E731
    assert wait_until(lambda: len(host_pids()) == 2, timeout=30), h("ps", "--format", "json", cid)
    cmds = sorted(open(f"/proc/{p}/cmdline", "rb").read() for p in host_pids())
    assert cmds == [b"sleep\x001000\x00", b"sleep\x00999\x00"]
    r = h("delete", cid)
    assert r.returncode != 0 and "running" in r.stderr
    # TERM: the exec'd sleep dies of it; the init (pid 1 inside, no
    # handler) is immune to it, so only --all could have reached the other.
    assert h("kill", "--all", cid, "TERM").returncode == 0
    assert wait_until(lambda: host_pids() == [pid], timeout=30), host_pids()
    assert h("kill", cid, "KILL").returncode == 0
    # The exec'd sleep's parent, hull exec, is gone: as a subreaper, this
    # process inherited it, and the init's pid namespace ends when it is reaped.
    assert wait_until(lambda: reap_orphans() or json.loads(h("state", cid).stdout)["status"] == "stopped",
                      timeout=30)
    r = h("delete", cid)
    assert r.returncode == 0, r.stderr
    assert h("state", cid).returncode != 0
    assert not (rl.xdg / "hull" / cid).exists()


@pytest.mark.usefixtures("userns_ok")
def test_create_never_races_the_id_maps(rl):
    """The runtime writes the init's uid_map while the init sets itself up;
    an init that turned non-dumpable first made that file root's, and a
    rootless create failed now and then with EACCES."""
    b = rl.bundle("b", ["true"])
    for i in range(12):
        cid = f"rl-race-{os.getpid()}-{i}"
        r = rl.hull_cmd("create", "--bundle", str(b), cid)
        assert r.returncode == 0, (i, r.stderr)
        r = rl.hull_cmd("delete", "--force", cid)
        assert r.returncode == 0, (i, r.stderr)
        reap_orphans()


@pytest.mark.usefixtures("userns_ok")
def test_limit_refused_by_name(rl):
    """A limit hull cannot enforce without a cgroup is refused, naming the
    field, and nothing is left; device rules alone do not need a cgroup."""
    if user_may_make_cgroups(rl):
        pytest.skip("this host lets users create cgroups where hull makes them")

    def mem(cfg):
        cfg["linux"]["resources"] = {"memory": {"limit": 64 << 20}}

    b = rl.bundle("b", ["true"], mem)
    cid = f"rl-mem-{os.getpid()}"
    r = rl.hull_cmd("run", "--bundle", str(b), cid)
    assert r.returncode == 1
    assert r.stderr.startswith(f"hull: run {cid}: linux.resources.memory: cannot be enforced"), r.stderr
    assert r.stderr.count("\n") == 1
    assert os.listdir(rl.xdg / "hull") == []

    def pids(cfg):
        cfg["linux"]["resources"] = {"pids": {"limit": 10}}

    b2 = rl.bundle("b2", ["true"], pids)
    r = rl.hull_cmd("run", "--bundle", str(b2), cid)
    assert r.returncode == 1 and "linux.resources.pids: cannot be enforced" in r.stderr, r.stderr

    def devices(cfg):
        cfg["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}

    b3 = rl.bundle("b3", ["sh", "-c", "echo x > /dev/null && echo ok"], devices)
    r = rl.hull_cmd("run", "--bundle", str(b3), cid)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr


@pytest.mark.usefixtures("userns_ok")
def test_cgroup_mount_shows_callers_cgroups(rl):
    """A rootless container without a cgroup of its own that mounts
    cgroupfs sees the cgroups it is in (the caller's), read-only."""

    def add(cfg):
        cfg["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                              "options": ["nosuid", "noexec", "nodev", "ro"]})

    b = rl.bundle("b", ["sh", "-c", "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null || echo ro"], add)
    r = rl.hull_cmd("run", "--bundle", str(b), f"rl-cgmnt-{os.getpid()}")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[-1] == "ro"
    assert out[:-1], "no cgroup hierarchy visible"


@pytest.mark.usefixtures("userns_ok")
def test_default_root_is_per_user(rl):
    """Without --root: $XDG_RUNTIME_DIR/hull, else /tmp/hull-<uid>."""
    b = rl.bundle("b", ["sleep", "1000"])
    cid = f"rl-root-{os.getpid()}"
    fallback = Path(f"/tmp/hull-{rl.pw.pw_uid}")
    for env, where in ((rl.env(), rl.xdg / "hull"), (rl.env(XDG_RUNTIME_DIR=None), fallback)):
        r = rl.hull_cmd("create", "--bundle", str(b), cid, env=env)
        assert r.returncode == 0, r.stderr
        try:
            assert (where / cid / "state.json").is_file()
            st = os.stat(where)
            assert (st.st_uid, st.st_mode & 0o777) == (rl.pw.pw_uid, 0o700)
        finally:
            r = rl.hull_cmd("delete", "--force", cid, env=env)
            assert r.returncode == 0, r.stderr
        assert not (where / cid).exists()
    assert "$XDG_RUNTIME_DIR/hull" in rl.hull_cmd("--help").stdout


def test_root_others_may_write_is_refused(rl):
    """A state root another user owns or anyone may write to could be
    seeded with a state.json naming someone else's process: refused."""
    b = rl.bundle("b", ["true"])
    bad = rl.top / "shared-root"
    bad.mkdir()
    os.chmod(bad, 0o777)
    r = rl.hull_cmd("--root", str(bad), "run", "--bundle", str(b), "c1")
    assert r.returncode == 1 and f"--root {bad}: writable by every user" in r.stderr, r.stderr
    assert os.listdir(bad) == []
    os.chmod(bad, 0o755)
    os.chown(bad, 65534, 65534)
    r = rl.hull_cmd("--root", str(bad), "delete", "--force", "c1")
    assert r.returncode == 1 and "owned by uid 65534" in r.stderr, r.stderr


def test_sandbox_refuses_at_once(rl):
    """The sandbox as a user: a clear refusal and exit 125, nothing made."""
    before = set(os.listdir("/run/hull")) if os.path.isdir("/run/hull") else set()
    for extra in ((), ("--json",), ("--isolation", "process")):
        r = rl.hull_cmd("sandbox", "run", *extra, "--", "/bin/true")
        assert r.returncode == 125, r
        assert r.stdout == ""
        assert r.stderr.startswith("hull: sandbox run: needs root (running as uid "), r.stderr
        assert "internal_error" not in r.stderr and r.stderr.count("\n") == 1
    after = set(os.listdir("/run/hull")) if os.path.isdir("/run/hull") else set()
    assert after == before


# ---- podman rootless, --runtime hull ---------------------------------------

PODMAN_IMAGE = "localhost/hull-busybox:rootless"


class UserPodman:
    """Debian's podman run by the test user, with its own store under the
    user's directory (vfs: no fuse-overlayfs needed), no network, cgroupfs,
    and --runtime <the user's copy of hull>."""

    def __init__(self, a: As, runtime):
        self.a = a
        self.runtime = runtime
        self.top = a.top / "podman"
        self.tmp = self.top / "tmp"
        for d in (self.top, self.tmp):
            d.mkdir(exist_ok=True)
        (self.top / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024"]\n'
            'netns = "none"\n'
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.top}/events.log"\n'
            'lock_type = "file"\n'
            f'tmp_dir = "{self.tmp}"\n')
        (self.top / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.top}/graph"\nrunroot = "{a.xdg}/storage"\n')
        a.chown(self.top)
        self.env = a.env(CONTAINERS_CONF=str(self.top / "containers.conf"),
                         CONTAINERS_STORAGE_CONF=str(self.top / "storage.conf"),
                         XDG_CONFIG_HOME=str(a.home / ".config"), XDG_DATA_HOME=str(a.home / ".local"))

    def __call__(self, *args, check=True, timeout=180, input=None):
        r = self.a.run("podman", "--runtime", self.runtime, *args, env=self.env, timeout=timeout,
                       input=input)
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r

    def destroy(self):
        self("rm", "-a", "-f", "-t", "0", check=False)
        self("system", "reset", "-f", check=False, timeout=300)
        # Rootless podman keeps a pause process holding its user namespace.
        pause = self.tmp / "pause.pid"
        if pause.exists():
            try:
                os.kill(int(pause.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture
def upodman(rl, userns_ok):
    require_packages("engines", ["podman", "conmon", "newuidmap"])
    layer = rl.top / "layer.tar"
    rootfs = busybox.make_rootfs(str(rl.top / "image-rootfs"))
    busybox.rootfs_tar(rootfs, str(layer))
    shutil.rmtree(rootfs)
    os.chmod(layer, 0o644)
    pm = UserPodman(rl, rl.hull)
    try:
        pm("import", "-q", "--change", "ENV=PATH=" + busybox.IMAGE_PATH, "--change", 'CMD=["/bin/sh"]',
           str(layer), PODMAN_IMAGE)
        yield pm
    finally:
        pm.destroy()


def test_podman_rootless_run_rm(upodman):
    r = upodman("run", "--rm", PODMAN_IMAGE, "sh", "-c",
                "id -u; cat /proc/self/uid_map | head -1; echo err >&2; exit 5", check=False)
    assert r.returncode == 5, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    # Root in the container is the user on the host.
    assert lines[1].split() == ["0", str(upodman.a.pw.pw_uid), "1"]
    assert "err" in r.stderr
    # keep-id: hull, root of podman's user namespace, writes a map of
    # several ranges for the container's own.
    r = upodman("run", "--rm", "--userns=keep-id", PODMAN_IMAGE, "sh", "-c", "id -u; cat /proc/self/uid_map")
    lines = r.stdout.split("\n")
    uid = str(upodman.a.pw.pw_uid)
    assert lines[0] == uid, r.stdout
    assert [uid, "0", "1"] in [ln.split() for ln in lines[1:]], r.stdout
    assert upodman("ps", "-a", "-q").stdout == ""
    assert os.listdir(upodman.a.xdg / "hull") == []


def test_podman_rootless_detached_exec_stop_rm(upodman):
    p = upodman
    name = f"rl-d-{os.getpid()}"
    p("run", "-d", "--name", name, PODMAN_IMAGE, "sleep", "1000")
    st = json.loads(p("inspect", name).stdout)[0]["State"]
    assert st["Status"] == "running"
    pid = st["Pid"]
    assert os.stat(f"/proc/{pid}").st_uid == p.a.pw.pw_uid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x001000\x00"
    r = p("exec", name, "sh", "-c", "echo from-exec; cat /proc/1/cmdline; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "from-exec\nsleep\x001000\x00"), r.stderr
    p("stop", "-t", "1", name)
    st = json.loads(p("inspect", name).stdout)[0]["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 137), st
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30)
    p("rm", name)
    assert p("ps", "-a", "-q").stdout == ""
    assert wait_until(lambda: os.listdir(p.a.xdg / "hull") == [], timeout=30)
