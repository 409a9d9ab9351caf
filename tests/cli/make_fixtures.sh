#!/usr/bin/env bash
# make_fixtures.sh: the files the bad-input tests need, in
# $SPLITINFER_BUILD/tests/work/cli: a small good model (the CNN_on_MCU CNN,
# seeded random weights), an input for it, its one-node plan, a plan of
# another model (whose node file is "foreign"), the broken files of
# make_bad_files.py, and device profiles with one fault each.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/cli
rm -rf "$work" && mkdir -p "$work"
cd "$work"
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model cnn_on_mcu --out good.h5
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model cnn_on_mcu --seed 7 --out other.h5
$PYTHON "$SPLITINFER_ROOT/models/make_input.py" --shape 1,1,28,28 --out input.h5
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 1 -o plan
"$SPLITINFER_BUILD/splitinfer" plan other.h5 --nodes 1 -o other_plan
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 3 -o plan_3
# The shipped int8 CNN taking 8-bit pixels (a float input that is no image's is refused).
"$SPLITINFER_BUILD/splitinfer" plan "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu_int8.h5" --input-pixels -o pixels_plan
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 3 --strategy spatial --tasks 6 -o plan_3_tasks
# A plan whose node file is another plan's.
cp -r plan foreign_plan && cp other_plan/node_1.h5 foreign_plan/node_1.h5
# Fused plans whose owners overlap, or lie outside what a node computes.
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 2 --strategy fused -o fused_plan
cp -r fused_plan overlapping_owners_plan && cp -r fused_plan owners_outside_plan
$PYTHON - <<'PY'
import h5py
with h5py.File("overlapping_owners_plan/plan.h5", "r+") as plan:
    owners = plan["owners"][...]
    owners[1, 1] = owners[1, 0]  # node 2 owns what node 1 owns of layer 1
    plan["owners"][...] = owners
with h5py.File("owners_outside_plan/plan.h5", "r+") as plan:
    regions = plan["regions"][...]
    regions[1, 0, 3] = regions[1, 0, 2]  # node 1 computes no rows of layer 1
    plan["regions"][...] = regions
PY
# Streamed plans whose run takes in a layer that cannot stream, whose node region of a run's
# layer is short of what the run reads, or whose streams have the wrong shape.
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 2 --stream 2 -o stream_plan
for bad in stream_not_streamable stream_region_short stream_shape; do cp -r stream_plan ${bad}_plan; done
$PYTHON - <<'PY'
import h5py
with h5py.File("stream_not_streamable_plan/plan.h5", "r+") as plan:
    streams = plan["streams"][...]
    streams[0, 1] = streams[0, 1] + 1  # takes in the flatten after the pool
    plan["streams"][...] = streams
with h5py.File("stream_region_short_plan/plan.h5", "r+") as plan:
    first = int(plan["streams"][0, 0])
    regions = plan["regions"][...]
    regions[first, 1] = plan["owners"][first, 1]  # node 2 computes only its own rows
    plan["regions"][...] = regions
with h5py.File("stream_shape_plan/plan.h5", "r+") as plan:
    streams = plan["streams"][...]
    del plan["streams"]
    plan["streams"] = streams[:, :3]
PY
# A plan whose /layer_strategies lacks a row, and one of a strategy splitinfer does not know.
cp -r plan layer_strategies_short_plan
cp -r plan unknown_strategy_plan
$PYTHON - <<'PY'
import h5py
with h5py.File("unknown_strategy_plan/plan.h5", "r+") as plan:
    plan.attrs["strategy"] = "diagonal"
with h5py.File("layer_strategies_short_plan/plan.h5", "r+") as plan:
    names = plan["layer_strategies"][...]
    del plan["layer_strategies"]
    plan.create_dataset("layer_strategies", data=names[1:], dtype=h5py.string_dtype())
PY
# A plan whose node file is garbage.
cp -r plan garbage_plan && echo garbage > garbage_plan/node_1.h5
$PYTHON "$SPLITINFER_ROOT/tests/cli/make_bad_files.py" good.h5 .
$PYTHON "$SPLITINFER_ROOT/tests/cli/make_bad_int8_files.py" \
  "$SPLITINFER_ROOT/models/fashion/cnn_on_mcu_int8.h5" good.h5 .
$PYTHON "$SPLITINFER_ROOT/tests/cli/make_bad_quantize_files.py" good.h5 .
$PYTHON "$SPLITINFER_ROOT/tests/cli/make_bad_limits_files.py" good.h5 .
# The files edited above on purpose get their content digest recomputed, so
# each fails for its own fault; then the damaged files of make_corrupt_files.py.
$PYTHON - "$SPLITINFER_ROOT/models" <<'PY'
import glob
import sys

import h5py

sys.path.insert(0, sys.argv[1])
from model_file import seal

for path in glob.glob("**/*.h5", recursive=True):
    try:
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("format", "")
    except OSError:
        continue  # not HDF5
    if kind in ("splitinfer-model", "splitinfer-plan", "splitinfer-node"):
        seal(path)
PY
"$SPLITINFER_BUILD/splitinfer" quantize good.h5 --weights fp16 -o fp16.h5
$PYTHON "$SPLITINFER_ROOT/tests/cli/make_corrupt_files.py" .
# Inputs that are not regular files: a FIFO (no writer: opening it would
# block) and a directory; and a model file named like the plan file of the
# plan directory it is planned into.
mkfifo input_fifo.h5
mkdir input_directory.h5
mkdir -p model_in_plan_dir && cp good.h5 model_in_plan_dir/plan.h5
# Device profiles: teensy41's with a negative int8 rate, and without a source.
$PYTHON - "$SPLITINFER_ROOT/partition/devices/teensy41.json" <<'EOF'
import json
import sys

profile = json.load(open(sys.argv[1]))
profile["macs_per_second_int8"]["value"] = -5
json.dump(profile, open("device_negative_rate.json", "w"))
profile = json.load(open(sys.argv[1]))
del profile["link_bytes_per_second"]["source"]
json.dump(profile, open("device_no_source.json", "w"))
EOF
