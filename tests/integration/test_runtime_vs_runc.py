"""Differential: the same bundle run by runc and by hull must look the same
from inside (credentials, capabilities, limits, cwd, environment, names,
umask, oom score, devices, sysctls, tmpfs options, read-only root).

Each variant is one config.json change; the container prints what it sees
and the two outputs are compared line by line. Only facts where runc
follows the runtime-spec and hull means to agree are probed: the places
where hull departs on purpose (masked directories sharing one tmpfs, a
read-only /sys/fs/cgroup, stricter read-only paths) are left out, and so
are those where runc 1.1 departs from the spec (it ignores domainname, and
looks args[0] up in an empty PATH when env has none). Skipped
where runc is not installed or cannot run the default bundle here.
"""
import shutil

import pytest

from conftest import Bundle, Hull, cached_rootfs
from hullrt import cid

RUNC = shutil.which("runc")

PROBE = r"""
grep -E '^(Uid|Gid|Groups|Umask|Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status
cat /proc/self/limits
echo "cwd $(pwd)"
env | sort
echo "uts $(hostname) $(cat /proc/sys/kernel/domainname)"
echo "umask $(umask) oom $(cat /proc/self/oom_score_adj)"
id
for f in /dev/* /dev/pts/*; do stat -c '%A %u %g %t:%T %N' "$f"; done
echo "sysctl $(cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax)"
touch /probe 2>/dev/null; echo "root-writable $?"
grep ' /t ' /proc/self/mountinfo | cut -d' ' -f6,9- | sed 's/ - / /'
"""


def _caps(c, **sets):
    c["process"]["capabilities"] = sets


def _drop(key):
    return lambda c: c["process"].pop(key)


VARIANTS = {
    "default": lambda c: None,
    "no-new-privileges-false": lambda c: c["process"].update(noNewPrivileges=False),
    "user-and-groups": lambda c: c["process"].update(
        user={"uid": 1000, "gid": 1000, "additionalGids": [5, 10]}),
    "umask": lambda c: c["process"]["user"].update(umask=0o077),
    "cwd-made": lambda c: c["process"].update(cwd="/a/b/c"),
    "rlimits": lambda c: c["process"].update(rlimits=[
        {"type": "RLIMIT_NOFILE", "hard": 100, "soft": 50},
        {"type": "RLIMIT_CORE", "hard": 2 ** 64 - 1, "soft": 0},
        {"type": "RLIMIT_NPROC", "hard": 500, "soft": 400}]),
    "oom-score-adj": lambda c: c["process"].update(oomScoreAdj=500),
    "sysctl": lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1",
                                                   "kernel.msgmax": "4096"}),
    "root-writable": lambda c: c["root"].update(readonly=False),
    "no-capabilities": _drop("capabilities"),
    "ambient-not-inheritable": lambda c: c["process"]["capabilities"].update(
        ambient=["CAP_KILL", "CAP_AUDIT_WRITE"], inheritable=["CAP_KILL"]),
    "caps-of-a-user": lambda c: (
        c["process"].update(user={"uid": 1000, "gid": 1000}, noNewPrivileges=False),
        _caps(c, bounding=["CAP_CHOWN", "CAP_KILL"], effective=["CAP_CHOWN"],
              permitted=["CAP_CHOWN"], inheritable=["CAP_CHOWN"], ambient=["CAP_CHOWN"])),
    # runc 1.1 looks args[0] up in an empty PATH (execvp would not): absolute
    "no-env": lambda c: (c["process"].pop("env"), c["process"]["args"].__setitem__(0, "/bin/sh")),
    "linux-devices": lambda c: c["linux"].update(devices=[
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 1000, "gid": 5},
        {"path": "/dev/sub/blk", "type": "b", "major": 7, "minor": 9}]),
    "devpts-options": lambda c: c["mounts"].__setitem__(2, {
        "destination": "/dev/pts", "type": "devpts", "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0600", "mode=0600"]}),
    "tmpfs-options": lambda c: c["mounts"].append({
        "destination": "/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["mode=700", "size=1m", "uid=1000", "gid=1000", "noexec", "nosuid"]}),
    "no-dev-tmpfs": lambda c: c.update(
        mounts=[m for m in c["mounts"] if m["destination"] != "/dev"]),
}


def _run(rt, bundle, name):
    bundle.write()
    c = cid(name)
    try:
        return rt("run", "--bundle", str(bundle.path), c, timeout=60)
    finally:
        rt("delete", "--force", c)


@pytest.fixture(scope="module")
def runc_ok(tmp_path_factory):
    if RUNC is None:
        pytest.skip("runc is not installed")
    d = tmp_path_factory.mktemp("runc-check")
    r = _run(Hull(d / "state", binary=RUNC), Bundle(d / "bundle", cached_rootfs(tmp_path_factory),
                                                    ["true"]), "runc-check")
    if r.returncode != 0:
        pytest.skip(f"runc cannot run the default bundle here: {r.stderr[-300:]}")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_container_sees_what_it_sees_under_runc(hull, make_bundle, tmp_path, runc_ok,
                                                variant):
    runc = Hull(tmp_path / "runc-state", binary=RUNC)
    # a bundle each: what one runtime makes in the rootfs (process.cwd, a
    # mount point) must not be there already for the other
    b1, b2 = make_bundle(["sh", "-c", PROBE]), make_bundle(["sh", "-c", PROBE])
    VARIANTS[variant](b1.config)
    VARIANTS[variant](b2.config)
    want = _run(runc, b1, "runc")
    got = _run(hull, b2, "hull")
    assert (got.returncode == 0) == (want.returncode == 0), (want, got)
    assert got.stdout.splitlines() == want.stdout.splitlines()
