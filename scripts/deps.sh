#!/bin/sh
# Install what a make target needs, from Debian's archive, only when missing.
#   scripts/deps.sh GROUP...   (build, test, bench, vm, all; several may be named)
# Groups are cumulative where it makes sense: test includes build.
set -eu

build="gcc make pkg-config libjson-c-dev libseccomp-dev libcap-dev busybox-static libssl-dev libzstd-dev liblzma-dev libarchive-dev"
test="$build libcmocka-dev python3 python3-pytest iproute2 procps util-linux clang-format"
bench="$build hyperfine crun runc bubblewrap"
# microVMs: QEMU's microvm machine, Debian's guest kernel (hull boots its
# /boot/vmlinuz and takes modules from /lib/modules), the rootfs image tools,
# (libhull links OpenSSL, zstd, liblzma and libarchive: they are in build).
vm="$build qemu-system-x86 linux-image-amd64 squashfs-tools erofs-utils"

want=""
for group in "${@:-build}"; do
    case "$group" in
    build) want="$want $build" ;;
    test) want="$want $test" ;;
    bench) want="$want $bench" ;;
    vm) want="$want $vm" ;;
    all) want="$want $test $bench $vm" ;;
    *) echo "usage: $0 build|test|bench|vm|all..." >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are absent or stale (a fresh machine has none).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -q
fi
apt-get install -y -q --no-install-recommends $missing
