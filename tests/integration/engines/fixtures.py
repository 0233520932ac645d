"""pytest fixtures for the real-client tests. Test modules import them:

    from engines.fixtures import podman, podman_engine, busybox_layer, oci_runtime_path  # noqa: F401

`podman` / `containerd` hand a test an engine whose store already holds the
busybox image; after the test they remove whatever containers it left and
then fail it if the host still shows a cgroup, process, mount or runtime
state entry of any of its containers. The session fixtures stop the engines
and check that the host is as it was.
"""

import os
import shutil

import pytest

from . import busybox, host
from .containerd import IMAGE as CONTAINERD_IMAGE
from .containerd import Containerd
from .podman import Podman
from .runtime import oci_runtime, require_packages

# How long an engine may take to finish its asynchronous clean-up (podman's
# exit command, containerd's shim) before what remains counts as leaked.
SETTLE = 30


@pytest.fixture(scope="session")
def oci_runtime_path():
    rt = oci_runtime()
    print(f"engine tests drive OCI runtime {rt}")
    return rt


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory):
    """A busybox rootfs tarball made from busybox-static (no registry)."""
    require_packages("build", ["busybox"])
    top = tmp_path_factory.mktemp("busybox")
    rootfs = busybox.make_rootfs(str(top / "rootfs"))
    tar = busybox.rootfs_tar(rootfs, str(top / "layer.tar"))
    shutil.rmtree(rootfs)
    return tar


def _check_clean(what, leftovers):
    """Wait for the engine to settle, then fail listing whatever is left."""
    try:
        host.wait_until(lambda: not leftovers(), timeout=SETTLE, what=f"{what} to clean up")
    except AssertionError:
        left = leftovers()
        if left:
            raise AssertionError(f"{what} left behind:\n  " + "\n  ".join(left)) from None


@pytest.fixture(scope="session")
def podman_engine(tmp_path_factory, oci_runtime_path, busybox_layer):
    require_packages("engines", ["podman", "conmon"])
    top = str(tmp_path_factory.mktemp("podman"))
    pm = Podman(top, oci_runtime_path)
    try:
        pm.import_image(busybox_layer)
        yield pm
    finally:
        pm.destroy()
    leftover_cgroups = host.cgroup_dirs(pm.cgroup_parent)
    assert not leftover_cgroups, f"podman session left cgroups {leftover_cgroups}"
    assert not host.mounts_under(top), f"podman session left mounts {host.mounts_under(top)}"


@pytest.fixture
def podman(podman_engine):
    """The session's podman; every container the test made is removed and
    checked for leftovers afterwards."""
    offset = podman_engine.events_offset()
    yield podman_engine
    podman_engine.remove_all()
    made = podman_engine.created_since(offset)
    _check_clean(f"podman containers {[c[:12] for c in made]}", lambda: podman_engine.leftovers(made))


@pytest.fixture(scope="session")
def busybox_oci_archive(tmp_path_factory, busybox_layer):
    out = tmp_path_factory.mktemp("oci") / "busybox-oci.tar"
    return busybox.oci_archive(busybox_layer, str(out), CONTAINERD_IMAGE)


@pytest.fixture(scope="session")
def containerd_engine(tmp_path_factory, oci_runtime_path, busybox_oci_archive):
    require_packages("engines", ["containerd", "ctr", "containerd-shim-runc-v2"])
    top = str(tmp_path_factory.mktemp("ctrd"))
    cd = Containerd(top, oci_runtime_path)
    try:
        cd.start()
        cd.import_image(busybox_oci_archive)
        yield cd
    finally:
        cd.stop()
    leftover_cgroups = host.cgroup_dirs(f"/{cd.namespace}")
    assert not leftover_cgroups, f"containerd session left cgroups {leftover_cgroups}"
    assert not host.mounts_under(top), f"containerd session left mounts {host.mounts_under(top)}"
    assert not host.processes_mentioning(cd.address), "containerd session left processes"


@pytest.fixture
def containerd(containerd_engine):
    """The session's containerd; the test's containers are removed and
    checked for leftovers afterwards."""
    yield containerd_engine
    containerd_engine.remove_all()
    _check_clean("containerd's containers", containerd_engine.leftovers)


def unique(name):
    """A container name unique to this process (engines are shared)."""
    return f"{name}-{os.getpid()}"
