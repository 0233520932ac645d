#!/bin/bash
# cgroup create + enter + destroy, N times, on this host's real layout.
#
#   bench/cgroup_bench.sh [N]          (default 500; needs root)
#
# Side by side in one run:
#   hull default   the hierarchies hull joins up front (memory, pids, freezer,
#                  cpuacct, named ones, cgroup2) - what a sandbox run pays
#   hull typical   + memory/pids/cpu-quota limits written (a sandbox policy)
#   every hier.    hull joining every hierarchy, as runc and crun place a
#                  container - the cost hull's on-demand joining avoids
# Each line is cgtool's JSON: mean create/enter/destroy in microseconds, the
# p50/p90 of their sum, and cgroups per second for one process. The fork and
# exit of the entered child are timed apart (fork_wait_us) and not included.
set -eu
cd "$(dirname "$0")/.."
N="${1:-500}"
BUILD="${BUILD:-build}"
TOOL="$BUILD/tests/cgtool"
[ "$(id -u)" = 0 ] || { echo "cgroup_bench: needs root" >&2; exit 1; }
[ -x "$TOOL" ] || make -s BUILD="$BUILD" "$TOOL"

res=$(mktemp)
trap 'rm -f "$res"' EXIT
echo '{"memory":{"limit":268435456,"swap":268435456},"pids":{"limit":64},
       "cpu":{"quota":100000,"period":100000}}' >"$res"

echo "host: $("$TOOL" mode) cgroups, kernel $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %s\n' "hull default" "$("$TOOL" bench "$N")"
printf '%-14s %s\n' "hull typical" "$("$TOOL" bench --resources "$res" "$N")"
printf '%-14s %s\n' "every hier." "$("$TOOL" bench --all "$N")"
