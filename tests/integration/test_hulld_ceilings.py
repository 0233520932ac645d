"""hulld --max-limit: the operator's ceiling on what a request's limits may
ask for. Over it: 400 naming the limit and the ceiling, nothing run."""
import os
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("ceil"), "--max-limit", "memory=512M",
              "--max-limit", "wall_time=30s", "--max-limit", "cpus=1.5", "--max-limit", "pids=100")
    Path(h.state).mkdir(parents=True)
    h.user = h.token()
    h.start()
    yield h
    assert h.stop() == 0, h.log.read_text()


@pytest.mark.parametrize("limits, field, shown", [
    ({"memory": "1T"}, "limits.memory", "1099511627776 bytes"),
    ({"wall_time": "1h"}, "limits.wall_time", "3600000 ms"),
    ({"cpus": 2}, "limits.cpus", "2"),
    ({"pids": 101}, "limits.pids", "101"),
])
def test_over_a_ceiling_is_refused_by_name(d, limits, field, shown):
    for path in ("/v1/runs", "/v1/sandboxes"):
        body = {"cmd": ["true"], "limits": limits} if path == "/v1/runs" else {"limits": limits}
        r = d.request("POST", path, body, d.user)
        assert r.status == 400, (path, r)
        e = r.json["error"]
        assert e["code"] == "invalid_request" and e["field"] == field, r
        if path == "/v1/runs" or field != "limits.wall_time":  # a sandbox takes none
            assert shown in e["message"] and "--max-limit" in e["message"], r
    # nothing ran: no run recorded
    r = d.request("GET", "/v1/runs", token=d.user)
    assert r.status == 200 and r.json["runs"] == [], r


def test_at_or_under_a_ceiling_runs(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["true"], "limits": {
        "memory": "512M", "wall_time": "30s", "cpus": 1.5, "pids": 100}}, d.user)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    # a request that names none gets the defaults, which are under every ceiling
    r = d.request("POST", "/v1/runs", {"cmd": ["true"]}, d.user)
    assert r.status == 200 and r.json["verdict"] == "ok", r


@pytest.mark.parametrize("arg, message", [
    ("memory=100M", "below the default a request gets when it names no memory (268435456 bytes)"),
    ("bogus=1", "want NAME=VALUE"),
    ("memory=4X", "memory: '4X' is not a size"),
    ("pids=0", "pids: '0' is not a count above 0"),
    ("wall_time", "want NAME=VALUE"),
])
def test_bad_ceilings_stop_hulld_at_start(tmp_path, arg, message):
    r = subprocess.run([HULLD, "--state-dir", str(tmp_path), "--socket", str(tmp_path / "s"),
                        "--max-limit", arg], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, r
    assert not (tmp_path / "s").exists()
