"""check_stats.py STATS.json: every node's measured peak RAM, flash (its weight
slices), bytes sent and bytes received equal the plan's predictions, and the required keys are there.
Exit 0 when they do, 1 (saying which) when not."""
import json
import sys

REQUIRED = ["rank", "peak_ram_bytes", "predicted_peak_ram_bytes", "ram_cap_bytes", "flash_bytes",
            "bytes_sent", "predicted_bytes_sent", "bytes_received", "host_seconds"]


def main():
    stats = json.load(open(sys.argv[1]))
    failures = [f"missing '{key}'" for key in ("host_seconds", "emulated_seconds", "nodes") if key not in stats]
    for node in stats.get("nodes", []):
        failures += [f"node {node.get('rank')}: missing '{key}'" for key in REQUIRED if key not in node]
        for measured, predicted in (("peak_ram_bytes", "predicted_peak_ram_bytes"),
                                    ("flash_bytes", "predicted_flash_bytes"),
                                    ("bytes_sent", "predicted_bytes_sent"),
                                    ("bytes_received", "predicted_bytes_received")):
            if node.get(measured) != node.get(predicted):
                failures.append(f"node {node['rank']}: {measured} {node.get(measured)} != {predicted} {node.get(predicted)}")
        print(f"node {node['rank']}: peak RAM {node['peak_ram_bytes']} B (predicted {node['predicted_peak_ram_bytes']}), "
              f"sent {node['bytes_sent']} B, received {node['bytes_received']} B")
    if not stats.get("nodes"):
        failures.append("no nodes")
    for failure in failures:
        print("check_stats: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
