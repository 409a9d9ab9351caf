#!/usr/bin/env bash
# check_resume.sh MODEL SHAPE NODES STRATEGY [EXPORT OPTIONS...]
# Whole-job restart (run --resume): exports MODEL (zoo name, seeded weights),
# plans it on NODES msp432 nodes, and runs the inference (repeated) keeping
# its jobs in NVM (--nvm) with every node slowed 1000x; once some node has
# committed a job, every process of the run is killed with SIGKILL. `run
# --resume` must then finish the latest inference from the NVM files with
# the one-node output bit for bit, at least one node starting past its first
# job; and --resume without NVM files, or with the NVM of another input, must
# end in one error line and leave the files as they were.
set -uo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
model=$1 shape=$2 nodes=$3 strategy=$4
shift 4
work=$SPLITINFER_BUILD/tests/work/resume_${model}_$strategy$(echo "$*" | tr -dc 'a-z0-9')
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
splitinfer=$SPLITINFER_BUILD/splitinfer
fail() {
  echo "FAIL: $*"
  exit 1
}

$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 2 --out input.h5 >/dev/null || fail "input"
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 3 --out other.h5 >/dev/null || fail "input"
case " $* " in
  *" --quantize "*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --random --seed 0 --count 4 \
                      --shape "$shape" --out calib.h5 >/dev/null || fail "calib" ;;
esac
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" "$@" \
  --out model.h5 >/dev/null 2>&1 || fail "export"
"$splitinfer" plan model.h5 --nodes 1 -o plan_1 >/dev/null || fail "plan_1"
splitinfer_mpirun 2 run plan_1 --input input.h5 --output one.h5 >/dev/null || fail "one node"
"$splitinfer" plan model.h5 --nodes "$nodes" --strategy "$strategy" --device msp432 --ram 1GiB \
  -o plan >/dev/null || fail "plan"

# The NVM's committed progress of node K ("" when none).
progress() {
  $PYTHON - "nvm/node_$1.nvm" <<'PY'
import struct, sys, zlib
try:
    data = open(sys.argv[1], "rb").read(2560)
except OSError:
    sys.exit(0)
best = None
for at in (512, 1536):
    record = data[at:at + 1024]
    if len(record) < 16 or record[:4] != b"PROG":
        continue
    sequence, length = struct.unpack_from("<QI", record, 4)
    if length > 1004 or struct.unpack_from("<I", record, 16 + length)[0] != zlib.crc32(record[:16 + length]):
        continue
    if best is None or sequence > best[0]:
        best = (sequence, record[16:16 + length].decode())
print(best[1] if best else "")
PY
}

# The killed run repeats the inference (each repetition its own inference in
# the NVM): one slowed inference of this small model can end (~0.1 s) before
# a loaded machine's poll below sees the first commit and kills; --resume
# then finishes the latest inference the NVM holds.
slow=$(seq -s, 1 "$nodes" | sed 's/\([0-9]*\)/\1:1000/g')
# In a session of its own, so that one kill reaches every process of the run.
rm -f session
setsid bash -c "echo \$\$ >session; source '$SPLITINFER_ROOT/jobs/lib/common.sh'; exec mpirun --quiet --oversubscribe \
  -np $((nodes + 1)) '$splitinfer' run plan --input input.h5 --output killed.h5 --nvm nvm --slow $slow --repeat 1000" \
  >/dev/null 2>&1 &
for _ in $(seq 1 500); do [ -s session ] && break; sleep 0.01; done
session=$(cat session)
# A commit record's magic in either slot: some node committed a job.
committed() {
  local k
  for k in $(seq 1 "$nodes"); do
    for at in 512 1536; do
      [ "$(dd if="nvm/node_$k.nvm" bs=1 skip=$at count=4 2>/dev/null | tr -d '\0')" = PROG ] && return 0
    done
  done
  return 1
}
for _ in $(seq 1 3000); do
  committed && break
  sleep 0.005
done
pkill -KILL -s "$session"
wait 2>/dev/null
sleep 0.5
# A process of the session still alive (zombies, dead but not yet reaped by
# init, do not count).
ps -e -o sid=,stat= | awk -v session="$session" '$1 == session && $2 !~ /^Z/' | grep -q . &&
  fail "a process of the killed run is left"
[ -f killed.h5 ] && fail "the inference finished before it was killed (make it slower)"
before=""
for k in $(seq 1 "$nodes"); do
  before+="node $k: $(progress "$k"); "
done
echo "killed with: $before"
[[ $before == *inference* ]] || fail "no node committed a job before the kill"

# The NVM of this inference with another input: refused, files untouched.
sum_before=$(cat nvm/*.nvm | md5sum)
error=$(splitinfer_mpirun $((nodes + 1)) run plan --input other.h5 --output wrong.h5 --nvm nvm --resume 2>&1 >/dev/null)
[ $? -ne 0 ] || fail "--resume with another input ran"
[[ $error == "splitinfer: error: --resume: node "*"of another input"* ]] || fail "another input: '$error'"
[ "$(cat nvm/*.nvm | md5sum)" = "$sum_before" ] || fail "the refused --resume changed the NVM files"

splitinfer_mpirun $((nodes + 1)) run plan --input input.h5 --output resumed.h5 --nvm nvm --resume \
  --stats resumed.json >/dev/null || fail "--resume failed"
$PYTHON "$SPLITINFER_ROOT/tests/distributed/compare_bitwise.py" one.h5 resumed.h5 || fail "the resumed output differs"
$PYTHON - resumed.json <<'PY' || fail "no node resumed past its first job"
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
print("resumed from: " + "; ".join(f"node {n['rank']}: {n.get('resumed_from', 'the start')}" for n in nodes))
sys.exit(0 if any("resumed_from" in n for n in nodes) else 1)
PY

# Nothing to resume: no NVM files.
error=$(splitinfer_mpirun $((nodes + 1)) run plan --input input.h5 --nvm empty_nvm --resume 2>&1 >/dev/null)
[ $? -ne 0 ] || fail "--resume without NVM files ran"
[[ $error == "splitinfer: error: there is no NVM file 'empty_nvm/node_"*"' to resume from" ]] || fail "no NVM: '$error'"
echo "PASS"
