"""Config fields where hull followed neither the runtime-spec nor runc and
crun: accepted with a warning where they are (unknown CAP_ names,
linux.mountLabel without SELinux), refused by name where silently accepting
them would lie (linux.sysctl kernel.hostname/domainname). linux.netDevices,
once refused here, is implemented: test_net_devices.py.
Each checked on the real container: what it runs with, or that nothing was
left behind.
"""
import json
import os
from pathlib import Path

import pytest

from hullrt import caps_of_mask, proc_status, wait_exec
from rt4 import LAYOUT, TOKEN, assert_error, assert_nothing_left, cgroup_of, cid, running

CAPS = {"bounding", "effective", "permitted"}


def selinux_on():
    return Path("/sys/fs/selinux/enforce").exists()


def test_unknown_capability_name_is_a_warning_and_ignored(hull, bundle, tmp_path):
    """A config made for a newer kernel names a capability this one lacks:
    runc and crun warn and run it with the others; so does hull."""
    for s in CAPS:
        bundle.process["capabilities"][s] = ["CAP_KILL", "CAP_FROM_THE_FUTURE"]
    bundle.set_args("sleep", "1000").write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    try:
        assert r.returncode == 0, r
        assert ("process.capabilities.bounding[1]: unknown capability 'CAP_FROM_THE_FUTURE'"
                in r.stderr), r.stderr
        assert "ignored" in r.stderr
        pid = hull.state(c)["pid"]
        hull("start", c, check=True)
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        assert caps_of_mask(st["CapBnd"]) == {"CAP_KILL"}
        assert caps_of_mask(st["CapEff"]) == {"CAP_KILL"}
        # later verbs do not repeat the warning
        r = hull("state", c)
        assert "unknown capability" not in r.stderr
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("name", ["KILL", "12", "CAP_", "CAP_KILL/x", ""])
def test_malformed_capability_name_is_refused(hull, bundle, tmp_path, name):
    bundle.process["capabilities"]["effective"] = ["CAP_KILL", name]
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}",
                 f"process.capabilities.effective[1]: '{name}' is not a capability name")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_exec_cap_agrees_with_the_config(hull, bundle, tmp_path):
    with running(hull, bundle) as (c, pid):
        r = hull("exec", "--cap", "CAP_FROM_THE_FUTURE", "--cap", "CAP_CHOWN", c,
                 "sh", "-c", "grep CapBnd /proc/self/status")
        assert r.returncode == 0, r
        assert "--cap: unknown capability 'CAP_FROM_THE_FUTURE'" in r.stderr, r.stderr
        assert "CAP_CHOWN" in caps_of_mask(r.stdout.split()[1])
        r = hull("exec", "--cap", "CHOWN", c, "true")
        assert_error(r, f"exec {c}", "--cap: 'CHOWN' is not a capability name")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_mount_label_without_selinux_is_a_warning(hull, bundle, tmp_path):
    """As crun: a label from an SELinux host means nothing here."""
    if selinux_on():
        pytest.skip("this host has SELinux")
    bundle.linux["mountLabel"] = "system_u:object_r:container_file_t:s0"
    with running(hull, bundle, start=False) as (c, pid):
        assert hull.state(c)["status"] == "created"
    bundle.set_args("true").write()
    r = hull("run", "--bundle", str(bundle.path), cid("c2"))
    assert r.returncode == 0, r
    assert "linux.mountLabel: SELinux is not enabled on this host; ignored" in r.stderr
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("key, field", [("kernel.hostname", "hostname"),
                                        ("kernel.domainname", "domainname")])
def test_sysctl_for_a_field_of_its_own_is_refused(hull, bundle, tmp_path, key, field):
    """runc: kernel.hostname conflicts with the hostname field; two sources
    for one value are refused, whichever would win."""
    bundle.linux["sysctl"] = {key: "fromsysctl"}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", f"linux.sysctl: {key} conflicts with the {field} field")
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- crun's command line: --cgroup-manager, create/run --config -----------------

def test_cgroup_manager_disabled_makes_no_cgroup(hull, bundle, tmp_path):
    """crun's --cgroup-manager disabled: the container stays in the cgroups
    of whoever ran hull, and every verb still works."""
    gl = ("--cgroup-manager", "disabled")
    bundle.linux["cgroupsPath"] = f"/{TOKEN}nocg/c1"
    with running(hull, bundle, global_args=gl) as (c, pid):
        for ctrl in ("memory", "pids", "freezer", "cpuacct"):
            if ctrl in LAYOUT["v1"]:
                assert cgroup_of(pid, ctrl) == cgroup_of(os.getpid(), ctrl), ctrl
                assert not Path(LAYOUT["v1"][ctrl], f"{TOKEN}nocg").exists()
        assert hull.state(c)["status"] == "running"
        # the config's cgroup mount shows nothing of the caller's cgroups
        r = hull("exec", c, "ls", "-A", "/sys/fs/cgroup", global_args=gl)
        assert r.returncode == 0 and r.stdout == "", r
        # without a cgroup, ps finds the container's processes through its
        # pid namespace (as rootless containers do)
        r = hull("ps", c, global_args=gl)
        assert r.returncode == 0 and f" {pid} " in r.stdout and "sleep 1000" in r.stdout, r
    assert_nothing_left(hull, tmp_path, TOKEN + "nocg")


def test_cgroup_manager_disabled_refuses_limits_by_name(hull, bundle, tmp_path):
    bundle.linux["resources"]["memory"] = {"limit": 64 << 20}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c,
             global_args=("--cgroup-manager", "disabled"))
    assert_error(r, f"create {c}", "linux.resources.memory: cannot be enforced with "
                                   "--cgroup-manager disabled")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_cgroup_manager_disabled_warns_about_device_denies(hull, bundle, tmp_path):
    """A deny of one device node the container has cannot hold without a
    device cgroup: said, not hidden. runc's default "deny all" says nothing."""
    bundle.linux["resources"]["devices"].append(
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    bundle.set_args("true").write()
    r = hull("run", "--bundle", str(bundle.path), cid(),
             global_args=("--cgroup-manager", "disabled"))
    assert r.returncode == 0, r
    assert "linux.resources.devices[1]: not enforced with --cgroup-manager disabled" in r.stderr
    del bundle.linux["resources"]["devices"][1]
    bundle.write()
    r = hull("run", "--bundle", str(bundle.path), cid("c2"),
             global_args=("--cgroup-manager", "disabled"))
    assert r.returncode == 0 and r.stderr == "", r
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_cgroup_manager_systemd_is_systemd_cgroup(hull, bundle, tmp_path):
    tok = TOKEN.replace("_", "")
    bundle.linux["cgroupsPath"] = f"{tok}m.slice:crunpfx:{tok}ctr"
    with running(hull, bundle, global_args=("--cgroup-manager", "systemd")) as (c, pid):
        assert cgroup_of(pid, "memory") == f"/{tok}m.slice/crunpfx-{tok}ctr.scope"
    assert_nothing_left(hull, tmp_path, tok)


def test_cgroup_manager_unknown_is_refused(hull):
    r = hull("--cgroup-manager", "magic", "list")
    assert r.returncode != 0
    assert r.stderr.startswith("hull: --cgroup-manager: unknown manager 'magic'"), r
    assert "--cgroup-manager" in hull("--help").stdout


@pytest.mark.parametrize("flag", ["--config", "-f"])
def test_config_flag_reads_that_file(hull, bundle, tmp_path, flag):
    """crun's create/run --config FILE: the bundle's config.json is not
    read (here it would fail), root.path is still relative to the bundle."""
    bundle.set_args("sh", "-c", "echo from-other-config")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(bundle.config))
    (bundle.path / "config.json").write_text("{not json")
    r = hull("run", "--bundle", str(bundle.path), flag, str(other), cid())
    assert r.returncode == 0, r
    assert r.stdout == "from-other-config\n"
    c = cid("c2")
    r = hull("create", "--bundle", str(bundle.path), flag, str(other), c)
    try:
        assert r.returncode == 0, r
        assert hull.state(c)["status"] == "created"
    finally:
        hull("delete", "--force", c)
    assert "--config FILE" in hull("create", "--help").stdout
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- writes under /proc land in procfs or nowhere ----------------------------------

def test_sysctl_write_is_not_redirected_by_a_shadowing_mount(hull, bundle, tmp_path):
    """A config can mount over a /proc/sys file before the sysctls are
    applied; the write must not go to whatever was mounted there (here a
    host file standing in for any file the container's author chose)."""
    decoy = tmp_path / "decoy"
    decoy.write_text("untouched\n")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.config["mounts"].append({"destination": "/proc/sys/net/ipv4/ip_forward",
                                    "type": "bind", "source": str(decoy),
                                    "options": ["bind", "rw"]})
    bundle.set_args("true").write()
    c = cid()
    r = hull("run", "--bundle", str(bundle.path), c)
    assert decoy.read_text() == "untouched\n"
    assert_error(r, f"run {c}", "linux.sysctl: net.ipv4.ip_forward",
                 "/proc/sys/net/ipv4/ip_forward: not on procfs")
    assert_nothing_left(hull, tmp_path, TOKEN)
