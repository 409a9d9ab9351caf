#!/usr/bin/env bash
# check_prune.sh: models/prune.py on the shipped CNN (half its convolution's
# channels; one epoch of fine-tuning on 2048 training images, for time) makes
# a dense model of 6 channels instead of 12 (10,210 parameters instead of
# 20,410); splitinfer runs it as PyTorch computes the pruned module (every
# layer within 1e-4 of max |reference|, top-1 identical, predicted memory
# equal to measured), and on 2 nodes bit for bit as on one.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/prune
rm -rf "$work" && mkdir -p "$work"
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

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
"$SPLITINFER_BUILD/splitinfer" plan pruned.h5 --nodes 1 -o plan1 >/dev/null
"$SPLITINFER_BUILD/splitinfer" plan pruned.h5 --nodes 2 -o plan2 >/dev/null
splitinfer_mpirun 2 run plan1 --input input.h5 --output out1.h5 --dump-layers --stats stats.json >/dev/null
splitinfer_mpirun 3 run plan2 --input input.h5 --output out2.h5 --dump-layers >/dev/null
$PYTHON "$SPLITINFER_ROOT/tests/torch/compare.py" reference.h5 out1.h5 --layers --tol 1e-4
$PYTHON "$SPLITINFER_ROOT/tests/check_stats.py" stats.json
$PYTHON "$SPLITINFER_ROOT/tests/distributed/compare_bitwise.py" out1.h5 out2.h5
echo PASS
