#!/usr/bin/env bash
# check_model.sh LABEL MODEL SHAPE [export options...]
# Exports MODEL with PyTorch (seeded random weights, randomised BatchNorm
# statistics unless --weights is given), has PyTorch write the output of every
# layer for a seeded random input, runs the model through splitinfer on one
# node, and compares every layer and the output (1e-4 of max |reference|,
# top-1 identical). Also checks the node's predicted memory and traffic equal
# what the run measured.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 shape=$3
shift 3
work=$SPLITINFER_BUILD/tests/work/$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"

$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 1 --out input.h5
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" "$@" \
  --out model.h5 --reference reference.h5 --input-file input.h5
"$SPLITINFER_BUILD/splitinfer" plan model.h5 --nodes 1 -o plan
splitinfer_mpirun 2 run plan --input input.h5 --output output.h5 --dump-layers --stats stats.json
$PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" reference.h5 output.h5 --layers --tol 1e-4
$PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" stats.json
