"""The SDK's image calls against a real hulld and a real docker-registry:
client.images list/get/pull/remove, image= on runs and sandboxes, and the
typed errors of each refusal.

Needs root and the built binaries ($HULL, default build/hull, with hulld
beside it); the helpers are the integration suite's (tests/integration)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import hull

SRC = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SRC / "tests" / "integration"))
from hulldlib import HULLD, Hulld  # noqa: E402
import imagelib as il  # noqa: E402
from registrylib import Registry  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")

LIMITS = {"cpu_time": "60s", "wall_time": "120s"}


@pytest.fixture(scope="module")
def env():
    tmp = Path(tempfile.mkdtemp(prefix="hull-sdk-images-"))
    reg = d = None
    try:
        layout = tmp / "oci"
        img = il.write_oci_layout(layout, "tool", [
            il.busybox_layer(extra={"etc/tool-release": il.File(b"tool 1.0\n")})],
            config={"Cmd": ["sh"]})
        reg = Registry(tmp).start()
        reg.push_oci(layout, "tool", "tools/tool:1")
        d = Hulld(tmp, "--image-root", str(tmp / "images"))
        Path(d.state).mkdir(parents=True)
        e = type("Env", (), {})()
        e.admin = hull.Client(socket_path=d.sock, token=d.token("admin", "ops"))
        e.user = hull.Client(socket_path=d.sock, token=d.token("user", "acme"))
        d.start()
        e.d, e.reg, e.img, e.tmp = d, reg, img, tmp
        e.ref = f"{reg.host}/tools/tool:1"
        yield e
    finally:
        try:
            rc = d.stop() if d and d.proc else 0
        finally:
            if reg:
                reg.stop()
        procs, entries, cgroups = d.leaks() if d else ([], [], [])
        subprocess.run(["rm", "-rf", str(tmp)])
        assert rc == 0
        assert not procs and not entries and not cgroups, (procs, entries, cgroups)


def test_pull_list_get_run_sandbox_remove(env):
    info = env.admin.images.pull(env.ref, tls_verify=False)
    assert isinstance(info, hull.ImageInfo)
    assert info.name == env.ref and info.digest == env.img.digest
    assert info.platform == "linux/amd64" and info.config.get("cmd") == ["sh"]
    assert [lay["digest"] for lay in info.layers] == [lay.digest for lay in env.img.layers]
    assert env.ref in [i.name for i in env.user.images.list()]
    assert env.user.images.get(env.ref).digest == env.img.digest
    assert env.user.images.get(env.img.digest).name == env.ref

    r = env.user.run(["cat", "/etc/tool-release"], image=env.ref, limits=LIMITS)
    assert r.check().stdout == "tool 1.0\n"
    with env.user.sandbox(image=env.img.digest) as sb:
        assert sb.exec(["cat", "/etc/tool-release"]).check().stdout == "tool 1.0\n"
        assert env.user.images.get(env.ref).in_use is True
        with pytest.raises(hull.Conflict):
            env.admin.images.remove(env.ref)
    assert env.admin.images.remove(env.ref)["removed"] is True
    with pytest.raises(hull.NotFound):
        env.user.images.get(env.ref)
    assert env.ref not in [i.name for i in env.user.images.list()]


def test_refusals_are_typed(env):
    with pytest.raises(hull.PermissionDenied):
        env.user.images.pull(env.ref, tls_verify=False)
    with pytest.raises(hull.PermissionDenied):
        env.user.images.remove(env.ref)
    with pytest.raises(hull.NotFound) as ei:
        env.user.run(["true"], image=f"{env.reg.host}/never/pulled:1")
    assert ei.value.field == "image" and "POST /v1/images" in ei.value.message
    with pytest.raises(hull.NotFound):
        env.admin.images.pull(f"{env.reg.host}/no/such:1", tls_verify=False)
    with pytest.raises(hull.ValidationError) as ei:
        env.admin.images.pull("Not/A/Valid:Ref!")
    assert ei.value.field == "ref"
    with pytest.raises(hull.RegistryError):
        # TLS verification on against a plain-HTTP registry: refused.
        env.admin.images.pull(env.ref, tls_verify=True)
