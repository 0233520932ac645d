"""hull's images against real peers, both ways: podman, skopeo, umoci, docker-registry.

Every peer keeps its own temporary storage (podman: a graphroot/runroot
under the test's tmp dir through engines.podman; skopeo/umoci: layout
directories), every registry is a real /usr/bin/docker-registry on
127.0.0.1 (registrylib), and hull's store is a fresh directory per test
(HULL_IMAGE_ROOT). Images come from imagelib (offline, busybox-static).

podman runs containers with runc: its default runtime here, crun 1.8,
refuses this hybrid cgroup host ("cgroups in hybrid mode not supported").

What each test proves is that the bytes and digests one tool wrote are the
ones the other reads, and that what runs is the image's content (files the
peer's build wrote, whiteouts applied, config honoured).
"""
import json
import shutil
import subprocess

import pytest

import imagelib as il
from engines.podman import Podman
from hullrt import cid
from registrylib import Registry, push_oci, skopeo_inspect

SKOPEO = "skopeo"
UMOCI = "umoci"


def run(*args, check=True, timeout=300, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}")
    return r


def hull_pull(store, ref, *opts):
    """hull image pull (plain http registry); returns the manifest digest it printed."""
    r = il.hull_run("image", "pull", "--tls-verify=false", *opts, ref, root=store, check=True)
    digest = r.stdout.split()[-1]
    assert digest.startswith("sha256:") and len(digest) == 71, r.stdout
    return digest


def sandbox(store, image, *cmd, opts=()):
    """hull sandbox run --image IMAGE [-- CMD]; stdout (asserts exit 0)."""
    args = ["sandbox", "run", "--image", image, *opts]
    if cmd:
        args += ["--", *cmd]
    r = il.hull_run(*args, root=store)
    assert r.returncode == 0, f"sandbox run --image {image} exited {r.returncode}:\n{r.stderr}"
    return r.stdout


def store_name_digest(store, name):
    """The manifest digest index.json of hull's store gives name."""
    names = il.layout_names(store)
    assert name in names, f"{name} not in {sorted(names)}"
    return names[name]["digest"]


def skopeo_copy(src, dst, *opts):
    return run(SKOPEO, "--insecure-policy", "copy", "--retry-times", "0", *opts, src, dst)


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """A podman with its own store (runc), removed with everything it made."""
    top = tmp_path_factory.mktemp("podman")
    pm = Podman(str(top), shutil.which("runc") or "runc")
    try:
        yield pm
    finally:
        pm.destroy()


@pytest.fixture
def registry(tmp_path):
    with Registry(tmp_path) as reg:
        yield reg


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def content_layers():
    """busybox + a layer of files, links and a device + a layer deleting and hiding some of them."""
    return [
        il.busybox_layer(),
        {"etc/motd": il.File("layer two\n"), "data/a": il.File("a\n"), "data/b": il.File("b\n"),
         "data/exec": il.File("#!/bin/sh\necho script-ran\n", 0o755),
         "data/owned": il.File("app's\n", 0o600, uid=1000, gid=1000),
         "data/hard": il.Hardlink("data/b"), "data/link": il.Symlink("/data/b"),
         "data2/old": il.File("old\n"), "data2/sub/deep": il.File("deep\n")},
        dict([il.whiteout("data/a"), il.opaque("data2"), ("data2/new", il.File("new\n")),
              ("opt/three", il.File("3\n"))]),
    ]


CONTENT_SCRIPT = ("cat /etc/motd /data/b /data/hard /data/link /opt/three; /data/exec; "
                  "test -e /data/a || echo a-whited-out; ls /data2")
CONTENT_OUT = "layer two\nb\nb\nb\n3\nscript-ran\na-whited-out\nnew\n"


# ---- podman -> registry -> hull -----------------------------------------

PODMAN_CONTAINERFILE = """\
FROM localhost/interop-base:1
RUN echo built-by-podman > /marker && mkdir -p /app && echo app-file > /app/f && rm /bin/wc
ENV GREETING=hello-from-podman
WORKDIR /app
CMD ["cat", "/marker"]
"""


@pytest.fixture(scope="module")
def podman_built(podman, tmp_path_factory):
    """localhost/interop-built:1: podman import of a busybox tar, then podman build FROM it (RUN with runc)."""
    d = tmp_path_factory.mktemp("podbuild")
    (d / "base.tar").write_bytes(il.rootfs_tar(il.busybox_layer()))
    podman("import", "-q", "--change", "ENV=PATH=/usr/sbin:/usr/bin:/sbin:/bin",
           "--change", 'CMD=["/bin/sh"]', str(d / "base.tar"), "localhost/interop-base:1")
    (d / "ctx").mkdir()
    (d / "ctx" / "Containerfile").write_text(PODMAN_CONTAINERFILE)
    podman("build", "--pull=never", "--network", "none", "-q", "-t", "localhost/interop-built:1",
           str(d / "ctx"), timeout=600)
    return "localhost/interop-built:1"


@pytest.mark.parametrize("fmt,compression", [("oci", "gzip"), ("v2s2", "gzip"), ("oci", "zstd")])
def test_podman_builds_and_pushes_hull_pulls_and_runs(podman, podman_built, registry, store, fmt,
                                                      compression):
    ref = f"{registry.host}/podman/built:{fmt}-{compression}"
    podman("push", "--tls-verify=false", "--format", fmt, "--compression-format", compression,
           podman_built, f"docker://{ref}", timeout=600)
    want = skopeo_inspect(ref)["Digest"]
    raw = skopeo_inspect(ref, raw=True)
    assert raw["mediaType"] == (il.MT_OCI_MANIFEST if fmt == "oci" else il.MT_DOCKER_MANIFEST)
    if compression == "zstd":
        assert {lay["mediaType"] for lay in raw["layers"]} == {il.MT_OCI_LAYER_ZSTD}

    assert hull_pull(store, ref) == want
    assert store_name_digest(store, ref) == want

    # What podman's RUN wrote, its whiteout of /bin/wc, and the config's ENV/WORKDIR.
    out = sandbox(store, ref, "sh", "-c", 'cat /marker /app/f; echo "$GREETING"; pwd; '
                  "test -e /bin/wc || echo wc-whited-out")
    assert out == "built-by-podman\napp-file\nhello-from-podman\n/app\nwc-whited-out\n"
    # No command: the image's CMD.
    assert sandbox(store, ref) == "built-by-podman\n"


# ---- hull build -> registry -> podman / skopeo ---------------------------

def test_hull_builds_and_pushes_podman_and_skopeo_agree(podman, registry, store, tmp_path):
    layout = tmp_path / "base-layout"
    il.write_oci_layout(layout, "base", [il.busybox_layer()], config={"Cmd": ["sh"]})
    base = f"{registry.host}/interop/base:1"
    push_oci(layout, "base", base)
    hull_pull(store, base)

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("copied-by-hull-build\n")
    (ctx / "Containerfile").write_text(
        f"FROM {base}\n"
        "RUN echo built-by-hull > /marker && rm /bin/wc\n"
        "COPY hello.txt /app/hello.txt\n"
        "ENV GREETING=hello-from-hull\n"
        "WORKDIR /app\n"
        'CMD ["cat", "/marker"]\n')
    results = {}
    for compression in ("zstd", "gzip"):
        name = f"{registry.host}/hull/app:{compression}"
        il.hull_run("image", "build", "-t", name, "--compression", compression, ctx, root=store,
                    check=True, timeout=600)
        local = store_name_digest(store, name)
        il.hull_run("image", "push", "--tls-verify=false", name, root=store, check=True, timeout=600)

        # The registry holds exactly the manifest hull has locally.
        assert skopeo_inspect(name)["Digest"] == local
        raw = skopeo_inspect(name, raw=True)
        assert raw == json.loads(il.read_blob(store, local))
        layer_types = {lay["mediaType"] for lay in raw["layers"]}
        assert (il.MT_OCI_LAYER_ZSTD if compression == "zstd" else il.MT_OCI_LAYER_GZIP) in layer_types

        # skopeo copies it to a layout: same manifest, same blob bytes as hull's store.
        out = tmp_path / f"skopeo-{compression}"
        skopeo_copy(f"docker://{name}", f"oci:{out}:x", "--src-tls-verify=false")
        assert il.layout_names(out)["x"]["digest"] == local
        for lay in raw["layers"] + [raw["config"]]:
            assert il.read_blob(out, lay["digest"]) == il.read_blob(store, lay["digest"])
        results[compression] = (name, local)

    for compression, (name, local) in results.items():
        podman("pull", "-q", "--tls-verify=false", name, timeout=600)
        info = json.loads(podman("image", "inspect", name).stdout)[0]
        assert info["Digest"] == local
        assert info["Config"]["WorkingDir"] == "/app"
        r = podman.run("--rm", name)
        assert r.stdout == "built-by-hull\n"
        r = podman.run("--rm", name, "sh", "-c", 'cat /app/hello.txt; echo "$GREETING"; pwd; '
                       "test -e /bin/wc || echo wc-whited-out")
        assert r.stdout == "copied-by-hull-build\nhello-from-hull\n/app\nwc-whited-out\n"
        podman("rmi", name)


# ---- skopeo into hull's store / out of it --------------------------------

@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_skopeo_copies_into_hull_store_and_hull_runs_it(store, tmp_path, compression):
    layout = tmp_path / "layout"
    img = il.write_oci_layout(layout, "src", content_layers(), compression=compression,
                              config={"Cmd": ["cat", "/etc/motd"], "Labels": {"made-by": "imagelib"}})
    # skopeo makes the store itself (it is only an OCI layout to skopeo).
    skopeo_copy(f"oci:{layout}:src", f"oci:{store}:localhost/copied:1", "--preserve-digests")
    skopeo_copy(f"oci:{layout}:src", f"oci:{store}:plain", "--preserve-digests")
    assert store_name_digest(store, "localhost/copied:1") == img.digest

    r = il.hull_run("image", "list", root=store, check=True)
    assert "localhost/copied" in r.stdout, r.stdout
    r = il.hull_run("image", "list", "--format", "json", root=store, check=True)
    assert img.digest in r.stdout, r.stdout

    # hull unpacks the layers skopeo left as blobs when it first runs the image.
    assert sandbox(store, "localhost/copied:1", "sh", "-c", CONTENT_SCRIPT) == CONTENT_OUT
    assert sandbox(store, "localhost/copied:1") == "layer two\n"
    assert sandbox(store, "plain", "cat", "/opt/three") == "3\n"
    layers = sorted(p.name for p in (store / "hull" / "layers").iterdir() if p.is_dir())
    assert layers == sorted(lay.diff_id[7:] for lay in img.layers)


def test_skopeo_copies_index_into_hull_store_and_hull_picks_the_host_platform(store, tmp_path):
    layout = tmp_path / "layout"
    idx = il.two_platform_index(layout, "multi")
    skopeo_copy(f"oci:{layout}:multi", f"oci:{store}:localhost/multi:1", "--all", "--preserve-digests")
    assert store_name_digest(store, "localhost/multi:1") == idx.digest
    assert sandbox(store, "localhost/multi:1") == "amd64\n"


def test_skopeo_copies_out_of_hull_store(registry, store, tmp_path):
    layout = tmp_path / "layout"
    img = il.write_oci_layout(layout, "src", content_layers(), config={"Cmd": ["sh"]})
    ref = f"{registry.host}/interop/out:1"
    push_oci(layout, "src", ref)
    assert hull_pull(store, ref) == img.digest
    assert sandbox(store, ref, "sh", "-c", CONTENT_SCRIPT) == CONTENT_OUT

    # hull's store is a layout skopeo reads by hull's full name (first ':' ends the path).
    info = json.loads(run(SKOPEO, "inspect", f"oci:{store}:{ref}").stdout)
    assert info["Digest"] == img.digest
    assert info["Layers"] == [lay.digest for lay in img.layers]
    out = tmp_path / "out"
    skopeo_copy(f"oci:{store}:{ref}", f"oci:{out}:x")
    assert il.layout_names(out)["x"]["digest"] == img.digest
    for lay in img.layers:
        assert il.read_blob(out, lay.digest) == lay.blob
    # ... and pushes from it to a registry unchanged.
    back = f"{registry.host}/interop/back:1"
    skopeo_copy(f"oci:{store}:{ref}", f"docker://{back}", "--dest-tls-verify=false")
    assert skopeo_inspect(back)["Digest"] == img.digest
    # skopeo left hull's own directory alone and hull still reads the store.
    assert (store / "hull" / "layers").is_dir()
    assert sandbox(store, ref, "cat", "/opt/three") == "3\n"


def test_podman_pulls_straight_from_hull_store(podman, registry, store, tmp_path):
    """podman reads hull's store as an OCI layout (oci:DIR:NAME) and runs what hull pulled."""
    layout = tmp_path / "layout"
    img = il.write_oci_layout(layout, "src", content_layers(), config={"Cmd": ["sh"]})
    ref = f"{registry.host}/interop/from-store:1"
    push_oci(layout, "src", ref)
    hull_pull(store, ref)
    podman("pull", "-q", f"oci:{store}:{ref}")
    ids = [i["Id"] for i in json.loads(podman("images", "--format", "json").stdout)]
    assert img.config_digest[7:] in ids, ids  # the same config: the same image
    r = podman.run("--rm", f"oci:{store}:{ref}", "sh", "-c", CONTENT_SCRIPT)
    assert r.stdout == CONTENT_OUT
    podman("rmi", "-f", img.config_digest[7:], check=False)


# ---- umoci ----------------------------------------------------------------

def test_umoci_unpacks_hull_store_and_hull_runs_the_bundle(registry, store, tmp_path, hull):
    layout = tmp_path / "layout"
    img = il.write_oci_layout(layout, "src", content_layers(), config={"Cmd": ["sh"]})
    ref = f"{registry.host}/interop/umoci:1"
    push_oci(layout, "src", ref)
    hull_pull(store, ref)

    # umoci 0.4.7 takes hull's full names too (it splits IMAGE:TAG at the first ':').
    names = run(UMOCI, "ls", "--layout", store).stdout.split()
    assert ref in names, names
    bundle = tmp_path / "bundle"
    run(UMOCI, "unpack", "--image", f"{store}:{ref}", bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", CONTENT_SCRIPT]
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = hull("run", "-b", str(bundle), cid("umoci"), timeout=120)
    assert r.returncode == 0, r
    assert r.stdout == CONTENT_OUT

    # umoci writes a new config into hull's store; hull runs what umoci tagged.
    run(UMOCI, "config", "--image", f"{store}:{ref}", "--tag", "umoci-env",
        "--config.env", "FROM_UMOCI=yes", "--config.cmd", "sh", "--config.cmd", "-c",
        "--config.cmd", "echo $FROM_UMOCI")
    assert sandbox(store, "umoci-env") == "yes\n"
    assert store_name_digest(store, ref) == img.digest


# ---- other formats ---------------------------------------------------------

def test_docker_schema2_image_pushed_over_http_runs(registry, store, tmp_path):
    layout = tmp_path / "layout"
    img = il.write_oci_layout(layout, "d", content_layers(), docker=True, config={"Cmd": ["sh"]})
    ref = f"{registry.host}/interop/docker:1"
    il.http_push(registry.host, "interop/docker", "1", layout, "d")
    assert skopeo_inspect(ref)["Digest"] == img.digest
    assert hull_pull(store, ref) == img.digest
    assert sandbox(store, ref, "sh", "-c", CONTENT_SCRIPT) == CONTENT_OUT


def test_docker_manifest_list_pushed_over_http_selects_platform(registry, store, tmp_path):
    layout = tmp_path / "layout"
    # arm64 listed first: taking the first entry would be wrong on this host.
    idx = il.two_platform_index(layout, "m", docker=True, platforms=("linux/arm64", "linux/amd64"))
    ref = f"{registry.host}/interop/list:1"
    il.http_push(registry.host, "interop/list", "1", layout, "m")
    hull_pull(store, ref)
    assert sandbox(store, ref) == "amd64\n"
    arm = idx.children["linux/arm64"]
    amd = idx.children["linux/amd64"]
    assert not (store / "blobs/sha256" / arm.layers[1].digest[7:]).exists()

    other = tmp_path / "store-arm"
    hull_pull(other, ref, "--platform", "linux/arm64")
    assert (other / "blobs/sha256" / arm.layers[1].digest[7:]).exists()
    assert not (other / "blobs/sha256" / amd.layers[1].digest[7:]).exists()


def test_archives_between_podman_and_hull(podman, podman_built, store, tmp_path):
    # podman save -> hull image load -> run
    arch = tmp_path / "podman.tar"
    podman("save", "--format", "docker-archive", "-o", str(arch), podman_built, timeout=300)
    il.hull_run("image", "load", "-i", arch, root=store, check=True, timeout=300)
    assert sandbox(store, podman_built, "cat", "/marker") == "built-by-podman\n"

    # hull image save (both formats) -> podman load -> run
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"hull-{fmt}.tar"
        il.hull_run("image", "save", "-o", out, "--format", fmt, podman_built, root=store, check=True)
        r = podman("load", "-i", str(out), timeout=300)
        loaded = r.stdout.strip().splitlines()[-1].split(": ", 1)[-1].strip()
        r = podman.run("--rm", loaded, "sh", "-c", "cat /marker; pwd")
        assert r.stdout == "built-by-podman\n/app\n", (fmt, loaded)
        podman("rmi", "-f", loaded, check=False)


def test_imagelib_docker_archive_loads_in_hull_and_podman(podman, store, tmp_path):
    arch = tmp_path / "d.tar"
    il.write_docker_archive(arch, ["localhost/from-archive:1"], content_layers(), {"Cmd": ["sh"]})
    il.hull_run("image", "load", "-i", arch, root=store, check=True)
    assert sandbox(store, "localhost/from-archive:1", "sh", "-c", CONTENT_SCRIPT) == CONTENT_OUT
    podman("load", "-i", str(arch))
    r = podman.run("--rm", "localhost/from-archive:1", "sh", "-c", CONTENT_SCRIPT)
    assert r.stdout == CONTENT_OUT
    podman("rmi", "-f", "localhost/from-archive:1", check=False)


OWNERSHIP_SCRIPT = "stat -c '%u:%g %a %n' /bin/busybox /data/owned /home/app; id -u; cat /data/owned"


def test_image_file_ownership_as_podman_sees_it(podman, registry, store, tmp_path):
    """Owners and modes of the image's files, seen by its own User, are what podman shows."""
    layout = tmp_path / "layout"
    il.write_oci_layout(layout, "own", content_layers(), config={"User": "1000:1000"})
    ref = f"{registry.host}/interop/owners:1"
    push_oci(layout, "own", ref)
    podman("pull", "-q", "--tls-verify=false", ref)
    want = podman.run("--rm", ref, "sh", "-c", OWNERSHIP_SCRIPT).stdout
    assert want == ("0:0 755 /bin/busybox\n1000:1000 600 /data/owned\n"
                    "1000:1000 755 /home/app\n1000\napp's\n")
    podman("rmi", ref)
    hull_pull(store, ref)
    assert sandbox(store, ref, "sh", "-c", OWNERSHIP_SCRIPT) == want
