"""linux.seccomp through the runtime (the filter itself is covered by
test_seccomp_mech.py): errno, trap and kill actions as the container's
program sees them, argument conditions, defaultErrnoRet, the filter loaded
after the setup steps it would block, refused profiles that leave nothing
behind, and the SCMP_ACT_NOTIFY listener handed to an agent with the
container's state.
"""
import errno
import fcntl
import json
import os
import socket
import struct
import threading
from signal import SIGSYS

import pytest

from conftest import pid_alive, wait_until
from rt4 import (TOKEN, assert_error, assert_nothing_left, children_of, cid, proc_status,
                 running)

MKDIR = "mkdir /tmp/d1 2>&1; echo status=$?"


def profile(*rules, default="SCMP_ACT_ALLOW", **kw):
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": list(rules), **kw}


def run(hull, bundle, script, seccomp, nnp=True):
    bundle.config["root"]["readonly"] = False
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = seccomp
    bundle.set_args("sh", "-c", script).write()
    return hull("run", "--bundle", str(bundle.path), cid())


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions(hull, bundle, tmp_path, action):
    r = run(hull, bundle, MKDIR, profile({"names": ["mkdir", "mkdirat"], "action": action}))
    assert r.stdout.split()[-1] == f"status={128 + SIGSYS}", r
    assert not (bundle.rootfs / "tmp" / "d1").exists()


@pytest.mark.asan
def test_errno_action_and_arguments(hull, bundle, tmp_path):
    # chmod to exactly 0700 is refused with EXDEV, to a mode with the setuid
    # bit (masked) with ENOTTY, to anything else allowed
    def rule(errno_, op, value, two=None):
        arg = {"value": value, "op": op, **({"valueTwo": two} if two is not None else {})}
        return [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_,
                 "args": [{"index": 1, **arg}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_,
                 "args": [{"index": 2, **arg}]}]
    rules = [*rule(errno.EXDEV, "SCMP_CMP_EQ", 0o700),
             *rule(errno.ENOTTY, "SCMP_CMP_MASKED_EQ", 0o4000, 0o4000),
             {"names": ["this_syscall_does_not_exist", "mkdir_v42"], "action": "SCMP_ACT_KILL"}]
    script = ("touch /tmp/f; chmod 700 /tmp/f; echo a=$?; chmod 4755 /tmp/f; echo s=$?; "
              "chmod 750 /tmp/f; echo p=$?; stat -c %a /tmp/f")
    r = run(hull, bundle, script, profile(*rules))
    assert r.stdout.split() == ["a=1", "s=1", "p=0", "750"], r
    assert os.strerror(errno.EXDEV) in r.stderr and os.strerror(errno.ENOTTY) in r.stderr


def test_default_errno_ret(hull, bundle, tmp_path):
    # default: refuse with EPERM... except that defaultErrnoRet says ENOSYS;
    # everything busybox needs to run this script is allowed
    allowed = ["read", "write", "exit", "exit_group", "execve", "brk", "arch_prctl",
               "set_tid_address", "set_robust_list", "rt_sigaction", "rt_sigprocmask",
               "rt_sigreturn", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
               "fcntl", "dup2", "dup3", "close", "wait4", "fork", "vfork", "clone", "clone3",
               "stat", "newfstatat", "fstat", "lstat", "statx", "openat", "open", "ioctl",
               "mmap", "munmap", "mprotect", "prlimit64", "getrandom", "rseq", "uname",
               "getcwd", "readlink", "access", "faccessat", "faccessat2", "lseek", "poll",
               "futex", "sigaltstack", "gettid", "tgkill", "getdents64", "pipe", "pipe2"]
    seccomp = profile({"names": allowed, "action": "SCMP_ACT_ALLOW"}, default="SCMP_ACT_ERRNO",
                      defaultErrnoRet=errno.ENOSYS)
    r = run(hull, bundle, "echo hi; mkdir /tmp/z; echo status=$?", seccomp)
    assert r.stdout.split() == ["hi", "status=1"], r
    assert os.strerror(errno.ENOSYS) in r.stderr, r


def test_filter_loaded_after_setup_it_would_block(hull, bundle, tmp_path):
    """With noNewPrivileges the filter is the last step before execve: a
    profile denying setuid/setgid/setgroups/capset/prctl still lets the
    runtime switch user and drop capabilities first."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    denied = ["setuid", "setgid", "setresuid", "setresgid", "setgroups", "capset", "prctl",
              "chdir", "setsid", "sethostname", "pivot_root", "mount", "umount2"]
    seccomp = profile({"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM})
    bundle.linux["seccomp"] = seccomp
    with running(hull, bundle, name="c2", start=True) as (c, pid):
        s = proc_status(pid)
        assert s["Uid"].split() == ["1000"] * 4 and s["Groups"].split() == ["5"]
        assert s["Seccomp"] == "2" and s["NoNewPrivs"] == "1" and int(s["CapEff"], 16) == 0
        r = hull("exec", c, "hostname", "x")
        assert r.returncode != 0
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("seccomp, fragment", [
    (profile({"names": ["getcwd", "mk dir"], "action": "SCMP_ACT_KILL"}),
     "linux.seccomp.syscalls[0].names[1]: malformed syscall name 'mk dir'"),
    (profile({"names": ["getcwd"], "action": "SCMP_ACT_SOMETIMES"}),
     "linux.seccomp.syscalls[0].action: unknown action 'SCMP_ACT_SOMETIMES'"),
    (profile(default="SCMP_ACT_NOPE"), "linux.seccomp.defaultAction"),
    (profile({"names": ["getcwd"], "action": "SCMP_ACT_KILL",
              "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}),
     "linux.seccomp.syscalls[0].args[0].index"),
    (profile({"names": ["getcwd"], "action": "SCMP_ACT_KILL",
              "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}),
     "linux.seccomp.syscalls[0].args[0].op"),
    ({**profile(), "architectures": ["SCMP_ARCH_Z80"]}, "linux.seccomp.architectures[0]"),
    (profile(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "linux.seccomp.flags[0]"),
    (profile({"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}),
     "listenerPath"),
])
def test_malformed_profile_refused_before_anything(hull, bundle, tmp_path, seccomp, fragment):
    bundle.linux["seccomp"] = seccomp
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, fragment)
    assert_nothing_left(hull, tmp_path, TOKEN)


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101


def agent(sock, result):
    """A seccomp agent: take the listener fd, answer one call with EXDEV."""
    try:
        conn, _ = sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        result["msg"] = json.loads(msg)
        result["fds"] = fds
        req = bytearray(80)
        fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_RECV, req, True)
        nid, pid, _flags, nr, _arch, _ip = struct.unpack_from("=QIIiIQ", req)
        result["pid"], result["nr"] = pid, nr
        fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_SEND,
                    bytearray(struct.pack("=QqiI", nid, 0, -errno.EXDEV, 0)), True)
    except Exception as e:  # reported by the test
        result["error"] = e
    finally:
        for fd in result.get("fds", []):
            os.close(fd)


@pytest.mark.asan
def test_notify_listener_reaches_the_agent_with_the_container_state(hull, bundle, tmp_path):
    path = tmp_path / "agent.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    sock.settimeout(30)
    result = {}
    t = threading.Thread(target=agent, args=(sock, result), daemon=True)
    t.start()
    bundle.config["annotations"] = {"org.test": "notify"}
    bundle.config["root"]["readonly"] = False
    bundle.linux["seccomp"] = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
        listenerPath=str(path), listenerMetadata="agent-metadata")
    out = bundle.rootfs / "tmp" / "out"
    try:
        with running(hull, bundle, start=False,
                     args=("sh", "-c", "mkdir /tmp/n; echo status=$? > /tmp/out; "
                           "exec sleep 1000")) as (c, pid):
            # the agent has the listener once create returns
            assert wait_until(lambda: "msg" in result or "error" in result)
            hull("start", c, check=True)
            t.join(30)
            assert "error" not in result, result
            assert wait_until(lambda: out.exists() and out.read_text() == "status=1\n")
            assert not (bundle.rootfs / "tmp" / "n").exists()
            # the call came from the container's program (a child of the init's shell)
            assert result["pid"] in (pid, *children_of(pid)) or not pid_alive(result["pid"])
    finally:
        sock.close()
    msg = result["msg"]
    assert len(result["fds"]) == 1 and msg["fds"] == ["seccompFd"]
    assert msg["metadata"] == "agent-metadata" and msg["ociVersion"]
    assert msg["pid"] == pid and msg["state"]["pid"] == pid
    assert msg["state"]["id"] == c and msg["state"]["bundle"] == str(bundle.path)
    assert msg["state"]["annotations"] == {"org.test": "notify"}
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_notify_without_agent_fails_create_clearly(hull, bundle, tmp_path):
    bundle.linux["seccomp"] = profile({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                                      listenerPath=str(tmp_path / "nobody.sock"))
    bundle.write()
    r = hull("create", "--bundle", str(bundle.path), cid())
    assert_error(r, "linux.seccomp.listenerPath", "No such file or directory")
    assert_nothing_left(hull, tmp_path, TOKEN)
