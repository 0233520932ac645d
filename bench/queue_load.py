#!/usr/bin/python3
"""Throughput of the Redis queue: jobs/s with 1, 2 and 4 `hulld --worker`s
on this machine, each job `/bin/true` in a container-level sandbox.

    bench/queue_load.py                 # JOBS=200 WORKERS="1 2 4" CONCURRENCY=1

For each worker count: a fresh redis-server on loopback (no persistence),
JOBS jobs submitted through hull_queue_submit (tests/tools/queuetool, the
call hulld's POST /v1/runs {"queue": true} makes), then the workers start
and the clock runs until the last result is stored. Each job's result is
checked (verdict ok) and the host is checked clean afterwards. For
reference, the same run as `hull sandbox run -- /bin/true` one after the
other, in the same session: the queue's price per job is the difference.

Bounded: JOBS per configuration, loopback only, everything stopped at the
end. Run as root after `make`.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SRC / "tests" / "integration"))
os.environ.setdefault("HULL", str(SRC / "build" / "hull"))
from queuelib import HULL, P, QUEUETOOL, RedisServer, Worker  # noqa: E402

JOBS = int(os.environ.get("JOBS", "200"))
WORKERS = [int(w) for w in os.environ.get("WORKERS", "1 2 4").split()]
CONCURRENCY = int(os.environ.get("CONCURRENCY", "1"))
REQUEST = json.dumps({"cmd": ["/bin/true"]})


def cli_rate(n):
    """`hull sandbox run -- /bin/true`, n times in a row: runs/s."""
    t0 = time.monotonic()
    for _ in range(n):
        subprocess.run([HULL, "sandbox", "run", "--", "/bin/true"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return n / (time.monotonic() - t0)


def queue_rate(n_workers):
    redis = RedisServer()
    workers = []
    try:
        ids = subprocess.run([QUEUETOOL, "submit-many", redis.url, str(JOBS), REQUEST],
                             check=True, capture_output=True, text=True).stdout.split()
        assert len(ids) == JOBS
        t0 = time.monotonic()
        workers = [Worker(redis.url, f"bench-{i}", concurrency=CONCURRENCY, heartbeat_ms=500,
                          reap_ms=1000) for i in range(n_workers)]
        deadline = t0 + 600
        while redis.r("LLEN", f"{P}jobs") or any(
                redis.r("LLEN", f"{P}processing:{w.name}") for w in workers):
            if time.monotonic() > deadline:
                raise SystemExit("queue_load: jobs did not finish in 10 minutes")
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
        results = [json.loads(redis.r("GET", f"{P}result:{i}") or "{}") for i in ids]
        bad = [r for r in results if r.get("verdict") != "ok"]
        if bad:
            raise SystemExit(f"queue_load: {len(bad)} jobs did not end ok: {bad[:3]}")
        # Jobs each worker started (its runners are persistent: one per slot).
        per_worker = {w.name: len(re.findall(r": job [0-9a-f]{32}: runner \d+$", w.output(), re.M))
                      for w in workers}
        return JOBS / elapsed, per_worker
    finally:
        try:
            for w in workers:
                w.stop()
        finally:
            redis.stop()


def main():
    if os.geteuid() != 0:
        raise SystemExit("queue_load: run as root")
    for tool in (HULL, QUEUETOOL):
        if not Path(tool).exists():
            raise SystemExit(f"queue_load: {tool} not built (make)")
    print(f"# {os.cpu_count()} CPUs, {JOBS} jobs of /bin/true per configuration, "
          f"{CONCURRENCY} job(s) at a time per worker; load average before: "
          f"{os.getloadavg()[0]:.1f}")
    ref = cli_rate(min(JOBS, 100))
    print(f"hull sandbox run (CLI, one after another): {ref:7.1f} runs/s")
    print("| workers | jobs/s | jobs per worker |")
    print("|---|---|---|")
    for n in WORKERS:
        rate, split = queue_rate(n)
        print(f"| {n} | {rate:.1f} | {' / '.join(str(v) for v in split.values())} |", flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
