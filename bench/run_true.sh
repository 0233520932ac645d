#!/bin/bash
# Issue 3: `/bin/true` in the same busybox bundle with hull, crun and runc,
# side by side in ONE hyperfine run, then the ratios.
# Goal: hull <= 0.5 x crun. The floor (fork+exec of /bin/true, no container)
# is measured in the same run for reference.
#
#   bench/run_true.sh            HULL=build/hull by default; CRUN, RUNC override
#   RUNS=200 WARMUP=20 bench/run_true.sh
#   QUICK=1 bench/run_true.sh    RUNS=30 WARMUP=3 (well under a minute; bench/all)
#   BENCH_JSON=FILE              append rows through bench/benchjson.py
#   CGROUP_VIEW=host|v1|auto     see lib.sh (crun refuses hybrid hosts)
set -u
. "$(dirname "$0")/lib.sh"
if [ -n "${QUICK:-}" ]; then
    RUNS=${RUNS:-30}
    WARMUP=${WARMUP:-3}
fi
bench_start "$@"

BUNDLE=$WORK/bundle
make_bundle "$BUNDLE" -- /bin/true

cmds=(-n "floor: /bin/true (no container)" "/bin/true")
for name in hull crun runc; do
    case $name in hull) rt=$HULL ;; crun) rt=$CRUN ;; runc) rt=$RUNC ;; esac
    runtime_works "$name" "$rt" "$BUNDLE" || continue
    # Same bundle, own state root, one id reused: `run` deletes on exit.
    cmds+=(-n "$name" "$rt --root $STATE/root-$name run --bundle $BUNDLE bench-$name-$$")
done
[ ${#cmds[@]} -gt 2 ] || die "no runtime could run the bundle"

hyperfine -N --warmup "$WARMUP" --min-runs "$RUNS" --export-json "$WORK/result.json" \
    --style basic "${cmds[@]}" </dev/null || die "hyperfine failed"

python3 - "$WORK/result.json" "$(dirname "$0")" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[2])
import benchjson
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = {k: v["mean"] * 1000 for k, v in res.items()}
print("\nmean wall time per run (ms):")
for k, v in ms.items():
    print(f"  {k:34s} {v:8.2f} ± {res[k]['stddev'] * 1000:.2f}")
def ratio(a, b, goal=None):
    if a in ms and b in ms:
        g = f"   (goal <= {goal})  {'MET' if ms[a] / ms[b] <= goal else 'NOT MET'}" if goal else ""
        print(f"  {a}/{b} = {ms[a] / ms[b]:.2f}{g}")
print("ratios:")
ratio("hull", "crun", 0.5)
ratio("hull", "runc")
ratio("crun", "runc")
if "hull" not in ms:
    print("  hull was not measured (see the reason above)")
# CPU (user + system of the whole process tree, from hyperfine's rusage):
# less moved by the machine's load than the wall time, which on a shared
# machine swings with what else runs during each command's batch.
cpu = {k: (v["user"] + v["system"]) * 1000 for k, v in res.items() if "user" in v and "system" in v}
if "hull" in cpu and "crun" in cpu:
    print(f"CPU per run (user+sys, ms): hull {cpu['hull']:.2f}, crun {cpu['crun']:.2f}: "
          f"hull/crun = {cpu['hull'] / cpu['crun']:.2f}")
floor = ms.get("floor: /bin/true (no container)")
note = f"floor (fork+exec of /bin/true) {floor:.2f} ms" if floor else ""
if "hull" in ms:
    benchjson.row("run_true", "hull run /bin/true vs crun", hull=ms["hull"], peer=ms.get("crun"),
                  peer_name="crun", unit="ms", goal="<= 0.5", note=note)
    if "hull" in cpu and "crun" in cpu:
        benchjson.row("run_true", "hull run /bin/true vs crun, CPU (user+sys)", hull=cpu["hull"],
                      peer=cpu["crun"], peer_name="crun", unit="ms", note=note)
    if "runc" in ms:
        benchjson.row("run_true", "hull run /bin/true vs runc", hull=ms["hull"], peer=ms["runc"],
                      peer_name="runc", unit="ms", note=note)
EOF
