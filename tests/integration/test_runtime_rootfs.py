"""The root filesystem as runc and crun build it, checked from the host:
a missing process.cwd is made inside the rootfs (also on a read-only root),
bind sources are opened by the runtime on the host (so a source only host
root can reach works in a user namespace), and a container without a mount
namespace shares the host's mount table and leaves nothing in it.
"""
import os
import stat

import pytest

from rt4 import TOKEN, assert_error, assert_nothing_left, cid


def run(hull, bundle, *args, name="r1"):
    bundle.set_args(*args).write()
    return hull("run", "--bundle", str(bundle.path), cid(name))


# ---- process.cwd ----------------------------------------------------------------

@pytest.mark.asan
@pytest.mark.parametrize("readonly", [True, False])
def test_missing_cwd_is_created(hull, bundle, tmp_path, readonly):
    bundle.config["root"]["readonly"] = readonly
    bundle.process["cwd"] = "/work/deep/er"
    assert not (bundle.rootfs / "work").exists()
    r = run(hull, bundle, "sh", "-c", "pwd; touch /x 2>/dev/null && echo rw || echo ro")
    assert r.returncode == 0, r
    assert r.stdout.split() == ["/work/deep/er", "ro" if readonly else "rw"]
    made = bundle.rootfs / "work" / "deep" / "er"
    assert made.is_dir()
    st = made.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_cwd_through_a_symlink_stays_in_the_rootfs(hull, bundle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (bundle.rootfs / "esc").symlink_to(outside)  # absolute: restarts at the rootfs
    bundle.process["cwd"] = "/esc/made"
    r = run(hull, bundle, "pwd")
    assert r.returncode == 0, r
    assert not (outside / "made").exists()
    assert (bundle.rootfs / str(outside)[1:] / "made").is_dir()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_cwd_that_climbs_out_is_refused(hull, bundle, tmp_path):
    (bundle.rootfs / "up").symlink_to("../../../../../../..")
    bundle.process["cwd"] = "/up/made"
    r = run(hull, bundle, "pwd")
    assert_error(r, f"run {cid('r1')}", "process.cwd: /up/made")
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- bind sources the container's root cannot reach -------------------------------

def userns(bundle, host=100000, size=65536):
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]


def private_dir(tmp_path):
    """A directory only host root may enter, holding a file and a directory."""
    d = tmp_path / "private"
    (d / "dir").mkdir(parents=True)
    (d / "dir" / "f").write_text("in a dir\n")
    (d / "secret").write_text("a file\n")
    os.chmod(d, 0o700)
    return d


@pytest.mark.asan
def test_bind_source_under_a_root_only_directory_in_a_user_namespace(hull, ubundle, tmp_path):
    """The init is root of its user namespace only: host root's 0700
    directory is closed to it. runc and crun bind such sources; so does hull,
    with the options still applied (ro) and the host's files untouched."""
    d = private_dir(tmp_path)
    userns(ubundle)
    # mount points: the rootfs belongs to host root, closed to this root too
    for p in ("d", "open"):
        (ubundle.rootfs / "mnt" / p).mkdir(parents=True)
    (ubundle.rootfs / "mnt" / "s").touch()
    ubundle.config["mounts"] += [
        {"destination": "/mnt/d", "type": "bind", "source": str(d / "dir"),
         "options": ["rbind", "ro", "nosuid", "nodev"]},
        {"destination": "/mnt/s", "type": "bind", "source": str(d / "secret"),
         "options": ["bind", "rw"]},
        {"destination": "/mnt/open", "type": "bind", "source": str(ubundle.rootfs / "etc"),
         "options": ["rbind", "ro"]},
    ]
    r = run(hull, ubundle, "sh", "-c",
            "cat /mnt/d/f /mnt/s; test -e /mnt/open/passwd && echo open; "
            "touch /mnt/d/new 2>/dev/null && echo wrote || echo ro; "
            "grep -E ' /mnt/(d|s) ' /proc/self/mountinfo | cut -d' ' -f5,6")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[:4] == ["in a dir", "a file", "open", "ro"], r
    opts = dict(line.split() for line in lines[4:])
    assert "ro" in opts["/mnt/d"].split(",") and "nosuid" in opts["/mnt/d"].split(",")
    assert "rw" in opts["/mnt/s"].split(",")
    assert not (d / "dir" / "new").exists()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_missing_bind_source_under_a_root_only_directory(hull, ubundle, tmp_path):
    d = private_dir(tmp_path)
    userns(ubundle)
    n = len(ubundle.config["mounts"])
    ubundle.config["mounts"].append(
        {"destination": "/tmp", "type": "bind", "source": str(d / "nope"),
         "options": ["rbind"]})
    r = run(hull, ubundle, "true")
    assert_error(r, f"run {cid('r1')}", f"mounts[{n}].source: {d / 'nope'}",
                 "No such file or directory")
    assert len(r.stderr.splitlines()) == 1, r
    assert_nothing_left(hull, tmp_path, TOKEN)


# ---- no mount namespace -------------------------------------------------------

def without_mount_ns(bundle):
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                  if n["type"] != "mount"]
    return bundle


def host_mounts_of(bundle, c):
    """The host's mountinfo lines that belong to this container: mounted
    under its bundle, or a view of its cgroup."""
    with open("/proc/self/mountinfo") as f:
        return sorted(line for line in f
                      if line.split()[4].startswith(str(bundle.path)) or f"/{c}" in line.split()[3])


@pytest.mark.asan
def test_no_mount_namespace_shares_the_hosts_and_leaves_no_mount(hull, bundle, tmp_path):
    """runtime-spec: without a mount namespace the container shares the
    runtime's. Its mounts are made there (below one bind of the rootfs), it
    is chrooted, exec'd processes too, and delete leaves the host's
    mountinfo as it found it (runc and crun leave about 20 mounts here)."""
    from rt4 import ns_inodes, running
    without_mount_ns(bundle)
    (bundle.rootfs / "etc" / "marker").write_text("inside\n")
    c = cid()
    before = host_mounts_of(bundle, c)
    assert before == []
    with running(hull, bundle) as (c, pid):
        assert ns_inodes(pid)["mnt"] == ns_inodes(os.getpid())["mnt"]
        assert os.readlink(f"/proc/{pid}/root") == str(bundle.rootfs)
        during = host_mounts_of(bundle, c)
        points = {line.split()[4] for line in during}
        assert {str(bundle.rootfs), str(bundle.rootfs / "proc"),
                str(bundle.rootfs / "dev")} <= points
        # the bind everything hangs below is private: nothing propagates
        top = next(line for line in during if line.split()[4] == str(bundle.rootfs))
        assert not [f for f in top.split(" - ")[0].split()[6:] if f.startswith("shared:")]
        r = hull("exec", c, "sh", "-c", "cat /etc/marker; touch /x || echo ro")
        assert r.stdout.splitlines()[0] == "inside", r
        assert "ro" in r.stdout.splitlines(), r
    assert host_mounts_of(bundle, c) == before
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_no_mount_namespace_failed_create_leaves_no_mount(hull, bundle, tmp_path):
    without_mount_ns(bundle)
    n = len(bundle.config["mounts"])
    bundle.config["mounts"].append({"destination": "/mnt", "type": "bind",
                                    "source": str(tmp_path / "nope"), "options": ["rbind"]})
    bundle.set_args("true").write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, f"create {cid()}", f"mounts[{n}].source")
    assert host_mounts_of(bundle, cid()) == []
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_no_mount_namespace_crashed_create_is_cleaned_by_delete(hull, bundle, tmp_path):
    """The runtime killed half-way (here by its createRuntime hook, after
    the init made every mount): delete --force finds them from the state."""
    without_mount_ns(bundle)
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID; sleep 5"]}]}
    bundle.set_args("true").write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert r.returncode != 0, r
    assert str(bundle.rootfs / "proc") in {m.split()[4] for m in host_mounts_of(bundle, c)}
    assert hull("delete", "--force", c).returncode == 0
    assert host_mounts_of(bundle, c) == []
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_user_namespace_without_mount_namespace_is_refused(hull, bundle, tmp_path):
    without_mount_ns(bundle)
    userns(bundle)
    bundle.set_args("true").write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, f"create {cid()}", "a user namespace needs a mount namespace")
    assert_nothing_left(hull, tmp_path, TOKEN)
