"""Volume: 1000 sandboxes one after another, then 1000 with 8 at a time.
Counts, not timings: every verdict is ok, and afterwards the host holds no
state directory, cgroup, mount or process of any of them, and this test
process holds no fd it did not hold before (pytest itself may close one of
its own meanwhile)."""
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandboxlib import PREEXISTING, Sandbox, cgroup_dirs, host_mounts, pids_with_env, state_dirs

N = 1000
PARALLEL = 8


def one(sb):
    p = subprocess.Popen(sb.argv(cmd=["/bin/true"]), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = p.communicate(timeout=120)
    verdict = json.loads(out)["verdict"] if p.returncode == 0 else f"rc={p.returncode} {err!r}"
    return p.pid, verdict


def left_by(pids):
    """Everything any of these hull processes left on the host."""
    ours = tuple(f"sandbox-{pid}-" for pid in pids)
    states = [s for s in state_dirs("sandbox-") if s.startswith(ours) and s not in PREEXISTING]
    cgroups = [c for c in cgroup_dirs("sandbox-")
               if os.path.basename(c).startswith(ours) and c not in PREEXISTING]
    mounts = [m for m in host_mounts("sandbox-") if any(o in m for o in ours)]
    return states, cgroups, mounts


@pytest.mark.slow
def test_volume_sequential_then_parallel():
    sb = Sandbox()
    fds_before = sorted(os.listdir("/proc/self/fd"))

    seq = [one(sb) for _ in range(N)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        par = list(pool.map(lambda _: one(sb), range(N)))

    for name, runs in (("sequential", seq), ("parallel", par)):
        bad = [v for _, v in runs if v != "ok"]
        assert len(runs) == N and bad == [], (name, len(bad), bad[:5])
    pids = [pid for pid, _ in seq + par]
    assert left_by(pids) == ([], [], [])
    assert pids_with_env(sb.token) == []
    new_fds = set(os.listdir("/proc/self/fd")) - set(fds_before)
    assert not new_fds, new_fds
