"""check_plan.py PLANDIR: each node's per-layer predictions in plan.h5 add up
to its totals (bytes sent and received), and its largest per-layer footprint
is its predicted peak RAM."""
import os
import sys

import h5py


def check(plan_dir):
    """What is wrong with PLAN_DIR's predictions (an empty list when nothing)."""
    failures = []
    with h5py.File(os.path.join(plan_dir, "plan.h5"), "r") as plan:
        layers = len(plan["model/layers"].attrs["order"])
        for name, node in plan["nodes"].items():
            per_layer = node["per_layer"][...]
            attrs = node.attrs
            if per_layer.shape != (layers, 3):
                failures.append(f"{name}: per_layer has shape {per_layer.shape}, expected ({layers}, 3)")
                continue
            for column, total in ((1, "predicted_bytes_sent"), (2, "predicted_bytes_received")):
                if per_layer[:, column].sum() != attrs[total]:
                    failures.append(f"{name}: per-layer {total} add up to {per_layer[:, column].sum()}, not {attrs[total]}")
            if per_layer[:, 0].max() != attrs["predicted_peak_ram_bytes"]:
                failures.append(f"{name}: largest layer footprint {per_layer[:, 0].max()} != peak {attrs['predicted_peak_ram_bytes']}")
    return failures


def main():
    failures = check(sys.argv[1])
    for failure in failures:
        print("check_plan: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
