"""The init's way from clone to the user's program, checked from the host:
limits that would bite the runtime itself while it steps into the
container's cgroup (memory, pids) are written only once it has stepped out,
limits no process can start under are refused by name with nothing left, and
`start` returns only once the user's program has been executed.
"""
import os

import pytest

from rt4 import (LAYOUT, TOKEN, assert_error, assert_nothing_left, cg_read, cgroup_of, cid,
                 running)

MIN_MEMORY = 1 << 20  # HULL_CGROUP_MEMORY_MIN


def need_v1(*ctrls):
    for c in ctrls:
        if c not in LAYOUT["v1"]:
            pytest.skip(f"no v1 {c} hierarchy on this host")


@pytest.mark.asan
@pytest.mark.parametrize("limit", [4096, 65536, MIN_MEMORY - 4096, 0])
@pytest.mark.parametrize("verb", ["create", "run"])
def test_memory_limit_below_the_minimum_is_refused(hull, bundle, tmp_path, limit, verb):
    """A limit of a few pages used to OOM-kill hull itself (exit 137, no
    message) while it stood in the container's cgroup to clone the init,
    leaving the state `creating` and the cgroups in every hierarchy."""
    bundle.linux["resources"]["memory"] = {"limit": limit}
    bundle.set_args("true").write()
    r = hull(verb, "--bundle", str(bundle.path), cid())
    assert_error(r, f"{verb} {cid()}",
                 f"linux.resources.memory.limit: {limit} is below the minimum of {MIN_MEMORY}")
    assert r.returncode == 1, r
    assert len(r.stderr.splitlines()) == 1, r
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_update_below_the_minimum_is_refused(hull, bundle, tmp_path):
    need_v1("memory")
    bundle.linux["resources"]["memory"] = {"limit": 64 << 20}
    with running(hull, bundle) as (c, pid):
        r = hull("update", "--memory", "65536", c)
        assert_error(r, "linux.resources.memory.limit: 65536 is below the minimum")
        assert cg_read(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_smallest_limits_land_after_the_init_is_born_in_its_cgroup(hull, bundle, tmp_path):
    """The minimum memory and pids.max=1 (only the init: the runtime standing
    in the cgroup beside it would have been refused its clone): the init is
    born in every hierarchy, the limits are the spec's, the program runs."""
    need_v1("memory", "pids")
    bundle.linux["resources"]["memory"] = {"limit": MIN_MEMORY}
    bundle.linux["resources"]["pids"] = {"limit": 1}
    with running(hull, bundle) as (c, pid):
        assert cg_read(pid, "memory", "memory.limit_in_bytes") == str(MIN_MEMORY)
        assert cg_read(pid, "pids", "pids.max") == "1"
        for ctrl in ("memory", "pids"):
            assert cgroup_of(pid, ctrl).endswith(c), ctrl
            # the runtime stepped back out: the init is the cgroup's only process
            assert cg_read(pid, ctrl, "cgroup.procs").split() == [str(pid)], ctrl
        # the runtime is not charged the limit either: our own cgroup is ours
        assert not cgroup_of(os.getpid(), "memory").endswith(c)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_start_returns_once_the_program_runs(hull, bundle, tmp_path):
    """A signal sent right after `start` reached hull's own init (which drops
    it, as a pid namespace's init without a handler) 10-12 times in 15:
    `start` returned while the init was still on its way to execve. Now it
    returns once the init has exec'd: the process is the container's
    program every time (bench/signal_after_start.py measures the rest)."""
    program = os.stat(bundle.rootfs / "bin" / "busybox")
    bundle.set_args("sleep", "1000").write()
    for i in range(20):
        c = cid(f"s{i}")
        try:
            assert hull("create", "--bundle", str(bundle.path), c).returncode == 0
            pid = hull.state(c)["pid"]
            hull("start", c, check=True)
            exe = os.stat(f"/proc/{pid}/exe")
            assert (exe.st_dev, exe.st_ino) == (program.st_dev, program.st_ino), i
            assert hull.state(c)["status"] == "running"
        finally:
            hull("kill", c, "KILL")
            hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)
