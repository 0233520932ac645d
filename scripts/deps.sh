#!/bin/sh
# Install what a make target needs, from Debian's archive, only when missing.
#   scripts/deps.sh build|test|bench|engines|daemon|queue|vm|image|net|fuzz|all
# Groups are cumulative where it makes sense: test includes build.
set -eu

build="gcc make pkg-config libjson-c-dev libseccomp-dev libcap-dev busybox-static libsqlite3-dev libssl-dev libhiredis-dev libzstd-dev liblzma-dev libcurl4-openssl-dev libarchive-dev libmnl-dev libnftables-dev"
# groff-base: tests/integration/test_man.py renders the manual pages.
test="$build libcmocka-dev python3 python3-pytest iproute2 procps util-linux clang-format groff-base"
# Peer runtimes and tools the bench/ scripts compare hull with.
bench="$build python3 util-linux hyperfine crun runc bubblewrap"
# Real clients that drive hull as their OCI runtime (tests/integration/test_{podman,containerd}.py);
# uidmap's newuidmap/newgidmap for rootless podman (tests/integration/test_rootless.py).
engines="$build python3 python3-pytest podman conmon containerd runc crun uidmap"
# hulld, the service (and `hull token`): HTTP server, store, token hashing; curl and
# openssl (a TLS certificate) for its tests.
daemon="$build libmicrohttpd-dev curl sqlite3 openssl"
# The Redis job queue: hiredis (also in build: libhull's queue links it) and
# the real redis-server that tests/integration/test_queue.py starts.
queue="$build libhiredis-dev redis-server python3 python3-pytest"
# microVMs: QEMU's microvm machine, Debian's guest kernel (hull boots its
# /boot/vmlinuz and takes modules from /lib/modules), the rootfs image tools.
vm="$build qemu-system-x86 linux-image-amd64 squashfs-tools erofs-utils cpio"
# Images (tests/integration/test_image*.py, bench/image_pull): the real
# registry (distribution 2.8) and the peers hull must interoperate with;
# htpasswd for Basic auth, openssl for the TLS registry's CA, zstd layers.
image="$build python3 python3-pytest docker-registry skopeo umoci podman buildah apache2-utils openssl zstd squashfs-tools erofs-utils"
# Networks (tests/integration/test_net*.py, bench/net): nft to read back
# hull's rules, iperf3 and python3's http.server as the test "internet".
net="$build python3 python3-pytest iproute2 nftables iperf3 curl"
# libFuzzer targets (make fuzz, tests/fuzz): clang, and compiler-rt's
# libFuzzer and sanitizer runtimes (not pulled in by clang without
# recommends); hulld's target links libmicrohttpd.
fuzz="$build clang libclang-rt-14-dev libmicrohttpd-dev"

case "${1:-build}" in
build) want="$build" ;;
test) want="$test" ;;
bench) want="$bench" ;;
engines) want="$engines" ;;
daemon) want="$daemon" ;;
queue) want="$queue" ;;
vm) want="$vm" ;;
image) want="$image" ;;
net) want="$net" ;;
fuzz) want="$fuzz" ;;
all) want="$test $bench $engines $daemon $queue $vm $image $net $fuzz" ;;
*) echo "usage: $0 build|test|bench|engines|daemon|queue|vm|image|net|fuzz|all" >&2; exit 2 ;;
esac

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
# Wait for another apt run (a parallel session, unattended upgrades) instead of failing.
apt-get install -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends $missing
