"""The Redis job queue end to end: a real redis-server (Debian's) on a
loopback port, real `hulld --worker` processes running real sandboxes, jobs
submitted through hull_queue_submit (tests/tools/queuetool, the call hulld's
POST /v1/runs {"queue": true} makes) and read back through
hull_queue_result.

What must hold, whatever dies when: every job ends with exactly one result
(or, past its retry limit or when malformed, in the dead-letter list with
why), the jobs of a SIGKILLed worker are requeued by another worker's
reaper, and afterwards nothing is left: no worker or workload process, no
sandbox state or cgroup, no Redis server, no temporary directory.

Heartbeats are 100 ms and reaper passes 200 ms here (flags), so a dead
worker is noticed within a second; timeouts below are hang guards only.
"""
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from queuelib import (HULLD, P, QUEUETOOL, RedisServer, Worker, pid_alive, queuetool, submit,
                      wait_until)
from sandboxlib import cgroup_dirs, pids_with_env, state_dirs

pytestmark = pytest.mark.skipif(not Path(HULLD).exists() or not Path(QUEUETOOL).exists(),
                                reason=f"{HULLD} or {QUEUETOOL} not built")


def sandbox_entries(prefix="sandbox-"):
    """State directories and cgroups (every hierarchy) of sandbox runs."""
    return ({f"state:{n}" for n in state_dirs(prefix)} |
            {f"cgroup:{d}" for d in cgroup_dirs(prefix)})


class Env:
    """A Redis server, the workers started on it, and the jobs' marker."""

    def __init__(self):
        self.redis = RedisServer()
        self.r = self.redis.r
        self.url = self.redis.url
        self.workers = []
        self.token = "hullq-" + uuid.uuid4().hex
        self.before = sandbox_entries()

    def worker(self, name, **kw):
        w = Worker(self.url, name, **kw)
        self.workers.append(w)
        return w

    def request(self, script, **kw):
        """A run request whose processes carry this test's marker."""
        req = {"cmd": ["sh", "-c", script], "env": {"HULL_TEST_TOKEN": self.token},
               "limits": {"wall_time": "30s"}}
        req.update(kw)
        return req

    def submit(self, script, **kw):
        return submit(self.url, self.request(script, **kw))

    def result(self, job_id):
        """hull_queue_result: the result dict, None while pending."""
        out = queuetool("result", self.url, job_id).stdout.strip()
        return None if out == "pending" else json.loads(out)

    def job(self, job_id):
        return self.r.hash(f"{P}job:{job_id}")

    def processing(self, worker):
        return self.r("LRANGE", f"{P}processing:{worker}", 0, -1)

    def dead(self):
        return self.r("LRANGE", f"{P}dead", 0, -1)

    def wait_finished(self, ids, timeout=120):
        done = {}

        def check():
            for i in ids:
                if i not in done:
                    res = self.result(i)
                    if res is not None:
                        done[i] = res
            return len(done) == len(ids)
        assert wait_until(check, timeout=timeout), \
            f"unfinished: {set(ids) - set(done)}; logs: {self.logs()}"
        return done

    def logs(self):
        return {w.name: w.output()[-3000:] for w in self.workers}

    def close(self):
        errors = []
        try:
            for w in self.workers:
                if w.proc.poll() is None and w.stop() != 0:
                    errors.append(f"worker {w.name} exited non-zero: {w.output()}")
            # Stopped workers deregistered themselves.
            stopped = {w.name for w in self.workers if w.proc.returncode == 0}
            left = [n for n in self.r("SMEMBERS", f"{P}workers") if n in stopped]
            left += [k for k in self.r("KEYS", f"{P}alive:*") if k[len(P) + 6:] in stopped]
            if left:
                errors.append(f"workers still registered: {left}")
        finally:
            self.redis.stop()
        if self.redis.proc.poll() is None:
            errors.append("redis-server still running")
        if self.redis.dir.exists():
            errors.append(f"{self.redis.dir} left behind")
        if not wait_until(lambda: not pids_with_env(self.token), timeout=20):
            errors.append(f"workload processes left: {pids_with_env(self.token)}")
        for w in self.workers:
            if pid_alive(w.pid):
                errors.append(f"worker {w.name} still alive")
        # Every sandbox of every job: its id starts with its runner's pid.
        # (Entries of other runs on this machine are not this test's to judge.)
        runners = set().union(*(w.runners() for w in self.workers)) if self.workers else set()

        def ours():
            return {e for e in sandbox_entries() - self.before
                    if any(f"sandbox-{pid}-" in e for pid in runners)}
        if not wait_until(lambda: not ours(), timeout=20):
            errors.append(f"sandbox leftovers: {ours()}")
        assert not errors, errors


@pytest.fixture
def q():
    env = Env()
    try:
        yield env
    finally:
        env.close()


@pytest.mark.asan
def test_jobs_run_and_results_read_back(q):
    """The submit and result calls hulld uses, one worker, two at a time."""
    w = q.worker("w1", concurrency=2)
    ids = [q.submit(f"echo job-{i}; echo err-{i} >&2; exit {i % 3}") for i in range(6)]
    assert len(set(ids)) == 6 and all(len(i) == 32 for i in ids)
    results = q.wait_finished(ids)
    for i, job_id in enumerate(ids):
        res = results[job_id]
        assert res["stdout"] == f"job-{i}\n" and res["stderr"] == f"err-{i}\n", res
        assert res["exit_code"] == i % 3
        assert res["verdict"] == ("ok" if i % 3 == 0 else "exit_nonzero")
        job = q.job(job_id)
        assert job["state"] == "finished" and job["attempts"] == "1" and job["worker"] == "w1"
        # Results and finished jobs expire (default one hour).
        assert 0 < q.r("TTL", f"{P}result:{job_id}") <= 3600
        assert 0 < q.r("TTL", f"{P}job:{job_id}") <= 3600
    assert q.r("LLEN", f"{P}jobs") == 0 and q.processing("w1") == [] and q.dead() == []
    # One persistent runner per slot, not a process per job (the leak check uses them).
    assert 1 <= len(w.runners()) <= 2
    # The queue's own fields, as hulld adds them, stay beside the request.
    tagged = submit(q.url, dict(q.request("echo tagged"), tenant="acme", run_id="r-12",
                                max_attempts=2))
    job = q.job(tagged)
    assert (job["tenant"], job["run_id"], job["max_attempts"]) == ("acme", "r-12", "2")
    assert set(json.loads(job["request"])) == {"cmd", "env", "limits"}
    assert q.wait_finished([tagged])[tagged]["stdout"] == "tagged\n"
    # The runner ignores SIGTERM (the worker drains); the workload must not.
    sig = q.submit("grep -E '^Sig(Ign|Blk)' /proc/self/status")
    assert q.wait_finished([sig])[sig]["stdout"] == \
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    # An id nobody submitted: ENOENT, exit status 2.
    cp = queuetool("result", q.url, "0" * 32, check=False)
    assert cp.returncode == 2 and "no such job" in cp.stderr


def test_bad_request_is_refused_at_submit_and_enqueues_nothing(q):
    before = sorted(q.r("KEYS", "*"))
    for req, field in [({"cmd": []}, "cmd"),
                       ({"cmd": ["true"], "limits": {"memory": "12X"}}, "limits.memory"),
                       ({"cmd": ["true"], "max_attempts": 0}, "max_attempts")]:
        cp = queuetool("submit", q.url, json.dumps(req), check=False)
        assert cp.returncode == 1 and f"{field}:" in cp.stderr, cp.stderr
    cp = queuetool("submit", q.url, "{not json", check=False)
    assert cp.returncode == 1 and "invalid JSON" in cp.stderr
    assert sorted(q.r("KEYS", "*")) == before
    # An unreachable Redis is an error, not a hang.
    cp = queuetool("submit", "redis://127.0.0.1:1", json.dumps({"cmd": ["true"]}), check=False)
    assert cp.returncode == 1 and "redis://127.0.0.1:1" in cp.stderr


def test_killed_worker_jobs_are_requeued_and_finish_exactly_once(q):
    """Two workers; SIGKILL one while it runs jobs: its jobs are taken back
    by the other's reaper and every job ends with one correct result."""
    a = q.worker("a", concurrency=2)
    b = q.worker("b", concurrency=1)
    ids = [q.submit(f"sleep 1; echo out-{i}") for i in range(8)]
    # Kill `a` while it holds jobs that are running in sandboxes.
    assert wait_until(lambda: len(q.processing("a")) == 2 and len(a.children()) == 2), q.logs()
    held = q.processing("a")
    assert all(q.job(i)["state"] == "running" and q.job(i)["worker"] == "a" for i in held)
    runners = a.children()
    a.kill()
    # The runners die with their worker (parent-death signal)...
    assert wait_until(lambda: not any(pid_alive(p) for p in runners), timeout=20)
    results = q.wait_finished(ids)
    for i, job_id in enumerate(ids):
        assert results[job_id]["verdict"] == "ok", results[job_id]
        assert results[job_id]["stdout"] == f"out-{i}\n"
    # ...the reaper gave a's jobs back, and b ran them on their second attempt.
    for job_id in held:
        job = q.job(job_id)
        assert job["attempts"] == "2" and job["worker"] == "b", job
        assert job["requeued_because"] == "worker a died while running it"
    # Exactly one result per job, nothing claimed, queued or dead-lettered.
    assert sorted(q.r("KEYS", f"{P}result:*")) == sorted(f"{P}result:{i}" for i in ids)
    assert q.processing("a") == [] and q.processing("b") == [] and q.dead() == []
    assert q.r("LLEN", f"{P}jobs") == 0
    assert q.r("SMEMBERS", f"{P}workers") == ["b"]
    # What a's runs left on the host went with b's reaper passes.
    for pid in runners:
        assert wait_until(lambda: not sandbox_entries(f"sandbox-{pid}-"), timeout=20), \
            (sandbox_entries(f"sandbox-{pid}-"), b.output())
    assert "reaped dead worker a: 2 requeued" in b.output()


def stage_crashed_worker(q, name, job_id, **fields):
    """What a worker killed at some point leaves in Redis: its name
    registered, no heartbeat, the job in its processing list."""
    assert q.r("LREM", f"{P}jobs", 1, job_id) == 1
    q.r("LPUSH", f"{P}processing:{name}", job_id)
    q.r("SADD", f"{P}workers", name)
    for k, v in fields.items():
        q.r("HSET", f"{P}job:{job_id}", k, v)


def test_a_member_that_cannot_be_reaped_does_not_keep_the_others(q):
    """Garbage under some registered names (here: a processing "list" that
    is a string) is reported and skipped; a dead worker among them is still
    reaped and its job run."""
    for i in range(20):
        q.r("SADD", f"{P}workers", f"bad{i}")
        q.r("SET", f"{P}processing:bad{i}", "not a list")
    job = q.submit("echo rescued")
    stage_crashed_worker(q, "dead1", job)
    q.worker("w1")
    assert q.wait_finished([job])[job]["stdout"] == "rescued\n"


def test_worker_dead_between_store_and_ack_does_not_rerun(q):
    """A result stored but not acknowledged (the worker died in between):
    the reaper acknowledges the job, nobody runs it again."""
    j1 = q.submit("echo would-rerun")
    j2 = q.submit("echo would-rerun")
    stored = json.dumps({"verdict": "ok", "stdout": "first run\n"})
    stage_crashed_worker(q, "ghost", j1, attempts=1, state="running", worker="ghost")
    q.r("SET", f"{P}result:{j1}", stored, "EX", 600)
    # j2: requeued by some reaper after its result was stored.
    q.r("HSET", f"{P}job:{j2}", "attempts", 1)
    q.r("SET", f"{P}result:{j2}", stored, "EX", 600)
    w = q.worker("w1")
    assert wait_until(lambda: q.job(j1)["state"] == "finished"
                      and q.job(j2)["state"] == "finished"), q.logs()
    for j in (j1, j2):
        assert q.result(j) == json.loads(stored)  # not overwritten by a second run
        assert q.job(j)["attempts"] == "1"        # and never started again
    assert q.r("TTL", f"{P}job:{j1}") > 0
    assert q.processing("ghost") == [] and q.r("LLEN", f"{P}jobs") == 0 and q.dead() == []
    assert "ghost" not in q.r("SMEMBERS", f"{P}workers")
    assert "already has a result" in w.output()


def test_retry_limit_sends_job_to_dead_letter_list(q):
    """A job whose workers keep dying is given up after max_attempts."""
    j1 = q.submit("echo never", max_attempts=2)
    stage_crashed_worker(q, "ghost", j1, attempts=2, state="running", worker="ghost")
    # Below the limit: requeued and run.
    j2 = q.submit("echo second-try", max_attempts=2)
    stage_crashed_worker(q, "ghost", j2, attempts=1, state="running", worker="ghost")
    q.worker("w1")
    assert wait_until(lambda: q.dead() == [j1] and q.result(j2) is not None), q.logs()
    job = q.job(j1)
    assert job["state"] == "failed"
    assert job["error"] == "gave up after 2 attempts: worker ghost died while running it"
    # Through the API's call, a given-up job is an internal error saying why.
    res = q.result(j1)
    assert res["verdict"] == "internal_error" and res["error"] == job["error"]
    assert q.result(j2)["stdout"] == "second-try\n" and q.job(j2)["attempts"] == "2"


def test_killed_runner_counts_as_an_attempt(q):
    """SIGKILL of the process running a job (not of the worker): the worker
    itself releases the job; with attempts left it reruns, without it is
    dead-lettered."""
    w = q.worker("w1", max_attempts=2)
    job_id = q.submit("sleep 30")
    killed = set()

    def runners():
        return [p for p in w.children() if p not in killed and pid_alive(p)]
    for attempt in (1, 2):
        # A generous hang guard: a busy machine may take a while to start it.
        assert wait_until(lambda: q.job(job_id).get("attempts") == str(attempt)
                          and q.job(job_id)["state"] == "running" and runners(),
                          60), (q.job(job_id), q.logs())
        for pid in runners():
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    assert wait_until(lambda: q.dead() == [job_id]), q.logs()
    assert q.job(job_id)["error"] == \
        "gave up after 2 attempts: its runner was killed by signal 9"
    assert wait_until(lambda: not pids_with_env(q.token))


def test_malformed_jobs_are_dead_lettered_with_their_error(q):
    """Jobs put on the queue by another producer, bypassing validation."""
    def push(request):
        job_id = uuid.uuid4().hex
        q.r("HSET", f"{P}job:{job_id}", "request", request, "state", "queued", "attempts", 0)
        q.r("LPUSH", f"{P}jobs", job_id)
        return job_id
    bad_cmd = push(json.dumps({"cmd": "echo"}))
    bad_json = push("{\"cmd\": [")
    bad_limit = push(json.dumps({"cmd": ["true"], "limits": {"cpu_time": "forever"}}))
    no_hash = uuid.uuid4().hex
    q.r("LPUSH", f"{P}jobs", no_hash)
    q.r("LPUSH", f"{P}jobs", "not a job id")
    good = q.submit("echo fine")
    q.worker("w1")
    assert wait_until(lambda: q.result(good) is not None and len(q.dead()) == 5), q.logs()
    assert set(q.dead()) == {bad_cmd, bad_json, bad_limit, no_hash, "not a job id"}
    assert q.job(bad_cmd)["error"] == \
        "invalid request: cmd: must be a non-empty array of strings"
    assert q.job(bad_json)["error"].startswith("invalid request: request: invalid JSON")
    assert q.job(bad_limit)["error"].startswith("invalid request: limits.cpu_time:")
    assert q.job(no_hash)["error"] == "no such job"
    for j in (bad_cmd, bad_json, bad_limit):
        assert q.job(j)["state"] == "failed" and q.job(j)["attempts"] == "1"
        assert q.result(j)["verdict"] == "internal_error"
    assert q.result(good)["stdout"] == "fine\n"
    assert q.processing("w1") == [] and q.r("LLEN", f"{P}jobs") == 0


def test_garbage_under_a_jobs_keys_is_dead_lettered_not_retried_for_ever(q):
    """attempts that is no number, or a job key that is no hash: settled
    (dead-lettered) once, not left in the worker's processing list for
    every restart to try again."""
    bad_attempts = uuid.uuid4().hex
    q.r("HSET", f"{P}job:{bad_attempts}", "request", json.dumps({"cmd": ["true"]}),
        "state", "queued", "attempts", "abc")
    q.r("LPUSH", f"{P}jobs", bad_attempts)
    not_hash = uuid.uuid4().hex
    q.r("SET", f"{P}job:{not_hash}", "a string")
    q.r("LPUSH", f"{P}jobs", not_hash)
    good = q.submit("echo fine")
    w1 = q.worker("w1")
    assert wait_until(lambda: q.result(good) is not None and len(q.dead()) == 2), q.logs()
    assert set(q.dead()) == {bad_attempts, not_hash}
    assert q.job(bad_attempts)["error"] == "not a job: attempts is no number"
    assert q.job(not_hash)["error"] == "not a job: its key is no hash"
    assert q.processing("w1") == []
    assert w1.stop() == 0


def test_isolation_weakening_jobs_need_the_workers_grant(q):
    """hulld checks the submitter's token; a job pushed to Redis by anyone
    else had none to check: the worker runs it only with its own grant."""
    host = q.submit("readlink /proc/self/ns/net", network="host")
    proc = q.submit("true", isolation="process")
    w1 = q.worker("w1")
    assert wait_until(lambda: len(q.dead()) == 2), q.logs()
    assert set(q.dead()) == {host, proc}
    assert q.job(host)["error"].startswith(
        'not allowed: network: "host" needs the host-network grant'), q.job(host)
    assert q.job(proc)["error"].startswith(
        'not allowed: isolation: "process" needs the process-isolation grant'), q.job(proc)
    assert q.result(host)["verdict"] == "internal_error"
    assert w1.stop() == 0
    granted = q.submit("readlink /proc/self/ns/net", network="host")
    q.worker("w2", extra=("--allow", "host-network"))
    res = q.wait_finished([granted])[granted]
    assert res["verdict"] == "ok" and res["stdout"].strip() == os.readlink("/proc/self/ns/net")


def test_jobs_over_the_workers_ceilings_or_with_an_image_are_dead_lettered(q):
    """hulld --worker --max-limit holds queue jobs to the operator's
    ceilings as the API does; and a job pushed with an "image" (which the
    API refuses with "queue") makes the worker pull nothing."""
    slow = q.submit("true", limits={"wall_time": "1h"})
    fat = q.submit("true", limits={"memory": "1G", "wall_time": "10s"})
    img = uuid.uuid4().hex
    q.r("HSET", f"{P}job:{img}", "request",
        json.dumps({"cmd": ["true"], "image": "127.0.0.1:1/evil:1"}), "state", "queued",
        "attempts", 0)
    q.r("LPUSH", f"{P}jobs", img)
    fine = q.submit("echo fine", limits={"wall_time": "10s"})
    q.worker("w1", extra=("--max-limit", "wall_time=15s", "--max-limit", "memory=300M"))
    assert wait_until(lambda: q.result(fine) is not None and len(q.dead()) == 3), q.logs()
    assert set(q.dead()) == {slow, fat, img}
    assert "limits.wall_time: 3600000 ms is above what this server gives" in q.job(slow)["error"]
    assert "limits.memory: 1073741824 bytes is above" in q.job(fat)["error"]
    assert q.job(img)["error"].startswith("not allowed: image:"), q.job(img)
    assert q.result(fine)["stdout"] == "fine\n"


def test_sigterm_drains_running_jobs(q):
    """SIGTERM: the running job finishes and is stored, no new job is
    taken, the worker deregisters and exits 0."""
    w = q.worker("w1")
    first = q.submit("sleep 1; echo drained")
    second = q.submit("echo later")
    assert wait_until(lambda: q.job(first)["state"] == "running" and w.children())
    assert w.stop() == 0, w.output()
    assert q.result(first)["stdout"] == "drained\n"
    assert q.result(second) is None and q.r("LRANGE", f"{P}jobs", 0, -1) == [second]
    assert q.r("SMEMBERS", f"{P}workers") == [] and q.r("KEYS", f"{P}alive:*") == []
    # A worker started later picks it up.
    q.worker("w2")
    assert q.wait_finished([second])[second]["stdout"] == "later\n"


def test_worker_rides_out_a_redis_restart(q):
    """Redis goes away under a worker and comes back empty: the worker
    reconnects and takes the jobs submitted afterwards."""
    w = q.worker("w1")
    first = q.submit("echo before")
    assert q.wait_finished([first])[first]["stdout"] == "before\n"
    q.redis.restart()
    q.r = q.redis.r
    after = q.submit("echo after")
    assert q.wait_finished([after])[after]["stdout"] == "after\n"
    assert q.job(after)["worker"] == "w1" and w.proc.poll() is None
    assert "hull: warning: queue worker w1: redis" in w.output()  # it noticed


def test_claim_lost_with_the_connection_is_taken_back(q):
    """A job in a live worker's processing list that no runner holds (the
    claim's reply was lost with the connection): after reconnecting, the
    worker puts it back and runs it."""
    w = q.worker("w1")
    assert wait_until(lambda: "w1" in q.r("SMEMBERS", f"{P}workers"))
    job = uuid.uuid4().hex
    q.r("HSET", f"{P}job:{job}", "request", json.dumps(q.request("echo recovered")),
        "state", "queued", "attempts", 0)
    q.r("LPUSH", f"{P}processing:w1", job)  # as BLMOVE moves it, with the reply lost
    q.r("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert q.wait_finished([job])[job]["stdout"] == "recovered\n"
    assert "released after reconnecting" in w.output()
    assert q.job(job)["attempts"] == "1" and q.processing("w1") == []


def test_cancel_takes_a_waiting_job_out_and_stops_a_running_one(q):
    """hull_queue_cancel (hulld's DELETE of a queued run): a job no worker
    has taken never runs; one already running is not taken back but
    stopped: its worker kills it at its next heartbeat (verdict killed),
    and its runner lives on for the next job."""
    waiting = q.submit("echo never")
    assert queuetool("cancel", q.url, waiting).stdout == "cancelled\n"
    assert q.job(waiting)["state"] == "cancelled" and q.r("LLEN", f"{P}jobs") == 0
    cp = queuetool("result", q.url, waiting, check=False)
    assert cp.returncode == 1 and "cancelled before it ran" in cp.stderr
    w = q.worker("w1")
    running = q.submit("sleep 600; echo ran")
    assert wait_until(lambda: q.job(running)["state"] == "running")
    assert queuetool("cancel", q.url, running).stdout == "too late\n"
    assert q.job(running)["stop"] == "1"
    res = q.wait_finished([running])[running]
    assert res["verdict"] == "killed" and "ran" not in res["stdout"], res
    assert "asked to stop" in w.output()
    assert q.job(waiting)["attempts"] == "0" and len(w.runners()) == 1
    # The next job runs on the same runner, unharmed by the cancel.
    after = q.submit("echo after")
    assert q.wait_finished([after])[after]["stdout"] == "after\n"


def test_a_stopped_job_of_a_dead_worker_is_not_run_again(q):
    """A job asked to stop whose worker died before it could is settled as
    cancelled by the reaper, not requeued."""
    job = uuid.uuid4().hex
    q.r("HSET", f"{P}job:{job}", "request", json.dumps(q.request("echo again")),
        "state", "running", "attempts", 1, "stop", "1")
    q.r("SADD", f"{P}workers", "gone")
    q.r("LPUSH", f"{P}processing:gone", job)
    w = q.worker("w1")
    assert wait_until(lambda: q.job(job)["state"] == "cancelled", 60), q.job(job)
    assert q.r("LLEN", f"{P}jobs") == 0 and q.processing("gone") == []
    w.stop()


def test_worker_refuses_bad_options_and_unreachable_redis(q):
    cases = [(["--redis", "http://x"], "must start with redis://"),
             (["--redis", "redis://127.0.0.1:1"], "redis://127.0.0.1:1"),
             (["--redis", q.url, "--concurrency", "100000"], "concurrency")]
    for args, msg in cases:
        cp = subprocess.run([HULLD, "--worker", *args], capture_output=True, text=True,
                            timeout=60)
        assert cp.returncode != 0 and msg in cp.stderr, (args, cp.stderr)
    assert q.r("SMEMBERS", f"{P}workers") == []
