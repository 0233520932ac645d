#!/bin/sh
# seccomp costs with the built-in sandbox profile: compile, cached compile,
# load in a child, per-syscall overhead. Builds libhull first.
#   bench/seccomp.sh [BUILD_DIR]
set -eu
cd "$(dirname "$0")/.."
B="${1:-build}"
make -s BUILD="$B" "$B/bench/seccomp_bench"
"$B/bench/seccomp_bench"
