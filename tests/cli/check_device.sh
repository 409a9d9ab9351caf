#!/usr/bin/env bash
# check_device.sh: `plan --device teensy41` takes its RAM and flash caps from
# partition/devices/teensy41.json (an explicit --ram overrides the RAM cap),
# stores the device and the emulated time in plan.h5 and prints the per-layer
# table; `run --stats` reports the plan's emulated time (total and per node),
# and null for a plan without a device. Uses the cli fixtures (good.h5, input.h5).
set -euo pipefail
source "$(dirname "$0")/../../jobs/lib/common.sh"
work=$SPLITINFER_BUILD/tests/work/cli
profile=$SPLITINFER_ROOT/partition/devices/teensy41.json
cd "$work"
rm -rf device_plan device_plan_ram device_stats.json plain_stats.json device_plan.txt

"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 2 --device teensy41 -o device_plan | tee device_plan.txt
"$SPLITINFER_BUILD/splitinfer" plan good.h5 --nodes 2 --device teensy41 --ram 512KiB -o device_plan_ram
grep -q "^device teensy41: RAM cap 1.00 MiB, flash cap 8.00 MiB$" device_plan.txt
grep -qE "^ +1 +conv +conv2d +spatial " device_plan.txt  # a row of the per-layer table
grep -qE "^emulated time [0-9.]+ ms on teensy41$" device_plan.txt

splitinfer_mpirun 3 run device_plan --input input.h5 --stats device_stats.json
splitinfer_mpirun 2 run plan --input input.h5 --stats plain_stats.json

$PYTHON - "$profile" <<'EOF'
import json
import sys

import h5py

profile = json.load(open(sys.argv[1]))
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


for plan_dir, ram_cap in (("device_plan", profile["ram_bytes"]["value"]), ("device_plan_ram", 512 * 1024)):
    with h5py.File(f"{plan_dir}/plan.h5", "r") as plan:
        check(plan.attrs["ram_cap_bytes"] == ram_cap, f"{plan_dir}: RAM cap {plan.attrs['ram_cap_bytes']}, expected {ram_cap}")
        check(plan.attrs["flash_cap_bytes"] == profile["flash_bytes"]["value"],
              f"{plan_dir}: flash cap {plan.attrs['flash_cap_bytes']}, expected the profile's {profile['flash_bytes']['value']}")
        check(plan["device"].attrs["name"] == "teensy41", f"{plan_dir}: device {plan['device'].attrs['name']}")
        check(plan["device"].attrs["macs_per_second_int8"] == profile["macs_per_second_int8"]["value"],
              f"{plan_dir}: the stored int8 rate is not the profile's")

with h5py.File("device_plan/plan.h5", "r") as plan:
    emulation = plan["emulation"]
    total = float(emulation.attrs["total_seconds"])
    node_seconds = emulation["node_seconds"][...]
    layers = len(plan["model/layers"].attrs["order"])
    check(emulation["per_layer"].shape == (2, layers, 5), f"per_layer has shape {emulation['per_layer'].shape}")
    check(abs(emulation["layer_seconds"][...].sum() + emulation.attrs["output_gather_seconds"] - total) <= 1e-12 * total,
          "the layers' times and the gather do not add up to the total")

stats = json.load(open("device_stats.json"))
check(isinstance(stats["emulated_seconds"], float) and stats["emulated_seconds"] > 0,
      f"emulated_seconds is {stats['emulated_seconds']!r}")
check(stats["emulated_seconds"] == total, f"run reports {stats['emulated_seconds']!r}, the plan predicts {total!r}")
check(stats.get("device") == "teensy41", f"device {stats.get('device')!r}")
for node in stats["nodes"]:
    expected = float(node_seconds[node["rank"] - 1][0])
    check(node["emulated_seconds"] == expected, f"node {node['rank']}: emulated_seconds {node['emulated_seconds']!r}, plan {expected!r}")

plain = json.load(open("plain_stats.json"))
check(plain["emulated_seconds"] is None, f"a plan without a device reports emulated_seconds {plain['emulated_seconds']!r}")
check(all(node["emulated_seconds"] is None for node in plain["nodes"]), "nodes of a plan without a device report a time")

for failure in failures:
    print("check_device: " + failure)
print(f"emulated {total * 1e3:.3f} ms on teensy41; " + ("FAIL" if failures else "PASS"))
sys.exit(1 if failures else 0)
EOF
