"""Helpers for the tests of `hull sandbox run` (integration, security, volume).

Every run goes through the real binary ($HULL). What a run leaves on the
host is found by the id hull gives it, sandbox-<hull pid>-..., so the checks
hold even while other sandboxes run on the same machine:

  - /run/hull/sandbox/<id>        a state directory (sessions; one-shot runs make none)
  - <cgroup mount>/hull/<id>      in every cgroup hierarchy (v1 and v2)
  - any host mount naming the id, or on the sandbox's empty root
  - processes: every workload gets HULL_TEST_TOKEN=<token> in its
    environment, inherited by all its descendants; none may survive.
"""
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))
STATE_ROOT = Path("/run/hull/sandbox")
EMPTY_ROOT = "/run/hull-empty"
UID_BASE = 1000000000      # container uid 0 on the host, of sandboxes writing host files
SANDBOX_UID = 1000         # the workload's uid inside
HOST_UID = UID_BASE + SANDBOX_UID
# Every other container-level sandbox has a block of 65536 host uids of its
# own, one of 4096 from here (docs/sandbox.md "Users").
BLOCKS_BASE = 1001000000
BLOCKS = 4096
ID_RANGE = 65536


def is_own_block(base):
    """Whether base starts one of the per-sandbox blocks."""
    return BLOCKS_BASE <= base < BLOCKS_BASE + BLOCKS * ID_RANGE and \
        (base - BLOCKS_BASE) % ID_RANGE == 0


def sandbox_uid_base(pid):
    """The host uid uid 0 of pid's user namespace is (its one uid_map line)."""
    fields = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert len(fields) == 3 and fields[0] == "0" and fields[2] == str(ID_RANGE), fields
    return int(fields[1])


def is_sandbox_uid(uid):
    """Any host uid a container-level sandbox's process may run as."""
    return UID_BASE <= uid < UID_BASE + ID_RANGE or \
        BLOCKS_BASE <= uid < BLOCKS_BASE + BLOCKS * ID_RANGE

RESULT_KEYS = {"verdict", "exit_code", "signal", "cpu_time_ms", "wall_time_ms", "max_memory_kb",
               "stdout_truncated", "stderr_truncated", "files", "isolation"}


def cgroup_mounts():
    """Mount points of every cgroup hierarchy, v1 and v2."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append(parts[4])
    return out


def cgroup_dirs(prefix):
    """Cgroup directories /hull/<prefix>* in every hierarchy."""
    found = []
    for m in cgroup_mounts():
        d = Path(m) / "hull"
        try:
            found += [str(d / n) for n in os.listdir(d) if n.startswith(prefix)]
        except OSError:
            pass
    return found


def state_dirs(prefix):
    try:
        return [n for n in os.listdir(STATE_ROOT) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def host_mounts(token):
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if token in mp or mp.startswith(EMPTY_ROOT):
                found.append(mp)
    return found


def pids_with_env(token):
    """Host pids whose environment holds token (workloads and descendants)."""
    needle = token.encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in ("Z", "X"):
            found.append(int(d))
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def status_fields(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def wait_until(pred, timeout=20.0, interval=0.02):
    """A hang guard for asynchronous state, never a speed assertion."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def _all_entries():
    return set(state_dirs("sandbox-")) | set(cgroup_dirs("sandbox-"))


# Left by runs before this session (another build, another tester): a pid
# of ours may match their ids, and they are not ours to judge.
PREEXISTING = _all_entries()
# The pid of every hull this test session started: the session's own runs.
RUN_PIDS = set()


class Run:
    """One finished `hull sandbox run`."""

    def __init__(self, pid, rc, out, err, as_json):
        self.pid = pid
        self.rc = rc
        self.stdout_bytes = out
        self.stdout = out.decode(errors="replace")
        self.stderr = err.decode(errors="replace")
        self.j = None
        if as_json and out.startswith(b"{"):
            self.j = json.loads(out)

    @property
    def verdict(self):
        return self.j["verdict"] if self.j else None

    @property
    def out(self):
        """The program's stdout, from the JSON."""
        return self.j.get("stdout", "")

    @property
    def err(self):
        return self.j.get("stderr", "")

    def __repr__(self):
        return f"<rc={self.rc} json={self.j} stdout={self.stdout[:2000]!r} stderr={self.stderr[:2000]!r}>"


# Limits for runs whose test is not about a limit: the defaults (2 s CPU,
# 10 s wall) are a policy for untrusted code, not a budget a test on a slow
# or loaded machine can count on.
GENEROUS = ["--cpu-time", "60s", "--wall-time", "120s"]


class Sandbox:
    """Runs `hull sandbox run` and checks that each run left nothing behind."""

    def __init__(self, binary=HULL):
        self.binary = binary
        self.token = "hulltest-" + uuid.uuid4().hex

    def argv(self, *opts, cmd, json_out=True, generous=True):
        """generous: CPU and wall limits ample for a machine 5x slower than
        a loaded dev box, placed before opts so that a test's own
        --cpu-time/--wall-time win. Only a test about the default limits
        themselves passes generous=False."""
        a = [self.binary, "sandbox", "run", "--env", f"HULL_TEST_TOKEN={self.token}"]
        if json_out:
            a.append("--json")
        if generous:
            a += GENEROUS
        return a + [str(o) for o in opts] + ["--"] + [str(c) for c in cmd]

    def start(self, *opts, cmd, json_out=True, stdin=subprocess.DEVNULL, generous=True):
        """A run in the background: (Popen, stdout file, stderr file)."""
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        p = subprocess.Popen(self.argv(*opts, cmd=cmd, json_out=json_out, generous=generous),
                             stdin=stdin, stdout=out, stderr=err)
        RUN_PIDS.add(p.pid)
        return p, out, err

    def finish(self, p, out, err, json_out=True, timeout=240, clean=True):
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("hull sandbox run hung")
        out.seek(0)
        err.seek(0)
        r = Run(p.pid, rc, out.read(), err.read(), json_out)
        out.close()
        err.close()
        if clean:
            self.assert_clean(p.pid)
        return r

    def __call__(self, *opts, cmd, json_out=True, input=None, stdin=None, timeout=240,
                 clean=True, generous=True):
        if input is not None:
            stdin = tempfile.TemporaryFile()
            stdin.write(input if isinstance(input, bytes) else input.encode())
            stdin.seek(0)
        p, out, err = self.start(*opts, cmd=cmd, json_out=json_out, generous=generous,
                                 stdin=stdin if stdin is not None else subprocess.DEVNULL)
        try:
            return self.finish(p, out, err, json_out=json_out, timeout=timeout, clean=clean)
        finally:
            if input is not None:
                stdin.close()

    def leftovers(self, hull_pid):
        prefix = f"sandbox-{hull_pid}-"
        left = {}
        states = [s for s in state_dirs(prefix) if s not in PREEXISTING]
        cgroups = [c for c in cgroup_dirs(prefix) if c not in PREEXISTING]
        if states:
            left["state"] = states
        if cgroups:
            left["cgroups"] = cgroups
        if host_mounts(prefix):
            left["mounts"] = host_mounts(prefix)
        if pids_with_env(self.token):
            left["processes"] = pids_with_env(self.token)
        return left

    def assert_clean(self, hull_pid):
        # hull has exited: nothing of its run may remain. The wait only
        # covers the kernel finishing the exits it already started.
        ok = wait_until(lambda: not self.leftovers(hull_pid), timeout=10)
        assert ok, f"run of hull pid {hull_pid} left {self.leftovers(hull_pid)}"

    def workload_pid(self, cmdline=None, timeout=20):
        """Host pid of a running workload: the first process with the token
        (and, when given, whose command line starts with cmdline)."""
        def find():
            return [p for p in pids_with_env(self.token)
                    if cmdline is None or _cmdline(p).startswith(cmdline)]
        pids = wait_until(find, timeout=timeout)
        assert pids, "workload never appeared"
        return min(pids)


def cancel(p):
    """Stop a background run the way a user does (SIGTERM to hull)."""
    p.send_signal(signal.SIGTERM)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

