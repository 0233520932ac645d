#!/bin/bash
# Issue 4: density. Create (and start) N=500 detached containers whose init
# sleeps, with hull and crun (and runc for reference) one after the other in
# one run: time per container, host memory per container (MemAvailable
# before and after), and pause+resume latency on a sample.
# Goals: hull <= crun on time and on memory.
#
#   bench/create500.sh                    N=500 SAMPLE=50 ROUNDS=3
#   RUNTIMES="hull crun" bench/create500.sh
#   QUICK=1 bench/create500.sh            N=300 SAMPLE=10 ROUNDS=1, hull and crun, a
#                                         short warm-up (about 1.5 min; bench/all)
#   BENCH_JSON=FILE                       append rows through bench/benchjson.py
#   CGROUP_VIEW=host|v1|auto              see lib.sh (crun refuses hybrid hosts)
set -u
. "$(dirname "$0")/lib.sh"
bench_start "$@"

if [ -n "${QUICK:-}" ]; then
    N=${N:-300}
    ROUNDS=${ROUNDS:-1}
    SAMPLE=${SAMPLE:-10}
    RUNTIMES=${RUNTIMES:-hull crun}
    CREATE_WARMUP=${CREATE_WARMUP:-5}
fi
N=${N:-500}
ROUNDS=${ROUNDS:-3}
SAMPLE=${SAMPLE:-50}
RUNTIMES=${RUNTIMES:-hull crun runc}
CREATE_WARMUP=${CREATE_WARMUP:-20}
BUNDLE=$WORK/bundle
make_bundle "$BUNDLE" -- /bin/sleep 1000000
PROBE=$WORK/probe-bundle
make_bundle "$PROBE" -- /bin/true

# Containers that survive a crash of the driver are removed here, through
# the runtime that made them (each runtime has its own state root).
bench_cleanup() {
    local name rt id
    for name in $RUNTIMES; do
        rt=$(path_of "$name")
        [ -d "$STATE/root-$name" ] || continue
        for id in $("$rt" --root "$STATE/root-$name" list -q 2>/dev/null); do
            "$rt" --root "$STATE/root-$name" delete --force "$id" >/dev/null 2>&1
        done
    done
}
path_of() { case $1 in hull) echo "$HULL" ;; crun) echo "$CRUN" ;; runc) echo "$RUNC" ;; *) command -v "$1" ;; esac; }

args=()
for name in $RUNTIMES; do
    rt=$(path_of "$name")
    runtime_works "$name" "$rt" "$PROBE" && args+=("$name=$rt")
done
[ ${#args[@]} -gt 0 ] || die "no runtime could run the bundle"
python3 "$(dirname "$0")/create500.py" --bundle "$BUNDLE" --state "$STATE" --n "$N" --sample "$SAMPLE" --rounds "$ROUNDS" \
    --warmup "$CREATE_WARMUP" --tag "hb$$" "${args[@]}"
