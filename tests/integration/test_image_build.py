"""`hull image build`: a Containerfile subset built into a real store.

Each test has its own store (HULL_IMAGE_ROOT under tmp_path) and a base
image made offline: busybox-static and its applet links, imported with
`hull image import`. Results are checked from the outside: `hull image
inspect` for the config and layers, `hull image bundle` for the files (the
flattened view, whiteouts applied), the layer directories of the store for
what each layer holds, and the host for mounts, processes and temporary
directories a build must not leave.
"""
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import host_mounts_under, pids_with_cmdline_containing, pid_alive, wait_until
from imagelib import busybox_layer, hull_error_line, hull_run, rootfs_tar

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path):
    """A store holding `base`: busybox at /bin/busybox, applet links, /etc/passwd with app:1000."""
    root = tmp_path / "store"
    tar = tmp_path / "base.tar"
    tar.write_bytes(rootfs_tar(busybox_layer()))
    hull_run("image", "import", tar, "base", root=root, check=True)
    yield root
    # No build may leave a temporary directory or a container state behind.
    tmp = root / "hull" / "tmp"
    left = [p.name for p in tmp.iterdir()] if tmp.exists() else []
    assert left == [], f"left in {tmp}: {left}"


def build(root, ctx, *args, check=True, timeout=300):
    r = hull_run("image", "build", *args, ctx, root=root, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"build failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def inspect(root, name):
    r = hull_run("image", "inspect", name, root=root, check=True)
    d = json.loads(r.stdout)
    return d[0] if isinstance(d, list) else d


def bundle(root, name, dest):
    hull_run("image", "bundle", name, dest, root=root, check=True)
    return Path(dest) / "rootfs"


def layer_files(root, diff_id):
    d = root / "hull" / "layers" / diff_id.split(":")[1]
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def context(tmp_path, containerfile, files=None, name="ctx"):
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text(containerfile)
    for rel, data in (files or {}).items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return ctx


MULTI = """\
# a multi-layer image
ARG BASE=base
FROM $BASE AS ignored-stage-name
ARG GREETING=hi
ENV APP=/app \\
    MODE=prod
ENV LEGACY spaced value
RUN echo "$GREETING from $MODE" > /greeting && ls /sys/class/net > /netdevs
COPY --chown=1000:1000 dir ${APP}/
WORKDIR ${APP:-/nowhere}/work
RUN rm /etc/group && pwd > /pwd && id -u > /uid-at-build
USER app
LABEL org.example.a=b "with space"=yes
EXPOSE 80 53/udp
CMD ["serve", "--port=80"]
ENTRYPOINT ["/bin/sh", "-c"]
"""


def test_multi_layer_build(store, tmp_path):
    ctx = context(tmp_path, MULTI, {"dir/a.txt": "hello\n", "dir/sub/run.sh": "#!/bin/sh\n"})
    os.chmod(ctx / "dir" / "sub" / "run.sh", 0o750)
    r = build(store, ctx, "-t", "multi", "--build-arg", "GREETING=hello", "--build-arg", "UNUSED=1")
    digest = r.stdout.strip().splitlines()[-1]
    assert digest.startswith("sha256:") and len(digest) == 71
    log = r.stderr
    assert "STEP 1/13: FROM $BASE AS ignored-stage-name" in log
    assert "STEP 13/13: ENTRYPOINT" in log
    assert "COMMIT docker.io/library/multi:latest" in log
    assert "one or more build args were not consumed: [UNUSED]" in log
    assert "Using cache" not in log

    img = inspect(store, "multi")
    assert img["digest"] == digest
    cfg = img["config"]
    env = cfg["Env"]
    assert "APP=/app" in env and "MODE=prod" in env and "LEGACY=spaced value" in env
    assert not any(e.startswith("GREETING=") for e in env), "ARG values are not kept in the image"
    assert cfg["WorkingDir"] == "/app/work"
    assert cfg["User"] == "app"
    assert cfg["Labels"] == {"org.example.a": "b", "with space": "yes"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert cfg["Cmd"] == ["serve", "--port=80"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    # base + RUN + COPY + WORKDIR (a new directory) + RUN; config steps make none.
    layers = img["layers"]
    assert len(layers) == 5
    assert all(l["media_type"].endswith("+zstd") for l in layers[1:])
    assert layer_files(store, layers[1]["diff_id"]) == ["greeting", "netdevs"]
    assert layer_files(store, layers[2]["diff_id"]) == ["app", "app/a.txt", "app/sub",
                                                        "app/sub/run.sh"]
    assert layer_files(store, layers[3]["diff_id"]) == ["app", "app/work"]
    # rm of a base file is a whiteout in the layer (overlay form on disk).
    l4 = store / "hull" / "layers" / layers[4]["diff_id"].split(":")[1]
    st = os.lstat(l4 / "etc" / "group")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0

    root = bundle(store, "multi", tmp_path / "b")
    assert (root / "greeting").read_text() == "hello from prod\n"
    # RUN had a network namespace of its own: loopback only.
    assert (root / "netdevs").read_text().split() == ["lo"]
    assert (root / "pwd").read_text() == "/app/work\n"
    assert (root / "uid-at-build").read_text() == "0\n"
    assert not (root / "etc" / "group").exists()
    assert (root / "etc" / "passwd").exists()
    a = root / "app" / "a.txt"
    assert a.read_text() == "hello\n"
    assert (a.stat().st_uid, a.stat().st_gid) == (1000, 1000)
    assert (root / "app" / "sub" / "run.sh").stat().st_mode & 0o7777 == 0o750
    hist = json.loads((tmp_path / "b" / "config.json").read_text())
    assert hist["process"]["cwd"] == "/app/work"


def test_second_build_is_cached_and_identical(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nRUN echo one > /one\nCOPY f /f\nRUN cat /f > /g\n"
                  "ENV X=1\nCMD [\"cat\", \"/g\"]\n", {"f": "v1\n"})
    first = build(store, ctx, "-t", "c").stdout.strip()
    r = build(store, ctx, "-t", "c")
    assert r.stdout.strip() == first
    assert r.stderr.count("--> Using cache") == 5, r.stderr
    assert inspect(store, "c")["digest"] == first

    # A changed source: the steps before COPY come from the cache, COPY and
    # everything after it run again.
    (ctx / "f").write_text("v2\n")
    r = build(store, ctx, "-t", "c")
    assert r.stderr.count("--> Using cache") == 1, r.stderr
    steps = r.stderr.split("STEP ")
    assert "Using cache" in steps[2] and "Using cache" not in steps[3]
    second = r.stdout.strip()
    assert second != first
    assert (bundle(store, "c", tmp_path / "b") / "g").read_text() == "v2\n"

    # --no-cache runs everything again.
    r = build(store, ctx, "-t", "c", "--no-cache")
    assert "Using cache" not in r.stderr


def test_cache_entry_without_its_blob_is_ignored(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nRUN echo x > /x\n")
    build(store, ctx, "-t", "x")
    img = inspect(store, "x")
    blob = store / "blobs" / "sha256" / img["layers"][1]["digest"].split(":")[1]
    hull_run("image", "remove", "x", root=store, check=True)
    hull_run("image", "prune", root=store, check=True)
    assert not blob.exists()
    r = build(store, ctx, "-t", "x")
    assert "Using cache" not in r.stderr
    again = inspect(store, "x")["layers"][1]["digest"].split(":")[1]
    assert (store / "blobs" / "sha256" / again).exists()
    assert "Using cache" in build(store, ctx, "-t", "x").stderr


def test_failing_run_leaves_nothing(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nRUN echo before > /b\nRUN echo doomed; exit 3\n"
                  "RUN echo never\n")
    before = sorted(os.listdir(store / "blobs" / "sha256"))
    r = build(store, ctx, "-t", "bad", check=False)
    line = hull_error_line(r)
    assert "step 3/4" in line and "exit status 3" in line, line
    assert "doomed" in r.stdout
    assert "never" not in r.stdout
    lst = hull_run("image", "list", "--format", "json", root=store, check=True).stdout
    assert "bad" not in lst
    assert host_mounts_under(tmp_path) == []
    # The layer of step 2 is in the cache (and so in blobs); nothing else is.
    after = sorted(os.listdir(store / "blobs" / "sha256"))
    assert len(after) - len(before) <= 1


def test_unknown_instruction_names_the_line(store, tmp_path):
    ctx = context(tmp_path, "FROM base\n\n# comment\nRUN true \\\n  && true\nENV A=1\nFOO bar\n")
    line = hull_error_line(build(store, ctx, "-t", "u", check=False))
    assert "Containerfile:7: unknown instruction FOO" in line
    ctx = context(tmp_path, "FROM base\nFROM base\n", name="two")
    line = hull_error_line(build(store, ctx, check=False))
    assert "Containerfile:2" in line and "multi-stage" in line


def test_copy_cannot_leave_the_context(store, tmp_path):
    (tmp_path / "outside").write_text("secret\n")
    ctx = context(tmp_path, "FROM base\nCOPY ../outside /o\n")
    line = hull_error_line(build(store, ctx, "-t", "o", check=False))
    assert "outside the build context" in line, line
    # A symlink in the context that points out of it is resolved beneath it.
    ctx2 = context(tmp_path, "FROM base\nCOPY link /o\n", name="ctx2")
    (ctx2 / "link").symlink_to(tmp_path / "outside")
    line = hull_error_line(build(store, ctx2, "-t", "o", check=False))
    assert "link" in line and ("outside" in line or "not in the build context" in line), line
    # A symlink staying inside is followed at the top and copied as a link below.
    ctx3 = context(tmp_path, "FROM base\nCOPY alias /f\nCOPY d /d/\n",
                   {"real": "inside\n", "d/x": "x\n"}, name="ctx3")
    (ctx3 / "alias").symlink_to("real")
    (ctx3 / "d" / "l").symlink_to("x")
    build(store, ctx3, "-t", "o")
    root = bundle(store, "o", tmp_path / "b")
    assert (root / "f").read_text() == "inside\n" and not (root / "f").is_symlink()
    assert os.readlink(root / "d" / "l") == "x"
    assert not list(root.rglob("outside"))


def test_from_scratch_copy_and_ignore(store, tmp_path):
    ctx = context(tmp_path, "FROM scratch\nCOPY . /\nCOPY --chmod=0604 --chown=7:8 hello /x/h2\n"
                  "CMD [\"/hello\"]\n",
                  {"hello": "hi\n", "skip.log": "no\n", "keep/a": "a\n", "keep/b.log": "no\n",
                   ".containerignore": "*.log\n**/*.log\nContainerfile\n.containerignore\n"})
    build(store, ctx, "-t", "scratchy")
    img = inspect(store, "scratchy")
    assert len(img["layers"]) == 2
    assert layer_files(store, img["layers"][0]["diff_id"]) == ["hello", "keep", "keep/a"]
    assert layer_files(store, img["layers"][1]["diff_id"]) == ["x", "x/h2"]
    st = os.stat(bundle(store, "scratchy", tmp_path / "b") / "x" / "h2")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o604, 7, 8)
    assert img["config"]["Cmd"] == ["/hello"]


def test_add_extracts_archives_and_refuses_urls(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nADD files.tar.gz /opt/\nADD plain.txt /opt/plain\n",
                  {"plain.txt": "p\n"})
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "data").write_text("d\n")
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as tf:
        tf.add(src / "pkg", arcname="pkg")
    build(store, ctx, "-t", "added")
    root = bundle(store, "added", tmp_path / "b")
    assert (root / "opt" / "pkg" / "data").read_text() == "d\n"
    assert (root / "opt" / "plain").read_text() == "p\n"
    assert not (root / "opt" / "files.tar.gz").exists()
    ctx2 = context(tmp_path, "FROM base\nADD https://example.com/x.tar /x\n", name="url")
    line = hull_error_line(build(store, ctx2, check=False))
    assert "https://example.com/x.tar" in line and "URL" in line, line


def test_run_exec_form_user_and_args(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nARG WHO\nUSER app\n"
                  "RUN [\"/bin/sh\", \"-c\", \"id -u > /tmp/uid; echo $WHO > /tmp/who; "
                  "echo $HOME > /tmp/homedir\"]\n"
                  "USER root\nRUN cp /tmp/uid /tmp/who /tmp/homedir /\n")
    build(store, ctx, "-t", "u", "--build-arg", "WHO=me")
    root = bundle(store, "u", tmp_path / "b")
    assert (root / "uid").read_text() == "1000\n"
    assert (root / "who").read_text() == "me\n"
    assert (root / "homedir").read_text() == "/home/app\n"


def test_killed_build_leaves_no_mount_or_process(store, tmp_path):
    marker = f"hull-build-sleep-{os.getpid()}"
    ctx = context(tmp_path, f"FROM base\nRUN echo started; sleep 600; echo {marker}\n")
    e = dict(os.environ, HULL_IMAGE_ROOT=str(store))
    from imagelib import HULL
    p = subprocess.Popen([HULL, "image", "build", "-t", "killed-build", str(ctx)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert p.stdout.readline().decode().strip() == "started"
        assert wait_until(lambda: pids_with_cmdline_containing(marker), 30)
        # The overlay lives in the builder's own mount namespace only.
        assert host_mounts_under(store) == []
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    assert wait_until(lambda: not [q for q in pids_with_cmdline_containing(marker)
                                   if pid_alive(q)], 30), "RUN outlived its build"
    assert host_mounts_under(tmp_path) == []
    assert "killed-build" not in hull_run("image", "list", root=store, check=True).stdout
    # What the killed build left in hull/tmp goes with the next build.
    build(store, context(tmp_path, "FROM base\nENV A=1\n", name="next"), "-t", "n")


def test_network_host_is_the_hosts(store, tmp_path):
    ctx = context(tmp_path, "FROM base\nRUN ls /sys/class/net > /netdevs; "
                  "cat /etc/resolv.conf > /resolv 2>/dev/null; true\n")
    build(store, ctx, "-t", "net", "--network", "host")
    img = inspect(store, "net")
    root = bundle(store, "net", tmp_path / "b")
    assert sorted((root / "netdevs").read_text().split()) == sorted(os.listdir("/sys/class/net"))
    if os.path.isfile("/etc/resolv.conf"):
        # The host's name service, over a file made for the run and gone after it.
        assert (root / "resolv").read_text() == Path("/etc/resolv.conf").read_text()
    # /etc is there only as a directory entry with the base's own times.
    assert layer_files(store, img["layers"][-1]["diff_id"]) == ["etc", "netdevs", "resolv"]
    base = bundle(store, "base", tmp_path / "base")
    assert os.stat(root / "etc").st_mtime_ns == os.stat(base / "etc").st_mtime_ns
    assert not (root / "etc" / "resolv.conf").exists()
    # The default: a network namespace of its own (a separate cache entry).
    r = build(store, ctx, "-t", "net")
    assert "Using cache" not in r.stderr
    root = bundle(store, "net", tmp_path / "c")
    assert (root / "netdevs").read_text().split() == ["lo"]
    assert (root / "resolv").read_text() == ""


def test_run_is_confined(store, tmp_path):
    """Real root, but with hull's default capabilities and the built-in
    seccomp profile: no mount, no unshare, no chroot; /proc/kcore masked."""
    ctx = context(tmp_path, "FROM base\n"
                  "RUN (mount -t tmpfs t /mnt 2>/dev/null && echo mounted || echo refused) > /m; "
                  "(unshare -m true 2>/dev/null && echo unshared || echo refused) > /u; "
                  "grep CapEff /proc/self/status > /caps; "
                  "grep Seccomp: /proc/self/status > /seccomp\n")
    build(store, ctx, "-t", "conf")
    root = bundle(store, "conf", tmp_path / "b")
    assert (root / "m").read_text() == "refused\n"
    assert (root / "u").read_text() == "refused\n"
    assert (root / "seccomp").read_text().split() == ["Seccomp:", "2"]
    # CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE: bits 5, 10, 29.
    assert int((root / "caps").read_text().split()[1], 16) == (1 << 5) | (1 << 10) | (1 << 29)


def test_concurrent_builds_share_a_store(store, tmp_path):
    """Each build's temporary directory is locked: a second build starting
    meanwhile (which sweeps what killed builds left) leaves it alone."""
    from imagelib import HULL
    e = dict(os.environ, HULL_IMAGE_ROOT=str(store))
    procs = []
    for i in range(3):
        ctx = context(tmp_path, f"FROM base\nRUN echo started; sleep {3 if i == 0 else 1}; "
                      f"echo {i} > /n\nCOPY f /f\n", {"f": f"{i}\n"}, name=f"c{i}")
        procs.append(subprocess.Popen([HULL, "image", "build", "-t", f"c{i}", str(ctx)], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        if i == 0:
            # The others start (and sweep hull/tmp) while this one runs.
            assert procs[0].stdout.readline() == "started\n"
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for i in range(3):
        root = bundle(store, f"c{i}", tmp_path / f"b{i}")
        assert (root / "n").read_text() == f"{i}\n" and (root / "f").read_text() == f"{i}\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_cleans_up(store, tmp_path, sig):
    """INT or TERM during RUN: the command is killed, the build fails saying
    so, and its temporary directory is gone at once (the store fixture checks
    hull/tmp is empty)."""
    from imagelib import HULL
    marker = f"hull-build-int-{os.getpid()}-{int(sig)}"
    ctx = context(tmp_path, f"FROM base\nRUN echo started; sleep 600; echo {marker}\n")
    e = dict(os.environ, HULL_IMAGE_ROOT=str(store))
    p = subprocess.Popen([HULL, "image", "build", "-t", "interrupted", str(ctx)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "started\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0
    assert "interrupted" in err, err
    assert not [q for q in pids_with_cmdline_containing(marker) if pid_alive(q)]
    assert "interrupted" not in hull_run("image", "list", root=store, check=True).stdout


def test_containerfile_choice_and_untagged(store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base\nLABEL from=dockerfile\n")
    r = build(store, ctx)
    digest = r.stdout.strip()
    assert "COMMIT\n" in r.stderr
    # Untagged: found by its digest only.
    assert inspect(store, digest)["config"]["Labels"] == {"from": "dockerfile"}
    (ctx / "Containerfile").write_text("FROM base\nLABEL from=containerfile\n")
    build(store, ctx, "-t", "choice")
    assert inspect(store, "choice")["config"]["Labels"] == {"from": "containerfile"}
    other = tmp_path / "elsewhere.cf"
    other.write_text("FROM base\nLABEL from=elsewhere\nBAD\n")
    line = hull_error_line(build(store, ctx, "-f", other, "-t", "choice", check=False))
    assert "elsewhere.cf:3: unknown instruction BAD" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = hull_error_line(build(store, empty, check=False))
    assert "no Containerfile or Dockerfile" in line
