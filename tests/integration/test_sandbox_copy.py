"""Data into and out of `hull sandbox run`: --stdin, --copy-in, --copy-out,
checked against what the host's own files and disks show afterwards."""
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sandboxlib import Sandbox

MiB = 1024 * 1024
LEVELS = ["process", "container"]


@pytest.fixture
def sb():
    return Sandbox()


@pytest.fixture
def open_tmp():
    """A directory the sandbox's root can reach (pytest's are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="hull-sbcopy-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


# ---- --stdin ----------------------------------------------------------------


@pytest.mark.parametrize("iso", LEVELS)
def test_stdin_file_is_not_the_host_file(sb, open_tmp, iso):
    """fd 0 is a pipe hull feeds: the sandbox neither sees the host path nor
    can reopen the host file for writing through /proc/self/fd/0, even when
    the file is writable by everyone."""
    f = open_tmp / "input.txt"
    f.write_bytes(b"original\n")
    f.chmod(0o666)
    script = ("readlink /proc/self/fd/0; stat -L -c %F /proc/self/fd/0; "
              "(echo x >> /proc/self/fd/0) 2>/dev/null; (: > /proc/self/fd/0) 2>/dev/null; "
              "(truncate -s 0 /proc/self/fd/0) 2>/dev/null; cat")
    r = sb("--isolation", iso, "--stdin", f, cmd=["sh", "-c", script])
    assert r.verdict == "ok", r
    link, kind, *rest = r.out.splitlines()
    assert str(open_tmp) not in r.out and link.startswith("pipe:"), r
    assert kind == "fifo", r
    assert rest == ["original"], r
    assert f.read_bytes() == b"original\n"


@pytest.mark.parametrize("iso", LEVELS)
def test_stdin_file_larger_than_a_pipe_arrives_intact(sb, open_tmp, iso):
    data = os.urandom(3 * MiB + 12345)
    f = open_tmp / "big.bin"
    f.write_bytes(data)
    r = sb("--isolation", iso, "--stdin", f, "--cpu-time", "30s", "--wall-time", "120s",
           cmd=["sh", "-c", "sha256sum; echo done >&2"])
    assert r.verdict == "ok", r
    assert r.out.split()[0] == hashlib.sha256(data).hexdigest(), r


def test_stdin_program_that_stops_reading(sb, open_tmp):
    """A program that closes its stdin early ends the feeding, not hull."""
    f = open_tmp / "big.bin"
    f.write_bytes(b"y\n" * (2 * MiB))
    r = sb("--stdin", f, cmd=["sh", "-c", "head -c 4; exec 0<&-; sleep 0.2; echo end"])
    assert r.verdict == "ok" and r.rc == 0 and r.out == "y\ny\nend\n", r


def test_stdin_endless_source(sb):
    r = sb("--stdin", "/dev/zero", cmd=["head", "-c", "100000"])
    assert r.verdict == "ok" and len(r.j["stdout_base64"]) > 0, r


# ---- --copy-in lands in the sandbox's /tmp and nowhere else ------------------


def snapshot(root):
    """Every entry under root with its type, owner, mode and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, data,
                                             os.readlink(p) if p.is_symlink() else None)
    return out


@pytest.mark.parametrize("iso", LEVELS)
@pytest.mark.parametrize("target", ["/", "etc", "/etc"])
def test_copy_in_through_a_rootfs_tmp_symlink_is_refused(sb, open_tmp, tmp_path_factory, iso,
                                                          target):
    """A --rootfs whose tmp is a symlink would carry the sandbox's /tmp, and
    the supervisor's copy-ins, into the user's rootfs on the host."""
    from conftest import cached_rootfs
    root = open_tmp / "rootfs"
    shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
    (root / "tmp").rmdir()
    (root / "tmp").symlink_to(target)
    f = open_tmp / "payload"
    f.write_text("evil:x:0:0::/:/bin/sh\n")
    before = snapshot(root)
    r = sb("--isolation", iso, "--rootfs", root, "--copy-in", f"{f}:/tmp/etc/passwd",
           "--copy-in", f"{f}:/tmp/new/file", cmd=["/bin/true"])
    assert r.rc == 125 and r.j is None, r
    assert f"--rootfs: /tmp in {root} is a symlink" in r.stderr, r
    assert snapshot(root) == before


@pytest.mark.parametrize("iso", LEVELS)
def test_copy_in_with_a_rootfs_stays_in_the_sandbox_tmp(sb, open_tmp, tmp_path_factory, iso):
    from conftest import cached_rootfs
    root = open_tmp / "rootfs"
    shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
    f = open_tmp / "payload"
    f.write_text("data\n")
    before = snapshot(root)
    r = sb("--isolation", iso, "--rootfs", root, "--copy-in", f"{f}:/tmp/etc/passwd",
           cmd=["/bin/sh", "-c", "cat /tmp/etc/passwd; head -1 /etc/passwd"])
    assert r.verdict == "ok", r
    assert r.out == "data\nroot:x:0:0:root:/root:/bin/sh\n", r
    assert snapshot(root) == before
