#!/usr/bin/env bash
# check_quant_export.sh LABEL MODEL SHAPE CALIB [export options...]
# Quantizes MODEL with PyTorch (export_torch.py --quantize qnnpack, calibrated
# on CALIB: images:K, fashion-mnist:K or random:K), has PyTorch's quantized
# model write every layer for a seeded random input, and recomputes the
# exported file with numpy alone (check_quant_export.py): every layer and
# /output_q must equal PyTorch's, 0 LSB. Needs no splitinfer binary.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/export_quantized.sh"
label=$1 model=$2 shape=$3 calib=$4
shift 4
work=$SPLITINFER_BUILD/tests/work/quant_export_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"

export_quantized "$model" "$shape" "$calib" "$@"
$PYTHON "$SPLITINFER_ROOT/tests/torch/check_quant_export.py" model.h5 reference.h5
