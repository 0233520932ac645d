#!/bin/bash
# The whole test suite, after `make all asan fuzz`: unit tests (plain and under
# ASan+UBSan), then the end-to-end suites against the real binaries.
# Prints one summary line per suite and a final one; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
export HULL_SRC="$PWD"
failed=()

run_suite() {
    local name="$1"; shift
    echo "=== $name"
    if "$@"; then echo "=== $name: ok"; else echo "=== $name: FAILED"; failed+=("$name"); fi
}

# One committed style (.clang-format): unformatted C fails the suite.
run_suite "format" sh -c 'clang-format --dry-run --Werror $(git ls-files "*.c" "*.h" 2>/dev/null || find include src tests -name "*.[ch]") && echo "format: all files match .clang-format"'
run_suite "unit" scripts/run-unit.sh build/tests/test_*
run_suite "unit (asan+ubsan)" env ASAN_OPTIONS=detect_leaks=1 scripts/run-unit.sh build/asan/tests/test_*
# The parsers of untrusted input under libFuzzer, about 30 s each from the
# committed corpus (tests/fuzz/README.md): a crash, leak or hang fails.
run_suite "fuzz" scripts/fuzz.sh

# End-to-end: pytest drives build/hull and checks kernel state from the host.
PYTEST="/usr/bin/python3 -m pytest -q -p no:cacheprovider"
run_suite "integration" env HULL="$PWD/build/hull" $PYTEST tests/integration
if [ -d tests/security ] && ls tests/security/test_*.py >/dev/null 2>&1; then
    run_suite "security" env HULL="$PWD/build/hull" $PYTEST tests/security
fi
# The Python SDK: its unit tests (stub server) and end to end against build/hulld.
run_suite "sdk (python)" env HULL="$PWD/build/hull" $PYTEST sdk/python/tests
# The TypeScript SDK: built with its pinned tsc (scripts/deps.sh js), then
# node's test runner: a stub server, and end to end against build/hulld.
run_suite "sdk (js)" env HULL="$PWD/build/hull" sdk/js/run-tests.sh
# The core lifecycle again under the sanitizers: memory errors in the runtime
# show up as a failing run.
run_suite "integration (asan+ubsan)" env HULL="$PWD/build/asan/hull" \
    ASAN_OPTIONS=detect_leaks=0 $PYTEST tests/integration -m asan

if [ ${#failed[@]} -eq 0 ]; then
    echo "ALL SUITES PASSED"
else
    echo "FAILED SUITES: ${failed[*]}"
    exit 1
fi
