#!/usr/bin/env bash
# check_prune.sh: models/prune.py on the shipped CNN (half its convolution's
# channels; one epoch of fine-tuning on 2048 training images, for time) makes
# a dense model of 6 channels instead of 12 (10,210 parameters instead of
# 20,410); splitinfer runs it as PyTorch computes the pruned module (every
# layer within 1e-4 of max |reference|, top-1 identical, predicted memory
# equal to measured), and on 2 nodes bit for bit as on one; then the
# shipped MobileNetV2's hidden channels, through its depthwise convolutions.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/prune
rm -rf "$work" && mkdir -p "$work"
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

# check_pruned NAME INPUT REFERENCE NODES: NAME.h5 on one node against
# PyTorch's REFERENCE (every layer), memory as predicted, and on NODES nodes
# bit for bit as on one.
check_pruned() {
  local name=$1 input=$2 reference=$3 nodes=$4
  "$SPLITINFER_BUILD/splitinfer" plan "$name.h5" --nodes 1 -o "${name}_plan1" >/dev/null
  "$SPLITINFER_BUILD/splitinfer" plan "$name.h5" --nodes "$nodes" -o "${name}_plan$nodes" >/dev/null
  splitinfer_mpirun 2 run "${name}_plan1" --input "$input" --output "${name}_out1.h5" --dump-layers \
    --stats "${name}_stats.json" >/dev/null
  splitinfer_mpirun $((nodes + 1)) run "${name}_plan$nodes" --input "$input" --output "${name}_out$nodes.h5" \
    --dump-layers >/dev/null
  $PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" "$reference" "${name}_out1.h5" --layers --tol 1e-4
  $PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" "${name}_stats.json"
  $PYTHON "$SPLITINFER_ROOT/tests/distributed/compare_bitwise.py" "${name}_out1.h5" "${name}_out$nodes.h5"
}

$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,1,28,28 --seed 1 --out input.h5
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
  --sparsity 0.5 --epochs 1 --train-images 2048 --out pruned.h5 --reference reference.h5 --input-file input.h5 |
  tee prune.txt
$PYTHON - "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.h5" <<'PY' || fail "not a pruned model"
import sys

import h5py

def count(path):
    with h5py.File(path, "r") as f:
        layers = f["layers"]
        return sum(layers[n][b].size for n in layers.attrs["order"] for b in layers[n] if b in ("weight", "bias"))

original = count(sys.argv[1])
pruned = count("pruned.h5")
with h5py.File("pruned.h5", "r") as f:
    channels = [int(f["layers"][n].attrs["output_shape"][1]) for n in f["layers"].attrs["order"]
                if f["layers"][n].attrs["op"] == "conv2d"]
print(f"parameters {original} -> {pruned} ({100 * (1 - pruned / original):.1f}% fewer); conv channels {channels}")
# conv 6x1x3x3 + 6, fc 10 x (6 x 13 x 13) + 10: the dense model of 6 channels.
sys.exit(not (channels == [6] and pruned == 6 * 9 + 6 + 10 * 6 * 169 + 10))
PY
check_pruned pruned input.h5 reference.h5 2

# Distilled from an ensemble (--teacher): the unpruned CNN's and the shipped
# MobileNetV2's logits (at its 96x96) on the training images, averaged; 7 of
# the 12 channels go. A --teacher without weights is refused in one line.
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
  --sparsity 0.58 --epochs 1 --train-images 512 --test-images 1000 --distill \
  --teacher "fashion_mobilenetv2=$SPLITINFER_ROOT/models/fashion/mobilenetv2_035_96.h5" --out pruned5.h5 |
  tee prune5.txt
[ "$(grep -c '^prune: teacher .*on the 512 training images' prune5.txt)" = 2 ] || fail "not two teachers"
grep -q "^prune: kept {'conv': 5} channels: 8510 parameters" prune5.txt || fail "not 5 channels"
if error=$($PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu \
  --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" --sparsity 0.5 --teacher fashion_mobilenetv2 \
  --out bad.h5 2>&1); then fail "a --teacher without weights ran"; fi
[ "$(echo "$error" | grep -c 'error: --teacher')" = 1 ] || fail "--teacher without weights: '$error'"

# --reinit: the pruned model starts from fresh weights (with the shipped
# teacher CNN in the ensemble), not the kept channels' ones. At a learning
# rate of 1e-12 one epoch leaves the weights where they started: the kept
# rows of the unpruned convolution without --reinit, none of them with it.
for variant in keep reinit; do
  option=() && [ $variant = reinit ] && option=(--reinit)
  $PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
    --sparsity 0.5 --epochs 1 --lr 1e-12 --train-images 256 --test-images 500 --distill "${option[@]}" \
    --teacher "fashion_cnn_teacher=$SPLITINFER_ROOT/models/fashion/cnn_teacher.pt" \
    --state-dict "$variant.pt" --out "$variant.h5" >"$variant.txt"
  [ "$(grep -c '^prune: teacher .*on the 256 training images' "$variant.txt")" = 2 ] || fail "$variant: not two teachers"
done
grep -q "^prune: weights initialised afresh" reinit.txt || fail "--reinit did not say so"
$PYTHON - "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" <<'PY' || fail "--reinit kept the pruned weights"
import sys

import torch

original = torch.load(sys.argv[1])["conv.weight"].flatten(1)
for variant, expect_kept in (("keep", True), ("reinit", False)):
    rows = torch.load(f"{variant}.pt")["conv.weight"].flatten(1)
    # each row's distance to the nearest row of the unpruned convolution
    nearest = torch.cdist(rows, original).min(1).values
    print(f"{variant}: distance of each of the {len(rows)} rows to the nearest unpruned row: "
          f"{[round(float(d), 6) for d in nearest]}")
    kept = bool((nearest < 1e-6).all())
    if kept != expect_kept or (not expect_kept and bool((nearest < 1e-3).any())):
        sys.exit(1)
PY

# The shipped MobileNetV2-0.35: the inverted residuals' hidden channels go
# through the depthwise convolutions (no fine-tuning here): PyTorch's values,
# and 3 nodes bit for bit.
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,1,96,96 --seed 1 --out input96.h5
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model fashion_mobilenetv2 \
  --weights "$SPLITINFER_ROOT/models/fashion/mobilenetv2_035_96.h5" --sparsity 0.5 --epochs 0 --test-images 200 \
  --out mobilenet.h5 --reference mobilenet_reference.h5 --input-file input96.h5 | cut -c1-200
check_pruned mobilenet input96.h5 mobilenet_reference.h5 3
echo PASS
