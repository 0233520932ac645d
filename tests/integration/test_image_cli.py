"""`hull image`: the hull-image program behind it, against a store of each
test's own (--image-root under tmp_path). Images are made offline
(imagelib: busybox-static rootfs tarballs, docker archives); podman loads
what hull saves; `hull run` runs what `hull image bundle` makes."""
import fcntl
import gzip
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import HULL, wait_until
from hullrt import cid
from imagelib import (File, Symlink, busybox_layer, rootfs_tar, store_snapshot, two_platform_index,
                      write_docker_archive, write_oci_archive)

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
VERBS = ["pull", "push", "login", "logout", "list", "inspect", "tag", "remove", "prune",
         "import", "load", "save", "bundle", "build", "prepare"]
APP = {"CMD": '["/bin/echo", "hello from the image"]', "ENV": "GREETING=hi",
       "WORKDIR": "/home/app", "USER": "app"}


def img(root, *args, check=False, input=None, timeout=300):
    """`hull image --image-root ROOT ARGS...` (text output)."""
    r = subprocess.run([HULL, "image", "--image-root", str(root), *map(str, args)],
                       capture_output=True, timeout=timeout,
                       input=input.encode() if isinstance(input, str) else input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    r.stdout, r.stderr = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, f"hull image {args}: {r.stderr}"
    return r


def failed(r, verb):
    """A failure reported as one 'hull: image VERB ...: why' line, exit 1."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hull: ")]
    assert len(lines) == 1 and lines[0].startswith(f"hull: image {verb}"), r.stderr
    return lines[0]


def busybox_tarball(tmp_path, compression=None, name="rootfs.tar"):
    data = rootfs_tar(busybox_layer())
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                              check=True).stdout
    p = tmp_path / name
    p.write_bytes(data)
    return p


def import_app(tmp_path, root, name="localhost/app:1", compression=None):
    tb = busybox_tarball(tmp_path, compression, f"rootfs-{compression}.tar")
    changes = [a for k, v in APP.items() for a in ("--change", f"{k} {v}")]
    r = img(root, "import", *changes, tb, name, check=True)
    digest = r.stdout.strip()
    assert DIGEST.match(digest), r.stdout
    return digest


def inspect(root, ref):
    return json.loads(img(root, "inspect", ref, check=True).stdout)[0]


def blob_path(root, digest):
    return Path(root) / "blobs" / "sha256" / digest.split(":")[1]


# ---- help and usage ----------------------------------------------------------

def test_help_and_every_verbs_help_exit_0_unknown_verb_exits_1(tmp_path):
    r = subprocess.run([HULL, "image", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: hull image" in r.stdout
    for v in VERBS:
        assert re.search(rf"^  {v} ", r.stdout, re.M), f"--help lacks {v}"
        rv = subprocess.run([HULL, "image", v, "--help"], capture_output=True, text=True,
                            timeout=60)
        assert rv.returncode == 0 and rv.stdout.startswith(f"usage: hull image {v}"), (v, rv)
    r = subprocess.run([HULL, "image", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("hull: image: unknown command 'frobnicate'"), r.stderr
    r = subprocess.run([HULL, "image", "list", "--bogus"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("hull: image list: "), r.stderr
    r = subprocess.run([HULL, "image", "tag", "only-one"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "missing" in r.stderr


def test_hull_finds_hull_image_via_env_when_not_beside_it(tmp_path):
    # A copy of hull alone in a directory: no hull-image beside it, none in
    # ../lib/hull; $HULL_IMAGE_HELPER names it, else a clear error.
    lone = tmp_path / "bin" / "hull"
    lone.parent.mkdir()
    shutil.copy2(HULL, lone)
    helper = Path(HULL).resolve().parent / "hull-image"
    env = {k: v for k, v in os.environ.items() if k != "HULL_IMAGE_HELPER"}
    r = subprocess.run([str(lone), "image", "--help"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1 and "hull-image is not installed" in r.stderr, r.stderr
    env["HULL_IMAGE_HELPER"] = str(helper)
    r = subprocess.run([str(lone), "image", "--help"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0 and "usage: hull image" in r.stdout


def test_installed_hull_finds_hull_image_in_lib_hull(tmp_path):
    # -o all: install what is built (the suite runs after make all)
    src = Path(__file__).resolve().parents[2]
    r = subprocess.run(["make", "-C", str(src), "-s", "-o", "all", "install",
                        f"DESTDIR={tmp_path}", "PREFIX=/usr"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    hull = tmp_path / "usr" / "bin" / "hull"
    assert (tmp_path / "usr" / "lib" / "hull" / "hull-image").is_file()
    env = {k: v for k, v in os.environ.items() if k != "HULL_IMAGE_HELPER"}
    r = subprocess.run([str(hull), "image", "--image-root", str(tmp_path / "s"), "list", "-q"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == "", r.stderr


# ---- import, list, inspect ---------------------------------------------------------

@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_import_then_list_and_inspect_show_it(tmp_path, compression):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root, compression=compression)
    rows = img(root, "list", check=True).stdout.splitlines()
    assert rows[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert len(rows) == 2 and rows[1].split()[:3] == ["localhost/app", "1", digest[7:19]], rows
    js = json.loads(img(root, "list", "--format", "json", check=True).stdout)
    assert [(e["name"], e["digest"]) for e in js] == [("localhost/app:1", digest)]
    assert img(root, "list", "-q", check=True).stdout.split() == [digest[7:19]]

    info = inspect(root, "localhost/app:1")
    assert info["digest"] == digest and info["names"] == ["localhost/app:1"]
    assert info["os"] == "linux" and info["architecture"]
    assert info["config"]["Cmd"] == ["/bin/echo", "hello from the image"]
    assert "GREETING=hi" in info["config"]["Env"] and info["config"]["User"] == "app"
    assert info["config"]["WorkingDir"] == "/home/app"
    (layer,) = info["layers"]
    # sizes are the blobs' on disk; the layer holds busybox itself
    assert layer["size"] == blob_path(root, layer["digest"]).stat().st_size
    assert info["size"] == layer["size"] + blob_path(root, info["config_digest"]).stat().st_size
    with open(blob_path(root, layer["digest"]), "rb") as f:
        assert f.read(4) == b"\x28\xb5\x2f\xfd"  # zstd, the default
    # by id and by digest too
    assert inspect(root, digest[7:19])["digest"] == digest
    assert inspect(root, digest)["digest"] == digest


def test_import_refuses_entries_outside_the_root(tmp_path):
    root = tmp_path / "store"
    import_app(tmp_path, root)
    before = store_snapshot(root)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        ti = tarfile.TarInfo("../escaped-marker")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    r = img(root, "import", evil, "localhost/evil:1")
    assert "outside" in failed(r, "import")
    assert not (root / "hull" / "escaped-marker").exists()
    assert not (root / "escaped-marker").exists()
    assert store_snapshot(root) == before
    assert not list((root / "hull").glob("import-*"))


# ---- tag, remove, prune --------------------------------------------------------------

def test_tag_and_remove_by_name_and_id(tmp_path):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root)
    img(root, "tag", "localhost/app:1", "localhost/other:2", check=True)
    info = inspect(root, "localhost/other:2")
    assert info["digest"] == digest
    assert sorted(info["names"]) == ["localhost/app:1", "localhost/other:2"]
    assert img(root, "list", "-q", check=True).stdout.split() == [digest[7:19]]
    assert len(img(root, "list", check=True).stdout.splitlines()) == 3
    # an id naming two names is ambiguous: refused without --force
    before = store_snapshot(root)
    r = img(root, "remove", digest[7:19])
    failed(r, "remove")
    assert store_snapshot(root) == before
    img(root, "remove", "localhost/app:1", check=True)
    names = [e["name"] for e in json.loads(img(root, "list", "--format", "json").stdout)]
    assert names == ["localhost/other:2"]
    img(root, "remove", digest[7:19], check=True)
    assert json.loads(img(root, "list", "--format", "json").stdout) == []


def test_remove_force_with_several_names(tmp_path):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root)
    img(root, "tag", digest[7:19], "localhost/b:1", check=True)
    img(root, "remove", "--force", digest[7:19], check=True)
    assert json.loads(img(root, "list", "--format", "json").stdout) == []


def test_remove_refuses_an_image_in_use_unless_forced(tmp_path):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root)
    using = root / "hull" / "using"
    using.mkdir(parents=True, exist_ok=True)
    # what image_use does for a running sandbox: a shared flock on using/<hex>
    fd = os.open(using / digest[7:], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        before = store_snapshot(root)
        line = failed(img(root, "remove", "localhost/app:1"), "remove localhost/app:1")
        assert "in use" in line
        assert store_snapshot(root) == before
        img(root, "remove", "--force", "localhost/app:1", check=True)
    finally:
        os.close(fd)
    assert json.loads(img(root, "list", "--format", "json").stdout) == []


def test_remove_refuses_an_image_a_running_sandbox_uses(tmp_path):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root)
    mark = root / "hull" / "using" / digest[7:]

    def held():
        if not mark.exists():
            return False
        fd = os.open(mark, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    p = subprocess.Popen([HULL, "sandbox", "run", "--image", "localhost/app:1", "--image-root",
                          str(root), "--pull", "never", "--wall-time", "120s", "--", "sleep",
                          "100"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(held, timeout=120), "the sandbox never marked its image used"
        before = store_snapshot(root)
        line = failed(img(root, "remove", "localhost/app:1"), "remove localhost/app:1")
        assert "in use" in line
        assert store_snapshot(root) == before
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    assert wait_until(lambda: not held(), timeout=60)
    img(root, "remove", "localhost/app:1", check=True)


def referenced(root):
    """Blob digests and layer dirs the store's named images use."""
    blobs, layers = set(), set()
    for e in json.loads(img(root, "list", "--format", "json", check=True).stdout):
        info = inspect(root, e["name"])
        blobs |= {info["digest"], info["config_digest"]}
        blobs |= {lay["digest"] for lay in info["layers"]}
        layers |= {lay["diff_id"][7:] for lay in info["layers"]}
    return blobs, layers


def test_prune_leaves_exactly_what_remaining_images_use(tmp_path):
    root = tmp_path / "store"
    keep = import_app(tmp_path, root, "localhost/keep:1")
    tb = tmp_path / "other.tar"
    tb.write_bytes(rootfs_tar({"hello.txt": b"only in the other image\n"}))
    img(root, "import", tb, "localhost/gone:1", check=True)
    img(root, "prepare", "localhost/keep:1", check=True)
    img(root, "remove", "localhost/gone:1", check=True)
    r = img(root, "prune", check=True)
    assert "freed" in r.stdout
    blobs, layers = referenced(root)
    on_disk = {"sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir()}
    assert on_disk == blobs
    ldir = root / "hull" / "layers"
    have = {p.name for p in ldir.iterdir() if p.is_dir()} if ldir.exists() else set()
    assert have == layers
    assert inspect(root, "localhost/keep:1")["digest"] == keep
    # a second prune has nothing left to free, and the image still bundles
    img(root, "prune", check=True)
    assert {"sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir()} == blobs


# ---- save and load -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_then_load_into_another_store_keeps_the_digest(tmp_path, fmt):
    root, other = tmp_path / "store", tmp_path / "other"
    digest = import_app(tmp_path, root)
    out = tmp_path / f"app-{fmt}.tar"
    img(root, "save", "--format", fmt, "-o", out, "localhost/app:1", check=True)
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    assert {"index.json", "oci-layout", f"blobs/sha256/{digest[7:]}"} <= names
    assert ("manifest.json" in names) == (fmt == "docker-archive")
    r = img(other, "load", "-i", out, check=True)
    assert "localhost/app:1" in r.stdout and digest in r.stdout
    info = inspect(other, "localhost/app:1")
    assert info["digest"] == digest
    assert info["config"]["Cmd"] == ["/bin/echo", "hello from the image"]
    # from standard input as well
    third = tmp_path / "third"
    r = img(third, "load", "-q", input=out.read_bytes(), check=True)
    assert r.stdout.split() == [digest]


def test_load_a_legacy_docker_archive(tmp_path):
    root = tmp_path / "store"
    arch = tmp_path / "legacy.tar"
    # a big layer (streamed into the store) and a small one (kept in memory
    # until manifest.json names it)
    write_docker_archive(arch, ["localhost/legacy:7"],
                         [busybox_layer(), {"etc/motd": File("small layer\n")}],
                         config={"Cmd": ["/bin/echo", "legacy"]})
    r = img(root, "load", "-i", arch, check=True)
    assert "localhost/legacy:7" in r.stdout
    info = inspect(root, "localhost/legacy:7")
    assert info["config"]["Cmd"] == ["/bin/echo", "legacy"]
    assert len(info["layers"]) == 2
    img(root, "prepare", "localhost/legacy:7", check=True)
    # the archive's VERSION and <id>/json files did not become blobs
    blobs, _ = referenced(root)
    assert {"sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir()} == blobs
    b = tmp_path / "b"
    img(root, "bundle", "localhost/legacy:7", b, check=True)
    assert (b / "rootfs" / "etc" / "motd").read_text() == "small layer\n"


def test_load_a_two_platform_oci_archive_and_pick_a_platform(tmp_path):
    root = tmp_path / "store"
    layout = tmp_path / "layout"
    idx = two_platform_index(layout, "localhost/multi:1")
    arch = tmp_path / "multi.tar"
    write_oci_archive(arch, layout)
    r = img(root, "load", "-i", arch, check=True)
    assert idx.digest in r.stdout and "localhost/multi:1" in r.stdout
    for plat in ("linux/amd64", "linux/arm64"):
        info = json.loads(img(root, "inspect", "--platform", plat, "localhost/multi:1",
                              check=True).stdout)[0]
        assert info["digest"] == idx.children[plat].digest
        assert info["index_digest"] == idx.digest
        assert info["architecture"] == plat.split("/")[1]
    # save takes the platform's manifest alone: its digest survives the trip
    out = tmp_path / "arm.tar"
    img(root, "save", "--platform", "linux/arm64", "-o", out, "localhost/multi:1", check=True)
    r = img(tmp_path / "other", "load", "-q", "-i", out, check=True)
    assert r.stdout.split() == [idx.children["linux/arm64"].digest]


def test_load_of_a_tampered_archive_changes_nothing(tmp_path):
    root = tmp_path / "store"
    digest = import_app(tmp_path, root)
    out = tmp_path / "app.tar"
    img(root, "save", "-o", out, "localhost/app:1", check=True)
    info = inspect(root, "localhost/app:1")
    # rewrite the archive with one byte of the config blob changed
    bad = tmp_path / "bad.tar"
    with tarfile.open(out) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == f"blobs/sha256/{info['config_digest'][7:]}":
                data = data.replace(b"hello from the image", b"HELLO from the image")
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
    other = tmp_path / "other"
    img(other, "list", check=True)
    import_app(tmp_path, other, "localhost/present:1")
    before = store_snapshot(other)
    failed(img(other, "load", "-i", bad), "load")
    assert store_snapshot(other) == before
    # by name: the image already there may have the same digest (an import
    # in the same second as the first one makes identical bytes)
    names = [n for i in json.loads(img(other, "list", "--format", "json").stdout)
             for n in i.get("names", [i.get("name")])]
    assert "localhost/app:1" not in names, names


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_loads_hulls_docker_archive(tmp_path):
    root = tmp_path / "store"
    import_app(tmp_path, root, compression="gzip")
    info = inspect(root, "localhost/app:1")
    out = tmp_path / "app.tar"
    img(root, "save", "-o", out, "localhost/app:1", check=True)
    # podman wants a short runroot (at most 50 characters)
    runroot = tempfile.mkdtemp(prefix="hull-img-pod-", dir="/tmp")
    pod = ["podman", "--root", str(tmp_path / "podroot"), "--runroot", runroot,
           "--storage-driver", "vfs"]
    try:
        r = subprocess.run(pod + ["load", "-i", str(out)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(pod + ["image", "inspect", "localhost/app:1"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        (pinfo,) = json.loads(r.stdout)
        # podman's image id is the config digest: the same config, byte for byte
        assert "sha256:" + pinfo["Id"] == info["config_digest"]
        assert pinfo["Config"]["Cmd"] == ["/bin/echo", "hello from the image"]
    finally:
        # not `system reset`: that would also drop host-wide podman networks
        subprocess.run(pod + ["rmi", "-af"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)


# ---- bundle -------------------------------------------------------------------------------

def test_bundle_runs_the_images_command_with_its_env_cwd_and_user(tmp_path, hull):
    root = tmp_path / "store"
    import_app(tmp_path, root)
    b = tmp_path / "bundle"
    img(root, "bundle", "localhost/app:1", b, check=True)
    cfg = json.loads((b / "config.json").read_text())
    p = cfg["process"]
    assert p["args"] == ["/bin/echo", "hello from the image"]
    assert "GREETING=hi" in p["env"] and any(e.startswith("PATH=") for e in p["env"])
    assert p["cwd"] == "/home/app"
    assert p["user"]["uid"] == 1000 and p["user"]["gid"] == 1000
    assert cfg["root"]["path"] == "rootfs" and (b / "rootfs" / "bin" / "busybox").is_file()
    r = hull("run", "--bundle", str(b), cid("imgb"), timeout=120)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "hello from the image"
    # the process really is the image's user in its working directory
    cfg["process"]["args"] = ["sh", "-c", "id -u; id -g; pwd; echo $GREETING"]
    (b / "config.json").write_text(json.dumps(cfg))
    r = hull("run", "--bundle", str(b), cid("imgc"), timeout=120)
    assert r.returncode == 0, r
    assert r.stdout.split() == ["1000", "1000", "/home/app", "hi"]


def test_bundle_annotations_and_numeric_user(tmp_path):
    root = tmp_path / "store"
    tb = busybox_tarball(tmp_path)
    img(root, "import", "-c", "USER 123:456", "-c", "EXPOSE 8080", "-c", "STOPSIGNAL SIGINT",
        "-c", "LABEL team=images", tb, "localhost/ann:1", check=True)
    b = tmp_path / "b"
    b.mkdir()  # an empty directory is fine
    img(root, "bundle", "localhost/ann:1", b, check=True)
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["process"]["user"] == {"uid": 123, "gid": 456}
    a = cfg["annotations"]
    assert a["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert a["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert a["team"] == "images"
    assert cfg["process"]["args"] == ["sh"]  # no Cmd: the default spec's


@pytest.mark.parametrize("existing", [False, True])
def test_bundle_is_closed_to_other_users(tmp_path, existing):
    """The rootfs keeps the image's setuid-root files and device nodes: a
    bundle others could enter would give them root (umoci's is 0700 too)."""
    root = tmp_path / "store"
    import_app(tmp_path, root)
    # pytest's own directories are 0700: the bundle goes where others can look
    where = Path(tempfile.mkdtemp(prefix="hull-bundle-", dir="/tmp"))
    try:
        where.chmod(0o755)
        b = where / "bundle"
        if existing:
            b.mkdir()
            b.chmod(0o755)
        img(root, "bundle", "localhost/app:1", b, check=True)
        assert stat.S_IMODE(b.stat().st_mode) == 0o700
        r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                            "ls", str(b / "rootfs" / "bin")], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
    finally:
        shutil.rmtree(where)


def test_bundle_keeps_holes(tmp_path):
    """An image's 200 MiB of zeros is a hole in the store, and stays one in a
    bundle: copied extent by extent, not as 200 MiB of blocks."""
    root = tmp_path / "store"
    data = gzip.compress(rootfs_tar(busybox_layer(extra={"zeros": File(bytes(200 << 20))})), 1)
    tb = tmp_path / "zeros.tar.gz"
    tb.write_bytes(data)
    img(root, "import", tb, "localhost/zeros:1", check=True)
    b = tmp_path / "b"
    img(root, "bundle", "localhost/zeros:1", b, check=True)
    st = os.stat(b / "rootfs" / "zeros")
    assert st.st_size == 200 << 20
    assert st.st_blocks * 512 < 1 << 20, f"200 MiB of zeros took {st.st_blocks * 512} bytes"
    with open(b / "rootfs" / "zeros", "rb") as f:
        f.seek((200 << 20) - 4096)
        assert f.read() == bytes(4096)


def test_bundle_user_name_unknown_to_the_image_fails_and_leaves_nothing(tmp_path):
    root = tmp_path / "store"
    tb = busybox_tarball(tmp_path)
    img(root, "import", "-c", "USER nosuchuser", tb, "localhost/nouser:1", check=True)
    b = tmp_path / "b"
    line = failed(img(root, "bundle", "localhost/nouser:1", b), "bundle localhost/nouser:1")
    assert "nosuchuser" in line
    assert not b.exists()


@pytest.mark.parametrize("target", ["../../../../../../../../etc/passwd", "/etc/../../etc/shadow"])
def test_bundle_never_reads_the_hosts_passwd_through_a_symlink(tmp_path, target):
    # "daemon" is in the host's /etc/passwd, not in the image's
    assert "\ndaemon:" in "\n" + Path("/etc/passwd").read_text()
    root = tmp_path / "store"
    tb = tmp_path / "evil.tar"
    tb.write_bytes(rootfs_tar(busybox_layer(extra={"etc/passwd": Symlink(target)})))
    img(root, "import", "-c", "USER daemon", tb, "localhost/evil:1", check=True)
    b = tmp_path / "b"
    r = img(root, "bundle", "localhost/evil:1", b)
    assert "/etc/passwd" in failed(r, "bundle localhost/evil:1")
    assert not b.exists()


# ---- errors leave the store unchanged --------------------------------------------------------

def test_errors_name_the_verb_and_change_nothing(tmp_path):
    root = tmp_path / "store"
    import_app(tmp_path, root)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("mine")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 100)
    before = store_snapshot(root)
    cases = [
        (("inspect", "Bad/UPPER:case"), "inspect Bad/UPPER:case"),
        (("inspect", "localhost/nope:1"), "inspect localhost/nope:1"),
        (("tag", "localhost/app:1", "bad::name"), "tag"),
        (("tag", "localhost/nope:1", "localhost/x:1"), "tag localhost/nope:1"),
        (("remove", "localhost/nope:1"), "remove localhost/nope:1"),
        (("save", "-o", tmp_path / "x.tar", "localhost/nope:1"), "save localhost/nope:1"),
        (("bundle", "localhost/nope:1", tmp_path / "nb"), "bundle localhost/nope:1"),
        (("bundle", "localhost/app:1", full), "bundle localhost/app:1"),
        (("load", "-i", garbage), "load"),
        (("import", garbage, "localhost/g:1"), "import localhost/g:1"),
        (("import", busybox_tarball(tmp_path), "NOT/valid"), "import NOT/valid"),
        (("prepare", "sha256:" + "0" * 64), "prepare"),
    ]
    for args, verb in cases:
        r = img(root, *args)
        failed(r, verb)
        assert store_snapshot(root) == before, args
    assert sorted(os.listdir(full)) == ["keep"]
    assert not (tmp_path / "nb").exists() and not (tmp_path / "x.tar").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("where", ["absent", "nested", "nested-slash", "empty-dir"])
def test_refused_input_leaves_no_store_in_a_fresh_root(tmp_path, where):
    """load, import and build of an input they refuse, into a root that did
    not exist (or an empty directory): nothing is left, not even the
    store's skeleton (oci-layout, index.json, hull/...) they used to leave,
    nor the directories made for it (also when the root is given with a
    trailing slash)."""
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 100)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM\n")
    cases = [(("load", "-i", garbage), "load"),
             (("import", garbage, "localhost/g:1"), "import localhost/g:1"),
             (("build", "-t", "localhost/b:1", ctx), "build localhost/b:1")]
    for args, verb in cases:
        base = tmp_path / f"roots-{verb.split()[0]}"
        base.mkdir()
        root = {"absent": base / "store", "nested": base / "a" / "b" / "store",
                "nested-slash": f"{base}/a/b/store/", "empty-dir": base / "store"}[where]
        if where == "empty-dir":
            root.mkdir()
        failed(img(root, *args), verb)
        left = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
        assert left == (["store"] if where == "empty-dir" else []), (args, left)


# ---- registries -------------------------------------------------------------------------------

def test_login_push_pull_through_the_cli(tmp_path):
    from registrylib import Registry
    root, other = tmp_path / "store", tmp_path / "other"
    digest = import_app(tmp_path, root, compression="gzip")
    auth = tmp_path / "auth.json"
    with Registry(tmp_path, htpasswd={"ci": "s3cret"}) as reg:
        dest = f"{reg.host}/team/app:1"
        # no credentials yet: refused, and nothing printed on stdout
        r = img(root, "--tls-verify=false", "--authfile", auth, "push", "localhost/app:1", dest)
        failed(r, f"push {dest}")
        assert r.stdout == ""
        # a wrong password is refused and stores nothing
        r = img(root, "login", "--tls-verify=false", "--authfile", auth, "-u", "ci",
                "--password-stdin", reg.host, input="wrong\n")
        failed(r, f"login {reg.host}")
        assert not auth.exists() or reg.host not in auth.read_text()
        img(root, "login", "--tls-verify=false", "--authfile", auth, "-u", "ci",
            "--password-stdin", reg.host, input="s3cret\n", check=True)
        assert reg.host in json.loads(auth.read_text())["auths"]
        r = img(root, "push", "--tls-verify=false", "--authfile", auth, "localhost/app:1", dest,
                check=True)
        assert r.stdout.strip() == digest
        # progress (one summary line when not a terminal) goes to stderr
        assert f"pushed {dest}:" in r.stderr
        # -p works but warns that the password shows in ps
        r = img(other, "login", "--tls-verify=false", "--authfile", tmp_path / "auth2.json",
                "-u", "ci", "-p", "s3cret", reg.host, check=True)
        assert "warning" in r.stderr
        r = img(other, "pull", "-q", "--tls-verify=false", "--authfile", auth, dest, check=True)
        assert r.stdout.strip() == digest and r.stderr == ""
        r = img(other, "pull", "--tls-verify=false", "--authfile", auth, dest, check=True)
        assert r.stdout.strip() == digest and f"pulled {dest}:" in r.stderr
        assert inspect(other, dest)["digest"] == digest
        img(other, "logout", "--authfile", auth, reg.host, check=True)
        assert reg.host not in json.loads(auth.read_text()).get("auths", {})
        before = store_snapshot(other)
        r = img(other, "pull", "--tls-verify=false", "--authfile", auth, f"{reg.host}/team/app:2")
        failed(r, f"pull {reg.host}/team/app:2")
        assert store_snapshot(other) == before
