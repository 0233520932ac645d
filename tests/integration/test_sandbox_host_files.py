"""Host files of a container-level sandbox (--bind, --rootfs) while it runs
as a block of host uids of its own: they are idmapped to the shared block
(docs/sandbox.md "Users"), so what the sandbox sees of them, and may do
with them, is what a sandbox in the shared block saw and could do.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandboxlib import (HOST_UID, UID_BASE, Sandbox, _cmdline, cancel, is_own_block,
                        pids_with_env, sandbox_uid_base, wait_until)

NOBODY = 65534


@pytest.fixture
def sb():
    return Sandbox()


@pytest.fixture
def open_tmp():
    """A directory the sandbox's root can reach."""
    d = Path(tempfile.mkdtemp(prefix="hull-sbhf-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def ramfs(open_tmp):
    """A mounted ramfs (a filesystem that cannot be idmapped, as NFS)."""
    made = []

    def mount(path):
        path.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "ramfs", "hull-test", str(path)], check=True)
        made.append(path)
        return path
    yield mount
    for path in reversed(made):
        subprocess.run(["umount", str(path)], check=True)


def owners(path):
    st = path.stat()
    return (st.st_uid, st.st_gid)


def test_a_rw_bind_shows_and_keeps_host_owners_as_before(sb, open_tmp):
    """A rw bind of a directory others may write, holding files of root, of
    the sandbox user's host uid and of the shared block's uid 0: each shows
    inside as it did in the shared block (nobody, 1000, 0), root's stay
    read-only and its own writable, what it makes is owned by 1000001000 on
    the host, and a root-owned 0755 directory in it refuses new files."""
    d = open_tmp / "shared"
    d.mkdir()
    d.chmod(0o777)
    (d / "root_file").write_text("root\n")
    (d / "own").write_text("own\n")
    os.chown(d / "own", HOST_UID, HOST_UID)
    (d / "zero").write_text("zero\n")
    os.chown(d / "zero", UID_BASE, UID_BASE)
    (d / "root_dir").mkdir()
    script = ("stat -c '%n %u %g' /data/root_file /data/own /data/zero /data/root_dir; "
              "cat /data/root_file; "
              "echo more >> /data/own && echo own-ok; "
              "echo evil >> /data/root_file 2>/dev/null || echo root-ro; "
              "touch /data/root_dir/x 2>/dev/null || echo root-dir-ro; "
              "echo made > /data/new && mkdir /data/newdir && echo made-ok; "
              "chmod 600 /data/own && echo chmod-ok; "
              "chmod 666 /data/root_file 2>/dev/null || echo chmod-root-refused")
    r = sb("--bind", f"{d}:/data:rw", cmd=["sh", "-c", script])
    assert r.verdict == "ok", r
    assert r.out.splitlines() == [
        f"/data/root_file {NOBODY} {NOBODY}", "/data/own 1000 1000", "/data/zero 0 0",
        f"/data/root_dir {NOBODY} {NOBODY}", "root", "own-ok", "root-ro", "root-dir-ro",
        "made-ok", "chmod-ok", "chmod-root-refused"], r
    assert (d / "own").read_text() == "own\nmore\n" and (d / "root_file").read_text() == "root\n"
    assert owners(d / "new") == owners(d / "newdir") == (HOST_UID, HOST_UID)
    assert owners(d / "root_file") == (0, 0) and (d / "root_file").stat().st_mode & 0o777 == 0o644
    assert not (d / "root_dir" / "x").exists()


def test_root_owned_host_files_stay_out_of_reach(sb, open_tmp):
    """A root-owned host directory bound rw gives no write access to it (its
    files and directories stay root's: others may not write), a device node
    on a bind opens for nobody (nodev), and both mounts are nosuid."""
    dev = open_tmp / "dev"
    dev.mkdir()
    os.mknod(dev / "null", 0o20666, os.makedev(1, 3))
    r = sb("--bind", "/usr/share:/share:rw", "--bind", f"{dev}:/hostdev:rw",
           cmd=["sh", "-c", "touch /share/hull-x 2>/dev/null || echo no-write; "
                "stat -c '%u' /share; "
                "echo x > /hostdev/null 2>/dev/null || echo no-dev; "
                "grep -E ' /(share|hostdev) ' /proc/self/mountinfo"])
    assert r.verdict == "ok", r
    lines = r.out.splitlines()
    assert lines[:3] == ["no-write", str(NOBODY), "no-dev"], r
    assert not os.path.exists("/usr/share/hull-x")
    mounts = [l.split() for l in lines[3:]]
    assert sorted(m[4] for m in mounts) == ["/hostdev", "/share"], r
    for m in mounts:
        assert {"nosuid", "nodev", "idmapped"} <= set(m[5].split(",")), m
    assert "warning" not in r.stderr, r


def test_a_rootfs_runs_in_a_block_of_its_own_with_its_owners(sb, open_tmp):
    """A --rootfs whose files are owned by the shared block (as made for it)
    and by root: the sandbox runs as a block of its own and sees them as a
    sandbox in the shared block did."""
    root = open_tmp / "root"
    for sub in ("bin", "proc", "dev", "tmp", "home/user"):
        (root / sub).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "stat", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    os.chown(root / "home" / "user", HOST_UID, HOST_UID)
    (root / "home" / "user").chmod(0o700)
    (root / "home" / "user" / "secret").write_text("mine\n")
    os.chown(root / "home" / "user" / "secret", HOST_UID, HOST_UID)
    r = sb("--rootfs", root, cmd=["/bin/sh", "-c",
                                  "stat -c '%u' /bin/busybox /home/user; "
                                  "cat /home/user/secret; cat /proc/self/uid_map"])
    assert r.verdict == "ok", r
    lines = r.out.splitlines()
    assert lines[:3] == [str(NOBODY), "1000", "mine"], r
    base = int(lines[3].split()[1])
    assert is_own_block(base), r


def test_nested_bind_sources_stay_one_mount(sb, open_tmp):
    """A bind of a directory below another bind's source is made from the
    same idmapped copy: a rename across them within the outer bind is no
    cross-device move."""
    d = open_tmp / "outer"
    (d / "inner").mkdir(parents=True)
    os.chown(d, HOST_UID, HOST_UID)
    os.chown(d / "inner", HOST_UID, HOST_UID)
    r = sb("--bind", f"{d}:/a:rw", "--bind", f"{d / 'inner'}:/b:rw",
           cmd=["sh", "-c", "echo x > /a/f && mv /a/f /a/inner/f && cat /b/f"])
    assert r.verdict == "ok" and r.out == "x\n", r
    assert owners(d / "inner" / "f") == (HOST_UID, HOST_UID)


def test_the_idmapped_mounts_stay_in_the_supervisor(sb, open_tmp):
    """The copies stacked over the bind source and the rootfs exist only in
    the supervisor's private mount namespace: the host's mount table shows
    nothing at those paths while the sandbox runs."""
    d = open_tmp / "data"
    d.mkdir()
    p, out, err = sb.start("--bind", f"{d}:/data", cmd=["sleep", "600"])
    try:
        pid = sb.workload_pid(cmdline="sleep", timeout=60)
        assert is_own_block(sandbox_uid_base(pid))
        with open("/proc/self/mountinfo") as f:
            assert not [l for l in f if str(open_tmp) in l]
    finally:
        cancel(p)
    sb.finish(p, out, err)


def test_a_filesystem_without_idmapping_keeps_the_shared_block(sb, open_tmp, ramfs):
    """A bind source on a filesystem that cannot be idmapped (ramfs here,
    NFS or FUSE elsewhere), or with one mounted below it: the sandbox runs
    in the shared block as before, what it writes is 1000001000's, and a
    warning names the path and why."""
    ram = ramfs(open_tmp / "ram")
    os.chown(ram, HOST_UID, HOST_UID)
    r = sb("--bind", f"{ram}:/data:rw",
           cmd=["sh", "-c", "echo made > /data/f; cat /proc/self/uid_map"])
    assert r.verdict == "ok" and r.out.split()[:2] == ["0", str(UID_BASE)], r
    assert owners(ram / "f") == (HOST_UID, HOST_UID)
    assert f"hull: warning: --bind {ram}: its filesystem (ramfs) cannot be idmapped" in r.stderr
    outer = open_tmp / "outer"
    outer.mkdir()
    ramfs(outer / "below")
    r = sb("--bind", f"{outer}:/data", cmd=["cat", "/proc/self/uid_map"])
    assert r.verdict == "ok" and r.out.split()[:2] == ["0", str(UID_BASE)], r
    assert f"--bind {outer}: a filesystem mounted below it" in r.stderr, r


def test_a_bind_below_a_directory_only_the_shared_block_may_search(sb, open_tmp):
    """A bind source below a 0700 directory owned by the shared block's
    uid 0 (made for sandboxes before they had blocks of their own): only
    the source is idmapped, so the sandbox keeps the shared block, which
    can cross that directory, runs as before and is told why."""
    private = open_tmp / "private"
    data = private / "data"
    data.mkdir(parents=True)
    (data / "f").write_text("hi\n")
    os.chown(private, UID_BASE, UID_BASE)
    private.chmod(0o700)
    os.chown(data, HOST_UID, HOST_UID)
    os.chown(data / "f", HOST_UID, HOST_UID)
    r = sb("--bind", f"{data}:/data:rw",
           cmd=["sh", "-c", "cat /data/f && echo made > /data/g && cat /proc/self/uid_map"])
    assert r.verdict == "ok", r
    lines = r.out.splitlines()
    assert lines[0] == "hi" and lines[1].split()[:2] == ["0", str(UID_BASE)], r
    assert owners(data / "g") == (HOST_UID, HOST_UID)
    assert f"hull: warning: --bind {data}: Permission denied for the sandbox's own" in r.stderr, r
