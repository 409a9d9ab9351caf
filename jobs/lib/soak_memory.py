"""Samples the resident memory of every rank of a running splitinfer job, and
judges whether it stays flat.

    soak_memory.py sample LAUNCHER_PID SAMPLES.csv [--interval SECONDS]
    soak_memory.py report SAMPLES.csv [--settle FRACTION] [--tolerance KIB] [--json FILE]

`sample` polls /proc every INTERVAL seconds (default 0.05) until the process
LAUNCHER_PID (mpirun) ends: every descendant whose command is `splitinfer`,
its rank from its environment (OMPI_COMM_WORLD_RANK, or PMIX_RANK/SLURM_PROCID
under other launchers), its VmRSS. One CSV row per rank per sample:
seconds since the first sample, rank, pid, rss_kib.

`report` prints, per rank, the resident memory once the run has settled
(the first sample after FRACTION of the rank's samples, default 0.1: the
files are read and the first inferences have sized every buffer by then), at
the last sample, the largest after settling, the growth (largest after
settling minus settled) and the least-squares slope in KiB per minute, both
over the settled samples but the last 5% (the run's end, where memory is
freed). A rank is flat when its growth is at most TOLERANCE KiB (default
1024). Exits 1 if any rank is not flat, or if no rank was sampled.
"""
import argparse
import csv
import json
import os
import sys
import time


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    found, stack = [], [pid]
    while stack:
        for child in children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except OSError:
        return None
    for key in (b"OMPI_COMM_WORLD_RANK", b"PMIX_RANK", b"SLURM_PROCID"):
        if key in env:
            return int(env[key])
    return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def sample(args):
    ranks = {}  # pid -> rank, found once
    start = time.monotonic()
    with open(args.samples, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["seconds", "rank", "pid", "rss_kib"])
        while alive(args.launcher):
            now = time.monotonic() - start
            for pid in descendants(args.launcher):
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if f.read().strip() != "splitinfer":
                            continue
                except OSError:
                    continue
                if pid not in ranks:
                    rank = rank_of(pid)
                    if rank is None:
                        continue
                    ranks[pid] = rank
                rss = rss_kib(pid)
                if rss is not None:
                    writer.writerow([f"{now:.3f}", ranks[pid], pid, rss])
            time.sleep(args.interval)


def slope_per_minute(points):
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mean_t) * (r - mean_r) for t, r in points) / var


def report(args):
    series = {}
    with open(args.samples) as f:
        for row in csv.DictReader(f):
            series.setdefault(int(row["rank"]), []).append(
                (float(row["seconds"]), int(row["rss_kib"])))
    if not series:
        print("soak: error: no rank was sampled", file=sys.stderr)
        return 1
    print(f"| rank | samples | settled | end | largest after settling | growth | slope |")
    print(f"|---|---|---|---|---|---|---|")
    result, flat = [], True
    for rank in sorted(series):
        points = series[rank]
        # The last 5% of samples are the run's end (outputs written, MPI
        # finalized), where buffers are freed: left out of the slope.
        settled_at = min(int(len(points) * args.settle), len(points) - 1)
        settled = points[settled_at:max(settled_at + 1, int(len(points) * 0.95))]
        base = settled[0][1]
        largest = max(r for _, r in settled)
        growth = largest - base
        slope = slope_per_minute(settled)
        ok = growth <= args.tolerance
        flat = flat and ok
        result.append({"rank": rank, "samples": len(points), "settled_kib": base,
                       "end_kib": points[-1][1], "largest_kib": largest, "growth_kib": growth,
                       "slope_kib_per_minute": slope, "flat": ok})
        print(f"| {rank} | {len(points)} | {base} KiB | {points[-1][1]} KiB | {largest} KiB | "
              f"{growth} KiB{'' if ok else ' (over the tolerance)'} | {slope:+.1f} KiB/min |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tolerance_kib": args.tolerance, "settle": args.settle, "ranks": result}, f,
                      indent=1)
    return 0 if flat else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("launcher", type=int)
    s.add_argument("samples")
    s.add_argument("--interval", type=float, default=0.05)
    r = sub.add_parser("report")
    r.add_argument("samples")
    r.add_argument("--settle", type=float, default=0.1)
    r.add_argument("--tolerance", type=int, default=1024)
    r.add_argument("--json")
    args = parser.parse_args()
    if args.command == "sample":
        sample(args)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
