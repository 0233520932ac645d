#!/bin/sh
# seccomp costs with the built-in sandbox profile: compile, cached compile,
# load in a child, per-syscall overhead. Builds libhull first.
#   bench/seccomp.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
B="${1:-build}"
make -s BUILD="$B" "$B/libhull.a"
mkdir -p "$B/bench"
PKGS="json-c libseccomp libcap"
# shellcheck disable=SC2046
gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -iquote src/lib $(pkg-config --cflags $PKGS) \
    -o "$B/bench/seccomp_bench" bench/seccomp_bench.c "$B/libhull.a" $(pkg-config --libs $PKGS)
"$B/bench/seccomp_bench"
