"""hulld's /v1/images against a real docker-registry, and runs and sandboxes
started from an image of its store.

Images are made offline (imagelib: busybox-static plus a marker file only
the image has), pushed with skopeo to a docker-registry on 127.0.0.1
(registrylib), and pulled by hulld into its own store under tmp_path
(--image-root). Tokens come from `hull token create` (hulldlib)."""
import json
import os
import signal
import socket
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest

import imagelib as il
from hulldlib import HULL, HULLD, Hulld, alive, children, wait_until
from registrylib import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(HULLD),
                                reason="needs root and a built hulld")

MARKER = "hull-daemon-images-marker-7f3a\n"
GENEROUS = {"cpu_time": "60s", "wall_time": "120s"}


def q(ref):
    """A reference as one URL path segment."""
    return urllib.parse.quote(ref, safe="")


def make_image(layout, name, marker, extra_file):
    """busybox + /marker (the same in every image) + one file of its own,
    so each image has a layer no other has."""
    return il.write_oci_layout(layout, name, [
        il.busybox_layer(extra={"marker": il.File(marker.encode())}),
        {extra_file: il.File(f"only in {name}\n".encode())},
    ], config={"Cmd": ["sh"], "Labels": {"test": name}})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hulld-images")
    layout = tmp / "oci"
    imgs = {
        "app:1": make_image(layout, "app1", MARKER, "one"),
        "app:2": make_image(layout, "app2", MARKER, "two"),
        "app:3": make_image(layout, "app3", MARKER, "three"),
    }
    reg = Registry(tmp).start()
    d = None
    try:
        for tag, name in (("app:1", "app1"), ("app:2", "app2"), ("app:3", "app3")):
            reg.push_oci(layout, name, tag)
        root = tmp / "images"
        d = Hulld(tmp, "--image-root", str(root), "--max-runs", "2", "--tenant-sandboxes", "4")
        Path(d.state).mkdir(parents=True)
        d.tokens = {"admin": d.token("admin", "ops"), "user": d.token("user", "acme"),
                    "reader": d.token("reader", "acme")}
        d.start()
        e = type("Env", (), {})()
        e.d, e.reg, e.root, e.imgs, e.tmp = d, reg, root, imgs, tmp
        e.name = lambda tag: f"{reg.host}/{tag}"
        yield e
    finally:
        rc = d.stop() if d and d.proc else 0
        reg.stop()
        procs, entries, cgroups = d.leaks() if d else ([], [], [])
        assert rc == 0, d.log.read_text()
        assert not procs and not entries and not cgroups, (procs, entries, cgroups)


def req(e, method, path, body=None, who="admin"):
    return e.d.request(method, path, body, e.d.tokens[who] if who else None)


def pull(e, tag, who="admin", **extra):
    return req(e, "POST", "/v1/images", dict({"ref": e.name(tag), "tls_verify": False}, **extra),
               who)


def names_on_disk(root):
    p = Path(root) / "index.json"
    if not p.exists():
        return set()
    return {m.get("annotations", {}).get(il.REF_NAME)
            for m in json.loads(p.read_text())["manifests"]}


def error(r, status, code):
    assert r.status == status, r
    assert r.headers.get("Content-Type") == "application/json", r.headers
    err = r.json["error"]
    assert err["code"] == code and err["message"], r
    return err


def audit(e):
    return req(e, "GET", "/v1/audit?limit=10000").json["entries"]


# ---- pulls ----------------------------------------------------------------------


@pytest.mark.asan
def test_admin_pull_lists_inspects_and_lands_in_the_store(e_pulled):
    e, img, r = e_pulled
    name = e.name("app:1")
    assert r.status == 201, r
    doc = r.json
    assert doc["name"] == name and doc["digest"] == img.digest
    assert doc["platform"] == "linux/amd64" and doc["config"]["cmd"] == ["sh"]
    assert doc["config"]["labels"] == {"test": "app1"}
    assert [lay["digest"] for lay in doc["layers"]] == [lay.digest for lay in img.layers]
    size = len(img.config) + sum(lay.size for lay in img.layers)
    assert doc["size"] == size and doc["in_use"] is False
    # Listed for any token, readers too.
    for who in ("user", "reader", "admin"):
        r = req(e, "GET", "/v1/images", who=who)
        assert r.status == 200, r
        listed = {i["name"]: i for i in r.json["images"]}
        assert listed[name]["digest"] == img.digest and listed[name]["size"] == size
    # Inspect by URL-encoded name, by the name as it is, by digest, by a prefix.
    for ref in (q(name), name, q(img.digest), img.digest[7:19]):
        r = req(e, "GET", f"/v1/images/{ref}", who="user")
        assert r.status == 200 and r.json["digest"] == img.digest, (ref, r)
    # On disk: the store hulld was told, every blob there.
    assert name in names_on_disk(e.root)
    for digest in [img.digest, img.config_digest] + [lay.digest for lay in img.layers]:
        assert (e.root / "blobs" / "sha256" / digest[7:]).is_file(), digest
    # The pull is in the audit log, with the admin's token.
    entries = [a for a in audit(e) if a["method"] == "POST" and a["path"] == "/v1/images"]
    assert any(a["status"] == 201 and a["role"] == "admin" and a["target"] == name
               for a in entries), entries


@pytest.fixture(scope="module")
def e_pulled(env):
    return env, env.imgs["app:1"], pull(env, "app:1")


@pytest.mark.asan
def test_non_admin_tokens_cannot_pull_or_remove(e_pulled):
    e, img, _ = e_pulled
    before = il.store_snapshot(e.root)
    manifest_gets = len(e.reg.requests("GET", r"/manifests/"))
    for who in ("user", "reader"):
        err = error(pull(e, "app:2", who=who), 403, "forbidden")
        assert "admin" in err["message"] or "reader" in err["message"], err
        error(req(e, "DELETE", f"/v1/images/{q(e.name('app:1'))}", who=who), 403, "forbidden")
        error(req(e, "DELETE", f"/v1/images/{q(e.name('app:1'))}?force=true", who=who), 403,
              "forbidden")
    # Nothing changed: the store, and the registry was never asked.
    assert il.store_snapshot(e.root) == before
    assert len(e.reg.requests("GET", r"/manifests/")) == manifest_gets
    assert e.name("app:1") in names_on_disk(e.root)
    refused = [a for a in audit(e) if a["path"].startswith("/v1/images") and a["status"] == 403]
    assert len(refused) >= 6 and {a["role"] for a in refused} == {"user", "reader"}


def test_platform_picks_from_an_index(tmp_path, env):
    e = env
    layout = tmp_path / "oci"
    idx = il.two_platform_index(layout, "multi")
    e.reg.push_oci(layout, "multi", "multi:1")
    arm = idx.children["linux/arm64"]
    r = pull(e, "multi:1", platform="linux/arm64")
    assert r.status == 201, r
    assert r.json["digest"] == arm.digest and r.json["platform"] == "linux/arm64", r.json
    assert r.json["config"]["labels"] == {"arch": "arm64"}
    err = error(pull(e, "multi:1", platform="linux/s390x"), 404, "not_found")
    assert "linux/amd64" in err["message"] and "linux/arm64" in err["message"], err
    assert error(pull(e, "multi:1", platform="s390x"), 400, "invalid_request")["field"] == \
        "platform"
    assert req(e, "DELETE", f"/v1/images/{q(e.name('multi:1'))}").status == 200


def test_openapi_describes_images(env):
    doc = env.d.request("GET", "/v1/openapi.json").json
    assert set(doc["paths"]["/v1/images"]) == {"get", "post"}
    assert set(doc["paths"]["/v1/images/{ref}"]) >= {"get", "delete"}
    assert "image" in doc["components"]["schemas"]["RunRequest"]["properties"]
    assert "image" in doc["components"]["schemas"]["SandboxRequest"]["properties"]


def test_pull_request_is_checked_field_by_field(env):
    e = env
    before = il.store_snapshot(e.root)
    assert error(req(e, "POST", "/v1/images", {}), 400, "invalid_request")["field"] == "ref"
    assert error(req(e, "POST", "/v1/images", {"ref": "UPPER/Case"}), 400,
                 "invalid_request")["field"] == "ref"
    assert error(req(e, "POST", "/v1/images", {"ref": e.name("app:1"), "creds": "u:p"}), 400,
                 "invalid_request")["field"] == "creds"
    assert error(req(e, "POST", "/v1/images", {"ref": e.name("app:1"), "tls_verify": "no"}), 400,
                 "invalid_request")["field"] == "tls_verify"
    error(req(e, "POST", "/v1/images", "not json"), 400, "invalid_json")
    assert il.store_snapshot(e.root) == before


def test_unknown_repository_is_a_404_and_leaves_no_image(e_pulled):
    e = e_pulled[0]
    before = names_on_disk(e.root)
    err = error(pull(e, "nosuch/repo:1"), 404, "not_found")
    assert "nosuch/repo" in err["message"], err
    err = error(pull(e, "app:no-such-tag"), 404, "not_found")
    assert names_on_disk(e.root) == before
    listed = {i["name"] for i in req(e, "GET", "/v1/images").json["images"]}
    assert e.name("nosuch/repo:1") not in listed and e.name("app:no-such-tag") not in listed


def test_registry_down_is_a_502_and_leaves_no_image(env):
    e = env
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = il.store_snapshot(e.root)
    r = req(e, "POST", "/v1/images", {"ref": f"127.0.0.1:{port}/app:1", "tls_verify": False})
    err = error(r, 502, "registry_error")
    assert f"127.0.0.1:{port}" in err["message"], err
    assert il.store_snapshot(e.root) == before
    # hulld is fine afterwards.
    assert req(e, "GET", "/healthz", who=None).status == 200


def test_tampered_layer_is_refused_and_leaves_no_image(tmp_path, env):
    """A registry answering a layer whose bytes do not match its digest:
    the pull fails, nothing is named, nothing unverified kept as a blob."""
    e = env
    layout = tmp_path / "oci"
    img = make_image(layout, "bad", MARKER, "tampered")
    e.reg.push_oci(layout, "bad", "bad:1")
    blob = e.reg.blob_path(img.layers[1].digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    r = pull(e, "bad:1")
    assert r.status == 502, r
    assert e.name("bad:1") not in names_on_disk(e.root)
    assert not (e.root / "blobs" / "sha256" / img.layers[1].digest[7:]).exists()
    assert e.name("bad:1") not in {i["name"] for i in req(e, "GET", "/v1/images").json["images"]}


# ---- runs and sandboxes from an image ------------------------------------------


@pytest.mark.asan
def test_run_with_image_sees_the_images_files(e_pulled):
    e, img, _ = e_pulled
    assert not Path("/marker").exists()
    for ref in (e.name("app:1"), img.digest):
        r = req(e, "POST", "/v1/runs", {"cmd": ["cat", "/marker", "/one"], "image": ref,
                                        "limits": GENEROUS}, who="user")
        assert r.status == 200, r
        assert r.json["verdict"] == "ok", r.json
        assert r.json["stdout"] == MARKER + "only in app1\n"
        # Pinned when accepted: what the name pointed at then.
        assert r.json["image"] == {"name": e.name("app:1"), "digest": img.digest}, r.json
    # Without an image the same command sees the host: no /marker.
    r = req(e, "POST", "/v1/runs", {"cmd": ["cat", "/marker"], "limits": GENEROUS}, who="user")
    assert r.status == 200 and r.json["verdict"] == "exit_nonzero", r


def test_unknown_image_is_404_and_never_pulled(env):
    e = env
    gets = len(e.reg.requests("GET", r"/manifests/"))
    name = e.name("app:3")  # in the registry, not in hulld's store
    for path, body in (("/v1/runs", {"cmd": ["true"], "image": name}),
                       ("/v1/sandboxes", {"image": name})):
        err = error(req(e, "POST", path, body, who="user"), 404, "not_found")
        assert err["field"] == "image" and "POST /v1/images" in err["message"], err
    assert len(e.reg.requests("GET", r"/manifests/")) == gets
    assert name not in names_on_disk(e.root)
    # A tenant may not point hulld at another store, or queue an image run.
    err = error(req(e, "POST", "/v1/runs", {"cmd": ["true"], "image_root": "/"}, who="user"), 400,
                "invalid_request")
    assert err["field"] == "image_root"
    err = error(req(e, "POST", "/v1/runs", {"cmd": ["true"], "image": name, "queue": True},
                    who="user"), 400, "invalid_request")
    assert err["field"] == "image"
    err = error(req(e, "POST", "/v1/runs", {"cmd": ["true"], "image": 5}, who="user"), 400,
                "invalid_request")
    assert err["field"] == "image"


def test_remove_in_use_is_409_then_200_and_prune_frees_its_blobs(env):
    e = env
    img = e.imgs["app:2"]
    name = e.name("app:2")
    assert pull(e, "app:2").status == 201
    own = e.root / "blobs" / "sha256" / img.layers[1].digest[7:]
    unpacked = e.root / "hull" / "layers" / img.layers[1].diff_id[7:]
    assert own.is_file()
    r = req(e, "POST", "/v1/sandboxes", {"image": name, "lifetime": "5m"}, who="user")
    assert r.status == 201, r
    assert r.json["image"] == f"{e.reg.host}/app@{img.digest}", r.json
    sid = r.json["id"]
    try:
        r = req(e, "POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["cat", "/two"]}, who="user")
        assert r.status == 200 and r.json["stdout"] == "only in app2\n", r
        assert unpacked.is_dir()
        assert req(e, "GET", f"/v1/images/{q(name)}", who="user").json["in_use"] is True
        err = error(req(e, "DELETE", f"/v1/images/{q(name)}"), 409, "conflict")
        assert "in use" in err["message"], err
        assert name in names_on_disk(e.root)
    finally:
        assert req(e, "DELETE", f"/v1/sandboxes/{sid}", who="user").status == 200
    r = req(e, "DELETE", f"/v1/images/{q(name)}")
    assert r.status == 200 and r.json == {"name": name, "digest": img.digest, "removed": True}
    assert name not in names_on_disk(e.root)
    error(req(e, "GET", f"/v1/images/{q(name)}"), 404, "not_found")
    error(req(e, "DELETE", f"/v1/images/{q(name)}"), 404, "not_found")
    # The name is gone; its blobs go when the store is pruned.
    assert own.is_file()
    r = subprocess.run([HULL, "image", "prune", "--image-root", str(e.root)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not own.exists() and not unpacked.exists()
    # app:1's blobs are still named, and stay.
    assert (e.root / "blobs" / "sha256" / e.imgs["app:1"].digest[7:]).is_file()
    assert any(a["method"] == "DELETE" and a["status"] == 409 for a in audit(e))


def test_forced_remove_leaves_a_live_sandbox_running(env):
    e = env
    name = e.name("app:3")
    assert pull(e, "app:3").status == 201
    r = req(e, "POST", "/v1/sandboxes", {"image": name, "lifetime": "5m"}, who="user")
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        error(req(e, "DELETE", f"/v1/images/{q(name)}?force=false"), 409, "conflict")
        r = req(e, "DELETE", f"/v1/images/{q(name)}?force=true")
        assert r.status == 200 and r.json["removed"] is True, r
        assert name not in names_on_disk(e.root)
        # What runs keeps running, from the layers it has mounted.
        r = req(e, "POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["cat", "/three"]}, who="user")
        assert r.status == 200 and r.json["stdout"] == "only in app3\n", r
        # A new run cannot start from it any more.
        err = error(req(e, "POST", "/v1/runs", {"cmd": ["true"], "image": name}, who="user"), 404,
                    "not_found")
        assert err["field"] == "image"
    finally:
        assert req(e, "DELETE", f"/v1/sandboxes/{sid}", who="user").status == 200


def _queue_behind_sleepers(e, body):
    """Both run slots (--max-runs 2) busy with sleepers, then body posted
    async: it is accepted and waits, queued. The sleepers' ids and its."""
    sleepers = []
    for _ in range(2):
        r = req(e, "POST", "/v1/runs", {"cmd": ["sleep", "600"], "async": True,
                                        "limits": GENEROUS}, who="user")
        assert r.status == 202, r
        sleepers.append(r.json["id"])
    assert wait_until(lambda: all(req(e, "GET", f"/v1/runs/{s}", who="user").json["state"] ==
                                  "running" for s in sleepers), 120, 0.2)
    r = req(e, "POST", "/v1/runs", body, who="user")
    assert r.status == 202, r
    rid = r.json["id"]
    assert req(e, "GET", f"/v1/runs/{rid}", who="user").json["state"] == "queued"
    return sleepers, rid


def _finished(e, rid):
    assert wait_until(lambda: req(e, "GET", f"/v1/runs/{rid}", who="user").json["state"] ==
                      "finished", 300, 0.2)
    return req(e, "GET", f"/v1/runs/{rid}", who="user").json


def test_an_accepted_run_keeps_its_image_until_it_is_over(env):
    """A run accepted (queued for a slot) uses its image from then on: a
    DELETE of the image is a 409 until the run is over, and the run runs
    from it. It used to be removed (200) and the run to fail to start with
    internal_error, the image's name said twice."""
    e = env
    name = e.name("app:2")
    assert pull(e, "app:2").status == 201
    sleepers, rid = _queue_behind_sleepers(e, {"cmd": ["cat", "/two"], "image": name,
                                               "async": True, "limits": GENEROUS})
    try:
        err = error(req(e, "DELETE", f"/v1/images/{q(name)}"), 409, "conflict")
        assert "in use" in err["message"], err
        assert name in names_on_disk(e.root)
        assert req(e, "GET", f"/v1/images/{q(name)}", who="user").json["in_use"] is True
    finally:
        for s in sleepers:
            assert req(e, "DELETE", f"/v1/runs/{s}", who="user").status == 200
    run = _finished(e, rid)
    assert run["verdict"] == "ok" and run["stdout"] == "only in app2\n", run
    # Over: the image is free to go.
    assert req(e, "GET", f"/v1/images/{q(name)}", who="user").json["in_use"] is False
    assert req(e, "DELETE", f"/v1/images/{q(name)}").status == 200


def test_a_forced_remove_fails_a_waiting_run_naming_the_image_once(env):
    """force=true removes an image a queued run holds; the run then cannot
    start, and says so naming the image once (it said it twice)."""
    e = env
    name = e.name("app:2")
    assert pull(e, "app:2").status == 201
    sleepers, rid = _queue_behind_sleepers(e, {"cmd": ["cat", "/two"], "image": name,
                                               "async": True, "limits": GENEROUS})
    try:
        assert req(e, "DELETE", f"/v1/images/{q(name)}?force=true").status == 200
    finally:
        for s in sleepers:
            assert req(e, "DELETE", f"/v1/runs/{s}", who="user").status == 200
    run = _finished(e, rid)
    pinned = f"{e.reg.host}/app@{e.imgs['app:2'].digest}"
    assert run["verdict"] == "internal_error", run
    assert run["error"] == f"image {pinned} not found", run


def test_remove_refuses_a_bad_force_and_an_unknown_image(env):
    e = env
    err = error(req(e, "DELETE", f"/v1/images/{q(e.name('app:1'))}?force=maybe"), 400,
                "invalid_request")
    assert err["field"] == "force"
    error(req(e, "DELETE", f"/v1/images/{q(e.name('never:pulled'))}"), 404, "not_found")
    error(req(e, "PUT", "/v1/images"), 405, "method_not_allowed")


# ---- a pull hulld waits for, in a process of its own ---------------------------


class StallingRegistry:
    """Accepts connections and never answers: a registry that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns = []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop_ev.set()
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def pullers(d):
    return [p for p in children(d.proc.pid) if "puller" in Path(f"/proc/{p}/cmdline")
            .read_bytes().decode(errors="replace")]


def test_a_hanging_pull_leaves_hulld_responsive_and_is_stopped(tmp_path, monkeypatch):
    # The puller's own stall limit well past hulld's --pull-timeout: it is
    # hulld that stops this pull.
    monkeypatch.setenv("HULL_REGISTRY_TIMEOUT", "600")
    stall = StallingRegistry()
    d = Hulld(tmp_path, "--image-root", str(tmp_path / "images"), "--max-pulls", "1",
              "--pull-timeout", "10")
    Path(d.state).mkdir(parents=True)
    admin = d.token("admin", "ops")
    d.start()
    try:
        out = {}

        def bg():
            out["r"] = d.request("POST", "/v1/images",
                                 {"ref": f"{stall.host}/slow:1", "tls_verify": False}, admin)
        t = threading.Thread(target=bg)
        t.start()
        assert wait_until(lambda: len(pullers(d)) == 1, 30)
        pid = pullers(d)[0]
        # hulld answers meanwhile; a second pull is over --max-pulls.
        assert d.request("GET", "/healthz").status == 200
        assert d.request("GET", "/v1/images", token=admin).json == {"images": []}
        r = d.request("POST", "/v1/images", {"ref": f"{stall.host}/other:1",
                                             "tls_verify": False}, admin)
        assert r.status == 429 and r.json["error"]["code"] == "too_many_pulls", r
        metrics = d.request("GET", "/metrics", token=admin).body.decode()
        assert "hull_image_pulls_running 1\n" in metrics
        assert 'hull_requests_rejected_total{code="too_many_pulls"} 1\n' in metrics
        t.join(120)
        r = out["r"]
        assert r.status == 504 and r.json["error"]["code"] == "registry_timeout", r
        assert "--pull-timeout" in r.json["error"]["message"]
        assert wait_until(lambda: not alive(pid), 10)
        assert not (tmp_path / "images" / "index.json").exists() or \
            names_on_disk(tmp_path / "images") == set()
        # A pull in progress at shutdown is stopped, and hulld exits 0 at once.
        t = threading.Thread(target=bg)
        t.start()
        assert wait_until(lambda: len(pullers(d)) == 1, 30)
        pid = pullers(d)[0]
        assert d.stop(signal.SIGTERM, timeout=120) == 0, d.log.read_text()
        t.join(60)
        assert out["r"].status == 503 and out["r"].json["error"]["code"] == "shutting_down"
        assert not alive(pid)
    finally:
        if d.proc:
            d.kill()
        stall.close()
    procs, _, _ = d.leaks()
    assert procs == []


def test_a_pull_dies_with_a_killed_hulld_and_the_next_hulld_serves(tmp_path, monkeypatch):
    """hulld SIGKILLed during a pull: the puller goes with it (nothing
    pulls on unseen), and a new hulld on the same store serves at once."""
    monkeypatch.setenv("HULL_REGISTRY_TIMEOUT", "600")
    stall = StallingRegistry()
    root = tmp_path / "images"
    d = Hulld(tmp_path, "--image-root", str(root))
    Path(d.state).mkdir(parents=True)
    admin = d.token("admin", "ops")
    d.start()
    try:
        def bg():
            try:
                d.request("POST", "/v1/images", {"ref": f"{stall.host}/slow:1",
                                                 "tls_verify": False}, admin)
            except OSError:
                pass  # hulld killed: no answer, as expected
        t = threading.Thread(target=bg, daemon=True)
        t.start()
        assert wait_until(lambda: len(pullers(d)) == 1, 30)
        pid = pullers(d)[0]
        d.kill()
        assert wait_until(lambda: not alive(pid), 30)
        d.start()
        r = d.request("GET", "/v1/images", token=admin)
        assert r.status == 200 and r.json == {"images": []}, r
    finally:
        if d.proc:
            assert d.stop() == 0, d.log.read_text()
        stall.close()
    assert d.leaks()[0] == []


def test_registry_credentials_come_from_hullds_authfile(tmp_path):
    """A registry that wants a password: hulld pulls with the one of its
    --authfile; a request cannot bring its own."""
    import base64
    layout = tmp_path / "oci"
    img = make_image(layout, "private", MARKER, "secret")
    with Registry(tmp_path, htpasswd={"puller": "s3cret"}) as reg:
        reg.push_oci(layout, "private", "private:1")
        auth = tmp_path / "auth.json"
        token = base64.b64encode(b"puller:s3cret").decode()
        auth.write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))
        auth.chmod(0o600)
        ref = {"ref": f"{reg.host}/private:1", "tls_verify": False}
        for with_auth in (False, True):
            sub = tmp_path / ("with" if with_auth else "without")
            sub.mkdir()
            d = Hulld(sub, "--image-root", str(sub / "images"),
                      *(["--authfile", str(auth)] if with_auth else []))
            Path(d.state).mkdir(parents=True)
            admin = d.token("admin", "ops")
            d.start()
            try:
                r = d.request("POST", "/v1/images", dict(ref, creds="puller:s3cret"), admin)
                assert r.status == 400 and r.json["error"]["field"] == "creds", r
                r = d.request("POST", "/v1/images", ref, admin)
                if with_auth:
                    assert r.status == 201 and r.json["digest"] == img.digest, r
                else:
                    assert r.status == 502 and r.json["error"]["code"] == "registry_error", r
                    assert names_on_disk(sub / "images") == set()
            finally:
                assert d.stop() == 0, d.log.read_text()
            assert d.leaks()[0] == []
