"""Streamed runs and sandbox metrics against the stub hulld, sync and
async: the request's Accept header and body, the callbacks in order, the
Result from the result line, a server without streamed runs still calling
back, and metrics' query and samples."""
import datetime

import pytest

import hull
from stub import Lines
from test_streaming import RESULT, api, stub  # noqa: F401  (fixtures)

RUN_LINES = [{"type": "start", "run": {"id": "r-1", "created": "2026-12-03T00:00:00Z"}},
             {"type": "stdout", "offset": 0, "data": "a\n"},
             {"type": "cut", "offset": 2, "lost": 5},
             {"type": "stderr", "offset": 7, "data": "e"},
             {"type": "result", "result": {"id": "r-1", "state": "finished", **RESULT}}]


def run(api, c, **kw):
    """The run call of either client (the async one's coroutine is awaited
    by api.run)."""
    return c.run(["sh", "-c", "x"], **kw)


def test_run_streams_to_callbacks(stub, api):
    stub.answer(200, Lines(RUN_LINES))
    seen = []
    r = api.run(lambda c, sb: run(api, c, on_stdout=lambda t: seen.append(("out", t)),
                                  on_stderr=lambda t: seen.append(("err", t)),
                                  on_cut=lambda o, n: seen.append(("cut", o, n)),
                                  on_start=lambda i: seen.append(("start", i))))
    assert r.ok and r.stdout == RESULT["stdout"]
    assert seen == [("start", "r-1"), ("out", "a\n"), ("cut", 2, 5), ("err", "e")]
    req = stub.requests[0]
    assert req["method"] == "POST" and req["path"] == "/v1/runs"
    assert "application/x-ndjson" in req["headers"]["Accept"]
    assert stub.last_json() == {"cmd": ["sh", "-c", "x"]}


def test_run_against_a_server_without_streamed_runs_still_calls_back(stub, api):
    stub.answer(200, RESULT)
    seen = []
    r = api.run(lambda c, sb: run(api, c, on_stdout=seen.append, on_stderr=seen.append))
    assert r.ok and seen == [RESULT["stdout"], RESULT["stderr"]]


def test_run_stream_not_with_queue(stub, api):
    with pytest.raises(ValueError):
        api.run(lambda c, sb: run(api, c, on_stdout=print, queue=True))
    assert stub.requests == []


def test_metrics(stub, api):
    doc = {"sandbox": "s-1", "interval_ms": 5000, "samples": [
        {"time": "2026-12-03T00:00:00.000Z", "cpu_seconds": 1.5, "memory_bytes": 10,
         "memory_peak_bytes": 20, "disk_bytes": 30},
        {"time": "2026-12-03T00:00:05.000Z", "net_rx_bytes": 1, "net_tx_bytes": 2}]}
    stub.answer(200, doc)
    stub.answer(200, doc)
    got = api.run(lambda c, sb: sb.metrics())
    assert got[0] == hull.MetricsSample("2026-12-03T00:00:00.000Z", 1.5, 10, 20, 30)
    assert got[1].cpu_seconds is None and got[1].net_tx_bytes == 2
    api.run(lambda c, sb: sb.metrics(since=datetime.datetime(2026, 12, 3, 1, 2, 3)))
    assert stub.requests[0]["path"] == "/v1/sandboxes/s-1/metrics"
    assert stub.requests[1]["path"] == \
        "/v1/sandboxes/s-1/metrics?since=2026-12-03T01%3A02%3A03%2B00%3A00"
