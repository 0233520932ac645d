"""ps, pause/resume, update, events, features, checkpoint/restore, checked
from the host: ps lists exactly the cgroup's processes, pause really freezes
(a counter stops; the freezer says FROZEN), update lands in the cgroup files
(and a limit below usage is refused, leaving the old one), events print
runc's JSON and an "oom" event, features is a runtime-spec features document.
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import pid_alive, reap_orphans, wait_until
from rt4 import (LAYOUT, TOKEN, assert_error, assert_nothing_left, cg_read, cgroup_of, cid,
                 dump, memory_limits, running)

V1 = LAYOUT["v1"]


def cgroup_pids(init, ctrl="pids"):
    d = Path(V1[ctrl] + cgroup_of(init, ctrl))
    out = set()
    for sub, _, _ in os.walk(d):
        out |= set(map(int, Path(sub, "cgroup.procs").read_text().split()))
    return out


COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done"


def counter(bundle):
    bundle.config["root"]["readonly"] = False
    return bundle.rootfs / "tmp" / "count"


def count_of(path):
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


# ---- ps ------------------------------------------------------------------------

@pytest.mark.asan
def test_ps_json_and_table_match_the_cgroup(hull, bundle):
    with running(hull, bundle, args=("sh", "-c", "sleep 1001 & sleep 1002 & exec sleep 1003"),
                 comm="sleep") as (c, init):
        assert wait_until(lambda: len(cgroup_pids(init)) == 3)
        r = hull("ps", "--format", "json", c)
        assert r.returncode == 0, r
        assert set(json.loads(r.stdout)) == cgroup_pids(init) == cgroup_pids(init, "memory")
        assert init in json.loads(r.stdout)
        r = hull("ps", c)
        lines = r.stdout.splitlines()
        assert lines[0].split()[:2] == ["UID", "PID"]
        assert {int(x.split()[1]) for x in lines[1:]} == cgroup_pids(init)
        assert {x.split()[-1] for x in lines[1:]} == {"1001", "1002", "1003"}
        # ps options pass through to the host's ps
        r = hull("ps", c, "-o", "pid,comm")
        assert r.stdout.split()[:2] == ["PID", "COMMAND"]
        assert {int(x.split()[0]) for x in r.stdout.splitlines()[1:]} == cgroup_pids(init)
        r = hull("ps", "--format", "yaml", c)
        assert_error(r, "--format: unknown format 'yaml'")


def pids_cgroup_of_one():
    """A fresh pids cgroup that holds one task at most (v1 or v2, as the host
    has it), or None when the host has no pids controller to limit."""
    base = V1.get("pids")
    if base is None and LAYOUT["v2"]:
        base = LAYOUT["v2"]
        ctl = Path(base, "cgroup.controllers")
        if not ctl.exists() or "pids" not in ctl.read_text().split():
            return None
    if base is None:
        return None
    d = Path(base, f"hull-test-ps-fork-{TOKEN}-{os.getpid()}")
    d.mkdir()
    (d / "pids.max").write_text("1")
    return d


def test_ps_says_when_it_cannot_fork(hull, bundle):
    """hull ps runs the host's ps: when fork fails (here: a pids cgroup that
    holds hull alone), it says so instead of reading an empty pipe."""
    with running(hull, bundle) as (c, init):
        d = pids_cgroup_of_one()
        if d is None:
            pytest.skip("the host has no pids controller")
        try:
            def enter():
                (d / "cgroup.procs").write_text(str(os.getpid()))
            r = hull("ps", c, preexec_fn=enter)
        finally:
            wait_until(lambda: not (d / "cgroup.procs").read_text().split())
            d.rmdir()
        assert_error(r, "ps: fork: ")
        assert "no PID column" not in r.stderr, r


def test_ps_of_unknown_container(hull):
    r = hull("ps", cid("nope"))
    assert_error(r, "ps", "does not exist")


# ---- pause / resume ------------------------------------------------------------

@pytest.mark.asan
def test_pause_freezes_and_resume_thaws(hull, bundle):
    count = counter(bundle)
    with running(hull, bundle, args=("sh", "-c", COUNTER), comm="sh") as (c, init):
        assert wait_until(lambda: count_of(count) > 3)
        freezer = Path(V1["freezer"] + cgroup_of(init, "freezer"))
        assert (freezer / "freezer.state").read_text().strip() == "THAWED"
        hull("pause", c, check=True)
        assert (freezer / "freezer.state").read_text().strip() == "FROZEN"
        assert hull.state(c)["status"] == "paused"
        n = count_of(count)
        # every task of the container sits in the refrigerator (state D)
        pids = cgroup_pids(init, "freezer")
        assert len(pids) >= 1
        for p in pids:
            assert Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "D", p
        time.sleep(0.3)  # any time at all: a frozen counter must not move
        assert count_of(count) == n
        r = hull("pause", c)
        assert_error(r, f"pause {c}", "the container is paused, not running")
        hull("resume", c, check=True)
        assert (freezer / "freezer.state").read_text().strip() == "THAWED"
        assert hull.state(c)["status"] == "running"
        assert wait_until(lambda: count_of(count) > n)
        r = hull("resume", c)
        assert_error(r, f"resume {c}", "the container is running, not paused")


def test_sigkill_reaches_a_paused_container(hull, bundle, tmp_path):
    """The v1 freezer holds even SIGKILL until thaw: kill KILL must thaw."""
    with running(hull, bundle) as (c, init):
        hull("pause", c, check=True)
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        reap_orphans()
        assert not pid_alive(init)
        hull("delete", c, check=True)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_pause_of_stopped_refused_and_paused_can_be_deleted(hull, bundle, tmp_path):
    with running(hull, bundle) as (c, init):
        hull("pause", c, check=True)
        r = hull("delete", c)
        assert_error(r, f"delete {c}", "paused")
        # kill reaches a frozen container: SIGKILL needs no thaw
        hull("delete", "--force", c, check=True)
        reap_orphans()
        assert not pid_alive(init)
    with running(hull, bundle, name="c2") as (c, init):
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        r = hull("pause", c)
        assert_error(r, f"pause {c}", "the container is stopped, not running")
        r = hull("resume", c)
        assert_error(r, f"resume {c}", "the container is stopped, not paused")
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- update ----------------------------------------------------------------------

def test_update_resources_file_and_stdin(hull, bundle, tmp_path):
    bundle.linux["resources"]["memory"] = {"limit": 200 << 20}
    with running(hull, bundle) as (c, init):
        res = {"memory": {"limit": 150 << 20, "reservation": 100 << 20},
               "cpu": {"shares": 300, "quota": 20000, "period": 100000},
               "pids": {"limit": 50}}
        r = hull("update", "--resources", dump(res, tmp_path / "r.json"), c)
        assert r.returncode == 0, r
        assert cg_read(init, "memory", "memory.limit_in_bytes") == str(150 << 20)
        assert cg_read(init, "memory", "memory.soft_limit_in_bytes") == str(100 << 20)
        assert cg_read(init, "pids", "pids.max") == "50"
        # the cpu hierarchy was not joined at create: update joins it, with the process
        assert cg_read(init, "cpu", "cpu.shares") == "300"
        assert cg_read(init, "cpu", "cpu.cfs_quota_us") == "20000"
        assert cg_read(init, "cpu", "cpu.cfs_period_us") == "100000"
        r = hull("update", "-r", "-", c, input=json.dumps({"pids": {"limit": 60}}))
        assert r.returncode == 0, r
        assert cg_read(init, "pids", "pids.max") == "60"
        assert cg_read(init, "memory", "memory.limit_in_bytes") == str(150 << 20)


def test_update_keeps_the_device_rules(hull, bundle):
    """The runc shim sends `update --resources -` the whole linux.resources
    containerd holds: for a CRI container a bare "deny all" device rule beside
    the new limits. The rules create gave the container (the default devices,
    the ptys) stay, as runc's update keeps them, and so does the record."""
    with running(hull, bundle) as (c, init):
        before = cg_read(init, "devices", "devices.list") if "devices" in V1 else None
        res = {"devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 90 << 20}}
        r = hull("update", "-r", "-", c, input=json.dumps(res))
        assert r.returncode == 0, r
        assert cg_read(init, "memory", "memory.limit_in_bytes") == str(90 << 20)
        if before is not None:
            assert "c 1:3 rwm" in before.splitlines() and "c 5:2 rwm" in before.splitlines(), before
            assert cg_read(init, "devices", "devices.list") == before
        r = hull("exec", c, "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c")
        assert (r.returncode, r.stdout.split()) == (0, ["4"]), r
        st = json.loads((Path(hull.root) / c / "state.json").read_text())
        assert st["config"]["linux"]["resources"].get("devices") == bundle.linux["resources"].get("devices")
        assert st["config"]["linux"]["resources"]["memory"]["limit"] == 90 << 20


@pytest.mark.parametrize("flag, value, ctrl, file, want", [
    ("--memory", "123m", "memory", "memory.limit_in_bytes", str(123 << 20)),
    ("--memory-reservation", "50M", "memory", "memory.soft_limit_in_bytes", str(50 << 20)),
    ("--cpu-quota", "25000", "cpu", "cpu.cfs_quota_us", "25000"),
    ("--cpu-period", "50000", "cpu", "cpu.cfs_period_us", "50000"),
    ("--cpu-shares", "768", "cpu", "cpu.shares", "768"),
    ("--pids-limit", "42", "pids", "pids.max", "42"),
    ("--cpuset-cpus", "0", "cpuset", "cpuset.cpus", "0"),
    ("--cpuset-mems", "0", "cpuset", "cpuset.mems", "0"),
])
def test_update_flags_land_in_the_cgroup(hull, bundle, flag, value, ctrl, file, want):
    with running(hull, bundle) as (c, init):
        r = hull("update", flag, value, c)
        assert r.returncode == 0, r
        assert cg_read(init, ctrl, file) == want
        assert str(init) in cg_read(init, ctrl, "cgroup.procs").split()


def test_update_memory_below_usage_refused_and_old_limit_kept(hull, bundle, tmp_path):
    bundle.linux["resources"]["memory"] = {"limit": 256 << 20}
    # 40 MB in a tmpfs are charged to the container for as long as it lives
    script = "head -c 40000000 /dev/zero > /dev/shm/fill; exec sleep 1000"
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] != "/dev/shm"]
    bundle.config["mounts"].append({"destination": "/dev/shm", "type": "tmpfs",
                                    "source": "shm", "options": ["size=128m"]})
    with running(hull, bundle, args=("sh", "-c", script), comm="sleep") as (c, init):
        usage = int(cg_read(init, "memory", "memory.usage_in_bytes"))
        assert usage > 40_000_000
        r = hull("update", "--memory", "16m", c)
        assert_error(r, f"update {c}", "linux.resources.memory.limit",
                     "below the container's current memory usage")
        assert cg_read(init, "memory", "memory.limit_in_bytes") == str(256 << 20)
        assert pid_alive(init)
        # the recorded config still says the old limit
        st = json.loads((Path(hull.root) / c / "state.json").read_text())
        assert st["config"]["linux"]["resources"]["memory"]["limit"] == 256 << 20


def test_update_memory_against_memory_plus_swap(hull, bundle):
    bundle.linux["resources"]["memory"] = memory_limits(128 << 20, 256 << 20)
    if "swap" not in bundle.linux["resources"]["memory"]:
        pytest.skip("no swap accounting on this host")
    with running(hull, bundle) as (c, init):
        m = lambda f: int(cg_read(init, "memory", f))  # noqa: E731
        # above memory+swap: refused with a hint, nothing changed
        r = hull("update", "--memory", "300m", c)
        assert_error(r, "above the container's memory+swap limit", "--memory-swap")
        assert (m("memory.limit_in_bytes"), m("memory.memsw.limit_in_bytes")) == \
            (128 << 20, 256 << 20)
        # both together, in either direction
        hull("update", "--memory", "300m", "--memory-swap", "400m", c, check=True)
        assert (m("memory.limit_in_bytes"), m("memory.memsw.limit_in_bytes")) == \
            (300 << 20, 400 << 20)
        hull("update", "--memory", "100m", "--memory-swap", "150m", c, check=True)
        assert (m("memory.limit_in_bytes"), m("memory.memsw.limit_in_bytes")) == \
            (100 << 20, 150 << 20)
        # unlimited memory lifts memory+swap too (as runc)
        hull("update", "--memory", "-1", c, check=True)
        assert m("memory.limit_in_bytes") == m("memory.memsw.limit_in_bytes") > 1 << 60


def test_update_pids_limit_zero_changes_nothing_and_kill_zero_asks(hull, bundle):
    """As with runc: --pids-limit 0 leaves the limit (only -1 lifts it), and
    kill ID 0 answers whether the init runs, sending nothing."""
    with running(hull, bundle) as (c, init):
        hull("update", "--pids-limit", "7", c, check=True)
        hull("update", "--pids-limit", "0", c, check=True)
        assert cg_read(init, "pids", "pids.max") == "7"
        hull("update", "-r", "-", c, input='{"pids": {"limit": 0}}', check=True)
        assert cg_read(init, "pids", "pids.max") == "7"
        assert hull("kill", c, "0").returncode == 0
        assert hull("kill", "--all", c, "0").returncode != 0
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull("kill", c, "0").returncode != 0, 60)


@pytest.mark.parametrize("args, fragment", [
    (("--memory", "lots"), "limit: 'lots' is not a valid size"),
    (("--pids-limit", "x"), "limit: 'x' is not a valid number"),
    (("--resources", "/no/such.json"), "--resources /no/such.json"),
    (("-r", "-"), "resources"),
    (("--l3-cache-schema", "L3:0=f"), "Intel RDT is not supported"),
])
def test_update_bad_input(hull, bundle, args, fragment):
    with running(hull, bundle) as (c, init):
        before = cg_read(init, "memory", "memory.limit_in_bytes")
        r = hull("update", *args, c, input="not json")
        assert r.returncode != 0 and fragment in r.stderr, r
        assert cg_read(init, "memory", "memory.limit_in_bytes") == before


def test_update_of_stopped_container_refused(hull, bundle):
    with running(hull, bundle) as (c, init):
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        r = hull("update", "--pids-limit", "10", c)
        assert_error(r, f"update {c}", "stopped")


# ---- events ----------------------------------------------------------------------

@pytest.mark.asan
def test_events_stats_is_runc_shaped(hull, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 100 << 20}
    bundle.linux["resources"]["pids"] = {"limit": 99}
    with running(hull, bundle, args=("sh", "-c", "sleep 1000 & exec sleep 1001"),
                 comm="sleep") as (c, init):
        r = hull("events", "--stats", c)
        assert r.returncode == 0, r
        ev = json.loads(r.stdout)
        assert ev["type"] == "stats" and ev["id"] == c
        d = ev["data"]
        assert d["pids"]["current"] == len(cgroup_pids(init)) == 2
        assert d["pids"]["limit"] == 99
        assert d["cpu"]["usage"]["total"] > 0
        assert d["memory"]["usage"]["limit"] == 100 << 20
        assert d["memory"]["usage"]["usage"] > 0
        assert d["memory"]["usage"]["max"] >= d["memory"]["usage"]["usage"]
        assert {"usage", "limit", "max", "failcnt"} <= set(d["memory"]["swap"])
        assert d["memory"]["raw"]["cache"] == d["memory"]["cache"]
        assert {"periods", "throttledPeriods", "throttledTime"} <= set(d["cpu"]["throttling"])
        assert len(d["cpu"]["usage"]["percpu"]) == os.cpu_count()


def test_events_stats_has_runcs_cpuset(hull, bundle):
    """runc's stats carry "cpuset" (the CPUs and memory nodes the container
    may use, and the v1 flags); hull's had no such section."""
    last = os.cpu_count() - 1
    bundle.linux["resources"]["cpu"] = {"cpus": f"0,{last}" if last else "0", "mems": "0"}
    with running(hull, bundle) as (c, init):
        r = hull("events", "--stats", c)
        assert r.returncode == 0, r
        cs = json.loads(r.stdout)["data"]["cpuset"]
        assert cs["cpus"] == sorted({0, last}) and cs["mems"] == [0], cs
        assert {"cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                "memory_spread_page", "memory_spread_slab", "memory_pressure",
                "sched_load_balance", "sched_relax_domain_level"} <= set(cs), cs


def test_events_stream_and_oom(hull, bundle, tmp_path):
    limit = 24 << 20
    bundle.linux["resources"]["memory"] = memory_limits(limit, limit)
    bundle.config["root"]["readonly"] = False
    # the init survives; a child hog is OOM-killed each time the test asks
    # (it volunteers first: oom_score_adj 1000, so a loaded host's timing
    # never makes the kernel pick the init instead)
    script = ("while :; do if [ -e /tmp/go ]; then rm /tmp/go; "
              "sh -c \"echo 1000 > /proc/self/oom_score_adj; "
              "x=\\$(head -c 100000000 /dev/zero | tr '\\\\0' a)\"; fi; "
              "sleep 0.05; done")
    with running(hull, bundle, args=("sh", "-c", script), comm="sh") as (c, init):
        out = tmp_path / "events.out"
        with open(out, "w") as f:
            p = subprocess.Popen(hull.cmd("events", "--interval", "200ms", c), stdout=f,
                                 stderr=subprocess.STDOUT)
        try:
            assert wait_until(lambda: out.read_text().count("\n") >= 2, timeout=20)
            (bundle.rootfs / "tmp" / "go").write_text("")
            assert wait_until(lambda: '"oom"' in out.read_text(), timeout=60), out.read_text()
            hull("kill", c, "KILL", check=True)
            # the stream ends with the container
            assert p.wait(30) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        events = [json.loads(x) for x in out.read_text().splitlines()]
        kinds = [e["type"] for e in events]
        assert kinds.count("stats") >= 2 and "oom" in kinds, kinds
        assert all(e["id"] == c for e in events)
        stats = [e for e in events if e["type"] == "stats"]
        assert all(e["data"]["memory"]["usage"]["limit"] == limit for e in stats)


def test_events_bad_interval_and_stopped(hull, bundle):
    with running(hull, bundle) as (c, init):
        r = hull("events", "--interval", "soon", c)
        assert_error(r, "--interval: 'soon' is not a duration")
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        r = hull("events", "--stats", c)
        assert_error(r, f"events {c}", "stopped")


# ---- features, checkpoint ----------------------------------------------------------

def test_features_document(hull):
    r = hull("features")
    assert r.returncode == 0, r
    f = json.loads(r.stdout)
    assert re.fullmatch(r"1\.\d+\.\d+", f["ociVersionMin"])
    assert re.fullmatch(r"1\.\d+\.\d+.*", f["ociVersionMax"])
    assert set(f["hooks"]) == {"prestart", "createRuntime", "createContainer",
                               "startContainer", "poststart", "poststop"}
    for opt in ("ro", "nosuid", "bind", "rbind", "rprivate", "rro", "nosymfollow"):
        assert opt in f["mountOptions"], opt
    lx = f["linux"]
    assert set(lx["namespaces"]) >= {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"}
    if os.path.exists("/proc/self/ns/time"):
        assert "time" in lx["namespaces"]
    caps = lx["capabilities"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_CHOWN" in caps and all(
        c.startswith("CAP_") for c in caps)
    sc = lx["seccomp"]
    assert sc["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_NOTIFY",
            "SCMP_ACT_TRAP", "SCMP_ACT_LOG"} <= set(sc["actions"])
    assert {"SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"} <= set(sc["operators"])
    assert "SCMP_ARCH_X86_64" in sc["archs"]
    assert lx["cgroup"]["v1"] is True and lx["cgroup"]["v2"] is (LAYOUT["v2"] is not None)
    assert lx["apparmor"]["enabled"] is False and lx["selinux"]["enabled"] is False
    assert lx["intelRdt"]["enabled"] is False


@pytest.mark.parametrize("verb", ["checkpoint", "restore"])
def test_checkpoint_restore_not_supported(hull, verb):
    r = hull(verb, cid())
    assert_error(r, f"{verb}: not supported")
