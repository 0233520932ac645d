#!/usr/bin/python3
"""Create-from-template against create-from-scratch, to first exec output
(issue 14).

Starts its own hulld (tmp socket and state dir) and measures, rounds
interleaved, medians, all in one run:

  scratch   POST /v1/sandboxes, then the preparation commands (a copy of
            three packages of Python's standard library byte-compiled, 8 MiB
            of data hashed: what a notebook or agent back end does before a
            user's first command), then a streamed exec of `cat
            /tmp/app/marker`: time from the create request to its first
            stdout line
  template  POST /v1/sandboxes {"template": "app"} (the same files, kept
            once from a sandbox prepared by the same commands), then the
            same streamed exec: the same span
  empty     POST /v1/sandboxes, then the same exec (no preparation): what
            a sandbox costs at all, for reference

and the machine's floor (fork+exec of /bin/true) in the same run. The ratio
is template / scratch. MicroVM sandboxes under hulld are not in this
branch: that row is skipped with the reason.

    bench/template_start.py              # ROUNDS=5
    BENCH_JSON=FILE bench/template_start.py
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
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
HULL = os.environ.get("HULL", str(SRC / "build" / "hull"))
HULLD = os.environ.get("HULLD", str(Path(HULL).resolve().parent / "hulld"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchjson  # noqa: E402

LIMITS = {"tmp_size": "256M", "memory": "512M"}
PREPARE = r"""
set -e
lib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir -p /tmp/app
cp -r "$lib/json" "$lib/email" "$lib/http" /tmp/app/
python3 -m compileall -q /tmp/app >/dev/null
python3 -c 'import random, sys; random.seed(14); sys.stdout.buffer.write(random.randbytes(8 << 20))' > /tmp/app/blob
sha256sum /tmp/app/blob > /tmp/app/marker
"""


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("hulld", timeout=300)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300)
        self.sock.connect(self.path)


class Api:
    def __init__(self, sock, token):
        self.sock, self.token = sock, token

    def call(self, method, path, body=None, want=(200, 201)):
        c = Conn(self.sock)
        try:
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={"Authorization": f"Bearer {self.token}",
                               "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        if r.status not in want:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def first_line(self, sid, cmd):
        """A streamed exec: the first stdout chunk, then the rest read off."""
        c = Conn(self.sock)
        try:
            c.request("POST", f"/v1/sandboxes/{sid}/exec", body=json.dumps({"cmd": cmd}),
                      headers={"Authorization": f"Bearer {self.token}",
                               "Content-Type": "application/json",
                               "Accept": "application/x-ndjson"})
            r = c.getresponse()
            if r.status != 200:
                raise RuntimeError(f"exec: {r.status} {r.read()[:300]!r}")
            first = None
            for line in r:
                ev = json.loads(line)
                if ev["type"] == "stdout" and first is None:
                    first = ev["data"]
                if ev["type"] == "result":
                    if ev["result"]["exit_code"] != 0:
                        raise RuntimeError(f"exec: {ev['result']}")
                    break
            return first
        finally:
            c.close()


def floor(n=50):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def one(api, kind, marker):
    t = time.perf_counter()
    body = {"template": "app"} if kind == "template" else {"limits": LIMITS}
    sid = api.call("POST", "/v1/sandboxes", body)["id"]
    try:
        if kind == "scratch":
            api.first_line(sid, ["sh", "-c", PREPARE + "echo prepared"])
        got = api.first_line(sid, ["sh", "-c", "cat /tmp/app/marker 2>/dev/null || echo none"])
        ms = (time.perf_counter() - t) * 1000
        if kind != "empty" and got != marker:
            raise RuntimeError(f"{kind}: the first output is {got!r}, not {marker!r}")
        return ms
    finally:
        api.call("DELETE", f"/v1/sandboxes/{sid}")


def main():
    if os.geteuid() != 0:
        sys.exit("template_start.py: needs root")
    tmp = Path(tempfile.mkdtemp(prefix="hull-bench-tpl-"))
    state, sock = tmp / "state", str(tmp / "hulld.sock")
    state.mkdir()
    token = subprocess.run([HULL, "token", "create", "--state-dir", str(state), "--role", "user",
                            "--tenant", "bench"], capture_output=True, text=True,
                           check=True).stdout.split()[-1]
    log = open(tmp / "hulld.log", "wb")
    d = subprocess.Popen([HULLD, "--socket", sock, "--state-dir", str(state)], stdout=log,
                         stderr=log, stdin=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        api = Api(sock, token)
        # The template: a sandbox prepared by the same commands, kept once.
        src = api.call("POST", "/v1/sandboxes", {"limits": LIMITS})["id"]
        t = time.perf_counter()
        api.first_line(src, ["sh", "-c", PREPARE + "echo prepared"])
        prep_ms = (time.perf_counter() - t) * 1000
        marker = api.first_line(src, ["cat", "/tmp/app/marker"])
        t = time.perf_counter()
        tpl = api.call("POST", "/v1/templates", {"sandbox": src, "name": "app"})
        keep_ms = (time.perf_counter() - t) * 1000
        api.call("DELETE", f"/v1/sandboxes/{src}")
        print(f"template: {tpl['files']} files, {tpl['bytes'] / 1048576:.1f} MiB; preparing "
              f"took {prep_ms:.0f} ms, keeping it {keep_ms:.0f} ms")
        times = {"scratch": [], "template": [], "empty": []}
        fl = []
        for i in range(ROUNDS):
            fl.append(floor(20))
            order = list(times)
            order = order[i % 3:] + order[:i % 3]
            for kind in order:
                times[kind].append(one(api, kind, marker))
        med = {k: statistics.median(v) for k, v in times.items()}
        fmed = statistics.median(fl)
        print(f"floor (fork+exec /bin/true): {fmed:.2f} ms; {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.2f}; {ROUNDS} rounds, medians")
        for k in times:
            print(f"  {k:9s} create -> first exec output: {med[k]:8.1f} ms  "
                  f"(min {min(times[k]):.1f}, max {max(times[k]):.1f})")
        ratio = med["template"] / med["scratch"]
        print(f"  template / scratch: {ratio:.3f}  ({med['scratch'] / med['template']:.1f}x "
              f"faster); template / empty: {med['template'] / med['empty']:.2f}")
        print("  microvm: skipped (long-lived microVM sandboxes are not in this hulld)")
        benchjson.row("template_start", "container: create from template -> first exec output",
                      hull=round(med["template"], 2), peer=round(med["scratch"], 2),
                      peer_name="from scratch (same files by commands)", unit="ms",
                      note=f"empty sandbox {med['empty']:.1f} ms; floor {fmed:.2f} ms")
        api.call("DELETE", "/v1/templates/app")
    finally:
        d.terminate()
        try:
            d.wait(timeout=120)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
