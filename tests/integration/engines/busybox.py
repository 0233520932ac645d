"""Busybox images and bundles made locally from Debian's busybox-static.

Nothing here touches a registry: the root filesystem is /bin/busybox plus one
symlink per applet, and every format the engines want is assembled from it:

  make_rootfs(dir)            the directory tree
  rootfs_tar(rootfs, tar)     a reproducible layer tarball (podman import)
  oci_archive(layer, out)     an OCI image layout tarball (ctr images import)
  make_bundle(dir, args)      an OCI runtime bundle: rootfs/ + config.json

Also a command line for the bench scripts, which want the same bundles:

  python3 busybox.py bundle DIR [--cgroups-path P] -- ARGS...
  python3 busybox.py rootfs DIR
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
IMAGE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# Directories a container expects to exist as mount points or scratch space.
_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "out", "var/tmp")

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def applets():
    """The applet names this busybox provides, without `busybox` itself:
    a `busybox -> busybox` symlink would replace the binary with a loop."""
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted({a for a in out.split() if a and a != "busybox" and "/" not in a})


def make_rootfs(dest):
    """Create a busybox root filesystem at dest (which must not exist yet)."""
    if not os.path.exists(BUSYBOX):
        raise FileNotFoundError(f"{BUSYBOX} is missing (install busybox-static)")
    os.makedirs(dest)
    for d in _DIRS:
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(dest, "bin", "busybox"))
    for a in applets():
        os.symlink("busybox", os.path.join(dest, "bin", a))
    for name, text in (("passwd", _PASSWD), ("group", _GROUP), ("hostname", "busybox\n")):
        with open(os.path.join(dest, "etc", name), "w") as f:
            f.write(text)
    return dest


def rootfs_tar(rootfs, tar_path):
    """A reproducible tarball of rootfs: sorted names, owner root, mtime 0,
    so the layer digest is the same on every machine."""

    def norm(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 0
        return ti

    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as t:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            rel = os.path.relpath(top, rootfs)
            if rel != ".":
                t.add(top, arcname=rel, recursive=False, filter=norm)
            for f in sorted(files):
                t.add(os.path.join(top, f), arcname=os.path.normpath(os.path.join(rel, f)), filter=norm)
    return tar_path


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(layer_tar, out, ref, cmd=("/bin/sh",)):
    """An OCI image layout (oci-layout, index.json, blobs/sha256/...) holding one
    image with the given uncompressed layer, written as a tarball to out.
    ref is recorded both as the OCI ref name and as containerd's image name."""
    with open(layer_tar, "rb") as f:
        layer = f.read()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=" + IMAGE_PATH], "Cmd": list(cmd)},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "org.opencontainers.image.ref.name": ref,
                        "io.containerd.image.name": ref,
                    },
                }
            ],
        }
    ).encode()

    with tarfile.open(out, "w") as t:

        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in (layer, config, manifest):
            add("blobs/sha256/" + _digest(blob)[len("sha256:") :], blob)
    return out


# The namespaces runc's and crun's default spec creates (no user namespace, so
# the same bundle runs under every runtime as root).
DEFAULT_NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def config(args, *, readonly=True, terminal=False, cgroups_path=None, namespaces=DEFAULT_NAMESPACES,
           env=("PATH=" + IMAGE_PATH,), cwd="/", hostname="busybox"):
    """An OCI runtime-spec config.json dict for the busybox rootfs: the usual
    default mounts, masked and read-only /proc paths and a small capability set."""
    spec = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": list(env),
            "cwd": cwd,
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in namespaces],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                            "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if cgroups_path is not None:
        spec["linux"]["cgroupsPath"] = cgroups_path
    return spec


def make_bundle(bundle, args, rootfs=None, **kw):
    """An OCI bundle at bundle/: a fresh busybox rootfs, or a symlink-free copy
    of `rootfs` when given (hard to share: runtimes resolve root.path relative
    to the bundle), and config.json built by config(args, **kw)."""
    os.makedirs(bundle, exist_ok=True)
    dest = os.path.join(bundle, "rootfs")
    if rootfs:
        shutil.copytree(rootfs, dest, symlinks=True)
    else:
        make_rootfs(dest)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config(args, **kw), f, indent=1)
    return bundle


def main(argv):
    p = argparse.ArgumentParser(description="busybox rootfs and OCI bundles from busybox-static")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rootfs", help="create a busybox root filesystem")
    r.add_argument("dir")
    b = sub.add_parser("bundle", help="create an OCI bundle running ARGS")
    b.add_argument("dir")
    b.add_argument("--rootfs", help="copy this rootfs instead of making a new one")
    b.add_argument("--cgroups-path")
    b.add_argument("--writable", action="store_true", help="root.readonly = false")
    b.add_argument("--namespaces", default=",".join(DEFAULT_NAMESPACES),
                   help="comma-separated namespace types")
    b.add_argument("args", nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "rootfs":
        make_rootfs(a.dir)
    else:
        make_bundle(a.dir, a.args, rootfs=a.rootfs, cgroups_path=a.cgroups_path,
                    readonly=not a.writable, namespaces=tuple(n for n in a.namespaces.split(",") if n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
