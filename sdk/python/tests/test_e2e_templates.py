"""Templates through the SDK against a real hulld, sync and async:
``sb.snapshot_template`` / ``client.create_template``, ``templates()``,
``template()``, ``client.sandbox(template=...)`` seeing the prepared files
and its start command's work, ``NotReady`` when the ready command never
passes, ``delete_template``. Nothing may be left on the host afterwards.

Needs root and the built binaries ($HULL, default build/hull, with hulld
beside it); the helpers are the integration suite's (tests/integration)."""
import asyncio
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

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")


@pytest.fixture(scope="module")
def env():
    tmp = Path(tempfile.mkdtemp(prefix="hull-sdk-tpl14-"))
    d = Hulld(tmp, "--tenant-sandboxes", "16")
    Path(d.state).mkdir(parents=True)
    try:
        d.start()
        e = type("Env", (), {})()
        e.hulld = d
        e.client = hull.Client(socket_path=d.sock, token=d.token("user", "acme"))
        e.aclient = hull.AsyncClient(socket_path=d.sock, token=d.token("user", "acme"))
        e.other = hull.Client(socket_path=d.sock, token=d.token("user", "globex"))
        if "/v1/templates" not in e.client.request("GET", "/v1/openapi.json").get("paths", {}):
            pytest.skip("this hulld has no templates (branch tpl14 not merged)")
        yield e
    finally:
        rc = d.stop() if d.proc else 0
        leaks = d.leaks()
        subprocess.run(["rm", "-rf", str(tmp)])
        assert rc == 0
        assert leaks == ([], [], []), leaks


def test_snapshot_a_sandbox_and_make_sandboxes_from_it(env):
    c = env.client
    with c.sandbox(limits={"tmp_size": "32M"}, env={"MODE": "warm"}) as src:
        src.files.write("/tmp/app/data.txt", "prepared\n")
        src.exec(["sh", "-c", "printf 'echo started > /tmp/app/started; exec sleep 600' "
                              "> /tmp/app/serve.sh"])
        t = src.snapshot_template("warm", start_cmd=["sh", "/tmp/app/serve.sh"],
                                  ready_cmd=["test", "-e", "/tmp/app/started"],
                                  ready_timeout="60s")
        assert isinstance(t, hull.TemplateInfo)
        assert t.name == "warm" and t.source == src.id and t.files == 2
        assert t.start_cmd == ["sh", "/tmp/app/serve.sh"] and t.ready_timeout == 60
        assert t.sandbox["env"] == {"MODE": "warm"}
    try:
        assert [x.name for x in c.templates()] == ["warm"]
        assert c.template("warm").id == t.id
        with pytest.raises(hull.NotFound):
            env.other.template("warm")
        with pytest.raises(hull.Conflict):
            c.create_template(c.sandbox(), "warm")
        for sb in [s for s in c.sandboxes() if s.id != t.source]:
            c.attach(sb.id).delete()
        boxes = [c.sandbox(template="warm", metadata={"n": str(i)}) for i in range(3)]
        try:
            for sb in boxes:
                assert sb.files.read_text("/tmp/app/data.txt") == "prepared\n"
                assert sb.files.read_text("/tmp/app/started") == "started\n"
                r = sb.exec(["sh", "-c", "echo $MODE"])
                assert r.stdout == "warm\n"
                assert sb.info.raw["template"] == "warm"
                running = [p for p in sb.processes() if p.state == "running"]
                assert [p.id for p in running] == [sb.info.raw["start_process"]]
        finally:
            for sb in boxes:
                sb.delete()
        with pytest.raises(hull.ValidationError) as e:
            c.sandbox(template="warm", limits={"memory": "1G"})
        assert e.value.field == "limits"
    finally:
        c.delete_template("warm")
    assert c.templates() == []
    with pytest.raises(hull.NotFound):
        c.sandbox(template="warm")


def test_not_ready_is_its_own_error_and_leaves_no_sandbox(env):
    c = env.client
    with c.sandbox() as src:
        c.create_template(src, "never", ready_cmd=["false"], ready_timeout=1)
    try:
        before = [s.id for s in c.sandboxes()]
        with pytest.raises(hull.NotReady) as e:
            c.sandbox(template="never")
        assert e.value.status == 504 and e.value.code == "not_ready"
        assert [s.id for s in c.sandboxes()] == before
    finally:
        c.delete_template("never")


def test_async_templates(env):
    async def body():
        ac = env.aclient
        async with ac.sandbox() as src:
            await src.files.write("/tmp/x", b"async\n")
            t = await src.snapshot_template("async-t")
            assert t.files == 1
        try:
            assert [x.name for x in await ac.templates()] == ["async-t"]
            assert (await ac.template("async-t")).id == t.id
            async with ac.sandbox(template="async-t") as sb:
                assert await sb.files.read("/tmp/x") == b"async\n"
        finally:
            await ac.delete_template("async-t")
        assert await ac.templates() == []

    asyncio.run(body())


def test_the_example_runs(env):
    token = env.hulld.token("user", "example")
    cp = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "examples" /
                                             "templates.py"),
                         "--socket", env.hulld.sock, "--token", token],
                        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    assert cp.stdout.count(": hello 500500") == 3, cp.stdout
    assert "templates left: []" in cp.stdout
