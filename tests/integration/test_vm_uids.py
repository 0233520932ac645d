"""QEMU's host uid is a slot claimed by one VM from create to delete
(src/lib/vm/uids.c). It was a 16-bit hash of the VM's id, so two VMs could
run as one uid and share its per-user kernel counts (fds in flight, pipe
buffers, processes): one could use them up for the other."""
import json
import os
import shutil
import subprocess

from test_vm_lib import (h,  # noqa: F401 (the fixture)
                         HULL, MEM, qemu_pids)

VM_UID_BASE = 2000000000


def fnv16(vid):
    """The slot hull tries first for an id (FNV-1a, low 16 bits)."""
    v = 2166136261
    for b in vid.encode():
        v = ((v ^ b) * 16777619) & 0xffffffff
    return v & 0xffff


def alike(prefix, n):
    """n ids starting with prefix whose first slots are all the same."""
    by_slot = {}
    i = 0
    while True:
        vid = f"{prefix}{i}"
        ids = by_slot.setdefault(fnv16(vid), [])
        ids.append(vid)
        if len(ids) == n:
            return ids
        i += 1


def uid_of(h, vid):
    return h.state(vid)["qemu_uid"]


def test_vms_whose_ids_hash_alike_run_as_uids_of_their_own(h):
    ids = alike("alike", 6)
    try:
        for vid in ids:
            h.ok("vm", "create", "--memory", MEM, vid)
        uids = [uid_of(h, vid) for vid in ids]
        assert len(set(uids)) == len(ids), dict(zip(ids, uids))
        assert all(VM_UID_BASE <= u < VM_UID_BASE + 65536 for u in uids), uids
    finally:
        for vid in ids:
            h.run("vm", "delete", "--force", vid)


def test_vms_created_at_once_never_take_one_uid(h):
    """Creators running concurrently, their ids all hashing alike: the
    claims are made under one lock, so no two get the same uid."""
    ids = alike("atonce", 8)
    try:
        procs = [subprocess.Popen([HULL, "--root", h.root, "vm", "create", "--memory", MEM, vid],
                                  env=h.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for vid in ids]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
        uids = [uid_of(h, vid) for vid in ids]
        assert len(set(uids)) == len(ids), dict(zip(ids, uids))
    finally:
        for vid in ids:
            h.run("vm", "delete", "--force", vid)


def test_a_deleted_or_vanished_vms_uid_is_taken_again(h):
    """delete frees the uid; a VM whose directory went without a delete
    (a delete killed half-way, a root removed by hand) leaves a stale claim,
    which the next VM takes."""
    a, b, c, d = alike("gone", 4)
    try:
        h.ok("vm", "create", "--memory", MEM, a)
        h.ok("vm", "create", "--memory", MEM, b)
        ua, ub = uid_of(h, a), uid_of(h, b)
        assert ua != ub
        h.ok("vm", "delete", a)
        h.ok("vm", "create", "--memory", MEM, c)
        assert uid_of(h, c) == ua
        shutil.rmtree(os.path.join(h.root, "vm", b))
        h.ok("vm", "create", "--memory", MEM, d)
        assert uid_of(h, d) == ub
    finally:
        for vid in (c, d):
            h.run("vm", "delete", "--force", vid)


def test_a_vm_whose_uid_another_holds_moves_at_start(h):
    """A VM recorded with a uid another VM holds (made before uids were
    claimed, or whose claim went with /run at a reboot) starts as a uid of
    its own, and its record says so."""
    h.ok("vm", "create", "--memory", MEM, "holder")
    h.ok("vm", "create", "--memory", MEM, "mover")
    try:
        taken = uid_of(h, "holder")
        path = os.path.join(h.root, "vm", "mover", "state.json")
        with open(path) as f:
            st = json.load(f)
        st["qemu_uid"] = taken
        with open(path, "w") as f:
            json.dump(st, f)
        h.ok("vm", "start", "mover", timeout=600)
        moved = uid_of(h, "mover")
        assert moved != taken and VM_UID_BASE <= moved < VM_UID_BASE + 65536, moved
        pids = qemu_pids("mover")
        assert len(pids) == 1
        with open(f"/proc/{pids[0]}/status") as f:
            uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
        assert uids == [str(moved)] * 4, uids
        assert h.sh("mover", "echo up") == "up\n"
        assert os.stat(os.path.join(h.root, "vm", "mover", "run")).st_uid == moved
    finally:
        for vid in ("mover", "holder"):
            h.run("vm", "delete", "--force", vid)
