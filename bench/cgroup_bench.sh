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

# hull keeps /hull as the parent of default cgroups; remove the ones this
# run made, if nobody else uses them by then.
mounts=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) ~ /^cgroup2?$/) print $5 }' \
    /proc/self/mountinfo)
made=""
for m in $mounts; do [ -d "$m/hull" ] || made="$made $m/hull"; done
res=$(mktemp)
trap 'rm -f "$res"; for d in $made; do rmdir "$d" 2>/dev/null || true; done' EXIT
echo '{"memory":{"limit":268435456,"swap":268435456},"pids":{"limit":64},
       "cpu":{"quota":100000,"period":100000}}' >"$res"

echo "host: $("$TOOL" mode) cgroups, kernel $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %s\n' "hull default" "$("$TOOL" bench "$N")"
printf '%-14s %s\n' "hull typical" "$("$TOOL" bench --resources "$res" "$N")"
printf '%-14s %s\n' "every hier." "$("$TOOL" bench --all "$N")"
