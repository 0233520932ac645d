"""Every isolation level runs from an image of the store (`--image REF`).

Images are made offline (imagelib: busybox-static and the files a test
needs) and written straight into a store of the test's own (the OCI layout
under tmp_path); hull finds their layers not unpacked and runs
`hull-image prepare` itself, as it does for images skopeo copied in. The
checks read what the program saw from inside and the host's state from
outside: mountinfo (of the host, and of the supervisor while it runs), the
store's use marks, the microVM disk cache.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import HULL, pid_alive, wait_until
from imagelib import Dir, File, Symlink, busybox_layer, whiteout, write_oci_layout
from sandboxlib import UID_BASE, is_own_block
import test_vm_lib

OS_RELEASE = 'ID=hull-levels-test\nPRETTY_NAME="the image, not the host"\n'
BB = "localhost/levels/bb:1"
CFG = "localhost/levels/cfg:1"
WH = "localhost/levels/whiteout:1"
SYMTMP = "localhost/levels/symtmp:1"


def bb_entries(**extra):
    e = busybox_layer(extra={"etc/os-release": File(OS_RELEASE), "srv": Dir(), **extra})
    return e


@pytest.fixture
def store(tmp_path):
    """A store of this test's own holding the test images."""
    root = tmp_path / "store"
    imgs = {}
    imgs[BB] = write_oci_layout(root, BB, [bb_entries()],
                                config={"Cmd": ["sh", "-c", "echo default-cmd"]})
    imgs[CFG] = write_oci_layout(
        root, CFG, [bb_entries()],
        config={"Env": ["PATH=/bin", "GREETING=hello", "ONLY_IMAGE=yes"], "WorkingDir": "/srv",
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ['echo "cmd:$GREETING:$ONLY_IMAGE:$(pwd)"']})
    imgs[WH] = write_oci_layout(
        root, WH, [bb_entries(**{"etc/hidden": File("base\n"), "etc/kept": File("kept\n")}),
                   dict([whiteout("etc/hidden"), ("etc/added", File("added\n"))])])
    sym = bb_entries()
    for d in ("tmp", "proc", "dev"):
        del sym[d]
    sym["tmp"] = Symlink("/")
    imgs[SYMTMP] = write_oci_layout(root, SYMTMP, [sym])
    return root, imgs


def run(*args, root, timeout=300, input=None, env=None):
    return subprocess.run([HULL, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          input=input, env=dict(os.environ, HULL_IMAGE_ROOT=str(root), **(env or {})))


def sandbox(root, *args, timeout=300, env=None):
    """`hull sandbox run --json --image-root ROOT ARGS`: (rc, result, stderr)."""
    p = run("sandbox", "run", "--json", "--image-root", root, *args, root=root, timeout=timeout,
            env=env)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def overlay_mounts_of(pid="self"):
    """Mount points of pid's mount namespace that are hull's image roots."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return [ln.split()[4] for ln in f if "/run/hull-empty/image-" in ln.split()[4]]


def mount_points(pid="self"):
    with open(f"/proc/{pid}/mountinfo") as f:
        return [ln.split()[4] for ln in f]


def image_remove(root, ref):
    return run("image", "remove", "--image-root", root, ref, root=root)


def has_image_remove():
    p = subprocess.run([HULL, "image", "remove", "--help"], capture_output=True, text=True)
    return p.returncode == 0


# ---- container level (the default) -----------------------------------------

def test_the_program_sees_the_image_read_only_with_a_fresh_tmp(store):
    root, imgs = store
    script = ("cat /etc/os-release; "
              "test -e /usr/bin/python3 && echo HOST-USR-VISIBLE; ls /usr/bin | wc -l; "
              "touch /new 2>/dev/null && echo ROOT-WRITABLE; "
              "ls -A /tmp | wc -l; echo data > /tmp/f && cat /tmp/f; id -u")
    rc, r, err = sandbox(root, "--image", BB, "--", "sh", "-c", script)
    assert rc == 0, err
    assert r["verdict"] == "ok", r
    lines = r["stdout"].splitlines()
    assert "\n".join(lines[:2]) + "\n" == OS_RELEASE
    # The host's /usr (python3 is there) is not: the image's usr/bin is empty.
    assert lines[2:] == ["0", "0", "data", "1000"], r["stdout"]
    assert r["image"] == {"name": BB, "digest": imgs[BB].digest}
    assert r["isolation"] == "container"
    assert overlay_mounts_of() == []


@pytest.mark.parametrize("isolation", ["container", "process"])
def test_the_sandboxs_mountinfo_names_no_host_path(store, tmp_path, isolation):
    """The root's mounts name layers by digest alone: not the store, not
    hull's directories; for one layer, two, and an image under hull's own."""
    root, _ = store
    bare = "localhost/levels/bare:1"
    e = bb_entries()
    for d in ("tmp", "proc", "dev"):
        del e[d]
    write_oci_layout(root, bare, [e])
    for ref in (BB, WH, bare):
        rc, r, err = sandbox(root, "--isolation", isolation, "--image", ref, "--",
                             "cat", "/proc/self/mountinfo")
        assert rc == 0 and r["verdict"] == "ok", (ref, err, r)
        for host in (str(root), str(tmp_path), "/run/hull", "/var/lib/hull"):
            assert host not in r["stdout"], (ref, host, r["stdout"])
        first = r["stdout"].splitlines()[0].split()
        assert first[3:5] == ["/", "/"] and first[first.index("-") + 1] == "overlay", (ref, first)


def test_the_guarantees_of_the_container_level_hold(store):
    root, _ = store
    rc, r, err = sandbox(root, "--image", BB, "--", "sh", "-c",
                         "grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; "
                         "cat /proc/self/uid_map; readlink /proc/self/ns/user")
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    status = dict(ln.split(":\t") for ln in r["stdout"].splitlines()[:4])
    assert status == {"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
                      "NoNewPrivs": "1", "Seccomp": "2"}, r["stdout"]
    uid_map = r["stdout"].splitlines()[4].split()
    assert uid_map[0] == "0" and is_own_block(int(uid_map[1])) and uid_map[2] == "65536", uid_map
    assert r["stdout"].splitlines()[5] != os.readlink("/proc/self/ns/user")


def test_the_image_config_is_applied(store):
    root, _ = store
    # No command: Entrypoint + Cmd, in WorkingDir, with Env.
    rc, r, err = sandbox(root, "--image", CFG)
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == "cmd:hello:yes:/srv\n"
    # A command goes after the Entrypoint; --env and --workdir win.
    rc, r, err = sandbox(root, "--image", CFG, "--env", "GREETING=bye", "--workdir", "/tmp", "--",
                         'echo "user:$GREETING:$ONLY_IMAGE:$(pwd):$PATH:$HOME"')
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == "user:bye:yes:/tmp:/bin:/tmp\n"
    # Without Entrypoint, a command replaces Cmd.
    rc, r, err = sandbox(root, "--image", BB)
    assert r["stdout"] == "default-cmd\n", (err, r)
    rc, r, err = sandbox(root, "--image", BB, "--", "echo", "mine")
    assert r["stdout"] == "mine\n", (err, r)


def test_a_working_dir_the_image_lacks_is_the_callers_error(store, tmp_path):
    """A WorkingDir the read-only image root does not have cannot be made:
    the run says so as the command's fault (bad_command, 126), one `hull:`
    line without --json, never an internal error."""
    root, _ = store
    ref = "localhost/levels/nowd:1"
    write_oci_layout(root, ref, [bb_entries()], config={"WorkingDir": "/no/such/dir"})
    rc, r, err = sandbox(root, "--image", ref, "--", "pwd")
    assert rc == 0 and (r["verdict"], r["exit_code"]) == ("bad_command", 126), (err, r)
    assert r["error"].startswith("workdir: /no/such/dir is not there and cannot be made"), r
    assert "Read-only file system" in r["error"], r
    p = run("sandbox", "run", "--image-root", root, "--image", ref, "--", "pwd", root=root)
    assert p.returncode == 126 and p.stderr.splitlines() == [f"hull: sandbox: {r['error']}"], p
    # --workdir under /tmp is made, as before.
    rc, r, err = sandbox(root, "--image", ref, "--workdir", "/tmp/w", "--", "pwd")
    assert rc == 0 and r["stdout"] == "/tmp/w\n", (err, r)


# How the layers are mounted (image/rootfs.c): overlayfs, or a copy on a
# tmpfs where overlayfs cannot serve; hull's root is the same either way.
OVERLAY_MODES = ["auto", "copy"]


@pytest.mark.parametrize("mode", OVERLAY_MODES)
def test_a_whiteout_hides_the_base_layers_file(store, mode):
    root, _ = store
    rc, r, err = sandbox(root, "--image", WH, "--", "sh", "-c",
                         "ls /etc/hidden 2>&1 >/dev/null | wc -l; cat /etc/kept /etc/added",
                         env={"HULL_IMAGE_OVERLAY": mode})
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == "1\nkept\nadded\n"


@pytest.mark.parametrize("mode", OVERLAY_MODES)
def test_a_symlinked_tmp_is_replaced_by_the_sandboxs_own(store, tmp_path, mode):
    root, _ = store
    src = tmp_path / "in.txt"
    src.write_text("copied\n")
    # The image has tmp -> / and no /proc or /dev: the sandbox's /tmp is a
    # directory of its root all the same, the copy-in lands there, and
    # nothing written to /tmp appears at / (the image's root stays as it was).
    rc, r, err = sandbox(root, "--image", SYMTMP, "--copy-in", f"{src}:/tmp/in.txt", "--",
                         "sh", "-c", "test -L /tmp && echo LINK; cat /tmp/in.txt; echo x > /tmp/y;"
                         " ls / | grep -cx -e y -e in.txt; grep -c ' /tmp tmpfs' /proc/mounts;"
                         " test -r /proc/self/status && echo PROC; test -c /dev/null && echo DEV",
                         env={"HULL_IMAGE_OVERLAY": mode})
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == "copied\n0\n1\nPROC\nDEV\n"
    assert overlay_mounts_of() == []


@pytest.mark.parametrize("isolation", ["container", "process"])
def test_the_images_devices_and_setuid_files_give_nothing(tmp_path, isolation):
    """An image is untrusted input: a device node in it (here the host's
    memory) cannot be opened, a setuid root binary runs as the sandbox's user."""
    from imagelib import CharDev
    root = tmp_path / "store"
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    write_oci_layout(root, "localhost/levels/evil:1", [bb_entries(**{
        "mem": CharDev(1, 1, 0o666), "zero": CharDev(1, 5, 0o666),
        "usr/bin/id": File(bb, 0o4755)})])
    rc, r, err = sandbox(root, "--isolation", isolation, "--image", "localhost/levels/evil:1", "--",
                         "sh", "-c", "test -c /mem && echo NODE; head -c1 /mem >/dev/null 2>&1 ||"
                         " echo NO-MEM; head -c1 /zero >/dev/null 2>&1 || echo NO-ZERO;"
                         " test -u /usr/bin/id && echo SUID; /usr/bin/id -u")
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    out = r["stdout"].split()
    assert out[:4] == ["NODE", "NO-MEM", "NO-ZERO", "SUID"], r
    assert int(out[4]) != 0, r


def test_verdicts_and_limits_still_work(store):
    root, _ = store
    rc, r, _ = sandbox(root, "--image", BB, "--", "sh", "-c", "exit 3")
    assert (r["verdict"], r["exit_code"]) == ("exit_nonzero", 3)
    rc, r, _ = sandbox(root, "--image", BB, "--cpu-time", "300ms", "--wall-time", "60s", "--",
                       "sh", "-c", "while :; do :; done")
    assert r["verdict"] == "cpu_time_limit", r
    rc, r, _ = sandbox(root, "--image", BB, "--pids", "4", "--wall-time", "60s", "--", "sh", "-c",
                       "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait")
    assert r["verdict"] == "pids_limit", r
    rc, r, _ = sandbox(root, "--image", BB, "--output", "100", "--", "sh", "-c",
                       "while :; do echo 0123456789; done")
    assert r["verdict"] == "output_limit" and r["stdout_truncated"], r


def test_nothing_is_mounted_on_the_host_even_when_the_supervisor_is_killed(store):
    root, imgs = store
    p = subprocess.Popen([HULL, "sandbox", "run", "--image-root", str(root), "--image", BB,
                          "--wall-time", "120s", "--", "sleep", "97"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: overlay_mounts_of(p.pid) and sleeper(), timeout=120), \
            p.stderr.read1() if p.poll() is not None else "the workload did not start"
        # The supervisor's own namespace has the image's root (and the
        # idmapped layers it is made of); the host's has not.
        mine = set(overlay_mounts_of(p.pid)) - {"/run/hull-empty/image-base-idmapped"}
        assert mine == {"/run/hull-empty/image-lower", "/run/hull-empty/image-root"}
        layers = str(root / "hull" / "layers")
        assert layers in mount_points(p.pid)
        assert overlay_mounts_of() == [] and layers not in mount_points()
        assert overlay_mounts_of(1) == [] and layers not in mount_points(1)
        # In use: remove refuses.
        use = root / "hull" / "using" / imgs[BB].digest.split(":")[1]
        assert use.exists()
        if has_image_remove():
            r = image_remove(root, BB)
            assert r.returncode != 0 and "in use" in r.stderr, r.stderr
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # The sandbox died with it, and its mounts with the namespace.
    assert wait_until(lambda: not sleeper(), timeout=30)
    assert overlay_mounts_of() == []
    # The next run removes the killed one's state and cgroups.
    rc, r, err = sandbox(root, "--image", BB, "--", "true")
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    if has_image_remove():
        r = image_remove(root, BB)
        assert r.returncode == 0, r.stderr


def test_concurrent_runs_each_see_their_own_image(store):
    """Every run mounts at the same place, each in its own namespace."""
    root, _ = store
    procs = [subprocess.Popen([HULL, "sandbox", "run", "--json", "--image-root", str(root),
                               "--image", ref, "--wall-time", "60s", "--", "sh", "-c",
                               "sleep 1; cat /etc/kept 2>/dev/null || echo none"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ref in (WH, BB, WH, BB)]
    outs = [p.communicate(timeout=300) for p in procs]
    got = [json.loads(o)["stdout"] if o else e for o, e in outs]
    assert got == ["kept\n", "none\n", "kept\n", "none\n"], got
    assert overlay_mounts_of() == []


def sleeper():
    """Pids of the sandboxed `sleep 97`."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if Path(f"/proc/{d}/cmdline").read_bytes() == b"sleep\x0097\x00" and pid_alive(int(d)):
                    out.append(int(d))
            except OSError:
                pass
    return out


def test_an_imported_image_runs_and_the_library_takes_image_requests(tmp_path):
    """`hull image import` (layers unpacked on the way in), and a REST-style
    request through the library alone (as hulld runs one): "image" and no
    "cmd" runs the image's Cmd."""
    from imagelib import rootfs_tar
    root = tmp_path / "store"
    tar = tmp_path / "root.tar"
    tar.write_bytes(rootfs_tar(bb_entries()))
    p = run("image", "import", "--image-root", root, "--change", 'CMD ["cat", "/etc/os-release"]',
            tar, "localhost/levels/imported:1", root=root)
    assert p.returncode == 0, p.stderr
    rc, r, err = sandbox(root, "--pull", "never", "--image", "localhost/levels/imported:1")
    assert rc == 0 and r["stdout"] == OS_RELEASE, (err, r)
    assert r["image"]["digest"] == p.stdout.split()[-1]
    tool = Path(HULL).parent / "tests" / "sandboxtool"
    req = json.dumps({"image": "localhost/levels/imported:1", "env": {"X": "1"}})
    env = dict(os.environ, HULL_IMAGE_ROOT=str(root),
               HULL_IMAGE_HELPER=str(Path(HULL).parent / "hull-image"))
    q = subprocess.run([str(tool)], input=req, capture_output=True, text=True, env=env, timeout=300)
    assert q.returncode == 0, q.stderr
    r = json.loads(q.stdout)
    assert r["verdict"] == "ok" and r["stdout"] == OS_RELEASE, r
    req = json.dumps({"image": "localhost/levels/imported:1", "cmd": ["sh", "-c", "echo $X"],
                      "env": {"X": "1"}})
    q = subprocess.run([str(tool)], input=req, capture_output=True, text=True, env=env, timeout=300)
    assert json.loads(q.stdout)["stdout"] == "1\n", q.stdout + q.stderr


# ---- process level -----------------------------------------------------------

def test_process_level_runs_in_the_image_too(store):
    root, imgs = store
    rc, r, err = sandbox(root, "--isolation", "process", "--image", CFG, "--", "cat /etc/os-release;"
                         " test -e /usr/bin/python3 && echo HOST-USR; touch /x 2>/dev/null || echo RO;"
                         " id -u; pwd; echo $GREETING")
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    out = r["stdout"].splitlines()
    assert "\n".join(out[:2]) + "\n" == OS_RELEASE
    assert out[2] == "RO" and 1000100000 <= int(out[3]) < 1000101024, out
    assert out[4:] == ["/srv", "hello"]
    assert r["isolation"] == "process" and r["image"]["digest"] == imgs[CFG].digest
    assert overlay_mounts_of() == []


# ---- refusals ------------------------------------------------------------------

def test_bad_image_requests_are_refused_by_name(store, tmp_path):
    root, _ = store
    rc, r, err = sandbox(root, "--pull", "never", "--image", "localhost/levels/absent:1", "--",
                         "true")
    assert rc == 125 and r is None
    assert "image localhost/levels/absent:1" in err and "not found" in err, err
    # Absent and pull allowed: hull-image pull runs, and why it failed is
    # said in hull's one error line.
    rc, r, err = sandbox(root, "--image", "127.0.0.1:9/levels/absent:1", "--", "true")
    lines = [ln for ln in err.splitlines() if ln.startswith("hull: ")]
    assert rc == 125 and len(lines) == 1, err
    assert "127.0.0.1:9/levels/absent:1" in lines[0] and "connect" in lines[0], err
    rc, r, err = sandbox(root, "--image", BB, "--rootfs", str(tmp_path), "--", "true")
    assert rc == 125 and "not both" in err, err
    rc, r, err = sandbox(root, "--pull", "sometimes", "--image", BB, "--", "true")
    assert rc == 125 and "--pull" in err, err
    p = run("sandbox", "run", "--", root=root)
    assert p.returncode == 125 and "no command" in p.stderr


def test_an_absent_image_is_pulled_unless_told_never(tmp_path):
    from registrylib import Registry
    layout = tmp_path / "layout"
    img = write_oci_layout(layout, "bb", [bb_entries()], config={"Cmd": ["cat", "/etc/os-release"]})
    root = tmp_path / "empty-store"
    conf = tmp_path / "registries.conf"
    with Registry(tmp_path) as reg:
        assert reg.push_oci(layout, "bb", "levels/bb:1").returncode == 0
        conf.write_text(f'[[registry]]\nprefix = "{reg.host}"\ninsecure = true\n')
        ref = f"{reg.host}/levels/bb:1"
        env = dict(os.environ, HULL_REGISTRIES_CONF=str(conf))
        p = subprocess.run([HULL, "sandbox", "run", "--json", "--image-root", str(root), "--pull",
                            "never", "--image", ref], capture_output=True, text=True, env=env,
                           timeout=300)
        assert p.returncode == 125 and not (root / "index.json").exists(), p.stderr
        p = subprocess.run([HULL, "sandbox", "run", "--json", "--image-root", str(root), "--image",
                            ref], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert r["verdict"] == "ok" and r["stdout"] == OS_RELEASE, r
        assert r["image"]["digest"] == img.digest
        # Stored now: the next run does not ask the registry again.
        gets = len(reg.requests("GET"))
        rc, r, err = sandbox(root, "--pull", "never", "--image", ref)
        assert rc == 0 and r["stdout"] == OS_RELEASE, err
        assert len(reg.requests("GET")) == gets


# ---- microVM level ---------------------------------------------------------------

@pytest.fixture
def vm_ready():
    test_vm_lib.skip_unless_ready()
    yield
    assert not test_vm_lib.qemu_pids(), "a QEMU process outlived its run"


@pytest.mark.slow
def test_microvm_boots_from_one_disk_per_manifest(store, vm_ready, tmp_path):
    root, imgs = store
    hexd = imgs[CFG].digest.split(":")[1]
    disk = root / "hull" / "disks" / f"{hexd}.sqfs"
    # What a builder killed mid-way left: removed by the next one.
    disk.parent.mkdir(parents=True)
    (disk.parent / f"{hexd}.sqfs.tmp.999999").write_bytes(b"cut short")
    args = ["--isolation", "microvm", "--cpu-time", "60s", "--wall-time", "120s", "--image", CFG]
    env = dict(os.environ, HULL_VM_ACCEL=test_vm_lib.ACCEL)
    p = subprocess.run([HULL, "sandbox", "run", "--json", "--image-root", str(root), *args, "--",
                        'cat /etc/os-release; echo "$GREETING:$(pwd)"; test -e /usr/bin/python3'
                        ' && echo HOST-PY; ls /x 2>/dev/null; echo w > /x && cat /x'],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["verdict"] == "ok" and r["isolation"] == "microvm", r
    assert r["stdout"] == OS_RELEASE + "hello:/srv\nw\n", r
    assert r["image"] == {"name": CFG, "digest": imgs[CFG].digest}
    st = disk.stat()
    # The second run reuses the disk: same file, not rebuilt.
    p = subprocess.run([HULL, "sandbox", "run", "--json", "--image-root", str(root), *args],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["stdout"] == "cmd:hello:yes:/srv\n"
    st2 = disk.stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert sorted(os.listdir(disk.parent)) == [f"{hexd}.lock", f"{hexd}.sqfs"]


@pytest.mark.slow
def test_microvm_warm_start_uses_its_own_store(vm_ready, tmp_path):
    """A template saved by a VM of one store is restored for the same image
    in another store; the restored VM reads its own store, and the first
    store going away changes nothing."""
    env = dict(os.environ, HULL_VM_ACCEL=test_vm_lib.ACCEL)
    args = ["--isolation", "microvm", "--cpu-time", "60s", "--wall-time", "120s", "--image", CFG,
            "--", "cat", "/etc/os-release"]
    for name in ("first", "second"):
        root = tmp_path / name
        write_oci_layout(root, CFG, [bb_entries()], config={"Cmd": ["true"]})
        p = subprocess.run([HULL, "sandbox", "run", "--json", "--image-root", str(root), *args],
                           capture_output=True, text=True, timeout=900, env=env)
        assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
        assert json.loads(p.stdout)["stdout"] == OS_RELEASE
        shutil.rmtree(root)


@pytest.mark.slow
def test_vm_create_image_holds_it_while_running(store, vm_ready, tmp_path):
    root, imgs = store
    h = test_vm_lib.Hull(str(tmp_path / "state"))
    h.env["HULL_IMAGE_ROOT"] = str(root)
    vid = "img-levels-vm"
    h.ok("vm", "create", "--memory", test_vm_lib.MEM, "--image", CFG, vid)
    try:
        st = h.state(vid)
        assert st["image"]["name"] == CFG and st["image"]["digest"] == imgs[CFG].digest, st
        h.ok("vm", "start", vid, timeout=600)
        out = h.sh(vid, 'cat /etc/os-release; echo "$GREETING:$(pwd)"')
        assert out == OS_RELEASE + "hello:/srv\n"
        # --env and --cwd over the image's; its PATH stays without one given.
        p = h.run("vm", "exec", "--env", "GREETING=bye", "--cwd", "/tmp", vid, "--", "sh", "-c",
                  'echo "$GREETING:$(pwd):$PATH:$ONLY_IMAGE"')
        assert p.returncode == 0 and p.stdout.decode() == "bye:/tmp:/bin:yes\n", p.stderr
        hexd = imgs[CFG].digest.split(":")[1]
        disk = root / "hull" / "disks" / f"{hexd}.sqfs"
        assert st["measured"]["rootfs"]["path"] == str(disk)
        # QEMU itself holds the image's use mark (the hull that started it is gone).
        qemu = test_vm_lib.qemu_pids(vid)
        assert len(qemu) == 1
        use = root / "hull" / "using" / hexd
        held = [os.readlink(f"/proc/{qemu[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{qemu[0]}/fd")]
        assert str(use) in held, held
        if has_image_remove():
            r = image_remove(root, CFG)
            assert r.returncode != 0 and "in use" in r.stderr, r.stderr
            # prune keeps what a running VM uses, its disk included.
            r = run("image", "prune", "--image-root", root, root=root)
            assert r.returncode == 0 and disk.exists(), r.stderr
        # A VM restored from its snapshot is a VM of the image too.
        snap = tmp_path / "vm.snap"
        h.ok("vm", "snapshot", vid, str(snap), timeout=600)
        h.ok("vm", "restore", str(snap), vid + "-2", timeout=600)
        try:
            assert h.state(vid + "-2")["image"]["digest"] == imgs[CFG].digest
            q2 = test_vm_lib.qemu_pids(vid + "-2")
            assert len(q2) == 1
            assert str(use) in [os.readlink(f"/proc/{q2[0]}/fd/{fd}")
                                for fd in os.listdir(f"/proc/{q2[0]}/fd")]
            assert h.sh(vid + "-2", "echo $GREETING") == "hello\n"
        finally:
            h.run("vm", "delete", "--force", vid + "-2")
        h.ok("vm", "stop", vid)
        if has_image_remove():
            r = image_remove(root, CFG)
            assert r.returncode == 0, r.stderr
            r = run("image", "prune", "--image-root", root, root=root)
            assert r.returncode == 0 and not disk.exists(), r.stderr
            # Stopped, it holds nothing: its image is gone, and it says so.
            r = h.run("vm", "start", vid)
            assert r.returncode != 0 and b"removed" in r.stderr, r.stderr
    finally:
        h.run("vm", "delete", "--force", vid)


def test_the_same_image_makes_the_same_disk_in_any_store(tmp_path, vm_ready):
    """The disk's digest is what attestation and templates key on: two
    stores holding one image (unpacked at different times) give one digest,
    with and without hull's layer. `vm create` builds and measures; nothing
    boots."""
    sym = bb_entries()
    for d in ("tmp", "proc", "dev"):
        del sym[d]
    digests = {}
    for n in ("a", "b"):
        root = tmp_path / f"store-{n}"
        write_oci_layout(root, WH, [bb_entries(**{"etc/hidden": File("base\n")}),
                                    dict([whiteout("etc/hidden")])])
        write_oci_layout(root, SYMTMP, [sym])
        h = test_vm_lib.Hull(str(tmp_path / "state"))
        for ref in (WH, SYMTMP):
            vid = f"disk-{n}-{len(digests)}"
            h.ok("vm", "create", "--image-root", str(root), "--image", ref, vid)
            try:
                digests.setdefault(ref, set()).add(h.state(vid)["measured"]["rootfs"]["sha256"])
            finally:
                h.ok("vm", "delete", vid)
        time.sleep(1.1)  # the second store's layers are unpacked a second later
    assert [len(v) for v in digests.values()] == [1, 1], digests


# ---- owners and User (the image's root idmapped with the sandbox's mapping) ----

OWN = "localhost/levels/owners:1"
OWN_NOTMP = "localhost/levels/owners-notmp:1"
OWNER_SCRIPT = ("stat -c '%u:%g %a %n' / /bin/busybox /data/owned /home/app; cat /data/owned; "
                "id -u; id -g")


def owned_entries(**extra):
    owned = File("app's secret\n", 0o600, uid=1000, gid=1000)
    return bb_entries(**{"data": Dir(), "data/owned": owned,
                         "data/rootonly": File("root's\n", 0o600), **extra})


def owners_store(tmp_path, user="1000:1000", name=OWN, **extra):
    root = tmp_path / "store"
    config = {"User": user} if user is not None else {}
    write_oci_layout(root, name, [owned_entries(**extra)], config=config)
    return root


def assert_nothing_mounted(root):
    assert overlay_mounts_of() == []
    assert not [m for m in mount_points() if m.startswith(str(root))]


def test_an_image_with_a_bind_runs_as_its_own_block_and_writes_as_the_shared_one(tmp_path):
    """--image and a rw --bind together: the image's files keep its owners,
    the sandbox runs as a block of host uids of its own (before, any bind
    put it in the shared block), and what its uid 0 (the image's User)
    writes on the bind is owned by host uid 1000000000, the shared block's
    uid 0 (docs/sandbox.md "Users")."""
    root = owners_store(tmp_path, user="0")
    data = Path(tempfile.mkdtemp(prefix="hull-imgbind-"))
    try:
        data.chmod(0o755)
        os.chown(data, UID_BASE, UID_BASE)
        rc, r, err = sandbox(root, "--image", OWN, "--bind", f"{data}:/srv:rw", "--", "sh", "-c",
                             "stat -c '%u:%g' / /data/owned /srv; echo x > /srv/f; "
                             "cat /proc/self/uid_map")
        assert rc == 0 and r["verdict"] == "ok", (err, r)
        lines = r["stdout"].splitlines()
        assert lines[:3] == ["0:0", "1000:1000", "0:0"], r
        assert is_own_block(int(lines[3].split()[1])), r
        st = os.stat(data / "f")
        assert (st.st_uid, st.st_gid) == (UID_BASE, UID_BASE)
    finally:
        shutil.rmtree(data)
    assert_nothing_mounted(root)


@pytest.mark.parametrize("mode", ["auto", "legacy", "copy"])
def test_the_images_owners_show_inside_and_its_user_reads_its_own_file(tmp_path, mode):
    """As podman shows them: 0:0 for root's files, 1000:1000 for the app's.

    And User 1000 reads its own 0600 file."""
    root = owners_store(tmp_path)
    rc, r, err = sandbox(root, "--image", OWN, "--", "sh", "-c", OWNER_SCRIPT,
                         env={"HULL_IMAGE_OVERLAY": mode})
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == ("0:0 755 /\n0:0 755 /bin/busybox\n1000:1000 600 /data/owned\n"
                           "1000:1000 755 /home/app\napp's secret\n1000\n1000\n"), r["stdout"]
    assert "idmap" not in err, err
    # Root's 0600 file stays root's: the workload is 1000 without capabilities.
    rc, r, err = sandbox(root, "--image", OWN, "--", "cat", "/data/rootonly")
    assert r["verdict"] == "exit_nonzero" and "Permission denied" in r["stderr"], (err, r)
    # The store's files keep their owners: the mapping is the mount's, not a chown.
    layer = next((root / "hull" / "layers").iterdir())
    st = os.stat(layer / "data" / "owned")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert_nothing_mounted(root)


def test_an_image_without_tmp_keeps_its_owners_under_hulls_layer(tmp_path):
    """hull's layer over an image lacking /tmp, /proc, /dev is idmapped too: / is 0:0 inside."""
    root = tmp_path / "store"
    e = owned_entries()
    for d in ("tmp", "proc", "dev"):
        del e[d]
    write_oci_layout(root, OWN_NOTMP, [e], config={"User": "1000:1000"})
    rc, r, err = sandbox(root, "--image", OWN_NOTMP, "--", "sh", "-c", OWNER_SCRIPT)
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    lines = r["stdout"].splitlines()
    assert lines[1:] == ["0:0 755 /bin/busybox", "1000:1000 600 /data/owned",
                         "1000:1000 755 /home/app", "app's secret", "1000", "1000"], r["stdout"]
    # / is hull's layer's root directory (root's on the host).
    assert lines[0] in ("0:0 755 /", "65534:65534 755 /"), lines[0]
    assert_nothing_mounted(root)


def test_a_named_user_and_group_resolve_in_the_images_own_files(tmp_path):
    group = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app,other\n"
    root = owners_store(tmp_path, user="app", **{"etc/group": File(group)})
    rc, r, err = sandbox(root, "--image", OWN, "--", "sh", "-c", "id; cat /data/owned")
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    # The groups that list it are its supplementary groups, as runc gives them.
    assert r["stdout"] == "uid=1000(app) gid=1000(app) groups=2000(extra)\napp's secret\n"
    # name:group, the group by name
    root2 = owners_store(tmp_path / "2", user="app:nogroup")
    rc, r, err = sandbox(root2, "--image", OWN, "--", "sh", "-c", "id -u; id -g")
    assert rc == 0 and r["stdout"] == "1000\n65534\n", (err, r)
    # uid alone: its passwd line gives the group; root is uid 0 without capabilities.
    root3 = owners_store(tmp_path / "3", user="0")
    rc, r, err = sandbox(root3, "--image", OWN, "--", "sh", "-c",
                         "id -u; id -g; grep CapEff /proc/self/status; cat /data/rootonly")
    assert rc == 0 and r["stdout"] == "0\n0\nCapEff:\t0000000000000000\nroot's\n", (err, r)
    assert_nothing_mounted(root)


def test_without_a_user_the_sandbox_user_runs(tmp_path):
    """No User: the sandbox's own user (1000:1000 inside), who is the image's uid 1000 here."""
    root = owners_store(tmp_path, user=None)
    rc, r, err = sandbox(root, "--image", OWN, "--", "sh", "-c",
                         "id -u; id -g; cat /data/owned; cat /data/rootonly")
    assert r["verdict"] == "exit_nonzero", (err, r)
    assert r["stdout"] == "1000\n1000\napp's secret\n", r["stdout"]
    assert "Permission denied" in r["stderr"]
    assert_nothing_mounted(root)


@pytest.mark.parametrize("user,says", [
    ("70000", "User '70000' is 70000:0, outside the ids the sandbox maps (0-65535)"),
    ("app:70000", "User 'app:70000' is 1000:70000, outside the ids the sandbox maps (0-65535)"),
    ("nosuch", "user 'nosuch' is not in the image's /etc/passwd"),
    ("app:nosuch", "group 'nosuch' is not in the image's /etc/group"),
    ("99999999999", "user '99999999999': not a uid (0 to 4294967294)"),
    ("app:4294967295", "group '4294967295': not a gid (0 to 4294967294)"),
])
def test_a_user_the_sandbox_cannot_be_is_refused_by_name(tmp_path, user, says):
    root = owners_store(tmp_path, user=user)
    rc, r, err = sandbox(root, "--image", OWN, "--", "id")
    assert rc == 125 and r is None, (rc, r, err)
    assert err.count("\n") == 1 and err.startswith("hull: ") and says in err, err
    assert OWN in err
    assert_nothing_mounted(root)


def test_where_the_kernel_cannot_idmap_the_run_works_and_says_so(tmp_path):
    """HULL_IMAGE_IDMAP=off takes the path of a kernel without idmapped layers."""
    root = owners_store(tmp_path)
    rc, r, err = sandbox(root, "--image", OWN, "--", "sh", "-c",
                         "stat -c '%u:%g' /bin/busybox /data/owned; id -u",
                         env={"HULL_IMAGE_IDMAP": "off"})
    assert rc == 0 and r["verdict"] == "ok", (err, r)
    assert r["stdout"] == "65534:65534\n65534:65534\n1000\n"
    assert "cannot idmap" in err and "nobody" in err, err
    assert_nothing_mounted(root)


def test_process_level_sees_the_hosts_owners_and_runs_as_its_own_uid(tmp_path):
    root = owners_store(tmp_path)
    rc, r, err = sandbox(root, "--isolation", "process", "--image", OWN, "--", "sh", "-c",
                         "stat -c '%u:%g' /bin/busybox /data/owned; id -u; cat /data/owned")
    assert r is not None and r["verdict"] == "exit_nonzero", (err, r)
    lines = r["stdout"].splitlines()
    assert lines[:2] == ["0:0", "1000:1000"], r["stdout"]
    assert 1000100000 <= int(lines[2]) < 1000100000 + 1024
    assert "Permission denied" in r["stderr"]
    assert_nothing_mounted(root)


def test_a_symlinked_passwd_cannot_name_a_host_user(tmp_path):
    """The image's /etc/passwd is read beneath its root: a link to the host's resolves in the image."""
    assert any(ln.startswith("daemon:") for ln in open("/etc/passwd"))
    root = owners_store(tmp_path, user="daemon",
                        **{"etc/passwd": Symlink("../../../../../../../../etc/passwd")})
    rc, r, err = sandbox(root, "--image", OWN, "--", "id", "-u")
    assert rc == 125 and r is None, (rc, r, err)
    assert err.count("\n") == 1 and "User 'daemon'" in err, err
    assert_nothing_mounted(root)
