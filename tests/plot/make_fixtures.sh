#!/usr/bin/env bash
# The files the plot.* tests draw: MobileNetV2 (seeded random weights) at
# 64x64, plans spatial 2x2 (with a RAM cap), fused 2x2 (blocks of 6 layers)
# and channel on 3 nodes, a run of the spatial plan with --stats and --trace,
# a spatial 3x1 plan made with --device teensy41 (so plan.h5 holds the cost
# model's /emulation), auto plans, input files (.h5, .png, .jpg) and bad inputs.
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
# The cost model's /emulation: teensy41's rates; its caps (1 MiB RAM, 8 MiB
# flash) are below what 3 rows of float MobileNetV2 need, so larger ones are
# given. Uneven rows (64 over 3, and the later maps have fewer rows than
# nodes) make some nodes wait, so every part of the timeline shows.
"$splitinfer" plan model.h5 --nodes 3 --grid 3x1 --device teensy41 --ram 8MiB --flash 64MiB \
  -o plan_emulated >/dev/null
# Auto plans, a strategy per stage of the network (plan.h5's
# /layer_strategies: a row per layer, the input layer's empty): on 3 nodes,
# and on the fewest esp32s3 boards that fit (with /emulation).
"$splitinfer" plan model.h5 --strategy auto --nodes 3 -o plan_auto >/dev/null
"$splitinfer" plan model.h5 --strategy auto --device esp32s3 -o plan_auto_device >/dev/null
# The same with /emulation/per_layer one column short; an auto plan whose
# /layer_strategies lacks a row; and one written before /layer_strategies,
# whose comma-joined attribute lost the input layer's empty entry.
cp -r plan_emulated plan_bad_emulation
cp -r plan_auto plan_short_strategies
cp -r plan_auto plan_joined_strategies
$PYTHON - <<'PY'
import h5py

with h5py.File("plan_bad_emulation/plan.h5", "a") as plan:
    per_layer = plan["emulation/per_layer"][...]
    del plan["emulation/per_layer"]
    plan["emulation"].create_dataset("per_layer", data=per_layer[:, :, :4])
with h5py.File("plan_short_strategies/plan.h5", "a") as plan:
    names = plan["layer_strategies"][...]
    del plan["layer_strategies"]
    plan.create_dataset("layer_strategies", data=names[1:], dtype=h5py.string_dtype())
with h5py.File("plan_joined_strategies/plan.h5", "a") as plan:
    names = list(plan["layer_strategies"].asstr()[...])
    del plan["layer_strategies"]
    plan.attrs["layer_strategies"] = ",".join(names[1:])
PY
$PYTHON -c "from PIL import Image; Image.open('$SPLITINFER_ROOT/models/images/8_sandal.png').convert('RGB').save('sandal.jpg')"
echo "not an image" >bad_image.png
mkdir not_a_plan_dir
echo '{"model": "m", "host_seconds": 1}' >not_stats.json
# A reconfigure.csv as jobs/intermittent writes it (its figures made up here:
# the test is of the drawing), and one that is not.
$PYTHON - <<'PY'
import itertools

with open("reconfigure.csv", "w") as f:
    f.write("nodes,intermittency,configuration,order,job_ms,device_ms,seeds,inferences\n")
    for nodes, (level, scale) in itertools.product([1, 2], [("continuous", 1), ("weak", 1.4), ("strong", 6)]):
        for k, (ms, order) in enumerate(itertools.product(["0.5", "1", "2"], ["channels", "rows"])):
            f.write(f"{nodes},{level},{ms}:{order},{order},{ms},{scale * (30 + 3 * k) / nodes},6,20\n")
        f.write(f"{nodes},{level},layer,,,{scale * 35 / nodes},6,20\n")
        f.write(f"{nodes},{level},dynamic,,,{scale * 31 / nodes},6,20\n")
with open("not_reconfigure.csv", "w") as f:
    f.write("nodes,level,time\n1,weak,3\n")
PY
