#!/usr/bin/env bash
# check_quant_export_detects.sh: check_quant_export.py is not blind. A
# quantized cnn_on_mcu passes it; each copy with one change the engine would
# see (the largest bias halved, as if quantized at twice its scale; an output
# scale one float32 ulp off; the fused ReLU's clamp starting one above the
# zero point; one weight off by 1) must fail it. (A bias off by 1 is not a
# useful probe: it moves an output by w_scale * x_scale / y_scale, a small
# fraction of an LSB.)
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/export_quantized.sh"
work=$SPLITINFER_BUILD/tests/work/quant_export_detects
rm -rf "$work" && mkdir -p "$work"
cd "$work"

export_quantized cnn_on_mcu 1,1,28,28 fashion-mnist:8 --weights "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu.pt"
check="$PYTHON $SPLITINFER_ROOT/tests/torch/check_quant_export.py"
$check model.h5 reference.h5 >/dev/null
for change in bias scale clamp weight; do
  cp model.h5 "$change.h5"
  $PYTHON - "$change.h5" "$change" <<'PY'
import sys
import h5py
import numpy as np
path, change = sys.argv[1:]
with h5py.File(path, "a") as f:
    conv = f["layers/conv"]
    if change == "bias":
        b = conv["bias"][...]
        b[np.argmax(np.abs(b))] //= 2
        conv["bias"][...] = b
    elif change == "scale":
        conv.attrs["scale"] = np.float64(np.nextafter(np.float32(conv.attrs["scale"]), np.float32(1)))
    elif change == "clamp":
        conv.attrs["clamp"] = conv.attrs["clamp"] + np.array([1, 0])
    else:
        w = conv["weight"][...]
        w[5, 0, 1, 1] += 1 if w[5, 0, 1, 1] < 127 else -1
        conv["weight"][...] = w
PY
  if $check "$change.h5" reference.h5 >/dev/null 2>&1; then
    echo "check_quant_export.py passed a model with a changed $change" >&2
    exit 1
  fi
  echo "changed $change: detected"
done
