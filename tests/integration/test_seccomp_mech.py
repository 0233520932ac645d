"""seccomp mechanism, end to end: profiles compiled by libhull, loaded in a real
child by build/tests/seccomptool, checked by what the child's syscalls and
programs really get from the kernel.

The default sandbox profile must let ordinary programs run (sh, python3, a
gcc-built threaded program, gcc itself) and must refuse every syscall on its
deny list. Denials are checked against a copy of the profile whose default
errno is 77, an errno no kernel path returns for these calls, so a pass
cannot come from the kernel's own EPERM.
"""
import errno
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HULL = Path(os.environ.get("HULL", ROOT / "build" / "hull"))
TOOL = HULL.parent / "tests" / "seccomptool"
SIGSYS = 31


def tool(*args, check=True, timeout=60, **kw):
    assert TOOL.exists(), f"{TOOL} is not built (make {TOOL.relative_to(ROOT)})"
    p = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"seccomptool {args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def syscall(profile, name, *args, mode="syscall"):
    """(ret, errno) of one raw syscall under profile, or ('signal', N).
    mode "int80" makes it a 32-bit syscall through int $0x80."""
    p = tool(mode, profile, name, *args, check=False)
    lines = p.stdout.strip().splitlines()
    assert lines, f"seccomptool {mode} {name}: {p.returncode} {p.stderr}"
    if lines[-1].startswith("signal="):
        sig = int(lines[-1].split("=")[1])
        assert p.returncode == 128 + sig
        return "signal", sig
    assert p.returncode == 0, p.stderr
    kv = dict(f.split("=") for f in lines[-1].split())
    return int(kv["ret"]), int(kv["errno"])


def syscall_int80(profile, nr, *args):
    return syscall(profile, nr, *args, mode="int80")


@pytest.fixture(scope="module")
def default_json():
    return json.loads(tool("print-default").stdout)


@pytest.fixture(scope="module")
def marked_profile(tmp_path_factory, default_json):
    """The default profile with defaultErrnoRet 77."""
    doc = dict(default_json, defaultErrnoRet=77)
    p = tmp_path_factory.mktemp("seccomp") / "marked.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.fixture(autouse=True)
def no_strays():
    """Nothing the tool forks may outlive a test."""
    yield
    mine = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if exe == str(TOOL):
            mine.append(pid)
    assert not mine, f"seccomptool processes left behind: {mine}"


# ---- ordinary programs under the default profile -------------------------------

@pytest.mark.asan
def test_default_profile_runs_shell():
    p = tool("exec", "default", "/bin/sh", "-c",
             "echo hello | tr a-z A-Z; ls / >/dev/null; x=$(cat /etc/hostname); "
             "mkdir -p /tmp/.hull-sc-$$ && rmdir /tmp/.hull-sc-$$ && echo done")
    assert p.stdout.split() == ["HELLO", "done"]


@pytest.mark.asan
def test_default_profile_runs_python():
    p = tool("exec", "default", "/usr/bin/python3", "-c", "print(1)")
    assert p.stdout == "1\n"


def test_default_profile_runs_threads_forks_and_subprocesses():
    code = (
        "import threading, os, subprocess, multiprocessing as mp, socket\n"
        "out = []\n"
        "ts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert sorted(out) == list(range(8))\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(7)\n"
        "assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7\n"
        "assert subprocess.run(['/bin/echo', 'x'], capture_output=True).stdout == b'x\\n'\n"
        "with mp.Pool(2) as pool: assert pool.map(abs, [-1, -2]) == [1, 2]\n"
        "a, b = socket.socketpair(); a.send(b'p'); assert b.recv(1) == b'p'\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print('ok')\n")
    assert tool("exec", "default", "/usr/bin/python3", "-c", code).stdout == "ok\n"


def test_default_profile_runs_gcc_and_a_threaded_program(tmp_path):
    gcc = shutil.which("gcc")
    assert gcc, "gcc is a build dependency"
    src = tmp_path / "t.c"
    src.write_text(
        "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/wait.h>\n"
        "static void *f(void *a) { return a; }\n"
        "int main(void) { pthread_t t[4]; for (int i = 0; i < 4; i++) "
        "pthread_create(&t[i], 0, f, 0); for (int i = 0; i < 4; i++) pthread_join(t[i], 0);\n"
        "pid_t p = fork(); if (p == 0) _exit(3); int s; waitpid(p, &s, 0);\n"
        "printf(\"threads ok %d\\n\", WEXITSTATUS(s)); return 0; }\n")
    exe = tmp_path / "t"
    # gcc itself (cc1, as, ld through posix_spawn and pipes) under the profile
    tool("exec", "default", gcc, "-O1", "-pthread", "-o", exe, src)
    assert tool("exec", "default", exe).stdout == "threads ok 3\n"


# ---- what the default profile refuses -----------------------------------------

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x20000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x08000000, 0x10000000, 0x20000000, 0x40000000)
SIGCHLD = 17

# name, args (harmless ones: were the filter to let a call through, it fails
# on a NULL pointer or a bad fd, or is the child's own business)
DENIED = [
    ("mount", [0, 0, 0, 0, 0]),
    ("umount2", [0, 0]),
    ("unshare", [CLONE_NEWUSER]),
    ("unshare", [CLONE_NEWNS]),
    ("setns", [-1, 0]),
    ("keyctl", [0, 0]),
    ("add_key", [0, 0, 0, 0, 0]),
    ("request_key", [0, 0, 0, 0]),
    ("bpf", [0, 0, 0]),
    ("userfaultfd", [0]),
    ("perf_event_open", [0, 0, 0, 0, 0]),
    ("ptrace", [2, 1, 0, 0]),
    ("process_vm_readv", [1, 0, 0, 0, 0, 0]),
    ("process_vm_writev", [1, 0, 0, 0, 0, 0]),
    ("kexec_load", [0, 0, 0, 0xdead0000]),
    ("kexec_file_load", [-1, -1, 0, 0, 0xdead0000]),
    ("init_module", [0, 0, 0]),
    ("finit_module", [-1, 0, 0]),
    ("delete_module", [0, 0]),
    ("pivot_root", [0, 0]),
    ("chroot", [0]),
    ("personality", [0x0008]),       # PER_LINUX32
    ("personality", [0x0040000]),    # ADDR_NO_RANDOMIZE
    ("io_uring_setup", [0, 0]),
    ("io_uring_enter", [-1, 0, 0, 0, 0, 0]),
    ("io_uring_register", [-1, 0, 0, 0]),
    ("clock_settime", [0, 0]),
    ("clock_adjtime", [0, 0]),
    ("adjtimex", [0]),
    ("settimeofday", [0, 0]),
    ("open_by_handle_at", [-1, 0, 0]),
    ("name_to_handle_at", [-1, 0, 0, 0, 0]),
    ("acct", ["str:/nonexistent-hull-acct"]),
    ("swapon", [0, 0]),
    ("swapoff", [0]),
    ("reboot", [0, 0, 0, 0]),
    ("syslog", [10, 0, 0]),
    ("quotactl", [0, 0, 0, 0]),
    ("lookup_dcookie", [0, 0, 0]),
    ("iopl", [0]),
    ("ioperm", [0, 0, 0]),
    ("modify_ldt", [0, 0, 0]),
    ("create_module", [0, 0]),
    ("get_kernel_syms", [0]),
    ("nfsservctl", [0, 0, 0]),
    ("fsopen", [0, 0]),
    ("kcmp", [0, 0, 0, 0, 0]),
    ("pidfd_getfd", [-1, -1, 0]),
    ("clone", [CLONE_NEWUSER | SIGCHLD]),
    ("clone", [CLONE_NEWNS | SIGCHLD]),
    ("clone", [CLONE_NEWPID | SIGCHLD]),
    ("clone", [CLONE_NEWNET | SIGCHLD]),
    ("clone", [CLONE_NEWIPC | SIGCHLD]),
    ("clone", [CLONE_NEWUTS | SIGCHLD]),
    ("clone", [CLONE_NEWCGROUP | SIGCHLD]),
    ("socket", [17, 3, 0]),          # AF_PACKET
    ("socket", [16, 3, 9]),          # AF_NETLINK, NETLINK_AUDIT
    ("socket", [16, 3, 12]),         # AF_NETLINK, NETLINK_NETFILTER
    ("socket", [38, 5, 0]),          # AF_ALG
    ("socket", [40, 1, 0]),          # AF_VSOCK
]

ALLOWED = [
    ("getppid", []),
    ("clone", [SIGCHLD]),
    ("personality", [0xffffffff]),
    ("personality", [0]),
    ("socket", [1, 1, 0]),           # AF_UNIX
    ("socket", [2, 1, 0]),           # AF_INET
    ("socket", [10, 2, 0]),          # AF_INET6
    ("socket", [16, 3, 0]),          # AF_NETLINK, NETLINK_ROUTE
]


def _id(case):
    return f"{case[0]}({','.join(hex(a) if isinstance(a, int) else a for a in case[1])})"


@pytest.mark.parametrize("case", DENIED, ids=map(_id, DENIED))
def test_default_profile_denies(marked_profile, case):
    name, args = case
    assert syscall(marked_profile, name, *args) == (-1, 77)


@pytest.mark.parametrize("case", ALLOWED, ids=map(_id, ALLOWED))
def test_default_profile_allows(marked_profile, case):
    name, args = case
    ret, err = syscall(marked_profile, name, *args)
    assert ret != "signal" and ret >= 0, (ret, err)


@pytest.mark.asan
def test_default_profile_denies_with_eperm_and_clone3_with_enosys():
    assert syscall("default", "mount", 0, 0, 0, 0, 0) == (-1, errno.EPERM)
    assert syscall("none", "mount", 0, 0, 0, 0, 0) != (-1, errno.EPERM)  # root: EFAULT
    # clone3 answers ENOSYS so glibc falls back to clone
    assert syscall("default", "clone3", 0, 0) == (-1, errno.ENOSYS)
    assert syscall("none", "clone3", 0, 0) == (-1, errno.EINVAL)


def test_32bit_syscalls_kill_the_process(tmp_path):
    target = tmp_path / "made-by-int80"
    # i386 mkdir (39) through int $0x80, first without a filter: proves this
    # kernel runs 32-bit syscalls at all, so the filtered run means something
    ret, err = syscall_int80("none", 39, f"str:{target}", 0o755)
    if (ret, err) == ("signal", 11) or err == errno.ENOSYS:
        pytest.skip("this kernel has no IA32 emulation; int 0x80 cannot be tested")
    assert (ret, err) == (0, 0) and target.is_dir()
    target.rmdir()
    assert syscall_int80("default", 39, f"str:{target}", 0o755) == ("signal", SIGSYS)
    assert not target.exists()
    assert syscall_int80("default", 20) == ("signal", SIGSYS)  # i386 getpid
    # an x32 syscall (x86_64 number | 0x40000000) is a foreign arch too
    assert syscall("default", 0x40000000 | 39) == ("signal", SIGSYS)


def test_profile_listing_x86_lets_32bit_syscalls_follow_its_rules(tmp_path):
    prof = tmp_path / "x86.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}))
    ret, err = syscall_int80("none", 64)  # i386 getppid
    if err == errno.ENOSYS or ret == "signal":
        pytest.skip("this kernel has no IA32 emulation")
    assert syscall_int80(prof, 64) == (-1, 42)
    assert syscall_int80(prof, 20)[0] > 0  # i386 getpid: allowed
    assert syscall(prof, "getppid") == (-1, 42)


def test_default_profile_json_compiles_to_the_same_program(tmp_path, default_json):
    assert default_json["defaultAction"] == "SCMP_ACT_ERRNO"
    assert default_json["defaultErrnoRet"] == errno.EPERM
    listed = {n for s in default_json["syscalls"] for n in s["names"]}
    for name, _ in DENIED:
        if name not in ("clone", "personality", "socket"):
            assert name not in listed
    f = tmp_path / "default.json"
    f.write_text(json.dumps(default_json))
    assert tool("compile", f).stdout == tool("compile", "default").stdout


# ---- user profiles ------------------------------------------------------------

def test_user_profile_in_a_config_json(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"ociVersion": "1.2.0", "linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
            {"names": ["no_such_call_in_any_kernel", "mkdirat"], "action": "SCMP_ACT_KILL"},
        ]}}}))
    assert syscall(cfg, "getcwd", "buf", 100) == (-1, 42)
    assert syscall(cfg, "mkdirat", -100, "str:/nonexistent/x", 0) == ("signal", SIGSYS)
    # a real program sees the same: os.getcwd gets ENOMSG (42)
    code = "import os; print(os.getcwd())"
    p = tool("exec", cfg, "/usr/bin/python3", "-c", code, check=False)
    assert p.returncode == 1 and "[Errno 42]" in p.stderr
    assert tool("exec", "none", "/usr/bin/python3", "-c", code).returncode == 0


@pytest.mark.parametrize("profile, message", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ALLOWED"},
        {"names": ["getcwd"], "action": "SCMP_ACT_KILL"}]},
     "linux.seccomp.syscalls[1].action: unknown action 'SCMP_ACT_ALLOWED'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd", "open at"], "action": "SCMP_ACT_KILL"}]},
     "linux.seccomp.syscalls[0].names[1]: malformed syscall name 'open at'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_KILL",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NEAR"}]}]},
     "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_NEAR'"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"},
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default"),
])
def test_malformed_profiles_are_refused(tmp_path, profile, message):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(profile))
    p = tool("compile", f, check=False)
    assert p.returncode == 1
    assert message in p.stderr
    p = tool("syscall", f, "getppid", check=False)
    assert p.returncode == 1 and message in p.stderr and p.stdout == ""


# ---- SCMP_ACT_NOTIFY: the listener reaches the agent ---------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
NR_GETPPID = 110


def agent(sock, result):
    """A seccomp agent: take the listener, answer one notification with EXDEV."""
    conn, _ = sock.accept()
    with conn:
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
    result["state"] = json.loads(msg)
    result["nfds"] = len(fds)
    fd = fds[0]
    try:
        req = bytearray(80)
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
        nid, pid, _flags, nr, _arch, _ip = struct.unpack_from("=QIIiIQ", req)
        result["pid"], result["nr"] = pid, nr
        fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND,
                    bytearray(struct.pack("=QqiI", nid, 0, -errno.EXDEV, 0)), True)
    finally:
        os.close(fd)


@pytest.mark.asan
def test_notify_listener_reaches_the_agent(tmp_path):
    path = tmp_path / "agent.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    sock.settimeout(20)
    prof = tmp_path / "notify.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(path),
        "listenerMetadata": "hull-test-metadata",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}))
    result = {}
    t = threading.Thread(target=agent, args=(sock, result), daemon=True)
    t.start()
    try:
        p = tool("syscall", prof, "getppid", timeout=30)
    finally:
        t.join(30)
        sock.close()
    # the child's getppid was answered by the agent through the fd it received
    assert p.stdout.strip() == f"ret=-1 errno={errno.EXDEV}"
    st = result["state"]
    assert result["nfds"] == 1 and st["fds"] == ["seccompFd"]
    assert st["metadata"] == "hull-test-metadata"
    assert st["ociVersion"] and st["state"]["pid"] == st["pid"] == result["pid"]
    assert result["nr"] == NR_GETPPID


def test_notify_without_agent_fails_clearly(tmp_path):
    prof = tmp_path / "notify.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}))
    p = tool("syscall", prof, "getppid", check=False, timeout=30)
    assert p.returncode == 1
    assert "linux.seccomp.listenerPath: connecting to" in p.stderr
    assert "No such file or directory" in p.stderr


# ---- through the container runtime ---------------------------------------------

@pytest.mark.asan
@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "cap_sys_admin"])
def test_container_profile_errno_and_kill(hull, bundle, nnp):
    # without no_new_privs the init loads the filter before dropping
    # capabilities, with it as the last step before execve
    bundle.set_args("sh", "-c", "cat /etc/passwd; echo rc=$?; mkdir /tmp/x; echo status=$?")
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["open", "openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
        {"names": ["no_such_syscall_anywhere", "mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    bundle.write()
    r = hull("run", "--bundle", str(bundle.path), "c1")
    assert r.returncode == 0, r
    assert r.stdout.split() == ["rc=1", f"status={128 + SIGSYS}"]
    assert os.strerror(42) in r.stderr


def test_container_malformed_profile_is_refused(hull, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_BOGUS"}]}
    bundle.write()
    r = hull("run", "--bundle", str(bundle.path), "c1")
    assert r.returncode != 0
    assert "linux.seccomp.syscalls[0].action: unknown action 'SCMP_ACT_BOGUS'" in r.stderr
