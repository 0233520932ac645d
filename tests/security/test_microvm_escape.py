"""The syscall-filter part of the escape battery at microVM isolation: the
guest's workload gets the container level's filter (one definition,
src/lib/linux/seccomp_rules.c), so the same calls are refused the same
way -- above all no namespace through clone or clone3, which would hand a
workload a full capability set in a user namespace of its own.

The guest runs under TCG in the suite: slow, hence marked and given
generous limits. Only what the filter decides is compared; the guest's
workload is root in its own guest (without capabilities), so setuid(0)
and setgid(0) succeed there as the no-ops they are."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from sandboxlib import HULL  # noqa: E402
from test_vm_lib import qemu_pids, skip_unless_ready  # noqa: E402

from .test_kernel_escape import NSCLONE, REFUSED  # noqa: E402

pytestmark = pytest.mark.slow

@pytest.fixture(autouse=True)
def vm_ready():
    skip_unless_ready()
    yield
    assert not qemu_pids(), "a QEMU process outlived its sandbox run"


def guest(bins, *args):
    """hostile ARGS in a microVM sandbox: the result JSON and {name: (ret, errno)}."""
    cp = subprocess.run([HULL, "sandbox", "run", "--isolation", "microvm", "--json",
                         "--cpu-time", "60s", "--wall-time", "300s",
                         "--copy-in", f"{bins / 'hostile'}:/tmp/hostile", "--", "/tmp/hostile",
                         *args], capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, HULL_VM_ACCEL=os.environ.get("HULL_VM_ACCEL",
                                                                           "tcg")))
    assert cp.returncode == 0, cp.stderr
    j = json.loads(cp.stdout)
    lines = {}
    for line in j["stdout"].splitlines():
        parts = line.split()
        if len(parts) == 3:
            lines[parts[0]] = (parts[1], parts[2])
    return j, lines


def test_namespaces_through_clone_and_clone3_are_refused_in_the_guest(bins):
    j, res = guest(bins, "nsclone")
    assert j["verdict"] == "ok", j
    got = {k: v[1] for k, v in res.items()}
    assert got == NSCLONE, j["stdout"]
    assert all(v[0] == "-1" for v in res.values()), j["stdout"]


def test_refused_syscalls_in_the_guest(bins):
    j, res = guest(bins, "syscalls")
    assert j["verdict"] == "ok", j
    expected = dict(REFUSED, setuid0="0", setgid0="0")  # root in its guest: no-ops
    got = {k: v[1] for k, v in res.items()}
    assert got == expected, {k: (got.get(k), v) for k, v in expected.items()
                             if got.get(k) != v}


@pytest.mark.parametrize("attack", ["int80", "x32"])
def test_other_syscall_abis_are_killed_in_the_guest(bins, attack):
    j, _ = guest(bins, attack)
    assert (j["verdict"], j["signal"]) == ("signaled", signal.SIGSYS), j
    assert "returned" not in j["stdout"], j


def test_clock_and_other_processes_in_the_guest(bins):
    j, res = guest(bins, "clock")
    assert j["verdict"] == "ok", j
    assert res and all(v == ("-1", "EPERM") for v in res.values()), res
    j, res = guest(bins, "ptrace")
    assert j["verdict"] == "ok", j
    for name in ("ptrace_attach", "ptrace_seize", "process_vm_readv", "process_vm_writev",
                 "kcmp", "pidfd_getfd", "ptrace_traceme"):
        assert res[name] == ("-1", "EPERM"), (name, res[name])
    # The workload's init in the guest has no filter of its own: its memory
    # must be closed to the workload, or code written there runs unfiltered.
    assert res["proc1_mem"] == ("-1", "EACCES"), res
