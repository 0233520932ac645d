#!/usr/bin/python3
"""hulld under load, against the library call it wraps (issue 7).

Starts its own hulld (tmp socket and state dir, loopback only) and measures,
all in one run:

  lib     hull_sandbox_run of `true` in a loop in one process (the floor)
  cli     `hull sandbox run --json -- true` (a process per run)
  api c=1 POST /v1/runs {"cmd": ["true"]} from 1 client, then 8 and 32
          concurrent clients: runs/s, p50/p99 latency, 429s

and prints the latency the API adds at p50/p99 over the library call (goal,
issue 13: under 0.5 ms at p50), beside the HTTP floor (GET /healthz from the
same client: what any request costs before hulld does any work). Bounded:
RUNS requests per level (default 200), each client stops after its share;
nothing but the unix socket is used.

    bench/api_load.py            # RUNS=200 LEVELS="1 8 32"
    QUICK=1 bench/api_load.py    # RUNS=60 LEVELS=1: about a minute
    BENCH_JSON=FILE ...          # rows through bench/benchjson.py

Rows (BENCH_JSON): the API's share per request at p50 with 1 client (goal
< 0.5 ms; the row's ratio is that figure itself), and the runs/s of 1
client against the library loop's (reported).
"""
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))
HULLD = os.environ.get("HULLD", str(SRC / "build" / "hulld"))
QUICK = os.environ.get("QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("RUNS", "60" if QUICK else "200"))
LEVELS = [int(x) for x in os.environ.get("LEVELS", "1" if QUICK else "1 8 32").split()]
GOAL_MS = 0.5
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchjson  # noqa: E402


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("hulld", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self.path)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lib_floor(tmp, n):
    # The Makefile knows which libraries libhull needs.
    exe = SRC / "build" / "bench" / "sandbox_lib_loop"
    subprocess.run(["make", "-s", "build/bench/sandbox_lib_loop"], cwd=SRC, check=True)
    out = subprocess.run([str(exe), str(n)], capture_output=True, text=True, check=True).stdout
    return [int(x) / 1000.0 for x in out.split()]


def cli_floor(n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([HULL, "sandbox", "run", "--json", "--", "true"], check=True,
                       capture_output=True)
        ts.append((time.perf_counter() - t) * 1000)
    return ts


def cpu_ms(pid):
    """utime + stime of a process, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def load(sock, token, clients, total, fresh=False):
    """Latencies of the 200s, the API's share of each (end to end minus the
    library call's time, from the Server-Timing header), status counts.
    fresh: a new connection per request (what a client without keep-alive
    pays: hulld starts a thread per connection)."""
    lat, added, codes, lock = [], [], {}, threading.Lock()
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    body = json.dumps({"cmd": ["true"]})
    hdr = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client(n):
        c = Conn(sock)
        for _ in range(n):
            t = time.perf_counter()
            if fresh:
                c.close()
                c = Conn(sock)
            c.request("POST", "/v1/runs", body, hdr)
            r = c.getresponse()
            data = r.read()
            dt = (time.perf_counter() - t) * 1000
            with lock:
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status == 200:
                    assert json.loads(data)["verdict"] == "ok", data
                    lat.append(dt)
                    run = float(r.getheader("Server-Timing").split("dur=")[1])
                    added.append(dt - run)
        c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in per]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, added, codes, time.perf_counter() - t0


def http_floor(sock, n):
    """GET /healthz from one client: the HTTP round trip alone, in ms."""
    c, ts = Conn(sock), []
    for _ in range(n):
        t = time.perf_counter()
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        ts.append((time.perf_counter() - t) * 1000)
    c.close()
    return ts


def main():
    if os.geteuid() != 0:
        sys.exit("api_load: run as root")
    tmp = Path(tempfile.mkdtemp(prefix="hull-api-bench-"))
    proc = None
    try:
        state, sock = tmp / "state", str(tmp / "hulld.sock")
        state.mkdir()
        token = subprocess.run([HULL, "token", "create", "--state-dir", str(state)],
                               capture_output=True, text=True, check=True).stdout.split()[-1]
        proc = subprocess.Popen([HULLD, "--socket", sock, "--state-dir", str(state),
                                 "--queue-depth", "256", "--tenant-runs", "1000"],
                                stderr=subprocess.DEVNULL)
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        n = max(30, RUNS // 2)
        lib = lib_floor(tmp, n)
        cli = cli_floor(n)
        load(sock, token, 1, 20)  # warm the workers
        print(f"machine: {os.cpu_count()} CPUs; hulld run slots: default (2 per CPU)")
        # "rest": end to end minus the library call's own time: the API's
        # work, plus (with more clients than run slots) waiting in the queue.
        print(f"{'what':<22}{'runs/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'429s':>7}"
              f"{'rest p50':>9}{'rest p99':>9}")
        print(f"{'library call':<22}{1000 / statistics.mean(lib):>9.0f}{pct(lib, 50):>9.2f}"
              f"{pct(lib, 99):>9.2f}{'-':>7}")
        print(f"{'hull sandbox run':<22}{1000 / statistics.mean(cli):>9.0f}{pct(cli, 50):>9.2f}"
              f"{pct(cli, 99):>9.2f}{'-':>7}")
        one = None
        for c in LEVELS:
            cpu0 = cpu_ms(proc.pid)
            lat, added, codes, secs = load(sock, token, c, RUNS)
            main_cpu = (cpu_ms(proc.pid) - cpu0) / max(1, sum(codes.values()))
            ok = codes.get(200, 0)
            print(f"{f'api, {c} concurrent':<22}{ok / secs:>9.0f}{pct(lat, 50):>9.2f}"
                  f"{pct(lat, 99):>9.2f}{codes.get(429, 0):>7}{pct(added, 50):>9.2f}"
                  f"{pct(added, 99):>9.2f}")
            bad = {k: v for k, v in codes.items() if k not in (200, 429)}
            if bad:
                print(f"  unexpected statuses: {bad}")
            if c == 1:
                one = (lat, added, ok / secs)
                print(f"  hulld main process CPU per request (HTTP, auth, JSON, store): "
                      f"{main_cpu:.2f} ms")
        fresh = None
        if 1 in LEVELS:
            lat_f, added_f, codes_f, _ = load(sock, token, 1, max(30, RUNS // 2), fresh=True)
            fresh = pct(added_f, 50)
            print(f"{'api, 1, no keep-alive':<22}{'':>9}{pct(lat_f, 50):>9.2f}{pct(lat_f, 99):>9.2f}"
                  f"{codes_f.get(429, 0):>7}{fresh:>9.2f}{pct(added_f, 99):>9.2f}"
                  f"   (a new connection per request)")
        floor = http_floor(sock, 200)
        print(f"HTTP floor (GET /healthz, same client): {pct(floor, 50):.2f} ms p50, "
              f"{pct(floor, 99):.2f} ms p99")
        if one:
            lat, added, api_rate = one
            share = pct(added, 50)
            print(f"API's share per request, 1 client (end to end minus the library call in the "
                  f"worker): {share:.2f} ms p50, {pct(added, 99):.2f} ms p99 "
                  f"(goal < {GOAL_MS} ms at p50: {'met' if share < GOAL_MS else 'NOT met'})")
            print(f"1 client, end to end vs the library loop: {pct(lat, 50) - pct(lib, 50):+.2f} ms"
                  f" p50; vs `hull sandbox run`: {pct(lat, 50) - pct(cli, 50):+.2f} ms p50 "
                  f"(separate loops: machine noise included)")
            benchjson.row("api_load", "hulld API's own share per request, p50, 1 client",
                          hull=round(share, 3), unit="ms", ratio=share, goal=f"< {GOAL_MS}",
                          note=f"ratio is the share in ms itself (an absolute goal); HTTP floor "
                               f"(GET /healthz) {pct(floor, 50):.2f} ms p50")
            if fresh is not None:
                benchjson.row("api_load", "hulld API's share, p50, 1 client, a connection per "
                              "request", hull=round(fresh, 3), peer=round(share, 3),
                              peer_name="keep-alive", unit="ms",
                              note="what a client without keep-alive pays: hulld starts a "
                                   "thread per connection (reported)")
            lib_rate = 1000 / statistics.mean(lib)
            benchjson.row("api_load", "POST /v1/runs runs/s, 1 client", hull=round(api_rate, 1),
                          peer=round(lib_rate, 1), peer_name="hull_sandbox_run loop",
                          unit="runs/s", note="ratio: API / library loop (higher is better)")
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
