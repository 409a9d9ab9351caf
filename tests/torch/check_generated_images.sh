#!/usr/bin/env bash
# check_generated_images.sh: image decoding for colour models. Exports a
# seeded random mobilenet_v2 (RGB, 64x64) and checks a PNG and a JPEG (each
# smaller than the model input, so both are upscaled) with check_image.sh.
# JPEG decoders may differ by a level, hence its looser tolerance.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/generated_images
rm -rf "$work" && mkdir -p "$work"
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model mobilenet_v2 --input-shape 1,3,64,64 --out "$work/model.h5"
$PYTHON "$SPLITINFER_ROOT/tests/torch/image_input.py" make "$work/colour.png" --size 40x52 --channels 3 --seed 3
$PYTHON "$SPLITINFER_ROOT/tests/torch/image_input.py" make "$work/colour.jpg" --size 48x36 --channels 3 --seed 4
"$(dirname "$0")/check_image.sh" generated_png "$work/model.h5" 1e-4 "$work/colour.png"
"$(dirname "$0")/check_image.sh" generated_jpg "$work/model.h5" 0.1 "$work/colour.jpg"
