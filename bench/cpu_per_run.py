#!/usr/bin/python3
"""CPU time (task-clock) and wall time per run of each command, rounds interleaved.

    cpu_per_run.py RUNS NAME CMD [NAME CMD ...]   (CMD is one string, split on spaces)

Runs the commands in turn, RUNS rounds, stdin /dev/null, output discarded,
and prints one JSON object: {NAME: {"cpu_ms": ..., "wall_ms": ..., "how": ...}}
with the mean CPU per run, and the mean and median wall time of a second,
perf-free pass ("wall_ms", "wall_median_ms"): rounds interleaved, so that
on a shared machine a busy spell hits every command alike. With perf installed the CPU is `perf stat -e
task-clock` of each run: every process and thread the command started,
whoever reaps them. Without perf it is the children's rusage (user +
system), which only counts processes reaped by their parent: a runtime
whose pid 1 is reaped by nobody it waits for (bwrap's) is undercounted, so
the output says which was used. Work the kernel does later in its own
threads (a network namespace's teardown) is in neither.
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def perf_task_clock(cmd):
    """task-clock of one run in seconds, or None when perf cannot count."""
    r = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "--", *cmd.split()],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=False)
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2].startswith("task-clock"):
            try:
                return float(f[0]) / 1000  # msec
            except ValueError:
                return None
    return None


def main():
    runs = int(sys.argv[1])
    pairs = list(zip(sys.argv[2::2], sys.argv[3::2]))
    cpu = {n: 0.0 for n, _ in pairs}
    use_perf = shutil.which("perf") is not None and perf_task_clock("/bin/true") is not None
    for _ in range(runs):
        for name, cmd in pairs:  # interleaved: a noisy neighbour hits all alike
            if use_perf:
                cpu[name] += perf_task_clock(cmd) or 0.0
                continue
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd.split(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name] += (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    walls = {n: [] for n, _ in pairs}
    for _ in range(runs):
        for name, cmd in pairs:
            t0 = time.monotonic()
            subprocess.run(cmd.split(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            walls[name].append((time.monotonic() - t0) * 1000)
    how = "perf stat task-clock" if use_perf else "rusage of reaped children"
    json.dump({n: {"cpu_ms": cpu[n] * 1000 / runs, "wall_ms": statistics.mean(walls[n]),
                   "wall_median_ms": statistics.median(walls[n]), "how": how} for n in cpu},
              sys.stdout)
    print()


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    main()
