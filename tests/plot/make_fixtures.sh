#!/usr/bin/env bash
# The files the plot.* tests draw: MobileNetV2 (seeded random weights) at
# 64x64, plans spatial 2x2 (with a RAM cap), fused 2x2 (blocks of 6 layers)
# and channel on 3 nodes, a run of the spatial plan with --stats and --trace,
# a copy of the spatial plan holding made-up emulated per-layer seconds (the
# datasets the cost model is to write), input files (.h5, .png, .jpg) and
# bad inputs.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/plot
rm -rf "$work" && mkdir -p "$work"
cd "$work"
splitinfer=$SPLITINFER_BUILD/splitinfer
# matplotlib builds its font cache on first use and says so on stderr: done
# here, so that the bad-input tests see only jobs/plot's own line.
$PYTHON -c "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot" 2>/dev/null

$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model mobilenet_v2 --input-shape 1,3,64,64 --out model.h5 >/dev/null
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,3,64,64 --seed 1 --out input.h5
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,3,32,32 --seed 1 --out input_32.h5
"$splitinfer" plan model.h5 --nodes 4 --grid 2x2 --ram 2MiB -o plan_spatial >/dev/null
"$splitinfer" plan model.h5 --nodes 4 --grid 2x2 --strategy fused --fuse 6 -o plan_fused >/dev/null
"$splitinfer" plan model.h5 --nodes 3 --strategy channel -o plan_channel >/dev/null
splitinfer_mpirun 5 run plan_spatial --input input.h5 --stats stats.json --trace trace.json >/dev/null
cp -r plan_spatial plan_emulated
$PYTHON - <<'PY'
import h5py
import numpy as np

# Made-up seconds in the layout the cost model is to write: per node
# [layers, 3] = compute, flash, communication, and the total at the root.
with h5py.File("plan_emulated/plan.h5", "a") as plan:
    layers = len(plan["model/layers"].attrs["order"])
    rng = np.random.default_rng(0)
    totals = []
    for k in range(1, plan.attrs["nodes"] + 1):
        seconds = rng.uniform(0, 1e-3, (layers, 3))
        plan[f"nodes/node_{k}"].create_dataset("per_layer_seconds", data=seconds)
        totals.append(seconds.sum())
    plan.attrs["emulated_seconds"] = max(totals)
PY
$PYTHON -c "from PIL import Image; Image.open('$SPLITINFER_ROOT/models/images/8_sandal.png').convert('RGB').save('sandal.jpg')"
echo "not an image" >bad_image.png
mkdir not_a_plan_dir
echo '{"model": "m", "host_seconds": 1}' >not_stats.json
