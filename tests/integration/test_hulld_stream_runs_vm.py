"""hulld: a streamed one-shot run at isolation microvm (host-wide: run under
`flock /work/wt/vm.lock`, like every microVM test). The guest agent's
output frames reach the client while the run runs: a line the program
prints before it sleeps is read before the run finished; a run streams
stdout and stderr with contiguous offsets and ends with the result."""
import datetime
import os
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, wait_until
from test_hulld_stream_runs import Stream, collect
from test_vm_lib import skip_unless_ready

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

VM = {"isolation": "microvm", "limits": {"cpu_time": "60s", "wall_time": "300s"}}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    skip_unless_ready()
    h = Hulld(tmp_path_factory.mktemp("hulld"))
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 60), h.leaks()


def test_microvm_output_comes_while_it_runs(d):
    # (A microVM run does not take a cancel: it ends by itself here.) The
    # first line is read before the run has finished: its row's finish
    # time, on the same machine's clock, is later than the read.
    s = Stream(d, {"cmd": ["sh", "-c", "echo first; sleep 20; echo second"], **VM})
    assert s.status == 200
    it = s.lines()
    next(it)
    assert next(it) == {"type": "stdout", "offset": 0, "data": "first\n"}
    read_at = datetime.datetime.now(datetime.timezone.utc)
    rest = list(it)
    s.close()
    assert [ev["type"] for ev in rest] == ["stdout", "result"], rest
    assert rest[0]["data"] == "second\n" and rest[0]["offset"] == 6
    res = rest[1]["result"]
    assert res["verdict"] == "ok", res
    finished = datetime.datetime.fromisoformat(res["finished"][:26].rstrip("Z") + "+00:00")
    assert read_at < finished, (read_at, finished)


def test_microvm_streams_both_outputs_to_the_result(d):
    s = Stream(d, {"cmd": ["sh", "-c", "seq 1 2000; echo e >&2"], **VM})
    out, err, res = collect(s.lines())
    s.close()
    assert out == "".join(f"{i}\n" for i in range(1, 2001)).encode() and err == b"e\n"
    assert res["verdict"] == "ok" and res["isolation"] == "microvm", res
