"""Ten microVMs at once, and the host clean afterwards; the same basic flow
under KVM where the host has a usable one."""
import concurrent.futures
import os
import shutil

import pytest

from test_vm_lib import h  # noqa: F401 (the fixture)
from test_vm_lib import MEM, Hull, assert_gone, new_root, qemu_pids, skip_unless_ready

N = 10


def test_ten_vms_at_once(h):
    ids = [f"many{i}" for i in range(N)]
    # Warm the template once, then start the rest together.
    h.ok("vm", "create", "--memory", MEM, "--from-template", ids[0])
    h.ok("vm", "start", ids[0], timeout=600)

    def make(v):
        h.ok("vm", "create", "--memory", MEM, "--from-template", v, timeout=600)
        h.ok("vm", "start", v, timeout=600)
    with concurrent.futures.ThreadPoolExecutor(N) as ex:
        list(ex.map(make, ids[1:]))
    pids = {v: h.state(v)["pid"] for v in ids}
    assert len(set(pids.values())) == N
    assert all(pids[v] in qemu_pids(v) for v in ids)
    # Each answers on its own, with its own state.
    with concurrent.futures.ThreadPoolExecutor(N) as ex:
        list(ex.map(lambda v: h.sh(v, f"echo {v} > /root/me"), ids))
        outs = list(ex.map(lambda v: h.sh(v, "cat /root/me").strip(), ids))
    assert outs == ids
    with concurrent.futures.ThreadPoolExecutor(N) as ex:
        list(ex.map(lambda v: h.ok("vm", "delete", "--force", v), ids))
    for v in ids:
        assert_gone(h, v)


def test_kvm_when_usable(h):
    hk = Hull(h.root, accel="kvm")
    p = hk.run("vm", "create", "--memory", MEM, "--accel", "kvm", "kvm1")
    if p.returncode != 0:
        why = p.stderr.decode().strip()
        assert "accelerator kvm" in why, why
        print(f"SKIP KVM: {why}")
        pytest.skip(f"no usable KVM here: {why}")
    hk.ok("vm", "start", "kvm1")
    assert hk.state("kvm1")["accelerator"] == "kvm"
    assert hk.sh("kvm1", "echo under-kvm") == "under-kvm\n"
    hk.ok("vm", "delete", "--force", "kvm1")
    assert_gone(hk, "kvm1")
