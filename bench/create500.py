"""Density and pause/resume latency of OCI runtimes, side by side in one run
(driven by bench/create500.sh, which prepares the bundle and the cgroup view).

For each runtime: create + start N detached containers whose init sleeps
(the way podman and containerd do it: `create`, then `start`), time it,
read MemAvailable before and after for the host memory per container, sum
what the containers' memory cgroups were charged, then time `pause` and
`resume` on a sample of them, then kill and delete all.

MemAvailable is host-wide, so the runtimes take turns over several rounds
after an untimed warm-up (which brings each runtime's binary and the bundle
into the page cache), and the report gives medians. On a machine shared with
other work the page cache makes MemAvailable swing by hundreds of KiB per
container, so the memory the containers pin is also given as the sum of the
/proc/meminfo fields that only live objects hold (anonymous pages, shmem,
unreclaimable slab, kernel stacks, page tables, per-cpu): "pinned KiB"; and,
unmoved by other work, what is charged to memory cgroups per container,
wherever the runtime left it (ChargeMeter): "charged KiB".

    python3 create500.py --bundle B --state DIR [--n 500] [--sample 50] [--rounds 3] NAME=RUNTIME...
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from engines import host  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchjson  # noqa: E402


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


PINNED = ("AnonPages", "Shmem", "SUnreclaim", "KernelStack", "PageTables", "Percpu")


def pinned_fields():
    """The PINNED fields of /proc/meminfo, in KiB."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in PINNED:
                out[key] = int(rest.split()[0])
    return out


def pinned_kib(fields=None):
    """What live processes and kernel objects hold (see the docstring):
    unlike MemAvailable it leaves out the page cache and reclaimable slab,
    which other work on the machine moves."""
    return sum((fields or pinned_fields()).values())


def cgroup_charge_kib(pid):
    """Memory charged to pid's memory cgroup (v1 usage_in_bytes, v2
    memory.current); None when the container has no memory cgroup of its
    own (it would be the charge of this whole benchmark)."""
    try:
        ctl = "memory" if "memory" in host.cgroup_hierarchies() else ""
        if host.proc_cgroups(pid)[ctl] == host.proc_cgroups(os.getpid())[ctl]:
            return None
        return int(host.cgroup_file(pid, ctl, "memory.usage_in_bytes" if ctl else "memory.current")) / 1024
    except (OSError, KeyError, ValueError):
        return None


class ChargeMeter:
    """Memory charged to memory cgroups, which other work on the machine does
    not move (unlike /proc/meminfo): the driver, and so every runtime it
    starts, runs in a memory cgroup of its own below the driver's, which
    collects what a runtime leaves charged outside its containers' cgroups
    (namespaces and mounts made before the init joined its cgroup, state
    files); each container's own cgroup holds the rest. Per container:
    (growth of the driver's cgroup) / N + the median container's charge.
    What the kernel charges to no cgroup at all is left out, for every
    runtime alike. Without a memory cgroup to make, dir is None and the
    figure is not given."""

    def __init__(self, tag):
        self.dir = self.home = None
        hier = host.cgroup_hierarchies()
        ctl = "memory" if "memory" in hier else ""
        if ctl not in hier:
            return
        self.usage = "memory.usage_in_bytes" if ctl else "memory.current"
        home = os.path.join(hier[ctl], host.proc_cgroups(os.getpid())[ctl].lstrip("/"))
        path = os.path.join(home, f"{tag}-runtimes")
        self.dir, self.home = path, home
        try:
            os.mkdir(path)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            self.read()
        except OSError as e:
            print(f"charged memory not measured: {path}: {e.strerror}", file=sys.stderr)
            self.close()

    def read(self):
        """KiB charged to the driver's cgroup now."""
        with open(os.path.join(self.dir, self.usage)) as f:
            return int(f.read()) / 1024

    def close(self):
        """Back into the driver's own cgroup; the runtimes' one removed."""
        if self.dir is None:
            return
        try:
            with open(os.path.join(self.home, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            if os.path.isdir(self.dir):
                os.rmdir(self.dir)
        except OSError as e:
            print(f"cannot remove {self.dir}: {e.strerror}", file=sys.stderr)
        self.dir = None


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
        """The first line the last verb printed on stderr (the message;
        what follows is usually a usage hint)."""
        with open(self.root + ".err", errors="replace") as f:
            lines = f.read().strip().splitlines()
        return lines[0] if lines else "(no message)"

    def state(self, cid):
        r = subprocess.run([self.path, "--root", self.root, "state", cid], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else {}


def create_all(rt, bundle, ids, made):
    """create + start every id, appending to made; an error string or None."""
    for cid in ids:
        _, rc = rt("create", "--bundle", bundle, cid)
        if rc != 0:
            return f"create {cid}: {rt.error()}"
        made.append(cid)
        _, rc = rt("start", cid)
        if rc != 0:
            return f"start {cid}: {rt.error()}"
    return None


def remove_all(rt, made):
    for cid in made:
        rt("kill", cid, "KILL")
    for cid in made:
        rt("delete", "--force", cid)


def pause_resume(rt, ids, out):
    """Median pause and resume latency over ids, checking the state between."""
    pause, resume = [], []
    for cid in ids:
        dt, rc = rt("pause", cid)
        if rc != 0 or rt.state(cid).get("status") != "paused":
            out["pause_error"] = rt.error() if rc else f"state after pause: {rt.state(cid).get('status')!r}"
            return
        pause.append(dt)
        dt, rc = rt("resume", cid)
        if rc != 0 or rt.state(cid).get("status") != "running":
            out["pause_error"] = "resume: " + (rt.error() if rc else f"state: {rt.state(cid).get('status')!r}")
            return
        resume.append(dt)
    if pause:
        out.update(pause_ms=statistics.median(pause) * 1000, resume_ms=statistics.median(resume) * 1000)


def settle(least_s=3.0, window_s=3.0, slack_kib=1024, most_s=60.0):
    """Wait for the previous round's teardown to finish in the kernel: a
    deleted container's network namespace, cgroups and their per-cpu data
    are freed by workqueues and RCU callbacks well after `delete` returned
    (here ~1.5 s after 200 deletes, tens of MiB at once). Measured while
    that runs, the next runtime's growth would be understated by what the
    previous one frees. Settled: pinned memory held within slack_kib over
    the last window_s seconds."""
    step = 0.5
    readings = []
    t0 = time.monotonic()
    while True:
        readings.append(pinned_kib())
        keep = int(window_s / step) + 1
        recent = readings[-keep:]
        waited = time.monotonic() - t0
        if waited >= least_s and len(recent) == keep and max(recent) - min(recent) <= slack_kib:
            return waited
        if waited >= most_s:
            print(f"pinned memory still moving after {most_s:.0f} s; measuring anyway", file=sys.stderr)
            return waited
        time.sleep(step)


def bench(rt, bundle, n, sample, tag, meter):
    ids = [f"{tag}-{rt.name}-{i}" for i in range(n)]
    made = []
    out = {"runtime": rt.name}
    try:
        settle()  # the previous runtime's teardown, finished in the kernel too
        fields_before = pinned_fields()
        before, pinned_before = mem_available_kib(), pinned_kib(fields_before)
        charged_before = meter.read() if meter.dir else None
        t0 = time.perf_counter()
        err = create_all(rt, bundle, ids, made)
        if err:
            out["error"] = err
            return out
        elapsed = time.perf_counter() - t0
        time.sleep(1)  # inits settle into their sleep
        fields_after = pinned_fields()
        after, pinned_after = mem_available_kib(), pinned_kib(fields_after)
        charged_after = meter.read() if meter.dir else None
        pids = [rt.state(cid).get("pid") for cid in ids[:: max(1, n // 20)]]
        charges = [c for c in (cgroup_charge_kib(p) for p in pids if p) if c is not None]
        out.update(per_container_ms=elapsed / n * 1000, mem_per_container_kib=(before - after) / n,
                   pinned_per_container_kib=(pinned_after - pinned_before) / n,
                   pinned_fields_kib={k: (fields_after[k] - fields_before[k]) / n for k in fields_after})
        if charges:
            out["cgroup_kib"] = statistics.median(charges)
            if charged_before is not None:
                out["charged_kib"] = (charged_after - charged_before) / n + out["cgroup_kib"]
        else:
            out["note"] = "containers are not in memory cgroups of their own"
        pause_resume(rt, ids[:sample], out)
    finally:
        t0 = time.perf_counter()
        remove_all(rt, made)
        if made:
            out["teardown_per_container_ms"] = (time.perf_counter() - t0) / len(made) * 1000
    return out


COLUMNS = (("per_container_ms", "ms/container", ".2f"), ("mem_per_container_kib", "host KiB/ctr", ".0f"),
           ("pinned_per_container_kib", "pinned KiB/ctr", ".0f"),
           ("charged_kib", "charged KiB/ctr", ".0f"), ("cgroup_kib", "cgroup KiB/ctr", ".0f"),
           ("pause_ms", "pause ms", ".2f"), ("resume_ms", "resume ms", ".2f"),
           ("teardown_per_container_ms", "teardown ms", ".2f"))


def median_of(rounds, key):
    vals = [r[key] for r in rounds if key in r]
    return statistics.median(vals) if vals else None


def report(by_runtime, n, rounds):
    print(f"\n{n} detached containers (create + start, init sleeps), pause+resume on a sample;"
          f" medians over {rounds} round(s):")
    print(f"  {'runtime':8s}" + "".join(f"{title:>16s}" for _, title, _ in COLUMNS))
    med = {}
    for name, results in by_runtime.items():
        errs = [r["error"] for r in results if "error" in r]
        if errs:
            print(f"  {name:8s} failed: {errs[0]}")
            continue
        med[name] = {k: median_of(results, k) for k, _, _ in COLUMNS}
        print(f"  {name:8s}" + "".join(f"{format(med[name][k], f) if med[name][k] is not None else '-':>16s}"
                                      for k, _, f in COLUMNS))
        notes = {r["note"] for r in results if "note" in r}
        for note in notes:
            print(f"  {'':8s} note: {note}")
        perrs = [r["pause_error"] for r in results if "pause_error" in r]
        if perrs:
            print(f"  {'':8s} pause/resume failed: {perrs[0]}")
        mem = [round(r["mem_per_container_kib"]) for r in results]
        pin = [round(r["pinned_per_container_kib"]) for r in results]
        chg = [round(r["charged_kib"]) for r in results if "charged_kib" in r]
        print(f"  {'':8s} host KiB/container per round: {mem}; pinned: {pin}; charged: {chg}")
        parts = {k: round(statistics.median(r["pinned_fields_kib"][k] for r in results))
                 for k in PINNED if all(k in r.get("pinned_fields_kib", {}) for r in results)}
        print(f"  {'':8s} pinned by field (median KiB/container): "
              + ", ".join(f"{k} {v}" for k, v in parts.items()))
    if "hull" in med and "crun" in med:
        caveat = any("note" in r for r in by_runtime["hull"])
        print("goals (hull <= crun):" + ("  NOT COMPARABLE YET: hull's containers got no cgroups, crun's did"
                                          if caveat else ""))
        for k, what in (("per_container_ms", "time per container"), ("mem_per_container_kib", "host memory"),
                        ("pinned_per_container_kib", "pinned memory"),
                        ("charged_kib", "charged memory"),
                        ("pause_ms", "pause latency"), ("resume_ms", "resume latency")):
            h, c = med["hull"][k], med["crun"][k]
            if h is not None and c and k in MEMORY and min(h, c) <= 0:
                print(f"  {what:20s} not measured: the host's memory fell during a round"
                      " (other work freed more than the containers took); run again")
            elif h is not None and c:
                print(f"  {what:20s} hull/crun = {h / c:.2f}  {'MET' if h <= c else 'NOT MET'}")
    print("host KiB = MemAvailable drop / N (host-wide, noisy on a shared machine); pinned KiB ="
          " growth of anon+shmem+unreclaimable slab+stacks+page tables+percpu / N;"
          " charged KiB = charged to memory cgroups per container, the runtime's leftovers included"
          " (not moved by other work on the machine); cgroup KiB = charged to one container's"
          " memory cgroup.")
    return med


# Host-wide: another process freeing memory during a round can make a
# runtime's figure zero or negative, which is no measurement at all.
MEMORY = ("mem_per_container_kib", "pinned_per_container_kib", "charged_kib")

ROWS = (("per_container_ms", "create+start per container", "ms", "<= 1.0"),
        ("mem_per_container_kib", "host memory per idle container (MemAvailable)", "KiB", "<= 1.0"),
        ("pinned_per_container_kib", "host memory per idle container (pinned)", "KiB", "<= 1.0"),
        ("charged_kib", "host memory per idle container (charged to memory cgroups)", "KiB", "<= 1.0"),
        ("cgroup_kib", "memory charged to the container's cgroup", "KiB", ""),
        ("pause_ms", "pause latency", "ms", ""),
        ("resume_ms", "resume latency", "ms", ""))


def json_rows(med, n, rounds):
    """One benchjson row per measure, hull against crun."""
    if "hull" not in med:
        return
    note = f"{n} containers, median of {rounds} round(s)"
    for key, path, unit, goal in ROWS:
        h, c = med["hull"].get(key), med.get("crun", {}).get(key)
        if h is None:
            continue
        why = note
        if key in MEMORY and c is not None and min(h, c) <= 0:
            # No ratio, so no verdict: the row says why instead.
            why = f"{note}; not measured (crun {c:.0f}): host memory fell during a round, run again"
            c = None
        benchjson.row("create500", path, hull=round(h, 2), peer=None if c is None else round(c, 2),
                      peer_name="crun", unit=unit, goal=goal, note=why)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--state", required=True, help="directory for the runtimes' state roots")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sample", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--tag", default="hb")
    p.add_argument("runtimes", nargs="+", help="NAME=PATH")
    a = p.parse_args()
    rts = []
    for spec in a.runtimes:
        name, _, path = spec.partition("=")
        rts.append(Runtime(name, path, f"{a.state}/root-{name}"))
    meter = ChargeMeter(a.tag)
    try:
        for rt in rts:
            made = []
            try:
                create_all(rt, a.bundle, [f"{a.tag}-warm-{rt.name}-{i}" for i in range(a.warmup)], made)
            finally:
                remove_all(rt, made)
        by_runtime = {rt.name: [] for rt in rts}
        for r in range(a.rounds):
            # Alternate the order so no runtime always goes first.
            for rt in rts if r % 2 == 0 else reversed(rts):
                print(f"round {r + 1}/{a.rounds}: {rt.name}: {a.n} containers...", file=sys.stderr)
                by_runtime[rt.name].append(bench(rt, a.bundle, a.n, min(a.sample, a.n), a.tag, meter))
    finally:
        meter.close()
    json_rows(report(by_runtime, a.n, a.rounds), a.n, a.rounds)


if __name__ == "__main__":
    main()
