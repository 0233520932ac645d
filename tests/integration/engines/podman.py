"""Debian's podman, confined to a test directory and pointed at one OCI runtime.

Everything podman keeps lives under `top`: image store (graphroot), run state
(runroot), its tmp dir, event log. Its settings come from a containers.conf
and a storage.conf that this module writes and passes through CONTAINERS_CONF
and CONTAINERS_STORAGE_CONF, so the host's /etc/containers is not read and
nothing the test does shows up in the host's podman.

Host-specific settings live in that containers.conf, not in the runtime:
  - ulimits nofile/nproc 1024: podman's default asks for more than this
    host's hard NOFILE limit (20000) allows;
  - cgroupfs manager (no systemd here), file events logger;
  - no network: podman's default bridge network needs netavark + iptables
    and changes the host firewall; `none` still gives each container its own
    network namespace, which is what the runtime has to make.
Containers are put under a per-session cgroup parent so leftovers are easy
to see and impossible to confuse with anyone else's.
"""

import json
import os
import shutil
import subprocess

from . import busybox, host
from .runtime import runtime_state_exists

IMAGE = "localhost/hull-busybox:test"
HOST_DIRS = ("/var/lib/containers", "/run/containers")


class Podman:
    def __init__(self, top, runtime):
        self.top = top
        self.runtime = runtime
        self.cgroup_parent = f"/hulltest-podman-{os.getpid()}"
        self.graphroot = os.path.join(top, "graphroot")
        self.runroot = os.path.join(top, "runroot")
        self.tmpdir = os.path.join(top, "libpod-tmp")
        self.conf = os.path.join(top, "containers.conf")
        self.storage_conf = os.path.join(top, "storage.conf")
        self.events_log = os.path.join(top, "events.log")
        for d in (self.graphroot, self.runroot, self.tmpdir):
            os.makedirs(d, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(
                "[containers]\n"
                'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                'netns = "none"\n'
                'log_driver = "k8s-file"\n'
                "[engine]\n"
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                f'events_logfile_path = "{self.events_log}"\n'
                # File locks live in tmp_dir; shm locks would leave a
                # /dev/shm/libpod_lock shared with every podman on the host.
                'lock_type = "file"\n'
                f'tmp_dir = "{self.tmpdir}"\n'
                f'runtime = "{runtime}"\n'
            )
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{self.graphroot}"\nrunroot = "{self.runroot}"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf, CONTAINERS_STORAGE_CONF=self.storage_conf)
        self.env.pop("CONTAINERS_REGISTRIES_CONF", None)
        # podman writes to HOST_DIRS whatever its configuration says (import's
        # blob digest cache, netavark's run directory); destroy() removes
        # those this session created.
        self.made_host_dirs = [d for d in HOST_DIRS if not os.path.exists(d)]

    def __call__(self, *args, check=True, input=None, timeout=120):
        """Run `podman --runtime RUNTIME ARGS...`; returns the CompletedProcess.
        With check, a non-zero exit fails with podman's stderr."""
        cmd = ["podman", "--runtime", self.runtime, *args]
        r = subprocess.run(cmd, env=self.env, input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.strip()}")
        return r

    def import_image(self, layer_tar):
        self("import", "-q", "--change", "ENV=PATH=" + busybox.IMAGE_PATH, "--change", 'CMD=["/bin/sh"]',
             layer_tar, IMAGE)

    def run(self, *args, check=True, input=None, timeout=120):
        """`podman run --cgroup-parent <session parent> ARGS... ` (args include
        the image and command; use podman.IMAGE)."""
        return self("run", "--cgroup-parent", self.cgroup_parent, *args, check=check, input=input,
                    timeout=timeout)

    def inspect(self, name):
        return json.loads(self("inspect", "--type", "container", name).stdout)[0]

    def container_ids(self):
        return self("ps", "-a", "-q", "--no-trunc").stdout.split()

    def remove_all(self):
        """Force-remove every container of this store (a test's own teardown)."""
        self("rm", "-a", "-f", "-t", "0", check=False)

    def events_offset(self):
        """Where the event log ends now; see created_since()."""
        return host.file_size(self.events_log)

    def created_since(self, offset):
        """Full ids of the containers created after events_offset() said offset."""
        ids = []
        try:
            with open(self.events_log) as f:
                f.seek(offset)
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("Type") == "container" and ev.get("Status") == "create" and ev["ID"] not in ids:
                        ids.append(ev["ID"])
        except FileNotFoundError:
            pass
        return ids

    def leftovers(self, ids):
        """What the containers `ids` (full ids) left behind on the host, as a
        list of strings; empty when the runtime and podman cleaned up."""
        out = []
        for cg in host.cgroup_children(self.cgroup_parent):
            if os.path.basename(cg).startswith("libpod-"):
                out.append(f"cgroup {cg}")
        for pid in host.pids_in_cgroup_tree(self.cgroup_parent):
            if host.alive(pid):
                out.append(f"process {pid} ({host.cmdline(pid)}) in {self.cgroup_parent}")
        for pid in host.processes_mentioning(self.top):
            out.append(f"process {pid} ({host.cmdline(pid)})")
        for m in host.mounts_under(self.top):
            # graphroot/overlay is the storage driver's own bind mount, kept
            # for the life of the store; anything else is a container's.
            if m != os.path.join(self.graphroot, "overlay"):
                out.append(f"mount {m}")
        for cid in ids:
            if runtime_state_exists(self.runtime, cid):
                out.append(f"runtime state for {cid[:12]}")
        return out

    def destroy(self):
        """Remove every container and image, unmount the store, remove the
        session's cgroup parent: the host as it was before the session."""
        self.remove_all()
        # Whatever the runtime failed to delete, so that one broken run does
        # not leave the host dirty for the next.
        for cid in self.created_since(0):
            if runtime_state_exists(self.runtime, cid):
                subprocess.run([self.runtime, "delete", "--force", cid], capture_output=True, timeout=60)
        self("rmi", "-a", "-f", check=False)
        self("system", "reset", "-f", check=False, timeout=300)
        for m in sorted(host.mounts_under(self.top), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        host.remove_cgroup_tree(self.cgroup_parent)
        for d in self.made_host_dirs:
            shutil.rmtree(d, ignore_errors=True)

