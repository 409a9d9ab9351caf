#!/usr/bin/env bash
# check_plot.sh CASE: runs jobs/plot on the fixtures (make_fixtures.sh) and
# checks what it wrote (check_plot.py): every file it prints exists and is a
# PNG with content; tiles.png's rectangles are where plan.h5's regions put
# them; the emulated timeline is drawn when the plan was made with --device
# (its bars where /emulation puts them) and skipped with a note when not;
# auto plans, which mix strategies, have them shaded layer by layer.
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/plot
cd "$work"
plot=$SPLITINFER_ROOT/jobs/plot
check() { $PYTHON "$SPLITINFER_ROOT/tests/plot/check_plot.py" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# plot_into OUTDIR ARGS...: runs jobs/plot, and checks that the paths it
# prints are exactly the files in OUTDIR.
plot_into() {
  local outdir=$1
  shift
  rm -rf "$outdir"
  "$plot" "$@" -o "$outdir" >"$outdir.txt"
  cat "$outdir.txt"
  diff <(grep -v '^plot: ' "$outdir.txt" | sort) <(find "$outdir" -type f | sort) ||
    fail "the paths printed are not the files written"
}

# Colours the pictures must hold: the RAM cap and the emulated total (red),
# the timelines' parts.
red='#ff0000'
compute='#4878a8' exchange='#f28e2b' flash='#59a14f' wait='#c7c7c7'

case $1 in
  spatial)  # blank map; the plan has a RAM cap
    plot_into out_spatial plan_spatial
    check png out_spatial/memory.png --colors "$red"
    check png out_spatial/bytes.png out_spatial/tiles.png
    check tiles plan_spatial out_spatial --blank
    grep -q '^plot: timeline.png skipped: plan.h5 holds no emulated times' out_spatial.txt ||
      fail "no note that the timeline was skipped"
    [ ! -e out_spatial/timeline.png ] && [ ! -e out_spatial/timeline.json ] ||
      fail "timeline drawn for a plan made without a device"
    ;;
  image)  # over a PNG (resized 28x28 -> 64x64), a JPG, an .h5 input; a deeper layer
    plot_into out_png plan_spatial --input "$SPLITINFER_ROOT/models/images/8_sandal.png"
    check png out_png/tiles.png
    check tiles plan_spatial out_png
    plot_into out_jpg plan_spatial --input sandal.jpg --layer features_3_conv_1_0
    check png out_jpg/tiles.png
    check tiles plan_spatial out_jpg --layer features_3_conv_1_0
    plot_into out_h5 plan_spatial/plan.h5 --input input.h5
    check png out_h5/tiles.png
    check tiles plan_spatial out_h5
    ;;
  fused)  # owned tiles solid, computed regions dashed
    plot_into out_fused plan_fused
    check png out_fused/memory.png out_fused/bytes.png out_fused/tiles.png
    check tiles plan_fused out_fused --blank
    $PYTHON -c "import json,sys; d=json.load(open('out_fused/tiles.json')); sys.exit(not any(r['kind'] == 'computed' for r in d['rectangles']))" ||
      fail "no computed region drawn for a fused plan"
    ;;
  channel)  # every node's box is the whole map: one rectangle for nodes 1-3
    plot_into out_channel plan_channel
    check png out_channel/memory.png out_channel/bytes.png out_channel/tiles.png
    check tiles plan_channel out_channel --blank
    ;;
  run)  # a run's --stats and --trace
    plot_into out_run stats.json --trace trace.json
    check png out_run/memory.png out_run/bytes.png --colors "$compute"
    check png out_run/host_timeline.png --colors "$compute,$exchange"
    plot_into out_plan_trace plan_spatial --trace trace.json
    check png out_plan_trace/host_timeline.png --colors "$compute,$exchange"
    plot_into out_trace trace.json
    check png out_trace/host_timeline.png --colors "$compute,$exchange"
    ;;
  emulated)  # made with --device teensy41: /emulation, timeline.png
    plot_into out_emulated plan_emulated
    check png out_emulated/timeline.png --colors "$compute,$flash,$exchange,$wait,$red"
    check timeline plan_emulated out_emulated
    grep -q '^plot: timeline.png skipped' out_emulated.txt && fail "timeline skipped for a plan with /emulation"
    $PYTHON -c "import json,sys; sys.exit(json.load(open('out_emulated/timeline.json'))['device'] != 'teensy41')" ||
      fail "timeline.json does not name teensy41"
    ;;
  auto)  # auto plans: /layer_strategies read, a row per layer, the strategies' bands drawn
    for plan in plan_auto plan_auto_device; do
      $PYTHON - "$plan" <<'PY' || fail "$plan: /layer_strategies is not a row per layer of two strategies or more"
import sys

import h5py

with h5py.File(f"{sys.argv[1]}/plan.h5", "r") as plan:
    names = list(plan["layer_strategies"].asstr()[...])
    layers = len(plan["model/layers"].attrs["order"])
print(f"{sys.argv[1]}: {len(names)} rows for {layers} layers: {sorted(set(names))}")
sys.exit(not (len(names) == layers and names[0] == "" and all(names[1:]) and len(set(names[1:])) >= 2))
PY
      plot_into "out_$plan" "$plan"
      # The band of the second strategy (in name order) behind both plots.
      check png "out_$plan/memory.png" "out_$plan/bytes.png" --colors '#fbe3c4'
      check png "out_$plan/tiles.png"
      check tiles "$plan" "out_$plan" --blank
    done
    # (its bars are checked in the emulated case: here no node waits)
    check png out_plan_auto_device/timeline.png --colors "$compute,$flash,$red"
    ;;
  reconfigure)  # jobs/intermittent's reconfigure.csv: both loop orders and dynamic (red)
    plot_into out_reconfigure reconfigure.csv
    check png out_reconfigure/reconfigure.png --colors "$red,$compute,#59a14f"
    ;;
  *) fail "unknown case $1" ;;
esac
echo PASS
