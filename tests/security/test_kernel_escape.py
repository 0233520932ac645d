"""Attacks through the kernel's interfaces: refused syscalls, the clock,
ptrace, the network, signals to host processes, 32-bit entry points and
the cgroup release_agent."""
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandboxlib import HOST_UID, HULL, cgroup_mounts, sha256

# What the built-in profile (and the missing capabilities) answer.
REFUSED = {
    "mount": "EPERM", "mount_cgroup": "EPERM", "mount_proc": "EPERM", "umount": "EPERM",
    "unshare_user": "EPERM", "unshare_mnt": "EPERM", "unshare_cgroup": "EPERM",
    "unshare_net": "EPERM", "setns": "EPERM", "clone_newuser": "EPERM",
    "clone3": "ENOSYS",  # so that glibc falls back to clone, whose flags are checked
    "pivot_root": "EPERM", "chroot": "EPERM", "init_module": "EPERM",
    "finit_module": "EPERM", "delete_module": "EPERM", "kexec_load": "EPERM",
    "kexec_file_load": "EPERM", "keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
    "bpf": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM",
    "io_uring_setup": "EPERM", "personality": "EPERM", "open_by_handle_at": "EPERM",
    "name_to_handle_at": "EPERM", "reboot": "EPERM", "swapon": "EPERM", "syslog": "EPERM",
    "acct": "EPERM", "sethostname": "EPERM", "iopl": "EPERM", "ioperm": "EPERM",
    "mknod_block": "EPERM", "mknod_char": "EPERM", "socket_raw": "EPERM",
    "socket_packet": "EPERM", "socket_netlink_audit": "EPERM", "socket_vsock": "EPERM",
    "socket_alg": "EPERM", "setuid0": "EPERM", "setgid0": "EPERM", "modify_ldt": "EPERM",
}

# A namespace through clone or clone3 (hostile nsclone): a user namespace
# would give the new process every capability in it.
NSCLONE = {
    "clone_newuser": "EPERM", "clone_newuser_newnet": "EPERM", "clone_newns": "EPERM",
    "clone_newpid": "EPERM", "clone3_newuser": "ENOSYS", "clone3_plain": "ENOSYS",
    "unshare_user": "EPERM", "unshare_net": "EPERM",
}


def test_refused_syscalls(hostile):
    r, res = hostile("syscalls")
    assert r.verdict == "ok", r
    got = {k: v[1] for k, v in res.items()}
    assert got == REFUSED, {k: (got.get(k), v) for k, v in REFUSED.items() if got.get(k) != v}
    assert all(v[0] == "-1" for v in res.values())


def test_clock_cannot_be_changed(hostile):
    wall0, mono0 = time.time(), time.monotonic()
    r, res = hostile("clock")
    assert r.verdict == "ok", r
    assert res and all(v == ("-1", "EPERM") for v in res.values()), res
    # The host's clock still runs with the monotonic one.
    drift = (time.time() - wall0) - (time.monotonic() - mono0)
    assert abs(drift) < 1.0, drift


def test_ptrace_of_a_sibling(hostile):
    r, res = hostile("ptrace")
    assert r.verdict == "ok", r
    for name in ("ptrace_attach", "ptrace_seize", "process_vm_readv", "process_vm_writev",
                 "kcmp", "pidfd_getfd", "ptrace_traceme"):
        assert res[name] == ("-1", "EPERM"), (name, res[name])
    assert res["proc1_mem"] == ("-1", "EACCES")  # the init (hull) is not dumpable


@pytest.fixture
def host_listeners():
    """On the host: a TCP server on 127.0.0.1, a UDP socket on 127.0.0.1 and
    an abstract unix socket. Each records what reaches it."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    name = f"hull-sec-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind("\0" + name)
    unix.listen(8)
    unix.settimeout(0.1)
    got = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            for s in (tcp, unix):
                try:
                    c, _ = s.accept()
                    got.append(("accept", s.family))
                    c.close()
                except OSError:
                    pass
            try:
                got.append(("udp", udp.recv(100)))
            except OSError:
                pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield tcp.getsockname()[1], udp.getsockname()[1], name, got
    stop.set()
    t.join()
    for s in (tcp, udp, unix):
        s.close()


def host_addresses():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                         text=True).stdout
    return [l.split()[3].split("/")[0] for l in out.splitlines() if " lo " not in l]


def test_network_reaches_nothing_on_the_host(sb, host_listeners):
    tcp, udp, unix_name, got = host_listeners
    targets = ["127.0.0.1"] + host_addresses()
    code = ("import socket, sys\n"
            "tcp, udp, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
            "for ip in sys.argv[4:]:\n"
            "    try:\n"
            "        socket.create_connection((ip, tcp), timeout=3); print(ip, 'connected')\n"
            "    except OSError as e: print(ip, e.errno)\n"
            "    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "    try: u.sendto(b'x', (ip, udp))\n"
            "    except OSError: pass\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "    s.connect('\\0' + name); print('unix connected')\n"
            "except OSError as e: print('unix', e.errno)\n")
    r = sb(cmd=["python3", "-c", code, tcp, udp, unix_name, *targets])
    assert r.verdict == "ok", r
    lines = r.out.splitlines()
    assert lines[0] == "127.0.0.1 111"  # ECONNREFUSED: the sandbox's own lo
    for line in lines[1:-1]:
        assert line.split()[1] == "101", line  # ENETUNREACH: no route out
    assert lines[-1] == "unix 111"  # abstract sockets belong to the net namespace
    time.sleep(0.3)  # let the listener thread look once more
    assert got == []


def test_signals_do_not_reach_host_processes(hostile):
    """A host sleeper, and one running as the very uid the sandbox's user
    has on the host: kill from inside finds neither (pid namespace), and
    kill(-1) reaches nothing outside."""
    plain = subprocess.Popen(["sleep", "600"])
    same_uid = subprocess.Popen(["sleep", "600"], user=HOST_UID, group=HOST_UID)
    try:
        r, res = hostile("kill", str(plain.pid), str(same_uid.pid), str(os.getpid()), "1")
        assert r.verdict == "ok", r
        assert res[f"kill_{plain.pid}"] == ("-1", "ESRCH")
        assert res[f"kill_{same_uid.pid}"] == ("-1", "ESRCH")
        assert res[f"kill_{os.getpid()}"] == ("-1", "ESRCH")
        assert res["kill_1"] == ("0", "0")  # its own init, which ignores it
        assert plain.poll() is None and same_uid.poll() is None
    finally:
        for p in (plain, same_uid):
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def host_int80_signal(bins):
    """What this host does with `int $0x80` outside any sandbox: 0 when the
    32-bit entry point works, else the signal the host kills with (some
    hypervisors' kernels turn it into SIGSEGV for every process)."""
    p = subprocess.run([str(bins / "hostile"), "int80"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode < 0:
        return -p.returncode
    assert p.returncode == 0 and "int80 returned" in p.stdout, p
    return 0


def test_int80_is_killed(hostile, host_int80_signal):
    """A 32-bit syscall never reaches the kernel unfiltered: the filter kills
    with SIGSYS, or the host itself refuses the entry point exactly as it
    does outside the sandbox."""
    r, _ = hostile("int80")
    allowed = {signal.SIGSYS, host_int80_signal} - {0}
    assert r.verdict == "signaled" and r.j["signal"] in allowed, (r, host_int80_signal)
    assert "int80 returned" not in r.out


def test_x32_is_killed(hostile):
    r, _ = hostile("x32")
    assert (r.verdict, r.j["signal"]) == ("signaled", signal.SIGSYS), r


def test_release_agent_cve_2022_0492(sb, bins):
    """No cgroupfs in the sandbox, none can be mounted, no cgroup namespace
    of its own can be made; on the host the sandbox's cgroup does not notify
    on release and no hierarchy's release_agent changed."""
    agents = {m: Path(m, "release_agent").read_text() for m in cgroup_mounts()
              if Path(m, "release_agent").exists()}
    p, out, err = sb.start("--copy-in", f"{bins / 'hostile'}:/tmp/hostile", cmd=[
        "sh", "-c", "test -e /sys/fs/cgroup || echo no-cgroupfs; cat /proc/self/cgroup; "
        "/tmp/hostile syscalls | grep -E '^(mount_cgroup|unshare_cgroup) '; sleep 600"])
    pid = sb.workload_pid(cmdline="sleep 600")  # the probes before it are done
    with open(f"/proc/{pid}/cgroup") as f:
        paths = {l.split(":", 2)[2].strip() for l in f}
    mine = [p for p in paths if p.startswith("/hull/")]
    assert mine
    for m in cgroup_mounts():
        nor = Path(m + mine[0], "notify_on_release")
        if nor.exists():
            assert nor.read_text().strip() == "0", nor
    p.terminate()
    r = sb.finish(p, out, err)
    lines = r.out.splitlines()
    assert lines[0] == "no-cgroupfs", r
    # Inside its cgroup namespace the sandbox is at the root of every hierarchy.
    assert all(l.endswith(":/") for l in lines[1:] if l[0].isdigit()), lines
    assert "mount_cgroup -1 EPERM" in lines and "unshare_cgroup -1 EPERM" in lines
    for m, v in agents.items():
        assert Path(m, "release_agent").read_text() == v, m


def test_hull_binary_unchanged(hull_hash):
    """After everything above (this file runs late in the battery)."""
    assert sha256(HULL) == hull_hash


def test_namespaces_through_clone_and_clone3_are_refused(hostile):
    """unshare is not the only way to a namespace: clone with CLONE_NEW*
    flags is refused by a masked compare of its flags, and clone3 (whose
    flags seccomp cannot read) answers ENOSYS so that libc falls back to
    clone."""
    r, res = hostile("nsclone")
    assert r.verdict == "ok", r
    assert {k: v[1] for k, v in res.items()} == NSCLONE, r.out
    assert all(v[0] == "-1" for v in res.values()), r.out
