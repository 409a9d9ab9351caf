#!/usr/bin/env bash
# check_quantize.sh LABEL MODEL SHAPE CALIB INPUTS OUTPUT_TOL SCALE_TOL [quantize options...]
# `splitinfer quantize` (our MinMax calibration) against PyTorch's observers,
# and the int8 model it writes run against the float model.
#
# MODEL       a float model file (.h5), or a model name export_torch.py knows
#             (exported with seeded random weights, BatchNorm folded)
# CALIB       calibration inputs: fashion-mnist:K (the first K training
#             images), images:K (models/images) or random:K (models/make_calib.py)
# INPUTS      test inputs: fashion-test:K (the first K test images) or random:K
# OUTPUT_TOL  largest max|int8 - float| / max|float| of the dequantized
#             output on a test input
# SCALE_TOL   largest relative difference of an activation scale from
#             PyTorch's observer over PyTorch's own float activations (0: exact)
#
# 1. splitinfer quantize MODEL --calib CALIB [options] -o int8.h5
# 2. check_minmax_quantize.py with the float activations of `splitinfer run
#    --dump-layers` (the float model, one run per calibration input): every
#    scale, zero point, clamp, int8 weight and int32 bias EXACTLY PyTorch's
#    (MinMaxObserver, PerChannelMinMaxObserver, quantize_per_channel).
# 3. check_minmax_quantize.py with PyTorch's own float activations
#    (models/h5_module.py): weights, biases and clamps exact, activation scales
#    within SCALE_TOL and zero points within 1 (splitinfer's and PyTorch's
#    float kernels sum in different orders, so a layer's min or max can differ
#    in the last bits).
# 4. The int8 model planned on one node and run (mpirun -np 2) on every test
#    input: output within OUTPUT_TOL of the float model's, /output the
#    dequantized /output_q, and (fashion-test inputs: trained models) the
#    same top-1 (compare_to_float.py).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/against_float.sh"
label=$1 model=$2 shape=$3 calib=$4 inputs=$5 output_tol=$6 scale_tol=$7
shift 7
work=$SPLITINFER_BUILD/tests/work/quantize_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"
tests=$SPLITINFER_ROOT/tests/torch
check_options=()
for option in "$@"; do [ "$option" = --per-tensor ] && check_options+=(--per-tensor); done

if [[ $model == *.h5 ]]; then
  cp "$model" float.h5
else
  $PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" --out float.h5
fi
count=${calib#*:}
case $calib in
  fashion-mnist:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --dataset fashion-mnist \
                     --count "$count" --shape "$shape" --out calib.h5 ;;
  images:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --images "$SPLITINFER_ROOT/models/images" \
              --count "$count" --shape "$shape" --meta-from float.h5 --out calib.h5 ;;
  random:*) $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --random --seed 0 \
              --count "$count" --shape "$shape" --out calib.h5 ;;
  *) echo "check_quantize: unknown calibration '$calib'" >&2; exit 2 ;;
esac

log "1. splitinfer quantize"
"$SPLITINFER_BUILD/splitinfer" quantize float.h5 --calib calib.h5 "$@" -o int8.h5

log "2. observers over splitinfer's float activations: exact"
"$SPLITINFER_BUILD/splitinfer" plan float.h5 --nodes 1 -o float_plan >/dev/null
calib_count=$($PYTHON "$tests/split_inputs.py" --from calib.h5 calib_input)
engine_outputs=()
for ((k = 0; k < calib_count; k++)); do
  splitinfer_mpirun 2 run float_plan --input "calib_input_$k.h5" --output "calib_output_$k.h5" \
    --dump-layers >/dev/null
  engine_outputs+=("calib_output_$k.h5")
done
$PYTHON "$tests/check_minmax_quantize.py" float.h5 calib.h5 int8.h5 ${check_options[@]+"${check_options[@]}"} \
  --engine "${engine_outputs[@]}"

log "3. observers over PyTorch's float activations: scales within $scale_tol"
$PYTHON "$tests/check_minmax_quantize.py" float.h5 calib.h5 int8.h5 ${check_options[@]+"${check_options[@]}"} \
  --scale-tol "$scale_tol" --zero-point-tol 1

log "4. the int8 model against the float model"
"$SPLITINFER_BUILD/splitinfer" plan int8.h5 --nodes 1 -o int8_plan >/dev/null
run_against_float int8_plan int8 "$output_tol" "$inputs" "$shape"
