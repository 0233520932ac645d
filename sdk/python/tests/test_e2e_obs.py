"""Streamed runs and per-sandbox metrics through the SDK against a real
hulld, sync and async: ``client.run(..., on_stdout=...)`` gets the output
while the run runs and the same Result as a plain run; ``sb.metrics()``
shows a process's 64 MiB and a loop's CPU time.

Needs root and the built binaries ($HULL, default build/hull, with hulld
beside it); the helpers are the integration suite's (tests/integration)."""
import asyncio
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import hull

SRC = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SRC / "tests" / "integration"))
from hulldlib import HULLD, Hulld, wait_until  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")

MiB = 1 << 20


@pytest.fixture(scope="module")
def env():
    tmp = Path(tempfile.mkdtemp(prefix="hull-sdk-obs14-"))
    d = Hulld(tmp, "--metrics-interval", "200")
    Path(d.state).mkdir(parents=True)
    try:
        d.start()
        e = type("Env", (), {})()
        e.hulld = d
        e.client = hull.Client(socket_path=d.sock, token=d.token("user", "acme"))
        yield e
    finally:
        rc = d.stop() if d.proc else 0
        leaks = d.leaks()
        subprocess.run(["rm", "-rf", str(tmp)])
        assert rc == 0
        assert leaks == ([], [], []), leaks


def test_run_streams_and_returns_the_result(env):
    got, ids, seen_running = [], [], []

    def on_stdout(text):
        got.append(text)
        if text == "first\n":
            # While the run runs: its row says so.
            seen_running.append(env.client.get(ids[0]).state)

    res = env.client.run(["sh", "-c", "echo first; sleep 1; echo second; echo e >&2"],
                         on_stdout=on_stdout, on_stderr=got.append, on_start=ids.append)
    assert ids and ids[0].startswith("r-")
    assert "".join(got) == "first\nsecond\ne\n" and seen_running == ["running"]
    assert res.verdict == "ok" and res.stdout == "first\nsecond\n" and res.stderr == "e\n"
    with pytest.raises(ValueError):
        env.client.run(["true"], on_stdout=print, queue=True)


def test_async_run_streams(env):
    async def go():
        got = []

        async def on_stdout(text):
            got.append(text)

        async with hull.AsyncClient(socket_path=env.hulld.sock,
                                    token=env.client.token) as ac:
            res = await ac.run(["sh", "-c", "seq 1 2000"], on_stdout=on_stdout)
        return got, res

    got, res = asyncio.run(go())
    assert "".join(got) == "".join(f"{i}\n" for i in range(1, 2001)) == res.stdout


def test_metrics_memory_and_cpu(env):
    with env.client.sandbox(limits={"memory": "512M"}) as sb:
        p = sb.start(["python3", "-c",
                      "import time\nb = b'x' * (64 << 20)\ntime.sleep(300)"])
        assert wait_until(lambda: any((s.memory_bytes or 0) >= 64 * MiB
                                      for s in sb.metrics()), 60)
        p.kill()
        first = sb.metrics()[-1]
        sb.start(["sh", "-c", "while :; do :; done"])
        assert wait_until(lambda: sb.metrics(since=first.time)
                          and sb.metrics()[-1].cpu_seconds >= first.cpu_seconds + 0.5, 120)
        later = sb.metrics(since=first.time)
        assert later and all(s.time > first.time for s in later)
        # A datetime (naive: UTC) long past: every sample.
        assert sb.metrics(since=datetime.datetime(2000, 1, 1))

        async def amet():
            async with hull.AsyncClient(socket_path=env.hulld.sock,
                                        token=env.client.token) as ac:
                asb = await ac.attach(sb.id)
                return await asb.metrics()

        am = asyncio.run(amet())
        assert am and am[-1].cpu_seconds >= first.cpu_seconds + 0.5
        assert am[-1].memory_peak_bytes >= 64 * MiB or am[-1].memory_peak_bytes == 0
