#!/usr/bin/env bash
# check_liveness.sh SIGNAL RANK PLAN INPUT RANKS [RUN OPTIONS...]
# Runs PLAN on RANKS ranks (with RUN OPTIONS, e.g. --schedule steal) with --timeout 2 and many inferences, sends
# SIGNAL (STOP or KILL) to rank RANK once the inferences run, and passes when
# the job ends on every rank within 5 s of the deadline, non-zero, with
# exactly one line "splitinfer: error: ..." naming that rank as the one that
# stopped responding, and no process of the run is left.
set -uo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
signal=$1 victim=$2 plan=$3 input=$4 ranks=$5
shift 5
timeout_s=2
stderr_file=$(mktemp)
trap 'rm -f "$stderr_file"' EXIT
fail() {
  echo "FAIL: $*"
  echo "stderr:"
  cat "$stderr_file"
  exit 1
}

splitinfer_mpirun "$ranks" run "$plan" --input "$input" --repeat 1000000 \
  --timeout "$timeout_s" "$@" >/dev/null 2>"$stderr_file" &
launcher=$!

# The run's processes (the launcher's descendants), by their rank (OpenMPI
# puts it in their environment).
descendants() {
  local child
  for child in $(pgrep -P "$1"); do
    echo "$child"
    descendants "$child"
  done
}
pid_of_rank() {
  local pid
  for pid in $(descendants "$launcher"); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"
      return
    fi
  done
}
victim_pid=""
for _ in $(seq 100); do
  victim_pid=$(pid_of_rank "$victim")
  [ -n "$victim_pid" ] && break
  sleep 0.1
done
[ -n "$victim_pid" ] || fail "rank $victim never started"
all_pids=$(for r in $(seq 0 $((ranks - 1))); do pid_of_rank "$r"; done)
sleep 1.5  # past the set-up: inferences run
kill -0 "$launcher" 2>/dev/null || fail "the run ended before the fault"
kill -"$signal" "$victim_pid"
faulted=$(date +%s.%N)

for _ in $(seq 300); do
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$launcher" 2>/dev/null; then
  kill -KILL $all_pids "$launcher" 2>/dev/null
  fail "the run still runs 30 s after the fault (a hang)"
fi
wait "$launcher"
status=$?
ended=$(date +%s.%N)
elapsed=$(echo "$ended - $faulted" | bc)
echo "exit status: $status; ended ${elapsed} s after SIG$signal to rank $victim (timeout ${timeout_s} s)"
cat "$stderr_file"
[ "$status" -ne 0 ] || fail "exited 0"
(($(echo "$elapsed <= $timeout_s + 5" | bc))) || fail "took ${elapsed} s, more than the timeout + 5 s"
lines=$(grep -c . "$stderr_file")
[ "$lines" -eq 1 ] || fail "stderr has $lines lines, expected exactly one"
if [ "$victim" -eq 0 ]; then
  expected="the coordinator (rank 0) stopped responding"
else
  expected="node $victim (rank $victim) stopped responding"
fi
grep -q "^splitinfer: error: $expected" "$stderr_file" || fail "stderr does not start with '$expected'"
# The launcher ends a stopped process too, though it may return first.
for _ in $(seq 100); do
  left=""
  for pid in $all_pids; do
    # (a zombie of a finished test run is not a process left running)
    if [ -n "$(ps -o stat= -p "$pid" 2>/dev/null | grep -v Z)" ]; then left="$left $pid"; fi
  done
  [ -z "$left" ] && break
  sleep 0.1
done
if [ -n "$left" ]; then
  kill -KILL $all_pids 2>/dev/null
  fail "processes$left of the run are left 10 s after it ended"
fi
echo "PASS"
