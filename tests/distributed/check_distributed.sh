#!/usr/bin/env bash
# check_distributed.sh LABEL MODEL SHAPE CONFIGS [--pixels] [export options...]
# (int8: export options --quantize qnnpack --calib calib.h5; calib.h5 is made here;
# --pixels: the input is a PNG of random pixels at the input size, as a camera
# gives it, for plans with --input-pixels, instead of random floats)
# Exports MODEL (seeded random weights) and runs it on one node, then under
# every configuration in CONFIGS (comma-separated STRATEGY:NODES[:RxC[:OPTIONS]],
# e.g. "spatial:4,spatial:4:2x2,channel:3,fused:4:2x2:--fuse+6+--reuse"; in
# OPTIONS, extra plan options, '+' stands for a space, and after an '@' run
# options, e.g. "fused:2:4x2:--tasks+8@--schedule+steal+--slow+2:3"; %DEVICES% stands for
# partition/devices, e.g. --devices+%DEVICES%/clusters/teensy41-esp32s3.json). Each distributed run must equal the
# one-node run bit for bit (output and every layer), and each node's measured
# peak RAM and bytes equal the plan's prediction. In every distributed run
# all node files but the node's own are first replaced by garbage, proving a
# node opens only plan.h5 and its own node_K.h5. The run's --trace must agree
# with its statistics (check_trace.py). Each plan is run again without
# dumps, fusing activations into the convolutions before them, and must give
# the one-node output.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 shape=$3 configs=$4
shift 4
work=$SPLITINFER_BUILD/tests/work/distributed_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"
splitinfer=$SPLITINFER_BUILD/splitinfer

input=input.h5 one_options=()
if [ "${1:-}" = --pixels ]; then  # every plan with --input-pixels, the one-node plan too
  shift
  input=input.png one_options=(--input-pixels)
  $PYTHON - "$shape" <<'PY'
import sys
import numpy as np
from PIL import Image
_, channels, height, width = (int(v) for v in sys.argv[1].split(","))
pixels = np.random.default_rng(2).integers(0, 256, (height, width, channels), dtype=np.uint8)
Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save("input.png")
PY
else
  $PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 2 --out input.h5
fi
case " $* " in  # int8: quantized by PyTorch, calibrated on seeded random inputs in calib.h5
  *" --quantize "*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --random --seed 0 --count 4 \
                      --shape "$shape" --out calib.h5 ;;
esac
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" "$@" --out model.h5
"$splitinfer" plan model.h5 --nodes 1 "${one_options[@]}" -o plan_1 >/dev/null
splitinfer_mpirun 2 run plan_1 --input $input --output one.h5 --dump-layers >/dev/null

IFS=, read -ra entries <<<"$configs"
for entry in "${entries[@]}"; do
  IFS=: read -r strategy nodes grid extra <<<"$entry"
  extra=${extra//+/ }
  run_extra=
  if [[ $extra == *@* ]]; then run_extra=${extra#*@} extra=${extra%%@*}; fi
  name=${strategy}_${nodes}${grid:+_$grid}${extra:+_$(echo "${extra//%DEVICES%\//}" | tr -d ' -' | tr '/.' '__')}${run_extra:+_$(echo "$run_extra" | tr -d ' -' | tr ':,' '_')}
  extra=${extra//%DEVICES%/$SPLITINFER_ROOT/partition/devices}
  options=(--nodes "$nodes" --strategy "$strategy")
  [ -n "$grid" ] && options+=(--grid "$grid")
  # shellcheck disable=SC2206  # OPTIONS splits into words
  [ -n "$extra" ] && options+=($extra)
  "$splitinfer" plan model.h5 "${options[@]}" -o "plan_$name" >/dev/null
  # Every node sees garbage in place of the other nodes' files.
  for k in $(seq 1 "$nodes"); do
    mkdir -p "plan_${name}_as_$k"
    for file in "plan_$name"/*.h5; do
      base=$(basename "$file")
      if [ "$base" = plan.h5 ] || [ "$base" = "node_$k.h5" ]; then ln -sf "$PWD/$file" "plan_${name}_as_$k/$base"
      else echo "not this node's file" >"plan_${name}_as_$k/$base"; fi
    done
  done
  # Each rank gets the directory where only its own node file is real.
  appfile=app_$name
  : >"$appfile"
  echo "-np 1 $splitinfer run plan_$name --input $input --output $name.h5 --dump-layers --stats $name.json --trace $name.trace.json $run_extra" >>"$appfile"
  for k in $(seq 1 "$nodes"); do echo "-np 1 $splitinfer run plan_${name}_as_$k --input none.h5" >>"$appfile"; done
  splitinfer_mpirun --app "$appfile" >/dev/null
  # Without dumps a relu or relu6 is computed as the convolution before it
  # stores: the output must still be the one-node run's (computed apart).
  # shellcheck disable=SC2086  # run options split into words
  splitinfer_mpirun $((nodes + 1)) run "plan_$name" --input "$input" --output "${name}_fused.h5" $run_extra >/dev/null
  # The plan's sums, both outputs, the stats and the trace (tests/distributed/check_run.py).
  $PYTHON "$SPLITINFER_ROOT/tests/distributed/check_run.py" one.h5 "$name" "plan_$name"
done
