"""Density and pause/resume latency of OCI runtimes, one after the other in
one run (driven by bench/create500.sh, which prepares the bundle and the
cgroup view).

For each runtime: create + start N detached containers whose init sleeps
(the way podman and containerd do it: `create`, then `start`), time it,
read MemAvailable before and after to get host memory per container, then
time `pause` and `resume` on a sample of them, then kill and delete all.

    python3 create500.py --bundle B --work DIR [--n 500] [--sample 50] NAME=RUNTIME...
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


class Runtime:
    def __init__(self, name, path, root):
        self.name, self.path, self.root = name, path, root

    def __call__(self, *args):
        """Run one verb; returns (seconds, exit status). stderr goes to a
        file, not a pipe: a detached container's init inherits the runtime's
        stdio and would hold a pipe open for its whole life."""
        with open(self.root + ".err", "w") as err:
            t = time.perf_counter()
            r = subprocess.run([self.path, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err)
            return time.perf_counter() - t, r.returncode

    def error(self):
        """The last line the last verb printed on stderr."""
        with open(self.root + ".err", errors="replace") as f:
            lines = f.read().strip().splitlines()
        return lines[-1] if lines else "(no message)"

    def state(self, cid):
        r = subprocess.run([self.path, "--root", self.root, "state", cid], capture_output=True, text=True)
        return json.loads(r.stdout).get("status") if r.returncode == 0 else None


def bench(rt, bundle, n, sample, tag):
    ids = [f"{tag}-{rt.name}-{i}" for i in range(n)]
    made = []
    out = {"runtime": rt.name}
    try:
        time.sleep(1)  # let the previous runtime's teardown settle
        before = mem_available_kib()
        t0 = time.perf_counter()
        for cid in ids:
            _, rc = rt("create", "--bundle", bundle, cid)
            if rc != 0:
                out["error"] = f"create {cid}: {rt.error()}"
                return out
            made.append(cid)
            _, rc = rt("start", cid)
            if rc != 0:
                out["error"] = f"start {cid}: {rt.error()}"
                return out
        elapsed = time.perf_counter() - t0
        time.sleep(1)  # inits settle into their sleep
        after = mem_available_kib()
        running = sum(1 for cid in ids[:: max(1, n // 20)] if rt.state(cid) == "running")
        out.update(create_start_s=elapsed, per_container_ms=elapsed / n * 1000,
                   mem_per_container_kib=(before - after) / n, sampled_running=running)

        pause, resume = [], []
        for cid in ids[:sample]:
            dt, rc = rt("pause", cid)
            if rc != 0:
                out["pause_error"] = rt.error()
                break
            if rt.state(cid) != "paused":
                out["pause_error"] = f"state after pause is {rt.state(cid)!r}"
                break
            pause.append(dt)
            dt, rc = rt("resume", cid)
            if rc != 0:
                out["pause_error"] = "resume: " + rt.error()
                break
            resume.append(dt)
        if pause and resume:
            out.update(pause_ms=statistics.median(pause) * 1000, resume_ms=statistics.median(resume) * 1000)
    finally:
        t0 = time.perf_counter()
        for cid in made:
            rt("kill", cid, "KILL")
        for cid in made:
            rt("delete", "--force", cid)
        if made:
            out["teardown_per_container_ms"] = (time.perf_counter() - t0) / len(made) * 1000
    return out


def report(results, n):
    print(f"\n{n} detached containers (create + start, init sleeps), then pause+resume on a sample:")
    hdr = f"  {'runtime':8s} {'ms/container':>13s} {'total s':>8s} {'KiB/container':>14s} " \
          f"{'pause ms':>9s} {'resume ms':>10s} {'teardown ms':>12s}"
    print(hdr)
    for r in results:
        if "error" in r:
            print(f"  {r['runtime']:8s} failed: {r['error']}")
            continue

        def f(k, fmt):
            return format(r[k], fmt) if k in r else "-"

        print(f"  {r['runtime']:8s} {f('per_container_ms', '13.2f')} {f('create_start_s', '8.2f')} "
              f"{f('mem_per_container_kib', '14.0f')} {f('pause_ms', '9.2f')} {f('resume_ms', '10.2f')} "
              f"{f('teardown_per_container_ms', '12.2f')}")
        if "pause_error" in r:
            print(f"  {'':8s} pause/resume failed: {r['pause_error']}")
    by = {r["runtime"]: r for r in results if "error" not in r}
    if "hull" in by and "crun" in by:
        h, c = by["hull"], by["crun"]
        print("goals (hull <= crun):")
        for k, what in (("per_container_ms", "time per container"), ("mem_per_container_kib", "memory per container"),
                        ("pause_ms", "pause latency"), ("resume_ms", "resume latency")):
            if k in h and k in c:
                verdict = "MET" if h[k] <= c[k] else "NOT MET"
                print(f"  {what:22s} hull/crun = {h[k] / c[k]:.2f}  {verdict}")
    print("MemAvailable is host-wide: other activity on the machine adds noise to the memory column.")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sample", type=int, default=50)
    p.add_argument("--tag", default="hb")
    p.add_argument("runtimes", nargs="+", help="NAME=PATH")
    a = p.parse_args()
    results = []
    for spec in a.runtimes:
        name, _, path = spec.partition("=")
        rt = Runtime(name, path, f"{a.work}/root-{name}")
        print(f"{name}: creating {a.n} containers...", file=sys.stderr)
        results.append(bench(rt, a.bundle, a.n, min(a.sample, a.n), a.tag))
    report(results, a.n)


if __name__ == "__main__":
    main()
