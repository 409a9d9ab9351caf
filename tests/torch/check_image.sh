#!/usr/bin/env bash
# check_image.sh LABEL MODEL.h5 TOLERANCE IMAGE...
# For each image: splitinfer's decoded, resized and normalised input equals
# PyTorch's preprocessing of the same file (image_input.py) within TOLERANCE
# (absolute, in normalised units), and running from the image gives the same
# output as running from PyTorch's preprocessed tensor (1e-3 of max |output|,
# top-1 identical).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
label=$1 model=$2 tolerance=$3
shift 3
work=$SPLITINFER_BUILD/tests/work/image_$label
rm -rf "$work" && mkdir -p "$work"
"$SPLITINFER_BUILD/splitinfer" plan "$model" --nodes 1 -o "$work/plan" >/dev/null
input_layer=$($PYTHON -c "import h5py,sys; print(h5py.File(sys.argv[1])['layers'].attrs['order'][0])" "$model")
pairs=()
for image in "$@"; do pairs+=("$image" "$work/$(basename "$image").torch.h5"); done
$PYTHON "$SPLITINFER_ROOT/tests/torch/image_input.py" "$model" "${pairs[@]}"
for image in "$@"; do
  name=$(basename "$image")
  splitinfer_mpirun 2 run "$work/plan" --input "$image" --output "$work/$name.image_out.h5" --dump-layers | head -1
  splitinfer_mpirun 2 run "$work/plan" --input "$work/$name.torch.h5" --output "$work/$name.tensor_out.h5" >/dev/null
  $PYTHON - "$work/$name" "$input_layer" "$tolerance" <<'PY'
import sys
import h5py
import numpy as np
base, input_layer, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
torch_input = h5py.File(base + ".torch.h5")["input"][...]
image_run = h5py.File(base + ".image_out.h5")
decoded = image_run["layers/" + input_layer][...]
input_error = float(np.abs(decoded - torch_input).max())
from_image = image_run["output"][...]
from_tensor = h5py.File(base + ".tensor_out.h5")["output"][...]
output_error = float(np.abs(from_image - from_tensor).max() / max(np.abs(from_tensor).max(), 1e-30))
same_top1 = int(from_image.argmax()) == int(from_tensor.argmax())
print(f"{base.split('/')[-1]}: input max abs error {input_error:.3g} (tolerance {tolerance}), "
      f"output max relative error {output_error:.3g}, top-1 {from_image.argmax()} vs {from_tensor.argmax()}")
sys.exit(0 if input_error <= tolerance and output_error <= 1e-3 and same_top1 else 1)
PY
done
