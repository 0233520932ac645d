"""`hull vm cache prune` while a VM is being restored from its template:
the restore holds the template's lock (shared), so prune keeps the
template ("a restore or save under way") instead of removing it from under
the restore. Before, only the template's maker held the lock, and a
restore was safe only when the pruning state root had a --from-template
record of that configuration: not for VMs of another state root (hulld's,
say) nor one-shot runs, whose records are not --from-template.

The restore is held at a known point by holding the lock of the
template's RAM keeper (templates/ram-<digest>.lock), which every restore
of that RAM takes once it has checked the snapshot's manifest. A private
cache and state root; boots one VM cold (the template's maker).

Host-wide (QEMU): run under `flock /work/wt/vm.lock`.
"""
import fcntl
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from test_vm_lib import HULL, MEM, Hull, assert_gone, new_root, skip_unless_ready


@pytest.fixture
def two(tmp_path):
    """Two state roots on one private cache: one restores, one prunes."""
    skip_unless_ready()
    hs = []
    for _ in range(2):
        h = Hull(new_root())
        h.cache = str(tmp_path / "cache")
        h.env = dict(h.env, HULL_VM_CACHE=h.cache)
        hs.append(h)
    yield hs
    for h in hs:
        vmdir = os.path.join(h.root, "vm")
        for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
            h.run("vm", "delete", "--force", vid)
        shutil.rmtree(h.root, ignore_errors=True)


def ram_sha(snap):
    """The RAM digest in a template's manifest (snapshot.c's header)."""
    with open(snap, "rb") as f:
        hdr = f.read(80)
        (length,) = struct.unpack("<I", hdr[12:16])
        return json.loads(f.read(length))["ram"]["sha256"]


def test_prune_keeps_a_template_being_restored(two):
    hc, other = two
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "maker")
    hc.ok("vm", "start", "maker")
    hc.ok("vm", "delete", "--force", "maker")
    tdir = os.path.join(hc.cache, "templates")
    (snap,) = [os.path.join(tdir, f) for f in os.listdir(tdir) if f.endswith(".snap")]
    lock = os.path.join(tdir, f"ram-{ram_sha(snap)[:32]}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "clone")
    start = subprocess.Popen([HULL, "--root", hc.root, "vm", "start", "clone"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=hc.env)
    try:
        # Until the restore waits on the RAM lock, prune would remove the
        # template; from then on it must keep it. A hang guard, not a
        # speed check: the restore never gets past the lock we hold.
        why = None
        end = time.monotonic() + 120
        while why is None and time.monotonic() < end and start.poll() is None:
            p = other.run("vm", "cache", "prune", "--dry-run", "--json")
            assert p.returncode == 0, p.stderr.decode()
            kept = {k["path"]: k["in_use_by"] for k in json.loads(p.stdout)["kept"]}
            why = kept.get(snap)
            time.sleep(0.5)
        assert why == "a restore or save under way", (why, start.poll())
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        out, err = start.communicate(timeout=300)
    assert start.returncode == 0, err.decode()
    assert hc.state("clone")["status"] == "running"
    hc.ok("vm", "delete", "--force", "clone")
    assert_gone(hc, "clone")
