#!/bin/bash
# Issue 5: `hull sandbox run -- /bin/true` at full container isolation vs
# `bwrap --unshare-all --die-with-parent` with the same read-only layout vs
# `crun run` of an equivalent bundle (same layout, every namespace, an
# unprivileged uid, no capabilities, memory+pids limits, a seccomp deny
# list), side by side in one hyperfine run, with the machine's floor
# (fork+exec of /bin/true) beside them; then the CPU time (task-clock) of
# one run, and runs per second with 1, 2 and 8 at a time. The layout is
# defined once in sandbox_layout.py.
# Goals (issue 13), each a ratio against bwrap in the same run: time <= 0.8x,
# CPU (task-clock) <= 1.0x, runs/s 8 at a time >= 1.5x.
#
#   bench/sandbox_vs_bwrap.sh          RUNS=100 WARMUP=10 CPU_RUNS=50 TOTAL=300 PARALLEL="1 2 8"
#   quick (bench/all):  RUNS=30 WARMUP=3 CPU_RUNS=20 TOTAL=120 PARALLEL="1 8" NO_CRUN=1
#   the time row is the median of rounds interleaved with bwrap (cpu_per_run.py);
#   hyperfine's means are shown beside it
#   CGROUP_VIEW=host|v1|auto           see lib.sh (crun refuses hybrid hosts)
#   BENCH_JSON=FILE                    append the rows (bench/benchjson.py)
#   NETPOOL=1                          a `hull sandbox netpool --size 32` keeper runs
#                                      throughout: hull's runs take their network
#                                      namespace from it (rows say "(netpool)")
set -u
. "$(dirname "$0")/lib.sh"
bench_start "$@"

TOTAL=${TOTAL:-300}
PARALLEL=${PARALLEL:-1 2 8}
CPU_RUNS=${CPU_RUNS:-50}
LAYOUT="python3 $(dirname "$0")/sandbox_layout.py"
BUNDLE=$WORK/sandbox-bundle
$LAYOUT bundle "$BUNDLE" /bin/true || die "cannot make the crun bundle"
mapfile -t BWRAP < <($LAYOUT bwrap-args /bin/true)

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }

POOL_TAG=""
if [ -n "${NETPOOL:-}" ]; then
    "$HULL" sandbox netpool --size 32 >"$WORK/netpool.out" 2>"$WORK/netpool.err" &
    NETPOOL_PID=$!
    bench_cleanup() { kill "$NETPOOL_PID" 2>/dev/null; wait "$NETPOOL_PID" 2>/dev/null; }
    for _ in $(seq 100); do grep -q ready "$WORK/netpool.out" && break; sleep 0.1; done
    grep -q ready "$WORK/netpool.out" || die "netpool: $(cat "$WORK/netpool.err")"
    POOL_TAG=" (netpool)"
fi
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
if [ -z "${NO_CRUN:-}" ] && runtime_works crun "$CRUN" "$BUNDLE"; then
    add "crun" "$CRUN --root $STATE/root-crun run --bundle $BUNDLE sb-$$"
fi
[ ${#names[@]} -gt 0 ] || die "nothing to measure"

hf=(-n floor /bin/true)
for i in "${!names[@]}"; do hf+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup "$WARMUP" --min-runs "$RUNS" --export-json "$WORK/result.json" --style basic "${hf[@]}" \
    </dev/null || die "hyperfine failed"

# CPU per run: the children's rusage (task-clock of the whole process tree).
cpu_args=()
for i in "${!names[@]}"; do cpu_args+=("${names[$i]}" "${cmds[$i]}"); done
python3 "$(dirname "$0")/cpu_per_run.py" "$CPU_RUNS" "${cpu_args[@]}" >"$WORK/cpu.json" \
    || die "cpu_per_run.py failed"

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

python3 - "$WORK/result.json" "$WORK/throughput" "$TOTAL" "$WORK/cpu.json" "$(dirname "$0")" "$POOL_TAG" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[5])
import benchjson
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
cpu = json.load(open(sys.argv[4]))
total = int(sys.argv[3])
tag = sys.argv[6]
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
for name in (n for n in ms if n != "floor"):
    cells = []
    for p in ps:
        r, rc = rate.get((name, p), (0, 0))
        cells.append(f"{r:10.0f}" + ("" if rc == 0 else "!"))
    print(f"  {name:14s}" + "".join(cells))
if any(rc for _, rc in rate.values()):
    print("  ! some runs failed (non-zero exit)")
if cpu:
    how = next(iter(cpu.values()))["how"]
    print(f"\none run, rounds interleaved (CPU: {how}), ms:")
    print(f"  {'':14s} {'CPU':>8s} {'wall mean':>10s} {'wall median':>12s}")
    for k, v in cpu.items():
        print(f"  {k:14s} {v['cpu_ms']:8.2f} {v['wall_ms']:10.2f} {v['wall_median_ms']:12.2f}")
h, b = "hull sandbox", "bwrap"
floor = ms.get("floor")
note = f"floor (fork+exec /bin/true) {floor:.2f} ms" if floor else ""
print("goals (ratios against bwrap in this run):")
if h in ms and b in ms:
    # The time row: medians of the interleaved rounds, which a busy spell of
    # a shared machine hits alike (hyperfine runs one command after the
    # other); hyperfine's means are the table above.
    if h in cpu and b in cpu:
        th, tb, how_t = cpu[h]["wall_median_ms"], cpu[b]["wall_median_ms"], "median, interleaved"
    else:
        th, tb, how_t = ms[h], ms[b], "hyperfine mean"
    benchjson.row("sandbox_vs_bwrap", f"hull sandbox run /bin/true{tag}, time", hull=round(th, 3),
                  peer=round(tb, 3), peer_name=b, unit="ms", goal="<= 0.8",
                  note=f"{how_t}; {note}")
    if h in cpu and b in cpu:
        benchjson.row("sandbox_vs_bwrap", f"hull sandbox run /bin/true{tag}, CPU (task-clock)",
                      hull=round(cpu[h]["cpu_ms"], 3), peer=round(cpu[b]["cpu_ms"], 3),
                      peer_name=b, unit="ms", goal="<= 1.0", note=note)
    p8 = 8 if (h, 8) in rate else max(ps)
    hr, br = rate.get((h, p8), (0, 1))[0], rate.get((b, p8), (0, 1))[0]
    if hr and br:
        benchjson.row("sandbox_vs_bwrap", f"hull sandbox run /bin/true{tag}, runs/s {p8} at a time",
                      hull=round(hr, 1), peer=round(br, 1), peer_name=b, unit="runs/s",
                      goal=">= 1.5" if p8 == 8 else "", note=note)
elif h not in ms:
    print("  hull sandbox was not measured (see the reason above)")
else:
    print("  bwrap was not measured: no ratios")
EOF
