"""One read-only host layout, expressed for each tool the sandbox benchmark
compares, so that they all do the same filesystem work:

  host /usr (and /bin, /sbin, /lib* as the host has them: symlinks into
  /usr on a merged-/usr system, read-only binds otherwise), /etc/alternatives
  and the few /etc files a dynamically linked program reads, all read-only;
  a fresh tmpfs at /tmp, /proc, a minimal /dev; nothing else of the host.

That is the default layout of `hull sandbox run` (issue 5).

    python3 sandbox_layout.py bwrap-args CMD...   bwrap's argv, one per line
    python3 sandbox_layout.py bundle DIR CMD...   an OCI bundle for crun/runc
"""

import json
import os
import sys

TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts",
             "/etc/localtime")

# The syscalls issue 5 says the container level denies; an OCI runtime
# compiles this into a BPF filter just as hull does for its own profile.
DENIED = ["keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open", "mount", "umount2",
          "unshare", "setns", "ptrace", "kexec_load", "kexec_file_load", "init_module", "finit_module",
          "delete_module", "pivot_root", "personality", "io_uring_setup", "io_uring_enter",
          "io_uring_register", "open_by_handle_at", "swapon", "swapoff", "reboot", "settimeofday",
          "clock_settime", "acct", "quotactl"]

SANDBOX_UID = 1000  # an unprivileged uid inside...
HOST_BASE = 200000  # ...mapped to an unprivileged range on the host


def layout():
    """(read-only binds, symlinks {name: target}, existing /etc files)."""
    binds, links = ["/usr"], {}
    for name in TOP_LEVEL:
        p = "/" + name
        if os.path.islink(p):
            links[p] = os.readlink(p)
        elif os.path.isdir(p):
            binds.append(p)
    if os.path.isdir("/etc/alternatives"):
        binds.append("/etc/alternatives")
    return binds, links, [f for f in ETC_FILES if os.path.exists(f)]


def bwrap_args(cmd):
    binds, links, etc = layout()
    # Same identity as the bundle's process: own user namespace, uid 1000, no
    # capabilities. bwrap has no cgroup limits and no built-in seccomp filter.
    a = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
         "--cap-drop", "ALL", "--die-with-parent"]
    for b in binds:
        a += ["--ro-bind", b, b]
    for p, target in links.items():
        a += ["--symlink", target, p]
    for f in etc:
        a += ["--ro-bind", f, f]
    a += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp", "--", *cmd]
    return a


def bundle(dest, cmd):
    """A bundle whose rootfs is only mount points and symlinks; everything
    it runs comes from the read-only host binds. Isolation like hull's
    container level: every namespace, an unprivileged uid mapped to an
    unprivileged host range, no capabilities, no_new_privs, memory and pids
    limits, a seccomp deny list."""
    binds, links, etc = layout()
    rootfs = os.path.join(dest, "rootfs")
    for d in ("proc", "dev", "tmp", "etc") + tuple(b.lstrip("/") for b in binds):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for p, target in links.items():
        os.symlink(target, os.path.join(rootfs, p.lstrip("/")))
    for f in etc:
        open(os.path.join(rootfs, f.lstrip("/")), "w").close()
    ro_bind = ["rbind", "ro", "nosuid", "nodev"]
    mounts = [{"destination": b, "type": "bind", "source": b, "options": ro_bind} for b in binds]
    mounts += [{"destination": f, "type": "bind", "source": os.path.realpath(f), "options": ro_bind} for f in etc]
    mounts += [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=64k"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=64m"]},
    ]
    mapping = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]
    spec = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": SANDBOX_UID, "gid": SANDBOX_UID},
            "args": list(cmd),
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/tmp",
            "capabilities": {"bounding": [], "effective": [], "permitted": []},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user", "cgroup")],
            "uidMappings": mapping,
            "gidMappings": mapping,
            "resources": {"memory": {"limit": 256 << 20}, "pids": {"limit": 64}},
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
            },
        },
    }
    with open(os.path.join(dest, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)


def main(argv):
    if len(argv) >= 2 and argv[0] == "bwrap-args":
        print("\n".join(bwrap_args(argv[1:])))
    elif len(argv) >= 3 and argv[0] == "bundle":
        bundle(argv[1], argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
