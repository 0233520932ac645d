"""linux.sysctl (namespaced keys applied in the container's namespaces, the
host untouched; others refused), linux.personality, the LSM fields on a host
without that LSM, linux.intelRdt, and linux.timeOffsets in a time namespace
-- each checked from the host, each refusal leaving nothing behind.
"""
import os
import subprocess
from pathlib import Path

import pytest

from rt4 import TOKEN, assert_error, assert_nothing_left, cid, running


def host_sysctl(key):
    return Path("/proc/sys", key.replace(".", "/")).read_text().strip()


def in_ns(pid, kind, key):
    """A sysctl read from inside one namespace of pid (nsenter from the host)."""
    r = subprocess.run(["nsenter", "-t", str(pid), f"--{kind}", "cat",
                        "/proc/sys/" + key.replace(".", "/")],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


@pytest.mark.asan
def test_namespaced_sysctls_applied_in_the_container_only(hull, bundle):
    fwd, shm = host_sysctl("net.ipv4.ip_forward"), host_sysctl("kernel.shmmax")
    new_fwd = "0" if fwd == "1" else "1"
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": new_fwd, "kernel.shmmax": "123456789",
                              "net.ipv4.ping_group_range": "0 0",
                              "fs.mqueue.msg_max": "20"}
    with running(hull, bundle) as (c, pid):
        assert in_ns(pid, "net", "net.ipv4.ip_forward") == new_fwd
        assert in_ns(pid, "net", "net.ipv4.ping_group_range").split() == ["0", "0"]
        assert in_ns(pid, "ipc", "kernel.shmmax") == "123456789"
        assert in_ns(pid, "ipc", "fs.mqueue.msg_max") == "20"
        r = hull("exec", c, "cat", "/proc/sys/kernel/shmmax")
        assert r.stdout.strip() == "123456789"
    assert host_sysctl("net.ipv4.ip_forward") == fwd
    assert host_sysctl("kernel.shmmax") == shm


@pytest.mark.parametrize("sysctl, drop_ns, fragment", [
    ({"kernel.panic": "1"}, None, "linux.sysctl: kernel.panic is not namespaced"),
    ({"vm.swappiness": "1"}, None, "linux.sysctl: vm.swappiness is not namespaced"),
    ({"net.ipv4.ip_forward": "1"}, "network",
     "linux.sysctl: net.ipv4.ip_forward is not namespaced"),
    ({"kernel.shmmax": "1"}, "ipc", "linux.sysctl: kernel.shmmax is not namespaced"),
    ({"net.ipv4.no_such_key": "1"}, None, "linux.sysctl: net.ipv4.no_such_key"),
    ({"net.ipv4.../../kernel.panic": "1"}, None, "linux.sysctl"),
])
def test_other_sysctls_refused(hull, bundle, tmp_path, sysctl, drop_ns, fragment):
    panic = host_sysctl("kernel.panic")
    if drop_ns:
        bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                      if n["type"] != drop_ns]
    bundle.linux["sysctl"] = sysctl
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)
    assert host_sysctl("kernel.panic") == panic


@pytest.mark.asan
def test_personality_linux32(hull, bundle):
    bundle.linux["personality"] = {"domain": "LINUX32"}
    bundle.set_args("uname", "-m").write()
    r = hull("run", "--bundle", str(bundle.path), cid())
    assert r.returncode == 0, r
    assert r.stdout.strip() == "i686"
    with running(hull, bundle, name="c2") as (c, pid):
        # the init's execution domain, from the host (PER_LINUX32 = 8)
        assert int(Path(f"/proc/{pid}/personality").read_text(), 16) & 0xff == 8
        r = hull("exec", c, "uname", "-m")
        assert r.stdout.strip() == "i686", r


def test_personality_bad_domain_refused(hull, bundle, tmp_path):
    bundle.linux["personality"] = {"domain": "LINUX99"}
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, "linux.personality.domain")
    assert_nothing_left(hull, tmp_path, TOKEN)


def apparmor_on():
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y")
    except OSError:
        return False


def selinux_on():
    return Path("/sys/fs/selinux/enforce").exists()


@pytest.mark.parametrize("edit, fragment, lsm", [
    (lambda b: b.process.update(apparmorProfile="hull-default"),
     "process.apparmorProfile: AppArmor is not enabled on this host", "apparmor"),
    (lambda b: b.process.update(selinuxLabel="system_u:system_r:container_t:s0"),
     "process.selinuxLabel: SELinux is not enabled on this host", "selinux"),
    (lambda b: b.linux.update(intelRdt={"closID": "hull", "l3CacheSchema": "L3:0=ff"}),
     "linux.intelRdt: Intel RDT is not supported by hull", None),
])
def test_lsm_and_rdt_refused_clearly(hull, bundle, tmp_path, edit, fragment, lsm):
    if (lsm == "apparmor" and apparmor_on()) or (lsm == "selinux" and selinux_on()):
        pytest.skip(f"this host has {lsm}")
    edit(bundle)
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_exec_apparmor_refused_clearly(hull, bundle):
    if apparmor_on():
        pytest.skip("this host has AppArmor")
    with running(hull, bundle) as (c, pid):
        r = hull("exec", "--apparmor", "unconfined", c, "true")
        assert_error(r, f"exec {c}", "apparmorProfile: AppArmor is not enabled")
        r = hull("exec", "--process-label", "x_t", c, "true")
        assert_error(r, f"exec {c}", "selinuxLabel: SELinux is not enabled")


def uptime():
    return float(Path("/proc/uptime").read_text().split()[0])


@pytest.mark.asan
def test_time_offsets_in_a_time_namespace(hull, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces")
    shift = 10 * 86400
    bundle.linux["namespaces"].append({"type": "time"})
    bundle.linux["timeOffsets"] = {"boottime": {"secs": shift, "nanosecs": 0},
                                   "monotonic": {"secs": 2 * shift, "nanosecs": 500}}
    with running(hull, bundle) as (c, pid):
        before = uptime()
        r = hull("exec", c, "cat", "/proc/uptime")
        after = uptime()
        inside = float(r.stdout.split()[0])
        # /proc/uptime has two decimals: adding the shift in floating point
        # can land a hundredth's rounding on either side.
        assert before + shift - 0.01 <= inside <= after + shift + 0.01, (before, inside, after)
        offsets = dict((x.split()[0], x.split()[1:]) for x in
                       Path(f"/proc/{pid}/timens_offsets").read_text().splitlines())
        assert offsets["boottime"] == [str(shift), "0"]
        assert offsets["monotonic"] == [str(2 * shift), "500"]
        assert os.readlink(f"/proc/{pid}/ns/time") != os.readlink("/proc/self/ns/time")


def test_time_offsets_without_a_time_namespace_refused(hull, bundle, tmp_path):
    bundle.linux["timeOffsets"] = {"boottime": {"secs": 5}}
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, "linux.timeOffsets")
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("memory", [None, 64 << 20], ids=["no_limit", "memory_limit"])
def test_new_network_namespace_is_what_sysfs_and_the_program_see(hull, bundle, memory):
    """The container's own network namespace is the one its sysfs shows
    and its program is in, both when the runtime makes it after the clone
    (no memory or pids limit) and when the clone does (a memory limit)."""
    if memory:
        bundle.linux.setdefault("resources", {})["memory"] = {"limit": memory}
    bundle.set_args("sh", "-c", "ls /sys/class/net; readlink /proc/self/ns/net")
    bundle.write()
    r = hull("run", "--bundle", str(bundle.path), cid("netns"), check=True)
    words = r.stdout.split()
    assert words[:-1] == ["lo"], r
    assert words[-1].startswith("net:[") and words[-1] != os.readlink("/proc/self/ns/net")


def test_bind_of_a_namespace_file_made_in_the_containers_network_namespace(hull, bundle):
    """A bind resolved by the init (here /proc/self/ns/net, first of the
    mounts) leads to the container's network namespace, not to the host's
    that the init is in until it joins a namespace the runtime makes after
    the clone: the init joins before such a mount, as before sysfs."""
    bundle.config["mounts"].insert(0, {"destination": "/netns", "type": "bind",
                                       "source": "/proc/self/ns/net", "options": ["bind"]})
    bundle.set_args("sh", "-c", "stat -L -c %i /netns; readlink /proc/self/ns/net")
    bundle.write()
    r = hull("run", "--bundle", str(bundle.path), cid("nsbind"), check=True)
    bound, own = r.stdout.split()
    assert own == f"net:[{bound}]", r
    assert int(bound) != os.stat("/proc/self/ns/net").st_ino
