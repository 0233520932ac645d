"""Where a sandbox run keeps its state (src/lib/sandbox/state_root.c).

On a host whose /run is on a disk, the state goes to /dev/shm/hull-sandbox
(a tmpfs), but only if that directory is root's alone; a /dev/shm entry
somebody else made first is never used. Each case runs hull in a mount
namespace of its own where /run/hull/sandbox is a directory on a disk and
/dev/shm a fresh tmpfs, so the host's own places are not touched.
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from sandboxlib import HULL

RUN_ROOT = "/run/hull/sandbox"
SHM_ROOT = "/dev/shm/hull-sandbox"


def fstype(path):
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def fields(text):
    """The "name: value" lines the scripts below echo."""
    return {k: v.strip() for k, sep, v in (line.partition(":") for line in text.splitlines())
            if sep}


@pytest.fixture(scope="module")
def disk_dir():
    """A directory on a disk filesystem to stand in for a disk-backed /run."""
    for base in ("/var/tmp", "/var/lib", "/root"):
        if os.path.isdir(base) and fstype(base) not in ("tmpfs", "ramfs"):
            d = tempfile.mkdtemp(prefix="hull-state-root-", dir=base)
            os.chmod(d, 0o700)
            yield d
            shutil.rmtree(d)
            return
    pytest.skip("no directory on a disk filesystem to stand in for /run")


def in_own_mount_ns(disk_dir, prepare, check):
    """Run `prepare`, then a sandbox whose program sleeps while `check` looks
    at the host side, in a private mount namespace: /run/hull/sandbox is
    disk_dir (bound over it), /dev/shm a fresh tmpfs."""
    script = f"""
set -e
mkdir -p {RUN_ROOT}
mount --bind {disk_dir} {RUN_ROOT}
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
{prepare}
{HULL} sandbox run -- /bin/sleep 1 &
pid=$!
for i in $(seq 100); do
    ls {RUN_ROOT} /dev/shm/hull-sandbox/ 2>/dev/null | grep -q '^sandbox-' && break
    sleep 0.05
done
{check}
wait $pid
echo after-run
ls -A {RUN_ROOT}
ls -A {SHM_ROOT} 2>/dev/null || true
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    during, _, after = r.stdout.partition("after-run\n")
    assert "run:" in during, r.stdout + r.stderr
    return during, after


def test_state_goes_to_dev_shm_when_run_is_on_a_disk(disk_dir):
    during, after = in_own_mount_ns(
        disk_dir, "",
        f"echo run: $(ls {RUN_ROOT}); echo shm: $(ls {SHM_ROOT}); "
        f"stat -c 'shm-mode: %a %u %F' {SHM_ROOT}")
    lines = fields(during)
    assert lines["run"] == "", during
    assert lines["shm"].startswith("sandbox-"), during
    assert lines["shm-mode"] == "700 0 directory", during
    # The run's directory went with it.
    assert after.strip() == "", after


@pytest.mark.parametrize("squat", [
    "mkdir -m 0700 {shm} && chown 65534:65534 {shm}",  # somebody else's
    "mkdir -m 0777 {shm}",                              # root's, open to all
    "mkdir -m 0700 /dev/shm/elsewhere && ln -s /dev/shm/elsewhere {shm}",  # a symlink
])
def test_a_dev_shm_entry_not_roots_alone_is_never_used(disk_dir, squat):
    during, after = in_own_mount_ns(
        disk_dir, squat.format(shm=SHM_ROOT),
        f"echo run: $(ls {RUN_ROOT}); echo shm: $(ls -A {SHM_ROOT}/ 2>/dev/null); "
        "echo elsewhere: $(ls -A /dev/shm/elsewhere 2>/dev/null)")
    lines = fields(during)
    assert lines["run"].startswith("sandbox-"), during
    assert lines["shm"] == "" and lines["elsewhere"] == "", during
    assert after.strip() == "", after


def test_cleanup_searches_both_roots(disk_dir):
    """A run killed with its supervisor leaves its state in /dev/shm; the
    cleanup verb, run where /run is a tmpfs again (the other root), finds it."""
    script = f"""
set -e
mkdir -p {RUN_ROOT}
mount --bind {disk_dir} {RUN_ROOT}
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
{HULL} sandbox run -- /bin/sleep 30 &
pid=$!
for i in $(seq 100); do ls {SHM_ROOT} 2>/dev/null | grep -q '^sandbox-' && break; sleep 0.05; done
kill -9 $pid
wait $pid || true
echo left: $(ls {SHM_ROOT})
umount {RUN_ROOT}
mount -t tmpfs -o mode=0700 tmpfs {RUN_ROOT}
{HULL} sandbox cleanup
echo after: $(ls -A {SHM_ROOT})
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = fields(r.stdout)
    assert lines["left"].startswith("sandbox-"), r.stdout
    assert lines["after"] == "", r.stdout + r.stderr
