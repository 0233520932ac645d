"""Abuse of resources: every bomb stops at its limit, with that limit's
verdict, and the host (its disk, its processes) is as it was."""
import os
import subprocess

from sandboxlib import pids_with_env, sandbox_uid_base, status_fields, wait_until

MiB = 1024 * 1024


def test_fork_bomb(hostile):
    # The bomb never ends by itself: a CPU limit ends it (the policy's
    # default); the verdict is the pids limit it ran into.
    r, _ = hostile("forkbomb", opts=("--cpu-time", "2s"))
    assert r.verdict == "pids_limit", r
    # The host still forks.
    assert subprocess.run(["true"]).returncode == 0


def test_shell_fork_bomb(sb):
    r = sb("--wall-time", "5s", cmd=["sh", "-c", "f() { f | f & }; f; sleep 30"])
    assert r.verdict == "pids_limit", r


def test_thread_bomb(hostile):
    r, _ = hostile("threads", opts=("--wall-time", "3s"))
    assert r.verdict == "pids_limit", r
    n = int(r.out.split()[1])
    assert 0 < n < 64  # the default --pids 64 counts threads


def test_memory_bomb(hostile):
    r, _ = hostile("membomb")
    assert r.verdict == "memory_limit", r
    assert r.j["max_memory_kb"] <= 256 * 1024  # the default --memory 256M


def test_memory_bomb_python(sb):
    r = sb("--memory", "64M", cmd=["python3", "-c", "x = []\nwhile True: x.append(' ' * 2**20)"])
    assert r.verdict == "memory_limit", r


def statvfs_free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_tmp_fill(sb):
    """/tmp fills up at --tmp-size with ENOSPC; the host's disks do not move
    (the sandbox's /tmp is memory, charged to its own cgroup)."""
    before = {p: statvfs_free(p) for p in ("/", "/tmp", "/dev/shm")}
    r = sb("--tmp-size", "128M", "--memory", "512M",
           cmd=["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M 2>&1 | grep -F 'No space'; "
                "dd if=/dev/zero of=/dev/shm/fill bs=1M 2>&1 | grep -F 'No space'; df -k /tmp /dev/shm"])
    assert r.verdict == "ok", r
    assert r.out.count("No space left on device") == 2, r.out
    df = [l.split() for l in r.out.splitlines() if l.startswith(("tmpfs", "shm"))]
    assert [(d[1], d[3]) for d in df] == [("131072", "0"), ("65536", "0")], df
    assert r.j["max_memory_kb"] >= 128 * 1024  # the pages were the sandbox's
    for p, free in before.items():
        # Others may use the disk meanwhile; the sandbox wrote 192 MiB.
        assert statvfs_free(p) > free - 64 * MiB, p


def test_output_flood(sb):
    r = sb("--output", "64K", cmd=["sh", "-c", "yes & yes >&2; wait"])
    assert r.verdict == "output_limit", r
    assert len(r.out) <= 64 * 1024 and len(r.err) <= 64 * 1024
    assert r.j["stdout_truncated"] or r.j["stderr_truncated"]
    # Without --json hull passes at most the limit of each stream through.
    p = sb("--output", "64K", cmd=["sh", "-c", "cat /dev/urandom"], json_out=False)
    assert p.rc == 124 and len(p.stdout_bytes) == 64 * 1024, p


def test_background_process_holding_the_pipes(sb):
    """The main process exits while a child keeps stdout open: the run ends
    when the main process does, not when the child would."""
    r = sb(cmd=["sh", "-c", "sleep 3600 & echo done"], timeout=60)
    assert r.verdict == "ok" and r.out == "done\n", r


def test_zombie_and_orphan_storm(hostile):
    """Zombies, orphans that ignore signals and a setsid daemon outlive
    the main process: all of them die with it (Sandbox checks no process
    with the run's token is left)."""
    r, _ = hostile("storm")
    assert r.verdict == "ok" and r.out == "storm ready\n", r


def test_storm_then_cancel_leaves_no_namespace(sb, bins):
    """The same storm under a main process that stays; hull is stopped from
    outside. Afterwards no host process is in the sandbox's namespaces."""
    p, out, err = sb.start("--copy-in", f"{bins / 'hostile'}:/tmp/hostile",
                           cmd=["sh", "-c", "/tmp/hostile storm; exec sleep 3600"])
    assert wait_until(lambda: len(pids_with_env(sb.token)) >= 12)
    pid = sb.workload_pid()
    ns = {t: os.readlink(f"/proc/{pid}/ns/{t}") for t in ("pid", "mnt", "net", "user", "ipc")}
    assert status_fields(pid)["Uid"].split()[0] == str(sandbox_uid_base(pid) + 1000)
    p.terminate()
    r = sb.finish(p, out, err)
    assert r.verdict == "killed", r

    def in_ns():
        found = []
        for d in filter(str.isdigit, os.listdir("/proc")):
            for t, v in ns.items():
                try:
                    if os.readlink(f"/proc/{d}/ns/{t}") == v:
                        found.append((d, t))
                except OSError:
                    pass
        return found
    assert wait_until(lambda: not in_ns()), in_ns()


def test_cpu_hog_with_many_threads(sb):
    code = ("import threading\n"
            "def spin():\n"
            "    while True: pass\n"
            "for i in range(8): threading.Thread(target=spin, daemon=True).start()\n"
            "spin()\n")
    r = sb("--cpu-time", "1s", cmd=["python3", "-c", code])
    assert r.verdict == "cpu_time_limit", r
    assert r.j["cpu_time_ms"] >= 1000
