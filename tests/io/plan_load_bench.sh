#!/usr/bin/env bash
# plan_load_bench.sh [NODES]: what verification costs when a plan is loaded.
# Exports mobilenet_v2 (1x3x96x96, seeded weights), plans it for NODES nodes
# (default 4), rewrites the plan without checksums and digests (contiguous
# datasets, no content_digest, file_digest or model_graph_digest: what
# splitinfer reads unchecked), and prints plan_load_bench's times for both,
# and for the checked plan with every file vetted first (splitinfer-vet).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
nodes=${1:-4}
work=$SPLITINFER_BUILD/tests/work/plan_load_bench
rm -rf "$work" && mkdir -p "$work"
cd "$work"
$PYTHON "$SPLITINFER_ROOT/models/export_torch.py" --model mobilenet_v2 --input-shape 1,3,96,96 \
  --out mobilenet_v2.h5 >/dev/null
"$SPLITINFER_BUILD/splitinfer" plan mobilenet_v2.h5 --nodes "$nodes" -o checked >/dev/null
$PYTHON - checked unchecked <<'PY'
import os
import sys

import h5py

DIGESTS = ("content_digest", "file_digest", "model_graph_digest")


def copy(source, target):
    for key, value in source.attrs.items():
        if key not in DIGESTS:
            target.attrs[key] = value
    for name, item in source.items():
        if isinstance(item, h5py.Group):
            copy(item, target.create_group(name))
        else:
            dataset = target.create_dataset(name, data=item[()], dtype=item.dtype)
            for key, value in item.attrs.items():
                dataset.attrs[key] = value


checked, unchecked = sys.argv[1], sys.argv[2]
os.makedirs(unchecked)
for name in sorted(os.listdir(checked)):
    with h5py.File(os.path.join(checked, name)) as source, \
            h5py.File(os.path.join(unchecked, name), "w") as target:
        copy(source, target)
PY
du -sh checked unchecked
"$SPLITINFER_BUILD/plan_load_bench" unchecked
"$SPLITINFER_BUILD/plan_load_bench" checked
"$SPLITINFER_BUILD/plan_load_bench" checked 20 "$SPLITINFER_BUILD/splitinfer-vet"
