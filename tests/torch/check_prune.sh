#!/usr/bin/env bash
# check_prune.sh: models/prune.py on the shipped CNN (half its convolution's
# channels; one epoch of fine-tuning on 2048 training images, for time) makes
# a dense model of 6 channels instead of 12 (10,210 parameters instead of
# 20,410); splitinfer runs it as PyTorch computes the pruned module (every
# layer within 1e-4 of max |reference|, top-1 identical, predicted memory
# equal to measured), and on 2 nodes bit for bit as on one; distilled from
# teachers, from fresh weights (--reinit), and the best of two seeds on
# held-out training images (--holdout, --select-seeds); then the shipped
# MobileNetV2's hidden channels, through its depthwise convolutions.
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

# A seed chosen on held-out training images (--holdout, --select-seeds): seeds
# 4 and 5 trained alike on the first 2048 images, compared on the last 1000;
# the one written is the first with the most held-out images right (here the
# second, seed 5), never chosen on the test set; it is what --seed alone
# gives (the same weights), and splitinfer runs it as PyTorch computes it.
# Without --train-images the held-out images are left out of the training
# (and of the teachers' logits); overlapping or impossible options are
# refused in one line.
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
  --sparsity 0.5 --epochs 1 --train-images 2048 --test-images 1000 --distill --reinit \
  --teacher "fashion_cnn_teacher=$SPLITINFER_ROOT/models/fashion/cnn_teacher.pt" --seed 4 \
  --holdout 1000 --select-seeds 2 --state-dict selected.pt --out selected.h5 \
  --reference selected_reference.h5 --input-file input.h5 | tee selected.txt
[ "$(grep -c '^prune: teacher .*on the 2048 training images' selected.txt)" = 2 ] || fail "selection: not two teachers"
chosen=$($PYTHON - <<'PY'
import re
import sys

text = open("selected.txt").read()
held = [(int(s), int(r)) for s, r in
        re.findall(r"^prune: seed (\d+): held-out top-1 [\d.]+% \((\d+)/1000 of the last 1000", text, re.M)]
chosen = [int(s) for s in re.findall(r"^prune: chose seed (\d+):", text, re.M)]
tests = re.findall(r"^prune: seed (\d+): held-out top-1 [\d.]+%, test top-1 [\d.]+%( \(chosen\))?$", text, re.M)
marked = [int(s) for s, mark in tests if mark]
best = max(held, key=lambda t: (t[1], -t[0]))[0] if held else None   # most right; ties: the lowest seed
print(f"held-out images right per seed: {held}; chosen {chosen}, marked {marked}, expected {best}", file=sys.stderr)
if not ([s for s, _ in held] == [4, 5] and len(tests) == 2 and chosen == marked == [best]):
    sys.exit(1)
print(best)
PY
) || fail "selection: not the seed with the best held-out top-1"
check_pruned selected input.h5 selected_reference.h5 2
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
  --sparsity 0.5 --epochs 1 --train-images 2048 --test-images 1000 --distill --reinit \
  --teacher "fashion_cnn_teacher=$SPLITINFER_ROOT/models/fashion/cnn_teacher.pt" --seed "$chosen" \
  --holdout 1000 --state-dict alone.pt --out alone.h5 >alone.txt
grep -q "^prune: seed $chosen: held-out top-1 .*(.*/1000 of the last 1000" alone.txt || fail "--holdout alone: no held-out top-1"
right=$(grep "^prune: seed $chosen: held-out.*of the last" selected.txt | grep -o '([0-9]*/1000 ')
[ -n "$right" ] && [ "$(grep "^prune: seed $chosen: held-out" alone.txt | grep -o '([0-9]*/1000 ')" = "$right" ] ||
  fail "--seed $chosen alone: not the held-out top-1 of the selection's seed $chosen"
$PYTHON - <<'PY' || fail "--seed $chosen alone: not the selection's weights"
import torch

a, b = torch.load("selected.pt"), torch.load("alone.pt")
assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
PY
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" \
  --sparsity 0.5 --epochs 1 --test-images 200 --distill \
  --teacher "fashion_cnn_teacher=$SPLITINFER_ROOT/models/fashion/cnn_teacher.pt" --holdout 58000 --out rest.h5 >rest.txt
[ "$(grep -c '^prune: teacher .*on the 2000 training images' rest.txt)" = 2 ] ||
  fail "--holdout 58000: not trained on the first 2000 images only"
grep -q '^prune: seed 0: held-out top-1 .*/58000 of the last 58000 training images' rest.txt ||
  fail "--holdout 58000: no held-out top-1"
for bad in "--holdout 60000" "--holdout 1000 --train-images 59001" "--select-seeds 2" \
           "--holdout 1000 --select-seeds 0" "--holdout 1000 --select-seeds 2 --epochs 0"; do
  # shellcheck disable=SC2086
  if error=$($PYTHON "$SPLITINFER_ROOT/models/prune.py" --model cnn_on_mcu \
    --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt" --sparsity 0.5 $bad --out bad.h5 2>&1); then
    fail "'$bad' ran"
  fi
  [ "$(echo "$error" | grep -c 'error: --\(holdout\|train-images\|select-seeds\)')" = 1 ] || fail "'$bad': '$error'"
done

# The shipped MobileNetV2-0.35: the inverted residuals' hidden channels go
# through the depthwise convolutions (no fine-tuning here): PyTorch's values,
# and 3 nodes bit for bit.
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,1,96,96 --seed 1 --out input96.h5
$PYTHON "$SPLITINFER_ROOT/models/prune.py" --model fashion_mobilenetv2 \
  --weights "$SPLITINFER_ROOT/models/fashion/mobilenetv2_035_96.h5" --sparsity 0.5 --epochs 0 --test-images 200 \
  --out mobilenet.h5 --reference mobilenet_reference.h5 --input-file input96.h5 | cut -c1-200
check_pruned mobilenet input96.h5 mobilenet_reference.h5 3
echo PASS
