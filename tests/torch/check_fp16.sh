#!/usr/bin/env bash
# check_fp16.sh LABEL MODEL SHAPE INPUTS TOL
# `splitinfer quantize --weights fp16` against the float model.
#
# MODEL  a float model file (.h5), or a model name export_torch.py knows
#        (exported with seeded random weights, BatchNorm folded)
# INPUTS test inputs: fashion-test:K (the first K test images; top-1 must
#        then agree) or random:K
# TOL    largest max|fp16 - float| / max|float| of the output on a test input
#
# 1. check_fp16.py: the same graph, every conv/linear weight and bias the
#    round-to-nearest-even float16 of the float32 value, and half the
#    parameter bytes (`splitinfer inspect --json`).
# 2. Both models planned on one node and run (mpirun -np 2) on every test
#    input: output within TOL (compare_to_float.py).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/against_float.sh"
label=$1 model=$2 shape=$3 inputs=$4 tol=$5
work=$SPLITINFER_BUILD/tests/work/fp16_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"
tests=$SPLITINFER_ROOT/tests/torch

if [[ $model == *.h5 ]]; then
  cp "$model" float.h5
else
  $PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" --out float.h5
fi
"$SPLITINFER_BUILD/splitinfer" quantize float.h5 --weights fp16 -o fp16.h5
"$SPLITINFER_BUILD/splitinfer" inspect float.h5 --json >float.json
"$SPLITINFER_BUILD/splitinfer" inspect fp16.h5 --json >fp16.json
$PYTHON "$tests/check_fp16.py" float.h5 fp16.h5 float.json fp16.json

"$SPLITINFER_BUILD/splitinfer" plan float.h5 --nodes 1 -o float_plan >/dev/null
"$SPLITINFER_BUILD/splitinfer" plan fp16.h5 --nodes 1 -o fp16_plan >/dev/null
run_against_float fp16_plan fp16 "$tol" "$inputs" "$shape"
