"""check_stats.py STATS.json: every node's measured peak RAM, flash (its weight
slices), bytes sent and bytes received equal the plan's predictions, its peak is within its RAM cap, and the required keys are there.
In a run of a plan with tasks (work stealing) a node's peak is the largest of
the tasks it ran (peak_of_tasks_run), at most the prediction (the largest of
those it may take), its bytes those its tasks' programs predict, and the
nodes ran every task once. Exit 0 when they do, 1 (saying which) when not."""
import json
import sys

REQUIRED = ["rank", "peak_ram_bytes", "predicted_peak_ram_bytes", "ram_cap_bytes", "flash_bytes",
            "bytes_sent", "predicted_bytes_sent", "bytes_received", "host_seconds"]


def check(stats_path):
    """What is wrong with the run's STATS.json (an empty list when nothing); prints each node's figures."""
    stats = json.load(open(stats_path))
    failures = [f"missing '{key}'" for key in ("host_seconds", "emulated_seconds", "nodes") if key not in stats]
    for node in stats.get("nodes", []):
        failures += [f"node {node.get('rank')}: missing '{key}'" for key in REQUIRED if key not in node]
        peak = "predicted_peak_ram_bytes"
        if "tasks" in node:
            peak = "peak_of_tasks_run"
            if node.get("peak_of_tasks_run", 0) > node.get("predicted_peak_ram_bytes", 0):
                failures.append(f"node {node['rank']}: peak of the tasks it ran {node.get('peak_of_tasks_run')} > "
                                f"predicted {node.get('predicted_peak_ram_bytes')}")
        for measured, predicted in (("peak_ram_bytes", peak),
                                    ("flash_bytes", "predicted_flash_bytes"),
                                    ("bytes_sent", "predicted_bytes_sent"),
                                    ("bytes_received", "predicted_bytes_received")):
            if node.get(measured) != node.get(predicted):
                failures.append(f"node {node['rank']}: {measured} {node.get(measured)} != {predicted} {node.get(predicted)}")
        cap = node.get("ram_cap_bytes")
        if cap is not None and node.get("peak_ram_bytes", 0) > cap:
            failures.append(f"node {node['rank']}: peak RAM {node.get('peak_ram_bytes')} > its cap {cap}")
        print(f"node {node['rank']}: peak RAM {node['peak_ram_bytes']} B (predicted {node['predicted_peak_ram_bytes']}), "
              f"sent {node['bytes_sent']} B, received {node['bytes_received']} B")
    if not stats.get("nodes"):
        failures.append("no nodes")
    if "tasks" in stats and sum(node.get("tasks", 0) for node in stats.get("nodes", [])) != stats["tasks"]:
        failures.append(f"the nodes ran {sum(node.get('tasks', 0) for node in stats['nodes'])} tasks, "
                        f"the plan has {stats['tasks']}")
    return failures


def main():
    failures = check(sys.argv[1])
    for failure in failures:
        print("check_stats: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
