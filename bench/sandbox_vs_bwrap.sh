#!/bin/bash
# Issue 5: `hull sandbox run -- /bin/true` at full container isolation vs
# `bwrap --unshare-all --die-with-parent` with the same read-only layout vs
# `crun run` of an equivalent bundle (same layout, every namespace, an
# unprivileged uid, no capabilities, memory+pids limits, a seccomp deny
# list), side by side in one hyperfine run; then runs per second with 1, 2
# and 8 at a time. The layout is defined once in sandbox_layout.py.
# Goals: hull's time <= bwrap's; >= 300 runs/s on 2 cores.
#
#   bench/sandbox_vs_bwrap.sh          RUNS=100 WARMUP=10 TOTAL=300 PARALLEL="1 2 8"
#   CGROUP_VIEW=host|v1|auto           see lib.sh (crun refuses hybrid hosts)
set -u
. "$(dirname "$0")/lib.sh"
bench_start "$@"

TOTAL=${TOTAL:-300}
PARALLEL=${PARALLEL:-1 2 8}
LAYOUT="python3 $(dirname "$0")/sandbox_layout.py"
BUNDLE=$WORK/sandbox-bundle
$LAYOUT bundle "$BUNDLE" /bin/true || die "cannot make the crun bundle"
mapfile -t BWRAP < <($LAYOUT bwrap-args /bin/true)

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }

if err=$("$HULL" sandbox run -- /bin/true 2>&1 </dev/null); then
    add "hull sandbox" "$HULL sandbox run -- /bin/true"
else
    note "hull sandbox: cannot run here, skipped: $(printf '%s' "$err" | head -2 | tr '\n' ' ')"
fi
if err=$("${BWRAP[@]}" 2>&1 </dev/null); then
    add "bwrap" "${BWRAP[*]}"
else
    note "bwrap: cannot run here, skipped: $err"
fi
if runtime_works crun "$CRUN" "$BUNDLE"; then
    add "crun" "$CRUN --root $STATE/root-crun run --bundle $BUNDLE sb-$$"
fi
[ ${#names[@]} -gt 0 ] || die "nothing to measure"

hf=()
for i in "${!names[@]}"; do hf+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup "$WARMUP" --min-runs "$RUNS" --export-json "$WORK/result.json" --style basic "${hf[@]}" \
    </dev/null || die "hyperfine failed"

# Throughput: TOTAL runs, P at a time, started by xargs (no shell in between;
# xargs gives each run /dev/null as stdin).
# crun needs a distinct container id per concurrent run.
: >"$WORK/throughput"
for p in $PARALLEL; do
    for i in "${!names[@]}"; do
        cmd=${cmds[$i]}
        [ "${names[$i]}" = crun ] && cmd="$CRUN --root $STATE/root-crun run --bundle $BUNDLE sb-$p-{}"
        t0=$(date +%s%N)
        # shellcheck disable=SC2086 # cmd is a word list by construction (no spaces in paths)
        seq "$TOTAL" | xargs -P "$p" -I{} $cmd >/dev/null 2>"$WORK/xargs.err"
        rc=$?
        t1=$(date +%s%N)
        printf '%s\t%s\t%s\t%s\n' "${names[$i]}" "$p" "$((t1 - t0))" "$rc" >>"$WORK/throughput"
    done
done

python3 - "$WORK/result.json" "$WORK/throughput" "$TOTAL" <<'EOF'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
total = int(sys.argv[3])
ms = {k: v["mean"] * 1000 for k, v in res.items()}
print("\nmean wall time of one run of /bin/true (ms):")
for k, v in ms.items():
    print(f"  {k:14s} {v:8.2f} ± {res[k]['stddev'] * 1000:.2f}")
rate = {}
for line in open(sys.argv[2]):
    name, p, ns, rc = line.rstrip("\n").split("\t")
    rate[(name, int(p))] = (total / (int(ns) / 1e9), int(rc))
ps = sorted({p for _, p in rate})
print(f"\nruns per second ({total} runs, N at a time):")
print("  " + f"{'':14s}" + "".join(f"{f'N={p}':>10s}" for p in ps))
for name in ms:
    cells = []
    for p in ps:
        r, rc = rate.get((name, p), (0, 0))
        cells.append(f"{r:10.0f}" + ("" if rc == 0 else "!"))
    print(f"  {name:14s}" + "".join(cells))
if any(rc for _, rc in rate.values()):
    print("  ! some runs failed (non-zero exit)")
h = "hull sandbox"
print("goals:")
if h in ms and "bwrap" in ms:
    r = ms[h] / ms["bwrap"]
    print(f"  hull/bwrap time = {r:.2f} (goal <= 1)  {'MET' if r <= 1 else 'NOT MET'}")
if h in ms:
    best = max(rate.get((h, p), (0, 0))[0] for p in ps)
    print(f"  hull best runs/s = {best:.0f} (goal >= 300)  {'MET' if best >= 300 else 'NOT MET'}")
else:
    print("  hull sandbox was not measured (see the reason above)")
EOF
