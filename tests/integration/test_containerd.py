"""containerd drives the OCI runtime under test (OCI_RUNTIME, default $HULL).

The test starts Debian's containerd with its own root, state and socket,
imports a busybox OCI image assembled here, and runs tasks through the
io.containerd.runc.v2 shim with `--runc-binary RUNTIME`. Each test checks the
host's view (processes, namespaces, cgroups, freezer state, files written
into a bind mount); the `containerd` fixture fails it if any cgroup,
process, shim, mount or runtime state is left once its containers are gone.
"""

import os
import time

from engines import host
from engines.containerd import IMAGE
from engines.fixtures import (  # noqa: F401
    busybox_layer,
    busybox_oci_archive,
    containerd,
    containerd_engine,
    oci_runtime_path,
    unique,
)
from engines.scripts import NAMESPACES, NS_SCRIPT, TICKER, trap



def bind(path):
    return ["--mount", f"type=bind,src={path},dst=/out,options=rbind:rw"]


def start(containerd, cid, *cmd, opts=()):
    """ctr run -d; returns the init pid on the host."""
    containerd.run("-d", *opts, IMAGE, cid, *cmd)
    pid, status = containerd.tasks()[cid]
    assert status == "RUNNING", status
    return pid


def status(containerd, cid):
    return containerd.tasks().get(cid, (0, "none"))[1]


def test_run_foreground_output_and_exit_code(containerd):
    r = containerd.run("--rm", IMAGE, unique("fg"), "sh", "-c", "echo out-line; echo err-line >&2; exit 4",
                       check=False)
    assert r.returncode == 4, r.stderr
    assert r.stdout == "out-line\n"
    assert "err-line" in r.stderr


def test_run_foreground_isolation(containerd):
    r = containerd.run("--rm", IMAGE, unique("iso"), "sh", "-c",
                       "echo $$; test -x /bin/busybox && echo busybox-root; test -e /usr || echo no-host-usr")
    assert r.stdout.split() == ["1", "busybox-root", "no-host-usr"]


def test_run_tty(containerd):
    """ctr run -t: the runtime hands the pty master to the shim over
    --console-socket; the shim relays it to ctr's terminal."""
    cmd = containerd.argv("run", "-t", "--rm", *containerd.runtime_args(), IMAGE, unique("tty"),
                          "sh", "-c", "tty; test -t 0 && echo stdin-is-tty; exit 5")
    rc, out = host.run_in_pty(cmd)
    lines = out.replace("\r", "").split()
    assert rc == 5, out
    assert lines[0].startswith("/dev/pts/") and "stdin-is-tty" in lines, out


def test_run_detached(containerd, tmp_path):
    cid = unique("detached")
    pid = start(containerd, cid, "sh", "-c", TICKER, opts=bind(tmp_path))
    assert host.alive(pid)
    assert host.cmdline(pid).startswith("sh -c while")
    for ns in NAMESPACES:
        assert host.ns_id(pid, ns) != host.ns_id(os.getpid(), ns), f"{ns} namespace shared with the host"
    want = f"/{containerd.namespace}/{cid}"
    cg = host.proc_cgroups(pid)
    for ctl in ("memory", "pids", "freezer"):
        assert cg[ctl] == want, f"{ctl} cgroup {cg[ctl]}, expected {want}"
    host.wait_until(lambda: host.file_size(tmp_path / "ticks") > 0, what="the detached task to run")


def test_task_exec(containerd):
    cid = unique("exec")
    pid = start(containerd, cid, "sleep", "1000")
    r = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo from-exec; exit 6", check=False)
    assert (r.returncode, r.stdout) == (6, "from-exec\n"), r.stderr

    r = containerd.ctr("task", "exec", "--exec-id", "e2", cid, "sh", "-c", NS_SCRIPT)
    assert r.stdout.split() == [host.ns_id(pid, ns) for ns in NAMESPACES]

    r = containerd.ctr("task", "exec", "--exec-id", "e3", "--user", "65534", "--cwd", "/tmp", cid,
                       "sh", "-c", "id -u; pwd")
    assert r.stdout.split() == ["65534", "/tmp"]

    # A detached exec runs on in the container's cgroup.
    containerd.ctr("task", "exec", "-d", "--exec-id", "e4", cid, "sleep", "999")
    want = f"/{containerd.namespace}/{cid}"
    host.wait_until(lambda: any(host.cmdline(p) == "sleep 999" for p in host.pids_in_cgroup_tree(want)),
                    what="the exec'd sleep in the container's cgroup")


def test_task_exec_tty(containerd):
    cid = unique("exec-tty")
    start(containerd, cid, "sleep", "1000")
    cmd = containerd.argv("task", "exec", "-t", "--exec-id", "t1", cid, "sh", "-c", "tty; exit 2")
    rc, out = host.run_in_pty(cmd)
    assert rc == 2, out
    assert out.replace("\r", "").split()[0].startswith("/dev/pts/"), out


def test_task_ps(containerd):
    """ctr task ps asks the runtime (`ps --format json`) for the pids."""
    cid = unique("ps")
    pid = start(containerd, cid, "sh", "-c", "sleep 1001 & exec sleep 1002")
    cg = f"/{containerd.namespace}/{cid}"
    host.wait_until(lambda: len(host.pids_in_cgroup_tree(cg)) == 2, what="both processes to start")
    lines = containerd.ctr("task", "ps", cid).stdout.splitlines()[1:]
    listed = sorted(int(line.split()[0]) for line in lines if line.strip())
    assert listed == host.pids_in_cgroup_tree(cg)
    assert pid in listed


def test_pause_resume(containerd, tmp_path):
    cid = unique("pause")
    pid = start(containerd, cid, "sh", "-c", TICKER, opts=bind(tmp_path))
    ticks = tmp_path / "ticks"
    host.wait_until(lambda: host.file_size(ticks) > 0, what="the ticker to start")

    containerd.ctr("task", "pause", cid)
    assert status(containerd, cid) == "PAUSED"
    assert host.freezer_state(pid) == "FROZEN"
    frozen_at = host.file_size(ticks)
    time.sleep(1)  # 20 ticks' worth: a running ticker could not stay still
    assert host.file_size(ticks) == frozen_at, "the ticker advanced while paused"

    containerd.ctr("task", "resume", cid)
    assert status(containerd, cid) == "RUNNING"
    assert host.freezer_state(pid) == "THAWED"
    host.wait_until(lambda: host.file_size(ticks) > frozen_at, what="the ticker to run again after resume")


def test_kill_signal_then_sigkill(containerd, tmp_path):
    cid = unique("kill")
    pid = start(containerd, cid, "sh", "-c", trap("USR1", "sig"), opts=bind(tmp_path))
    host.wait_until(lambda: (tmp_path / "ready").exists(), what="the task to set its trap")
    containerd.ctr("task", "kill", "-s", "SIGUSR1", cid)
    host.wait_until(lambda: (tmp_path / "sig").exists(), what="SIGUSR1 to reach the task")
    assert status(containerd, cid) == "RUNNING"

    containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
    host.wait_until(lambda: status(containerd, cid) == "STOPPED", what="the task to stop")
    assert not host.alive(pid)
    r = containerd.ctr("task", "delete", cid)
    assert "exit code 137" in r.stderr, r.stderr


def test_kill_all(containerd):
    """kill --all reaches every process of the container, exec'd ones too."""
    cid = unique("kill-all")
    pid = start(containerd, cid, "sleep", "1000")
    containerd.ctr("task", "exec", "-d", "--exec-id", "bg", cid, "sleep", "999")
    cg = f"/{containerd.namespace}/{cid}"
    host.wait_until(lambda: len(host.pids_in_cgroup_tree(cg)) == 2, what="the exec'd process to start")
    procs = host.pids_in_cgroup_tree(cg)
    containerd.ctr("task", "kill", "--all", "-s", "SIGKILL", cid)
    host.wait_until(lambda: not any(host.alive(p) for p in procs), what="every process of the task to die")
    host.wait_until(lambda: status(containerd, cid) == "STOPPED", what="the task to stop")
    assert not host.alive(pid)


def test_delete(containerd):
    cid = unique("delete")
    containerd.run("-d", IMAGE, cid, "sh", "-c", "exit 3")
    host.wait_until(lambda: status(containerd, cid) == "STOPPED", what="the task to exit")
    r = containerd.ctr("task", "delete", cid)
    assert "exit code 3" in r.stderr, r.stderr
    assert cid not in containerd.tasks()
    containerd.ctr("containers", "delete", cid)
    assert cid not in containerd.containers()
    # The runtime's own record of it is gone, and so is its cgroup.
    assert not os.path.exists(os.path.join(containerd.runtime_root, containerd.namespace, cid))
    assert not host.cgroup_dirs(f"/{containerd.namespace}/{cid}")
