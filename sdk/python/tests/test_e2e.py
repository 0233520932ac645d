"""The SDK against a real hulld (and, for queued runs, a real redis-server
and `hulld --worker`): every call of the SDK, every error class it maps,
the calculate example, and nothing left on the host afterwards.

Needs root and the built binaries ($HULL, default build/hull, with hulld
beside it); the helpers are the integration suite's (tests/integration)."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import hull

SRC = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SRC / "tests" / "integration"))
from hulldlib import HULLD, Hulld, alive, self_signed_cert, wait_until  # noqa: E402
from queuelib import P, RedisServer, Worker  # noqa: E402

import calculate as calc  # noqa: E402  (sdk/python/examples)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")


@pytest.fixture(scope="module")
def env():
    """redis-server + one worker + hulld --redis, tokens for two tenants."""
    tmp = Path(tempfile.mkdtemp(prefix="hull-sdk-e2e-"))
    redis = RedisServer()
    worker = d = None
    try:
        worker = Worker(redis.url, "sdk-worker", concurrency=1)
        d = Hulld(tmp, "--redis", redis.url, "--max-runs", "2", "--queue-depth", "4",
                  "--tenant-runs", "3")
        d.start()
        e = type("Env", (), {})()
        e.hulld, e.redis, e.worker, e.tmp = d, redis, worker, tmp
        e.user = d.token("user", "acme")
        e.reader = d.token("reader", "acme")
        e.other = d.token("user", "other")
        e.client = hull.Client(socket_path=d.sock, token=e.user)
        yield e
    finally:
        # Everything is stopped before anything is judged, even when the
        # set-up failed half-way.
        try:
            rc = d.stop() if d and d.proc else 0
        finally:
            wrc = worker.stop() if worker else 0
            redis.stop()
        procs, entries, cgroups = d.leaks() if d else ([], [], [])
        subprocess.run(["rm", "-rf", str(tmp)])
        assert wrc == 0, worker.output()
        assert rc == 0
        assert not procs and not entries and not cgroups, (procs, entries, cgroups)
        assert not redis.dir.exists() and redis.proc.poll() is not None


def test_run_returns_a_typed_result(env):
    r = env.client.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert isinstance(r, hull.Result) and r.id.startswith("r-")
    assert (r.verdict, r.exit_code, r.stdout, r.stderr) == ("exit_nonzero", 3, "out\n", "err\n")
    assert r.isolation == "container" and r.wall_time_ms >= 0 and not r.ok
    with pytest.raises(hull.RunFailed):
        r.check()


def test_run_with_files_stdin_env_limits_isolation(env):
    r = env.client.run("cat /tmp/data/in.txt; cat; echo $GREETING; id -u",
                       files={"data/in.txt": "from a file\n"}, stdin=b"from stdin\n",
                       env={"GREETING": "hello"}, limits={"memory": "64M", "pids": 8})
    assert r.check().stdout == "from a file\nfrom stdin\nhello\n1000\n"
    # The limit is the kernel's: a busy loop ends by the cgroup's CPU clock.
    r = env.client.run(["sh", "-c", "while :; do :; done"], limits={"cpu_time": "300ms"})
    assert r.verdict == "cpu_time_limit" and r.cpu_time_ms >= 300
    # Process isolation (trusted code) needs a grant given to the token.
    with pytest.raises(hull.PermissionDenied) as ex:
        env.client.run(["sh", "-c", "echo $$"], isolation="process")
    assert ex.value.field == "isolation" and ex.value.permission == "process-isolation"
    trusted = hull.Client(socket_path=env.hulld.sock,
                          token=env.hulld.token("user", "acme", allow="process-isolation"))
    r = trusted.run(["sh", "-c", "echo $$"], isolation="process")
    assert r.ok and r.isolation == "process"


def test_async_runs_submit_get_wait_cancel(env):
    c = env.client
    run = c.submit(["sh", "-c", "sleep 0.3; echo later"])
    assert run.id.startswith("r-") and run.state in ("queued", "running")
    assert c.wait(run.id, timeout=60).stdout == "later\n"
    assert c.get(run.id).state == "finished" and c.get(run.id).result.ok
    long = c.submit(["sleep", "30"], limits={"wall_time": "2m"})
    assert wait_until(lambda: c.get(long.id).state == "running")
    cancelled = c.cancel(long.id)
    assert cancelled.state == "finished" and cancelled.result.verdict == "killed"
    with pytest.raises(hull.Conflict):
        c.cancel(long.id)
    assert long.id in [r.id for r in c.runs(state="finished")]


def test_errors_map_to_exceptions(env):
    d = env.hulld
    with pytest.raises(hull.AuthError) as e:
        hull.Client(socket_path=d.sock, token="not-a-token").run(["true"])
    assert e.value.status == 401
    with pytest.raises(hull.PermissionDenied):
        hull.Client(socket_path=d.sock, token=env.reader).run(["true"])
    mine = env.client.submit(["true"])
    env.client.wait(mine.id)
    with pytest.raises(hull.NotFound):
        hull.Client(socket_path=d.sock, token=env.other).get(mine.id)
    with pytest.raises(hull.ValidationError) as e:
        env.client.run(["true"], limits={"memory": "12X"})
    assert e.value.field == "limits.memory" and e.value.status == 400
    # A limit a microVM sandbox cannot apply is refused by name, before any
    # VM starts.
    with pytest.raises(hull.NotImplementedByServer) as e:
        with env.client.sandbox(isolation="microvm", limits={"tmp_size": "64M"}):
            pass
    assert "limits.tmp_size" in str(e.value)


def test_quota_gives_rate_limited_with_retry_after(env):
    c = env.client
    held = [c.submit(["sleep", "30"], limits={"wall_time": "2m"})
            for _ in range(3)]  # --tenant-runs 3
    try:
        with pytest.raises(hull.RateLimited) as e:
            c.submit(["true"])
        assert e.value.code == "quota_exceeded" and e.value.retry_after >= 1
    finally:
        for r in held:
            c.cancel(r.id)


def test_sandbox_exec_files_pause_and_delete_on_exit(env):
    c = env.client
    blob = bytes(range(256)) * 4
    with c.sandbox(isolation="container", limits={"memory": "128M"}, lifetime="5m") as sb:
        assert sb.id.startswith("s-") and sb.info.state == "running"
        assert sb.files.write("in/blob.bin", blob)["size"] == len(blob)
        r = sb.exec(["sh", "-c", "wc -c < /tmp/in/blob.bin; id -u; echo kept > /tmp/out.txt"])
        assert r.check().stdout.split() == [str(len(blob)), "1000"]
        assert sb.files.read("/tmp/out.txt") == b"kept\n"
        assert sb.files.read("in/blob.bin") == blob
        # State persists between execs; a paused sandbox refuses exec.
        assert sb.exec("cat /tmp/out.txt").stdout == "kept\n"
        assert sb.pause().state == "paused"
        with pytest.raises(hull.Conflict):
            sb.exec("true")
        assert sb.resume().state == "running"
        with pytest.raises(ValueError, match="under /tmp"):
            sb.files.write("../escape", b"x")  # relative paths stay under /tmp
        with pytest.raises(hull.NotFound):
            sb.files.read("missing.txt")
        assert sb.id in [s.id for s in c.sandboxes()]
    # Deleted on exit: hulld reports it destroyed (or no longer knows it).
    try:
        assert c.attach(sb.id).state == "destroyed"
    except hull.NotFound:
        pass
    assert sb.id not in [s.id for s in c.sandboxes() if s.state != "destroyed"]


def test_queued_run_goes_through_redis_to_a_worker(env):
    r = env.client.run(["sh", "-c", "echo via-queue"], queue=True, timeout=120)
    assert r.ok and r.stdout == "via-queue\n"
    run = env.client.submit(["sh", "-c", "echo submitted"], queue=True)
    assert run.queue and run.state == "queued"
    assert env.client.wait(run.id, timeout=120).stdout == "submitted\n"
    # A worker ran them: the queue's own records say which.
    jobs = [k for k in env.redis.r("KEYS", f"{P}job:*")]
    assert len(jobs) >= 2
    assert all(env.redis.r.hash(k)["worker"] == "sdk-worker" for k in jobs)
    assert len(env.worker.runners()) >= 1  # persistent runners: one per slot, not per job


def test_queued_run_cancelled_before_a_worker_takes_it(env):
    """The worker (one job at a time) is busy: a second queued run is
    cancelled through hulld and taken out of the Redis queue."""
    c = env.client
    busy = c.submit(["sleep", "2"], queue=True)
    assert wait_until(lambda: env.redis.r("LLEN", f"{P}jobs") == 0)  # the worker has it
    waiting = c.submit(["echo", "never"], queue=True)
    assert c.cancel(waiting.id).state == "cancelled"
    assert env.redis.r("LLEN", f"{P}jobs") == 0
    states = [env.redis.r.hash(k).get("state") for k in env.redis.r("KEYS", f"{P}job:*")]
    assert "cancelled" in states
    assert c.wait(busy.id, timeout=120).ok


def test_calculate_example_through_the_sdk(env):
    c = env.client
    assert calc.calculate(c, calc.DEMO_CODE, calc.DEMO_INPUTS) == {
        "count": 5, "mean": 3.0, "max": 5.5, "scaled": [6.0, 3.0, 8.0, 2.0, 11.0]}
    noisy = "def calculate(inputs):\n    print('debug output')\n    return inputs['a'] + 1\n"
    assert calc.calculate(c, noisy, {"a": 41}) == 42
    cases = [
        ("def calculate(inputs):\n    raise ValueError('bad input')\n", "exit_nonzero",
         "ValueError: bad input"),
        ("def calculate(inputs):\n    while True:\n        pass\n", "cpu_time_limit", None),
        ("def calculate(inputs):\n    return bytearray(1 << 30)\n", "memory_limit", None),
        ("import os\ndef calculate(inputs):\n    while True:\n        os.fork()\n",
         "pids_limit", None),
        ("import socket\ndef calculate(inputs):\n"
         "    socket.create_connection(('192.0.2.1', 80), timeout=1)\n",
         "exit_nonzero", "Network is unreachable"),
    ]
    # A generous wall clock: on a loaded machine the CPU limit must still be
    # what stops the loop.
    limits = dict(calc.LIMITS, wall_time="60s")
    for code, verdict, stderr in cases:
        with pytest.raises(calc.CalculationFailed) as e:
            calc.calculate(c, code, {}, limits=limits)
        assert e.value.result.verdict == verdict, e.value.result
        assert stderr is None or stderr in e.value.result.stderr
    # The command line, as a service operator would call it.
    cp = subprocess.run([sys.executable, calc.__file__, "--socket", env.hulld.sock,
                         "--token", env.user, "--demo"], capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0 and json.loads(cp.stdout)["count"] == 5, cp.stderr


def test_https_url_with_the_servers_ca(tmp_path):
    """Client(url=...) against hulld's TLS listener: the server's
    certificate checked against the given CA, refused without it."""
    key, cert = self_signed_cert(tmp_path)
    from queuelib import free_port
    port = free_port()
    d = Hulld(tmp_path, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
              "--tls-key", str(key)).start()
    try:
        c = hull.Client(url=f"https://127.0.0.1:{port}", token=d.token(), cafile=str(cert))
        assert c.run(["echo", "over tls"]).stdout == "over tls\n"
        with pytest.raises(hull.TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            hull.Client(url=f"https://127.0.0.1:{port}", token="x").health()
    finally:
        assert d.stop() == 0
    assert d.leaks() == ([], [], [])


def test_health_metrics_audit(env):
    c = env.client
    assert c.health()["status"] == "ok"
    assert "hull_runs_total" in c.metrics() or "# TYPE" in c.metrics()
    entries = c.audit(limit=1000)
    assert any(e["method"] == "POST" and e["path"] == "/v1/runs" for e in entries)
