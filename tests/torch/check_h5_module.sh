#!/usr/bin/env bash
# check_h5_module.sh LABEL MODEL SHAPE TOLERANCE [export options...] [-- MODEL.h5]
# Exports MODEL (float) with PyTorch and its reference for a seeded random
# input, rebuilds a torch module from the model file with models/h5_module.py
# (or from the given MODEL.h5 instead of the exported one) and checks that the
# module gives every layer of the reference within TOLERANCE
# (max|diff| / max|ref|; BatchNorm folding alone differs by ~1e-6).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 shape=$3 tolerance=$4
shift 4
options=() rebuilt=model.h5
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then rebuilt=$2; shift 2; else options+=("$1"); shift; fi
done
work=$SPLITINFER_BUILD/tests/work/h5_module_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"

$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 1 --out input.h5
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model "$model" --input-shape "$shape" ${options[@]+"${options[@]}"} \
  --out model.h5 --reference reference.h5 --input-file input.h5
$PYTHON "$SPLITINFER_ROOT/tests/torch/check_h5_module.py" "$rebuilt" reference.h5 --tol "$tolerance"
