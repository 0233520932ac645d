"""hull image pulls that go wrong: each fails with one clear `hull: ...` line,
a non-zero exit, and the store exactly as it was (index.json, blobs/ and
hull/layers/ compared before and after; hull/ingest/*.part may stay, for a
resume).

The registry is always a real docker-registry (registrylib). Faults it cannot
produce by itself (429, 500, a stalled blob, an oversized manifest) come from
FaultProxy, a small HTTP proxy in front of it that forwards everything except
the requests a rule matches. Disk full is a small tmpfs mounted by the test.
"""
import http.client
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest

import imagelib as il
from registrylib import Registry, free_port, push_oci

EVIL_MARKER = f"hull-evil-{os.getpid()}"


# ---- a fault-injecting proxy ------------------------------------------------

class FaultProxy:
    """http://127.0.0.1:PORT forwarding to a registry, with rules for chosen requests.

    rule(pattern, kind, ...): the first rule whose regex is found in
    "METHOD PATH" answers instead of the registry:
      status N          an error status with a registry-style JSON body
      stall F           the real response, but only the first fraction F of
                        the body, then silence until stop() (or release())
      body B MT         B (bytes) as the body with media type MT
      slow BPS          the real response at about BPS bytes/s
    Every request is recorded in .seen as (method, path, range header).
    """

    def __init__(self, upstream):
        self.upstream = upstream
        self.rules = []
        self.seen = []
        self.lock = threading.Lock()
        self.release_ev = threading.Event()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_any(self):
                proxy.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.release_ev.set()
        self.server.shutdown()
        self.server.server_close()

    def rule(self, pattern, kind, *args):
        self.rules.append((re.compile(pattern), kind, args))

    def clear(self):
        self.rules.clear()

    def release(self):
        """Let stalled responses end (their connections are closed)."""
        self.release_ev.set()

    def gets(self, pattern):
        return [s for s in self.seen if s[0] == "GET" and re.search(pattern, s[1])]

    def handle(self, h):
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else None
        with self.lock:
            self.seen.append((h.command, h.path, h.headers.get("Range")))
        for rx, kind, args in self.rules:
            if rx.search(f"{h.command} {h.path}"):
                break
        else:
            kind, args = None, ()
        if kind == "status":
            msg = json.dumps({"errors": [{"code": "INJECTED", "message": f"injected {args[0]}"}]}).encode()
            h.send_response(args[0])
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(msg)))
            if args[0] == 429:
                h.send_header("Retry-After", "1")
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(msg)
            return
        if kind == "body":
            data, mt = args
            h.send_response(200)
            h.send_header("Content-Type", mt)
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Docker-Content-Digest", il.sha256(data))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
            return
        # Forward to the registry.
        conn = http.client.HTTPConnection(self.upstream, timeout=120)
        # Header by header: a client may send several Accept lines.
        conn.putrequest(h.command, h.path, skip_accept_encoding=True)
        for k, v in h.headers.items():
            if k.lower() not in ("host", "connection", "content-length"):
                conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read() if h.command != "HEAD" else b""
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if k.lower() == "location":
                v = v.replace(self.upstream, self.host)
            h.send_header(k, v)
        length = r.getheader("Content-Length") if h.command == "HEAD" else str(len(data))
        if length is not None:
            h.send_header("Content-Length", length)
        h.end_headers()
        conn.close()
        if h.command == "HEAD":
            return
        if kind == "stall":
            h.wfile.write(data[:int(len(data) * args[0])])
            h.wfile.flush()
            self.release_ev.wait(600)
            h.close_connection = True
            return
        if kind == "slow":
            step = max(1, args[0] // 20)
            for i in range(0, len(data), step):
                h.wfile.write(data[i:i + step])
                h.wfile.flush()
                time.sleep(0.05)
            return
        h.wfile.write(data)


# ---- fixtures and helpers ----------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    with Registry(tmp_path) as reg:
        yield reg


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def small_image(layout, name="small", extra=None):
    return il.write_oci_layout(layout, name, [il.busybox_layer(extra=extra)], config={"Cmd": ["sh"]})


def big_image(layout, name="big", mib=8, seed=b"x"):
    """busybox + a layer of mib MiB of incompressible bytes (deterministic per seed)."""
    chunks, h = [], seed
    for _ in range(mib * 1024 * 1024 // 32):
        h = il.hashlib.sha256(h).digest()
        chunks.append(h)
    return il.write_oci_layout(layout, name, [il.busybox_layer(), {"data/random": il.File(b"".join(chunks))}],
                               config={"Cmd": ["sh"]})


@pytest.fixture
def seeded(registry, store, tmp_path):
    """The store holding one pulled image (HOST/seed/small:1); returns its ref."""
    layout = tmp_path / "seed-layout"
    small_image(layout, extra={"seed": il.File("seed\n")})
    ref = f"{registry.host}/seed/small:1"
    push_oci(layout, "small", ref)
    pull(store, ref, check=True)
    return ref


def pull(store, ref, *opts, host_env=None, check=False, timeout=300):
    return il.hull_run("image", "pull", "--tls-verify=false", *opts, ref, root=store, check=check,
                       env=host_env, timeout=timeout)


def assert_fails(r, pattern):
    """One `hull: ...` line matching pattern (case-insensitive); returns it."""
    line = il.hull_error_line(r)
    assert re.search(pattern, line, re.I), f"error line {line!r} does not say /{pattern}/"
    return line


def snapshot(store):
    return il.store_snapshot(store)


def _diff(before, after):
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
    return added, removed, changed


def _short(paths):
    return [p[:40] for p in paths[:6]] + (["..."] if len(paths) > 6 else [])


def assert_unchanged(store, before):
    """index.json, blobs/ and hull/layers/ exactly as before (hull/ingest aside: a
    .part may stay for a resume). A failed pull removes what it had published."""
    added, removed, changed = _diff(before, snapshot(store))
    assert not (added or removed or changed), \
        f"store changed: added {_short(added)} removed {_short(removed)} changed {_short(changed)}"


def assert_restored_by_prune(store, before):
    """After `hull image prune`, the store is exactly as before (verified leftovers removed)."""
    il.hull_run("image", "prune", root=store, check=True)
    added, removed, changed = _diff(before, snapshot(store))
    assert not (added or removed or changed), \
        f"after prune: added {_short(added)} removed {_short(removed)} changed {_short(changed)}"


def still_runs(store, ref):
    r = il.hull_run("sandbox", "run", "--image", ref, "--", "cat", "/seed", root=store)
    assert (r.returncode, r.stdout) == (0, "seed\n"), r.stderr


# ---- references, names, reachability -----------------------------------------

BAD_REFS = ["UPPER/case:1", "a//b:1", "repo:bad tag", "repo:" + "t" * 129, "repo@sha256:1234",
            "repo@md5:" + "0" * 32, ":tag", "repo:", "/repo", "127.0.0.1:5000/"]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_malformed_reference_refused(seeded, store, ref):
    before = snapshot(store)
    assert_fails(pull(store, ref), r"reference|invalid|malformed|tag|digest|name")
    assert_unchanged(store, before)


def test_unknown_repository_and_tag_are_not_found(seeded, registry, store):
    before = snapshot(store)
    for ref in (f"{registry.host}/nobody/here:1", f"{registry.host}/seed/small:nosuchtag"):
        assert_fails(pull(store, ref), r"not found|unknown|404")
    assert_unchanged(store, before)
    still_runs(store, seeded)


def test_unknown_local_image_not_found(seeded, store):
    before = snapshot(store)
    r = il.hull_run("sandbox", "run", "--pull", "never", "--image", "localhost/never-pulled:1", "--", "true",
                    root=store)
    assert_fails(r, r"not found")
    assert_unchanged(store, before)


def test_sandbox_pull_of_missing_image_fails_in_one_line(seeded, store):
    """`sandbox run --image` pulls what the store lacks; when that fails, one line says why."""
    before = snapshot(store)
    r = il.hull_run("sandbox", "run", "--image", f"127.0.0.1:{free_port()}/seed/small:1", "--", "true",
                    root=store)
    assert_fails(r, r"refused|connect")
    assert_unchanged(store, before)


def test_registry_down_connection_refused(seeded, store):
    before = snapshot(store)
    assert_fails(pull(store, f"127.0.0.1:{free_port()}/seed/small:1"), r"refused|connect")
    assert_unchanged(store, before)


def test_unauthorized_without_credentials(store, tmp_path):
    with Registry(tmp_path, htpasswd={"alice": "s3cret"}) as reg:
        layout = tmp_path / "layout"
        img = small_image(layout, extra={"seed": il.File("seed\n")})
        ref = f"{reg.host}/private/small:1"
        reg.push_oci(layout, "small", "private/small:1")
        for opts in ((), ("--creds", "alice:wrong")):
            r = pull(store, ref, *opts)
            assert_fails(r, r"401|unauthori[sz]ed|authenticat|credential|denied")
            assert not (store / "index.json").exists() or not il.layout_names(store)
        # The same pull with the right credentials works: the refusal was about them.
        assert pull(store, ref, "--creds", "alice:s3cret", check=True).stdout.split()[-1] == img.digest


# ---- injected statuses, stalls, oversized documents ----------------------------

@pytest.fixture
def proxied(registry, store, tmp_path, seeded):
    """(proxy, ref, image): an 8 MiB image in the registry, reached through a FaultProxy."""
    layout = tmp_path / "big-layout"
    img = big_image(layout)
    push_oci(layout, "big", f"{registry.host}/faults/big:1")
    with FaultProxy(registry.host) as proxy:
        yield proxy, f"{proxy.host}/faults/big:1", img


@pytest.mark.parametrize("where", ["manifests", "blobs"])
@pytest.mark.parametrize("status", [429, 500])
def test_injected_status_fails_cleanly(proxied, store, seeded, where, status):
    proxy, ref, img = proxied
    proxy.rule(rf"^(GET|HEAD) /v2/faults/big/{where}/", "status", status)
    before = snapshot(store)
    r = pull(store, ref)
    words = {429: r"429|too many", 500: r"500|internal|server error"}[status]
    assert_fails(r, words)
    assert_unchanged(store, before)
    assert not (store / "blobs/sha256" / img.layers[1].digest[7:]).exists()
    assert proxy.seen, "the pull never reached the proxy"
    if where == "blobs":
        snap = snapshot(store)
        assert_restored_by_prune(store, before)
        before = snap
    # Without the fault, the same pull completes.
    proxy.clear()
    assert pull(store, ref, check=True).stdout.split()[-1] == img.digest


def test_stalled_blob_times_out_then_resumes(proxied, store, seeded):
    proxy, ref, img = proxied
    big = img.layers[1].digest
    proxy.rule(rf"^GET /v2/faults/big/blobs/{big}", "stall", 0.5)
    before = snapshot(store)
    # The proxy stalls until released: only hull's own timeout ends this pull
    # (a hang fails the test through the subprocess timeout).
    r = pull(store, ref, host_env={"HULL_REGISTRY_TIMEOUT": "3"}, timeout=300)
    assert_fails(r, r"time(d)? ?out|stall|no data")
    assert_unchanged(store, before)
    assert not (store / "blobs/sha256" / big[7:]).exists()
    proxy.clear()
    proxy.release()
    assert pull(store, ref, check=True).stdout.split()[-1] == img.digest
    gets = proxy.gets(rf"/blobs/{big}")
    assert len(gets) == 2, gets
    # The second fetch continued where the first stopped (a Range request).
    rng = gets[1][2]
    assert rng and re.match(r"bytes=[1-9]\d*-", rng), f"second GET of the stalled blob had Range {rng!r}"
    assert not list((store / "hull" / "ingest").glob("*.part"))
    r = il.hull_run("sandbox", "run", "--image", ref, "--", "wc", "-c", "/data/random", root=store)
    assert r.returncode == 0 and r.stdout.split()[0] == str(8 << 20), r.stderr


def test_trickled_blob_cut_by_the_low_speed_floor(proxied, store, seeded):
    """A registry that keeps sending a few bytes a second (200 B/s here) never
    stalls outright; hull cuts it once it stays under 1 KiB/s for the registry
    timeout, with the .part kept for a resume."""
    proxy, ref, img = proxied
    big = img.layers[1].digest
    proxy.rule(rf"^GET /v2/faults/big/blobs/{big}", "slow", 200)
    before = snapshot(store)
    # At 200 B/s the 8 MiB blob would take half a day: only hull's floor ends
    # this pull (a hang fails the test through the subprocess timeout).
    r = pull(store, ref, host_env={"HULL_REGISTRY_TIMEOUT": "3"}, timeout=120)
    assert_fails(r, r"stalled: under 1024 bytes/s for 3 s")
    assert_unchanged(store, before)
    assert not (store / "blobs/sha256" / big[7:]).exists()


def test_pull_timeout_ends_a_slow_pull_and_the_next_resumes(proxied, store, seeded):
    """--timeout bounds the whole pull: a blob arriving at 64 KiB/s (above the
    low-speed floor, 2 minutes for 8 MiB) is cut at 3 s with one line, the
    store as it was but for the .part, which the next pull continues."""
    proxy, ref, img = proxied
    big = img.layers[1].digest
    proxy.rule(rf"^GET /v2/faults/big/blobs/{big}", "slow", 64 << 10)
    before = snapshot(store)
    r = pull(store, ref, "--timeout", "3s", timeout=120)
    line = il.hull_error_line(r)
    assert line == f"hull: image pull {ref}: timed out after 3 s", line
    assert_unchanged(store, before)
    part = store / "hull" / "ingest" / f"{big[7:]}.part"
    assert part.exists() and part.stat().st_size > 0, "the cut pull left nothing to resume"
    proxy.clear()
    assert pull(store, ref, "--timeout", "0", check=True).stdout.split()[-1] == img.digest
    gets = proxy.gets(rf"/blobs/{big}")
    assert len(gets) == 2 and gets[1][2] and re.match(r"bytes=[1-9]\d*-", gets[1][2]), gets


@pytest.mark.parametrize("bad", ["soon", "-1", "500ms", "8d", "10x"])
def test_pull_timeout_refuses_bad_durations(store, bad):
    r = pull(store, "127.0.0.1:1/never/used:1", "--timeout", bad)
    assert_fails(r, r"--timeout: .* is not a duration")
    assert not (store / "index.json").exists()


def test_a_layer_unpacks_while_another_is_still_arriving(registry, store, tmp_path):
    """Each layer is unpacked as soon as its blob is stored, not after the
    last blob: while the big layer's blob stalls, the small layer is already
    in place. The pull that then fails takes it away again, with the rest of
    what it made, and the next pull completes."""
    layout = tmp_path / "early-layout"
    img = big_image(layout, "early", seed=b"early")
    push_oci(layout, "early", f"{registry.host}/faults/early:1")
    small = store / "hull" / "layers" / img.layers[0].diff_id[7:]
    big = img.layers[1].digest
    with FaultProxy(registry.host) as proxy:
        ref = f"{proxy.host}/faults/early:1"
        proxy.rule(rf"^GET /v2/faults/early/blobs/{big}", "stall", 0.5)
        # hull's own stall timeout far away: the stall ends when the test says
        env = dict(os.environ, HULL_IMAGE_ROOT=str(store), HULL_REGISTRY_TIMEOUT="600")
        p = subprocess.Popen([il.HULL, "image", "pull", "--tls-verify=false", ref], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            deadline = time.monotonic() + 120
            while not small.is_dir() and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert small.is_dir(), "the small layer was not unpacked while the big blob stalled"
            assert p.poll() is None, "the pull ended while its big blob was stalled"
            assert not (store / "blobs/sha256" / big[7:]).exists()
            assert (small / "bin" / "busybox").is_file()
        finally:
            proxy.release()  # the stalled response ends, cut short
            out, err = p.communicate(timeout=300)
        assert p.returncode != 0, "a pull whose blob was cut short succeeded"
        assert re.search(r"^hull: ", err, re.M), err
        assert not small.exists(), "a failed pull left the layer it unpacked"
        proxy.clear()
        assert pull(store, ref, check=True).stdout.split()[-1] == img.digest
    assert small.is_dir()


def test_oversized_manifest_refused(proxied, store, seeded):
    proxy, ref, img = proxied
    man = {"schemaVersion": 2, "mediaType": il.MT_OCI_MANIFEST,
           "config": {"mediaType": il.MT_OCI_CONFIG, "digest": img.config_digest, "size": len(img.config)},
           "layers": [{"mediaType": lay.media_type, "digest": lay.digest, "size": lay.size} for lay in img.layers],
           "annotations": {"padding": "x" * (5 << 20)}}
    body = json.dumps(man).encode()
    proxy.rule(r"^(GET|HEAD) /v2/faults/big/manifests/", "body", body, il.MT_OCI_MANIFEST)
    before = snapshot(store)
    assert_fails(pull(store, ref), r"too (large|big)|larger|exceed|limit|size|cap")
    assert_unchanged(store, before)
    assert not proxy.gets(r"/blobs/"), "hull fetched blobs of a manifest it should have refused"


# ---- bad content ---------------------------------------------------------------

def test_tampered_blob_digest_mismatch(registry, store, seeded, tmp_path):
    layout = tmp_path / "t-layout"
    img = big_image(layout, "t", mib=1, seed=b"tamper")
    ref = f"{registry.host}/faults/tampered:1"
    push_oci(layout, "t", ref)
    data = registry.blob_path(img.layers[1].digest)
    raw = bytearray(data.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 16] = bytes(b ^ 0xFF for b in raw[mid:mid + 16])  # same size, other bytes
    data.write_bytes(bytes(raw))
    before = snapshot(store)
    assert_fails(pull(store, ref), r"digest|mismatch|checksum|verif")
    assert_unchanged(store, before)
    assert not (store / "blobs/sha256" / img.layers[1].digest[7:]).exists()
    assert not any(n == ref for n in il.layout_names(store))
    assert_restored_by_prune(store, before)


@pytest.mark.parametrize("kind", il.EVIL_KINDS)
def test_escaping_layer_refused(registry, store, seeded, tmp_path, kind):
    layout = tmp_path / "evil-layout"
    img = il.write_oci_layout(layout, "evil", [il.busybox_layer(), il.evil_layer(kind, EVIL_MARKER)],
                              config={"Cmd": ["true"]})
    ref = f"{registry.host}/faults/evil-{kind.replace('_', '-')}:1"
    push_oci(layout, "evil", ref)
    passwd = Path("/etc/passwd").read_bytes()
    passwd_links = os.stat("/etc/passwd").st_nlink
    layers_before = _listdir(store / "hull" / "layers")
    before = snapshot(store)

    r = pull(store, ref)
    pulled = r.returncode == 0
    if pulled and kind == "absolute":
        # Like tar, hull may take "/tmp/x" as "tmp/x" beneath the layer: contained, not refused.
        assert (store / "hull/layers" / img.layers[1].diff_id[7:] / "tmp" / EVIL_MARKER).is_file()
        assert not os.path.lexists(f"/tmp/{EVIL_MARKER}")
        return
    if pulled:
        # A pull may leave unpacking to the first run: then the run must refuse it.
        r = il.hull_run("sandbox", "run", "--image", ref, "--", "true", root=store)
    else:
        assert_unchanged(store, before)
    assert_fails(r, r"escap|outside|refus|unsafe|\.\.|permitted|absolute|link|path")

    evil_diff = img.layers[1].diff_id[7:]
    assert not (store / "hull" / "layers" / evil_diff).exists()
    # Nothing half-unpacked stays (only the seed's and the busybox base's layers may be there).
    allowed = set(layers_before) | {img.layers[0].diff_id[7:]}
    assert set(_listdir(store / "hull" / "layers")) <= allowed, _listdir(store / "hull" / "layers")
    assert Path("/etc/passwd").read_bytes() == passwd
    assert os.stat("/etc/passwd").st_nlink == passwd_links
    for dirpath, _, filenames in os.walk(tmp_path):
        assert EVIL_MARKER not in filenames, f"{dirpath}/{EVIL_MARKER} escaped the layer"
    for top in ("/tmp", "/"):
        assert not os.path.lexists(os.path.join(top, EVIL_MARKER)), f"{top}/{EVIL_MARKER} escaped the layer"
    if not pulled:
        assert_restored_by_prune(store, before)


def test_overlong_entry_name_said_briefly(registry, store, seeded, tmp_path):
    """A 6000-byte entry name is refused as too long (not as outside the
    layer), in one line that names the layer and shows only the name's start."""
    layout = tmp_path / "long-layout"
    name = "d/" + "n" * 6000
    img = il.write_oci_layout(layout, "long", [il.busybox_layer(), {name: il.File("x")}],
                              config={"Cmd": ["true"]})
    ref = f"{registry.host}/faults/longname:1"
    push_oci(layout, "long", ref)
    before = snapshot(store)
    line = assert_fails(pull(store, ref), r"name too long")
    assert f"layer {img.layers[1].digest}: entry \"d/nnn" in line, line
    assert "outside" not in line and len(line) < 600, line
    assert_unchanged(store, before)


def test_entry_write_error_names_its_layer(registry, store, seeded, tmp_path):
    """An entry the kernel will not take (a malformed file capability) fails
    with the layer's digest before what failed, like a refused entry does."""
    layout = tmp_path / "cap-layout"
    bad = {"bin/capped": il.File("x", xattrs={"security.capability": "bogus"})}
    img = il.write_oci_layout(layout, "cap", [il.busybox_layer(), bad], config={"Cmd": ["true"]})
    ref = f"{registry.host}/faults/badcap:1"
    push_oci(layout, "cap", ref)
    before = snapshot(store)
    line = assert_fails(pull(store, ref), r"security\.capability")
    assert line.startswith(f"hull: image pull {ref}: layer {img.layers[1].digest}: set "
                           "security.capability on bin/capped: "), line
    assert_unchanged(store, before)


def _listdir(d):
    """Layer directories (lock files aside)."""
    return sorted(n for n in os.listdir(d) if not n.endswith(".lock")) if os.path.isdir(d) else []


# ---- resources -------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 24 MiB tmpfs at tmp_path/small, unmounted afterwards."""
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_disk_full_mid_pull(registry, small_fs, tmp_path):
    store = small_fs / "store"
    layout = tmp_path / "layouts"
    small_image(layout, extra={"seed": il.File("seed\n")})
    seed = f"{registry.host}/seed/small:1"
    push_oci(layout, "small", seed)
    pull(store, seed, check=True)
    big = big_image(layout, "big", mib=40, seed=b"full")
    ref = f"{registry.host}/faults/toobig:1"
    push_oci(layout, "big", ref)

    before = snapshot(store)
    used_before = _used(small_fs)
    assert_fails(pull(store, ref), r"no space|ENOSPC|disk full|space left")
    assert_unchanged(store, before)
    assert ref not in il.layout_names(store)
    # Consistent: listing works and the seed still runs.
    r = il.hull_run("image", "list", root=store, check=True)
    assert "seed/small" in r.stdout
    still_runs(store, seed)
    # prune removes what the failed pull left (partial downloads, unreferenced blobs).
    assert_restored_by_prune(store, before)
    assert not list((store / "hull" / "ingest").glob("*.part"))
    assert not (store / "blobs/sha256" / big.layers[1].digest[7:]).exists()
    assert _used(small_fs) <= used_before + (1 << 20), (used_before, _used(small_fs))
    still_runs(store, seed)


def _used(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_two_concurrent_pulls_fetch_each_blob_once(registry, store, seeded, tmp_path):
    layout = tmp_path / "c-layout"
    img = big_image(layout, "c", mib=4, seed=b"concurrent")
    push_oci(layout, "c", f"{registry.host}/faults/concurrent:1")
    with FaultProxy(registry.host) as proxy:
        ref = f"{proxy.host}/faults/concurrent:1"
        # Slow the big blob down so that both pulls certainly overlap on it.
        proxy.rule(rf"^GET /v2/faults/concurrent/blobs/{img.layers[1].digest}", "slow", 1 << 20)
        env = dict(os.environ, HULL_IMAGE_ROOT=str(store))
        cmd = [il.HULL, "image", "pull", "--tls-verify=false", ref]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert out.split()[-1] == img.digest
        for blob in [img.config_digest] + [lay.digest for lay in img.layers]:
            n = len(proxy.gets(rf"/blobs/{blob}"))
            assert n <= 1, f"{blob} fetched {n} times by two concurrent pulls"
        assert len(proxy.gets(rf"/blobs/{img.layers[1].digest}")) == 1
    r = il.hull_run("sandbox", "run", "--image", ref, "--", "wc", "-c", "/data/random", root=store)
    assert r.returncode == 0 and r.stdout.split()[0] == str(4 << 20), r.stderr


def test_remove_of_image_in_use_refused(store, seeded):
    token = str(3000 + os.getpid() % 1000)
    env = dict(os.environ, HULL_IMAGE_ROOT=str(store))
    p = subprocess.Popen([il.HULL, "sandbox", "run", "--image", seeded, "--wall-time", "120s", "--",
                          "sleep", token], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _sleep_running(token):
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() < deadline, "the sandbox's sleep never started"
            time.sleep(0.1)
        before = snapshot(store)
        r = il.hull_run("image", "remove", seeded, root=store)
        assert_fails(r, r"in use")
        assert_unchanged(store, before)
        r = il.hull_run("image", "prune", root=store)
        assert r.returncode == 0, r.stderr
        assert_unchanged(store, before)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=60)
    il.hull_run("image", "remove", seeded, root=store, check=True)
    assert seeded not in il.layout_names(store)


def _sleep_running(token):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", token.encode()]:
                        return True
            except OSError:
                pass
    return False


def test_killed_pull_leaves_no_name_and_the_next_resumes(registry, store, seeded, tmp_path):
    """SIGKILL in the middle of a blob: no name, nothing unverified; the next pull continues it."""
    layout = tmp_path / "k-layout"
    img = big_image(layout, "k", mib=4, seed=b"killed")
    big = img.layers[1].digest
    push_oci(layout, "k", f"{registry.host}/faults/killed:1")
    with FaultProxy(registry.host) as proxy:
        ref = f"{proxy.host}/faults/killed:1"
        proxy.rule(rf"^GET /v2/faults/killed/blobs/{big}", "slow", 256 << 10)
        env = dict(os.environ, HULL_IMAGE_ROOT=str(store))
        p = subprocess.Popen([il.HULL, "image", "pull", "--tls-verify=false", ref], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        part = store / "hull" / "ingest" / f"{big[7:]}.part"
        try:
            deadline = time.monotonic() + 120
            while not (part.exists() and part.stat().st_size > 0):
                assert p.poll() is None, "the pull ended before the blob was half there"
                assert time.monotonic() < deadline, "no .part appeared"
                time.sleep(0.05)
        finally:
            p.kill()  # hull execs hull-image: this pid is the pull itself
            p.wait()
        assert ref not in il.layout_names(store)
        for b in (store / "blobs" / "sha256").iterdir():
            assert il.sha256(b.read_bytes())[7:] == b.name, f"{b.name} stored with other content"
        assert not (store / "blobs/sha256" / big[7:]).exists()

        proxy.clear()
        assert pull(store, ref, check=True).stdout.split()[-1] == img.digest
        gets = proxy.gets(rf"/blobs/{big}")
        assert len(gets) == 2 and gets[1][2] and re.match(r"bytes=[1-9]\d*-", gets[1][2]), gets
    r = il.hull_run("sandbox", "run", "--image", ref, "--", "wc", "-c", "/data/random", root=store)
    assert r.returncode == 0 and r.stdout.split()[0] == str(4 << 20), r.stderr
