#!/usr/bin/env bash
# check_tcp.sh LABEL MODEL SHAPE CONFIGS
# Runs distributed plans with OpenMPI's TCP transport only (pml ob1, btl
# tcp,self: no shared memory, as ranks on different hosts talk) and checks,
# for each STRATEGY:NODES[:RxC] in CONFIGS (comma-separated):
# - the output and every layer equal the one-node run's (over shared
#   memory) bit for bit;
# - each node's measured peak RAM and bytes equal the plan's prediction, and
#   equal those of the same plan run over shared memory;
# - halos move directly between nodes (check_routing.py): the coordinator
#   receives exactly the output and sends exactly the input pieces, and nodes
#   send each other the rest. A relay plan (everything through rank 0) must
#   fail that check, so the check is shown able to fail.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 shape=$3 configs=$4
work=$SPLITINFER_BUILD/tests/work/tcp_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"
splitinfer=$SPLITINFER_BUILD/splitinfer
here=$SPLITINFER_ROOT/tests/distributed

# TCP between ranks, over the loopback interface (the only one a test may
# use); ob1 so that no other messaging layer (UCX) bypasses the BTLs.
tcp_mpirun() {
  local ranks=$1
  shift
  OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=lo \
    splitinfer_mpirun "$ranks" "$@"
}

$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 2 --out input.h5
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" --out model.h5 >/dev/null
"$splitinfer" plan model.h5 --nodes 1 -o plan_1 >/dev/null
splitinfer_mpirun 2 run plan_1 --input input.h5 --output one.h5 --dump-layers >/dev/null

IFS=, read -ra entries <<<"$configs"
for entry in "${entries[@]}"; do
  IFS=: read -r strategy nodes grid <<<"$entry"
  name=${strategy}_${nodes}${grid:+_$grid}
  options=(--nodes "$nodes" --strategy "$strategy")
  [ -n "$grid" ] && options+=(--grid "$grid")
  "$splitinfer" plan model.h5 "${options[@]}" -o "plan_$name" >/dev/null
  tcp_mpirun $((nodes + 1)) run "plan_$name" --input input.h5 --output "tcp_$name.h5" --dump-layers \
    --stats "tcp_$name.json" >/dev/null
  splitinfer_mpirun $((nodes + 1)) run "plan_$name" --input input.h5 --output "shm_$name.h5" \
    --stats "shm_$name.json" >/dev/null
  printf '%-16s over TCP: ' "$name"
  $PYTHON "$here/compare_bitwise.py" one.h5 "tcp_$name.h5"
  $PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" "tcp_$name.json" >/dev/null ||
    $PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" "tcp_$name.json"
  printf '%-16s routing:  ' "$name"
  if [ "$strategy" = relay ]; then
    if $PYTHON "$here/check_routing.py" "plan_$name" "tcp_$name.json" "shm_$name.json" one.h5 >routing.log; then
      cat routing.log
      echo "check_tcp: the relay plan $name passed the direct-routing check, which must refuse it"
      exit 1
    fi
    echo "relay refused as it must be: $(tail -n1 routing.log)"
  else
    $PYTHON "$here/check_routing.py" "plan_$name" "tcp_$name.json" "shm_$name.json" one.h5
  fi
done
