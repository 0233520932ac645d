"""cgroup mechanism, end to end: build/tests/cgtool drives linux/cgroup*.c on
the real kernel, and every check reads the kernel's own files from the host.

Covers the host's layout as it is (hybrid here: v1 controllers, name=systemd,
a controller-less cgroup2) and two layouts made in private mount namespaces
on the same kernel: cgroup2 mounted over /sys/fs/cgroup (a v2 host: freezer,
cgroup.kill and the eBPF device filter on cgroup2, clear errors for missing
controllers) and the unified mount hidden (a v1-only host: destroy has to
freeze, kill and thaw). After every test no cgroup directory of this module
is left in any hierarchy.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HULL = Path(os.environ.get("HULL", ROOT / "build" / "hull"))
TOOL = HULL.parent / "tests" / "cgtool"
PREFIX = f"cgmt{os.getpid()}x"  # no '-': systemd slice names split on it
PY = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")


# ---- the host's layout, read independently of the code under test ----------

CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
               "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"}

def host_layout(mountinfo="/proc/self/mountinfo"):
    """{'v1': {controller-or-name=: mount}, 'v2': mount or None}"""
    v1, v2 = {}, None
    for line in Path(mountinfo).read_text().splitlines():
        f = line.split()
        sep = f.index("-")
        fstype, mnt, opts = f[sep + 1], f[4].replace("\\040", " "), f[sep + 3].split(",")
        if fstype == "cgroup2" and v2 is None:
            v2 = mnt
        elif fstype == "cgroup":
            for o in opts:
                if o in CONTROLLERS or o.startswith("name="):
                    v1.setdefault(o, mnt)
    return {"v1": v1, "v2": v2}


LAYOUT = host_layout()
IN_NS = []  # CGs driven inside a private namespace, cleaned up before it goes
V1, V2 = LAYOUT["v1"], LAYOUT["v2"]


def v2_controllers():
    return Path(V2, "cgroup.controllers").read_text().split() if V2 else []


def all_mounts():
    return sorted(set(V1.values()) | ({V2} if V2 else set()))


def leftovers():
    found = []
    for m in all_mounts():
        for d, dirs, _ in os.walk(m):
            found += [os.path.join(d, x) for x in dirs if PREFIX in x]
    return found


@pytest.fixture(autouse=True)
def no_leaks():
    yield
    # Killed processes can take a moment to be reaped by init; cgroup
    # directories must already be gone when destroy returned.
    assert leftovers() == []


@pytest.fixture(autouse=True, scope="module")
def restore_host():
    """hull keeps /hull as the parent of default cgroups, and hugetlb limits
    on this host need cgroup2's hugetlb controller switched on in the root's
    subtree_control: put both back the way they were."""
    had_hull = {m for m in all_mounts() if Path(m, "hull").exists()}
    files = [Path(V2, "cgroup.subtree_control"), Path(V2, "hull", "cgroup.subtree_control")] \
        if V2 else []
    before = {f: f.read_text().split() if f.exists() else None for f in files}
    yield
    for f in reversed(files):
        if not f.exists():
            continue
        for c in set(f.read_text().split()) - set(before[f] or []):
            try:
                f.write_text(f"-{c}")
            except OSError:
                pass  # someone else's cgroup uses it now
    for m in set(all_mounts()) - had_hull:
        try:
            os.rmdir(Path(m, "hull"))
        except OSError:
            pass  # in use by someone else by now


# ---- cgtool -----------------------------------------------------------------

def tool(*args, ns=(), check=True, timeout=60):
    assert TOOL.exists(), f"{TOOL} is not built (make {TOOL.relative_to(ROOT)})"
    p = subprocess.run([*ns, str(TOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"cgtool {args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class CG:
    """One container cgroup driven through cgtool, with its state file."""

    def __init__(self, tmp_path, name, ns=()):
        self.id = PREFIX + name
        self.state = tmp_path / f"{name}.state.json"
        self.tmp = tmp_path
        self.ns = list(ns)
        if ns:
            IN_NS.append(self)

    def cleanup(self):
        """Whatever a failing test left behind."""
        if self.state.exists():
            self.run("destroy", check=False)

    def run(self, verb, *args, check=True, timeout=60):
        return tool(verb, "--state", self.state, *args, ns=self.ns, check=check,
                    timeout=timeout)

    def create(self, resources=None, path=None, systemd=False, join_all=False, check=True):
        opts = []
        if resources is not None:
            f = self.tmp / f"{self.id}.res.json"
            f.write_text(json.dumps(resources))
            opts += ["--resources", f]
        if path is not None:
            opts += ["--path", path]
        if systemd:
            opts.append("--systemd")
        if join_all:
            opts.append("--all")
        return self.run("create", *opts, self.id, check=check)

    def apply(self, resources, check=True):
        f = self.tmp / f"{self.id}.upd.json"
        f.write_text(json.dumps(resources))
        return self.run("apply", "--resources", f, check=check)

    def exec(self, *cmd, timeout=60):
        return self.run("exec", "--", *cmd, timeout=timeout).stdout.strip()

    def detach(self, *cmd, out=None):
        opts = ["--detach"] + (["--out", out] if out else [])
        return int(self.run("exec", *opts, "--", *cmd).stdout.strip())

    def pids(self):
        return [int(x) for x in self.run("pids").stdout.split()]

    def stats(self):
        return json.loads(self.run("stats").stdout)

    def destroy(self):
        self.run("destroy")
        assert not self.state.exists()

    def nodes(self):
        return json.loads(self.state.read_text())["nodes"]

    def dir(self, mount):
        """Host directory of the container in the hierarchy mounted at mount."""
        for n in self.nodes():
            if n["mount"] == mount:
                return Path(mount + n["path"]) if n["joined"] else None
        return None


@pytest.fixture
def cg(tmp_path):
    made = []

    def make(name="c", ns=()):
        c = CG(tmp_path, name, ns)
        made.append(c)
        return c

    yield make
    for c in made:
        c.cleanup()


def gone(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(pred, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def read(p):
    return Path(p).read_text().strip()


def proc_cgroup(pid):
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, key, path = line.split(":", 2)
        out[key] = path
    return out


# ---- layout and creation ----------------------------------------------------

def expected_mode(layout):
    has_v1_ctrls = any(not k.startswith("name=") for k in layout["v1"])
    if has_v1_ctrls:
        return "hybrid" if layout["v2"] else "v1"
    return "v2"


def test_mode_matches_mountinfo():
    out = tool("layout").stdout.splitlines()
    assert out[0] == expected_mode(LAYOUT)
    mounts = {line.split()[1] for line in out[1:]}
    assert mounts == set(all_mounts())


def test_default_create_joins_accounting_hierarchies_only(cg):
    c = cg()
    c.create()
    core = {V1.get(k) for k in ("memory", "pids", "freezer", "cpuacct", "name=systemd")}
    core |= {V2}
    core.discard(None)
    for m in all_mounts():
        d = Path(m, "hull", c.id)
        assert d.is_dir() == (m in core), m
        if d.is_dir():
            assert c.dir(m) == d
    c.destroy()
    for m in all_mounts():
        assert not Path(m, "hull", c.id).exists()


def test_process_is_placed_in_every_joined_hierarchy(cg):
    c = cg()
    c.create(join_all=True)
    out = c.exec("cat", "/proc/self/cgroup")
    paths = {line.split(":", 2)[2] for line in out.splitlines()[:-1]}
    assert paths == {f"/hull/{c.id}"}, out
    c.destroy()


def test_v1_resources_land_in_kernel_files(cg):
    if "memory" not in V1:
        pytest.skip("no v1 memory controller on this host")
    res = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10,
                   "disableOOMKiller": False},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 33},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "access": "rw"}],
    }
    if "cpuset" in V1:
        res["cpu"].update({"cpus": "0", "mems": "0"})
    c = cg()
    c.create(res)
    mem = c.dir(V1["memory"])
    assert int(read(mem / "memory.limit_in_bytes")) == 64 << 20
    assert int(read(mem / "memory.soft_limit_in_bytes")) == 32 << 20
    assert read(mem / "memory.swappiness") == "10"
    assert "oom_kill_disable 0" in read(mem / "memory.oom_control")
    if (mem / "memory.memsw.limit_in_bytes").exists():
        c.apply({"memory": {"limit": 48 << 20, "swap": 96 << 20}})
        assert int(read(mem / "memory.memsw.limit_in_bytes")) == 96 << 20
        assert int(read(mem / "memory.limit_in_bytes")) == 48 << 20
        # Raising the limit above the old memory+swap needs memsw written first.
        c.apply({"memory": {"limit": 200 << 20, "swap": 200 << 20}})
        assert int(read(mem / "memory.limit_in_bytes")) == 200 << 20
        assert int(read(mem / "memory.memsw.limit_in_bytes")) == 200 << 20
    cpu = c.dir(V1["cpu"])
    assert read(cpu / "cpu.shares") == "512"
    assert read(cpu / "cpu.cfs_quota_us") == "50000"
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(c.dir(V1["pids"]) / "pids.max") == "33"
    assert sorted(read(c.dir(V1["devices"]) / "devices.list").splitlines()) == \
        ["c 1:3 rwm", "c 5:* rw"]
    if "cpuset" in V1:
        cs = c.dir(V1["cpuset"])
        assert read(cs / "cpuset.cpus") == "0" and read(cs / "cpuset.mems") == "0"
    # The devices cgroup is enforced: /dev/null opens, /dev/zero does not.
    out = c.exec("sh", "-c", "echo x >/dev/null; echo null=$?; "
                             "head -c1 /dev/zero >/dev/null 2>&1; echo zero=$?")
    assert "null=0" in out and "zero=1" in out
    c.destroy()


def test_blkio_throttle_and_weight(cg):
    if "blkio" not in V1:
        pytest.skip("no v1 blkio controller on this host")
    dev = os.stat("/").st_dev
    maj, minr = os.major(dev), os.minor(dev)
    # Throttling needs a real block device: use the root filesystem's disk.
    disk = Path(f"/sys/dev/block/{maj}:{minr}")
    if (disk / "partition").exists():
        disk = disk.resolve().parent
    maj, minr = map(int, read(disk / "dev").split(":"))
    throttle = {"throttleReadBpsDevice": [{"major": maj, "minor": minr, "rate": 1 << 20}],
                "throttleWriteIOPSDevice": [{"major": maj, "minor": minr, "rate": 99}]}
    # A proportional weight needs CFQ's or BFQ's files, which a host whose
    # disks use mq-deadline or none does not have: hull must then refuse
    # the weight by name, and still apply the throttles alone.
    root = Path(V1["blkio"])
    has_weight = (root / "blkio.weight").exists() or (root / "blkio.bfq.weight").exists()
    c = cg()
    r = c.create({"blockIO": {"weight": 300, **throttle}}, check=False)
    if has_weight:
        assert r.returncode == 0, r.stderr
        d = c.dir(V1["blkio"])
        weight = d / "blkio.weight"
        if not weight.exists():
            weight = d / "blkio.bfq.weight"
        assert read(weight).split()[-1] == "300"
    else:
        assert r.returncode != 0 and "linux.resources.blockIO.weight" in r.stderr, r
        c = cg("throttle")
        c.create({"blockIO": throttle})
        d = c.dir(V1["blkio"])
    assert read(d / "blkio.throttle.read_bps_device") == f"{maj}:{minr} {1 << 20}"
    assert read(d / "blkio.throttle.write_iops_device") == f"{maj}:{minr} 99"
    c.destroy()


def test_hugetlb_limit_goes_where_the_controller_is(cg):
    sizes = [p.name for p in Path("/sys/kernel/mm/hugepages").iterdir()]
    if "hugepages-2048kB" not in sizes:
        pytest.skip("no 2MB huge pages")
    c = cg()
    r = c.create({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}, check=False)
    if "hugetlb" in V1:
        assert r.returncode == 0, r.stderr
        assert int(read(c.dir(V1["hugetlb"]) / "hugetlb.2MB.limit_in_bytes")) == 4 << 20
    elif "hugetlb" in v2_controllers():
        assert r.returncode == 0, r.stderr
        assert int(read(c.dir(V2) / "hugetlb.2MB.max")) == 4 << 20
    else:
        assert "linux.resources.hugepageLimits: the hugetlb controller is not available" \
            in r.stderr
        return
    bad = cg("bad")
    r = bad.create({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}, check=False)
    assert r.returncode != 0 and "'3MB' is not a huge page size" in r.stderr
    c.destroy()


# ---- what the host cannot enforce, and bad input: errors, nothing left --------

@pytest.mark.parametrize("res,needle", [
    ({"network": {"classID": 7}}, "linux.resources.network.classID"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "linux.resources.rdma"),
    ({"unified": {"../x": "1"}}, "linux.resources.unified: '../x' is not a cgroup2"),
    ({"unified": {"memory.high": "1000000"}}, "linux.resources.unified"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs: managed by"),
    ({"memory": {"limit": 2 << 20, "swap": 1 << 20}}, "linux.resources.memory.swap: 1048576 is"),
    ({"cpu": {"cpus": "4095"}}, "linux.resources.cpu.cpus"),
])
def test_unenforceable_is_an_error(cg, res, needle):
    if "network" in res and "net_cls" in V1:
        pytest.skip("this host has net_cls")
    if "unified" in res and "memory.high" in res["unified"] and "memory" in v2_controllers():
        pytest.skip("this host's cgroup2 has the memory controller")
    c = cg()
    r = c.create(res, check=False)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert not c.state.exists()


def test_unified_keys_written_verbatim(cg):
    if not V2:
        pytest.skip("no cgroup2 mount")
    c = cg()
    c.create({"unified": {"cgroup.max.descendants": "3"}})
    assert read(c.dir(V2) / "cgroup.max.descendants") == "3"
    c.destroy()


@pytest.mark.parametrize("path,needle", [
    ("../../escape", "climbs out"),
    ("/../../escape", "climbs out"),
    ("/", "root cgroup"),
    ("nothing/../..", "climbs out"),
])
def test_escaping_cgroups_path_is_refused(cg, path, needle):
    c = cg()
    r = c.create(path=path, check=False)
    assert r.returncode != 0
    assert "linux.cgroupsPath" in r.stderr and needle in r.stderr, r.stderr


# ---- cgroupsPath forms ------------------------------------------------------

def test_absolute_path_and_created_parents_removed(cg):
    c = cg()
    c.create(path=f"/{PREFIX}abs/inner")
    for m in all_mounts():
        if c.dir(m):
            assert c.dir(m) == Path(m, f"{PREFIX}abs", "inner")
            assert c.dir(m).is_dir()
    c.destroy()  # no_leaks checks that the parent went too


def test_systemd_form_mapped_onto_cgroupfs(cg):
    c = cg()
    c.create(path=f"{PREFIX}sd-sub.slice:pfx:{c.id}", systemd=True)
    want = f"/{PREFIX}sd.slice/{PREFIX}sd-sub.slice/pfx-{c.id}.scope"
    m = V1.get("memory") or V2
    assert c.dir(m) == Path(m + want) and c.dir(m).is_dir()
    c.destroy()


def test_relative_path_is_below_own_cgroup(cg):
    base = cg("base")
    base.create(path=f"/{PREFIX}base")
    inner = cg("inner")
    # cgtool runs inside base, so base is its own cgroup there.
    base.exec(str(TOOL), "create", "--state", inner.state, "--path", "rel/child", inner.id)
    for m in all_mounts():
        if inner.dir(m):
            assert inner.dir(m) == Path(m, f"{PREFIX}base", "rel", "child"), m
            assert inner.dir(m).is_dir()
    # ... and hull refuses a path that holds its own cgroup.
    r = base.run("exec", "--", str(TOOL), "create", "--state", inner.tmp / "x.json",
                 "--path", f"/{PREFIX}base", "x", check=False)
    assert "holds hull's own cgroup" in r.stdout + r.stderr
    inner.destroy()
    assert not Path(V1.get("memory") or V2, f"{PREFIX}base", "rel").exists()
    base.destroy()


# ---- accounting: the kernel's own verdicts ------------------------------------

HOG = "b = []\nwhile True:\n    b.append(b'x' * (1 << 20))\n"


def test_memory_hog_is_oom_killed_at_the_limit(cg):
    c = cg()
    limit = 48 << 20
    c.create({"memory": {"limit": limit, "swap": limit}})
    waiter = subprocess.Popen([str(TOOL), "oomwait", "--state", str(c.state), "30000"],
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)  # the waiter registers its fd before the hog starts
        assert c.exec(PY, "-c", HOG, timeout=120) == "signal 9"
        assert waiter.communicate(timeout=60)[0].strip() == "oom"
    finally:
        waiter.kill()
    st = c.stats()
    assert st["oom_kill_events"] >= 1
    assert 0 < st["memory_max_usage"] <= limit
    if "memory" in V1:
        mem = c.dir(V1["memory"])
        assert int(dict(l.split() for l in read(mem / "memory.oom_control").splitlines())
                   ["oom_kill"]) == st["oom_kill_events"]
        failcnt = int(read(mem / "memory.failcnt"))
        if (mem / "memory.memsw.failcnt").exists():
            failcnt += int(read(mem / "memory.memsw.failcnt"))
        # (this kernel no longer counts failcnt; an OOM kill is a limit hit)
        assert st["oom_events"] == max(failcnt, st["oom_kill_events"])
    events = json.loads(c.run("events").stdout)
    assert events["memory"]["usage"]["limit"] == limit
    assert events["memory"]["event_count"]["oom_kill"] >= 1
    c.destroy()


FORKS = """
import os, time
n = 0
for i in range(64):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.closerange(0, 3)  # let cgtool's caller see EOF
        time.sleep(60)
        os._exit(0)
    n += 1
print(n)
"""


def test_fork_bomb_stops_at_pids_limit_and_strays_die_on_destroy(cg):
    c = cg()
    c.create({"pids": {"limit": 8}})
    out = c.exec(PY, "-c", FORKS).splitlines()
    assert out[-1] == "exit 0"
    assert int(out[0]) == 7  # python + 7 children = the limit
    st = c.stats()
    assert st["pids_max_events"] >= 1
    assert st["pids_limit"] == 8
    strays = c.pids()
    assert len(strays) == 7 and st["pids_current"] == 7
    if "pids" in V1:
        d = c.dir(V1["pids"])
        assert read(d / "pids.max") == "8"
        assert "max " in read(d / "pids.events") and read(d / "pids.events") != "max 0"
    c.destroy()
    wait_for(lambda: all(gone(p) for p in strays), "strays to die")


COUNTER = """
import sys, time
i = 0
while True:
    i += 1
    with open(sys.argv[1] + '.tmp', 'w') as f:
        f.write(str(i))
    __import__('os').rename(sys.argv[1] + '.tmp', sys.argv[1])
    time.sleep(0.005)
"""


def counter(path):
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return -1


def check_freeze(c, frozen_file):
    f = c.tmp / f"{c.id}.count"
    c.detach(PY, "-c", COUNTER, str(f))
    wait_for(lambda: counter(f) > 3, "the counter to run")
    c.run("freeze")
    assert c.run("frozen").stdout.strip() == "1"
    frozen_file()
    a = counter(f)
    time.sleep(0.4)
    assert counter(f) == a, "a frozen process kept counting"
    c.run("thaw")
    assert c.run("frozen").stdout.strip() == "0"
    wait_for(lambda: counter(f) > a, "the counter to resume")
    c.destroy()


def test_freeze_stops_a_counter(cg):
    c = cg()
    c.create()

    def host_side():
        if "freezer" in V1:
            assert read(c.dir(V1["freezer"]) / "freezer.state") == "FROZEN"
        else:
            assert "frozen 1" in read(c.dir(V2) / "cgroup.events")

    check_freeze(c, host_side)


TRAP = """
import signal, sys, time
def term(*_):
    open(sys.argv[1], 'w').write('term')
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
open(sys.argv[1] + '.ready', 'w').close()
while True:
    time.sleep(1)
"""


def test_kill_all_delivers_the_signal_and_leaves_it_running(cg):
    check_kill(cg())


def check_kill(c):
    c.create()
    f = c.tmp / f"{c.id}.trap"
    pid = c.detach(PY, "-c", TRAP, str(f))
    wait_for(lambda: Path(str(f) + ".ready").exists(), "the trap")
    c.run("kill", int(signal.SIGTERM))
    wait_for(lambda: f.exists() and f.read_text() == "term", "SIGTERM to arrive")
    wait_for(lambda: gone(pid), "the trap to exit")
    assert c.run("frozen").stdout.strip() == "0"
    c.destroy()


def test_destroy_kills_a_fork_loop(cg):
    c = cg()
    c.create({"pids": {"limit": 40}})
    c.detach("sh", "-c", "while :; do sleep 100 & done")
    wait_for(lambda: len(c.pids()) >= 20, "the fork loop to fill up")
    pids = c.pids()
    c.destroy()
    wait_for(lambda: all(gone(p) for p in pids), "everything to die")


def test_stats_json_is_runc_shaped(cg):
    c = cg()
    c.create({"pids": {"limit": 20}, "memory": {"limit": 100 << 20}})
    c.detach("sleep", "100")
    ev = json.loads(c.run("events").stdout)
    for k in ("cpu", "memory", "pids", "blkio", "hugetlb"):
        assert k in ev
    assert {"total", "kernel", "user"} <= set(ev["cpu"]["usage"])
    assert {"limit", "usage", "max", "failcnt"} <= set(ev["memory"]["usage"])
    assert ev["pids"] == {"current": 1, "limit": 20}
    assert ev["memory"]["usage"]["limit"] == 100 << 20
    if "memory" in V1:
        assert "total_rss" in ev["memory"]["raw"] or "rss" in ev["memory"]["raw"]
    c.destroy()


# ---- update -------------------------------------------------------------------

def test_update_memory_below_usage_is_refused(cg):
    c = cg()
    c.create({"memory": {"limit": 256 << 20}})
    c.detach(PY, "-c", "b = b'x' * (40 << 20)\nimport time\ntime.sleep(100)")
    wait_for(lambda: c.stats()["memory_usage"] > 40 << 20, "the allocation")
    r = c.apply({"memory": {"limit": 8 << 20}}, check=False)
    assert r.returncode != 0
    assert "linux.resources.memory.limit" in r.stderr and "below" in r.stderr, r.stderr
    assert c.stats()["memory_limit"] == 256 << 20
    c.apply({"memory": {"limit": 128 << 20}})
    assert c.stats()["memory_limit"] == 128 << 20
    c.destroy()


def test_update_joins_a_new_hierarchy_and_moves_processes(cg):
    if "cpuset" not in V1 or "cpu" not in V1:
        pytest.skip("needs v1 cpu and cpuset")
    c = cg()
    c.create()
    pid = c.detach("sleep", "100")
    assert c.dir(V1["cpuset"]) is None
    c.apply({"cpu": {"cpus": "0", "shares": 256}})
    cs = c.dir(V1["cpuset"])
    assert str(pid) in read(cs / "cgroup.procs").split()
    assert read(cs / "cpuset.cpus") == "0"
    assert read(c.dir(V1["cpu"]) / "cpu.shares") == "256"
    pc = proc_cgroup(pid)
    assert pc["cpuset"] == f"/hull/{c.id}"
    assert Path(f"/proc/{pid}/status").read_text().split("Cpus_allowed_list:")[1].split()[0] \
        == "0"
    c.destroy()


# ---- the container's view of cgroups ------------------------------------------

def mounts_under(text, dest):
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) > 4 and (f[4] == dest or f[4].startswith(dest + "/")):
            sep = f.index("-")
            out.append({"root": f[3], "mnt": f[4], "opts": f[5].split(","),
                        "type": f[sep + 1]})
    return out


def test_mount_view_bind_readonly(cg, tmp_path):
    c = cg()
    c.create(join_all=True)
    dest = tmp_path / "view"
    dest.mkdir()
    out = c.run("mount", "--ro", dest, "--", "sh", "-c",
                f"cat /proc/self/mountinfo; mkdir {dest}/memory/x 2>/dev/null; echo mkdir=$?"
                ).stdout
    ms = mounts_under(out, str(dest))
    assert ms[0]["mnt"] == str(dest) and ms[0]["type"] == "tmpfs"
    for m in ms:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(m["opts"]), m
    sub = {m["mnt"][len(str(dest)) + 1:]: m for m in ms[1:]}
    for key, mnt in V1.items():
        name = os.path.basename(mnt)
        assert sub[name]["type"] == "cgroup"
        assert sub[name]["root"] == f"/hull/{c.id}"  # the container's own cgroup
    if V2:
        assert sub["unified"]["type"] == "cgroup2" and sub["unified"]["root"] == f"/hull/{c.id}"
    assert "mkdir=1" in out
    assert str(dest) not in Path("/proc/self/mountinfo").read_text()
    c.destroy()


def test_mount_view_with_cgroupns(cg, tmp_path):
    c = cg()
    c.create()
    dest = tmp_path / "view"
    dest.mkdir()
    mem = os.path.basename(V1["memory"]) if "memory" in V1 else "unified"
    out = c.run("mount", "--cgroupns", dest, "--", "sh", "-c",
                f"mkdir {dest}/{mem}/sub; cat /proc/self/mountinfo; echo ==; "
                f"cat /proc/self/cgroup; echo ==; cat {dest}/pids/cgroup.procs; echo $$").stdout
    minfo, pcg, rest = out.split("==\n")
    ms = mounts_under(minfo, str(dest))
    names = {m["mnt"][len(str(dest)) + 1:] for m in ms[1:]}
    joined = {os.path.basename(n["mount"]) for n in c.nodes() if n["joined"]}
    joined = {"unified" if V2 and n == os.path.basename(V2) else n for n in joined}
    assert names == joined  # hierarchies the container is not in stay out
    for m in ms[1:]:
        assert m["root"] == "/"
        assert "rw" in m["opts"] and "nosuid" in m["opts"]
    assert all(line.endswith(":/") for line in pcg.splitlines())
    procs = rest.splitlines()[:-1]  # drop cgtool's "exit 0"
    assert procs[-1] in procs[:-1]  # the shell sees itself at its cgroup's root
    # A writable view lets the container make sub-cgroups (systemd does);
    # destroy removes them with the container's own.
    assert c.dir(V1.get("memory") or V2).joinpath("sub").is_dir()
    ro = c.run("mount", "--cgroupns", "--ro", dest, "--", "sh", "-c",
               f"mkdir {dest}/{mem}/sub2 2>/dev/null; echo mkdir=$?").stdout
    assert "mkdir=1" in ro
    c.destroy()


# ---- other layouts, made in private mount namespaces ---------------------------

@pytest.fixture
def private_ns():
    procs = []

    def make(setup):
        p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                              f"{setup} && echo ready && exec sleep 600"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline().strip()
        if line != "ready":
            pytest.skip(f"cannot set up the namespace: {p.stderr.read().strip()}")
        return ["nsenter", "-t", str(p.pid), "-m", "--"]

    yield make
    # The namespaces go before the cg fixture's cleanup would run.
    while IN_NS:
        IN_NS.pop().cleanup()
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def v2ns(private_ns):
    if not V2:
        pytest.skip("no cgroup2 on this kernel")
    return private_ns("mount -t tmpfs tmpfs /sys/fs/cgroup && "
                      "mount -t cgroup2 none /sys/fs/cgroup")


def test_v2_layout_lifecycle(cg, v2ns):
    assert tool("mode", ns=v2ns).stdout.strip() == "v2"
    c = cg("v2", ns=v2ns)
    c.create()
    host = Path(V2, "hull", c.id)
    assert c.nodes()[0]["mount"] == "/sys/fs/cgroup" and host.is_dir()
    # cgroup2's own freezer, seen from the host
    check_freeze(c, lambda: "frozen 1" in read(host / "cgroup.events"))
    assert not host.exists()


def test_v2_kill_signals_through_cgroup_freeze(cg, v2ns):
    check_kill(cg("v2sig", ns=v2ns))


def test_v2_destroy_kills_strays_with_cgroup_kill(cg, v2ns):
    c = cg("v2k", ns=v2ns)
    c.create()
    c.detach("sh", "-c", "while :; do sleep 100 & sleep 0.01; done")
    # Six seen: at most one of them a short sleep, so the five others (sh
    # and the long sleeps, which only grow in number) are still there below.
    wait_for(lambda: len(c.pids()) >= 6, "strays")
    pids = c.pids()
    host = read(Path(V2, "hull", c.id, "cgroup.procs")).split()
    assert str(pids[0]) in host and len(host) >= 5  # (short sleeps come and go)
    c.destroy()
    wait_for(lambda: all(gone(p) for p in pids), "everything to die")


DEVCHECK = ("echo x >/dev/null; echo null=$?; "
            "head -c1 /dev/zero >/dev/null 2>&1; echo zero=$?; "
            "head -c1 /dev/urandom >/dev/null 2>&1; echo urandom=$?")


def test_v2_devices_ebpf_filter(cg, v2ns):
    free = cg("v2free", ns=v2ns)
    free.create()
    assert "zero=0" in free.exec("sh", "-c", DEVCHECK)  # control: nothing filtered
    free.destroy()
    c = cg("v2dev", ns=v2ns)
    c.create({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                          {"allow": True, "type": "c", "major": 1, "access": "r"},
                          {"allow": False, "type": "c", "major": 1, "minor": 9,
                           "access": "rwm"}]})
    out = c.exec("sh", "-c", DEVCHECK)
    # null allowed rw; zero (1:5) allowed read by the wildcard; urandom (1:9)
    # denied by the later rule.
    assert "null=0" in out and "zero=0" in out and "urandom=1" in out, out
    c.apply({"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]})
    out = c.exec("sh", "-c", DEVCHECK)
    assert "null=0" in out and "zero=1" in out and "urandom=1" in out, out
    c.destroy()


@pytest.mark.parametrize("res,needle", [
    ({"memory": {"limit": 1 << 30}}, "linux.resources.memory: the memory controller"),
    ({"pids": {"limit": 10}}, "linux.resources.pids: the pids controller"),
    ({"cpu": {"shares": 100}}, "linux.resources.cpu: the cpu controller"),
])
def test_v2_missing_controllers_are_errors(cg, v2ns, res, needle):
    ctrl = needle.split("the ")[1].split()[0]
    if ctrl in v2_controllers():
        pytest.skip(f"this host's cgroup2 has {ctrl}")
    c = cg("v2miss", ns=v2ns)
    r = c.create(res, check=False)
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    assert not Path(V2, "hull", c.id).exists()


def test_v2_mount_view(cg, v2ns, tmp_path):
    c = cg("v2m", ns=v2ns)
    c.create()
    dest = tmp_path / "view"
    dest.mkdir()
    for extra, root in (([], f"/hull/{c.id}"), (["--cgroupns"], "/")):
        out = c.run("mount", *extra, "--ro", dest, "--", "cat", "/proc/self/mountinfo").stdout
        ms = mounts_under(out, str(dest))
        assert len(ms) == 1 and ms[0]["type"] == "cgroup2", ms
        assert ms[0]["root"] == root and "ro" in ms[0]["opts"]
    c.destroy()


@pytest.fixture
def v1ns(private_ns):
    if not V2 or not V1:
        pytest.skip("needs a hybrid host")
    return private_ns(f"umount {V2}")


def test_v1_only_layout_destroy_freezes_and_kills(cg, v1ns):
    assert tool("mode", ns=v1ns).stdout.strip() == "v1"
    c = cg("v1k", ns=v1ns)
    c.create({"pids": {"limit": 40}})
    assert all(not n["mount"] == V2 for n in c.nodes())
    c.detach("sh", "-c", "while :; do sleep 100 & done")
    wait_for(lambda: len(c.pids()) >= 20, "the fork loop to fill up")
    pids = c.pids()
    c.destroy()
    wait_for(lambda: all(gone(p) for p in pids), "everything to die")
