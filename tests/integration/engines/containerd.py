"""Debian's containerd, started by the test in a directory of its own.

The daemon gets a config.toml written here: its own root, state, gRPC and
ttrpc sockets, and the plugins this test has no use for (CRI, btrfs, zfs,
aufs, devmapper, tracing) disabled so it starts fast and touches nothing of
the host's. Tasks run through the io.containerd.runc.v2 shim with
`--runc-binary RUNTIME --runc-root <top>/runtime-root`, the way containerd
drives runc in production, and in a namespace (and so a cgroup parent) that
is unique to this session.
"""

import os
import signal
import subprocess
import time

from . import host

IMAGE = "localhost/hull-busybox:test"
SHIM_SOCKETS = "/run/containerd/s"

_DISABLED = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
]


class Containerd:
    def __init__(self, top, runtime):
        self.top = top
        self.runtime = runtime
        self.namespace = f"hulltest-{os.getpid()}"
        self.address = os.path.join(top, "containerd.sock")
        self.runtime_root = os.path.join(top, "runtime-root")
        self.state = os.path.join(top, "state")
        self.log_path = os.path.join(top, "containerd.log")
        self.fifo_dir = os.path.join(top, "fifo")
        # containerd 1.6 puts shim sockets in /run/containerd/s whatever the
        # config says; stop() removes that directory again if it made it.
        self.made_run_dir = not os.path.exists(SHIM_SOCKETS)
        self.proc = None
        self.config = os.path.join(top, "config.toml")
        disabled = ", ".join(f'"{p}"' for p in _DISABLED)
        with open(self.config, "w") as f:
            f.write(
                "version = 2\n"
                f'root = "{top}/root"\n'
                f'state = "{self.state}"\n'
                f"disabled_plugins = [{disabled}]\n"
                "[grpc]\n"
                f'  address = "{self.address}"\n'
                "[ttrpc]\n"
                f'  address = "{self.address}.ttrpc"\n'
            )

    def start(self):
        """Start the daemon and wait until it answers on its socket."""
        log = open(self.log_path, "ab")
        # Its own session: a test's signals do not reach it, and it outlives
        # no one: stop() ends it and its shims.
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}: {self.log_tail()}")
            return self.ctr("version", check=False, timeout=10).returncode == 0

        host.wait_until(up, timeout=60, what="containerd to answer on its socket")

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def argv(self, *args):
        """`ctr --address SOCK --namespace NS ARGS...` as a list. The verbs that
        make I/O FIFOs get --fifo-dir in the test directory: ctr's default,
        /run/containerd/fifo, keeps those of detached execs for ever."""
        args = list(args)
        for verb in (["run"], ["task", "exec"], ["task", "start"]):
            if args[: len(verb)] == verb:
                args[len(verb) : len(verb)] = ["--fifo-dir", self.fifo_dir]
        return ["ctr", "--address", self.address, "--namespace", self.namespace, *args]

    def ctr(self, *args, check=True, input=None, timeout=120, stdin=None, stdout=None):
        """Run argv(*args); with check, a non-zero exit fails with ctr's stderr."""
        cmd = self.argv(*args)
        kw = {"capture_output": True} if stdout is None else {"stdout": stdout, "stderr": subprocess.STDOUT}
        if stdin is not None:
            kw["stdin"] = stdin
        r = subprocess.run(cmd, input=input, text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{(r.stderr or r.stdout or '').strip()}")
        return r

    def runtime_args(self):
        """The flags that make the runc shim drive the runtime under test."""
        return ["--runc-binary", self.runtime, "--runc-root", self.runtime_root]

    def run(self, *args, **kw):
        """`ctr run --runc-binary RUNTIME --runc-root ROOT ARGS...`."""
        return self.ctr("run", *self.runtime_args(), *args, **kw)

    def import_image(self, oci_tar):
        self.ctr("images", "import", "--all-platforms", oci_tar, timeout=300)

    def tasks(self):
        """{container id: (pid, status)} from `ctr task ls`."""
        out = {}
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3:
                out[f[0]] = (int(f[1]), f[2])
        return out

    def containers(self):
        return [line.split()[0] for line in self.ctr("containers", "ls", "-q").stdout.splitlines() if line.strip()]

    def remove(self, cid):
        """Kill, delete the task and the container, whatever state they are in."""
        self.ctr("task", "resume", cid, check=False)
        self.ctr("task", "kill", "-a", "-s", "SIGKILL", cid, check=False)
        host.wait_until(lambda: self.tasks().get(cid, (0, "STOPPED"))[1] == "STOPPED", timeout=30,
                        what=f"task {cid} to stop")
        self.ctr("task", "delete", "-f", cid, check=False)
        self.ctr("containers", "delete", cid, check=False)

    def remove_all(self):
        for cid in self.containers():
            self.remove(cid)

    def leftovers(self):
        """What the namespace's containers left behind once they are all
        removed, as a list of strings: cgroups, processes, shims, runtime
        state, mounts. The namespace is this session's alone."""
        out = [f"cgroup {cg}" for cg in host.cgroup_children(f"/{self.namespace}")]
        for pid in host.processes_mentioning(self.address):
            out.append(f"shim {pid} ({host.cmdline(pid)})")
        for pid in host.pids_in_cgroup_tree(f"/{self.namespace}"):
            if host.alive(pid):
                out.append(f"process {pid} ({host.cmdline(pid)}) in /{self.namespace}")
        rt_ns = os.path.join(self.runtime_root, self.namespace)
        if os.path.isdir(rt_ns):
            out += [f"runtime state {os.path.join(rt_ns, e)}" for e in os.listdir(rt_ns)]
        tasks_dir = os.path.join(self.state, "io.containerd.runtime.v2.task", self.namespace)
        out += [f"mount {m}" for m in host.mounts_under(tasks_dir)]
        return out

    def stop(self):
        """Remove every container, stop the daemon, end any shim it left,
        unmount what it mounted, remove its cgroup parent."""
        if self.proc and self.proc.poll() is None:
            try:
                self.remove_all()
                self.ctr("images", "rm", IMAGE, check=False)
            finally:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        # Shims outlive the daemon by design; ours are the ones naming our socket.
        for pid in host.processes_mentioning(self.address):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while host.processes_mentioning(self.address) and time.monotonic() < deadline:
            time.sleep(0.05)
        rt_root = os.path.join(self.runtime_root, self.namespace)
        for cid in os.listdir(rt_root) if os.path.isdir(rt_root) else ():
            subprocess.run([self.runtime, "--root", rt_root, "delete", "--force", cid], capture_output=True,
                           timeout=60)
        for m in sorted(host.mounts_under(self.top), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        host.remove_cgroup_tree(f"/{self.namespace}")
        if self.made_run_dir:
            for d in (SHIM_SOCKETS, os.path.dirname(SHIM_SOCKETS)):
                try:
                    os.rmdir(d)  # only when empty: never another containerd's sockets
                except OSError:
                    pass
