"""Test images made offline, in Python (stdlib only; the `zstd` binary for zstd layers).

Layers are tar streams built in memory from entries (files with modes and
owners, directories, symlinks, hard links, devices, whiteouts); images are
written as OCI image layouts (what skopeo's oci:DIR:NAME and umoci read),
optionally with Docker schema 2 media types, as two-platform indexes, or as
docker-archive / oci-archive tarballs. Note: skopeo/umoci only find names
whose index.json descriptor has an OCI media type, so a docker=True image in a
layout is reachable by hull and http_push(), not by skopeo's oci:DIR:NAME.
Everything is deterministic (mtime 0,
sorted JSON keys) so the same call gives the same digests.

    layout = tmp_path / "oci"
    img = write_oci_layout(layout, "busybox:1", [busybox_layer()],
                           config={"Cmd": ["sh"]})
    img.digest  # "sha256:..." of the manifest
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
REF_NAME = "org.opencontainers.image.ref.name"

BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "id", "env", "pwd", "test", "[", "stat", "wc", "true",
                   "false", "sleep", "mkdir", "rm", "touch", "cp", "mv", "ln", "grep", "head", "tail",
                   "tr", "printf", "hostname", "uname", "readlink", "find", "chmod", "mount", "ps",
                   "kill", "du", "df", "sed", "awk", "sort", "md5sum", "sha256sum", "whoami", "xargs",
                   "dd", "seq", "basename", "dirname", "wget", "nc", "date", "cut", "tee", "expr")


# ---- entries -------------------------------------------------------------

@dataclass
class Entry:
    """One tar entry: kind is file|dir|symlink|hardlink|char|block|fifo."""
    kind: str = "file"
    data: bytes = b""
    mode: int = None
    uid: int = 0
    gid: int = 0
    target: str = ""          # symlink target / hard link name
    major: int = 0
    minor: int = 0
    mtime: int = 0
    xattrs: dict = field(default_factory=dict)  # written as SCHILY.xattr.* PAX headers


def File(data=b"", mode=0o644, uid=0, gid=0, **kw):
    """A regular file (data: bytes or str)."""
    if isinstance(data, str):
        data = data.encode()
    return Entry("file", data, mode, uid, gid, **kw)


def Dir(mode=0o755, uid=0, gid=0, **kw):
    """A directory."""
    return Entry("dir", b"", mode, uid, gid, **kw)


def Symlink(target, uid=0, gid=0):
    """A symbolic link to target."""
    return Entry("symlink", b"", 0o777, uid, gid, target=target)


def Hardlink(target):
    """A hard link to the earlier entry named target (a path in the tar)."""
    return Entry("hardlink", b"", 0o644, target=target)


def CharDev(major, minor, mode=0o666):
    """A character device."""
    return Entry("char", b"", mode, major=major, minor=minor)


def BlockDev(major, minor, mode=0o660):
    """A block device."""
    return Entry("block", b"", mode, major=major, minor=minor)


def Fifo(mode=0o644):
    """A named pipe."""
    return Entry("fifo", b"", mode)


def whiteout(path):
    """(tar name, Entry) deleting path from lower layers: DIR/.wh.NAME."""
    d, _, base = path.strip("/").rpartition("/")
    return ((d + "/" if d else "") + ".wh." + base, File(b"", 0o644))


def opaque(dirpath):
    """(tar name, Entry) hiding everything lower layers have in dirpath: DIR/.wh..wh..opq."""
    return (dirpath.strip("/") + "/.wh..wh..opq", File(b"", 0o644))


# ---- tar layers ----------------------------------------------------------

def _pairs(entries):
    """dict or list of (name, Entry|bytes|str) -> list of (name, Entry)."""
    items = entries.items() if isinstance(entries, dict) else entries
    out = []
    for name, e in items:
        if not isinstance(e, Entry):
            e = File(e)
        out.append((name, e))
    return out


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def make_layer(entries, parents=True, fmt=tarfile.PAX_FORMAT):
    """Uncompressed tar bytes of entries (dict/list name->Entry|bytes); parents adds missing dirs (0755) first."""
    pairs = _pairs(entries)
    if parents:
        have = {n.strip("/") for n, _ in pairs}
        full = []
        for name, e in pairs:
            parts = name.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p and p not in have and ".." not in parts[:i]:
                    have.add(p)
                    full.append((p, Dir()))
            full.append((name, e))
        pairs = full
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, e in pairs:
            ti = tarfile.TarInfo(name)
            ti.type = _TYPES[e.kind]
            ti.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
            ti.uid, ti.gid, ti.mtime = e.uid, e.gid, e.mtime
            ti.uname = ti.gname = ""
            ti.linkname = e.target
            ti.devmajor, ti.devminor = e.major, e.minor
            if e.xattrs:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e.xattrs.items()}
            if e.kind == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def compress(tar, compression="gzip"):
    """tar bytes compressed: 'gzip' (mtime 0), 'zstd' (the zstd binary) or None."""
    if compression in (None, "none"):
        return tar
    if compression == "gzip":
        return gzip.compress(tar, compresslevel=6, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=tar, stdout=subprocess.PIPE,
                              check=True).stdout
    raise ValueError(f"compression {compression!r}")


def sha256(data):
    """'sha256:<hex>' of bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    """A layer ready to store: blob (compressed) bytes, digest, diff_id, media type."""
    tar: bytes
    blob: bytes
    digest: str
    diff_id: str
    media_type: str

    @property
    def size(self):
        """Bytes of the blob (the descriptor's size)."""
        return len(self.blob)


def layer(entries_or_tar, compression="gzip", docker=False):
    """A Layer from entries or tar bytes, compressed; docker=True uses Docker media types (gzip/none only)."""
    if isinstance(entries_or_tar, Layer):
        return entries_or_tar
    tar = entries_or_tar if isinstance(entries_or_tar, (bytes, bytearray)) else make_layer(entries_or_tar)
    blob = compress(tar, compression)
    if docker:
        if compression == "zstd":
            raise ValueError("Docker schema 2 has no zstd layer type")
        mt = MT_DOCKER_LAYER if compression == "gzip" else MT_DOCKER_LAYER_TAR
    else:
        mt = {"gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD}.get(compression, MT_OCI_LAYER)
    return Layer(bytes(tar), blob, sha256(blob), sha256(tar), mt)


# ---- ready-made layers ---------------------------------------------------

def busybox_layer(applets=BUSYBOX_APPLETS, extra=None):
    """Entries of a minimal root: /bin/busybox (host's busybox-static), applet symlinks, /etc/passwd+group, /tmp, /proc..."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    e = {
        "bin": Dir(), "bin/busybox": File(bb, 0o755),
        "etc": Dir(),
        "etc/passwd": File("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
                           "app:x:1000:1000:app:/home/app:/bin/sh\n"),
        "etc/group": File("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"),
        "dev": Dir(), "proc": Dir(), "sys": Dir(), "root": Dir(0o700), "tmp": Dir(0o1777),
        "home": Dir(), "home/app": Dir(0o755, 1000, 1000),
        "usr": Dir(), "usr/bin": Dir(), "var": Dir(),
    }
    for a in applets:
        e["bin/" + a] = Symlink("busybox")
    if extra:
        e.update(extra)
    return e


EVIL_KINDS = ("dotdot", "dotdot_nested", "absolute", "symlink_abs", "symlink_rel", "hardlink_abs",
              "hardlink_rel", "whiteout_dotdot")


def evil_layer(kind, marker="hull-evil-marker"):
    """Entries (list of pairs) that try to write `marker` outside the layer dir; kind in EVIL_KINDS."""
    m = marker
    if kind == "dotdot":            # a plain ../ climb
        return [("ok", File("ok")), (f"../{m}", File("escaped"))]
    if kind == "dotdot_nested":     # a climb hidden in the middle
        return [("a", Dir()), (f"a/../../../{m}", File("escaped"))]
    if kind == "absolute":          # an absolute path (must land inside, or be refused; never on /tmp)
        return [(f"/tmp/{m}", File("escaped"))]
    if kind == "symlink_abs":       # symlink to an absolute dir, then a file written through it
        return [("lnk", Symlink("/tmp")), (f"lnk/{m}", File("escaped"))]
    if kind == "symlink_rel":       # symlink climbing out, then a file written through it
        return [("d", Dir()), ("d/lnk", Symlink("../../../../../../../../tmp")), (f"d/lnk/{m}", File("escaped"))]
    if kind == "hardlink_abs":      # hard link to a host file by absolute name
        return [(m, Hardlink("/etc/passwd"))]
    if kind == "hardlink_rel":      # hard link to a host file by ../ name
        return [(m, Hardlink("../../../../../../../../etc/passwd"))]
    if kind == "whiteout_dotdot":   # a whiteout naming something outside
        return [("a", Dir()), (f"a/../../.wh.{m}", File(b""))]
    raise ValueError(f"evil kind {kind!r}")


# ---- configs, manifests, layouts -----------------------------------------

def _json(obj):
    """Canonical JSON bytes (sorted keys, no spaces): the same document, the same digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def make_config(layers, config=None, os_="linux", arch="amd64", variant=None, history=True):
    """Image config JSON bytes: config (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Labels...) + rootfs.diff_ids."""
    c = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    c.update(config or {})
    if isinstance(c.get("ExposedPorts"), (list, tuple)):
        c["ExposedPorts"] = {p: {} for p in c["ExposedPorts"]}
    doc = {"created": "2026-01-01T00:00:00Z", "architecture": arch, "os": os_, "config": c,
           "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]}}
    if variant:
        doc["variant"] = variant
    if history:
        doc["history"] = [{"created": "2026-01-01T00:00:00Z", "created_by": f"imagelib layer {i}"}
                          for i in range(len(layers))]
    return _json(doc)


@dataclass
class Image:
    """What write_* produced: manifest (or index) digest/bytes/media type, config, layers."""
    digest: str
    manifest: bytes
    media_type: str
    config: bytes = b""
    config_digest: str = ""
    layers: list = field(default_factory=list)
    children: dict = field(default_factory=dict)  # platform -> Image, for an index

    @property
    def size(self):
        """Bytes of the manifest or index (the descriptor's size)."""
        return len(self.manifest)


def _put_blob(layout, data):
    """Store bytes as blobs/sha256/<hex> of layout; returns the digest."""
    d = sha256(data)
    p = Path(layout) / "blobs" / "sha256" / d[7:]
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        p.write_bytes(data)
    return d


def init_layout(layout):
    """Make an empty OCI image layout at layout (oci-layout, index.json, blobs/sha256)."""
    layout = Path(layout)
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    if not (layout / "oci-layout").exists():
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    if not (layout / "index.json").exists():
        (layout / "index.json").write_bytes(_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                                                   "manifests": []}))


def build_image(layout, layers, config=None, compression="gzip", docker=False, platform="linux/amd64",
                annotations=None):
    """Write layer, config and manifest blobs of one image into layout (no name); returns Image."""
    init_layout(layout)
    os_, arch, *var = platform.split("/")
    lays = [layer(x, compression, docker) for x in layers]
    cfg = make_config(lays, config, os_, arch, var[0] if var else None)
    for lay in lays:
        _put_blob(layout, lay.blob)
    cd = _put_blob(layout, cfg)
    m = {"schemaVersion": 2,
         "mediaType": MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
         "config": {"mediaType": MT_DOCKER_CONFIG if docker else MT_OCI_CONFIG, "digest": cd,
                    "size": len(cfg)},
         "layers": [{"mediaType": lay.media_type, "digest": lay.digest, "size": lay.size} for lay in lays]}
    if annotations:
        m["annotations"] = annotations
    mb = _json(m)
    md = _put_blob(layout, mb)
    return Image(md, mb, m["mediaType"], cfg, cd, lays)


def tag_layout(layout, name, img, platform=None):
    """Point name (org.opencontainers.image.ref.name) in layout's index.json at img, replacing that name."""
    init_layout(layout)
    p = Path(layout) / "index.json"
    idx = json.loads(p.read_text())
    idx["manifests"] = [d for d in idx["manifests"] if d.get("annotations", {}).get(REF_NAME) != name]
    desc = {"mediaType": img.media_type, "digest": img.digest, "size": img.size,
            "annotations": {REF_NAME: name}}
    if platform:
        o, a, *v = platform.split("/")
        desc["platform"] = {"os": o, "architecture": a, **({"variant": v[0]} if v else {})}
    idx["manifests"].append(desc)
    p.write_bytes(_json(idx))


def write_oci_layout(layout, name, layers, config=None, compression="gzip", docker=False,
                     platform="linux/amd64", annotations=None):
    """One image (layers: entries/tar bytes/Layer, base first) in an OCI layout under name; returns Image."""
    img = build_image(layout, layers, config, compression, docker, platform, annotations)
    tag_layout(layout, name, img)
    return img


def write_oci_index(layout, name, per_platform, compression="gzip", docker=False):
    """An index (Docker manifest list with docker=True) of {platform: (layers, config)} named name; returns Image."""
    children = {}
    descs = []
    for plat, (layers, config) in per_platform.items():
        child = build_image(layout, layers, config, compression, docker, plat)
        children[plat] = child
        o, a, *v = plat.split("/")
        descs.append({"mediaType": child.media_type, "digest": child.digest, "size": child.size,
                      "platform": {"architecture": a, "os": o, **({"variant": v[0]} if v else {})}})
    doc = {"schemaVersion": 2, "mediaType": MT_DOCKER_LIST if docker else MT_OCI_INDEX, "manifests": descs}
    b = _json(doc)
    d = _put_blob(layout, b)
    img = Image(d, b, doc["mediaType"], children=children)
    tag_layout(layout, name, img)
    return img


def two_platform_index(layout, name="multi:latest", compression="gzip", docker=False,
                       platforms=("linux/amd64", "linux/arm64")):
    """Images of busybox plus /platform holding the arch ('amd64', 'arm64'), one per platform, in that order; returns Image."""
    per = {}
    for plat in platforms:
        arch = plat.split("/")[1]
        per[plat] = ([busybox_layer(), {"platform": File(arch + "\n")}],
                     {"Cmd": ["cat", "/platform"], "Labels": {"arch": arch}})
    return write_oci_index(layout, name, per, compression, docker)


# ---- archives --------------------------------------------------------------

def _tar_add(tf, name, data, mode=0o644):
    """Add a regular file of bytes to an open tarfile (mtime 0)."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    tf.addfile(ti, io.BytesIO(data))


def write_docker_archive(path, repo_tags, layers, config=None, platform="linux/amd64"):
    """A `docker save` tarball (manifest.json, <hex>.json config, <hex>/layer.tar) at path; returns (config digest, Layers)."""
    os_, arch, *_ = platform.split("/")
    lays = [layer(x, None, docker=True) for x in layers]
    cfg = make_config(lays, config, os_, arch)
    chex = sha256(cfg)[7:]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        names = []
        for lay in lays:
            d = lay.diff_id[7:]
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
            _tar_add(tf, f"{d}/VERSION", b"1.0")
            _tar_add(tf, f"{d}/layer.tar", lay.tar)
            names.append(f"{d}/layer.tar")
        _tar_add(tf, f"{chex}.json", cfg)
        _tar_add(tf, "manifest.json", json.dumps([{"Config": f"{chex}.json", "RepoTags": list(repo_tags),
                                                    "Layers": names}]).encode())
        repos = {}
        for t in repo_tags:
            r, _, tag = t.rpartition(":")
            repos.setdefault(r, {})[tag] = lay.diff_id[7:] if lays else chex
        _tar_add(tf, "repositories", json.dumps(repos).encode())
    return "sha256:" + chex, lays


def write_oci_archive(path, layout):
    """An oci-archive: the OCI layout directory layout as a tar at path."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(Path(layout).rglob("*")):
            rel = str(p.relative_to(layout))
            if p.is_dir():
                ti = tarfile.TarInfo(rel)
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                _tar_add(tf, rel, p.read_bytes())


def rootfs_tar(entries):
    """An uncompressed root tarball (for `podman import` / `hull image import`) of entries."""
    return make_layer(entries)


# ---- reading layouts and stores ------------------------------------------

def read_index(layout):
    """index.json of a layout as a dict."""
    return json.loads((Path(layout) / "index.json").read_text())


def layout_names(layout):
    """{ref.name: descriptor} of a layout's index.json."""
    return {d.get("annotations", {}).get(REF_NAME): d for d in read_index(layout)["manifests"]}


def read_blob(layout, digest):
    """Bytes of a blob of a layout."""
    return (Path(layout) / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def store_snapshot(root):
    """{path: size|'dir'|sha256} of index.json, blobs/sha256/* and hull/layers/* (top level; *.lock and ingest ignored)."""
    root = Path(root)
    snap = {}
    if (root / "index.json").exists():
        snap["index.json"] = sha256((root / "index.json").read_bytes())
    blobs = root / "blobs" / "sha256"
    if blobs.is_dir():
        for p in blobs.iterdir():
            snap[f"blobs/sha256/{p.name}"] = p.lstat().st_size
    layers = root / "hull" / "layers"
    if layers.is_dir():
        for p in layers.iterdir():
            if not p.name.endswith(".lock"):
                snap[f"hull/layers/{p.name}"] = "dir" if p.is_dir() else p.lstat().st_size
    return snap


# ---- pushing a layout over HTTP (no skopeo: any manifest, any content) ---

def http_push(host, repo, ref, layout, name=None, digest=None):
    """Push one image or index of a layout to http://host/v2/repo as tag ref (blobs monolithic); returns manifest digest."""
    if digest is None:
        digest = layout_names(layout)[name]["digest"]
    body = read_blob(layout, digest)
    mt = json.loads(body).get("mediaType", MT_OCI_MANIFEST)
    doc = json.loads(body)
    for child in doc.get("manifests", []):
        http_push(host, repo, child["digest"], layout, digest=child["digest"])
    for d in [doc["config"]] + doc["layers"] if "config" in doc else []:
        http_put_blob(host, repo, read_blob(layout, d["digest"]))
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}", data=body, method="PUT",
                                 headers={"Content-Type": mt})
    urllib.request.urlopen(req, timeout=60).read()
    return digest


def http_put_blob(host, repo, data):
    """Upload bytes as a blob to http://host/v2/repo (POST then PUT ?digest=); returns its digest."""
    d = sha256(data)
    req = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    loc += ("&" if "?" in loc else "?") + "digest=" + d
    req = urllib.request.Request(loc, data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req, timeout=120).read()
    return d


# ---- driving hull against a store ------------------------------------------

HULL = os.environ.get("HULL", str(Path(__file__).resolve().parents[2] / "build" / "hull"))


def hull_run(*args, root=None, check=False, timeout=300, env=None, input=None):
    """Run `$HULL ARGS...` with HULL_IMAGE_ROOT=root; CompletedProcess (text); check raises with stderr."""
    e = dict(os.environ)
    if root is not None:
        e["HULL_IMAGE_ROOT"] = str(root)
    e.update(env or {})
    r = subprocess.run([HULL, *map(str, args)], env=e, capture_output=True, text=True, timeout=timeout,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"hull {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}")
    return r


def hull_error_line(r):
    """The one `hull: ...` line of a failed command's stderr (asserts non-zero exit and exactly one)."""
    assert r.returncode != 0, f"expected a failure, got rc 0:\n{r.stdout}\n{r.stderr}"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hull: ")]
    assert len(lines) == 1, f"expected one 'hull: ' error line, stderr was:\n{r.stderr}"
    assert "Traceback" not in r.stderr and "Segmentation" not in r.stderr, r.stderr
    return lines[0]
