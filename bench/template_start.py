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
is template / scratch. Then the same three for microVM sandboxes
({"isolation": "microvm"}: the template is the prepared VM's snapshot, a
sandbox from it a restore of it), VM_ROUNDS rounds (the accelerator is
hulld's: KVM when usable, else TCG, or $HULL_VM_ACCEL); skipped with the
reason when QEMU is missing or VM_ROUNDS=0. Run it under the VM lock too
(the VM tests are host-wide).

    bench/template_start.py              # ROUNDS=5 VM_ROUNDS=3
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
VM_ROUNDS = int(os.environ.get("VM_ROUNDS", "3"))
QEMU = "/usr/bin/qemu-system-x86_64"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchjson  # noqa: E402

LIMITS = {"tmp_size": "256M", "memory": "512M"}
# Each exec's own (the default 2 s of CPU is too little for PREPARE in a
# TCG guest); bounds only, they cost nothing.
EXEC_LIMITS = {"cpu_time": "300s", "wall_time": "600s"}
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
            c.request("POST", f"/v1/sandboxes/{sid}/exec",
                      body=json.dumps({"cmd": cmd, "limits": EXEC_LIMITS}),
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


def one(api, kind, body, marker):
    t = time.perf_counter()
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


def keep(api, body, name):
    """A sandbox prepared by PREPARE kept as template name: its marker."""
    src = api.call("POST", "/v1/sandboxes", body)["id"]
    t = time.perf_counter()
    api.first_line(src, ["sh", "-c", PREPARE + "echo prepared"])
    prep_ms = (time.perf_counter() - t) * 1000
    marker = api.first_line(src, ["cat", "/tmp/app/marker"])
    t = time.perf_counter()
    tpl = api.call("POST", "/v1/templates", {"sandbox": src, "name": name})
    keep_ms = (time.perf_counter() - t) * 1000
    api.call("DELETE", f"/v1/sandboxes/{src}")
    print(f"template {name} ({tpl['isolation']}): {tpl['files']} files, "
          f"{tpl['bytes'] / 1048576:.1f} MiB; preparing took {prep_ms:.0f} ms, keeping it "
          f"{keep_ms:.0f} ms")
    return marker


def measure(api, bodies, marker, rounds, fl):
    """Rounds interleaved (each starts with another kind); medians."""
    times = {k: [] for k in bodies}
    for i in range(rounds):
        fl.append(floor(20))
        order = list(times)
        order = order[i % 3:] + order[:i % 3]
        for kind in order:
            times[kind].append(one(api, kind, bodies[kind], marker))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in times:
        print(f"  {k:9s} create -> first exec output: {med[k]:8.1f} ms  "
              f"(min {min(times[k]):.1f}, max {max(times[k]):.1f})")
    print(f"  template / scratch: {med['template'] / med['scratch']:.3f}  "
          f"({med['scratch'] / med['template']:.1f}x faster); template / empty: "
          f"{med['template'] / med['empty']:.2f}")
    return med


def microvm(api, fl):
    if VM_ROUNDS <= 0 or not os.access(QEMU, os.X_OK):
        why = "VM_ROUNDS=0" if VM_ROUNDS <= 0 else f"no {QEMU}"
        print(f"microvm: skipped ({why})")
        return
    accel = os.environ.get("HULL_VM_ACCEL") or (
        "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg")
    vm = {"isolation": "microvm"}
    marker = keep(api, vm, "vmapp")
    print(f"microvm ({accel}), {VM_ROUNDS} rounds, medians:")
    med = measure(api, {"scratch": vm, "template": {"template": "vmapp"}, "empty": vm}, marker,
                  VM_ROUNDS, fl)
    benchjson.row("template_start",
                  f"microvm ({accel}): create from template -> first exec output",
                  hull=round(med["template"], 2), peer=round(med["scratch"], 2),
                  peer_name="from scratch (same files by commands)", unit="ms",
                  note=f"empty microVM sandbox {med['empty']:.1f} ms")
    api.call("DELETE", "/v1/templates/vmapp")


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
        marker = keep(api, {"limits": LIMITS}, "app")
        fl = []
        print("container, medians:")
        bodies = {"scratch": {"limits": LIMITS}, "template": {"template": "app"},
                  "empty": {"limits": LIMITS}}
        med = measure(api, bodies, marker, ROUNDS, fl)
        fmed = statistics.median(fl)
        print(f"floor (fork+exec /bin/true): {fmed:.2f} ms; {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.2f}; {ROUNDS} rounds")
        benchjson.row("template_start", "container: create from template -> first exec output",
                      hull=round(med["template"], 2), peer=round(med["scratch"], 2),
                      peer_name="from scratch (same files by commands)", unit="ms",
                      note=f"empty sandbox {med['empty']:.1f} ms; floor {fmed:.2f} ms")
        api.call("DELETE", "/v1/templates/app")
        microvm(api, fl)
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
