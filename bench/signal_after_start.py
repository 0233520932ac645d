#!/usr/bin/env python3
"""A signal sent right after `start` returns: how often is it lost?

For each runtime, N times: create a busybox container whose program traps
USR1 (`trap ... USR1` in sh, then a sleep loop), start it, and at once
send USR1 -- through the runtime's own `kill` verb, and, separately, with
kill(2) straight from this process (no process start in between: the bare
window between `start` returning and the program's handler being set). The
program is its pid namespace's init, so a USR1 that arrives before its
handler is dropped by the kernel, and the container keeps running; a
container that stops within 2 s got it.

hull's `start` returns once the init has called execve (the exec.fifo it
holds open is close-on-exec), so what is left is the program's own start-up
before its `trap`; runc's `start` returns as soon as the fifo is read. A
runtime whose `kill` itself takes longer to start loses fewer signals for
that reason alone.

    bench/signal_after_start.py            # N=30 RUNTIMES="hull crun runc"

`HULL` (default build/hull), `CRUN`, `RUNC` name the binaries.
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "engines"))
import busybox  # noqa: E402

PROGRAM = ["sh", "-c", "trap 'exit 0' USR1; while :; do sleep 0.05; done"]


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def state(rt, root, c):
    r = subprocess.run([rt, "--root", root, "state", c], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"status": "gone"}


def one(rt, root, bundle, c, direct):
    q = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([rt, "--root", root, "create", "--bundle", bundle, c], check=True, **q)
    pid = state(rt, root, c)["pid"]
    subprocess.run([rt, "--root", root, "start", c], check=True, **q)
    if direct:
        os.kill(pid, signal.SIGUSR1)
    else:
        subprocess.run([rt, "--root", root, "kill", c, "USR1"], check=True, **q)
    end = time.monotonic() + 2
    got = False
    while time.monotonic() < end:
        reap()
        if state(rt, root, c)["status"] in ("stopped", "gone"):
            got = True
            break
        time.sleep(0.02)
    subprocess.run([rt, "--root", root, "delete", "--force", c], **q)
    reap()
    return got


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)  # subreaper: the detached inits become ours
    n = int(os.environ.get("N", "30"))
    names = os.environ.get("RUNTIMES", "hull crun runc").split()
    bins = {"hull": os.environ.get("HULL", os.path.join(HERE, "..", "build", "hull")),
            "crun": os.environ.get("CRUN", shutil.which("crun") or "crun"),
            "runc": os.environ.get("RUNC", shutil.which("runc") or "runc")}
    tmp = tempfile.mkdtemp(prefix="hull-bench-sig-")
    try:
        bundle = os.path.join(tmp, "bundle")
        busybox.make_bundle(bundle, PROGRAM, readonly=False)
        print(f"{n} runs each; lost = USR1 arrived before the program's trap")
        for name in names:
            rt = bins[name]
            root = os.path.join(tmp, f"state-{name}")
            try:
                one(rt, root, bundle, "probe", True)
            except (subprocess.CalledProcessError, FileNotFoundError, OSError) as e:
                print(f"{name:5} skipped: cannot run the bundle here ({e})")
                continue
            for direct in (False, True):
                lost = sum(not one(rt, root, bundle, f"s{i}", direct) for i in range(n))
                how = "kill(2) at once" if direct else f"`{name} kill`"
                print(f"{name:5} {how:18} lost {lost:3} of {n}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
