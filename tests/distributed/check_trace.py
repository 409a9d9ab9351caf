"""check_trace.py STATS.json TRACE.json: the trace is Chrome trace-event JSON
with one named track per rank, a compute slice for every layer region a node
computed, and exchange/relay slices whose bytes add up to what the stats
measured (bytes received exactly; bytes sent plus the output sent to the
coordinator)."""
import json
import sys


def check(stats_path, trace_path):
    """What is wrong with the trace against the stats (an empty list when nothing); prints each node's slices."""
    stats = json.load(open(stats_path))
    events = json.load(open(trace_path))["traceEvents"]
    failures = []
    tracks = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "thread_name"}
    expected_tracks = {0} | {node["rank"] for node in stats["nodes"]}
    if set(tracks) != expected_tracks:
        failures.append(f"tracks {sorted(tracks)} != ranks {sorted(expected_tracks)}")
    for node in stats["nodes"]:
        rank = node["rank"]
        slices = [e for e in events if e.get("ph") == "X" and e["tid"] == rank]
        moved = [e for e in slices if e["cat"] in ("exchange", "relay")]
        received = sum(e["args"]["bytes_received"] for e in moved)
        sent = sum(e["args"]["bytes_sent"] for e in moved)
        if received != node["bytes_received"]:
            failures.append(f"node {rank}: trace receives {received} B, stats {node['bytes_received']} B")
        if sent > node["bytes_sent"]:
            failures.append(f"node {rank}: trace sends {sent} B, more than stats {node['bytes_sent']} B")
        if any(e["dur"] < 0 or e["ts"] < 0 for e in slices):
            failures.append(f"node {rank}: a slice with negative time")
        computes = sum(1 for e in slices if e["cat"].startswith("compute "))
        print(f"node {rank}: {computes} compute slices, {len(moved)} exchange/relay slices, "
              f"{received} B received, {sent} B sent (+ output)")
        if computes == 0 and node["peak_ram_bytes"] > 0:
            failures.append(f"node {rank}: no compute slices")
    return failures


def main():
    failures = check(sys.argv[1], sys.argv[2])
    for failure in failures:
        print("check_trace: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
