#!/bin/bash
# Run the libFuzzer targets of tests/fuzz (built by `make fuzz`) for a while
# each, seeded from the committed corpus, and fail on the first crash, leak,
# timeout or broken invariant.
#   scripts/fuzz.sh [-t SECONDS] [TARGET...]     (default: 30 s, every target)
# New inputs go to a scratch directory, never into tests/fuzz/corpus; an
# input that failed is kept in build/fuzz/artifacts/. tests/fuzz/README.md
# says how to run long campaigns by hand.
set -u
cd "$(dirname "$0")/.."
seconds=${HULL_FUZZ_SECONDS:-30}
if [ "${1:-}" = "-t" ]; then
    seconds=$2
    shift 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi
artifacts=build/fuzz/artifacts
mkdir -p "$artifacts"
failed=()
for t in "${targets[@]}"; do
    bin=build/fuzz/fuzz_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin: not built (make fuzz)" >&2
        failed+=("$t")
        continue
    fi
    scratch=$(mktemp -d)
    mkdir "$scratch/corpus" "$scratch/tmp"
    # -timeout: one input taking this long is a hang (generous: slow machines).
    TMPDIR="$scratch/tmp" "$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
        "$scratch/corpus" "tests/fuzz/corpus/$t" >"$scratch/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log")
    if [ $rc -eq 0 ]; then
        echo "fuzz: $t: ${runs:-?} inputs in ${seconds} s, no failure"
    else
        echo "fuzz: $t: FAILED (exit $rc) after ${runs:-?} inputs; input kept in $artifacts/:"
        grep -E "^(==[0-9]+==|fuzz:|SUMMARY|artifact_prefix|Test unit written|[^ ]*: runtime error)" \
            "$scratch/log" | head -20
        failed+=("$t")
    fi
    rm -rf "$scratch"
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}"; exit 1; }
