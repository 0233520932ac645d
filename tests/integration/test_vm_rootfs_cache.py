"""The default rootfs is cached by the digest of its inputs: a second
`vm create` reuses the image and the kept file list (no ldd, nothing
rebuilt), and a changed input (busybox, or a library the list names) gives
a new list and a new image. Inputs are changed without touching the host:
a copy is bind-mounted over the file in a private mount namespace."""
import json
import os
import shutil
import subprocess

import pytest

from test_vm_lib import HULL, MEM, Hull, new_root, sha256, skip_unless_ready


@pytest.fixture
def hc(tmp_path):
    skip_unless_ready()
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) missing")
    root = new_root()
    h = Hull(root)
    h.env = dict(h.env, HULL_VM_CACHE=str(tmp_path / "cache"))
    yield h
    for vid in os.listdir(os.path.join(root, "vm")) if os.path.isdir(os.path.join(root, "vm")) else []:
        h.run("vm", "delete", "--force", vid)
    shutil.rmtree(root, ignore_errors=True)


def create(h, vid, binds=()):
    """`vm create` with each (copy, target) of binds mounted over target."""
    mounts = "".join(f'mount --bind "{src}" "{dst}" && ' for src, dst in binds)
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
           mounts + 'exec "$0" --root "$1" vm create --memory "$2" "$3"', HULL, h.root, MEM, vid]
    p = subprocess.run(cmd, capture_output=True, env=h.env, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(h.ok("vm", "state", vid).stdout)["measured"]["rootfs"]


def listing(h):
    d = os.path.join(h.env["HULL_VM_CACHE"], "rootfs")
    return {f: os.stat(os.path.join(d, f)) for f in os.listdir(d)}


def ident(st):
    return (st.st_ino, st.st_mtime_ns)


def test_unchanged_inputs_reuse_list_and_image(hc):
    first = create(hc, "a")
    before = listing(hc)
    lists = [f for f in before if f.startswith("sources-")]
    assert len(lists) == 1
    image = os.path.basename(first["path"])
    assert image in before and image + ".sha256" in before
    second = create(hc, "b")
    after = listing(hc)
    assert second == first
    # Nothing rewritten: the same list, image and digest files.
    assert set(after) - {"build.lock"} == set(before) - {"build.lock"}
    for f in (lists[0], image, image + ".sha256"):
        assert ident(after[f]) == ident(before[f]), f
    assert sha256(second["path"]) == second["sha256"]


def test_changed_busybox_gives_a_new_list_and_image(hc, tmp_path):
    first = create(hc, "a")
    before = listing(hc)
    copy = tmp_path / "busybox"
    shutil.copy2("/bin/busybox", copy)  # same bytes, another inode
    changed = create(hc, "b", [(copy, "/bin/busybox")])
    after = listing(hc)
    assert changed["path"] != first["path"]
    assert sha256(changed["path"]) == changed["sha256"]
    assert len([f for f in after if f.startswith("sources-")]) == 2
    # The first image is untouched, and used again once the input is back.
    assert ident(after[os.path.basename(first["path"])]) == ident(before[os.path.basename(first["path"])])
    assert create(hc, "c") == first


def test_changed_library_runs_ldd_again(hc, tmp_path):
    first = create(hc, "a")
    d = os.path.join(hc.env["HULL_VM_CACHE"], "rootfs")
    lst = [f for f in os.listdir(d) if f.startswith("sources-")][0]
    names = open(os.path.join(d, lst)).read().splitlines()
    lib = next(p for p in names if "/libz.so" in p or "/libm.so" in p)
    before = os.stat(os.path.join(d, lst))
    copy = tmp_path / os.path.basename(lib)
    shutil.copy2(os.path.realpath(lib), copy)
    changed = create(hc, "b", [(copy, os.path.realpath(lib))])
    # Same probe (python3 and its modules did not change), so the same
    # list file, written again by a new ldd run, and a new image.
    after = os.stat(os.path.join(d, lst))
    assert ident(after) != ident(before)
    assert changed["path"] != first["path"]
    assert sha256(changed["path"]) == changed["sha256"]
