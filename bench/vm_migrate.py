#!/usr/bin/python3
"""microVM live migration: `hull vm migrate` against QEMU migrating the same
guest by hand over QMP, in one run.

For guests of 128 and 512 MiB, idle and with a workload that keeps writing
to memory (a python3 loop touching every page of 1/8 of guest RAM), the
same kind of VM (`hull vm create --from-template`, started, the workload
started) is migrated on this machine

  * by hull: `hull vm receive` (another state root, 127.0.0.1) and
    `hull vm migrate`: QEMU -> pipe -> hull -> TLS 1.3 (mutual
    certificates of a CA made here with openssl) -> hull -> pipe -> a
    confined QEMU; figures as hull reports them;
  * by hull on the plain channel (--insecure-plain, token-authenticated,
    not encrypted), the same guest kind in the same run: what TLS costs;
  * by hand: a plain QEMU started with the source's own command line and
    `-incoming unix:SOCKET`, and QMP `migrate` to that socket on the source
    (same capabilities: auto-converge, no bandwidth cap), then `cont` on
    the destination; the times measured the same way (QEMU's downtime plus
    completion to the destination running; total from the migrate command
    to the destination running).

Reported per case: downtime (ms) and total time (ms), median of --rounds;
hull over TLS against QEMU by hand, and hull over TLS against hull plain.
hull's total is its copy_ms (QEMU's migrate command to the guest running
on the receiver), the span the by-hand figure covers; its total_ms, which
adds the connection, the handshake, the receiver's check of the artifacts'
digests and its QEMU's start, is printed beside it.
Usage: bench/vm_migrate.py [--rounds 3] [--sizes 128,512] [--quick]
--quick: one round (bench/all). Accelerator: TCG unless HULL_VM_ACCEL says.
With BENCH_JSON=FILE the rows go through bench/benchjson.py (reported, no
goal). Needs root, build/hull, qemu-system-x86 (scripts/deps.sh vm); run
under `flock /work/wt/vm.lock` on a shared machine.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchjson  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HULL = os.path.abspath(os.environ.get("HULL", os.path.join(HERE, "..", "build", "hull")))
ENV = dict(os.environ, HULL_VM_ACCEL=os.environ.get("HULL_VM_ACCEL", "tcg"))
WRITER = ("import os\n"
          "b = bytearray({mib} << 20)\n"
          "while True:\n"
          "    for o in range(0, len(b), 4096):\n"
          "        b[o] = (b[o] + 1) & 255\n")


def hull(root, *args, timeout=600):
    p = subprocess.run([HULL, "--root", root, *args], capture_output=True, text=True,
                       timeout=timeout, env=ENV)
    if p.returncode != 0:
        raise RuntimeError(f"hull {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def make_vm(root, vid, mem, load):
    hull(root, "vm", "create", "--memory", f"{mem}M", "--from-template", vid)
    hull(root, "vm", "start", vid)
    if load == "writing":
        hull(root, "vm", "exec", "--detach", vid, "--", "python3", "-c",
             WRITER.format(mib=mem // 8))
        time.sleep(2)  # the loop is going
    return json.loads(hull(root, "vm", "state", vid))


class QMP:
    def __init__(self, path, timeout=60):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            m = json.loads(self.f.readline())
            if "return" in m:
                return m["return"]
            if "error" in m:
                raise RuntimeError(f"QMP {name}: {m['error']}")

    def close(self):
        self.s.close()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA and two node certificates (127.0.0.1): each side's TLS args."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca = os.path.join(d, "ca")
    openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-subj", "/CN=ca",
            "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE")
    out = []
    for n in ("n1", "n2"):
        p = os.path.join(d, n)
        openssl("req", *ec, "-keyout", p + ".key", "-out", p + ".csr", "-subj", f"/CN={n}")
        os.chmod(p + ".key", 0o600)
        with open(p + ".ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        openssl("x509", "-req", "-in", p + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", p + ".crt", "-days", "2", "-extfile", p + ".ext")
        out.append(["--tls-cert", p + ".crt", "--tls-key", p + ".key", "--tls-ca", ca + ".crt"])
    return out


def hull_case(roots, mem, load, auth):
    """auth: (the source's, the receiver's) channel arguments."""
    src, dst = roots
    make_vm(src, "bm-src", mem, load)
    rcv = subprocess.Popen([HULL, "--root", dst, "vm", "receive", "--listen", "127.0.0.1:0",
                            *auth[1], "--id", "bm-dst"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        addr = rcv.stderr.readline().split()[-1]
        res = json.loads(hull(src, "vm", "migrate", "--to", addr, *auth[0], "bm-src"))
        rcv.communicate(timeout=120)
    finally:
        if rcv.poll() is None:
            rcv.kill()
            rcv.communicate()
    hull(dst, "vm", "delete", "--force", "bm-dst")
    return res["downtime_ms"], res["copy_ms"], res


def dest_cmdline(st, vmdir, tmp):
    """The source QEMU's own command line, with host paths and -incoming."""
    argv = open(f"/proc/{st['qemu_pid']}/cmdline", "rb").read().split(b"\0")[:-1]
    argv = [a.decode() for a in argv]
    m = st["measured"]
    out, skip = [], 0
    for i, a in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if a == "-incoming":
            skip = 1
            continue
        if a == "-S":
            continue
        if a.startswith("memory-backend-file,"):
            a = f"memory-backend-ram,id=ram,size={st['memory_mb']}M"
        a = a.replace("/vm/kernel", m["kernel"]["vmlinux"]).replace(
            "/vm/initrd", m["initrd"]["path"]).replace("file=/vm/rootfs",
                                                       "file=" + m["rootfs"]["path"])
        a = a.replace("/run/", tmp + "/")
        out.append(a)
    return out + ["-incoming", f"unix:{vmdir}/run/mig.sock", "-S"]


def qemu_case(roots, mem, load):
    src = roots[0]
    st = make_vm(src, "bm-hand", mem, load)
    vmdir = os.path.join(src, "vm", "bm-hand")
    tmp = tempfile.mkdtemp(prefix="hmb-q-", dir="/run")
    dest = subprocess.Popen(dest_cmdline(st, vmdir, tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        sock = f"{vmdir}/run/mig.sock"
        end = time.monotonic() + 60
        while not os.path.exists(sock):
            if dest.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"destination QEMU: {dest.communicate()[1]}")
            time.sleep(0.02)
        os.chmod(sock, 0o777)  # the source QEMU runs as its own uid
        sq, dq = QMP(f"{vmdir}/run/qmp.sock"), QMP(f"{tmp}/qmp.sock")
        sq.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "auto-converge", "state": True},
            {"capability": "x-ignore-shared", "state": False}])
        sq.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
        t0 = time.monotonic()
        sq.cmd("migrate", uri="unix:/run/mig.sock")
        while True:
            r = sq.cmd("query-migrate")
            if r["status"] == "completed":
                break
            if r["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"by hand: migration {r}")
            time.sleep(0.005)
        t_done = time.monotonic()
        while dq.cmd("query-status")["status"] == "inmigrate":
            time.sleep(0.005)
        dq.cmd("cont")
        t_run = time.monotonic()
        down = r["downtime"] + (t_run - t_done) * 1000
        total = (t_run - t0) * 1000
        dq.cmd("quit")
        sq.close()
        dq.close()
        dest.wait(timeout=60)
    finally:
        if dest.poll() is None:
            dest.kill()
            dest.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        hull(src, "vm", "delete", "--force", "bm-hand")
    return down, total, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rounds = 1
    roots = (tempfile.mkdtemp(prefix="hmb-a-", dir="/run"),
             tempfile.mkdtemp(prefix="hmb-b-", dir="/run"))
    token = os.path.join(roots[0], "token")
    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(os.urandom(24).hex())
    accel = ENV["HULL_VM_ACCEL"]
    chans = {"tls": make_pki(roots[0]), "plain": [["--insecure-plain", "--token-file", token]] * 2}
    try:
        for mem in map(int, a.sizes.split(",")):
            for load in ("idle", "writing"):
                h, p, q = [], [], []
                for _ in range(a.rounds):
                    for ch, acc in (("tls", h), ("plain", p)):
                        d, t, res = hull_case(roots, mem, load, chans[ch])
                        acc.append((d, t))
                        print(f"{accel} {mem} MiB {load}: hull ({ch}) downtime {d} ms total {t} "
                              f"ms (with set-up {res['total_ms']} ms; "
                              f"QEMU's downtime {res['qemu_downtime_ms']} ms, "
                              f"{res['bytes'] >> 20} MiB, {res['rounds']} rounds)", flush=True)
                    d, t, r = qemu_case(roots, mem, load)
                    q.append((d, t))
                    print(f"{accel} {mem} MiB {load}: by hand downtime {d:.0f} ms total "
                          f"{t:.0f} ms (QEMU's downtime {r['downtime']} ms, "
                          f"{r['ram']['transferred'] >> 20} MiB)", flush=True)
                for i, what in ((0, "downtime"), (1, "total time")):
                    hv = statistics.median(x[i] for x in h)
                    pv = statistics.median(x[i] for x in p)
                    qv = statistics.median(x[i] for x in q)
                    benchjson.row("vm_migrate", f"live migration {what}, {mem} MiB, {load} ({accel})",
                                  hull=round(hv, 1), peer=round(qv, 1),
                                  peer_name="QEMU by hand (QMP, unix socket)", unit="ms",
                                  note=f"median of {a.rounds}; hull carries the stream over "
                                  "TLS 1.3 between two hull processes")
                    benchjson.row("vm_migrate",
                                  f"TLS vs plain channel, {what}, {mem} MiB, {load} ({accel})",
                                  hull=round(hv, 1), peer=round(pv, 1),
                                  peer_name="hull --insecure-plain (same run)", unit="ms",
                                  note=f"median of {a.rounds}; the cost of encrypting the stream")
    finally:
        # Whatever VM a failed case left (its QEMU and cgroup), then the roots.
        for r in roots:
            vmdir = os.path.join(r, "vm")
            for vid in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
                subprocess.run([HULL, "--root", r, "vm", "delete", "--force", vid], env=ENV)
            shutil.rmtree(r, ignore_errors=True)


if __name__ == "__main__":
    main()
