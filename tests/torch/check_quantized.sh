#!/usr/bin/env bash
# check_quantized.sh LABEL MODEL SHAPE CALIB [export options...]
# int8 against PyTorch, exactly: quantizes MODEL with PyTorch
# (export_torch.py --quantize qnnpack, calibrated on CALIB = images:K,
# fashion-mnist:K or random:K), has PyTorch's quantized model write every
# layer for a seeded random input, runs the int8 model file through
# splitinfer on one node with --dump-layers, and requires /output_q and every
# quint8 layer to equal PyTorch's: 0 LSB (compare_quantized.py; it prints the
# number of differing elements and max |diff| of each tensor otherwise). Also
# checks the node's predicted memory and traffic equal what the run measured.
#
# CTest runs it (quantized_test in tests/torch/CMakeLists.txt). By hand,
# from the source tree after building from the source tree after building, e.g.:
#   tests/torch/check_quantized.sh mobilenet_v2 mobilenet_v2 1,3,96,96 images:4
#   tests/torch/check_quantized.sh resnet18 resnet18 1,3,96,96 images:4
#   tests/torch/check_quantized.sh cnn_on_mcu cnn_on_mcu 1,1,28,28 fashion-mnist:32 \
#       --weights models/fashion/cnn_on_mcu.pt
#   tests/torch/check_quantized.sh fashion_mobilenetv2 fashion_mobilenetv2 1,1,96,96 fashion-mnist:32 \
#       --weights models/fashion/mobilenetv2_035_96.h5
# (SPLITINFER_BUILD selects the build directory, default build/; the files
# are left in $SPLITINFER_BUILD/tests/work/quantized_LABEL.)
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/export_quantized.sh"
label=$1 model=$2 shape=$3 calib=$4
shift 4
options=()
for option in "$@"; do   # relative --weights paths are taken from where the script was started
  if [ -e "$option" ]; then options+=("$(cd "$(dirname "$option")" && pwd)/$(basename "$option")"); else options+=("$option"); fi
done
work=$SPLITINFER_BUILD/tests/work/quantized_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"

export_quantized "$model" "$shape" "$calib" ${options[@]+"${options[@]}"}
"$SPLITINFER_BUILD/splitinfer" plan model.h5 --nodes 1 -o plan
splitinfer_mpirun 2 run plan --input input.h5 --output output.h5 --dump-layers --stats stats.json
$PYTHON "$SPLITINFER_ROOT/tests/torch/compare_quantized.py" reference.h5 output.h5
$PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" stats.json
