"""podman drives the OCI runtime under test (OCI_RUNTIME, default $HULL).

Debian's podman with `--runtime RUNTIME`, its own store and config under a
test directory, and a busybox image imported from a tarball made here. Each
test checks what really happened on the host (processes, namespaces, cgroup
files, freezer state, files the container wrote into a bind mount), and the
`podman` fixture fails the test if any cgroup, process, mount or runtime
state of its containers is left afterwards.
"""

import json
import os
import time

from engines import host
from engines.fixtures import busybox_layer, oci_runtime_path, podman, podman_engine, unique  # noqa: F401
from engines.podman import IMAGE
from engines.runtime import runtime_state_exists
from engines.scripts import NAMESPACES, NS_SCRIPT, TICKER, trap


def start(podman, name, *cmd, opts=()):
    """podman run -d; returns (full id, init pid on the host)."""
    cid = podman.run("-d", "--name", name, *opts, IMAGE, *cmd).stdout.strip()
    st = podman.inspect(name)["State"]
    assert st["Status"] == "running", st
    return cid, st["Pid"]


def test_run_foreground_output_and_exit_code(podman):
    r = podman.run("--rm", IMAGE, "sh", "-c", "echo out-line; echo err-line >&2; exit 7", check=False)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out-line\n"
    assert "err-line" in r.stderr


def test_run_foreground_isolation(podman):
    """Own hostname, PID 1, own root: the container's view from inside."""
    r = podman.run("--rm", "--hostname", "hull-box", IMAGE, "sh", "-c",
                   "hostname; echo $$; test -x /bin/busybox && echo busybox-root; test -e /usr || echo no-host-usr")
    assert r.stdout.split() == ["hull-box", "1", "busybox-root", "no-host-usr"]


def test_run_as_a_user_reopens_its_stdout(podman):
    """--user 1000 writing to /dev/stdout and /dev/stderr (as images that log
    there do): conmon's pipes must be the user's, as runc and crun leave
    them."""
    r = podman.run("--rm", "--user", "1000:1000", IMAGE, "sh", "-c",
                   "echo out > /dev/stdout && echo err > /dev/stderr", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\n" and "err" in r.stderr


def test_run_stdin(podman):
    r = podman.run("--rm", "-i", IMAGE, "tr", "a-z", "A-Z", input="hello podman\n")
    assert r.stdout == "HELLO PODMAN\n"


def test_run_detached(podman):
    name = unique("detached")
    cid, pid = start(podman, name, "sleep", "1000")
    assert host.alive(pid)
    assert host.cmdline(pid) == "sleep 1000"
    for ns in NAMESPACES:
        assert host.ns_id(pid, ns) != host.ns_id(os.getpid(), ns), f"{ns} namespace shared with the host"
    cg = host.proc_cgroups(pid)
    want = f"{podman.cgroup_parent}/libpod-{cid}"
    for ctl in ("memory", "pids", "freezer"):
        assert cg[ctl] == want, f"{ctl} cgroup {cg[ctl]}, expected {want}"
    assert pid in host.pids_in_cgroup_tree(want)


def test_exec_output_exit_code_and_namespaces(podman):
    name = unique("exec")
    _, pid = start(podman, name, "sleep", "1000")
    r = podman("exec", name, "sh", "-c", "echo from-exec; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "from-exec\n"), r.stderr

    r = podman("exec", name, "sh", "-c", NS_SCRIPT)
    assert r.stdout.split() == [host.ns_id(pid, ns) for ns in NAMESPACES]

    # A detached exec lands in the container's cgroup, seen from the host.
    podman("exec", "-d", name, "sleep", "999")
    cg = podman.cgroup_parent + "/libpod-" + podman.inspect(name)["Id"]
    host.wait_until(lambda: any(host.cmdline(p) == "sleep 999" for p in host.pids_in_cgroup_tree(cg)),
                    what="the exec'd sleep in the container's cgroup")


def test_exec_user_cwd_env(podman):
    name = unique("exec-opts")
    start(podman, name, "sleep", "1000")
    r = podman("exec", "--user", "65534:65534", "--workdir", "/tmp", "--env", "HULL_T=value", name,
               "sh", "-c", "id -u; id -g; pwd; echo $HULL_T")
    assert r.stdout.split() == ["65534", "65534", "/tmp", "value"]


def test_exec_tty(podman):
    name = unique("exec-tty")
    start(podman, name, "sleep", "1000")
    r = podman("exec", "-t", name, "sh", "-c", "tty; test -t 1 && echo stdout-is-tty")
    lines = r.stdout.replace("\r", "").split()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "stdout-is-tty", r.stdout
    # Without -t the same command sees no terminal: the tty came from the runtime.
    r = podman("exec", name, "tty", check=False)
    assert r.returncode != 0 and "not a tty" in r.stdout


def test_stop_graceful(podman, tmp_path):
    name = unique("stop")
    _, pid = start(podman, name, "sh", "-c", trap("TERM", "term"), opts=("-v", f"{tmp_path}:/out"))
    host.wait_until(lambda: (tmp_path / "ready").exists(), what="the container to set its trap")
    podman("stop", "-t", "60", name)
    st = podman.inspect(name)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 0), st
    assert (tmp_path / "term").read_text() == "got-TERM\n"
    assert not host.alive(pid)


def test_stop_escalates_to_kill(podman):
    """PID 1 without a TERM handler ignores TERM; stop must fall back to KILL."""
    name = unique("stop-kill")
    _, pid = start(podman, name, "sleep", "1000")
    podman("stop", "-t", "1", name)
    st = podman.inspect(name)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 137), st
    assert not host.alive(pid)


def test_kill(podman, tmp_path):
    name = unique("kill")
    _, pid = start(podman, name, "sh", "-c", trap("USR1", "sig"), opts=("-v", f"{tmp_path}:/out"))
    host.wait_until(lambda: (tmp_path / "ready").exists(), what="the container to set its trap")
    podman("kill", "--signal", "USR1", name)
    host.wait_until(lambda: (tmp_path / "sig").exists(), what="SIGUSR1 to reach the container")
    assert (tmp_path / "sig").read_text() == "got-USR1\n"
    assert podman.inspect(name)["State"]["Status"] == "running"
    podman("kill", name)  # SIGKILL
    host.wait_until(lambda: podman.inspect(name)["State"]["Status"] == "exited", what="the container to exit")
    assert podman.inspect(name)["State"]["ExitCode"] == 137
    assert not host.alive(pid)


def test_pause_unpause(podman, tmp_path):
    name = unique("pause")
    _, pid = start(podman, name, "sh", "-c", TICKER, opts=("-v", f"{tmp_path}:/out"))
    ticks = tmp_path / "ticks"
    host.wait_until(lambda: host.file_size(ticks) > 0, what="the ticker to start")

    podman("pause", name)
    assert podman.inspect(name)["State"]["Status"] == "paused"
    assert host.freezer_state(pid) == "FROZEN"
    frozen_at = host.file_size(ticks)
    time.sleep(1)  # 20 ticks' worth: a running ticker could not stay still
    assert host.file_size(ticks) == frozen_at, "the ticker advanced while paused"

    podman("unpause", name)
    assert podman.inspect(name)["State"]["Status"] == "running"
    assert host.freezer_state(pid) == "THAWED"
    host.wait_until(lambda: host.file_size(ticks) > frozen_at, what="the ticker to run again after unpause")


def test_rm_running_and_exited(podman):
    running = unique("rm-running")
    cid, pid = start(podman, running, "sleep", "1000")
    podman("rm", "-f", "-t", "0", running)
    assert running not in podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    host.wait_until(lambda: not host.alive(pid), what="the removed container's init to die")
    host.wait_until(lambda: not runtime_state_exists(podman.runtime, cid), what="runtime state to go")
    host.wait_until(lambda: not host.cgroup_dirs(f"{podman.cgroup_parent}/libpod-{cid}"), what="cgroups to go")

    exited = unique("rm-exited")
    podman.run("--name", exited, IMAGE, "true")
    cid2 = podman.inspect(exited)["Id"]
    assert podman.inspect(exited)["State"]["Status"] == "exited"
    podman("rm", exited)
    assert exited not in podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not runtime_state_exists(podman.runtime, cid2)


def test_logs(podman):
    name = unique("logs")
    podman.run("--name", name, IMAGE, "sh", "-c", "echo one; echo two >&2; echo three")
    r = podman("logs", name)
    assert r.stdout == "one\nthree\n"
    assert r.stderr == "two\n"

    # A detached container's output reaches the log while it runs.
    detached = unique("logs-d")
    start(podman, detached, "sh", "-c", "echo started; exec sleep 1000")
    host.wait_until(lambda: podman("logs", detached).stdout == "started\n", what="the detached container's log")


def test_top(podman):
    name = unique("top")
    start(podman, name, "sh", "-c", "sleep 1001 & exec sleep 1002")
    host.wait_until(lambda: "sleep 1001" in podman("top", name, "args").stdout, what="both processes in top")
    args = [line.strip() for line in podman("top", name, "pid", "args").stdout.splitlines()[1:]]
    assert any(a.endswith("sleep 1002") and a.split()[0] == "1" for a in args), args
    assert any(a.endswith("sleep 1001") for a in args), args


def test_stats_and_limits(podman):
    name = unique("stats")
    _, pid = start(podman, name, "sleep", "1000", opts=("--memory", "64m", "--pids-limit", "50"))
    # The runtime wrote the limits into the kernel...
    assert host.memory_limit(pid) == 64 << 20
    assert host.pids_limit(pid) == 50
    # ...and podman reads the usage back from the container's cgroup.
    st = json.loads(podman("stats", "--no-stream", "--format", "json", name).stdout)[0]
    assert st["mem_usage"].endswith("/ 67.11MB"), st
    assert st["pids"] == "1", st
