#!/usr/bin/env bash
# expect_error.sh PATTERN RANKS ARGS...
# Runs `splitinfer ARGS...` (under mpirun with RANKS ranks, or directly when
# RANKS is 0) and passes when it exits non-zero within 60 s and its stderr is
# exactly one line "splitinfer: error: ..." that contains PATTERN.
set -uo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
pattern=$1 ranks=$2
shift 2
stderr_file=$(mktemp)
trap 'rm -f "$stderr_file"' EXIT
if [ "$ranks" -eq 0 ]; then
  timeout --kill-after=10 60 "$SPLITINFER_BUILD/splitinfer" "$@" >/dev/null 2>"$stderr_file"
else
  timeout --kill-after=10 60 bash -c "source '$SPLITINFER_ROOT/jobs/lib/common.sh'; splitinfer_mpirun $ranks \"\$@\"" _ "$@" \
    >/dev/null 2>"$stderr_file"
fi
status=$?
echo "exit status: $status"
echo "stderr:"
cat "$stderr_file"
fail() { echo "FAIL: $*"; exit 1; }
[ "$status" -eq 124 ] && fail "timed out (a hang)"
[ "$status" -eq 0 ] && fail "exited 0"
[ "$status" -ge 128 ] && fail "killed by a signal (a crash)"
lines=$(grep -c . "$stderr_file")
[ "$lines" -eq 1 ] || fail "stderr has $lines lines, expected exactly one"
grep -q '^splitinfer: error: ' "$stderr_file" || fail "stderr does not start with 'splitinfer: error: '"
grep -qF -- "$pattern" "$stderr_file" || fail "stderr does not mention '$pattern'"
echo "PASS"
