#!/usr/bin/env bash
# The ONNX import's refusals: every file of tests/onnx/make_bad_models.py and
# a few bad arguments end in exactly one line "export_onnx: error: ..." on
# stderr (holding the expected words: the node, its op type, what is not
# supported), a non-zero exit and no model file; the good file is taken and
# gives ONNX Runtime's values on two nodes.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/onnx_refusals
rm -rf "$work" && mkdir -p "$work"
cd "$work"
$PYTHON "$SPLITINFER_ROOT/tests/onnx/make_bad_models.py" .
export_onnx() { $PYTHON "$SPLITINFER_ROOT/models/export_onnx.py" "$@"; }

failures=0
refused() {  # refused WORDS ARGS...: the export fails with one line holding WORDS
  local words=$1 status=0
  shift
  rm -f out.h5
  export_onnx "$@" --out out.h5 2>err.txt >/dev/null || status=$?
  if [ $status -eq 0 ] || [ "$(wc -l <err.txt)" -ne 1 ] || ! grep -qF "export_onnx: error: $words" err.txt \
      || [ -e out.h5 ]; then
    echo "FAIL: export_onnx $* (status $status): $(cat err.txt)"
    failures=$((failures + 1))
  else
    echo "refused as expected: $(cat err.txt)"
  fi
}
while IFS=$'\t' read -r name words; do
  refused "$words" "$name.onnx"
done <expected.txt
printf 'not an onnx file' >garbage.onnx
refused "cannot read garbage.onnx as an ONNX model" garbage.onnx
refused "cannot read missing.onnx as an ONNX model" missing.onnx
refused "--input-shape [1, 3, 8] has rank 3" good.onnx --input-shape 1,3,8
refused "input shape must be 1,C,H,W" good.onnx --input-shape 2,3,8,8
refused "node 'sub' (Sub): a constant operand of shape [3, 1, 1] on [1, 4, 8, 8] is not supported" \
  good.onnx --input-shape 1,4,8,8

# The good file is taken, and computes what ONNX Runtime does.
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,3,8,8 --seed 1 --out input.h5
export_onnx good.onnx --out good.h5 --reference good_ref.h5 --input-file input.h5
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 2 -o plan >/dev/null
splitinfer_mpirun 3 run plan --input input.h5 --output good_out.h5 --dump-layers >/dev/null
$PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" good_ref.h5 good_out.h5 --layers --tol 1e-6
[ $failures -eq 0 ] || { echo "check_refusals: $failures refusals wrong"; exit 1; }
echo "check_refusals: every bad input refused with one line"
