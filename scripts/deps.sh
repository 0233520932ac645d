#!/bin/sh
# Install what a make target needs, from Debian's archive, only when missing.
#   scripts/deps.sh build|test|bench|engines|daemon|queue|vm|image|net|fuzz|js|all
# Groups are cumulative where it makes sense: test includes build.
set -eu

build="gcc make pkg-config libjson-c-dev libseccomp-dev libcap-dev busybox-static libsqlite3-dev libssl-dev libhiredis-dev libzstd-dev liblzma-dev libcurl4-openssl-dev libarchive-dev libmnl-dev libnftables-dev"
# groff-base: tests/integration/test_man.py renders the manual pages.
test="$build libcmocka-dev python3 python3-pytest iproute2 procps util-linux clang-format groff-base"
# Peer runtimes and tools the bench/ scripts compare hull with.
bench="$build python3 util-linux hyperfine crun runc bubblewrap"
# Real clients that drive hull as their OCI runtime (tests/integration/test_{podman,containerd}.py);
# uidmap's newuidmap/newgidmap for rootless podman (tests/integration/test_rootless.py);
# gRPC for Python and its protoc for the CRI client of tests/integration/test_kubernetes.py,
# and the reference CNI plugins (bridge, host-local) for its pods' network.
engines="$build python3 python3-pytest podman conmon containerd runc crun uidmap python3-grpcio python3-grpc-tools containernetworking-plugins"
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

# The TypeScript SDK (sdk/js): Node.js 20 with npm, then the SDK's pinned
# devDependencies (typescript, @types/node) from its package-lock.json, so
# that its suite then runs offline. Debian 12 has Node.js 18 only; this
# machine's Node.js 20 is NodeSource's Debian package (apt-cache policy
# nodejs: 20.x-1nodesource1), so a machine without it gets that too.
js() (
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "deps: Node.js >= 20 with npm is missing (run as root to install it)" >&2
            exit 1
        fi
        echo "deps: installing Node.js 20 (NodeSource's Debian package)"
        export DEBIAN_FRONTEND=noninteractive
        if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
            apt-get update -q
        fi
        apt-get install -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends ca-certificates curl gnupg
        key=/usr/share/keyrings/nodesource.gpg
        if [ ! -s "$key" ]; then
            curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor -o "$key.tmp"
            mv "$key.tmp" "$key"
        fi
        printf 'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\nSigned-By: %s\n' \
            "$key" >/etc/apt/sources.list.d/hull-nodesource.sources
        apt-get update -q
        apt-get install -o DPkg::Lock::Timeout=600 -y -q nodejs
    fi
    # npm ci only when the lock file changed since the last one (a stamp
    # beside node_modules): later runs need no network.
    cd "$(dirname "$0")/../sdk/js"
    want_lock=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat node_modules/.hull-lock-sha256 2>/dev/null)" != "$want_lock" ]; then
        npm ci --no-audit --no-fund
        echo "$want_lock" >node_modules/.hull-lock-sha256
    fi
)

case "${1:-build}" in
js) js; exit 0 ;;
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
all) js; want="$test $bench $engines $daemon $queue $vm $image $net $fuzz" ;;
*) echo "usage: $0 build|test|bench|engines|daemon|queue|vm|image|net|fuzz|js|all" >&2; exit 2 ;;
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
