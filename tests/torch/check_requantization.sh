#!/usr/bin/env bash
# check_requantization.sh LABEL MODEL SHAPE CALIB [export options...]
# The two requantization modes of an int8 model, layer by layer against
# PyTorch's quantized model (export_quantized.sh makes model.h5 and
# reference.h5): requantization_layerwise computes every quint8 layer from
# PyTorch's own inputs, `pytorch` mode must equal PyTorch's (0 LSB) and
# `cmsis` (integer only) be within 1 LSB on every element of every layer.
# Then the whole network in cmsis mode, each layer fed by the previous one:
# its differences from PyTorch are printed (a figure, not a bound: they
# accumulate through the layers, models/quantization.md section 4).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
source "$(dirname "$0")/export_quantized.sh"
label=$1 model=$2 shape=$3 calib=$4
shift 4
options=()
for option in "$@"; do
  if [ -e "$option" ]; then options+=("$(cd "$(dirname "$option")" && pwd)/$(basename "$option")"); else options+=("$option"); fi
done
work=$SPLITINFER_BUILD/tests/work/requantization_$label
rm -rf "$work" && mkdir -p "$work"
cd "$work"
export_quantized "$model" "$shape" "$calib" ${options[@]+"${options[@]}"}
"$SPLITINFER_BUILD/requantization_layerwise" model.h5 reference.h5 pytorch 0 | tail -1
"$SPLITINFER_BUILD/requantization_layerwise" model.h5 reference.h5 cmsis 1 > cmsis_layers.txt ||
  { cat cmsis_layers.txt; exit 1; }
tail -1 cmsis_layers.txt
"$SPLITINFER_BUILD/splitinfer" plan model.h5 --nodes 1 -o plan > /dev/null
splitinfer_mpirun 2 run plan --input input.h5 --output cmsis.h5 --requantization cmsis > /dev/null
$PYTHON - <<'PY'
import h5py, numpy as np
ref = h5py.File("reference.h5", "r")["output_q"][...].astype(int)
got = h5py.File("cmsis.h5", "r")["output_q"][...].astype(int)
diff = np.abs(ref - got)
print(f"cmsis through the whole network: /output_q max {diff.max()} LSB from PyTorch, "
      f"{(diff > 0).sum()} of {diff.size} differ; top-1 {'equal' if ref.argmax() == got.argmax() else 'differs'}")
PY
