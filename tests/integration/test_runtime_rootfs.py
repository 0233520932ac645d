"""The root filesystem as runc and crun build it, checked from the host:
a missing process.cwd is made inside the rootfs (also on a read-only root),
bind sources are opened by the runtime on the host (so a source only host
root can reach works in a user namespace), and a container without a mount
namespace shares the host's mount table and leaves nothing in it.
"""
import os
import stat
from pathlib import Path

import pytest

from rt4 import TOKEN, assert_error, assert_nothing_left, cid


def run(hull, bundle, *args, name="r1"):
    bundle.set_args(*args).write()
    return hull("run", "--bundle", str(bundle.path), cid(name))


# ---- process.cwd ----------------------------------------------------------------

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
