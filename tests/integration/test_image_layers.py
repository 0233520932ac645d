"""Image layers, end to end: build/tests/imagetool drives src/lib/image
(unpack.c, rootfs.c, layer_write.c) against real tars made here with
Python's tarfile (plain, gzip, and zstd by the `zstd` binary), real
overlayfs mounts and GNU tar.

What must hold: a layer lands exactly beneath hull/layers/<diff-id> in
overlayfs form, or not at all (no entry outside, no temporary directory, no
lock file left); the overlay view equals the flattened copy; a layer written
from a directory unpacks back to the same tree.
"""
import errno
import gzip
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HULL = Path(os.environ.get("HULL", ROOT / "build" / "hull"))
TOOL = HULL.parent / "tests" / "imagetool"
EPERM_EXIT = 3

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers carry owners and devices")


# ---- a store written here, independently of the code under test ------------

def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def compress(data, how):
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return zstd(data)
    return data


MEDIA = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
         None: "application/vnd.oci.image.layer.v1.tar"}


class Store:
    def __init__(self, root):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        if not (self.root / "index.json").exists():
            (self.root / "index.json").write_text(
                json.dumps({"schemaVersion": 2, "manifests": []}))

    @property
    def layers(self):
        return self.root / "hull" / "layers"

    def blob(self, data):
        d = sha(data)
        (self.root / "blobs" / "sha256" / d[7:]).write_bytes(data)
        return d

    def layer(self, tar, how=None):
        """Store a layer blob: (digest, diff_id, media type)."""
        return self.blob(compress(tar, how)), sha(tar), MEDIA[how]

    def image(self, name, layers):
        config = {"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [l[1] for l in layers]}}
        cdata = json.dumps(config).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": self.blob(cdata), "size": len(cdata)},
                    "layers": [{"mediaType": l[2], "digest": l[0],
                                "size": (self.root / "blobs/sha256" / l[0][7:]).stat().st_size}
                               for l in layers]}
        mdata = json.dumps(manifest).encode()
        index = json.loads((self.root / "index.json").read_text())
        index["manifests"].append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.blob(mdata), "size": len(mdata),
            "annotations": {"org.opencontainers.image.ref.name": name}})
        (self.root / "index.json").write_text(json.dumps(index))
        return name

    def layer_dir(self, diff_id):
        return self.layers / diff_id[7:]

    def leftovers(self):
        if not self.layers.exists():
            return []
        return sorted(p.name for p in self.layers.iterdir()
                      if ".tmp-" in p.name or p.name.endswith(".lock"))


def tool(*args, ok=True, overlay=None):
    env = dict(os.environ)
    if overlay:
        env["HULL_IMAGE_OVERLAY"] = overlay
    p = subprocess.run([str(TOOL), *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300, env=env)
    # under the ASan build a sanitizer report exits 1, like an error
    assert "Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr
    if ok and p.returncode != 0:
        raise AssertionError(f"imagetool {args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


# ---- tars -------------------------------------------------------------------

def entry(name, kind="file", data=b"", mode=None, uid=0, gid=0, link=None, dev=(0, 0),
          xattrs=None, mtime=1_600_000_000):
    ti = tarfile.TarInfo(name)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "link": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    if link is not None:
        ti.linkname = link
    if kind in ("chr", "blk"):
        ti.devmajor, ti.devminor = dev
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if kind == "file":
        ti.size = len(data)
    return ti, (data if kind == "file" else None)


def make_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tree(root):
    """Everything a root shows, comparable: type, mode, owner, size, content,
    link target, device, user xattrs, hard link groups."""
    root = Path(root)
    out, inodes = {}, {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            item = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                    "mtime": int(st.st_mtime)}
            if stat.S_ISREG(st.st_mode):
                item["sha"] = hashlib.sha256(p.read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    item["ino"] = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if not stat.S_ISLNK(st.st_mode):
                item["xattrs"] = {k: os.getxattr(p, k, follow_symlinks=False)
                                  for k in sorted(os.listxattr(p, follow_symlinks=False))
                                  if k.startswith("user.") or k == "security.capability"}
            out[rel] = item
    return out


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    assert s.leftovers() == [], "temporary directories or lock files left"


# ---- unpacking --------------------------------------------------------------

def sample_entries():
    return [
        entry("./", "dir", mode=0o755),
        entry("etc/", "dir", mode=0o755),
        entry("etc/hostname", data=b"box\n", mode=0o644, uid=1234, gid=5678),
        entry("etc/alias", "link", link="etc/hostname", uid=1234, gid=5678),
        entry("bin/", "dir"),
        entry("bin/tool", data=b"#!/bin/sh\necho hi\n" * 1000, mode=0o755),
        entry("bin/sh", "symlink", link="tool"),
        entry("/abs/strip", data=b"leading slash stripped"),
        entry("run/fifo", "fifo", mode=0o600),
        entry("data/user", data=b"x", xattrs={"user.note": "kept"}),
    ]


@pytest.mark.parametrize("how", [None, "gzip", "zstd"])
def test_unpack_by_magic(store, how):
    """The same tar as plain, gzip and zstd: the blob's bytes say which, not
    its media type (each is stored under the plain tar type here)."""
    tar = make_tar(sample_entries())
    digest, diff, _ = store.layer(tar, how)
    tool("unpack-layer", store.root, digest, diff)
    d = store.layer_dir(diff)
    assert tool("path", store.root, diff).stdout.strip() == str(d)
    assert (d / "etc/hostname").read_bytes() == b"box\n"
    st = os.lstat(d / "etc/hostname")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o644)
    assert int(st.st_mtime) == 1_600_000_000
    assert os.lstat(d / "etc/alias").st_ino == st.st_ino
    assert os.readlink(d / "bin/sh") == "tool"
    assert os.lstat(d / "bin/tool").st_mode & 0o777 == 0o755
    assert (d / "abs/strip").read_bytes() == b"leading slash stripped"
    assert stat.S_ISFIFO(os.lstat(d / "run/fifo").st_mode)
    assert os.getxattr(d / "data/user", "user.note") == b"kept"
    # directories keep their times although entries were created in them
    assert int(os.lstat(d / "etc").st_mtime) == 1_600_000_000
    # once: a second unpack finds it done
    tool("unpack-layer", store.root, digest, diff)


def test_unpack_concurrent(store):
    """Two unpackers of one layer: the second waits for the lock, then finds
    the layer there; one directory, no leftovers."""
    tar = make_tar([entry(f"f{i}", data=os.urandom(4096)) for i in range(400)])
    digest, diff, _ = store.layer(tar, "zstd")
    procs = [subprocess.Popen([str(TOOL), "unpack-layer", str(store.root), digest, diff])
             for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert len(list(store.layer_dir(diff).iterdir())) == 400


def test_devices_setid_and_xattrs(store):
    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw+ep
    tar = make_tar([
        entry("dev/null", "chr", mode=0o666, dev=(1, 3)),
        entry("dev/loop9", "blk", mode=0o660, gid=6, dev=(7, 9)),
        entry("dev/pipe", "fifo", mode=0o620),
        entry("usr/bin/su", data=b"su", mode=0o4755),
        entry("usr/bin/wall", data=b"wall", mode=0o2755, gid=5),
        entry("usr/bin/ping", data=b"ping", mode=0o755,
              xattrs={"security.capability": cap.decode("latin-1")}),
        entry("shared", "dir", mode=0o2775, gid=100),
        # made in a set-gid directory (its group, 100) under the umask (022):
        # the tar's group and every permission bit still win
        entry("shared/open", data=b"o", mode=0o666),
        entry("tmp", "dir", mode=0o1777),
        entry("x", data=b"x", xattrs={"user.a": "1", "trusted.evil": "1",
                                      "security.selinux": "system_u:object_r:etc_t:s0"}),
    ])
    digest, diff, _ = store.layer(tar, "gzip")
    tool("unpack-layer", store.root, digest, diff)
    d = store.layer_dir(diff)
    st = os.lstat(d / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert st.st_mode & 0o7777 == 0o666
    st = os.lstat(d / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 9)
    assert (st.st_gid, st.st_mode & 0o7777) == (6, 0o660)
    assert stat.S_ISFIFO(os.lstat(d / "dev/pipe").st_mode)
    assert os.lstat(d / "usr/bin/su").st_mode & 0o7777 == 0o4755
    assert os.lstat(d / "usr/bin/wall").st_mode & 0o7777 == 0o2755
    assert os.lstat(d / "shared").st_mode & 0o7777 == 0o2775
    st = os.lstat(d / "shared/open")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o666)
    assert os.lstat(d / "tmp").st_mode & 0o7777 == 0o1777
    assert os.getxattr(d / "usr/bin/ping", "security.capability") == cap
    names = os.listxattr(d / "x")
    assert "user.a" in names
    assert "trusted.evil" not in names
    # security.selinux may be the host's own label; never the tar's
    if "security.selinux" in names:
        assert b"etc_t" not in os.getxattr(d / "x", "security.selinux")


def test_later_entries_replace_earlier(store, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    tar = make_tar([
        entry("a", data=b"file first"),
        entry("a", "dir"),
        entry("a/inside", data=b"in a"),
        entry("b", "dir"),
        entry("b/child", data=b"gone with b"),
        entry("b", data=b"b is a file now"),
        entry("s", "symlink", link=str(victim)),
        entry("s", "dir"),  # replaces the symlink; never goes through it
        entry("s/x", data=b"in the layer"),
        entry("f", data=b"old"),
        entry("f", data=b"new"),
        entry("t", "symlink", link=str(victim / "file")),
        entry("t", data=b"replaces the symlink, not its target"),
        entry("h", "symlink", link=str(victim / "file")),
        entry("h2", "link", link="h"),  # a link to the symlink itself
    ])
    (victim / "file").write_bytes(b"victim")
    digest, diff, _ = store.layer(tar)
    tool("unpack-layer", store.root, digest, diff)
    d = store.layer_dir(diff)
    assert (d / "a/inside").read_bytes() == b"in a"
    assert (d / "b").read_bytes() == b"b is a file now"
    assert not os.path.islink(d / "s") and (d / "s/x").read_bytes() == b"in the layer"
    assert (d / "f").read_bytes() == b"new"
    assert (d / "t").read_bytes() == b"replaces the symlink, not its target"
    assert os.readlink(d / "h2") == str(victim / "file")
    assert os.lstat(d / "h2").st_ino == os.lstat(d / "h").st_ino
    assert os.listdir(victim) == ["file"] and (victim / "file").read_bytes() == b"victim"


ESCAPES = {
    "dotdot": lambda v: [entry("../x", data=b"out")],
    "inner_dotdot": lambda v: [entry("a/", "dir"), entry("a/../../x", data=b"out")],
    "symlink_parent": lambda v: [entry("evil", "symlink", link=str(v)),
                                 entry("evil/passwd", data=b"root::0:0::/:/bin/sh\n")],
    "symlink_dotdot_chain": lambda v: [entry("d/", "dir"), entry("d/up", "symlink", link=".."),
                                       entry("d/up2", "symlink", link="up/.."),
                                       entry("d/up2/up2/x", data=b"out")],
    "symlink_relative_out": lambda v: [entry("l", "symlink", link="../../../../" + str(v)),
                                       entry("l/x", data=b"out")],
    "hardlink_abs": lambda v: [entry("shadow", "link", link="/etc/shadow")],
    "hardlink_dotdot": lambda v: [entry("x", "link", link="../x")],
    "hardlink_through_symlink": lambda v: [entry("e", "symlink", link="/etc"),
                                           entry("shadow", "link", link="e/shadow")],
    "opaque_at_root": lambda v: [entry("f", data=b"f"), entry(".wh..wh..opq")],
    "overlay_xattr": lambda v: [entry("d", "dir", xattrs={"trusted.overlay.opaque": "y"})],
    "overlay_xattr_file": lambda v: [entry("f", data=b"f",
                                           xattrs={"trusted.overlay.redirect": "/etc"})],
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escape_refused(store, tmp_path, case):
    """Every way out is refused with EPERM naming the entry; nothing of the
    layer is kept, nothing is written outside."""
    victim = tmp_path / "victim"
    victim.mkdir()
    before = {p.name for p in tmp_path.iterdir()}
    entries = [entry("ok", data=b"fine")] + ESCAPES[case](victim)
    digest, diff, _ = store.layer(make_tar(entries), "gzip")
    p = tool("unpack-layer", store.root, digest, diff, ok=False)
    assert p.returncode == EPERM_EXIT, p.stderr
    assert "entry" in p.stderr and "imagetool: unpack: layer sha256:" in p.stderr, p.stderr
    assert not store.layer_dir(diff).exists()
    assert list(victim.iterdir()) == []
    assert {p.name for p in tmp_path.iterdir()} == before
    assert not (store.root / "x").exists() and not (store.root / "hull" / "x").exists()
    p = tool("path", store.root, diff, ok=False)
    assert p.returncode != 0 and "not unpacked" in p.stderr


def test_diff_id_mismatch(store):
    tar = make_tar([entry("f", data=b"content")])
    digest, _, _ = store.layer(tar, "zstd")
    wrong = sha(b"something else")
    p = tool("unpack-layer", store.root, digest, wrong, ok=False)
    assert p.returncode == 1 and "diff-id" in p.stderr, p.stderr
    assert not store.layer_dir(wrong).exists()
    assert [x for x in store.layers.iterdir()] == []


def test_stopped_unpack_keeps_nothing(store):
    """A pull that fails stops its unpacks still running (unpack_queue.c):
    such an unpack ends with ECANCELED, and neither the layer nor its
    temporary directory nor its lock is left."""
    tar = make_tar([entry("d", "dir"), entry("d/f", data=os.urandom(300000))])
    digest, diff, _ = store.layer(tar, "gzip")
    p = tool("unpack-stopped", store.root, digest, diff, ok=False)
    assert p.returncode == 4 and "unpacking stopped" in p.stderr, (p.returncode, p.stderr)
    assert [x for x in store.layers.iterdir()] == []
    tool("unpack-layer", store.root, digest, diff)
    assert (store.layer_dir(diff) / "d" / "f").stat().st_size == 300000


def test_trailing_bytes_count_in_diff_id(store):
    """The diff-id is of the whole uncompressed stream, past the tar's end
    marker (tar pads to a record; some writers add more)."""
    tar = make_tar([entry("f", data=b"x")]) + b"\0" * 10240
    digest, diff, _ = store.layer(tar, "gzip")
    tool("unpack-layer", store.root, digest, diff)
    assert (store.layer_dir(diff) / "f").read_bytes() == b"x"


def test_corrupt_stream_refused(store):
    tar = make_tar([entry("f", data=os.urandom(100000))])
    blob = bytearray(gzip.compress(tar, mtime=0))
    blob[len(blob) // 2:] = b"\x00" * (len(blob) - len(blob) // 2)
    digest = store.blob(bytes(blob))
    p = tool("unpack-layer", store.root, digest, sha(tar), ok=False)
    assert p.returncode == 1, p.stderr
    assert not store.layer_dir(sha(tar)).exists()


def test_disk_full_leaves_nothing(tmp_path):
    """Out of space half way: an error, and no partial layer on the full disk."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        store = Store(mnt / "store")
        tar = make_tar([entry(f"f{i}", data=os.urandom(1 << 20)) for i in range(3)])
        digest, diff, _ = store.layer(tar, "zstd")  # ~3M blob + 3M unpacked > 4M
        p = tool("unpack-layer", store.root, digest, diff, ok=False)
        # Either the filesystem filled up, or the reserve kept free stopped it first.
        assert p.returncode == 1 and ("No space left" in p.stderr or "kept free" in p.stderr), \
            p.stderr
        assert store.leftovers() == [] and not store.layer_dir(diff).exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


class _Zeros:
    """A file object of n zero bytes, never all in memory."""

    def __init__(self, n):
        self.left = n

    def read(self, size=-1):
        k = self.left if size < 0 else min(size, self.left)
        self.left -= k
        return bytes(k)


class _HashingGzip:
    """Write end of a stream tar: gzips to path and hashes the plain bytes (the diff-id)."""

    def __init__(self, path):
        self.gz = gzip.GzipFile(path, "wb", compresslevel=1, mtime=0)
        self.h = hashlib.sha256()

    def write(self, b):
        self.h.update(b)
        return self.gz.write(b)


def zero_bomb_layer(store, tmp_path, files):
    """A gzip layer of files (name -> bytes, or int: that many zeros) streamed
    to disk; stored in store: (digest, diff_id)."""
    path = tmp_path / "bomb.tar.gz"
    w = _HashingGzip(path)
    with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = 0o644, 1_600_000_000
            ti.size = data if isinstance(data, int) else len(data)
            t.addfile(ti, _Zeros(data) if isinstance(data, int) else io.BytesIO(data))
    w.gz.close()
    blob = path.read_bytes()
    path.unlink()
    return store.blob(blob), "sha256:" + w.h.hexdigest()


def test_zeros_cost_no_disk(store, tmp_path):
    """200 MiB of zeros (200 KiB of gzip) unpack as a hole, not as 200 MiB of
    blocks; files mixing data and zeros at odd offsets come out byte for
    byte, with their size, ending in zeros or not."""
    rnd = os.urandom(5000)
    mixed = b"head" + bytes(100_000) + b"mid" + bytes(3 * 4096 + 5) + rnd + bytes(10_000)
    files = {"zeros": 200 << 20, "mixed": mixed, "tail": rnd[:4097] + bytes(1), "small": 10,
             "empty": b""}
    digest, diff = zero_bomb_layer(store, tmp_path, files)
    assert (store.root / "blobs/sha256" / digest[7:]).stat().st_size < 1 << 20
    tool("unpack-layer", store.root, digest, diff)
    d = store.layer_dir(diff)
    st = os.stat(d / "zeros")
    assert st.st_size == 200 << 20
    assert st.st_blocks * 512 < 1 << 20, f"200 MiB of zeros took {st.st_blocks * 512} bytes of disk"
    h = hashlib.sha256()
    with open(d / "zeros", "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.digest() == hashlib.sha256(bytes(200 << 20)).digest()
    assert (d / "mixed").read_bytes() == mixed
    assert (d / "tail").read_bytes() == rnd[:4097] + bytes(1)
    assert (d / "small").read_bytes() == bytes(10)
    assert (d / "empty").read_bytes() == b""


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small64"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("keep", [None, "40M"])
def test_unpack_stops_at_the_free_space_reserve(small_tmpfs, tmp_path, keep):
    """A 100 MiB file of ones (100 KiB of gzip) into a 64 MiB filesystem: the
    unpack stops while the reserve (5% of the filesystem by default, or
    HULL_IMAGE_MIN_FREE) is still free, not at ENOSPC, and leaves nothing."""
    store = Store(small_tmpfs / "store")
    digest, diff = zero_bomb_layer(store, tmp_path, {"ones": b"\x01" * (100 << 20)})
    env = {} if keep is None else {"HULL_IMAGE_MIN_FREE": keep}
    p = subprocess.run([str(TOOL), "unpack-layer", str(store.root), digest, diff],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **env))
    assert p.returncode == 1, p.stderr
    want = "3.2" if keep is None else "40.0"
    assert f"under the {want} MiB kept free (HULL_IMAGE_MIN_FREE)" in p.stderr, p.stderr
    assert "No space left on device" not in p.stderr, p.stderr
    assert store.leftovers() == [] and not store.layer_dir(diff).exists()
    used = os.statvfs(small_tmpfs)
    assert (used.f_blocks - used.f_bavail) * used.f_frsize < 1 << 20


def test_unpack_stops_at_the_inode_reserve(tmp_path):
    """30000 empty files (a few hundred KiB of gzip) into a filesystem of
    20000 inodes: the unpack stops while 5% of them are still free, not at
    ENOSPC with none left for anybody, and leaves nothing."""
    mnt = tmp_path / "few-inodes"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,nr_inodes=20000", "tmpfs", str(mnt)],
                   check=True)
    try:
        store = Store(mnt / "store")
        digest, diff = zero_bomb_layer(store, tmp_path, {f"f{i}": b"" for i in range(30000)})
        p = subprocess.run([str(TOOL), "unpack-layer", str(store.root), digest, diff],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 1, p.stderr
        assert "no inodes left" in p.stderr and "under the 1000 kept free" in p.stderr, p.stderr
        assert "No space left on device" not in p.stderr, p.stderr
        assert store.leftovers() == [] and not store.layer_dir(diff).exists()
        assert os.statvfs(mnt).f_favail > 19000
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ---- roots ------------------------------------------------------------------

def two_layers(store):
    base = make_tar([
        entry("a/", "dir"), entry("a/x", data=b"ax"), entry("a/y", data=b"ay"),
        entry("b/", "dir"), entry("b/z", data=b"bz"), entry("b/keep", data=b"bk"),
        entry("keep", data=b"k"), entry("gone", data=b"g"),
        entry("hl1", data=b"linked", uid=7), entry("hl2", "link", link="hl1"),
        entry("dev/", "dir"), entry("dev/null", "chr", mode=0o666, dev=(1, 3)),
    ])
    top = make_tar([
        entry("a/", "dir", mode=0o750), entry("a/.wh..wh..opq"), entry("a/new", data=b"an"),
        entry("b/.wh.z"), entry(".wh.gone"), entry("added", data=b"top"),
        entry(".wh..wh.plnk"),  # hull-internal: skipped
    ])
    layers = [store.layer(base, "gzip"), store.layer(top, "zstd")]
    return store.image("localhost/layers:two", layers), layers


EXPECTED_NAMES = {"a", "a/new", "b", "b/keep", "keep", "added", "hl1", "hl2", "dev", "dev/null"}


def test_whiteouts_in_overlay_form(store):
    ref, layers = two_layers(store)
    tool("unpack", store.root, ref)
    top = store.layer_dir(layers[1][1])
    st = os.lstat(top / "b/z")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_ISCHR(os.lstat(top / "gone").st_mode)
    assert os.getxattr(top / "a", "trusted.overlay.opaque") == b"y"
    assert not (top / "a/.wh..wh..opq").exists() and not (top / "b/.wh.z").exists()
    assert sorted(os.listdir(top)) == ["a", "added", "b", "gone"]


# How the root is mounted: the per-layer fsconfig (Linux 6.8+), one option
# string (older kernels), or a read-only tmpfs copy (overlay refused).
MODES = ["auto", "legacy", "copy"]


@pytest.mark.parametrize("mode", MODES)
def test_overlay_view_equals_flattened(store, tmp_path, mode):
    ref, layers = two_layers(store)
    tool("unpack", store.root, ref)
    target, flat = tmp_path / "root", tmp_path / "flat"
    target.mkdir()
    p = tool("mount", store.root, ref, target, overlay=mode)
    try:
        assert p.stderr == ""  # no fallback warning: the chosen way worked
        assert mounted(target)
        view = tree(target)
        assert set(view) == EXPECTED_NAMES
        assert (target / "a/new").read_bytes() == b"an"
        assert os.lstat(target / "a").st_mode & 0o777 == 0o750
        with pytest.raises(OSError):
            (target / "w").write_text("read-only")
    finally:
        tool("umount", target)
    assert not mounted(target) and os.listdir(target) == []
    tool("flatten", store.root, ref, flat)
    got = tree(flat)
    for t in (view, got):  # the root dir itself differs (mount point vs copy)
        t.pop("", None)
    assert got == view
    assert got["hl2"]["ino"] == "hl1"  # hard links stay links in the copy
    assert "trusted.overlay.opaque" not in os.listxattr(flat / "a")


@pytest.mark.parametrize("mode", MODES)
def test_overlay_with_upper(store, tmp_path, mode):
    ref, _ = two_layers(store)
    tool("unpack", store.root, ref)
    target, upper, work = tmp_path / "root", tmp_path / "up", tmp_path / "work"
    target.mkdir()
    tool("mount", store.root, ref, target, upper, work, overlay=mode)
    try:
        assert (target / "a/new").read_bytes() == b"an" and not (target / "a/x").exists()
        (target / "written").write_text("cow")
        os.unlink(target / "keep")
        if mode != "copy":
            # no redirects in an upper (it may become a layer): renaming a
            # lower directory is EXDEV, and tools copy instead
            with pytest.raises(OSError) as e:
                os.rename(target / "b", target / "b2")
            assert e.value.errno == errno.EXDEV
    finally:
        tool("umount", target)
    assert (upper / "written").read_text() == "cow"
    # mounted again (a restart): the changes are still there
    tool("mount", store.root, ref, target, upper, work, overlay=mode)
    try:
        assert (target / "written").read_text() == "cow" and not (target / "keep").exists()
    finally:
        tool("umount", target)
    if mode == "copy":  # the upper directory is the whole copy
        assert not os.path.lexists(upper / "keep") and (upper / "added").exists()
    else:  # an overlay upper: only the changes, the deletion as a whiteout
        st = os.lstat(upper / "keep")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert not (upper / "added").exists()
    # the layers are untouched
    assert (store.layer_dir(_[0][1]) / "keep").read_bytes() == b"k"


def test_one_layer_is_a_read_only_bind(store, tmp_path):
    layer = store.layer(make_tar([entry("only", data=b"1")]), "zstd")
    ref = store.image("localhost/layers:one", [layer])
    tool("unpack", store.root, ref)
    target = tmp_path / "root"
    target.mkdir()
    tool("mount", store.root, ref, target)
    try:
        assert (target / "only").read_bytes() == b"1"
        with open("/proc/self/mountinfo") as f:
            line = next(l for l in f if l.split()[4] == str(target))
        assert line.split()[5].startswith("ro"), line
    finally:
        tool("umount", target)


def test_one_layer_with_upper(store, tmp_path):
    layer = store.layer(make_tar([entry("only", data=b"1")]), "gzip")
    ref = store.image("localhost/layers:oneup", [layer])
    tool("unpack", store.root, ref)
    target, upper, work = tmp_path / "root", tmp_path / "up", tmp_path / "work"
    target.mkdir()
    tool("mount", store.root, ref, target, upper, work)
    try:
        (target / "only").write_bytes(b"2")
    finally:
        tool("umount", target)
    assert (upper / "only").read_bytes() == b"2"
    assert (store.layer_dir(layer[1]) / "only").read_bytes() == b"1"


@pytest.mark.parametrize("mode", MODES)
def test_many_layers_beyond_a_page(store, tmp_path, mode):
    """Sixty layers: their absolute paths are more than a page of mount
    data; the mount still shows every layer, top first."""
    layers = [store.layer(make_tar([entry(f"l{i:02d}", data=b"%d" % i),
                                    entry("top", data=b"%d" % i)]), "gzip")
              for i in range(60)]
    ref = store.image("localhost/layers:many", layers)
    tool("unpack", store.root, ref)
    target = tmp_path / "root"
    target.mkdir()
    p = tool("mount", store.root, ref, target, overlay=mode)
    try:
        assert p.stderr == ""
        assert len(os.listdir(target)) == 61
        assert (target / "top").read_bytes() == b"59"
    finally:
        tool("umount", target)


def test_mount_needs_unpacked_layers(store, tmp_path):
    ref, _ = two_layers(store)
    target = tmp_path / "root"
    target.mkdir()
    p = tool("mount", store.root, ref, target, ok=False)
    assert p.returncode == 1 and "not unpacked" in p.stderr, p.stderr
    assert not mounted(target)


# ---- writing layers -----------------------------------------------------------

def sample_dir(d):
    d.mkdir()
    (d / "etc").mkdir()
    (d / "etc/conf").write_text("c")
    os.chown(d / "etc/conf", 1000, 1001)
    (d / "bin").mkdir()
    (d / "bin/tool").write_bytes(b"T" * 100000)
    os.chmod(d / "bin/tool", 0o4755)
    os.link(d / "bin/tool", d / "bin/tool2")
    os.symlink("tool", d / "bin/sym")
    os.mkfifo(d / "fifo")
    os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(d / "etc/conf", "user.k", b"v")
    (d / "empty").mkdir(mode=0o1777)
    os.chmod(d / "empty", 0o1777)


@pytest.mark.parametrize("how", ["zstd", "gzip", "none"])
def test_write_layer_roundtrip(store, tmp_path, how):
    src = tmp_path / "src"
    sample_dir(src)
    out = tool("write-layer", "--compression", how, store.root, src).stdout.split()
    digest, diff, media, size = out
    assert media == MEDIA[None if how == "none" else how]
    blob = store.root / "blobs/sha256" / digest[7:]
    assert blob.stat().st_size == int(size) and sha(blob.read_bytes()) == digest
    layer = store.layer_dir(diff)
    assert tree(layer) == tree(src)
    # deterministic: the same tree, the same blob
    again = tool("write-layer", "--compression", how, store.root, src).stdout.split()
    assert again[:2] == [digest, diff]
    if how == "gzip":  # no time in the gzip header either
        assert blob.read_bytes()[4:8] == b"\0\0\0\0"
    # a standard tar, readable by GNU tar
    raw = subprocess.run(["tar", "-tvf", str(blob)], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    for name in ("etc/conf", "bin/tool2 link to bin/tool", "bin/sym -> tool", "null"):
        assert name in raw, raw


def test_write_layer_of_upper_dir(store, tmp_path):
    """An overlay upper dir: its whiteouts and opaque directories become
    .wh. entries that GNU tar lists, and unpack back to overlay form."""
    up = tmp_path / "upper"
    up.mkdir()
    os.mknod(up / "gone", 0o000 | stat.S_IFCHR, 0)
    (up / "o").mkdir()
    os.setxattr(up / "o", "trusted.overlay.opaque", b"y")
    (up / "o/fresh").write_text("f")
    (up / "kept").write_text("k")
    digest, diff, _, _ = tool("write-layer", "--upper", store.root, up).stdout.split()
    blob = store.root / "blobs/sha256" / digest[7:]
    tar = subprocess.run(["zstd", "-dc", str(blob)], stdout=subprocess.PIPE, check=True).stdout
    assert sha(tar) == diff
    names = subprocess.run(["tar", "-t"], input=tar, stdout=subprocess.PIPE,
                           check=True).stdout.decode().split()
    assert ".wh.gone" in names and "o/.wh..wh..opq" in names, names
    assert "gone" not in names
    layer = store.layer_dir(diff)
    st = os.lstat(layer / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(layer / "o", "trusted.overlay.opaque") == b"y"
    assert (layer / "o/fresh").read_text() == "f"
    # without --upper the device is a device (a tree, not a diff)
    digest2, diff2, _, _ = tool("write-layer", store.root, up).stdout.split()
    assert diff2 != diff


def test_write_layer_refuses_missing_dir(store, tmp_path):
    p = tool("write-layer", store.root, tmp_path / "nope", ok=False)
    assert p.returncode == 1 and "nope" in p.stderr


def test_bad_overlay_mode_refused(store, tmp_path):
    ref, _ = two_layers(store)
    tool("unpack", store.root, ref)
    target = tmp_path / "root"
    target.mkdir()
    p = tool("mount", store.root, ref, target, ok=False, overlay="sometimes")
    assert p.returncode == 1 and "HULL_IMAGE_OVERLAY" in p.stderr
    assert not mounted(target)


@pytest.mark.parametrize("how", [None, "gzip"])
def test_empty_layer(store, how):
    """Layers with no entries exist (images made by old builders)."""
    digest, diff, _ = store.layer(make_tar([]), how)
    tool("unpack-layer", store.root, digest, diff)
    assert os.listdir(store.layer_dir(diff)) == []


def test_names_are_bytes(store, tmp_path):
    """UTF-8 names (pax path records) and names that are not UTF-8 (raw
    ustar bytes) land as the same bytes; layer_write keeps them too."""
    raw = "caf\udce9".encode("utf-8", "surrogateescape")  # b"caf\xe9": latin-1, not UTF-8
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as t:
        ti = tarfile.TarInfo("caf\udce9")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"1"))
    tars = [make_tar([entry("naïve/日本", data=b"u"), entry("naïve/l", "symlink", link="日本")]),
            buf.getvalue()]
    for tar in tars:
        digest, diff, _ = store.layer(tar, "zstd")
        tool("unpack-layer", store.root, digest, diff)
    a, b = store.layer_dir(sha(tars[0])), store.layer_dir(sha(tars[1]))
    assert (a / "naïve/日本").read_bytes() == b"u"
    assert os.readlink(a / "naïve/l") == "日本"
    assert os.listdir(bytes(b)) == [raw]
    src = tmp_path / "src"
    src.mkdir()
    (src / "ünï").write_text("u")
    with open(os.path.join(bytes(src), raw), "w") as f:
        f.write("r")
    diff = tool("write-layer", store.root, src).stdout.split()[1]
    assert sorted(os.listdir(bytes(store.layer_dir(diff)))) == sorted(os.listdir(bytes(src)))


def test_whiteout_then_new_directory(store, tmp_path):
    """".wh.d" then "d/x" in one layer: the lower d is replaced, so the new d
    is opaque and shows nothing of the lower one."""
    base = store.layer(make_tar([entry("d/", "dir"), entry("d/old", data=b"o")]), "gzip")
    top = store.layer(make_tar([entry(".wh.d"), entry("d/", "dir"), entry("d/new", data=b"n")]))
    ref = store.image("localhost/layers:redo", [base, top])
    tool("unpack", store.root, ref)
    assert os.getxattr(store.layer_dir(top[1]) / "d", "trusted.overlay.opaque") == b"y"
    target = tmp_path / "root"
    target.mkdir()
    tool("mount", store.root, ref, target)
    try:
        assert os.listdir(target / "d") == ["new"]
    finally:
        tool("umount", target)


# ---- overlay, flatten and a model agree on random layer stacks --------------

def random_layers(seed, n_layers=4):
    """Layers of random changes over a small name space (so that they
    collide): files, directories, symlinks, whiteouts, opaque directories,
    a file replacing a directory and the reverse. Returns the tar entry
    lists and the tree the spec says results: path -> ("f", data) | ("d",)
    | ("l", target)."""
    import random
    rnd = random.Random(seed)
    names = ["a", "b", "c"]
    state = {}
    layers = []

    def under(p):
        return [q for q in state if q.startswith(p + "/")]

    def rand_path():
        depth = rnd.randint(1, 3)
        return "/".join(rnd.choice(names) for _ in range(depth))

    for _ in range(n_layers):
        adds, wh, opq = {}, set(), set()
        for _ in range(rnd.randint(3, 9)):
            op = rnd.random()
            existing = sorted(state)
            if op < 0.2 and existing:
                wh.add(rnd.choice(existing))
            elif op < 0.3:
                dirs = [p for p in existing if state[p][0] == "d"]
                if dirs:
                    opq.add(rnd.choice(dirs))
            else:
                p = rand_path()
                kind = rnd.choice("ffdl")
                adds[p] = (("f", os.urandom(8).hex().encode()) if kind == "f" else
                           ("d",) if kind == "d" else ("l", rnd.choice(names)))
        # A layer is a tree: parents of what it adds are its directories.
        for p in sorted(adds):
            parts = p.split("/")
            for i in range(1, len(parts)):
                adds["/".join(parts[:i])] = ("d",)
        adds = {p: v for p, v in adds.items()
                if all(adds.get("/".join(p.split("/")[:i]), ("d",))[0] == "d"
                       for i in range(1, len(p.split("/"))))}
        wh = {p for p in wh if p not in adds and not any(q.startswith(p + "/") for q in adds)
              and all(adds.get("/".join(p.split("/")[:i]), ("d",))[0] == "d"
                      for i in range(1, len(p.split("/"))))}
        opq = {p for p in opq if p not in wh and not any(p.startswith(w + "/") for w in wh)}
        wh = {p for p in wh if not any(p.startswith(w + "/") for w in wh)}
        for p in wh:  # a whiteout's directory is in the layer (tars list it)
            parts = p.split("/")
            for i in range(1, len(parts)):
                adds["/".join(parts[:i])] = ("d",)
        opq = {p for p in opq if all(adds.get("/".join(p.split("/")[:i]), ("d",))[0] == "d"
                                     for i in range(1, len(p.split("/")) + 1))}
        for p in opq:
            parts = p.split("/")
            for i in range(1, len(parts) + 1):
                adds["/".join(parts[:i])] = ("d",)
        # what the spec says: whiteouts and opaque directories hide lower
        # things, then the layer's entries replace or merge
        for p in wh:
            for q in [p] + under(p):
                state.pop(q, None)
        for p in opq:
            for q in under(p):
                state.pop(q, None)
        for p in sorted(adds):
            v = adds[p]
            old = state.get(p)
            if old and not (old[0] == "d" and v[0] == "d"):
                for q in under(p):
                    state.pop(q)
            if not old or not (old[0] == "d" and v[0] == "d"):
                state[p] = v
            # a non-directory on the way in a lower layer is replaced
        entries = []
        for p in sorted(adds):
            v = adds[p]
            if v[0] == "f":
                entries.append(entry(p, data=v[1]))
            elif v[0] == "d":
                entries.append(entry(p + "/", "dir"))
                if p in opq:
                    entries.append(entry(p + "/.wh..wh..opq"))
            else:
                entries.append(entry(p, "symlink", link=v[1]))
        for p in sorted(wh):
            d, _, b = p.rpartition("/")
            entries.append(entry((d + "/" if d else "") + ".wh." + b))
        layers.append(entries)
    return layers, state


def view(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d",)
            else:
                out[rel] = ("f", Path(p).read_bytes())
    return out


@pytest.mark.parametrize("seed", range(8))
def test_random_stacks_agree(store, tmp_path, seed):
    layers, expected = random_layers(seed)
    descs = [store.layer(make_tar(entries), "gzip") for entries in layers]
    ref = store.image(f"localhost/layers:random{seed}", descs)
    tool("unpack", store.root, ref)
    target, flat = tmp_path / "root", tmp_path / "flat"
    target.mkdir()
    tool("mount", store.root, ref, target)
    try:
        mounted_view = view(target)
    finally:
        tool("umount", target)
    tool("flatten", store.root, ref, flat)
    assert mounted_view == expected
    assert view(flat) == expected


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_gnu_tar_archive_of_a_host_tree(store, tmp_path, fmt):
    """What GNU tar writes (long names as ././@LongLink or pax records,
    hard links, symlinks, sparse files) unpacks to the tree it came from."""
    src = tmp_path / "src"
    host = next(d for d in ("/usr/share/zoneinfo", "/usr/include/linux") if os.path.isdir(d))
    subprocess.run(["cp", "-a", host, str(src)], check=True)
    deep = src / ("long-name-" * 12) / ("deeper-" * 20)
    deep.mkdir(parents=True)
    (deep / ("file-" * 40)).write_text("long")
    os.link(deep / ("file-" * 40), src / "hardlink")
    with open(src / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
        f.truncate(4 << 20)
    blob = subprocess.run(["tar", f"--format={fmt}", "--sparse", "--numeric-owner", "-C",
                           str(src), "-cf", "-", "."], stdout=subprocess.PIPE,
                          check=True).stdout
    digest, diff, _ = store.layer(blob, "zstd")
    tool("unpack-layer", store.root, digest, diff)
    assert tree(store.layer_dir(diff)) == tree(src)
    # and hull's own writer of the same tree
    diff2 = tool("write-layer", store.root, src).stdout.split()[1]
    assert tree(store.layer_dir(diff2)) == tree(src)


def test_killed_unpack_is_redone(store):
    """An unpacker killed half way leaves a temporary directory and its lock
    file; the next one (under the same lock) removes them and unpacks."""
    import signal
    import time
    tar = make_tar([entry(f"d/f{i:03d}", data=bytes([i]) * (1 << 20)) for i in range(100)])
    digest, diff, _ = store.layer(tar, "zstd")
    p = subprocess.Popen([str(TOOL), "unpack-layer", str(store.root), digest, diff])
    caught = False
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if store.layers.exists() and any(".tmp-" in n for n in os.listdir(store.layers)):
            p.send_signal(signal.SIGKILL)
            caught = True
            break
        time.sleep(0.001)
    p.wait(timeout=60)
    assert caught and p.returncode == -signal.SIGKILL, "the unpacker finished before the kill"
    assert store.leftovers() != [] and not store.layer_dir(diff).exists()
    tool("unpack-layer", store.root, digest, diff)
    assert (store.layer_dir(diff) / "d/f099").read_bytes() == bytes([99]) * (1 << 20)


@pytest.mark.parametrize("seed", range(4))
def test_mangled_tars_fail_cleanly(store, tmp_path, seed):
    """Tars with bytes flipped in their headers: unpacked or refused, never
    a crash, never anything outside the layer, never anything left over."""
    import random
    rnd = random.Random(seed)
    victim = tmp_path / "victim"
    victim.mkdir()
    base = make_tar(sample_entries() + [entry("evil", "symlink", link=str(victim))])
    outcomes = set()
    for _ in range(25):
        tar = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            block = rnd.randrange(len(tar) // 512)
            tar[block * 512 + rnd.randrange(512)] = rnd.randrange(256)
        digest, diff, _ = store.layer(bytes(tar))
        p = tool("unpack-layer", store.root, digest, diff, ok=False)
        assert p.returncode in (0, 1, EPERM_EXIT), p.stderr
        outcomes.add(p.returncode)
        assert p.returncode == 0 or not store.layer_dir(diff).exists()
        assert list(victim.iterdir()) == []
        assert sorted(x.name for x in tmp_path.iterdir()) == ["store", "victim"]
        assert store.leftovers() == []
    assert outcomes != {0}, "no mangled tar was refused: the test tests nothing"


@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_multi_member_streams(store, how):
    """A compressed layer in several members/frames (pigz, eStargz, zstd
    --rsyncable writers): one uncompressed stream, one diff-id."""
    tar = make_tar([entry(f"f{i}", data=os.urandom(3000)) for i in range(20)])
    cut = [0, 7000, 20000, len(tar)]
    blob = b"".join(compress(tar[a:b], how) for a, b in zip(cut, cut[1:]))
    digest = store.blob(blob)
    tool("unpack-layer", store.root, digest, sha(tar))
    assert len(os.listdir(store.layer_dir(sha(tar)))) == 20


@pytest.mark.parametrize("how", ["xz", "bzip2"])
def test_other_compressions_refused(store, how):
    tar = make_tar([entry("f", data=b"x")])
    blob = subprocess.run([how, "-c"], input=tar, stdout=subprocess.PIPE, check=True).stdout
    p = tool("unpack-layer", store.root, store.blob(blob), sha(tar), ok=False)
    assert p.returncode == 1 and f"compressed with {how}" in p.stderr, p.stderr
    assert not store.layer_dir(sha(tar)).exists()
