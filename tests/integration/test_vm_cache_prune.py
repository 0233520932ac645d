"""`hull vm cache prune`: what the VM cache holds and no VM uses is removed
(kernels, initramfs and rootfs images, templates); what a VM record names,
the template of a --from-template VM and a template whose lock is held (a
restore or save under way) are kept. A private cache and state root; no VM
boots (`vm create` only measures and records)."""
import fcntl
import json
import os
import shutil

import pytest

from test_vm_lib import MEM, Hull, new_root, skip_unless_ready


@pytest.fixture
def hc(tmp_path):
    skip_unless_ready()
    root = new_root()
    h = Hull(root)
    h.cache = str(tmp_path / "cache")
    h.env = dict(h.env, HULL_VM_CACHE=h.cache)
    yield h
    vmdir = os.path.join(root, "vm")
    for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
        h.run("vm", "delete", "--force", vid)
    shutil.rmtree(root, ignore_errors=True)


def files(h, sub):
    d = os.path.join(h.cache, sub)
    return sorted(f for f in os.listdir(d) if not f.endswith(".lock")) if os.path.isdir(d) else []


def prune(h, *opts):
    p = h.run("vm", "cache", "prune", "--json", *opts)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def fake(h, sub, name, data=b"x" * 4096):
    os.makedirs(os.path.join(h.cache, sub), exist_ok=True)
    with open(os.path.join(h.cache, sub, name), "wb") as f:
        f.write(data)


def test_prune_keeps_what_vms_and_templates_use(hc):
    h = hc
    h.ok("vm", "create", "--memory", MEM, "v1")
    m = h.state("v1")["measured"]
    used = {m["kernel"]["vmlinux"], m["initrd"]["path"], m["rootfs"]["path"]}
    assert all(p.startswith(h.cache + "/") and os.path.exists(p) for p in used), m
    # Entries nothing uses: an old rootfs image with its digest, an old
    # initramfs, an old kernel, a template with its RAM file.
    fake(h, "rootfs", "rootfs-" + "a" * 64 + ".sqfs")
    fake(h, "rootfs", "rootfs-" + "a" * 64 + ".sqfs.sha256", b"a" * 64)
    fake(h, "initrd", "initrd-" + "b" * 64 + ".cpio")
    fake(h, "kernels", "vmlinux-" + "c" * 64)
    fake(h, "templates", "d" * 64 + ".snap")
    fake(h, "templates", "d" * 64 + ".snap.ram")
    # A template being restored (its lock held) is in use.
    fake(h, "templates", "e" * 64 + ".snap")
    lock = open(os.path.join(h.cache, "templates", "e" * 64 + ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    before = {s: files(h, s) for s in ("rootfs", "initrd", "kernels", "templates")}

    dry = prune(h, "--dry-run")
    assert dry["dry_run"] is True and dry["removed"], dry
    assert {s: files(h, s) for s in before} == before  # a dry run removes nothing

    r = prune(h)
    gone = {os.path.basename(e["path"]) for e in r["removed"]}
    assert gone == {"rootfs-" + "a" * 64 + ".sqfs", "rootfs-" + "a" * 64 + ".sqfs.sha256",
                    "initrd-" + "b" * 64 + ".cpio", "vmlinux-" + "c" * 64,
                    "d" * 64 + ".snap", "d" * 64 + ".snap.ram"}, r
    assert gone == {os.path.basename(e["path"]) for e in dry["removed"]}
    assert r["bytes"] > 0
    kept = {e["path"]: e["in_use_by"] for e in r["kept"]}
    for p in used:
        assert kept.get(p) == "VM v1" and os.path.exists(p), (p, kept)
    assert os.path.exists(os.path.join(h.cache, "templates", "e" * 64 + ".snap"))

    # Once the VM is gone and the restore over, everything goes; the next
    # create builds its artifacts again.
    lock.close()
    h.ok("vm", "delete", "v1")
    r = prune(h)
    assert r["kept"] == [], r
    for s in ("rootfs", "initrd", "kernels"):
        left = [f for f in files(h, s) if not f.startswith("sources-")]
        assert left == [], (s, left)
    assert files(h, "templates") == []
    h.ok("vm", "create", "--memory", MEM, "v2")
    m2 = h.state("v2")["measured"]
    assert all(os.path.exists(m2[k][f]) for k, f in (("kernel", "vmlinux"), ("initrd", "path"),
                                                      ("rootfs", "path"))), m2
    assert m2["kernel"]["vmlinux_sha256"] == m["kernel"]["vmlinux_sha256"], m2


def test_prune_text_and_bad_use(hc):
    h = hc
    fake(h, "initrd", "initrd-" + "f" * 64 + ".cpio")
    p = h.run("vm", "cache", "prune", "--dry-run")
    out = p.stdout.decode()
    assert p.returncode == 0 and f"would remove {h.cache}/initrd/initrd-{'f' * 64}.cpio" in out, p
    assert "would free" in out
    p = h.run("vm", "cache", "prune")
    assert p.returncode == 0 and "removed" in p.stdout.decode() and files(h, "initrd") == []
    for args, msg in ((["vm", "cache"], "missing command (prune)"),
                      (["vm", "cache", "tidy"], "unknown command 'tidy'")):
        p = h.run(*args)
        assert p.returncode == 1 and msg in p.stderr.decode(), p
