#!/usr/bin/env bash
# run-unit.sh -- runs every unit test binary (test_*) in a directory and sums up.
#
#   bash tests/run-unit.sh DIR
#
# Runs each executable DIR/test_* in name order, showing its output, then
# prints one line "unit: N passed, M failed" (N, M = test binaries) and exits
# non-zero when any failed. A missing DIR or one without tests is a failure
# too (exit 1, saying so on stderr): a run that tested nothing must not pass.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash tests/run-unit.sh DIR   (DIR holds the test_* binaries)" >&2
    exit 2
fi
dir=$1

passed=0
failed=0
failed_names=()

shopt -s nullglob
for t in "$dir"/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "==> $name"
    "$t"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "==> $name FAILED (exit $rc)"
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
done

if [ "$((passed + failed))" -eq 0 ]; then
    echo "run-unit: no test_* executables in $dir" >&2
    echo "unit: 0 passed, 0 failed"
    exit 1
fi
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
