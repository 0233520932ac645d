"""The shortest path through the lifecycle: run, create/start/state/delete."""
import pytest


@pytest.mark.asan
def test_run_echo(hull, bundle):
    bundle.set_args("sh", "-c", "echo hello; hostname; echo $$").write()
    r = hull("run", "--bundle", str(bundle.path), "c1")
    assert r.returncode == 0, r
    assert r.stdout.split() == ["hello", "hull", "1"]


@pytest.mark.asan
def test_create_start_delete(hull, bundle):
    bundle.set_args("sleep", "30").write()
    hull("create", "--bundle", str(bundle.path), "c1", check=True)
    assert hull.state("c1")["status"] == "created"
    hull("start", "c1", check=True)
    assert hull.state("c1")["status"] == "running"
    hull("kill", "c1", "KILL", check=True)
    from conftest import wait_until
    assert wait_until(lambda: hull.state("c1")["status"] == "stopped")
    hull("delete", "c1", check=True)
