"""process.scheduler and process.ioPriority reach the container's process,
read back from the host."""
import subprocess

import pytest



def sleeper(hull, bundle, cid):
    bundle.set_args("sleep", "30")
    bundle.write()
    hull("run", "-d", "--bundle", str(bundle.path), cid, check=True)
    return hull.state(cid)["pid"]


@pytest.mark.asan
def test_scheduler_policy_and_nice(hull, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    pid = sleeper(hull, bundle, "s1")
    out = subprocess.run(["chrt", "-p", str(pid)], capture_output=True, text=True).stdout
    assert "SCHED_BATCH" in out, out
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[16]) == 7  # nice, field 19 of stat
    hull("delete", "--force", "s1", check=True)


def test_io_priority(hull, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    pid = sleeper(hull, bundle, "s2")
    out = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True).stdout
    assert out.strip().startswith("idle"), out
    hull("delete", "--force", "s2", check=True)


def test_unknown_policy_is_refused(hull, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_FAST"}
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), "s3")
    assert r.returncode != 0
    assert "process.scheduler.policy: unknown policy 'SCHED_FAST'" in r.stderr
    assert not (hull.root / "s3").exists()
