"""The registry client (src/lib/image/{registry,auth,mirrors,pull,push}.c)
against a real docker-registry (distribution 2.8) on 127.0.0.1.

Images are made offline with imagelib and pushed with skopeo; hull's side
is driven through build/tests/registrytool (the calls hull-image makes).
Every test has its own store under tmp_path; every registry is stopped by
pid. What the registry served is read from its access log, so "fetched
nothing" and "mounted instead of uploading" are checked on the wire.
"""
import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from imagelib import (File, busybox_layer, http_push, two_platform_index, write_oci_layout)
from registrylib import Registry, TokenServer, free_port, make_ca, push_oci, skopeo_inspect

SRC = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("REGISTRYTOOL", str(SRC / "build" / "tests" / "registrytool"))
REF_NAME = "org.opencontainers.image.ref.name"


def tool(*args, check=True, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("REGISTRY_AUTH_FILE", None)
    e.update(env or {})
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=e, stdin=subprocess.DEVNULL)
    # REGISTRYTOOL=build/asan/tests/registrytool: failing paths are checked too.
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    if check and r.returncode != 0:
        raise AssertionError(f"registrytool {' '.join(map(str, args))} exited {r.returncode}:\n"
                             f"{r.stderr}")
    return r


def error_of(r):
    assert r.returncode != 0, f"expected a failure:\n{r.stdout}\n{r.stderr}"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("registrytool: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def names(store):
    p = Path(store) / "index.json"
    if not p.exists():
        return {}
    idx = json.loads(p.read_text())
    return {m["annotations"][REF_NAME]: m for m in idx["manifests"]}


def blob(store, digest):
    return Path(store) / "blobs" / "sha256" / digest.split(":", 1)[1]


def layer_dir(store, diff_id):
    return Path(store) / "hull" / "layers" / diff_id.split(":", 1)[1]


def three_layers(tmp_path, compression="gzip", name="app"):
    layout = tmp_path / "layout"
    img = write_oci_layout(layout, name, [busybox_layer(), {"etc/app.conf": File("one\n")},
                                          {"srv/data": File(b"x" * 70000)}],
                           compression=compression)
    return layout, img


def assert_pulled(store, name, img):
    """Everything of img is in the store and name points at it."""
    n = names(store)
    assert n[name]["digest"] == img.digest
    for d in [img.digest, img.config_digest] + [lay.digest for lay in img.layers]:
        assert blob(store, d).is_file(), d
    for lay in img.layers:
        assert layer_dir(store, lay.diff_id).is_dir(), lay.diff_id
    assert not list((Path(store) / "hull" / "ingest").glob("*.part"))


@pytest.fixture
def registry(tmp_path):
    with Registry(tmp_path) as reg:
        yield reg


# ---- pulls -------------------------------------------------------------------

def test_pull_multi_layer_anonymous(tmp_path, registry):
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/team/app:1")
    store = tmp_path / "store"
    r = tool("pull", store, f"{registry.host}/team/app:1", "--tls-verify=false", "--summary")
    assert r.stdout.strip() == img.digest
    assert_pulled(store, f"{registry.host}/team/app:1", img)
    assert (layer_dir(store, img.layers[0].diff_id) / "bin" / "busybox").is_file()
    assert (layer_dir(store, img.layers[1].diff_id) / "etc" / "app.conf").read_text() == "one\n"
    assert f"pulled {registry.host}/team/app:1: 3 layers" in r.stderr
    # Every blob was fetched once, none twice.
    gets = [p for _, p, _ in registry.blob_gets("team/app")]
    assert sorted(gets) == sorted(set(gets)) and len(gets) == 4


def test_second_pull_fetches_nothing(tmp_path, registry):
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/app:1")
    store = tmp_path / "store"
    tool("pull", store, f"{registry.host}/app:1", "--tls-verify=false")
    before = len(registry.requests())
    r = tool("pull", store, f"{registry.host}/app:1", "--tls-verify=false", "--summary")
    assert r.stdout.strip() == img.digest
    after = registry.requests()[before:]
    # Only the manifest (the tag may have moved); no blob GET, no HEAD.
    assert [m for m, p, _ in after if "/blobs/" in p] == []
    assert [(m, p) for m, p, _ in after if "/manifests/" in p] == [("GET", "/v2/app/manifests/1")]
    assert "(4 already present)" in r.stderr or "(3 already present)" in r.stderr


def test_pull_by_digest(tmp_path, registry):
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/app:1")
    store = tmp_path / "store"
    ref = f"{registry.host}/app@{img.digest}"
    assert tool("pull", store, ref, "--tls-verify=false").stdout.strip() == img.digest
    assert names(store)[ref]["digest"] == img.digest
    assert ("GET", f"/v2/app/manifests/{img.digest}", 200) in registry.requests()
    # Pushed back under its own name: by digest, to the same repository (all there).
    tool("push", store, ref, "--tls-verify=false")
    assert ("PUT", f"/v2/app/manifests/{img.digest}", 201) in registry.requests()
    line = error_of(tool("push", store, ref, f"{registry.host}/app@sha256:{'0' * 64}",
                         "--tls-verify=false", check=False))
    assert "not sha256:000" in line


def test_pull_unknown_tag_is_a_clear_error(tmp_path, registry):
    store = tmp_path / "store"
    line = error_of(tool("pull", store, f"{registry.host}/nothing:1", "--tls-verify=false",
                         check=False))
    assert f"pull {registry.host}/nothing:1" in line and "manifest unknown" in line
    assert names(store) == {}


def test_pull_tampered_blob_commits_nothing(tmp_path, registry):
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/app:1")
    data = registry.blob_path(img.layers[2].digest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    store = tmp_path / "store"
    line = error_of(tool("pull", store, f"{registry.host}/app:1", "--tls-verify=false",
                         check=False))
    assert img.layers[2].digest in line and "digest mismatch" in line
    assert names(store) == {}
    assert not blob(store, img.layers[2].digest).exists()
    # The bad bytes are not kept (other layers cut short may keep theirs).
    assert not (store / "hull" / "ingest" / (img.layers[2].digest[7:] + ".part")).exists()
    # Repaired, the next pull completes.
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    tool("pull", store, f"{registry.host}/app:1", "--tls-verify=false")
    assert_pulled(store, f"{registry.host}/app:1", img)


def test_manifest_list_selects_platform(tmp_path, registry):
    layout = tmp_path / "layout"
    idx = two_platform_index(layout, "multi")
    push_oci(layout, "multi", f"{registry.host}/multi:1")
    for plat, store in (("linux/amd64", tmp_path / "s1"), ("linux/arm64", tmp_path / "s2")):
        args = ["--platform", plat] if plat != "linux/amd64" else []
        child = idx.children[plat]
        out = tool("pull", store, f"{registry.host}/multi:1", "--tls-verify=false", *args)
        assert out.stdout.strip() == child.digest
        assert names(store)[f"{registry.host}/multi:1"]["digest"] == child.digest
        plat_file = layer_dir(store, child.layers[1].diff_id) / "platform"
        assert plat_file.read_text() == plat.split("/")[1] + "\n"
        # The other platform's layers were not fetched.
        other = idx.children["linux/arm64" if plat == "linux/amd64" else "linux/amd64"]
        assert not blob(store, other.layers[1].digest).exists()
        assert blob(store, idx.digest).is_file()
    err = error_of(tool("pull", tmp_path / "s3", f"{registry.host}/multi:1", "--tls-verify=false",
                        "--platform", "linux/s390x", check=False))
    assert "linux/s390x" in err


def test_docker_manifest_list(tmp_path, registry):
    layout = tmp_path / "layout"
    idx = two_platform_index(layout, "multi", docker=True)
    # skopeo's oci: transport does not list Docker types: pushed over HTTP.
    http_push(registry.host, "dmulti", "1", layout, name="multi")
    store = tmp_path / "store"
    out = tool("pull", store, f"{registry.host}/dmulti:1", "--tls-verify=false", "--platform",
               "linux/arm64")
    child = idx.children["linux/arm64"]
    assert out.stdout.strip() == child.digest
    entry = names(store)[f"{registry.host}/dmulti:1"]
    assert entry["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert (layer_dir(store, child.layers[1].diff_id) / "platform").read_text() == "arm64\n"


def test_concurrent_pulls_fetch_each_blob_once(tmp_path, registry):
    layout = tmp_path / "layout"
    img = write_oci_layout(layout, "big", [busybox_layer(), {"data": File(os.urandom(6 << 20))}])
    push_oci(layout, "big", f"{registry.host}/big:1")
    store = tmp_path / "store"
    procs = [subprocess.Popen([TOOL, "pull", store, f"{registry.host}/big:1", "--tls-verify=false"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == img.digest
    assert_pulled(store, f"{registry.host}/big:1", img)
    for d in [img.config_digest] + [lay.digest for lay in img.layers]:
        assert len(registry.requests("GET", f"/blobs/{d}")) == 1, d


def test_zstd_layers(tmp_path, registry):
    layout, img = three_layers(tmp_path, compression="zstd")
    push_oci(layout, "app", f"{registry.host}/zst:1")
    store = tmp_path / "store"
    tool("pull", store, f"{registry.host}/zst:1", "--tls-verify=false")
    assert_pulled(store, f"{registry.host}/zst:1", img)
    assert all(lay.media_type.endswith("+zstd") for lay in img.layers)
    assert (layer_dir(store, img.layers[2].diff_id) / "srv" / "data").stat().st_size == 70000


# ---- pushes ------------------------------------------------------------------

def test_push_then_pull_back_and_mount(tmp_path):
    layout, img = three_layers(tmp_path)
    store = tmp_path / "store"
    with Registry(tmp_path, name="src") as src, Registry(tmp_path, name="dst") as dst:
        push_oci(layout, "app", f"{src.host}/app:1")
        tool("pull", store, f"{src.host}/app:1", "--tls-verify=false")
        out = tool("push", store, f"{src.host}/app:1", f"{dst.host}/one/app:2",
                   "--tls-verify=false", "--summary")
        assert out.stdout.strip() == img.digest
        assert "pushed" in out.stderr
        assert len(dst.uploads()) == 4  # config + 3 layers, each uploaded once
        info = skopeo_inspect(f"{dst.host}/one/app:2")
        assert info["Digest"] == img.digest
        assert [lay["Digest"] if isinstance(lay, dict) else lay for lay in info["Layers"]] == \
            [lay.digest for lay in img.layers]
        # Pull it back into a fresh store.
        store2 = tmp_path / "store2"
        tool("pull", store2, f"{dst.host}/one/app:2", "--tls-verify=false")
        assert_pulled(store2, f"{dst.host}/one/app:2", img)
        # A second repository of the same registry: mounted, not uploaded.
        uploads = len(dst.uploads())
        out = tool("push", store, f"{src.host}/app:1", f"{dst.host}/two/app:3",
                   "--tls-verify=false", "--summary")
        assert len(dst.uploads()) == uploads
        mounts = dst.mounts()
        assert len(mounts) == 4 and all(s == 201 for _, _, s in mounts)
        assert all("from=one/app" in p for _, p, _ in mounts)
        assert "4 mounted" in out.stderr or "3 mounted" in out.stderr
        assert skopeo_inspect(f"{dst.host}/two/app:3")["Digest"] == img.digest
        # Pushing again: every blob is there (HEAD 200), only the manifest is sent.
        before = len(dst.requests())
        tool("push", store, f"{src.host}/app:1", f"{dst.host}/two/app:3", "--tls-verify=false")
        again = dst.requests()[before:]
        assert not [r for r in again if r[0] in ("POST", "PATCH") or "/blobs/uploads" in r[1]]


# ---- TLS ---------------------------------------------------------------------

def test_tls_verified_with_cert_dir_refused_without(tmp_path):
    layout, img = three_layers(tmp_path)
    with Registry(tmp_path, tls=True) as reg:
        push_oci(layout, "app", f"{reg.host}/app:1", cert_dir=reg.cert_dir)
        ref = f"{reg.host}/app:1"
        line = error_of(tool("pull", tmp_path / "s0", ref, check=False))
        assert "certificate" in line and ref in line
        assert names(tmp_path / "s0") == {}
        tool("pull", tmp_path / "s1", ref, "--cert-dir", reg.cert_dir)
        assert_pulled(tmp_path / "s1", ref, img)
        tool("pull", tmp_path / "s2", ref, "--tls-verify=false")
        assert_pulled(tmp_path / "s2", ref, img)
        # Pushes verify the same way.
        line = error_of(tool("push", tmp_path / "s1", ref, f"{reg.host}/copy:1", check=False))
        assert "certificate" in line
        tool("push", tmp_path / "s1", ref, f"{reg.host}/copy:1", "--cert-dir", reg.cert_dir)
        assert skopeo_inspect(f"{reg.host}/copy:1", cert_dir=reg.cert_dir)["Digest"] == img.digest
        # --cert-dir with an unrelated CA still refuses.
        other = tmp_path / "other-ca"
        other.mkdir()
        other_ca, _, _ = make_ca(tmp_path / "other-tls")
        (other / "x.crt").write_bytes(other_ca.read_bytes())
        line = error_of(tool("pull", tmp_path / "s3", ref, "--cert-dir", other, check=False))
        assert "certificate" in line


def test_plain_http_needs_tls_verify_false(tmp_path, registry):
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/app:1")
    line = error_of(tool("pull", tmp_path / "s", f"{registry.host}/app:1", check=False))
    assert f"pull {registry.host}/app:1" in line
    assert names(tmp_path / "s") == {}


# ---- Basic auth, login, logout ------------------------------------------------

def test_basic_auth_creds_login_logout(tmp_path):
    layout, img = three_layers(tmp_path)
    with Registry(tmp_path, htpasswd={"alice": "s3cret"}) as reg:
        reg.push_oci(layout, "app", "app:1")
        ref = f"{reg.host}/app:1"
        authfile = tmp_path / "auth" / "auth.json"
        env = {"REGISTRY_AUTH_FILE": str(authfile), "HOME": str(tmp_path / "home")}
        line = error_of(tool("pull", tmp_path / "s0", ref, "--tls-verify=false", check=False,
                             env=env))
        assert "authentication required" in line
        line = error_of(tool("pull", tmp_path / "s0", ref, "--tls-verify=false", "--creds",
                             "alice:wrong", check=False, env=env))
        assert "authentication required" in line
        assert names(tmp_path / "s0") == {}
        tool("pull", tmp_path / "s1", ref, "--tls-verify=false", "--creds", "alice:s3cret")
        assert_pulled(tmp_path / "s1", ref, img)

        # login refuses a wrong password and writes nothing.
        line = error_of(tool("login", reg.host, "alice", "nope", "--tls-verify=false",
                             "--authfile", authfile, check=False))
        assert f"login {reg.host}" in line
        assert not authfile.exists()
        tool("login", reg.host, "alice", "s3cret", "--tls-verify=false", "--authfile", authfile)
        assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
        auths = json.loads(authfile.read_text())["auths"]
        assert base64.b64decode(auths[reg.host]["auth"]) == b"alice:s3cret"
        # The auth file is found through $REGISTRY_AUTH_FILE.
        tool("pull", tmp_path / "s2", ref, "--tls-verify=false", env=env)
        assert_pulled(tmp_path / "s2", ref, img)
        # Push with the stored credentials.
        tool("push", tmp_path / "s2", ref, f"{reg.host}/copy:1", "--tls-verify=false", env=env)
        tool("logout", reg.host, "--authfile", authfile)
        assert reg.host not in json.loads(authfile.read_text())["auths"]
        line = error_of(tool("pull", tmp_path / "s3", ref, "--tls-verify=false", check=False,
                             env=env))
        assert "authentication required" in line
        line = error_of(tool("logout", reg.host, "--authfile", authfile, check=False))
        assert "not logged in" in line


def test_docker_config_json_is_read(tmp_path):
    layout, img = three_layers(tmp_path)
    with Registry(tmp_path, htpasswd={"bob": "pw"}) as reg:
        reg.push_oci(layout, "app", "app:1")
        home = tmp_path / "home"
        (home / ".docker").mkdir(parents=True)
        (home / ".docker" / "config.json").write_text(json.dumps(
            {"auths": {reg.host: {"auth": base64.b64encode(b"bob:pw").decode()}}}))
        env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
        tool("pull", tmp_path / "s", f"{reg.host}/app:1", "--tls-verify=false", env=env)
        assert_pulled(tmp_path / "s", f"{reg.host}/app:1", img)


# ---- Bearer tokens -------------------------------------------------------------

def test_bearer_token_flow(tmp_path):
    layout, img = three_layers(tmp_path)
    with TokenServer(tmp_path, users={"carol": "pw"}) as ts:
        with Registry(tmp_path, token=ts.registry_config()) as reg:
            push_oci(layout, "app", f"{reg.host}/team/app:1", creds="carol:pw")
            ref = f"{reg.host}/team/app:1"
            ts.issued.clear()
            tool("pull", tmp_path / "s1", ref, "--tls-verify=false")
            assert_pulled(tmp_path / "s1", ref, img)
            # One anonymous token for the pull scope, reused by every blob.
            assert ts.issued == [(None, ["repository:team/app:pull"])]
            # Anonymous push is refused by the registry (token without push).
            line = error_of(tool("push", tmp_path / "s1", ref, f"{reg.host}/team/copy:1",
                                 "--tls-verify=false", check=False))
            assert "authentication required" in line or "denied" in line
            # With credentials: push+pull on the destination, pull on the mount source.
            ts.issued.clear()
            tool("push", tmp_path / "s1", ref, f"{reg.host}/team/copy:1", "--tls-verify=false",
                 "--creds", "carol:pw")
            scopes = [s for _, ss in ts.issued for s in ss]
            assert "repository:team/copy:pull,push" in scopes
            assert "repository:team/app:pull" in scopes
            assert all(u == "carol" for u, _ in ts.issued)
            # (the refused anonymous attempt's mounts were answered 401)
            assert len([m for m in reg.mounts() if m[2] == 201]) == 4
            assert not [u for u in reg.uploads() if "/team/copy/" in u[1]]
            assert skopeo_inspect(f"{reg.host}/team/copy:1", creds="carol:pw")["Digest"] == \
                img.digest
            # login checks the credentials with the token server, then the
            # stored ones serve a push.
            authfile = tmp_path / "auth.json"
            line = error_of(tool("login", reg.host, "carol", "bad", "--tls-verify=false",
                                 "--authfile", authfile, check=False))
            assert "authentication required" in line and not authfile.exists()
            tool("login", reg.host, "carol", "pw", "--tls-verify=false", "--authfile", authfile)
            tool("push", tmp_path / "s1", ref, f"{reg.host}/team/third:1", "--tls-verify=false",
                 "--authfile", authfile)
            assert skopeo_inspect(f"{reg.host}/team/third:1", creds="carol:pw")["Digest"] == \
                img.digest
            # Wrong credentials: the token server's refusal is the error.
            line = error_of(tool("pull", tmp_path / "s2", ref, "--tls-verify=false", "--creds",
                                 "carol:bad", check=False))
            assert "token" in line and "authentication required" in line


# ---- mirrors -------------------------------------------------------------------

def write_conf(path, location, mirrors):
    lines = ["# test registries.conf", 'unqualified-search-registries = ["example.com"]', "",
             "[[registry]]", f'prefix = "{location}"', f'location = "{location}"',
             "insecure = true"]
    for m in mirrors:
        lines += ["", "[[registry.mirror]]", f'location = "{m}"  # a mirror', "insecure = true"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mirror_used_first_dead_mirror_falls_back(tmp_path):
    layout, img = three_layers(tmp_path)
    with Registry(tmp_path, name="main") as main, Registry(tmp_path, name="mirror") as mirror:
        push_oci(layout, "app", f"{main.host}/lib/app:1")
        push_oci(layout, "app", f"{mirror.host}/lib/app:1")
        ref = f"{main.host}/lib/app:1"
        conf = write_conf(tmp_path / "r1.conf", main.host, [mirror.host])
        before = len(main.requests())
        tool("pull", tmp_path / "s1", ref, "--registries-conf", conf)  # insecure from the conf
        assert_pulled(tmp_path / "s1", ref, img)
        assert main.requests()[before:] == []
        assert len(mirror.blob_gets("lib/app")) == 4

        # A dead mirror first: the location serves.
        dead = f"127.0.0.1:{free_port()}"
        conf = write_conf(tmp_path / "r2.conf", main.host, [dead])
        tool("pull", tmp_path / "s2", ref, "--registries-conf", conf)
        assert_pulled(tmp_path / "s2", ref, img)
        assert len(main.blob_gets("lib/app")) == 4

        # Through the environment too; a mirror without the image falls back.
        with Registry(tmp_path, name="empty") as empty:
            conf = write_conf(tmp_path / "r3.conf", main.host, [empty.host])
            tool("pull", tmp_path / "s3", ref, env={"HULL_REGISTRIES_CONF": str(conf)})
            assert_pulled(tmp_path / "s3", ref, img)
            assert empty.requests("GET", "/v2/lib/app/manifests/1")

    # Nothing answers: the error names every endpoint tried.
    conf = write_conf(tmp_path / "r4.conf", main.host, [dead])
    line = error_of(tool("pull", tmp_path / "s4", ref, "--registries-conf", conf,
                         "--timeout", "5", check=False))
    assert dead in line and main.host in line


# ---- redirects ---------------------------------------------------------------

class _Servers:
    """A minimal registry (Basic auth) serving a layout's manifest, whose blob
    GETs redirect to a second server (another port: another origin) that
    records the headers it was sent. Both run in threads of this process."""

    def __init__(self, layout, name, user, password):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        idx = json.loads((Path(layout) / "index.json").read_text())
        mdesc = next(m for m in idx["manifests"] if m["annotations"][REF_NAME] == name)
        blobs = Path(layout) / "blobs" / "sha256"
        good = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen = []      # (path, Authorization) at the blob host
        self.auth_seen = []  # Authorization at the registry
        srv = self

        class BlobHost(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.seen.append((self.path, self.headers.get("Authorization")))
                data = (blobs / self.path.rsplit("/", 1)[1]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Reg(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                auth = self.headers.get("Authorization")
                srv.auth_seen.append(auth)
                if auth != good:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if "/manifests/" in self.path:
                    data = (blobs / mdesc["digest"][7:]).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", mdesc["mediaType"])
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if "/blobs/" in self.path:
                    hexd = self.path.rsplit(":", 1)[1]
                    self.send_response(307)
                    self.send_header("Location", f"http://127.0.0.1:{srv.blob_port}/data/{hexd}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.blob_server = ThreadingHTTPServer(("127.0.0.1", 0), BlobHost)
        self.blob_port = self.blob_server.server_address[1]
        self.reg_server = ThreadingHTTPServer(("127.0.0.1", 0), Reg)
        self.host = f"127.0.0.1:{self.reg_server.server_address[1]}"
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.blob_server, self.reg_server)]
        for t in self.threads:
            t.start()

    def close(self):
        for s in (self.blob_server, self.reg_server):
            s.shutdown()
            s.server_close()
        for t in self.threads:
            t.join()


def test_redirect_never_carries_credentials(tmp_path):
    layout, img = three_layers(tmp_path)
    srv = _Servers(layout, "app", "dora", "pw")
    try:
        store = tmp_path / "store"
        tool("pull", store, f"{srv.host}/app:1", "--tls-verify=false", "--creds", "dora:pw")
        assert_pulled(store, f"{srv.host}/app:1", img)
        # The registry got the credentials; the blob host got every blob, never them.
        assert any(a and a.startswith("Basic ") for a in srv.auth_seen)
        assert len(srv.seen) == 4
        assert all(auth is None for _, auth in srv.seen), srv.seen
    finally:
        srv.close()


# ---- through hull image (hull-image) --------------------------------------------

HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))


def hull_image(*args, store, check=True, input=None, env=None):
    e = dict(os.environ, HULL_IMAGE_ROOT=str(store))
    e.pop("REGISTRY_AUTH_FILE", None)
    e.update(env or {})
    r = subprocess.run([HULL, "image", *map(str, args)], capture_output=True, text=True,
                       timeout=300, env=e, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"hull image {' '.join(map(str, args))}: {r.returncode}\n{r.stderr}")
    return r


def test_hull_image_pull_push_login_logout(tmp_path):
    layout, img = three_layers(tmp_path)
    store = tmp_path / "store"
    with Registry(tmp_path, htpasswd={"erin": "pw"}) as reg:
        reg.push_oci(layout, "app", "app:1")
        ref = f"{reg.host}/app:1"
        authfile = tmp_path / "a" / "auth.json"
        r = hull_image("pull", "--tls-verify=false", ref, store=store, check=False)
        assert r.returncode != 0
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hull: ")]
        assert len(lines) == 1 and "authentication required" in lines[0], r.stderr
        r = hull_image("login", "--tls-verify=false", "--authfile", authfile, "-u", "erin",
                       "--password-stdin", reg.host, store=store, input="pw\n")
        assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
        r = hull_image("pull", "--tls-verify=false", "--authfile", authfile, ref, store=store)
        assert r.stdout.split()[-1] == img.digest
        assert "3 layers" in r.stderr  # the one summary line (stderr is not a tty)
        assert_pulled(store, ref, img)
        r = hull_image("push", "--tls-verify=false", "--authfile", authfile, ref,
                       f"{reg.host}/copy:2", store=store)
        assert r.stdout.split()[-1] == img.digest
        assert skopeo_inspect(f"{reg.host}/copy:2", creds="erin:pw")["Digest"] == img.digest
        assert len([m for m in reg.mounts() if m[2] == 201]) == 4
        q = hull_image("pull", "-q", "--tls-verify=false", "--authfile", authfile, ref,
                       store=store)
        assert q.stderr == "" and q.stdout.strip() == img.digest
        hull_image("logout", "--authfile", authfile, reg.host, store=store)
        assert reg.host not in json.loads(authfile.read_text()).get("auths", {})


def test_prune_removes_the_sources_of_removed_images(tmp_path, registry):
    """A pull notes where each blob came from (hull/sources/<hex>, for
    cross-repository mounts). prune removes the notes of blobs it removed and
    keeps those of blobs still in use (the shared base layer here)."""
    layout, one = three_layers(tmp_path)
    other = write_oci_layout(tmp_path / "other", "other",
                             [busybox_layer(), {"etc/other": File("two\n")}])
    push_oci(layout, "app", f"{registry.host}/team/one:1")
    push_oci(tmp_path / "other", "other", f"{registry.host}/team/other:1")
    store = tmp_path / "store"
    for ref in ("team/one:1", "team/other:1"):
        hull_image("pull", "--tls-verify=false", f"{registry.host}/{ref}", store=store)
    sources = store / "hull" / "sources"

    def noted():
        return {"sha256:" + p.name for p in sources.iterdir()}

    def blobs(img):
        return {img.digest, img.config_digest} | {lay.digest for lay in img.layers}

    assert noted() == blobs(one) | blobs(other)
    assert (sources / one.layers[1].digest[7:]).read_text() == f"{registry.host}/team/one\n"
    hull_image("remove", f"{registry.host}/team/one:1", store=store)
    hull_image("prune", store=store)
    assert noted() == blobs(other)
    hull_image("remove", f"{registry.host}/team/other:1", store=store)
    hull_image("prune", store=store)
    assert noted() == set()
    assert not list((store / "blobs" / "sha256").iterdir())


def test_progress_bars_on_a_terminal(tmp_path, registry):
    import pty
    layout, img = three_layers(tmp_path)
    push_oci(layout, "app", f"{registry.host}/app:1")
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([TOOL, "pull", tmp_path / "store", f"{registry.host}/app:1",
                              "--tls-verify=false", "--summary"], stdout=subprocess.PIPE,
                             stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=300) == 0
        assert p.stdout.read().decode().strip() == img.digest
        p.stdout.close()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode(errors="replace")
    # One row per layer, redrawn in place with a bar, then the summary.
    for lay in img.layers:
        assert lay.digest[7:19] in text
    assert "\x1b[K" in text and "\x1b[" in text and "[====" in text
    assert "3 layers" in text.splitlines()[-1]


def test_same_layer_twice_in_one_image(tmp_path, registry):
    # Two identical layers share one blob: fetched once (a second writer of
    # it in the same pull would wait on the first one's lock forever).
    layout = tmp_path / "layout"
    same = {"etc/same": File("same\n")}
    img = write_oci_layout(layout, "dup", [busybox_layer(), same, {"x": File("x")}, same])
    assert img.layers[1].digest == img.layers[3].digest
    push_oci(layout, "dup", f"{registry.host}/dup:1")
    store = tmp_path / "store"
    out = tool("pull", store, f"{registry.host}/dup:1", "--tls-verify=false", timeout=120)
    assert out.stdout.strip() == img.digest
    assert_pulled(store, f"{registry.host}/dup:1", img)
    assert len(registry.requests("GET", f"/blobs/{img.layers[1].digest}")) == 1


def test_partial_download_is_resumed_or_redone(tmp_path, registry):
    layout = tmp_path / "layout"
    big = os.urandom(3 << 20)
    img = write_oci_layout(layout, "big", [{"data": File(big)}], compression=None)
    push_oci(layout, "big", f"{registry.host}/big:1")
    lay = img.layers[0]
    blob_bytes = (layout / "blobs" / "sha256" / lay.digest[7:]).read_bytes()
    store = tmp_path / "store"
    tool("pull", store, f"{registry.host}/nothing-yet:1", "--tls-verify=false", check=False)
    ingest = store / "hull" / "ingest"
    ingest.mkdir(parents=True, exist_ok=True)
    # What a killed pull leaves: the first half. The next pull asks for the rest.
    (ingest / (lay.digest[7:] + ".part")).write_bytes(blob_bytes[:len(blob_bytes) // 2])
    tool("pull", store, f"{registry.host}/big:1", "--tls-verify=false")
    assert_pulled(store, f"{registry.host}/big:1", img)
    assert registry.requests("GET", f"/blobs/{lay.digest}") == \
        [("GET", f"/v2/big/blobs/{lay.digest}", 206)]
    # A .part with other bytes: dropped, fetched again whole; the pull works.
    store2 = tmp_path / "store2"
    tool("pull", store2, f"{registry.host}/nothing-yet:1", "--tls-verify=false", check=False)
    (store2 / "hull" / "ingest").mkdir(parents=True, exist_ok=True)
    (store2 / "hull" / "ingest" / (lay.digest[7:] + ".part")).write_bytes(b"\0" * 1000)
    tool("pull", store2, f"{registry.host}/big:1", "--tls-verify=false")
    assert_pulled(store2, f"{registry.host}/big:1", img)
    assert registry.requests("GET", f"/blobs/{lay.digest}")[1:] == \
        [("GET", f"/v2/big/blobs/{lay.digest}", 206), ("GET", f"/v2/big/blobs/{lay.digest}", 200)]
    # A .part holding every byte (killed between the last byte and the
    # commit): committed without a request.
    store3 = tmp_path / "store3"
    tool("pull", store3, f"{registry.host}/nothing-yet:1", "--tls-verify=false", check=False)
    (store3 / "hull" / "ingest").mkdir(parents=True, exist_ok=True)
    (store3 / "hull" / "ingest" / (lay.digest[7:] + ".part")).write_bytes(blob_bytes)
    before = len(registry.requests("GET", f"/blobs/{lay.digest}"))
    tool("pull", store3, f"{registry.host}/big:1", "--tls-verify=false")
    assert_pulled(store3, f"{registry.host}/big:1", img)
    assert len(registry.requests("GET", f"/blobs/{lay.digest}")) == before
