#!/usr/bin/env bash
# check_model.sh LABEL MODEL SHAPE OPSET NODES [--quantize qnnpack --calib images:K]
# A torchvision (or models/zoo.py) model, seeded random weights, exported by
# torch.onnx.export at OPSET (tests/onnx/torch_to_onnx.py), imported by
# models/export_onnx.py and run by splitinfer on one node and on NODES nodes:
# - against ONNX Runtime (onnxruntime-node) on a seeded random input: float
#   models every layer within 1e-4 of max |reference| and top-1 identical
#   (tests/torch/compare.py); int8 (QDQ) models the output within 1 LSB on
#   every element (tests/onnx/compare_lsb.py);
# - against PyTorch's own output: float within 1e-4 of max |reference|, top-1
#   identical (int8: reported, and the same top-1);
# - the NODES-node run equal to the one-node run bit for bit.
# Prints one line "onnx-model: LABEL ..." with the figures (jobs/onnx-models
# collects them).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 shape=$3 opset=$4 nodes=$5
shift 5
work=$SPLITINFER_BUILD/tests/work/onnx_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"

quantize=()
if [ $# -gt 0 ]; then
  [ "$1" = --quantize ] && [ "${3:-}" = --calib ] || { echo "check_model.sh: unknown options $*" >&2; exit 2; }
  $PYTHON "$SPLITINFER_ROOT/models/make_calib.py" --images "$SPLITINFER_ROOT/models/images" \
    --count "${4#images:}" --shape "$shape" --out calib.h5 >/dev/null
  quantize=(--quantize "$2" --calib calib.h5)
fi
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape "$shape" --seed 1 --out input.h5
$PYTHON "$SPLITINFER_ROOT/tests/onnx/torch_to_onnx.py" --model "$model" --input-shape "$shape" \
  --opset "$opset" ${quantize[@]+"${quantize[@]}"} --out model.onnx --torch-reference torch.h5 --input-file input.h5
$PYTHON "$SPLITINFER_ROOT/models/export_onnx.py" model.onnx --out model.h5 --reference ort.h5 --input-file input.h5
"$SPLITINFER_BUILD/splitinfer" plan model.h5 --nodes 1 -o plan1 >/dev/null
"$SPLITINFER_BUILD/splitinfer" plan model.h5 --nodes "$nodes" -o plan$nodes >/dev/null
splitinfer_mpirun 2 run plan1 --input input.h5 --output out1.h5 --dump-layers >/dev/null
splitinfer_mpirun $((nodes + 1)) run plan$nodes --input input.h5 --output out$nodes.h5 --dump-layers >/dev/null

status=0
if [ ${#quantize[@]} -eq 0 ]; then
  $PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" ort.h5 out1.h5 --layers --tol 1e-4 >ort.txt || status=1
  $PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" torch.h5 out1.h5 --tol 1e-4 >torch.txt || status=1
  ort=$(sed -n 's/^output .* \([0-9.e+-]*\)$/\1/p' ort.txt)
  worst=$(sed -n 's/^model max relative error: //p' ort.txt)
  torch_error=$(sed -n 's/^output .* \([0-9.e+-]*\)$/\1/p' torch.txt)
  top=$(sed -n 's/^top-1: //p' ort.txt)
  summary="output vs ONNX Runtime $ort (worst layer $worst), vs PyTorch $torch_error, top-1 $top"
else
  $PYTHON "$SPLITINFER_ROOT/tests/onnx/compare_lsb.py" ort.h5 out1.h5 --lsb 1 >ort.txt || status=1
  $PYTHON "$SPLITINFER_ROOT/tests/onnx/compare_lsb.py" torch.h5 out1.h5 --report-only >torch.txt || status=1
  summary="vs ONNX Runtime: $(tail -1 ort.txt); vs PyTorch: $(tail -1 torch.txt)"
fi
if $PYTHON "$SPLITINFER_ROOT/tests/distributed/compare_bitwise.py" out1.h5 out$nodes.h5 >bitwise.txt; then
  summary="$summary; $nodes nodes bitwise equal to one"
else
  summary="$summary; $nodes nodes DIFFER from one: $(cat bitwise.txt)"
  status=1
fi
echo "onnx-model: $label $summary"
[ $status -eq 0 ] || { cat ort.txt torch.txt | grep -v ' 0 differ\| [0-9.]*e-0[5-9]$' | head -20; }
exit $status
