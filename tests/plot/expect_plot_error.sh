#!/usr/bin/env bash
# expect_plot_error.sh PATTERN ARGS...: `jobs/plot ARGS...` (in the plot
# fixtures' directory) exits non-zero, its stderr is exactly one line
# "plot: error: ..." containing PATTERN, and it writes no file.
set -uo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
pattern=$1
shift
cd "$SPLITINFER_BUILD/tests/work/plot" || exit 1
outdir=$(mktemp -d -u)
stderr_file=$(mktemp)
trap 'rm -rf "$stderr_file" "$outdir"' EXIT
timeout 60 "$SPLITINFER_ROOT/jobs/plot" "$@" -o "$outdir" >/dev/null 2>"$stderr_file"
status=$?
echo "exit status: $status"
echo "stderr:"
cat "$stderr_file"
fail() { echo "FAIL: $*"; exit 1; }
[ "$status" -eq 0 ] && fail "exited 0"
[ "$status" -eq 124 ] && fail "timed out"
lines=$(grep -c . "$stderr_file")
[ "$lines" -eq 1 ] || fail "stderr has $lines lines, expected exactly one"
grep -q '^plot: error: ' "$stderr_file" || fail "stderr does not start with 'plot: error: '"
grep -qF -- "$pattern" "$stderr_file" || fail "stderr does not mention '$pattern'"
[ ! -e "$outdir" ] || fail "wrote $outdir despite the error"
echo "PASS"
