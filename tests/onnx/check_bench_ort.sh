#!/usr/bin/env bash
# jobs/bench's ONNX Runtime leg on one model: bench_torch.py --export-onnx
# writes squeezenet1_1 (seed 0, 224x224) as ONNX, bench_ort.py times it on
# one thread (a warm-up and 3 timed runs) and writes its output, which must
# be PyTorch's (bench_torch.py on the same seed and input) within 1e-4 of the
# largest logit, with 3 positive times in its JSON.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/onnx_bench_ort
rm -rf "$work" && mkdir -p "$work"
cd "$work"
models=$SPLITINFER_ROOT/models
$PYTHON "$models/make_input.py" --shape 1,3,224,224 --seed 3 --out input.h5
$PYTHON "$models/bench_torch.py" --model squeezenet1_1 --input-file input.h5 --export-onnx model.onnx
$PYTHON "$models/bench_torch.py" --model squeezenet1_1 --input-file input.h5 --repeat 1 \
  --json torch.json --output torch.h5
$PYTHON "$models/bench_ort.py" model.onnx --input-file input.h5 --repeat 3 --json ort.json --output ort.h5
$PYTHON - <<'PY'
import json
import sys

import h5py
import numpy as np

timing = json.load(open("ort.json"))
seconds = timing["seconds"]
if len(seconds) != 3 or min(seconds) <= 0 or not min(seconds) <= timing["seconds_median"] <= max(seconds):
    sys.exit(f"check_bench_ort: error: ort.json times {seconds}, median {timing['seconds_median']}")
ours = np.asarray(h5py.File("ort.h5", "r")["output"])
theirs = np.asarray(h5py.File("torch.h5", "r")["output"])
difference = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else float("inf")
if difference > 1e-4 * float(np.abs(theirs).max()):
    sys.exit(f"check_bench_ort: error: ONNX Runtime's output differs from PyTorch's by {difference}")
print(f"ONNX Runtime: {len(seconds)} times, median {timing['seconds_median'] * 1e3:.1f} ms; "
      f"output within {difference:.2g} of PyTorch's")
PY
