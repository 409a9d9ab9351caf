"""Checks of jobs/plot's pictures.

    check_plot.py png FILE.png... [--colors '#4878a8,#f28e2b']
        each file is a PNG (signature, decodes) of at least 400x300 pixels and
        10 KB with more than 20 distinct colours, holding every listed colour
    check_plot.py tiles PLANDIR OUTDIR [--layer NAME] [--blank]
        OUTDIR/tiles.json draws the rectangles that plan.h5's regions give
        (recomputed here from the regions and the layer and input shapes), and
        OUTDIR/tiles.png has their colours along their edges; with --blank,
        the map is background colour everywhere away from lines and labels
    check_plot.py timeline PLANDIR OUTDIR
        OUTDIR/timeline.png draws plan.h5's /emulation: every node's layers
        as wait, communication, flash and compute back to back from its clock
        after the previous layer (recomputed here) to its clock after the
        layer, sampled at the middle of every bar at least 5 px wide through
        OUTDIR/timeline.json's time axis and rows; the emulated total as a
        red line; and the samples tell this order from the reverse
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TOLERANCE = 40  # max per-channel difference (0-255) from a line's colour
failures = []


def fail(message):
    failures.append(message)


def load_png(path):
    with open(path, "rb") as file:
        if file.read(8) != PNG_SIGNATURE:
            fail(f"{path}: not a PNG (signature)")
            return None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int32)


def check_png(paths, colors):
    for path in paths:
        if not os.path.isfile(path):
            fail(f"{path}: missing")
            continue
        pixels = load_png(path)
        if pixels is None:
            continue
        height, width, _ = pixels.shape
        size = os.path.getsize(path)
        distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
        print(f"{path}: {width}x{height} px, {size} B, {distinct} colours")
        if width < 400 or height < 300:
            fail(f"{path}: {width}x{height} pixels, expected at least 400x300")
        if size < 10_000:
            fail(f"{path}: {size} bytes, expected at least 10 KB")
        if distinct <= 20:
            fail(f"{path}: {distinct} distinct colours: next to empty")
        for color in colors:
            rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
            count = int((np.abs(pixels - rgb).max(axis=2) <= 2).sum())
            if count < 50:
                fail(f"{path}: {count} pixels of {color}, expected at least 50")


def expected_rectangles(plan_dir, layer):
    """(kind, nodes, input box) of every rectangle tiles.png should draw,
    from plan.h5: regions are in the layer's rows/columns, scaled by
    input size / layer size onto the input's pixels."""
    with h5py.File(os.path.join(plan_dir, "plan.h5"), "r") as plan:
        layers = plan["model/layers"]
        order = [str(name) for name in layers.attrs["order"]]
        if layer is None:
            layer = next(name for name in order if order[0] in [str(i) for i in layers[name].attrs["inputs"]])
        index = order.index(layer)
        shape = list(layers[layer].attrs["output_shape"])
        layer_h, layer_w = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
        input_h, input_w = list(layers[order[0]].attrs["output_shape"])[2:]
        regions = plan["regions"][index]
        owners = plan["owners"][index] if "owners" in plan else None
    sx, sy = input_w / layer_w, input_h / layer_h

    def box(region):
        c0, c1, y0, y1, x0, x1 = (int(v) for v in region)
        return None if c1 <= c0 or y1 <= y0 or x1 <= x0 else (x0 * sx, y0 * sy, x1 * sx, y1 * sy)

    owned = [box(r) for r in (owners if owners is not None else regions)]
    by_box = {}
    for k, b in enumerate(owned, 1):
        if b is not None:
            by_box.setdefault(b, []).append(k)
    expected = {("owned", tuple(nodes), b) for b, nodes in by_box.items()}
    if owners is not None:
        for k, region in enumerate(regions, 1):
            b = box(region)
            if b is not None and b != owned[k - 1]:
                expected.add(("computed", (k,), b))
    return layer, (input_h, input_w), expected


def edge_points(box, fractions):
    """PNG points along the four edges of box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    for t in fractions:
        yield x0 + t * (x1 - x0), y0
        yield x0 + t * (x1 - x0), y1
        yield x0, y0 + t * (y1 - y0)
        yield x1, y0 + t * (y1 - y0)


def near_edge(box, x, y, distance):
    x0, y0, x1, y1 = box
    inside_x, inside_y = x0 - distance <= x <= x1 + distance, y0 - distance <= y <= y1 + distance
    return ((abs(x - x0) <= distance or abs(x - x1) <= distance) and inside_y) or \
           ((abs(y - y0) <= distance or abs(y - y1) <= distance) and inside_x)


def in_labels(labels, x, y, margin):
    return any(b[0] - margin <= x <= b[2] + margin and b[1] - margin <= y <= b[3] + margin for b in labels)


def matches(pixels, x, y, colors):
    """Some pixel within 1 px of (x, y) has one of colors."""
    col, row = int(round(x)), int(round(y))
    patch = pixels[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2].reshape(-1, 3)
    return any((np.abs(patch - np.array(color)).max(axis=1) <= COLOR_TOLERANCE).any() for color in colors)


def check_tiles(plan_dir, outdir, layer, blank):
    layer, (input_h, input_w), expected = expected_rectangles(plan_dir, layer)
    drawn = json.load(open(os.path.join(outdir, "tiles.json")))
    pixels = load_png(os.path.join(outdir, "tiles.png"))
    if pixels is None:
        return
    if drawn["layer"] != layer:
        fail(f"tiles.json draws layer '{drawn['layer']}', expected '{layer}'")
    if drawn["input_size"] != [input_h, input_w]:
        fail(f"tiles.json input size {drawn['input_size']}, expected {[input_h, input_w]}")
    if [pixels.shape[1], pixels.shape[0]] != drawn["png_size"]:
        fail(f"tiles.png is {pixels.shape[1]}x{pixels.shape[0]}, tiles.json says {drawn['png_size']}")
    got = {(r["kind"], tuple(r["nodes"]), tuple(r["input_box"])) for r in drawn["rectangles"]}
    for missing in sorted(expected - got):
        fail(f"not drawn: {missing}")
    for extra in sorted(got - expected):
        fail(f"drawn but not in the plan: {extra}")
    print(f"{len(expected)} rectangles of layer '{layer}' expected, {len(got)} drawn, "
          f"{len(expected & got)} in common")

    # Input pixels -> PNG pixels, from where the input's corners landed.
    px0, py0, px1, py1 = drawn["input_png_box"]

    def to_png(b):
        return (px0 + b[0] / input_w * (px1 - px0), py0 + b[1] / input_h * (py1 - py0),
                px0 + b[2] / input_w * (px1 - px0), py0 + b[3] / input_h * (py1 - py0))

    labels = [label["png_box"] for label in drawn["labels"]]
    # The plan's rectangles (not tiles.json's) in PNG pixels, with their colours.
    color_of = {(r["kind"], tuple(r["nodes"])): r["color"] for r in drawn["rectangles"]}
    rectangles = [(kind, nodes, to_png(b), color_of.get((kind, nodes), [0, 0, 0])) for kind, nodes, b in expected]

    def allowed(x, y):
        return [color for _, _, b, color in rectangles if near_edge(b, x, y, 3)]

    def solid_edges_hold(b, color):
        checked = bad = 0
        for x, y in edge_points(b, (0.2, 0.35, 0.65, 0.8)):
            if in_labels(labels, x, y, 3):
                continue
            checked += 1
            bad += not matches(pixels, x, y, allowed(x, y) or [color])
        return checked, bad

    for kind, nodes, b, color in rectangles:
        if kind == "owned":
            checked, bad = solid_edges_hold(b, color)
            if checked < 8 or bad:
                fail(f"owned {nodes}: {bad} of {checked} edge samples lack the rectangles' colours")
        else:  # dashed: its own colour on a share of its perimeter
            points = [p for p in edge_points(b, np.linspace(0.05, 0.95, 40)) if not in_labels(labels, *p, 3)]
            own = sum(matches(pixels, x, y, [color]) for x, y in points)
            if own < 0.1 * len(points):
                fail(f"computed {nodes}: its colour on {own} of {len(points)} edge samples (expected >= 10%)")
    # Control: the edge check must notice an owned rectangle moved by a
    # quarter of its width (else it proves nothing).
    kind, nodes, b, color = next(r for r in rectangles if r[0] == "owned")
    shift = (b[2] - b[0]) / 4
    moved = (b[0] + shift, b[1], b[2] + shift, b[3])
    moved_bad = sum(not matches(pixels, x, y, [color]) for x, y in edge_points(moved, (0.35, 0.65))
                    if not in_labels(labels, x, y, 3))
    if moved_bad == 0:
        fail("the edge check passes a rectangle moved by a quarter of its width: it cannot tell")

    if blank:
        background = drawn["background_rgb"]
        clear = wrong = 0
        for y in np.linspace(py0 + 4, py1 - 4, 30):
            for x in np.linspace(px0 + 4, px1 - 4, 30):
                if any(near_edge(b, x, y, 8) for _, _, b, _ in rectangles) or in_labels(labels, x, y, 4):
                    continue
                clear += 1
                if np.abs(pixels[int(round(y)), int(round(x))] - np.array(background)).max() > 3:
                    wrong += 1
        print(f"{clear} samples away from lines and labels, {wrong} not background")
        if clear < 50 or wrong:
            fail(f"{wrong} of {clear} samples away from every rectangle are not the blank map's colour")


PARTS = ("wait", "communication", "flash", "compute")  # /emulation/per_layer's columns 0-3
MIN_BAR_PX = 5  # narrower bars are not sampled: antialiased edges


def expected_bars(plan_dir, order):
    """Per node: (start, end, part) in seconds of every non-empty part of
    every layer, laid in `order` from the node's clock after the previous
    layer; checks that they end at its clock after the layer. And the total."""
    with h5py.File(os.path.join(plan_dir, "plan.h5"), "r") as plan:
        emulation = plan["emulation"]
        per_layer = emulation["per_layer"][...]
        total = float(emulation.attrs["total_seconds"])
        device = str(plan["device"].attrs["name"])
    bars = []
    for k in range(per_layer.shape[0]):
        clock, node = 0.0, []
        for i in range(per_layer.shape[1]):
            for part in order:
                duration = per_layer[k, i, PARTS.index(part)]
                if duration > 0:
                    node.append((clock, clock + duration, part))
                clock += duration
            if abs(clock - per_layer[k, i, 4]) > 1e-9 * max(1.0, clock):
                fail(f"node {k + 1}, layer {i}: its parts end at {clock} s, its clock after the layer "
                     f"is {per_layer[k, i, 4]} s")
                clock = per_layer[k, i, 4]
        bars.append(node)
    return bars, total, device


def check_timeline(plan_dir, outdir):
    drawn = json.load(open(os.path.join(outdir, "timeline.json")))
    pixels = load_png(os.path.join(outdir, "timeline.png"))
    if pixels is None:
        return
    if [pixels.shape[1], pixels.shape[0]] != drawn["png_size"]:
        fail(f"timeline.png is {pixels.shape[1]}x{pixels.shape[0]}, timeline.json says {drawn['png_size']}")
    bars, total, device = expected_bars(plan_dir, PARTS)
    if drawn["device"] != device:
        fail(f"timeline.json names device '{drawn['device']}', plan.h5 '{device}'")
    if len(drawn["node_png_y"]) != len(bars):
        fail(f"timeline.json has {len(drawn['node_png_y'])} rows, plan.h5 {len(bars)} nodes")
        return
    x0, x_total = drawn["time_png_x"]

    def to_x(seconds):
        return x0 + seconds / total * (x_total - x0)

    def samples(node_bars):
        """(x, y, part) at the middle of every bar wide enough, away from the total's line."""
        for k, node in enumerate(node_bars):
            y = drawn["node_png_y"][k]
            for start, end, part in node:
                left, right = to_x(start), to_x(end)
                middle = (left + right) / 2
                if right - left >= MIN_BAR_PX and abs(middle - x_total) > 4:
                    for dy in (-0.3, 0, 0.3):
                        yield middle, y + dy * drawn["bar_png_height"], part

    colors = {part: drawn["colors"][part] for part in PARTS}
    checked, bad, per_part = 0, 0, dict.fromkeys(PARTS, 0)
    for x, y, part in samples(bars):
        checked += 1
        per_part[part] += 1
        if not matches(pixels, x, y, [colors[part]]):
            bad += 1
            if bad <= 5:
                fail(f"{part} bar at PNG ({x:.0f}, {y:.0f}) lacks {part}'s colour {colors[part]}")
    print(f"timeline: {checked} samples of bars ({', '.join(f'{p} {n}' for p, n in per_part.items())}), "
          f"{bad} of the wrong colour")
    if bad:
        fail(f"{bad} of {checked} bar samples have the wrong colour")
    for part, count in per_part.items():
        if count < 3:
            fail(f"only {count} samples of {part} bars: the fixture should show every part")
    # Control: the parts laid in the reverse order must fail the samples.
    reverse, _, _ = expected_bars(plan_dir, PARTS[::-1])
    wrong = sum(not matches(pixels, x, y, [colors[part]]) for x, y, part in samples(reverse))
    if wrong == 0:
        fail("the samples pass the parts in reverse order too: they cannot tell")
    # The total: red pixels down its column between the first and last row.
    column = pixels[int(drawn["node_png_y"][0]):int(drawn["node_png_y"][-1]) + 1,
                    max(int(round(x_total)) - 1, 0):int(round(x_total)) + 2]
    red = int((np.abs(column - np.array([255, 0, 0])).max(axis=2) <= COLOR_TOLERANCE).any(axis=1).sum())
    print(f"timeline: the total's column at x={x_total:.0f} has {red} red rows")
    if red < 0.3 * column.shape[0]:
        fail(f"the emulated total's line at PNG x={x_total:.0f}: {red} of {column.shape[0]} rows red")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    png = sub.add_parser("png")
    png.add_argument("files", nargs="+")
    png.add_argument("--colors", default="")
    tiles = sub.add_parser("tiles")
    tiles.add_argument("plan_dir")
    tiles.add_argument("outdir")
    tiles.add_argument("--layer")
    tiles.add_argument("--blank", action="store_true")
    timeline = sub.add_parser("timeline")
    timeline.add_argument("plan_dir")
    timeline.add_argument("outdir")
    args = parser.parse_args()
    if args.command == "png":
        check_png(args.files, [c for c in args.colors.split(",") if c])
    elif args.command == "timeline":
        check_timeline(args.plan_dir, args.outdir)
    else:
        check_tiles(args.plan_dir, args.outdir, args.layer, args.blank)
    for failure in failures:
        print("check_plot: " + failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
