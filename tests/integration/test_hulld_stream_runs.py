"""hulld: streamed one-shot runs (POST /v1/runs, Accept: application/x-ndjson).

A real hulld over raw HTTP: the output comes as NDJSON while the run runs
(a line the program prints is read before the program ends: it waits for
a file the test writes only after reading that line), complete and in
order with contiguous offsets over stdout and stderr, non-UTF-8 bytes as
data_b64, a UTF-8 character split across writes joined; the result line
is the run's result; a client that goes does not stop the run (it is
recorded, GET shows it); "async"/"queue" with a stream are refused by
name; without the header a run answers as before."""
import base64
import json
import os
import time
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, UnixConnection, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

NDJSON = {"Accept": "application/x-ndjson"}
GENEROUS = {"cpu_time": "60s", "wall_time": "120s"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"))
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


class Stream:
    def __init__(self, d, body, headers=NDJSON):
        self.c = UnixConnection(d.sock, timeout=120)
        h = {"Authorization": f"Bearer {d.tok}", "Content-Type": "application/json", **headers}
        self.c.request("POST", "/v1/runs", body=json.dumps(body), headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status

    def lines(self):
        while True:
            line = self.r.readline()
            if not line:
                return
            assert line.endswith(b"\n")
            yield json.loads(line)

    def close(self):
        self.c.close()


def chunk_bytes(ev):
    return base64.b64decode(ev["data_b64"]) if "data_b64" in ev else ev["data"].encode()


def collect(events):
    """(stdout, stderr, every line) with offsets checked contiguous."""
    out = {"stdout": b"", "stderr": b""}
    seen, offset, result = [], 0, None
    for ev in events:
        seen.append(ev)
        assert result is None, "nothing after the result line"
        if ev["type"] in ("stdout", "stderr"):
            assert ev["offset"] == offset, (ev, offset)
            data = chunk_bytes(ev)
            out[ev["type"]] += data
            offset += len(data)
        elif ev["type"] == "result":
            result = ev["result"]
        else:
            assert ev["type"] == "start", ev
    assert seen[0]["type"] == "start" and seen[0]["run"]["id"].startswith("r-"), seen[0]
    assert result is not None, seen[-3:]
    return out["stdout"], out["stderr"], result


def test_output_comes_while_it_runs(d):
    # The program prints a line and then waits for ever: the line must come
    # while it runs. The test then cancels it, and the stream ends with the
    # result of a killed run.
    s = Stream(d, {"cmd": ["sh", "-c", "echo first; echo err >&2; exec sleep 300"],
                   "limits": GENEROUS})
    assert s.status == 200 and s.r.getheader("Content-Type") == "application/x-ndjson"
    it = s.lines()
    start = next(it)
    assert start["type"] == "start"
    rid = start["run"]["id"]
    got = [next(it), next(it)]
    assert {"type": "stdout", "offset": 0, "data": "first\n"} in got, got
    assert {"type": "stderr", "offset": 6, "data": "err\n"} in got, got
    r = d.request("GET", f"/v1/runs/{rid}", token=d.tok)
    assert r.status == 200 and r.json["state"] == "running", r
    r = d.request("DELETE", f"/v1/runs/{rid}", token=d.tok)
    assert r.status == 200, r
    rest = list(it)
    assert [ev["type"] for ev in rest] == ["result"], rest
    res = rest[0]["result"]
    assert res["id"] == rid and res["state"] == "finished" and res["verdict"] == "killed", res
    assert res["stdout"] == "first\n" and res["stderr"] == "err\n"
    s.close()


def test_much_output_complete_in_order(d):
    s = Stream(d, {"cmd": ["sh", "-c", "seq 1 50000; seq 1 3 | sed 's/^/e/' >&2"],
                   "limits": {**GENEROUS, "output": "4M"}})
    out, err, res = collect(s.lines())
    s.close()
    assert out == "".join(f"{i}\n" for i in range(1, 50001)).encode()
    assert err == b"e1\ne2\ne3\n"
    assert res["verdict"] == "ok" and res["stdout"].encode() == out


def test_binary_and_split_utf8(d):
    prog = ("import os, time\n"
            "os.write(1, b'\\xff\\xfe bin\\n'); time.sleep(0.3)\n"
            "os.write(1, 'caf\\u00e9 '.encode()[:-2]); time.sleep(0.3)\n"
            "os.write(1, 'caf\\u00e9 '.encode()[-2:] + b'done\\n')\n")
    s = Stream(d, {"cmd": ["python3", "-c", prog], "limits": GENEROUS})
    lines = list(s.lines())
    s.close()
    out, _, res = collect(lines)
    assert out == b"\xff\xfe bin\ncaf\xc3\xa9 done\n"
    assert any("data_b64" in ev for ev in lines)
    # The é split across writes is never sent as base64.
    assert all(b"\xc3" not in chunk_bytes(ev) or "data" in ev
               for ev in lines if ev["type"] == "stdout")
    assert res["verdict"] == "ok"


def test_limits_and_verdicts(d):
    s = Stream(d, {"cmd": ["sh", "-c", "echo x; exit 3"], "limits": GENEROUS})
    out, _, res = collect(s.lines())
    s.close()
    assert out == b"x\n" and res["verdict"] == "exit_nonzero" and res["exit_code"] == 3
    s = Stream(d, {"cmd": ["sh", "-c", "echo y; sleep 60"], "limits": {"wall_time": "1s"}})
    out, _, res = collect(s.lines())
    s.close()
    assert out == b"y\n" and res["verdict"] == "wall_time_limit"


def test_client_that_goes_does_not_stop_the_run(d, tmp_path):
    s = Stream(d, {"cmd": ["sh", "-c", "echo go; sleep 2; echo end"], "limits": GENEROUS})
    it = s.lines()
    rid = next(it)["run"]["id"]
    assert next(it)["data"] == "go\n"
    s.close()

    def finished():
        r = d.request("GET", f"/v1/runs/{rid}", token=d.tok)
        return r.json["state"] == "finished" and r.json

    assert wait_until(finished, 60)
    got = finished()
    assert got["verdict"] == "ok" and got["stdout"] == "go\nend\n"


def test_refused_with_async_or_queue_and_bad_input(d):
    for field in ("async", "queue"):
        s = Stream(d, {"cmd": ["true"], field: True})
        body = json.loads(s.r.read())
        s.close()
        assert s.status == 400 and body["error"]["field"] == field, body
    s = Stream(d, {"cmd": ["true"], "limits": {"memory": "12X"}})
    body = json.loads(s.r.read())
    s.close()
    assert s.status == 400 and body["error"]["field"] == "limits.memory", body


def test_without_the_header_as_before(d):
    r = d.request("POST", "/v1/runs", {"cmd": ["sh", "-c", "echo plain"]}, d.tok)
    assert r.status == 200 and r.json["stdout"] == "plain\n" and r.json["state"] == "finished"


def test_slow_reader_is_told_what_it_lost(d):
    # 24 MiB of output while the client reads nothing: the run does not wait
    # for it (it finishes first), and the client is told what it lost.
    s = Stream(d, {"cmd": ["sh", "-c", "head -c 25165824 /dev/zero | tr '\\0' a; echo"],
                   "limits": {**GENEROUS, "output": "32M"}})
    it = s.lines()
    rid = next(it)["run"]["id"]
    assert wait_until(lambda: d.request("GET", f"/v1/runs/{rid}", token=d.tok)
                      .json["state"] == "finished", 120)
    offset, cuts, got, res = 0, [], 0, None
    for ev in it:
        if ev["type"] == "cut":
            assert ev["offset"] == offset and ev["lost"] > 0, ev
            cuts.append(ev)
            offset += ev["lost"]
        elif ev["type"] == "stdout":
            assert ev["offset"] == offset, (ev["offset"], offset)
            assert set(ev["data"]) <= set("a\n")
            offset += len(ev["data"])
            got += len(ev["data"])
        else:
            assert ev["type"] == "result", ev
            res = ev["result"]
    s.close()
    assert res and res["verdict"] == "ok" and len(res["stdout"]) == 25165825
    assert offset == 25165825 and cuts and got < 25165825, (offset, len(cuts), got)


def test_cancelled_while_queued(tmp_path):
    # One run slot, taken by a run that waits for ever: a second streamed
    # run waits in the queue; cancelling it ends its stream with the state.
    h = Hulld(tmp_path, "--max-runs", "1")
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.start()
    try:
        busy = Stream(h, {"cmd": ["sleep", "300"], "limits": {"wall_time": "600s"}})
        busy_id = next(busy.lines())["run"]["id"]
        assert wait_until(lambda: h.request("GET", f"/v1/runs/{busy_id}", token=h.tok)
                          .json["state"] == "running", 60)
        queued = Stream(h, {"cmd": ["echo", "never"]})
        it = queued.lines()
        rid = next(it)["run"]["id"]
        assert h.request("GET", f"/v1/runs/{rid}", token=h.tok).json["state"] == "queued"
        assert h.request("DELETE", f"/v1/runs/{rid}", token=h.tok).status == 200
        rest = list(it)
        assert [ev["type"] for ev in rest] == ["result"], rest
        assert rest[0]["result"]["id"] == rid and rest[0]["result"]["state"] == "cancelled"
        queued.close()
        assert h.request("DELETE", f"/v1/runs/{busy_id}", token=h.tok).status == 200
        res = [ev for ev in busy.lines()][-1]["result"]
        assert res["verdict"] == "killed", res
        busy.close()
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def test_no_fd_of_hulld_left(d):
    def fds():
        return len(os.listdir(f"/proc/{d.proc.pid}/fd"))

    assert d.request("POST", "/v1/runs", {"cmd": ["true"]}, d.tok).status == 200
    base = fds()
    for i in range(10):
        s = Stream(d, {"cmd": ["sh", "-c", "echo a; sleep 1; echo b"], "limits": GENEROUS})
        it = s.lines()
        rid = next(it)["run"]["id"]
        if i % 2:
            assert next(it)["data"] == "a\n"
            s.close()  # gone early: the run goes on
        else:
            collect([{"type": "start", "run": {"id": rid}}, *it])
            s.close()
    assert wait_until(lambda: d.request("GET", "/v1/runs?state=running", token=d.tok)
                      .json["runs"] == [], 60)
    assert wait_until(lambda: fds() <= base, 30), (fds(), base, os.listdir(f"/proc/{d.proc.pid}/fd"))


def test_hulld_stopping_finishes_the_stream(tmp_path):
    # SIGTERM drains: the running run finishes, and its stream with it.
    h = Hulld(tmp_path)
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.start()
    s = Stream(h, {"cmd": ["sh", "-c", "echo a; sleep 2; echo b"], "limits": GENEROUS})
    it = s.lines()
    assert next(it)["type"] == "start"
    assert next(it)["data"] == "a\n"
    h.note_helpers()
    h.proc.send_signal(15)
    out, _, res = collect([{"type": "start", "run": {"id": "r-x"}},
                           {"type": "stdout", "offset": 0, "data": "a\n"}, *it])
    s.close()
    assert out == b"a\nb\n" and res["verdict"] == "ok", res
    assert h.proc.wait(timeout=120) == 0, h.log.read_text()
    h.proc = None
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()
