#!/usr/bin/python3
"""Where `hull vm start` spends its time over plain QEMU: hull's own guest
booted by plain QEMU, then with each piece of hull's confinement of QEMU
(src/lib/vm/confine.c, vmm_qemu.c) added on its own, then all of them
together, and `hull vm start` itself; interleaved rounds, medians.

Every variant boots the same artifacts (hull's cached vmlinux, agent
initramfs and rootfs, copied world-readable into a scratch directory) with
hull's command line, and is timed from spawn to the agent's first frame on
its port (the "ready" it sends when a host connects), which is what
`hull vm start` waits for too.

Pieces:
  console  no host on the agent's port: ready is the agent's "ready" line on
           the console (a pipe), as vm_bench's "hull's guest in plain QEMU"
  console+connect  the same, with a host connected to the agent's port from
           the start (as hull is), idle
  serial   the console to a file (-chardev file) instead of a pipe
  sandbox  -sandbox on,... (QEMU's seccomp filter)
  qmp      a QMP socket and -name
  cgroup   QEMU in a cgroup of its own: memory limit (guest + 256 MiB),
           CPU quota (vCPUs + 1), pids limit
  uid      QEMU as an unprivileged uid, no groups, no_new_privs (setpriv)
  jail     new mount/ipc/net/uts/pid namespaces, a tmpfs root holding /usr
           and the VM's files read-only, pivot_root (unshare + pivot_root)
  all      every piece above at once (what hull does, without hull)

Usage: bench/vm_pieces.py [--rounds 5] [--only base,jail,...]
Needs root, build/hull, qemu-system-x86, util-linux (unshare, setpriv).
VM benches are host-wide: run under `flock /work/wt/vm.lock` (or alone).
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

HERE = os.path.dirname(os.path.abspath(__file__))
HULL = os.environ.get("HULL", os.path.join(HERE, "..", "build", "hull"))
QEMU = "/usr/bin/qemu-system-x86_64"
MEM_MB = 128
UID = 60999  # an unprivileged uid for the "uid" piece (hull's range is 10^6 + hash)
PIECES = ["serial", "sandbox", "qmp", "cgroup", "uid", "jail"]

JAIL = r"""
set -e
J=$1; shift
mount -t tmpfs -o mode=0755,size=1m tmpfs "$J"
mkdir "$J/usr" "$J/vm" "$J/run" "$J/proc" "$J/dev" "$J/etc" "$J/tmp" "$J/old"
ln -s usr/bin "$J/bin"; ln -s usr/sbin "$J/sbin"; ln -s usr/lib "$J/lib"; ln -s usr/lib64 "$J/lib64"
mount --bind /usr "$J/usr"; mount -o remount,bind,ro,nosuid,nodev "$J/usr"
touch "$J/etc/ld.so.cache"; mount --bind /etc/ld.so.cache "$J/etc/ld.so.cache"
for f in kernel initrd rootfs; do
  touch "$J/vm/$f"; mount --bind "$ART/$f" "$J/vm/$f"; mount -o remount,bind,ro,nosuid,nodev "$J/vm/$f"
done
mount --bind "$RUN" "$J/run"; mount -o remount,bind,nosuid,nodev,noexec "$J/run"
mknod -m 666 "$J/dev/null" c 1 3; mknod -m 666 "$J/dev/zero" c 1 5
mknod -m 666 "$J/dev/urandom" c 1 9; mknod -m 666 "$J/dev/random" c 1 8
chmod 1777 "$J/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$J/proc"
cd "$J"; pivot_root . old; umount -l /old
exec "$@"
"""

CGROUP = r"""
echo $$ > "$CG_MEM/cgroup.procs"; echo $$ > "$CG_CPU/cgroup.procs"; echo $$ > "$CG_PIDS/cgroup.procs"
exec "$@"
"""


def qemu_args(pieces, art, run, append):
    jailed = "jail" in pieces
    vm = "/vm" if jailed else art
    rdir = "/run" if jailed else run
    a = [QEMU, "-machine", "microvm,acpi=on", "-accel", "tcg,tb-size=64", "-m", f"{MEM_MB}M", "-smp", "1",
         "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
         "-kernel", f"{vm}/kernel", "-initrd", f"{vm}/initrd", "-append", append]
    if "serial" in pieces:
        a += ["-chardev", f"file,id=con,path={rdir}/console.log", "-serial", "chardev:con"]
    else:
        a += ["-serial", "stdio"]
    a += ["-device", "virtio-serial-device,max_ports=2",
          "-chardev", f"socket,id=agent,path={rdir}/agent.sock,server=on,wait=off",
          "-device", "virtserialport,chardev=agent,name=org.hull.agent",
          "-drive", f"id=rootfs,file={vm}/rootfs,format=raw,if=none,readonly=on",
          "-device", "virtio-blk-device,drive=rootfs"]
    if "qmp" in pieces:
        a += ["-name", "hull-pieces", "-qmp", f"unix:{rdir}/qmp.sock,server=on,wait=off"]
    if "sandbox" in pieces:
        a += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
    if "uid" in pieces:
        a = ["/usr/bin/setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--no-new-privs",
             "--inh-caps=-all", "--bounding-set=-all", "--"] + a
    if jailed:
        a = ["/usr/bin/unshare", "--mount", "--ipc", "--net", "--uts", "--pid", "--fork",
             "--propagation", "private", "/bin/sh", "-c", JAIL, "jail", os.path.join(os.path.dirname(run), "jail")] + a
    if "cgroup" in pieces:
        a = ["/bin/sh", "-c", CGROUP, "cg"] + a
    return a


class Cgroup:
    """A v1 (or v2) cgroup with hull's limits for one VMM."""

    def __init__(self, name):
        self.dirs = {}
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        for c in ("memory", "cpu", "pids"):
            base = "/sys/fs/cgroup" if v2 else f"/sys/fs/cgroup/{c}"
            d = os.path.join(base, name)
            os.makedirs(d, exist_ok=True)
            self.dirs[c] = d
        lim = (MEM_MB + 256) << 20
        if v2:
            self._w("memory", "memory.max", lim)
            self._w("cpu", "cpu.max", "200000 100000")
            self._w("pids", "pids.max", 512)
        else:
            self._w("memory", "memory.limit_in_bytes", lim)
            self._w("cpu", "cpu.cfs_period_us", 100000)
            self._w("cpu", "cpu.cfs_quota_us", 200000)
            self._w("pids", "pids.max", 512)

    def _w(self, c, f, v):
        with open(os.path.join(self.dirs[c], f), "w") as fh:
            fh.write(str(v))

    def env(self):
        return {"CG_MEM": self.dirs["memory"], "CG_CPU": self.dirs["cpu"], "CG_PIDS": self.dirs["pids"]}

    def remove(self):
        for d in set(self.dirs.values()):
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


TICK = os.sysconf("SC_CLK_TCK")


def session_cpu(sid):
    """CPU seconds (user + system) used so far by the processes of session
    sid: QEMU under TCG is CPU-bound, so unlike wall time this hardly moves
    with the machine's load, and shows what a piece costs in work."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(st[3]) == sid:
            total += int(st[11]) + int(st[12])
    return total / TICK


def wait_agent(path, proc, timeout=120):
    """Seconds until the agent's first frame arrives on its port."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"QEMU exited ({proc.returncode}) before the agent was ready")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            time.sleep(0.002)
            continue
        s.settimeout(max(end - time.monotonic(), 0.1))
        try:
            if s.recv(1):
                return
        finally:
            s.close()
    raise SystemExit("agent not ready in time")


def boot(pieces, art, work, append, i):
    run = os.path.join(work, f"run{i}")
    shutil.rmtree(run, ignore_errors=True)
    os.mkdir(run, 0o700)
    os.makedirs(os.path.join(work, "jail"), exist_ok=True)
    if "uid" in pieces:
        os.chown(run, UID, UID)
    cg = Cgroup(f"hull-vm-pieces-{os.getpid()}-{i}") if "cgroup" in pieces else None
    env = dict(os.environ, ART=art, RUN=run, **(cg.env() if cg else {}))
    args = qemu_args(pieces, art, run, append)
    console = "console" in pieces
    held = []
    if console and "connect" in pieces:
        # A host on the agent's port from the start, as hull is (it says
        # hello while the guest boots), ready still read from the console.
        def hold():
            while not held and p.poll() is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(os.path.join(run, "agent.sock"))
                    held.append(s)
                except OSError:
                    s.close()
                    time.sleep(0.002)
        import threading
        th = threading.Thread(target=hold, daemon=True)
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if console else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env, start_new_session=True)
    if held is not None and console and "connect" in pieces:
        th.start()
    try:
        if console:
            buf = b""
            while b"hull-agent: ready" not in buf:
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    raise SystemExit("QEMU exited before the agent was ready")
                buf += chunk
        else:
            wait_agent(os.path.join(run, "agent.sock"), p)
        t = time.monotonic() - t0
        cpu = session_cpu(p.pid)
    except SystemExit:
        p.kill()
        sys.stderr.write(p.communicate()[1].decode(errors="replace"))
        raise
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
        p.wait()
        if cg:
            cg.remove()
        for s in held:
            s.close()
    return t, cpu


def hull(root, *args):
    p = subprocess.run([HULL, "--root", root, *args], capture_output=True, env=dict(os.environ, HULL_VM_ACCEL="tcg"))
    if p.returncode:
        raise SystemExit(f"hull {' '.join(args)}: {p.stderr.decode().strip()}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    variants = [("base", []), ("console", ["console"]), ("console+connect", ["console", "connect"])] + [(p, [p]) for p in PIECES] + [("all", PIECES), ("hull", None)]
    if a.only:
        keep = a.only.split(",")
        variants = [v for v in variants if v[0] in keep]
    root = tempfile.mkdtemp(prefix="hull-vmpieces-", dir="/run")
    work = tempfile.mkdtemp(prefix="hull-vmpieces-")
    os.chmod(work, 0o755)
    try:
        hull(root, "vm", "create", "--memory", f"{MEM_MB}M", "probe")
        st = json.loads(hull(root, "vm", "state", "probe").stdout)
        hull(root, "vm", "delete", "probe")
        m = st["measured"]
        art = os.path.join(work, "art")
        os.mkdir(art, 0o755)
        for name, src in (("kernel", m["kernel"]["vmlinux"]), ("initrd", m["initrd"]["path"]),
                          ("rootfs", m["rootfs"]["path"])):
            shutil.copyfile(src, os.path.join(art, name))
            os.chmod(os.path.join(art, name), 0o444)
        with open("/run/hull-vm-tsc-khz") as f:
            append = ("console=ttyS0 quiet panic=-1 pci=off cryptomgr.notests rdinit=/init hull.disk"
                      f" tsc_early_khz={f.read().strip()}")
        times = {name: [] for name, _ in variants}
        cpus = {name: [] for name, _ in variants}
        for r in range(a.rounds):
            # Each round starts one variant later: load that drifts during
            # a round does not always fall on the same variants.
            for name, pieces in variants[r % len(variants):] + variants[:r % len(variants)]:
                if pieces is None:
                    vid = f"h{r}"
                    hull(root, "vm", "create", "--memory", f"{MEM_MB}M", vid)
                    t0 = time.monotonic()
                    hull(root, "vm", "start", vid)
                    times[name].append(time.monotonic() - t0)
                    pid = json.loads(hull(root, "vm", "state", vid).stdout)["pid"]
                    cpus[name].append(session_cpu(os.getsid(pid)))
                    hull(root, "vm", "delete", "--force", vid)
                else:
                    t, c = boot(pieces, art, work, append, r)
                    times[name].append(t)
                    cpus[name].append(c)
            print(f"# round {r + 1} (wall/CPU ms): " +
                  ", ".join(f"{n} {times[n][-1] * 1000:.0f}/{cpus[n][-1] * 1000:.0f}" for n, _ in variants), flush=True)
        base = statistics.median(times["base"]) if times.get("base") else None
        cbase = statistics.median(cpus["base"]) if cpus.get("base") else None
        print(f"\n## hull's guest, spawn to agent-ready (TCG, {MEM_MB} MiB, median of {a.rounds} interleaved rounds)")
        print("  variant     wall ms  vs base   [min..max]        QEMU CPU ms  vs base")
        for name, _ in variants:
            md, mc = statistics.median(times[name]), statistics.median(cpus[name])
            rel = f"{(md / base - 1) * 100:+6.1f} %" if base else ""
            crel = f"{(mc / cbase - 1) * 100:+6.1f} %" if cbase else ""
            spread = f"[{min(times[name]) * 1000:.0f}..{max(times[name]) * 1000:.0f}]"
            print(f"  {name:8s} {md * 1000:8.0f}  {rel:8s}  {spread:16s}  {mc * 1000:8.0f}     {crel}")
    finally:
        if os.path.isdir(os.path.join(root, "vm")):
            for vid in os.listdir(os.path.join(root, "vm")):
                subprocess.run([HULL, "--root", root, "vm", "delete", "--force", vid], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
