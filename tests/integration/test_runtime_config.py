"""One test per config.json field the OCI runtime core acts on (issue 3),
each checked from the host where the kernel shows it (/proc/PID/ns,
mountinfo, status, limits, the container's root through /proc/PID/root)
and, where it matters, from inside the container."""
import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import wait_until
from hullrt import (ns_holder, caps_of_mask, cid, in_root, mount_at, mountinfo,
                    mounts_in_namespace, ns_inode, proc_status, run_out, setns_run, started,
                    wait_exec)

NS = [("pid", "pid"), ("mount", "mnt"), ("ipc", "ipc"), ("uts", "uts"), ("network", "net"),
      ("cgroup", "cgroup")]
CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000


def sleeper(bundle, *prefix):
    """The container's process: optional shell commands, then sleep."""
    if prefix:
        bundle.set_args("sh", "-c", "; ".join(prefix) + "; exec sleep 1000")
    else:
        bundle.set_args("sleep", "1000")
    return bundle


def userns(bundle, host=100000, size=65536):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]


# ---- namespaces -----------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.parametrize("spec_name,proc_name", NS)
def test_namespace_new(hull, bundle, spec_name, proc_name):
    with started(hull, sleeper(bundle)) as (c, pid):
        assert ns_inode(pid, proc_name) != ns_inode(os.getpid(), proc_name)


@pytest.mark.parametrize("spec_name,proc_name", NS)
def test_namespace_absent_shares_the_hosts(hull, bundle, spec_name, proc_name):
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                  if n["type"] != spec_name]
    if spec_name == "uts":
        del bundle.config["hostname"]
    with started(hull, sleeper(bundle)) as (c, pid):
        assert ns_inode(pid, proc_name) == ns_inode(os.getpid(), proc_name)
        others = [p for s, p in NS if s != spec_name]
        assert all(ns_inode(pid, p) != ns_inode(os.getpid(), p) for p in others)


@pytest.mark.parametrize("spec_name,proc_name", [
    ("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("pid", "pid"), ("cgroup", "cgroup")])
def test_namespace_joined_by_path(hull, bundle, spec_name, proc_name):
    with ns_holder("--net", "--ipc", "--uts", "--pid", "--cgroup") as holder:
        for n in bundle.linux["namespaces"]:
            if n["type"] == spec_name:
                n["path"] = f"/proc/{holder}/ns/{proc_name}"
        with started(hull, sleeper(bundle)) as (c, pid):
            assert ns_inode(pid, proc_name) == ns_inode(holder, proc_name)
            assert ns_inode(pid, proc_name) != ns_inode(os.getpid(), proc_name)
            # The others are still new ones of its own.
            others = [q for s, q in NS if s != spec_name]
            assert all(ns_inode(pid, q) != ns_inode(holder, q) for q in others)
            if spec_name == "pid":
                # In the holder's pid namespace the holder is 1: we are not.
                nspid = proc_status(pid)["NSpid"].split()
                assert len(nspid) == 2 and nspid[1] != "1"


def test_namespace_net_joined_from_ip_netns(hull, bundle):
    """A named network namespace (ip netns add) joined by its bind-mount path."""
    name = f"hull-{cid('n')}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"
        for n in bundle.linux["namespaces"]:
            if n["type"] == "network":
                n["path"] = path
        with started(hull, sleeper(bundle)) as (c, pid):
            assert ns_inode(pid, "net") == os.stat(path).st_ino
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def test_namespace_user_joined_by_path(hull, bundle, tmp_path):
    with ns_holder("--user", "--map-root-user") as h:
        assert Path(f"/proc/{h}/uid_map").read_text().split() == ["0", "0", "1"]
        bundle.linux["namespaces"].append({"type": "user", "path": f"/proc/{h}/ns/user"})
        # gid 5 is not mapped in that namespace: devpts would refuse it.
        pts = next(m for m in bundle.config["mounts"] if m["destination"] == "/dev/pts")
        pts["options"].remove("gid=5")
        with started(hull, sleeper(bundle)) as (c, pid):
            assert ns_inode(pid, "user") == ns_inode(h, "user")
            assert ns_inode(pid, "mnt") != ns_inode(h, "mnt")
            assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "0", "1"]


@pytest.mark.asan
def test_user_namespace_mappings(hull, ubundle):
    """uid/gid maps as written; the container is root, the host sees the
    mapped ids, also on files it creates in a bind mount."""
    bundle = ubundle
    vol = bundle.path.parent / "vol"
    vol.mkdir()
    vol.chmod(0o777)
    (bundle.rootfs / "mnt").mkdir()
    bundle.config["mounts"].append({"destination": "/mnt", "type": "bind",
                                    "source": str(vol), "options": ["rbind", "rw"]})
    userns(bundle)
    sleeper(bundle, "touch /mnt/made-inside", "id -u > /dev/shm/uid", "id -g > /dev/shm/gid")
    bundle.process["user"] = {"uid": 0, "gid": 0}
    with started(hull, bundle) as (c, pid):
        assert ns_inode(pid, "user") != ns_inode(os.getpid(), "user")
        assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
        assert Path(f"/proc/{pid}/gid_map").read_text().split() == ["0", "100000", "65536"]
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        assert st["Uid"].split() == ["100000"] * 4
        assert st["Gid"].split() == ["100000"] * 4
        assert Path(in_root(pid, "/dev/shm/uid")).read_text() == "0\n"
        assert Path(in_root(pid, "/dev/shm/gid")).read_text() == "0\n"
        f = os.stat(vol / "made-inside")
        assert (f.st_uid, f.st_gid) == (100000, 100000)
        # No mknod in a user namespace: the host's nodes are bound instead.
        null = os.stat(in_root(pid, "/dev/null"))
        assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 \
            and os.minor(null.st_rdev) == 3


@pytest.mark.parametrize("time_ns", [False, True])
def test_user_namespace_owns_its_ipc_namespace_and_mqueue(hull, ubundle, time_ns):
    """The IPC namespace belongs to the container's user namespace, and its
    /dev/mqueue to the container's root (host uid 100000), not to an
    unmapped host root: it is made once the init is root of its user
    namespace (directly cloned, and through stage 1 for a time namespace)."""
    bundle = ubundle
    userns(bundle)
    if time_ns:
        bundle.linux["namespaces"].append({"type": "time"})
    with started(hull, sleeper(bundle, "touch /dev/mqueue/q")) as (c, pid):
        wait_exec(pid, "sleep")
        assert ns_inode(pid, "ipc") != ns_inode(os.getpid(), "ipc")
        mq = os.stat(in_root(pid, "/dev/mqueue"))
        assert (mq.st_uid, mq.st_gid) == (100000, 100000)
        q = os.stat(in_root(pid, "/dev/mqueue/q"))
        assert q.st_uid == 100000
        r = hull("exec", c, "readlink", "/proc/self/ns/ipc")
        assert r.stdout.strip() == os.readlink(f"/proc/{pid}/ns/ipc"), r


def test_user_namespace_several_ranges(hull, ubundle):
    bundle = ubundle
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1},
                                   {"containerID": 1, "hostID": 300001, "size": 2000}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1},
                                   {"containerID": 1, "hostID": 300001, "size": 2000}]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    with started(hull, sleeper(bundle)) as (c, pid):
        lines = [line.split() for line in Path(f"/proc/{pid}/uid_map").read_text().splitlines()]
        assert lines == [["0", "200000", "1"], ["1", "300001", "2000"]]
        wait_exec(pid, "sleep")
        assert proc_status(pid)["Uid"].split() == ["301000"] * 4
        assert proc_status(pid)["Gid"].split() == ["301000"] * 4


def test_user_namespace_sysfs_without_netns(hull, ubundle):
    """sysfs cannot be mounted from a user namespace that does not own the
    network namespace; the host's /sys is bound read-only instead."""
    bundle = ubundle
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                  if n["type"] != "network"]
    userns(bundle)
    with started(hull, sleeper(bundle)) as (c, pid):
        assert ns_inode(pid, "net") == ns_inode(os.getpid(), "net")
        sys_ = mount_at(pid, "/sys")
        assert sys_["fstype"] == "sysfs" and "ro" in sys_["opts"]
        assert os.path.isdir(in_root(pid, "/sys/class"))


# ---- root -----------------------------------------------------------------------

@pytest.mark.asan
def test_root_readonly(hull, bundle):
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev"]})
    r = run_out(hull, bundle, "sh", "-c",
                "touch /x 2>&1; echo rc=$?; touch /tmp/y && echo tmp-ok", check=False)
    assert r.returncode == 0, r
    assert "Read-only file system" in r.stdout
    assert "rc=1" in r.stdout and "tmp-ok" in r.stdout
    assert not (bundle.rootfs / "x").exists()
    with started(hull, sleeper(bundle), "ro2") as (c, pid):
        assert "ro" in mount_at(pid, "/")["opts"]
        assert "rw" in mount_at(pid, "/tmp")["opts"]


def test_root_writable(hull, bundle):
    bundle.config["root"]["readonly"] = False
    run_out(hull, bundle, "sh", "-c", "echo hi > /made-inside")
    assert (bundle.rootfs / "made-inside").read_text() == "hi\n"


def test_root_path_absolute_and_renamed(hull, bundle, tmp_path):
    other = tmp_path / "elsewhere"
    shutil.move(str(bundle.rootfs), str(other))
    (other / "marker").write_text("m")
    bundle.config["root"]["path"] = str(other)
    r = run_out(hull, bundle, "cat", "/marker")
    assert r.stdout == "m"
    st_root = json.loads(json.dumps(bundle.config["root"]))
    assert st_root["path"] == str(other)


# ---- mounts ---------------------------------------------------------------------

def _src(tmp_path, name, files=("f",)):
    d = tmp_path / name
    d.mkdir()
    for f in files:
        (d / f).write_text(name)
    return d


def test_mount_bind_options(hull, bundle, tmp_path):
    src = _src(tmp_path, "src")
    (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (src / "run.sh").chmod(0o755)
    m = bundle.config["mounts"]
    m.append({"destination": "/ro", "type": "bind", "source": str(src),
              "options": ["bind", "ro"]})
    m.append({"destination": "/nx", "type": "bind", "source": str(src),
              "options": ["bind", "nosuid", "nodev", "noexec"]})
    m.append({"destination": "/rw", "type": "none", "source": str(src),
              "options": ["bind", "rw"]})
    sleeper(bundle)
    with started(hull, bundle) as (c, pid):
        ro, nx, rw = mount_at(pid, "/ro"), mount_at(pid, "/nx"), mount_at(pid, "/rw")
        assert "ro" in ro["opts"]
        assert {"nosuid", "nodev", "noexec", "rw"} <= nx["opts"]
        assert "rw" in rw["opts"] and "noexec" not in rw["opts"]
        assert ro["root"] == nx["root"] == str(src)
    r = run_out(hull, bundle, "sh", "-c",
                "cat /ro/f; touch /ro/new 2>&1; /nx/run.sh 2>&1; /rw/run.sh; "
                "echo w > /rw/written", check=False)
    assert r.returncode == 0, r
    assert r.stdout.startswith("src")
    assert "Read-only file system" in r.stdout
    assert "Permission denied" in r.stdout
    assert r.stdout.rstrip().endswith("ran")
    assert (src / "written").read_text() == "w\n"


def test_mount_bind_source_relative_to_bundle(hull, bundle, tmp_path):
    """runtime-spec: a relative bind source is relative to the bundle, not
    to hull's working directory."""
    (bundle.path / "data").mkdir()
    (bundle.path / "data" / "f").write_text("in-bundle")
    (tmp_path / "elsewhere").mkdir()
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": "data", "options": ["bind", "ro"]})
    bundle.set_args("cat", "/data/f").write()
    r = hull("run", "--bundle", str(bundle.path), cid(), cwd=str(tmp_path / "elsewhere"))
    assert r.returncode == 0, r
    assert r.stdout == "in-bundle"


@pytest.fixture
def src_with_submount(tmp_path):
    """A host directory with a tmpfs mounted below it."""
    src = _src(tmp_path, "tree")
    (src / "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "subtmp", str(src / "sub")],
                   check=True)
    (src / "sub" / "inner").write_text("inner")
    yield src
    subprocess.run(["umount", "-l", str(src / "sub")], check=True)


def test_mount_bind_vs_rbind(hull, bundle, src_with_submount):
    src = src_with_submount
    m = bundle.config["mounts"]
    m.append({"destination": "/b", "type": "bind", "source": str(src), "options": ["bind"]})
    m.append({"destination": "/rb", "type": "bind", "source": str(src), "options": ["rbind"]})
    m.append({"destination": "/rro", "type": "bind", "source": str(src),
              "options": ["rbind", "rro"]})
    m.append({"destination": "/rbro", "type": "bind", "source": str(src),
              "options": ["rbind", "ro"]})
    with started(hull, sleeper(bundle)) as (c, pid):
        mps = {x["mountpoint"]: x for x in mountinfo(pid)}
        assert "/b/sub" not in mps
        assert not os.listdir(in_root(pid, "/b/sub"))
        assert mps["/rb/sub"]["fstype"] == "tmpfs" and "rw" in mps["/rb/sub"]["opts"]
        assert Path(in_root(pid, "/rb/sub/inner")).read_text() == "inner"
        # rro reaches the submount; plain ro only the top.
        assert "ro" in mps["/rro"]["opts"] and "ro" in mps["/rro/sub"]["opts"]
        assert "ro" in mps["/rbro"]["opts"]
        assert "rw" in mps["/rb"]["opts"]


def test_mount_tmpfs_size_mode(hull, bundle):
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "size=1m", "mode=0711", "uid=5",
                                                "gid=6"]})
    with started(hull, sleeper(bundle)) as (c, pid):
        t = mount_at(pid, "/t")
        assert t["fstype"] == "tmpfs"
        assert {"size=1024k", "mode=711", "uid=5", "gid=6"} <= t["super"]
        assert "nosuid" in t["opts"]
        st = os.stat(in_root(pid, "/t"))
        assert stat.S_IMODE(st.st_mode) == 0o711 and (st.st_uid, st.st_gid) == (5, 6)
    bundle.config["mounts"][-1]["options"] = ["size=1m"]
    r = run_out(hull, bundle, "sh", "-c",
                "dd if=/dev/zero of=/t/big bs=1k count=2048 2>&1; echo rc=$?", check=False)
    assert "No space left on device" in r.stdout


def test_mount_recursive_options_on_any_type(hull, bundle):
    """rro, rnosuid, rnoexec... are mount_setattr attributes of the whole
    tree, for a tmpfs as for a bind; with tmpcopyup the copy comes first."""
    m = bundle.config["mounts"]
    m.append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
              "options": ["rro", "rnosuid"]})
    m.append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
              "options": ["tmpcopyup", "rro", "rnoexec"]})
    with started(hull, sleeper(bundle)) as (c, pid):
        t, etc = mount_at(pid, "/t"), mount_at(pid, "/etc")
        assert {"ro", "nosuid"} <= t["opts"]
        assert {"ro", "noexec"} <= etc["opts"]
        assert Path(in_root(pid, "/etc/passwd")).read_text().startswith("root:")


@pytest.mark.parametrize("options, mode", [
    (["strictatime", "rnoatime"], "noatime"), (["noatime", "rstrictatime"], None),
    (["noatime", "rrelatime"], "relatime"), (["noatime", "ratime"], "relatime"),
    (["strictatime", "rnostrictatime"], "relatime"), (["noatime", "rnorelatime"], "relatime"),
])
def test_mount_recursive_atime_options(hull, bundle, options, mode):
    """The recursive atime options each pick one mode (the kernel takes them
    only as a whole field, never as a bit to set or clear), over the mount's
    own atime option; none is refused."""
    bundle.config["mounts"].append({"destination": "/u", "type": "tmpfs", "source": "tmpfs",
                                    "options": options})
    with started(hull, sleeper(bundle)) as (c, pid):
        opts = mount_at(pid, "/u")["opts"]
        # strictatime shows as no atime option at all
        assert opts & {"noatime", "relatime", "strictatime"} == ({mode} if mode else set()), opts


@pytest.mark.parametrize("option", ["acl", "noacl"])
def test_mount_acl_options_are_flags(hull, bundle, option):
    """acl/noacl are MS_POSIXACL (as runc maps them), not filesystem data
    a tmpfs would refuse."""
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": [option, "mode=700"]})
    r = run_out(hull, bundle, "sh", "-c", "stat -c %a /t", check=False)
    assert r.returncode == 0 and r.stdout == "700\n", r


@pytest.mark.asan
def test_mount_proc_sysfs_devpts_mqueue_shm(hull, bundle):
    with started(hull, sleeper(bundle)) as (c, pid):
        mps = {x["mountpoint"]: x for x in mountinfo(pid)}
        assert mps["/proc"]["fstype"] == "proc"
        assert mps["/sys"]["fstype"] == "sysfs" and "ro" in mps["/sys"]["opts"]
        assert mps["/dev/pts"]["fstype"] == "devpts"
        assert {"ptmxmode=666", "mode=620", "gid=5"} <= mps["/dev/pts"]["super"]
        assert mps["/dev/mqueue"]["fstype"] == "mqueue"
        assert mps["/dev/shm"]["fstype"] == "tmpfs"
        assert {"nosuid", "nodev", "noexec"} <= mps["/dev/shm"]["opts"]
        # Mount order: /dev first, then what lives below it.
        order = [x["mountpoint"] for x in mountinfo(pid)]
        assert order.index("/dev") < order.index("/dev/pts") < order.index("/dev/shm")
    # proc is the container's: its pid namespace, its own pid 1.
    r = run_out(hull, bundle, "sh", "-c", "echo $$; cat /proc/1/comm; exit 0")
    assert r.stdout.split() == ["1", "sh"]


def test_mount_cgroup(hull, bundle):
    """The "cgroup" mount of the default config: the container's own
    cgroups, read-only, and (with a cgroup namespace) rooted at them."""
    with started(hull, sleeper(bundle)) as (c, pid):
        cg = [m for m in mountinfo(pid) if m["fstype"] in ("cgroup", "cgroup2")]
        assert cg, [m["mountpoint"] for m in mountinfo(pid)]
        assert all(m["mountpoint"].startswith("/sys/fs/cgroup") for m in cg)
        assert all("ro" in m["opts"] for m in cg)
        host_view = Path(f"/proc/{pid}/cgroup").read_text()
        assert c in host_view  # placed in a cgroup named after the container
    r = run_out(hull, bundle, "cat", "/proc/self/cgroup")
    assert all(line.endswith(":/") for line in r.stdout.splitlines()), r.stdout


def test_mount_file_bind(hull, bundle, tmp_path):
    f = tmp_path / "host.conf"
    f.write_text("from-host\n")
    bundle.config["mounts"].append({"destination": "/etc/app/app.conf", "type": "bind",
                                    "source": str(f), "options": ["bind", "ro"]})
    r = run_out(hull, bundle, "sh", "-c", "cat /etc/app/app.conf; echo x > /etc/app/app.conf",
                check=False)
    assert r.stdout == "from-host\n"
    assert "Read-only file system" in r.stderr
    assert f.read_text() == "from-host\n"
    # The mount point was created as a file inside the rootfs, not a dir.
    assert (bundle.rootfs / "etc/app/app.conf").is_file()


def test_mounts_in_order_later_covers_earlier(hull, bundle, tmp_path):
    a, b, s = _src(tmp_path, "a", ["fa"]), _src(tmp_path, "b", ["fb"]), _src(tmp_path, "s")
    m = bundle.config["mounts"]
    m.append({"destination": "/data", "type": "bind", "source": str(a), "options": ["bind"]})
    m.append({"destination": "/data", "type": "bind", "source": str(b), "options": ["bind"]})
    m.append({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs", "options": []})
    m.append({"destination": "/data/sub/deeper", "type": "bind", "source": str(s),
              "options": ["bind", "ro"]})
    with started(hull, sleeper(bundle)) as (c, pid):
        mi = mountinfo(pid)
        data = [x for x in mi if x["mountpoint"] == "/data"]
        assert [x["root"] for x in data] == [str(a), str(b)]
        assert data[1]["parent"] == data[0]["id"]
        sub = mount_at(pid, "/data/sub")
        assert sub["parent"] == data[1]["id"] and sub["fstype"] == "tmpfs"
        deeper = mount_at(pid, "/data/sub/deeper")
        assert deeper["parent"] == sub["id"] and "ro" in deeper["opts"]
        assert sorted(os.listdir(in_root(pid, "/data"))) == ["fb", "sub"]
        assert os.listdir(in_root(pid, "/data/sub/deeper")) == ["f"]
    # The tmpfs was made in the container: b itself is untouched on the host.
    assert sorted(os.listdir(b)) == ["fb", "sub"] or sorted(os.listdir(b)) == ["fb"]


# ---- rootfsPropagation ----------------------------------------------------------

def _tags(m):
    return {t.split(":")[0] for t in m["optional"]}


@pytest.mark.parametrize("prop", ["shared", "slave", "private", None])
def test_rootfs_propagation(hull, bundle, tmp_path, prop):
    """With the bundle on a shared host mount: shared gives the container's
    root a peer group of its own, slave keeps receiving the host's mounts,
    private cuts both ways. Container mounts never reach the host."""
    subprocess.run(["mount", "--bind", str(tmp_path), str(tmp_path)], check=True)
    hostmnt = None
    try:
        subprocess.run(["mount", "--make-shared", str(tmp_path)], check=True)
        if prop:
            bundle.linux["rootfsPropagation"] = prop
        (bundle.rootfs / "mnt").mkdir()
        with started(hull, sleeper(bundle)) as (c, pid):
            root = mount_at(pid, "/")
            if prop == "shared":
                assert "shared" in _tags(root)
            elif prop in ("slave", None):
                assert _tags(root) == {"master"}
            else:
                assert _tags(root) == set()
            # The container's mounts stay inside it.
            assert [mp for mp in _host_mounts() if mp.startswith(str(bundle.path))] == []
            # A mount the host makes later below the rootfs.
            hostmnt = bundle.rootfs / "mnt"
            subprocess.run(["mount", "-t", "tmpfs", "late", str(hostmnt)], check=True)
            seen = wait_until(lambda: any(x["mountpoint"] == "/mnt"
                                          for x in mountinfo(pid)), timeout=1)
            assert seen == (prop in ("slave", None, "shared"))
    finally:
        if hostmnt is not None:
            subprocess.run(["umount", "-l", str(hostmnt)])
        subprocess.run(["umount", "-l", str(tmp_path)], check=True)


def _host_mounts():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# ---- pivot_root -----------------------------------------------------------------

@pytest.mark.parametrize("no_pivot", [False, True])
def test_pivot_root_drops_the_old_root(hull, bundle, no_pivot):
    """After pivot_root the container's mount namespace holds only its own
    mounts; with --no-pivot (MS_MOVE + chroot) the host's mounts stay in it
    below the container's root."""
    args = ("--no-pivot",) if no_pivot else ()
    with started(hull, sleeper(bundle), start=False, create_args=args) as (c, pid):
        all_mounts = mounts_in_namespace(pid)
        if all_mounts is None:
            pytest.skip("kernel lacks listmount(2) on another mount namespace")
        visible = mountinfo(pid)
        if no_pivot:
            assert len(all_mounts) > len(visible)
        else:
            assert len(all_mounts) == len(visible)
        # Either way the container's / is its rootfs.
        assert sorted(os.listdir(in_root(pid, "/"))) == sorted(os.listdir(bundle.rootfs))


# ---- devices --------------------------------------------------------------------

DEFAULT_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                   "urandom": (1, 9), "tty": (5, 0)}


@pytest.mark.asan
def test_default_devices_and_links(hull, bundle):
    with started(hull, sleeper(bundle), start=False) as (c, pid):
        for name, (major, minor) in DEFAULT_DEVICES.items():
            st = os.stat(in_root(pid, f"/dev/{name}"))
            assert stat.S_ISCHR(st.st_mode), name
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), name
            assert stat.S_IMODE(st.st_mode) == 0o666, name
            assert (st.st_uid, st.st_gid) == (0, 0), name
        links = {n: os.readlink(in_root(pid, f"/dev/{n}"))
                 for n in ("fd", "stdin", "stdout", "stderr", "ptmx")}
        assert links == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                         "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
                         "ptmx": "pts/ptmx"}
        # /dev/core only where the kernel has /proc/kcore (as runc): never dangling
        core = in_root(pid, "/dev/core")
        if os.path.exists("/proc/kcore"):
            assert os.readlink(core) == "/proc/kcore"
        else:
            assert not os.path.lexists(core)
    r = run_out(hull, bundle, "sh", "-c",
                "head -c 5 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
                "echo x > /dev/full || echo full-refused; ls /dev/fd/")
    out = r.stdout.split()
    assert out[:3] == ["5", "null-ok", "full-refused"]


def test_linux_devices(hull, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 8, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/fifo", "type": "p", "fileMode": 0o600},
        {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600},
    ]
    with started(hull, sleeper(bundle), start=False) as (c, pid):
        st = os.stat(in_root(pid, "/dev/mydev"))
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 8)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_uid, st.st_gid) == (1000, 1001)
        fifo = os.stat(in_root(pid, "/dev/sub/fifo"))
        assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o600
        zero = os.stat(in_root(pid, "/dev/zero"))
        assert stat.S_IMODE(zero.st_mode) == 0o600
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    r = run_out(hull, bundle, "sh", "-c", "head -c 4 /dev/mydev | wc -c; ls -ln /dev/mydev")
    assert r.stdout.split()[:4] == ["4", "crw-r-----", "1", "1000"]


# ---- maskedPaths, readonlyPaths -------------------------------------------------

def test_masked_paths(hull, bundle):
    (bundle.rootfs / "secret").mkdir()
    (bundle.rootfs / "secret" / "key").write_text("k")
    (bundle.rootfs / "etc" / "secret.txt").write_text("s")
    bundle.linux["maskedPaths"] += ["/secret", "/etc/secret.txt", "/does/not/exist"]
    kfile = "/proc/kcore" if os.path.exists("/proc/kcore") else "/proc/keys"
    r = run_out(hull, bundle, "sh", "-c",
                f"wc -c < {kfile}; ls -A /secret | wc -l; wc -c < /etc/secret.txt; "
                "ls -A /sys/firmware | wc -l; echo x > /etc/secret.txt; echo rc=$?",
                check=False)
    assert r.returncode == 0, r
    assert r.stdout.split() == ["0", "0", "0", "0", "rc=0"], r
    # The host's files are untouched and still have their content.
    assert (bundle.rootfs / "etc" / "secret.txt").read_text() == "s"
    with started(hull, sleeper(bundle), "m2") as (c, pid):
        mps = {x["mountpoint"] for x in mountinfo(pid)}
        assert {kfile, "/secret", "/etc/secret.txt", "/sys/firmware"} <= mps


def test_masked_directories_share_one_empty_tmpfs(hull, bundle):
    """Every masked directory gets the same empty, read-only tmpfs (one
    superblock per container, not per directory: issue 13's memory), and
    another container gets its own."""
    for d in ("m1", "m2", "m3"):
        (bundle.rootfs / d).mkdir()
        (bundle.rootfs / d / "inside").write_text("x")
    bundle.linux["maskedPaths"] += ["/m1", "/m2", "/m3"]
    r = run_out(hull, bundle, "sh", "-c",
                "for d in /m1 /m2 /m3 /sys/firmware; do ls -A $d | wc -l; done; "
                "touch /m1/new; mkdir /m2/new; ls -A /m3 | wc -l", check=False)
    assert r.stdout.split() == ["0"] * 5, r
    assert r.stderr.count("Read-only file system") == 2, r
    with started(hull, sleeper(bundle), "mk1") as (c1, pid1), \
            started(hull, sleeper(bundle), "mk2") as (c2, pid2):
        mine = [mount_at(pid1, d) for d in ("/m1", "/m2", "/m3", "/sys/firmware")]
        assert {m["fstype"] for m in mine} == {"tmpfs"}
        assert all({"ro", "nosuid", "nodev", "noexec"} <= m["opts"] for m in mine), mine
        assert len({m["dev"] for m in mine}) == 1, mine
        assert mount_at(pid2, "/m1")["dev"] != mine[0]["dev"]
    # The rootfs's own files are untouched.
    assert (bundle.rootfs / "m1" / "inside").read_text() == "x"


def test_readonly_paths(hull, bundle):
    bundle.config["root"]["readonly"] = False
    (bundle.rootfs / "data").mkdir()
    bundle.linux["readonlyPaths"] += ["/data", "/not/there"]
    r = run_out(hull, bundle, "sh", "-c",
                "echo 1 > /proc/sys/kernel/ns_last_pid; echo 1 > /proc/sys/vm/drop_caches; "
                "touch /data/x; touch /other && echo other-ok", check=False)
    assert r.returncode == 0, r
    assert r.stderr.count("Read-only file system") == 3, r
    assert "other-ok" in r.stdout
    assert not (bundle.rootfs / "data" / "x").exists()
    with started(hull, sleeper(bundle), "ro2") as (c, pid):
        assert "ro" in mount_at(pid, "/proc/sys")["opts"]
        assert "ro" in mount_at(pid, "/data")["opts"]


# ---- hostname, domainname -------------------------------------------------------

@pytest.mark.asan
def test_hostname_domainname(hull, bundle):
    bundle.config["hostname"] = "box-1"
    bundle.config["domainname"] = "example.test"
    r = run_out(hull, bundle, "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert r.stdout.split() == ["box-1", "example.test"]
    with started(hull, sleeper(bundle)) as (c, pid):
        seen = setns_run(pid, CLONE_NEWUTS, lambda: [
            socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text().strip()])
        assert seen == ["box-1", "example.test"]
    assert socket.gethostname() != "box-1"


# ---- process --------------------------------------------------------------------

@pytest.mark.asan
def test_process_user(hull, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20],
                              "umask": 0o027}
    sleeper(bundle, "touch /dev/shm/f", "mkdir /dev/shm/d")
    with started(hull, bundle) as (c, pid):
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        assert st["Uid"].split() == ["1000"] * 4
        assert st["Gid"].split() == ["1000"] * 4
        assert sorted(st["Groups"].split()) == ["10", "20"]
        assert st["Umask"] == "0027"
        f = os.stat(in_root(pid, "/dev/shm/f"))
        assert stat.S_IMODE(f.st_mode) == 0o640 and (f.st_uid, f.st_gid) == (1000, 1000)
        assert stat.S_IMODE(os.stat(in_root(pid, "/dev/shm/d")).st_mode) == 0o750


def test_process_user_owns_its_stdio_pipes_not_files(hull, bundle, tmp_path):
    """As runc and crun: a process that is not root can reopen its stdio
    pipes (/dev/stdout, /dev/stderr go through /proc/self/fd, which checks
    the owner of a 0600 pipe), because they are given to its user; a
    regular file the caller passed keeps its owner."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.set_args("sh", "-c", "echo out > /dev/stdout && echo err > /dev/stderr").write()
    r = subprocess.run(hull.cmd("run", "--bundle", str(bundle.path), cid()),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n"), r
    log = tmp_path / "out.log"
    with open(log, "w") as f:
        log.chmod(0o600)
        r = subprocess.run(hull.cmd("run", "--bundle", str(bundle.path), cid()),
                           stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    assert log.stat().st_uid == 0


def test_process_user_root_has_no_groups(hull, bundle):
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        assert st["Uid"].split() == ["0"] * 4
        assert st["Groups"].split() == []


def test_process_cwd(hull, bundle):
    bundle.process["cwd"] = "/tmp/work/dir"
    (bundle.rootfs / "tmp/work/dir").mkdir(parents=True)
    r = run_out(hull, bundle, "pwd")
    assert r.stdout == "/tmp/work/dir\n"
    with started(hull, sleeper(bundle)) as (c, pid):
        assert os.readlink(f"/proc/{pid}/cwd") == "/tmp/work/dir"


def test_process_relative_program_resolved_in_cwd(hull, bundle):
    bundle.process["cwd"] = "/bin"
    bundle.process["env"] = ["PATH=/nowhere"]
    r = run_out(hull, bundle, "./busybox", "echo", "from-cwd")
    assert r.stdout == "from-cwd\n"


@pytest.mark.parametrize("user,env,home", [
    ({"uid": 0, "gid": 0}, [], "/root"),
    ({"uid": 1000, "gid": 1000}, [], "/home/user"),
    ({"uid": 4242, "gid": 4242}, [], "/"),
    ({"uid": 1000, "gid": 1000}, ["HOME=/custom"], "/custom"),
])
def test_process_env_and_home(hull, bundle, user, env, home):
    bundle.process["user"] = user
    bundle.process["env"] = ["PATH=/bin", "A=1", "B=two words"] + env
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")[:-1]
        got = [e.decode() for e in environ]
        assert sorted(got) == sorted(["PATH=/bin", "A=1", "B=two words", f"HOME={home}"])


@pytest.mark.asan
def test_capabilities_default_root(hull, bundle):
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        three = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
        assert caps_of_mask(st["CapBnd"]) == three
        assert caps_of_mask(st["CapEff"]) == three
        assert caps_of_mask(st["CapPrm"]) == three
        assert caps_of_mask(st["CapInh"]) == set()
        assert caps_of_mask(st["CapAmb"]) == set()


def test_capabilities_all_five_sets(hull, bundle):
    """A non-root user, so exec keeps exactly what the spec gives: the
    ambient set becomes permitted and effective."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["noNewPrivileges"] = False
    bundle.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_FOWNER"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_KILL"],
        "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"],
        "ambient": ["CAP_CHOWN"],
    }
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        assert caps_of_mask(st["CapBnd"]) == {"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW",
                                               "CAP_SETUID", "CAP_FOWNER"}
        assert caps_of_mask(st["CapInh"]) == {"CAP_CHOWN", "CAP_NET_RAW"}
        assert caps_of_mask(st["CapAmb"]) == {"CAP_CHOWN"}
        assert caps_of_mask(st["CapPrm"]) == {"CAP_CHOWN"}
        assert caps_of_mask(st["CapEff"]) == {"CAP_CHOWN"}
    # And the capability works: chown as uid 1000 thanks to CAP_CHOWN.
    r = run_out(hull, bundle, "sh", "-c",
                "touch /dev/shm/f && chown 0 /dev/shm/f && stat -c %u /dev/shm/f")
    assert r.stdout == "0\n"


@pytest.mark.parametrize("uid", [0, 1000])
def test_capabilities_ambient_not_inheritable_is_skipped(hull, bundle, uid):
    """`runc spec` (1.1) writes ambient capabilities that are not
    inheritable, which the kernel will not raise: runc and crun skip them,
    and so does hull, with a warning naming each, instead of failing."""
    bundle.process["user"] = {"uid": uid, "gid": uid}
    caps = bundle.process["capabilities"]
    caps["ambient"] = list(caps["bounding"])
    caps["inheritable"] = ["CAP_KILL"]
    r = run_out(hull, bundle, "grep", "Cap", "/proc/self/status", check=False)
    assert r.returncode == 0, r
    got = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps_of_mask(got["CapAmb"]) == {"CAP_KILL"}
    assert caps_of_mask(got["CapInh"]) == {"CAP_KILL"}
    warned = [ln for ln in r.stderr.splitlines() if "process.capabilities.ambient" in ln]
    assert len(warned) == 2 and all("ignored" in ln for ln in warned), r.stderr
    assert {"CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"} == \
        {w for ln in warned for w in ln.split() if w.startswith("CAP_")}


def test_capabilities_bounding_limits_root(hull, bundle):
    bundle.process["capabilities"] = {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                      "permitted": ["CAP_KILL"]}
    r = run_out(hull, bundle, "sh", "-c", "grep Cap /proc/self/status; chown 5 /dev/null",
                check=False)
    caps = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps_of_mask(caps["CapBnd"]) == {"CAP_KILL"}
    assert caps_of_mask(caps["CapEff"]) == {"CAP_KILL"}
    assert "Operation not permitted" in r.stderr


def test_capabilities_absent_means_none(hull, bundle):
    """No process.capabilities: every set empty, as runc does, never the
    full set of the root that ran the runtime."""
    del bundle.process["capabilities"]
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        st = proc_status(pid)
        for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert caps_of_mask(st[k]) == set(), (k, st[k])
        # and an exec without --process has the container's (no) capabilities
        r = hull("exec", c, "grep", "CapBnd", "/proc/self/status")
        assert r.returncode == 0 and int(r.stdout.split()[1], 16) == 0, r


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(hull, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    with started(hull, sleeper(bundle)) as (c, pid):
        wait_exec(pid, "sleep")
        assert proc_status(pid)["NoNewPrivs"] == ("1" if nnp else "0")


def _limits(pid):
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name = line[:26].strip()
        soft, hard = line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


@pytest.mark.asan
def test_rlimits(hull, bundle):
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 18446744073709551615},
    ]
    with started(hull, sleeper(bundle)) as (c, pid):
        lim = _limits(pid)
        assert lim["Max open files"] == ("512", "1024")
        assert lim["Max core file size"] == ("0", "0")
        assert lim["Max processes"] == ("100", "200")
        assert lim["Max stack size"] == ("4194304", "unlimited")
    r = run_out(hull, bundle, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert r.stdout.split() == ["512", "1024"]


def test_rlimit_nofile_below_what_setup_needs(hull, bundle):
    """The init's own setup (devices, mounts) opens files: a container asking
    for RLIMIT_NOFILE 4 gets it for its program, not a failed setup."""
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 4, "hard": 4}]
    r = run_out(hull, bundle, "sh", "-c", "ulimit -n; ulimit -Hn; exec 3</dev/null; echo three")
    assert r.stdout.split() == ["4", "4", "three"], r


def test_rlimit_hard_raised_above_the_runtimes_in_a_user_namespace(hull, bundle):
    """Raising a hard limit needs CAP_SYS_RESOURCE where the limit is kept: the
    runtime raises it from outside; the container lowers the soft one itself."""
    if "CAP_SYS_RESOURCE" not in caps_of_mask(proc_status(os.getpid())["CapEff"]):
        pytest.skip("raising a hard limit needs CAP_SYS_RESOURCE, which this host withholds")
    userns(bundle)
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 4096}]
    bundle.set_args("sh", "-c", "ulimit -n; ulimit -Hn").write()
    r = subprocess.run(["prlimit", "--nofile=1024:2048", *hull.cmd("run", "--bundle",
                       str(bundle.path), cid("r1"))], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["100", "4096"], r


@pytest.mark.parametrize("adj", [500, -200])
def test_oom_score_adj(hull, bundle, adj):
    if adj < 0 and "CAP_SYS_RESOURCE" not in caps_of_mask(proc_status(os.getpid())["CapEff"]):
        pytest.skip("lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host withholds")
    bundle.process["oomScoreAdj"] = adj
    with started(hull, sleeper(bundle)) as (c, pid):
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == str(adj)


def test_annotations_preserved(hull, bundle):
    ann = {"io.kubernetes.cri.container-type": "container", "unicode": "grüße ✓",
           "quote": "a\"b\\c", "empty": ""}
    bundle.config["annotations"] = ann
    with started(hull, sleeper(bundle), start=False) as (c, pid):
        assert hull.state(c)["annotations"] == ann
        hull("start", c, check=True)
        assert hull.state(c)["annotations"] == ann
        listed = json.loads(hull("list", "--format", "json", check=True).stdout)
        assert listed[0]["annotations"] == ann


def test_umask_defaults_to_0022(hull, bundle):
    """Without process.user.umask the container gets 0022 (as with runc),
    not the umask of whoever ran hull."""
    bundle.set_args("sh", "-c", "umask").write()
    r = hull("run", "--bundle", str(bundle.path), cid(), preexec_fn=lambda: os.umask(0o077))
    assert r.returncode == 0, r
    assert r.stdout == "0022\n"


@pytest.mark.asan
def test_only_stdio_reaches_the_container(hull, bundle, tmp_path):
    """The runtime's fds (sync socket, fifo, log, lock) stay outside; the
    caller's extra fds too, unless --preserve-fds passes them."""
    extra = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(extra, True)
    try:
        assert extra >= 3
        bundle.set_args("sh", "-c", "ls /proc/$$/fd; exit 0").write()
        g = ("--log", str(tmp_path / "log"), "--debug")
        r = hull("run", "--bundle", str(bundle.path), cid(), global_args=g,
                 pass_fds=(extra,))
        assert r.returncode == 0, r
        assert r.stdout.split() == ["0", "1", "2"]
    finally:
        os.close(extra)


def test_preserve_fds(hull, bundle, tmp_path):
    src = tmp_path / "data"
    src.write_text("passed-in")
    fd = os.open(src, os.O_RDONLY)
    try:
        bundle.set_args("sh", "-c", "cat <&3; echo; ls /proc/$$/fd; exit 0").write()
        # Our own fd 3 belongs to pytest: the file becomes 3 in hull only.
        r = hull("run", "--preserve-fds", "1", "--bundle", str(bundle.path), cid(),
                 pass_fds=(3,), preexec_fn=lambda: os.dup2(fd, 3))
        assert r.returncode == 0, r
        assert r.stdout.split() == ["passed-in", "0", "1", "2", "3"]
    finally:
        os.close(fd)


@pytest.mark.asan
def test_preserved_fds_the_caller_left_closed_are_never_hulls_own(hull, bundle, tmp_path):
    """--preserve-fds 4 with nothing open at 3..6 in the caller: those
    numbers must not be the runtime's own fds (its state directory, a
    socket, a signalfd), which would cross into the container and, for a
    directory, lead out of the rootfs. They are /dev/null. A created
    container's waiting init holds none of the runtime's either: start
    and delete --force do not hang on them."""
    marker = tmp_path / "state" / "PWNED"
    bundle.set_args("sh", "-c", "for f in 3 4 5 6; do readlink /proc/$$/fd/$f; done; "
                    "echo x > /proc/self/fd/5/../PWNED; "
                    "cat /proc/self/fd/5/../../../../etc/hostname; exit 0").write()
    # Every spelling getopt_long_only takes.
    for spelling in (["--preserve-fds", "4"], ["-preserve-fds=4"], ["--preserve", "4"],
                     ["-pr", "4"]):
        r = hull("run", *spelling, "--bundle", str(bundle.path), cid())
        assert r.returncode == 0, (spelling, r)
        assert r.stdout.split() == ["/dev/null"] * 4, (spelling, r)
        assert not marker.exists()
    c = cid()
    assert hull("create", "--preserve-fds", "4", "--bundle", str(bundle.path), c).returncode == 0
    assert hull("start", c, timeout=120).returncode == 0
    assert wait_until(lambda: json.loads(hull("state", c).stdout or "{}").get("status") == "stopped", 60)
    assert hull("delete", "--force", c, timeout=120).returncode == 0
    assert not marker.exists()


def test_terminal_in_foreground_run(hull, bundle):
    """process.terminal with a foreground run: hull relays the pty."""
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 33, "width": 101}
    bundle.set_args("sh", "-c", "tty; stty size; [ -t 1 ] && echo is-a-tty").write()
    r = hull("run", "--bundle", str(bundle.path), cid())
    assert r.returncode == 0, r
    lines = r.stdout.replace("\r\n", "\n").split("\n")
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "33 101"
    assert lines[2] == "is-a-tty"


def test_hooks_order_and_namespaces(hull, bundle, tmp_path):
    """Every hook kind runs at its step of the lifecycle, with the state on
    stdin; createContainer in the container's mount namespace, the runtime
    hooks in the host's, startContainer inside the container's root."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    (bundle.rootfs / "hooklog").mkdir()
    bundle.config["mounts"].append({"destination": "/hooklog", "type": "bind",
                                    "source": str(logdir), "options": ["bind"]})

    def hook(name, log, before=""):
        script = (f"read -r state; {before} echo \"{name} $(readlink /proc/self/ns/mnt) "
                  f"$(echo $state | grep -o '\"status\":\"[a-z]*\"')\" >> {log}")
        return {"path": "/bin/sh", "args": ["sh", "-c", script],
                "env": ["PATH=/bin:/usr/bin"]}
    host_log, in_log = logdir / "log", "/hooklog/log"
    bundle.config["hooks"] = {
        "prestart": [hook("prestart", host_log)],
        "createRuntime": [hook("createRuntime", host_log)],
        "createContainer": [hook("createContainer", host_log)],
        # A slow startContainer hook: poststart must still come after it
        # and after the user's program started.
        "startContainer": [hook("startContainer", in_log, "sleep 0.3;")],
        "poststart": [hook("poststart", host_log),
                      {"path": "/bin/sh", "env": ["PATH=/bin:/usr/bin"], "args": [
                          "sh", "-c", "pid=$(grep -o '\"pid\":[0-9]*' | cut -d: -f2); "
                          f"cat /proc/$pid/comm > {logdir}/comm-at-poststart"]}],
        "poststop": [hook("poststop", host_log)],
    }
    bundle.set_args("sleep", "1000").write()
    c = cid()
    hostns = os.readlink("/proc/self/ns/mnt")
    try:
        hull("create", "--bundle", str(bundle.path), c, check=True)
        pid = hull.state(c)["pid"]
        cns = os.readlink(f"/proc/{pid}/ns/mnt")
        names = [line.split()[0] for line in host_log.read_text().splitlines()]
        assert names == ["prestart", "createRuntime", "createContainer"]
        hull("start", c, check=True)
        assert wait_until(lambda: len(host_log.read_text().splitlines()) == 5)
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        hull("delete", c, check=True)
    finally:
        hull("delete", "--force", c)
    rows = [line.split() for line in host_log.read_text().splitlines()]
    assert [r[0] for r in rows] == ["prestart", "createRuntime", "createContainer",
                                    "startContainer", "poststart", "poststop"]
    ns = {r[0]: r[1] for r in rows}
    assert ns["prestart"] == ns["createRuntime"] == ns["poststart"] == ns["poststop"] == hostns
    assert ns["createContainer"] == ns["startContainer"] == cns
    status = {r[0]: r[2] if len(r) > 2 else "" for r in rows}
    assert status["createRuntime"] == '"status":"creating"'
    assert status["poststart"] == '"status":"running"'
    assert status["poststop"] == '"status":"stopped"'
    assert (logdir / "comm-at-poststart").read_text() == "sleep\n"


def test_sysctl_in_the_containers_namespaces(hull, bundle):
    """linux.sysctl keys of namespaces the container owns are set inside
    it; the host keeps its values."""
    host_fwd = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    want = "0" if host_fwd.strip() == "1" else "1"
    bundle.config["root"]["readonly"] = False
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": want, "kernel.msgmax": "4096"}
    r = run_out(hull, bundle, "sh", "-c",
                "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert r.stdout.split() == [want, "4096"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_fwd


def test_init_of_a_joined_pid_namespace_shows_no_host_argv(hull, bundle):
    """A pid namespace joined by path: the init is born from a stage-1
    child, which hides hull's command line before it joins anything, so
    the namespace's other processes never see the host's argv."""
    with ns_holder("--pid", "--mount") as h:
        for n in bundle.linux["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{h}/ns/pid"
        with started(hull, sleeper(bundle), start=False) as (c, pid):
            assert ns_inode(pid, "pid") == ns_inode(h, "pid")
            assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"hull-init\0"
            assert Path(f"/proc/{pid}/comm").read_text() == "hull-init\n"
