"""cgroups through the runtime, on this host's layout (hybrid: v1 controllers,
a cgroup2 at /sys/fs/cgroup/unified holding only hugetlb), checked from the
host: where linux.cgroupsPath puts the container, that every linux.resources
field the host supports lands in the kernel's files, that the ones it cannot
enforce are refused by name with nothing left behind, that limits bite (OOM
kill, pids), that delete removes the cgroups after killing strays, and the
container's own view of /sys/fs/cgroup. The v2 code paths run in a private
mount namespace with cgroup2 mounted over /sys/fs/cgroup.
"""
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import HULL, Hull, pid_alive, reap_orphans, wait_until
from rt4 import (LAYOUT, TOKEN, assert_error, assert_nothing_left, cg_dir, cg_read, cgroup_of,
                 cid, memory_limits, running, wait_exec)

V1 = LAYOUT["v1"]
V2 = LAYOUT["v2"]
ACCOUNTING = ("memory", "pids", "freezer", "cpuacct")


def own_cgroup(controller):
    return cgroup_of(os.getpid(), controller)


def root_disk():
    """major:minor of the block device holding /."""
    dev = os.stat("/").st_dev
    maj, mnr = os.major(dev), os.minor(dev)
    # / may be a partition or a virtual fs; throttling wants a whole disk
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        f = line.split()
        if len(f) == 4 and (int(f[0]), int(f[1])) == (maj, mnr):
            return maj, mnr
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        f = line.split()
        if len(f) == 4 and not f[3].startswith(("loop", "ram", "zram")):
            return int(f[0]), int(f[1])
    pytest.skip("no block device in /proc/partitions")


# ---- linux.cgroupsPath ------------------------------------------------------------

@pytest.mark.asan
def test_cgroups_path_absolute(hull, bundle, tmp_path):
    top = f"/{TOKEN}abs"
    bundle.linux["cgroupsPath"] = f"{top}/inner/c1"
    with running(hull, bundle) as (c, pid):
        for ctrl in ACCOUNTING:
            assert cgroup_of(pid, ctrl) == f"{top}/inner/c1", ctrl
            assert str(pid) in (Path(V1[ctrl]) / f"{top[1:]}/inner/c1/cgroup.procs").read_text()
    # the parents hull made for it go too
    for ctrl in ACCOUNTING:
        assert not Path(V1[ctrl], top[1:]).exists()
    assert_nothing_left(hull, tmp_path, TOKEN + "abs")


def test_cgroups_path_relative_is_below_our_own(hull, bundle, tmp_path):
    bundle.linux["cgroupsPath"] = f"{TOKEN}rel/c1"
    with running(hull, bundle) as (c, pid):
        for ctrl in ACCOUNTING:
            own = own_cgroup(ctrl).rstrip("/")
            assert cgroup_of(pid, ctrl) == f"{own}/{TOKEN}rel/c1", ctrl
    assert_nothing_left(hull, tmp_path, TOKEN + "rel")


def test_systemd_cgroups_path_mapped_onto_cgroupfs(hull, bundle, tmp_path):
    # slice names split on '-': a-b.slice lives in a.slice
    tok = TOKEN.replace("_", "")
    bundle.linux["cgroupsPath"] = f"{tok}-sub.slice:r4pfx:{tok}ctr"
    with running(hull, bundle, global_args=("--systemd-cgroup",)) as (c, pid):
        want = f"/{tok}.slice/{tok}-sub.slice/r4pfx-{tok}ctr.scope"
        for ctrl in ACCOUNTING + ("name=systemd",):
            assert cgroup_of(pid, ctrl) == want, ctrl
    assert_nothing_left(hull, tmp_path, tok)


@pytest.mark.asan
@pytest.mark.parametrize("path, systemd, fragment", [
    ("../../x", False, "'../../x' climbs out of the cgroup"),
    ("/a/../../x", False, "'/a/../../x' climbs out of the cgroup root"),
    ("/", False, "'/' names the root cgroup"),
    ("/abs/path", True, "'/abs/path' is not of the form slice:prefix:name"),
    ("a--b.slice:p:n", True, "'a--b.slice' is not a valid systemd slice name"),
    ("system.slice:p:..", True, "'system.slice:p:..': bad prefix or name"),
])
def test_bad_cgroups_path_refused(hull, bundle, tmp_path, path, systemd, fragment):
    bundle.linux["cgroupsPath"] = path
    bundle.write()
    before = {c: sorted(os.listdir(m)) for c, m in V1.items()}
    r = hull("create", "--bundle", str(bundle.path), cid(),
             global_args=("--systemd-cgroup",) if systemd else ())
    assert_error(r, f"create {cid()}", "linux.cgroupsPath: " + fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)
    assert {c: sorted(os.listdir(m)) for c, m in V1.items()} == before


# ---- linux.resources land in the kernel's files ------------------------------------

def test_resources_land_in_v1_files(hull, bundle, tmp_path):
    maj, mnr = root_disk()
    ncpu = os.cpu_count()
    bundle.linux["resources"].update({
        "memory": {**memory_limits(96 << 20, 128 << 20), "reservation": 64 << 20,
                   "swappiness": 10, "disableOOMKiller": False},
        "cpu": {"shares": 512, "quota": 30000, "period": 60000,
                "cpus": "0" if ncpu == 1 else f"0-{ncpu - 1}", "mems": "0"},
        "pids": {"limit": 77},
        "blockIO": {
            "throttleReadBpsDevice": [{"major": maj, "minor": mnr, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": maj, "minor": mnr, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": maj, "minor": mnr, "rate": 300}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": mnr, "rate": 400}],
        },
    })
    with running(hull, bundle) as (c, pid):
        m = lambda f: cg_read(pid, "memory", f)  # noqa: E731
        assert int(m("memory.limit_in_bytes")) == 96 << 20
        assert int(m("memory.soft_limit_in_bytes")) == 64 << 20
        if (cg_dir(pid, "memory") / "memory.memsw.limit_in_bytes").exists():
            assert int(m("memory.memsw.limit_in_bytes")) == 128 << 20
        assert m("memory.swappiness") == "10"
        assert "oom_kill_disable 0" in m("memory.oom_control")
        assert cg_read(pid, "cpu", "cpu.shares") == "512"
        assert cg_read(pid, "cpu", "cpu.cfs_quota_us") == "30000"
        assert cg_read(pid, "cpu", "cpu.cfs_period_us") == "60000"
        want_cpus = "0" if ncpu == 1 else f"0-{ncpu - 1}"
        assert cg_read(pid, "cpuset", "cpuset.cpus") == want_cpus
        assert cg_read(pid, "cpuset", "cpuset.mems") == "0"
        assert cg_read(pid, "pids", "pids.max") == "77"
        b = lambda f: cg_read(pid, "blkio", f)  # noqa: E731
        assert b("blkio.throttle.read_bps_device") == f"{maj}:{mnr} 1048576"
        assert b("blkio.throttle.write_bps_device") == f"{maj}:{mnr} 2097152"
        assert b("blkio.throttle.read_iops_device") == f"{maj}:{mnr} 300"
        assert b("blkio.throttle.write_iops_device") == f"{maj}:{mnr} 400"
        # the process really is where the limits are
        for ctrl in ("memory", "cpu", "cpuset", "pids", "blkio"):
            assert str(pid) in cg_read(pid, ctrl, "cgroup.procs").split()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_disable_oom_killer_and_cpuset_subset(hull, bundle, tmp_path):
    bundle.linux["resources"].update({
        "memory": {"limit": 64 << 20, "disableOOMKiller": True},
        "cpu": {"cpus": "0"},
    })
    with running(hull, bundle) as (c, pid):
        assert "oom_kill_disable 1" in cg_read(pid, "memory", "memory.oom_control")
        assert cg_read(pid, "cpuset", "cpuset.cpus") == "0"
        # the kernel really keeps the process on that cpu
        assert Path(f"/proc/{pid}/status").read_text().count("Cpus_allowed_list:\t0\n") == 1


def test_hugepage_limit_on_the_hugetlb_controller(hull, bundle, tmp_path):
    sizes = os.listdir("/sys/kernel/mm/hugepages")
    if "hugepages-2048kB" not in sizes:
        pytest.skip("no 2 MB huge pages on this kernel")
    if "hugetlb" in V1:
        where = None
    elif V2 and "hugetlb" in Path(V2, "cgroup.controllers").read_text().split():
        where = "v2"
    else:
        pytest.skip("no hugetlb controller on this host")
    bundle.linux["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 8 << 20}]
    with running(hull, bundle) as (c, pid):
        if where == "v2":
            d = Path(V2 + cgroup_of(pid, ""))
            assert (d / "hugetlb.2MB.max").read_text().strip() == str(8 << 20)
            assert str(pid) in (d / "cgroup.procs").read_text().split()
        else:
            assert cg_read(pid, "hugetlb", "hugetlb.2MB.limit_in_bytes") == str(8 << 20)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_unified_keys_on_the_hybrid_cgroup2(hull, bundle, tmp_path):
    if V2 is None or "hugetlb" not in Path(V2, "cgroup.controllers").read_text().split():
        pytest.skip("this host's cgroup2 has no hugetlb controller")
    if "hugepages-2048kB" not in os.listdir("/sys/kernel/mm/hugepages"):
        pytest.skip("no 2 MB huge pages on this kernel")
    bundle.linux["resources"]["unified"] = {"hugetlb.2MB.max": str(6 << 20)}
    with running(hull, bundle) as (c, pid):
        d = Path(V2 + cgroup_of(pid, ""))
        assert (d / "hugetlb.2MB.max").read_text().strip() == str(6 << 20)
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("unified, fragment", [
    ({"cgroup.procs": "1"}, "linux.resources.unified.cgroup.procs: managed by the runtime"),
    ({"../cgroup.procs": "1"}, "is not a cgroup2 control file name"),
    ({"nodot": "1"}, "is not a cgroup2 control file name"),
    ({"hugetlb.3MB.max": "1"}, "linux.resources.unified"),
])
def test_bad_unified_keys_refused(hull, bundle, tmp_path, unified, fragment):
    if V2 is None:
        pytest.skip("no cgroup2 on this host")
    bundle.linux["resources"]["unified"] = unified
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)


def fuse_bundle(bundle):
    """A container that sees the host's /dev/fuse (10:229, which anyone may
    open) bind-mounted in, and tries to open it."""
    if not Path("/dev/fuse").is_char_device():
        pytest.skip("no /dev/fuse on this host")
    bundle.config["mounts"].append({"destination": "/dev/fuse", "type": "bind",
                                    "source": "/dev/fuse", "options": ["bind"]})
    bundle.process["args"] = ["sh", "-c", "head -c0 /dev/fuse && echo opened; "
                              "head -c0 /dev/null && echo null-ok"]
    return bundle


@pytest.mark.asan
def test_devices_denied_device_cannot_be_opened(hull, bundle, tmp_path):
    fuse_bundle(bundle).write()
    r = hull("run", "--bundle", str(bundle.path), cid())
    assert r.stdout.split() == ["null-ok"], r
    assert "Operation not permitted" in r.stderr


def test_devices_allowed_rule_and_the_cgroup_list(hull, bundle, tmp_path):
    fuse_bundle(bundle)
    bundle.linux["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"})
    bundle.process["args"] = ["sleep", "1000"]
    with running(hull, bundle, args=None) as (c, pid):
        wait_exec(pid, "sleep")
        rules = cg_read(pid, "devices", "devices.list").splitlines()
        assert "c 10:229 r" in rules and "c 1:3 rwm" in rules
        assert "a *:* rwm" not in rules
        r = hull("exec", c, "sh", "-c", "head -c0 /dev/fuse && echo opened")
        assert r.stdout.strip() == "opened", r


# ---- what the host cannot enforce -------------------------------------------------

@pytest.mark.parametrize("resources, fragment", [
    ({"rdma": {"mlx5_0": {"hcaHandles": 3}}}, "linux.resources.rdma"),
    ({"network": {"classID": 1048577}}, "linux.resources.network.classID"),
    ({"memory": {"limit": 64 << 20, "swap": 32 << 20}}, "linux.resources.memory.swap"),
    ({"cpu": {"cpus": "0-4095"}}, "linux.resources.cpu"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, "linux.resources.hugepageLimits"),
    ({"unified": {"memory.max": "1"}}, "linux.resources.unified.memory.max"),
    ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
])
def test_unenforceable_resource_is_an_error(hull, bundle, tmp_path, resources, fragment):
    if "unified" in resources and V2 and \
            "memory" in Path(V2, "cgroup.controllers").read_text().split():
        pytest.skip("this host's cgroup2 has the memory controller")
    if fragment.endswith("classID") and ("net_cls" in V1):
        pytest.skip("this host has net_cls")
    bundle.linux["resources"].update(resources)
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, f"create {cid()}", fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.skipif("cpu" not in V1, reason="cpu.shares is a v1 file")
@pytest.mark.parametrize("shares", [1, 1 << 40])
def test_v1_cpu_shares_the_kernel_would_clamp_is_refused(hull, bundle, tmp_path, shares):
    """The kernel keeps cpu.shares in [2, 262144] by clamping silently:
    a value it would not keep is an error naming the field (as runc), at
    create and at update."""
    bundle.linux["resources"]["cpu"] = {"shares": shares}
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    if r.returncode == 0:
        hull("delete", "--force", cid())
    assert_error(r, f"create {cid()}", "linux.resources.cpu.shares", str(shares))
    assert_nothing_left(hull, tmp_path, TOKEN)
    del bundle.linux["resources"]["cpu"]
    with running(hull, bundle) as (c, pid):
        before = cg_read(pid, "cpu", "cpu.shares")
        r = hull("update", "--cpu-share", str(shares), c)
        assert_error(r, "linux.resources.cpu.shares")
        r = hull("update", "--cpu-share", "300", c)
        assert r.returncode == 0, r
        assert cg_read(pid, "cpu", "cpu.shares") == "300" != before


@pytest.mark.parametrize("resources, field, ctrl, files, want", [
    # v1 kernels that ignore kmem limits still enforce kmem.tcp
    ({"memory": {"kernelTCP": 48 << 20}}, "linux.resources.memory.kernelTCP", "memory",
     ["memory.kmem.tcp.limit_in_bytes"], str(48 << 20)),
    # with blk-mq the proportional weight is BFQ's
    ({"blockIO": {"weight": 300}}, "linux.resources.blockIO.weight", "blkio",
     ["blkio.weight", "blkio.bfq.weight"], "300"),
])
def test_resource_lands_or_is_refused_by_name(hull, bundle, tmp_path, resources, field, ctrl,
                                               files, want):
    """Fields some kernels enforce and others not: either the kernel's file
    holds the value, or create fails naming the field."""
    bundle.linux["resources"].update(resources)
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    try:
        if r.returncode != 0:
            assert_error(r, field)
        else:
            pid = hull.state(c)["pid"]
            f = next(f for f in files if (cg_dir(pid, ctrl) / f).exists())
            assert cg_read(pid, ctrl, f).split()[-1] == want
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_deprecated_kernel_memory_is_accepted_with_a_warning(hull, bundle, tmp_path):
    """linux.resources.memory.kernel is deprecated and current kernels do not
    enforce it: runc ignores it, crun writes it; a config made for either
    must not fail. hull sets it where the kernel still enforces it, and
    otherwise warns by name."""
    bundle.linux["resources"]["memory"] = {"kernel": 64 << 20}
    bundle.set_args("sleep", "1000").write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    try:
        assert r.returncode == 0, r
        pid = hull.state(c)["pid"]
        kmem = cg_dir(pid, "memory") / "memory.kmem.limit_in_bytes" if "memory" in V1 else None
        enforced = kmem is not None and kmem.exists() and int(kmem.read_text()) == 64 << 20
        if not enforced:
            assert "linux.resources.memory.kernel" in r.stderr, r.stderr
            assert "ignored" in r.stderr, r.stderr
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- limits bite ------------------------------------------------------------------

HOG = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"


def test_memory_hog_is_oom_killed_at_the_limit(hull, bundle, tmp_path):
    limit = 32 << 20
    bundle.linux["resources"]["memory"] = memory_limits(limit, limit)
    with running(hull, bundle, args=("sh", "-c", HOG), start=False) as (c, pid):
        hull("start", c, check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped", timeout=60)
        oom = dict(line.split() for line in
                   Path(V1["memory"], hull_cgroup(hull, c, "memory"),
                        "memory.oom_control").read_text().splitlines())
        assert int(oom["oom_kill"]) >= 1
        peak = int(Path(V1["memory"], hull_cgroup(hull, c, "memory"),
                        "memory.max_usage_in_bytes").read_text())
        assert peak <= limit
    assert_nothing_left(hull, tmp_path, TOKEN)


def hull_cgroup(hull, c, ctrl):
    """The container's cgroup directory (relative to the mount) as hull recorded it."""
    st = json.loads((Path(hull.root) / c / "state.json").read_text())
    mount = V1[ctrl]
    for n in st["cgroup"]["nodes"]:
        if n["mount"] == mount:
            return n["path"].lstrip("/")
    raise KeyError(ctrl)


def test_pids_bomb_stops_at_the_limit(hull, bundle, tmp_path):
    bundle.linux["resources"]["pids"] = {"limit": 16}
    # the subshell forks until fork fails (and then dies); its sleeps stay
    script = "(for i in $(seq 40); do sleep 1000 & done); exec sleep 1000"
    with running(hull, bundle, args=("sh", "-c", script), comm="sleep") as (c, pid):
        d = Path(V1["pids"], hull_cgroup(hull, c, "pids"))
        assert wait_until(lambda: int((d / "pids.events").read_text().split()[1]) > 0,
                          timeout=30), (d / "pids.events").read_text()
        assert (d / "pids.max").read_text().strip() == "16"
        # the init and 15 sleeps (the subshell that hit the limit is gone)
        assert int((d / "pids.current").read_text()) <= 16
        procs = (d / "cgroup.procs").read_text().split()
        assert 10 <= len(procs) <= 16
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- delete removes the cgroups, killing strays first -----------------------------

@pytest.mark.asan
def test_delete_kills_strays_left_by_a_dead_init(hull, bundle, tmp_path):
    # no pid namespace: the init's exit does not take its child with it
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"] if n["type"] != "pid"]
    with running(hull, bundle, args=("sh", "-c", "sleep 1000 & exec sleep 1000"),
                 comm="sleep") as (c, pid):
        stray = [p for p in map(int, cg_read(pid, "pids", "cgroup.procs").split()) if p != pid]
        assert len(stray) == 1 and pid_alive(stray[0])
        dirs = {ctrl: cg_dir(pid, ctrl) for ctrl in ACCOUNTING}
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        assert pid_alive(stray[0])  # still running, in the container's cgroup
        r = hull("delete", c)
        assert r.returncode == 0, r
        reap_orphans()
        assert not pid_alive(stray[0])
        for ctrl, d in dirs.items():
            assert not d.exists(), ctrl
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_delete_force_of_a_running_container_removes_every_hierarchy(hull, bundle, tmp_path):
    bundle.linux["resources"]["cpu"] = {"shares": 256, "cpus": "0"}
    bundle.linux["resources"]["blockIO"] = {}
    with running(hull, bundle) as (c, pid):
        dirs = [cg_dir(pid, ctrl) for ctrl in V1 if ctrl != "name=systemd"]
        dirs = [d for d in dirs if d.name == c]
        assert {d.parent.parent.name for d in dirs} >= {"memory", "cpu", "cpuset", "devices"}
        hull("delete", "--force", c, check=True)
        reap_orphans()
        assert not pid_alive(pid)
        assert [d for d in dirs if d.exists()] == []
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- the container's view of /sys/fs/cgroup ---------------------------------------

@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "host_cgroupns"])
def test_cgroup_view_is_the_containers_own_and_readonly(hull, bundle, tmp_path, cgroupns):
    """/sys/fs/cgroup/memory shows the container's own cgroup (its limit),
    read-only; /proc/self/cgroup names it "/" in a cgroup namespace."""
    if not cgroupns:
        bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                      if n["type"] != "cgroup"]
    bundle.linux["resources"]["memory"] = {"limit": 50 << 20}
    script = ("grep memory /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "mkdir /sys/fs/cgroup/memory/x 2>&1; grep ' /sys/fs/cgroup/memory ' /proc/mounts")
    bundle.set_args("sh", "-c", script).write()
    r = hull("run", "--bundle", str(bundle.path), cid())
    lines = r.stdout.splitlines()
    assert lines[0].endswith(":memory:/" if cgroupns else f":memory:/hull/{cid()}"), r
    assert lines[1] == str(50 << 20)
    assert "Read-only file system" in lines[2]
    assert lines[3].split()[3].split(",")[0] == "ro", r


# ---- v2: a cgroup2 mounted over /sys/fs/cgroup in a private mount namespace -------

class NsHull(Hull):
    """hull run inside another process's mount namespace (nsenter -m)."""

    def __init__(self, root, holder):
        super().__init__(root)
        self.holder = holder

    def cmd(self, *args, global_args=()):
        return ["nsenter", "-t", str(self.holder), "-m", "--", HULL, "--root", str(self.root),
                *global_args, *args]


@pytest.fixture
def v2ns(tmp_path):
    """A process holding a mount namespace where /sys/fs/cgroup is cgroup2."""
    if V2 is None:
        pytest.skip("this kernel has no cgroup2 mounted")
    ready = tmp_path / "v2ready"
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && "
         f"touch {ready} && exec sleep 100000"],
        stderr=subprocess.PIPE)
    if not wait_until(lambda: ready.exists() or p.poll() is not None, timeout=10) \
            or not ready.exists():
        p.kill()
        err = p.communicate()[1]
        pytest.skip(f"cannot mount cgroup2 in a private mount namespace: {err!r}")
    yield p.pid
    p.kill()
    p.wait()


def v2_path(holder, *parts):
    return Path(f"/proc/{holder}/root/sys/fs/cgroup", *parts)


def test_v2_container_freeze_kill_devices(v2ns, make_bundle, tmp_path):
    h = NsHull(tmp_path / "v2state", v2ns)
    b = fuse_bundle(make_bundle())
    b.process["args"] = ["sh", "-c", "while :; do echo x >> /tmp/count; sleep 0.05; done"]
    b.config["root"]["readonly"] = False
    c = cid("v2")
    b.write()
    try:
        r = h("run", "-d", "--bundle", str(b.path), c)
        assert r.returncode == 0, r
        pid = h.state(c)["pid"]
        assert cgroup_of(pid, "") == f"/hull/{c}"
        d = v2_path(v2ns, "hull", c)
        assert str(pid) in (d / "cgroup.procs").read_text().split()
        # the eBPF device program is attached: the denied device cannot be opened
        r = h("exec", c, "sh", "-c", "head -c0 /dev/fuse && echo opened; head -c0 /dev/null"
              " && echo null-ok")
        assert r.stdout.split() == ["null-ok"] and "Operation not permitted" in r.stderr, r
        # pause freezes through cgroup.freeze
        h("pause", c, check=True)
        assert "frozen 1" in (d / "cgroup.events").read_text()
        assert h.state(c)["status"] == "paused"
        count = b.rootfs / "tmp" / "count"
        n = count.read_text().count("x")
        import time
        time.sleep(0.3)  # a frozen counter cannot move in any amount of time
        assert count.read_text().count("x") == n
        h("resume", c, check=True)
        assert "frozen 0" in (d / "cgroup.events").read_text()
        assert wait_until(lambda: count.read_text().count("x") > n)
        # kill --all reaches every process through the cgroup
        h("kill", "--all", c, "KILL", check=True)
        assert wait_until(lambda: h.state(c)["status"] == "stopped")
        h("delete", c, check=True)
        assert not d.exists()
    finally:
        h("delete", "--force", c)
        reap_orphans()
    assert not (tmp_path / "v2state" / c).exists()


def test_v2_missing_controller_is_an_error(v2ns, make_bundle, tmp_path):
    avail = v2_path(v2ns, "cgroup.controllers").read_text().split()
    if "memory" in avail:
        pytest.skip("this host's cgroup2 has the memory controller")
    h = NsHull(tmp_path / "v2state", v2ns)
    b = make_bundle()
    b.linux["resources"]["memory"] = {"limit": 64 << 20}
    b.write()
    c = cid("v2m")
    r = h("create", "--bundle", str(b.path), c)
    assert_error(r, "linux.resources.memory", "memory controller is not available")
    assert not v2_path(v2ns, "hull", c).exists()
    assert not (tmp_path / "v2state" / c).exists()


def test_foreground_run_removes_what_an_update_joined(hull, bundle, tmp_path):
    """`update` rewrites the state of a foreground run (here: the cpu
    hierarchy joined for a CPU list); when the program exits, the run's own
    cleanup reads that record, not the one it wrote, and removes the new
    cgroup with the others."""
    share = tmp_path / "share"
    share.mkdir()
    # Without a cgroup view the container joins only what accounting needs.
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    bundle.config["mounts"].append({"destination": "/share", "type": "bind",
                                    "source": str(share), "options": ["rbind"]})
    bundle.set_args("sh", "-c", "touch /share/up; while [ ! -e /share/go ]; do sleep 0.05; done")
    bundle.write()
    c = cid("upd")
    p = subprocess.Popen(hull.cmd("run", "--bundle", str(bundle.path), c),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: (share / "up").exists(), timeout=30)
        pid = hull.state(c)["pid"]
        assert cg_dir(pid, "cpuset").name != c  # not joined at create
        hull("update", "--cpuset-cpus", "0", c, check=True)
        dirs = {ctrl: cg_dir(pid, ctrl) for ctrl in ("cpuset", "memory")}
        assert dirs["cpuset"].name == c and dirs["cpuset"].exists()
        (share / "go").touch()
        assert p.wait(timeout=60) == 0
        assert [d for d in dirs.values() if d.exists()] == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)
