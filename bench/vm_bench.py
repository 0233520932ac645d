#!/usr/bin/python3
"""microVM benchmark: hull vs plain QEMU booting the same kernel, in one run.

For each accelerator available here (TCG always, KVM when usable):
  * cold boot: plain QEMU (same vmlinux through PVH, same machine and kernel
    command line, a trivial static /init that prints READY) against
    `hull vm start` to agent-ready; both spawn-to-ready, interleaved rounds;
  * idle memory: RSS and PSS of each QEMU one second after ready;
  * warm start: `hull vm create --from-template` + `vm start` (restore a booted template
    snapshot) to agent-ready, then the first exec; and a whole one-shot
    `hull vm run -- true`;
  * density: K VMs of 128 MiB started from the template together, host
    memory used per VM, and how many would fit.

Usage: bench/vm_bench.py [--rounds 5] [--density 20] [--accel tcg,kvm] [--quick]
--quick: 3 rounds, TCG only, density of 4 VMs (about 3 minutes under TCG; bench/all).
With BENCH_JSON=FILE the cold-boot comparison (and `vm create`'s time with
the default rootfs cached) is appended as rows through bench/benchjson.py.
Needs root, build/hull, qemu-system-x86, linux-image-amd64 (scripts/deps.sh vm).
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchjson  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HULL = os.environ.get("HULL", os.path.join(HERE, "..", "build", "hull"))
QEMU = "/usr/bin/qemu-system-x86_64"
MEM = "128M"

TRIVIAL_INIT = r"""
#include <fcntl.h>
#include <unistd.h>
#include <sys/mount.h>
int main(void) {
    mount("devtmpfs", "/dev", "devtmpfs", 0, "");
    int fd = open("/dev/console", O_WRONLY);
    write(fd, "READY\n", 6);
    for (;;) pause();
}
"""


def newc(entries):
    """cpio newc of (name, mode, data) entries, the trivial initramfs."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out + b"\0" * (-len(out) % 512))


def hull(root, *args, accel="tcg", check=True, timeout=600):
    env = dict(os.environ, HULL_VM_ACCEL=accel)
    p = subprocess.run([HULL, "--root", root, *args], capture_output=True, env=env, timeout=timeout)
    if check and p.returncode:
        raise SystemExit(f"hull {' '.join(args)}: {p.stderr.decode().strip()}")
    return p


def mem_of(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def host_mem(pid):
    """Host memory a VM's QEMU holds, as (KiB of its own, guest-RAM memfd's
    identity, KiB the memfd holds): its PSS without its mapped share of a
    guest-RAM memfd (a restored template's sealed copy), and that memfd by
    its allocated pages, mapped or not. Clones of one template share one
    memfd (ramkeeper.c): the caller counts each memfd once."""
    _, pss = mem_of(pid)
    mapped = 0
    try:
        with open(f"/proc/{pid}/smaps") as f:
            inside = False
            for line in f:
                if "-" in line.split()[0] and not line.split()[0].endswith(":"):
                    inside = "memfd:hull-guest-ram" in line
                elif inside and line.startswith("Pss:"):
                    mapped += int(line.split()[1])
        st = os.stat(f"/proc/{pid}/fd/5")
    except (OSError, ValueError):
        return pss, None, 0
    return pss - mapped, (st.st_dev, st.st_ino), st.st_blocks // 2


def comm(pid):
    """A process's name; "" when it ended meanwhile (other work runs here)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_ms(pid):
    """CPU time (user + system) of a process so far, ms: what a boot costs,
    which the machine's load moves far less than the wall time."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def plain_boot(vmlinux, initrd, append, accel, devices=(), marker=b"READY"):
    args = [QEMU, "-machine", "microvm,acpi=on", "-m", MEM, "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-kernel", vmlinux, "-initrd", initrd, "-append", append,
            "-serial", "stdio", *devices]
    args += ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,tb-size=64"]  # hull's cold boots (vmm_qemu.c TCG_BOOT)
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf = b""
    while marker not in buf:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            raise SystemExit("plain QEMU exited before READY")
        buf += chunk
    t = time.monotonic() - t0
    cpu = cpu_ms(p.pid)
    time.sleep(1)
    rss, pss = mem_of(p.pid)
    p.kill()
    p.wait()
    return t, rss, pss, cpu


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def report(accel, rounds, r):
    print(f"\n## accelerator: {accel} (median of {rounds} rounds, 128 MiB guests)")
    print(f"  cold boot, plain QEMU to trivial /init : {med(r['plain']) * 1000:7.0f} ms")
    print(f"  cold boot, hull's guest in plain QEMU  : {med(r['plain_agent']) * 1000:7.0f} ms  (agent ready on the console)")
    print(f"  cold boot, hull vm start to agent-ready: {med(r['cold']) * 1000:7.0f} ms"
          f"  ({(med(r['cold']) / med(r['plain']) - 1) * 100:+.0f} % vs plain)")
    print(f"  QEMU CPU to ready: plain {med(r['plain_cpu']):.0f} ms, hull's guest in plain {med(r['plain_agent_cpu']):.0f} ms,"
          f" hull {med(r['cold_cpu']):.0f} ms ({(med(r['cold_cpu']) / med(r['plain_cpu']) - 1) * 100:+.0f} % vs plain;"
          f" load moves it far less than the wall time)")
    print(f"  first exec after cold boot             : {med(r['first_exec']) * 1000:7.0f} ms")
    speedup = med(r["cold"]) / med(r["warm"])
    print(f"  warm start (restore template) to ready : {med(r['warm']) * 1000:7.0f} ms"
          f"  ({speedup:.1f}x faster than cold; goal >= 5: {'MET' if speedup >= 5 else 'NOT MET'})")
    print(f"  warm start to first exec done          : {med(r['warm_exec']) * 1000:7.0f} ms")
    print(f"  one-shot `hull vm run -- true`         : {med(r['oneshot']) * 1000:7.0f} ms")
    print(f"  idle QEMU RSS / PSS, plain             : {med(r['plain_rss']) / 1024:7.1f} / {med(r['plain_pss']) / 1024:.1f} MiB")
    print(f"  idle QEMU RSS / PSS, hull              : {med(r['cold_rss']) / 1024:7.1f} / {med(r['cold_pss']) / 1024:.1f} MiB")
    ratio = med(r["cold"]) / med(r["plain"])
    print(f"  goal: hull vm start within +10 % of plain QEMU: {'MET' if ratio <= 1.10 else 'NOT MET'}"
          f" ({(ratio - 1) * 100:+.0f} %)")
    sys.stdout.flush()
    benchjson.row("vm_bench", f"vm start to agent-ready vs plain QEMU to a trivial /init ({accel})",
                  hull=round(med(r["cold"]) * 1000, 1), peer=round(med(r["plain"]) * 1000, 1),
                  peer_name="qemu", unit="ms", goal="<= 1.10",
                  note=f"hull's guest in plain QEMU: {med(r['plain_agent']) * 1000:.0f} ms; {rounds} rounds")
    benchjson.row("vm_bench", f"warm start (restore the template) vs cold boot, vm start to agent-ready ({accel})",
                  hull=round(med(r["warm"]) * 1000, 1), peer=round(med(r["cold"]) * 1000, 1),
                  peer_name="hull cold boot", unit="ms", ratio=speedup, goal=">= 5",
                  note=f"ratio is cold / warm (speed-up); vm create not timed in either; {rounds} rounds")
    benchjson.row("vm_bench", f"QEMU CPU to agent-ready, hull vm start vs plain QEMU to a trivial /init ({accel})",
                  hull=round(med(r["cold_cpu"]), 1), peer=round(med(r["plain_cpu"]), 1),
                  peer_name="qemu", unit="ms",
                  note=f"CPU time (user + system) of QEMU at ready; hull's guest in plain QEMU: "
                       f"{med(r['plain_agent_cpu']):.0f} ms; {rounds} rounds")
    if r["create"]:
        benchjson.row("vm_bench", f"vm create, default rootfs cached ({accel})",
                      hull=round(med(r["create"]) * 1000, 1), unit="ms",
                      note="no peer: was 5.5 s when ldd ran on every create")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--density", type=int, default=20)
    ap.add_argument("--accel", default="tcg,kvm")
    ap.add_argument("--no-density", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 rounds, TCG only, density of 4 VMs")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.density, a.accel = 3, 4, "tcg"
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    root = tempfile.mkdtemp(prefix="hull-vmbench-", dir="/run")
    work = tempfile.mkdtemp(prefix="hull-vmbench-")
    try:
        # The same artifacts hull boots: its cached vmlinux and command line.
        hull(root, "vm", "create", "--memory", MEM, "probe")
        st = json.loads(hull(root, "vm", "state", "probe").stdout)
        hull(root, "vm", "delete", "probe")
        vmlinux = st["measured"]["kernel"]["vmlinux"]
        agent_initrd, rootfs = st["measured"]["initrd"]["path"], st["measured"]["rootfs"]["path"]
        sock = os.path.join(work, "agent.sock")
        # hull's guest in plain QEMU (no jail, no cgroup, no hull): where the
        # time between plain and hull goes, guest side or host side.
        agent_devices = ["-device", "virtio-serial-device,max_ports=2",
                         "-chardev", f"socket,id=agent,path={sock},server=on,wait=off",
                         "-device", "virtserialport,chardev=agent,name=org.hull.agent",
                         "-drive", f"id=rootfs,file={rootfs},format=raw,if=none,readonly=on",
                         "-device", "virtio-blk-device,drive=rootfs"]
        src = os.path.join(work, "init.c")
        open(src, "w").write(TRIVIAL_INIT)
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(work, "init"), src], check=True)
        initrd = os.path.join(work, "trivial.cpio")
        open(initrd, "wb").write(newc([("dev", 0o40755, b""), ("init", 0o100755, open(os.path.join(work, "init"), "rb").read())]))
        results = {}
        for accel in a.accel.split(","):
            if accel == "kvm":
                p = hull(root, "vm", "create", "--memory", MEM, "--accel", "kvm", "kvmprobe", accel="kvm", check=False)
                if p.returncode:
                    print(f"# KVM: not measured: {p.stderr.decode().strip()}")
                    continue
                hull(root, "vm", "delete", "kvmprobe", accel="kvm")
            base = "console=ttyS0 quiet panic=-1 pci=off cryptomgr.notests rdinit=/init"
            if accel == "tcg":
                with open("/run/hull-vm-tsc-khz") as f:
                    base += f" tsc_early_khz={f.read().strip()}"
            r = {k: [] for k in ("plain", "plain_rss", "plain_pss", "plain_agent", "plain_cpu", "plain_agent_cpu", "cold_cpu", "cold", "cold_rss", "cold_pss", "first_exec",
                                 "warm", "warm_exec", "oneshot", "create")}
            # The template, made once before timing warm starts.
            hull(root, "vm", "create", "--memory", MEM, "--from-template", "tpl", accel=accel)
            hull(root, "vm", "start", "tpl", accel=accel)
            hull(root, "vm", "delete", "--force", "tpl", accel=accel)
            for i in range(a.rounds):
                t, rss, pss, cpu = plain_boot(vmlinux, initrd, base, accel)
                r["plain"].append(t); r["plain_rss"].append(rss); r["plain_pss"].append(pss)
                r["plain_cpu"].append(cpu)
                t, _, _, cpu = plain_boot(vmlinux, agent_initrd, base + " hull.disk", accel, agent_devices,
                                          b"hull-agent: ready")
                r["plain_agent"].append(t); r["plain_agent_cpu"].append(cpu)
                vid = f"cold{i}"
                t0 = time.monotonic()
                hull(root, "vm", "create", "--memory", MEM, vid, accel=accel)
                r["create"].append(time.monotonic() - t0)
                t0 = time.monotonic()
                hull(root, "vm", "start", vid, accel=accel)
                r["cold"].append(time.monotonic() - t0)
                pid = json.loads(hull(root, "vm", "state", vid).stdout)["pid"]
                r["cold_cpu"].append(cpu_ms(pid))  # read a few ms after ready: the idle guest's share is small
                time.sleep(1)
                rss, pss = mem_of(pid)
                r["cold_rss"].append(rss); r["cold_pss"].append(pss)
                t0 = time.monotonic()
                hull(root, "vm", "exec", vid, "--", "true", accel=accel)
                r["first_exec"].append(time.monotonic() - t0)
                hull(root, "vm", "delete", "--force", vid, accel=accel)
                vid = f"warm{i}"
                hull(root, "vm", "create", "--memory", MEM, "--from-template", vid, accel=accel)
                t0 = time.monotonic()  # like cold: vm start only
                hull(root, "vm", "start", vid, accel=accel)
                t1 = time.monotonic()
                hull(root, "vm", "exec", vid, "--", "true", accel=accel)
                t2 = time.monotonic()
                r["warm"].append(t1 - t0); r["warm_exec"].append(t2 - t0)
                hull(root, "vm", "delete", "--force", vid, accel=accel)
                t0 = time.monotonic()
                hull(root, "vm", "run", "--vm-memory", MEM, "--", "true", accel=accel)
                r["oneshot"].append(time.monotonic() - t0)
            results[accel] = r
            report(accel, a.rounds, r)
            if a.no_density:
                continue
            # Density: K VMs from the template, four starting at a time.
            with open("/proc/meminfo") as f:
                avail0 = int([l for l in f if l.startswith("MemAvailable:")][0].split()[1])
            ids = [f"d{i}" for i in range(a.density)]
            t0 = time.monotonic()
            procs = []
            for vid in ids:
                env = dict(os.environ, HULL_VM_ACCEL=accel)
                procs.append(subprocess.Popen(["sh", "-c", '"$0" --root "$1" vm create --memory "$2" --from-template "$3" && '
                                               '"$0" --root "$1" vm start "$3"', HULL, root, MEM, vid],
                                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
                if len(procs) >= 4:
                    procs.pop(0).wait()
            for p in procs:
                p.wait()
            t_all = time.monotonic() - t0
            up = [v for v in ids if json.loads(hull(root, "vm", "state", v, check=False).stdout or "{}").get("status") == "running"]
            time.sleep(2)
            with open("/proc/meminfo") as f:
                avail1 = int([l for l in f if l.startswith("MemAvailable:")][0].split()[1])
            pids = [json.loads(hull(root, "vm", "state", v).stdout)["pid"] for v in up]
            pss_all = sum(mem_of(pid)[1] for pid in pids)
            own, memfds = 0, {}
            for pid in pids:
                kib, key, ram = host_mem(pid)
                own += kib
                if key:
                    memfds[key] = ram
            # The keepers that hand the shared memfd out count too.
            keepers = [int(d) for d in os.listdir("/proc") if d.isdigit() and comm(d) == "hull-ramkeeper"]
            own += sum(mem_of(k)[1] for k in keepers)
            host_all = own + sum(memfds.values())
            for v in ids:
                hull(root, "vm", "delete", "--force", v, check=False)
            per_vm = (avail0 - avail1) / max(len(up), 1)
            print(f"  density: {len(up)}/{a.density} VMs started from the template in {t_all:.1f} s;"
                  f" host memory {per_vm / 1024:.0f} MiB per VM (PSS {pss_all / max(len(up), 1) / 1024:.0f} MiB);"
                  f" {avail0 / per_vm if per_vm > 0 else 0:.0f} such VMs would fit in the {avail0 / 1048576:.1f} GiB available")
            # MemAvailable moves with everything else on a shared machine:
            # the goal is judged on what each QEMU holds (PSS + its RAM memfd).
            per_vm_mib = host_all / max(len(up), 1) / 1024
            plain_mib = med(r["plain_rss"]) / 1024
            print(f"  host memory per idle VM (PSS + guest RAM memfd): {per_vm_mib:.1f} MiB;"
                  f" goal <= 50 MiB: {'MET' if per_vm_mib <= 50 else 'NOT MET'}; plain QEMU idle RSS {plain_mib:.1f} MiB;"
                  f" {len(memfds)} guest-RAM memfd(s) {sum(memfds.values()) / 1024:.1f} MiB for {len(up)} VMs,"
                  f" QEMU's own {own / max(len(up), 1) / 1024:.1f} MiB per VM")
            benchjson.row("vm_bench", f"host memory per idle 128 MiB microVM from the template ({accel})",
                          hull=round(per_vm_mib, 1), peer=round(plain_mib, 1), peer_name="plain QEMU idle RSS",
                          unit="MiB", ratio=per_vm_mib / 50, goal="<= 1",
                          note=f"ratio is hull / the 50 MiB goal; {len(up)} VMs sharing {len(memfds)} RAM "
                               f"memfd(s); MemAvailable fell {per_vm / 1024:.0f} MiB per VM")
    finally:
        for vid in os.listdir(os.path.join(root, "vm")) if os.path.isdir(os.path.join(root, "vm")) else []:
            hull(root, "vm", "delete", "--force", vid, check=False)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
