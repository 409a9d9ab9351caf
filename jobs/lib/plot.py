"""Pictures of a splitinfer plan or run (PNG files).

    jobs/plot PLANDIR [--input IMAGE.png|X.h5] [--layer NAME] [--trace TRACE.json] [-o OUTDIR]
    jobs/plot STATS.json [--trace TRACE.json] [-o OUTDIR]
    jobs/plot TRACE.json [-o OUTDIR]
    jobs/plot reconfigure.csv [-o OUTDIR]

From a plan directory (plan.h5, io/FORMAT.md):
  memory.png    each node's arena footprint per layer (lines and a nodes x layers
                heat map), the RAM cap as a horizontal line when the plan has one
  bytes.png     bytes sent per layer, summed over nodes, and per node (heat map)
  tiles.png     the regions of one layer (default: the input's first consumer)
                scaled onto the input's pixel grid, over the input image or a blank
                map, labelled with node numbers; fused plans: owned tile solid,
                computed region dashed, and one small map per node showing the
                border it recomputes. tiles.json beside it lists every drawn
                rectangle in input pixels and in PNG pixels
  timeline.png  the emulated timeline of a plan made with `--device NAME`
                (/emulation): per node, each layer's wait, communication, flash
                and compute back to back, ending at the node's clock after the
                layer, then the output gather; the emulated total as a red
                line; the layers along the cluster's latest clock below.
                timeline.json beside it says where time 0, the total and each
                node's row lie in PNG pixels. Skipped with a note for plans
                made without a device
From a `splitinfer run --stats` file (per node totals only: the per-layer
pictures need the plan directory):
  memory.png    per node measured and predicted peak RAM against the cap
  bytes.png     per node bytes sent (measured, predicted) and received
With --trace (a `splitinfer run --trace` file), or a trace given alone:
  host_timeline.png  the measured host timeline of every rank: compute and
                exchange slices of the traced inference
From jobs/intermittent's reconfigure.csv:
  reconfigure.png  per node count and intermittency, the slowest node's
                device time per inference of every static job size in both
                loop orders and of whole layers, beside --reconfigure
                dynamic's (red bar and dashed line)

Default OUTDIR: PLANDIR/plots, or STEM_plots beside a JSON file. Prints the
path of every file written. Any bad input ends in one line
`plot: error: ...` on stderr and exit status 1.
"""
import argparse
import csv
import json
import math
import os
import sys
import textwrap

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm, Normalize, to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

DPI = 100  # PNG pixels per figure inch
PLAN_FORMAT, PLAN_FORMAT_VERSION = "splitinfer-plan", 1
KIB = 1024.0


class PlotError(Exception):
    """A bad input, worded for the user; becomes `plot: error: ...`."""


# ---------------------------------------------------------------- reading


def require_exists(path, what):
    if not os.path.exists(path):
        raise PlotError(f"{what} '{path}' does not exist")


def open_hdf5(path):
    try:
        return h5py.File(path, "r")
    except OSError as error:
        if "signature" in str(error).lower():  # h5py: "file signature not found"
            raise PlotError(f"'{path}' is not an HDF5 file") from None
        raise PlotError(f"cannot open '{path}' as HDF5: {error}") from None


def attr_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Plan:
    """What the pictures need of plan.h5: the graph's layer names and shapes,
    the regions (and owners), and each node's per-layer predictions."""

    def __init__(self, path):
        self.dir = path if os.path.isdir(path) else os.path.dirname(path) or "."
        self.file = os.path.join(path, "plan.h5") if os.path.isdir(path) else path
        if not os.path.exists(self.file):
            raise PlotError(f"'{path}' is not a plan directory (it has no plan.h5)")
        with open_hdf5(self.file) as root:
            self._read(root)

    def _read(self, root):
        name = self.file
        fmt = attr_text(root.attrs["format"]) if "format" in root.attrs else None
        if fmt != PLAN_FORMAT:
            found = f"'{fmt}'" if fmt is not None else "missing"
            raise PlotError(f"'{name}' is not a {PLAN_FORMAT} file (its 'format' attribute is {found})")
        version = int(root.attrs.get("format_version", -1))
        if version != PLAN_FORMAT_VERSION:
            raise PlotError(f"'{name}' has {PLAN_FORMAT} format version {version}; "
                            f"this plot reads version {PLAN_FORMAT_VERSION}")
        try:
            self.nodes = int(root.attrs["nodes"])
            self.strategy = attr_text(root.attrs["strategy"])
            self.grid = [int(v) for v in root.attrs["grid"]]
            cap = int(root.attrs["ram_cap_bytes"])
            self.ram_cap_bytes = None if cap < 0 else cap
            self.fuse = int(root.attrs["fuse"]) if "fuse" in root.attrs else None
            self.via_coordinator = bool(root.attrs.get("via_coordinator", 0))  # relay (in auto too)
            self.recomputed_macs = int(root.attrs.get("recomputed_macs", 0))
            layers = root["model/layers"]
            self.model_name = attr_text(root["model"].attrs.get("name", "model"))
            self.layer_names = [attr_text(v) for v in layers.attrs["order"]]
            self.ops, self.inputs, self.shapes = [], [], []
            for layer in self.layer_names:
                attrs = layers[layer].attrs
                self.ops.append(attr_text(attrs["op"]))
                self.inputs.append([attr_text(v) for v in attrs["inputs"]])
                shape = [int(v) for v in attrs["output_shape"]]
                self.shapes.append(shape + [1, 1] if len(shape) == 2 else shape)  # [N,F] as [N,F,1,1]
            meta = root["model/meta"].attrs if "meta" in root["model"] else {}
            self.meta = {key: np.asarray(meta[key]) for key in ("mean", "std", "pixel_scale") if key in meta}
            count = len(self.layer_names)
            self.regions = root["regions"][...]
            self.owners = root["owners"][...] if "owners" in root else None
            self.layer_strategies = self._read_layer_strategies(root, count)
            self.per_layer = [root[f"nodes/node_{k}"]["per_layer"][...] for k in range(1, self.nodes + 1)]
        except KeyError as error:
            raise PlotError(f"'{name}' lacks {error.args[0] if error.args else 'an entry'} "
                            f"that a {PLAN_FORMAT} file holds") from None
        for array, label in ((self.regions, "regions"), (self.owners, "owners")):
            if array is not None and array.shape != (count, self.nodes, 6):
                raise PlotError(f"'{name}': /{label} has shape {list(array.shape)}, "
                                f"expected [{count}, {self.nodes}, 6]")
        for k, per_layer in enumerate(self.per_layer, 1):
            if per_layer.shape != (count, 3):
                raise PlotError(f"'{name}': /nodes/node_{k}/per_layer has shape {list(per_layer.shape)}, "
                                f"expected [{count}, 3]")
        self.per_layer = np.stack(self.per_layer).astype(np.float64)  # [nodes, layers, 3]
        if len(self.layer_strategies) != count:
            raise PlotError(f"'{name}': /layer_strategies has {len(self.layer_strategies)} rows, "
                            f"the model has {count} layers")
        self.device = attr_text(root["device"].attrs.get("name", "")) if "device" in root else \
            self._cluster_name(root)
        self.emulation = self._read_emulation(root, count)

    def _cluster_name(self, root):
        """A mixed cluster (plan --devices): each node's device in its group,
        named as runs in node order ("teensy41:2,esp32s3:2"); "" without."""
        names = []
        for k in range(1, self.nodes + 1):
            group = root["nodes"].get(f"node_{k}")
            if group is None or "device" not in group:
                return ""
            names.append(attr_text(group["device"].attrs.get("name", "")))
        runs = []
        for name in names:
            if runs and runs[-1][0] == name:
                runs[-1][1] += 1
            else:
                runs.append([name, 1])
        return ",".join(f"{name}:{count}" for name, count in runs)

    def _read_layer_strategies(self, root, count):
        """What cut each layer: /layer_strategies, a row per layer; plans
        written before it hold a comma-joined attribute instead (one entry
        short in auto plans: the join lost the input layer's empty one)."""
        if "layer_strategies" in root:
            return [attr_text(v) for v in root["layer_strategies"][...]]
        strategies = attr_text(root.attrs.get("layer_strategies", ""))
        names = strategies.split(",") if strategies else [self.strategy] * count
        if len(names) != count:
            raise PlotError(f"'{self.file}': its layer_strategies attribute names {len(names)} layers, "
                            f"the model has {count} (a plan written before /layer_strategies: plan it again)")
        return names

    def _read_emulation(self, root, count):
        """/emulation (plans made with --device), or None: the cost model's
        clocks, every time in seconds."""
        if "emulation" not in root:
            return None
        name, group = self.file, root["emulation"]
        try:
            emulation = {key: float(group.attrs[key]) for key in ("total_seconds", "output_gather_seconds")}
            for key in ("layer_seconds", "node_seconds", "per_layer"):
                emulation[key] = np.asarray(group[key][...], dtype=np.float64)
        except KeyError as error:
            raise PlotError(f"'{name}': /emulation lacks {error.args[0] if error.args else 'an entry'} "
                            f"that the cost model writes") from None
        except (TypeError, ValueError) as error:
            raise PlotError(f"'{name}': /emulation holds a value that is not a number ({error})") from None
        for key, shape, meaning in (("layer_seconds", (count,), "layers"),
                                    ("node_seconds", (self.nodes, 3), "nodes, 3"),
                                    ("per_layer", (self.nodes, count, 5), "nodes, layers, 5")):
            if emulation[key].shape != shape:
                raise PlotError(f"'{name}': /emulation/{key} has shape {list(emulation[key].shape)}, "
                                f"expected {list(shape)} ({meaning})")
        values = [emulation["total_seconds"], emulation["output_gather_seconds"]] + \
            [emulation[key] for key in ("layer_seconds", "node_seconds", "per_layer")]
        if not all(np.all(np.isfinite(v)) and np.all(np.asarray(v) >= 0) for v in values):
            raise PlotError(f"'{name}': /emulation holds a negative or non-finite time")
        return emulation

    def title(self):
        grid = f", grid {self.grid[0]}x{self.grid[1]}" if self.strategy in ("spatial", "fused") else ""
        if self.fuse is not None:
            grid += f", blocks of {self.fuse} layers" if self.fuse else ", blocks of all layers"
        return f"{self.model_name}: {self.strategy} plan on {self.nodes} node(s){grid}"

    def layer_index(self, layer):
        if layer is None:  # the input's first consumer
            for i, inputs in enumerate(self.inputs):
                if self.layer_names[0] in inputs:
                    return i
            raise PlotError(f"'{self.file}': no layer reads the input layer '{self.layer_names[0]}'")
        if layer not in self.layer_names:
            raise PlotError(f"--layer '{layer}' is not a layer of the plan's model "
                            f"(its layers: {', '.join(self.layer_names[:6])}, ...)")
        index = self.layer_names.index(layer)
        if self.ops[index] == "input":
            raise PlotError(f"--layer '{layer}' is the input layer, which no node computes; "
                            f"choose a layer the nodes compute")
        return index


def read_json(path, what):
    require_exists(path, what)
    try:
        with open(path) as file:
            return json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlotError(f"'{path}' is not JSON ({error})") from None


STATS_NODE_KEYS = ("rank", "peak_ram_bytes", "predicted_peak_ram_bytes", "bytes_sent", "host_seconds")


def check_stats(stats, path):
    nodes = stats.get("nodes") if isinstance(stats, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise PlotError(f"'{path}' is not a splitinfer run --stats file (it has no 'nodes' list)")
    for node in nodes:
        missing = [key for key in STATS_NODE_KEYS if not isinstance(node, dict) or key not in node]
        if missing:
            raise PlotError(f"'{path}' is not a splitinfer run --stats file "
                            f"(a node lacks '{missing[0]}')")
    return stats


def trace_tracks(trace, path):
    """{tid: (name, [slices])} of a Chrome trace written by `run --trace`."""
    events = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(events, list):
        raise PlotError(f"'{path}' is not a splitinfer run --trace file (it has no 'traceEvents' list)")
    names, slices = {}, {}
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("ph") == "M" and event.get("name") == "thread_name":
            names[event.get("tid")] = event.get("args", {}).get("name", f"rank {event.get('tid')}")
        elif event.get("ph") == "X":
            try:
                slices.setdefault(event["tid"], []).append(
                    (float(event["ts"]), float(event["dur"]), str(event.get("cat", "")), str(event.get("name", ""))))
            except (KeyError, TypeError, ValueError):
                raise PlotError(f"'{path}': a trace slice lacks tid, ts or dur") from None
    if not slices:
        raise PlotError(f"'{path}' holds no trace slices (events with \"ph\": \"X\")")
    return {tid: (names.get(tid, f"rank {tid}"), slices.get(tid, [])) for tid in sorted(set(names) | set(slices))}


def load_input_picture(path, plan):
    """The input as an [H, W, 3] or [H, W] float image in [0, 1] on the model's
    input grid, and a note on how it was made."""
    require_exists(path, "--input")
    _, channels, height, width = plan.shapes[0]
    if path.lower().endswith((".h5", ".hdf5")):
        with open_hdf5(path) as file:
            if "input" not in file:
                raise PlotError(f"'{path}' has no /input dataset")
            x = np.asarray(file["input"][...], dtype=np.float64)
        if x.ndim != 4 or x.shape[0] != 1 or list(x.shape[1:]) != [channels, height, width]:
            raise PlotError(f"'{path}' /input has shape {'x'.join(map(str, x.shape))} but the plan's model "
                            f"takes 1x{channels}x{height}x{width}")
        x = x[0].transpose(1, 2, 0)  # [H, W, C]
        note = "input de-normalised"
        if {"mean", "std", "pixel_scale"} <= set(plan.meta):
            x = (x * plan.meta["std"] + plan.meta["mean"]) / float(plan.meta["pixel_scale"])
            if x.min() >= -1 and x.max() <= 256:  # 8-bit pixels again: show them as they were
                x = np.clip(x / 255.0, 0, 1)
            else:
                note = "input de-normalised, then min-max scaled"
                x = min_max(x)
        else:
            note = "input min-max scaled"
            x = min_max(x)
        if channels not in (1, 3):
            note += f", first channel of {channels}"
        picture = x[:, :, 0] if channels != 3 else x
        return picture, note
    try:
        with Image.open(path) as image:
            image.load()
            size = image.size
            image = image.convert("L" if channels == 1 else "RGB")
            if size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            picture = np.asarray(image, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise PlotError(f"cannot decode image '{path}' ({error})") from None
    note = f"image resized from {size[0]}x{size[1]} (bilinear)" if size != (width, height) else "image"
    return picture, note


def min_max(x):
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


# ---------------------------------------------------------------- helpers


def node_colors(count):
    """One colour per node (index 0 = node 1): tab10/tab20 while they last."""
    if count <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(count)]
    if count <= 20:
        cmap = plt.get_cmap("tab20")
        return [cmap(2 * i if i < 10 else 2 * (i - 10) + 1) for i in range(count)]
    cmap = plt.get_cmap("turbo")
    return [cmap(0.05 + 0.9 * i / (count - 1)) for i in range(count)]


def node_ranges(nodes):
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts, start = [], None
    for i, node in enumerate(nodes):
        if start is None:
            start = node
        if i + 1 == len(nodes) or nodes[i + 1] != node + 1:
            parts.append(f"{start}" if start == node else f"{start}-{node}")
            start = None
    return ", ".join(parts)


def format_bytes(count):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def layer_ticks(axis, names):
    """At most ~50 layer names along x, rotated."""
    step = max(1, math.ceil(len(names) / 50))
    positions = list(range(0, len(names), step))
    axis.set_xticks(positions)
    axis.set_xticklabels([names[i] for i in positions], rotation=90, fontsize=6)
    axis.set_xlim(-0.5, len(names) - 0.5)


def layer_figure_width(count):
    return min(30.0, max(11.0, 0.13 * count))


def shade_strategies(axis, strategies):
    """Background bands for runs of layers cut by each strategy (only when
    the plan mixes strategies). An empty name (the input layer of an auto
    plan, which nothing cuts) gets no band; auto plans can mix more kinds
    than the palette has colours, which then repeat."""
    kinds = sorted(set(strategies) - {""})
    if len(kinds) < 2:
        return []
    colors = ["#e8e8e8", "#fbe3c4", "#d6ead4", "#dcdcf5", "#f5d6e6", "#d4eef0", "#f3efc6", "#ecdcc8"]
    palette = {kind: colors[n % len(colors)] for n, kind in enumerate(kinds)}
    start = 0
    for i in range(1, len(strategies) + 1):
        if i == len(strategies) or strategies[i] != strategies[start]:
            if strategies[start]:
                axis.axvspan(start - 0.5, i - 0.5, color=palette[strategies[start]], zorder=0, lw=0)
            start = i
    return [Patch(color=palette[kind], label=f"layers cut {kind}") for kind in kinds]


def legend_columns(fig, handles, most):
    """Columns for a one-row legend of `handles` above a plot (fontsize 7),
    at most `most`, and no more than fit the figure's width: a wider legend
    makes constrained_layout squeeze the plots into a corner (auto plans
    name many strategies)."""
    widest = max((len(h.get_label()) for h in handles), default=0)
    entry_inches = 0.8 + 0.05 * widest  # handle and padding, ~0.05 in per character at 7 pt
    return max(1, min(most, len(handles), int(fig.get_figwidth() / entry_inches)))


def save(fig, outdir, name, written):
    path = os.path.join(outdir, name)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    written.append(path)
    return path


# ---------------------------------------------------------------- plan figures


def plot_memory(plan, outdir, written):
    footprint = plan.per_layer[:, :, 0] / KIB  # [nodes, layers] KiB
    count = len(plan.layer_names)
    colors = node_colors(plan.nodes)
    fig, (lines, heat) = plt.subplots(2, 1, figsize=(layer_figure_width(count), 9), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True)
    handles = shade_strategies(lines, plan.layer_strategies)
    x = np.arange(count)
    for k in range(plan.nodes):
        lines.plot(x, footprint[k], color=colors[k], lw=1.2, label=f"node {k + 1}")
    if plan.nodes > 1:
        lines.plot(x, footprint.max(axis=0), color="black", lw=0.8, ls=":", label="max over nodes")
    if plan.ram_cap_bytes is not None:
        lines.axhline(plan.ram_cap_bytes / KIB, color="red", lw=1.5, ls="--",
                      label=f"RAM cap {format_bytes(plan.ram_cap_bytes)}")
    lines.set_ylabel("arena footprint while the layer runs (KiB)")
    lines.set_ylim(bottom=0)
    lines.grid(axis="y", alpha=0.3)
    legend_handles = lines.get_legend_handles_labels()[0]
    if plan.nodes > 20:  # too many to name: the heat map below has the node axis
        legend_handles = [h for h in legend_handles if not h.get_label().startswith("node ")]
    lines.legend(handles=legend_handles + handles, fontsize=7, ncol=legend_columns(fig, legend_handles + handles, 10),
                 loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
    peak = plan.per_layer[:, :, 0].max()
    cap = f"RAM cap {format_bytes(plan.ram_cap_bytes)}" if plan.ram_cap_bytes is not None else "no RAM cap"
    fig.suptitle(f"{plan.title()}: per-layer RAM of every node (largest {format_bytes(peak)}; {cap})")
    image = heat.imshow(footprint, aspect="auto", interpolation="nearest", cmap="viridis",
                        extent=(-0.5, count - 0.5, plan.nodes + 0.5, 0.5))
    heat.set_ylabel("node")
    heat.set_yticks(range(1, plan.nodes + 1, max(1, math.ceil(plan.nodes / 16))))
    fig.colorbar(image, ax=heat, label="KiB", pad=0.01)
    layer_ticks(heat, plan.layer_names)
    heat.set_xlabel("layer (topological order)")
    return save(fig, outdir, "memory.png", written)


def plot_bytes(plan, outdir, written):
    sent = plan.per_layer[:, :, 1]  # [nodes, layers] bytes
    count = len(plan.layer_names)
    total = sent.sum(axis=0)
    fig, (bars, heat) = plt.subplots(2, 1, figsize=(layer_figure_width(count), 9), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True)
    handles = shade_strategies(bars, plan.layer_strategies)
    nonzero = total[total > 0]
    bars.bar(np.arange(count), total / KIB, width=0.8, color="#4878a8", label="sent by all nodes", zorder=2)
    # A log axis when layers differ by more than 100x, so small exchanges stay visible.
    logarithmic = nonzero.size > 0 and nonzero.max() / nonzero.min() > 100
    if logarithmic:
        bars.set_yscale("log")
    bars.set_ylabel("bytes sent for the layer, all nodes (KiB" + (", log scale)" if logarithmic else ")"))
    bars.grid(axis="y", alpha=0.3, zorder=0)
    if nonzero.size == 0:
        bars.text(0.5, 0.5, "no node sends anything", transform=bars.transAxes, ha="center", fontsize=14)
    legend_handles = bars.get_legend_handles_labels()[0] + handles
    bars.legend(handles=legend_handles, fontsize=7, ncol=legend_columns(fig, legend_handles, 8),
                loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
    received = plan.per_layer[:, :, 2].sum()
    fig.suptitle(f"{plan.title()}: bytes sent per layer (total sent {format_bytes(total.sum())}, "
                   f"received {format_bytes(received)})")
    masked = np.ma.masked_equal(sent / KIB, 0)
    cmap = plt.get_cmap("magma_r").copy()
    cmap.set_bad("white")
    if masked.count():
        low, high = masked.min(), masked.max()
        image = heat.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap,
                            norm=LogNorm(vmin=low, vmax=high) if high > 10 * low else Normalize(vmin=0, vmax=high),
                            extent=(-0.5, count - 0.5, plan.nodes + 0.5, 0.5))
        fig.colorbar(image, ax=heat, label="KiB sent (white: nothing)", pad=0.01)
    heat.set_ylim(plan.nodes + 0.5, 0.5)
    heat.set_ylabel("node")
    heat.set_yticks(range(1, plan.nodes + 1, max(1, math.ceil(plan.nodes / 16))))
    layer_ticks(heat, plan.layer_names)
    heat.set_xlabel("layer (topological order)")
    return save(fig, outdir, "bytes.png", written)


def region_groups(boxes):
    """Nodes grouped by identical non-empty spatial box (y0, y1, x0, x1)."""
    groups = {}
    for k, box in enumerate(boxes, 1):
        if box is not None:
            groups.setdefault(box, []).append(k)
    return groups


def spatial_box(region):
    c0, c1, y0, y1, x0, x1 = (int(v) for v in region)
    return None if c1 <= c0 or y1 <= y0 or x1 <= x0 else (y0, y1, x0, x1)


BLANK_MAP = (0.95, 0.95, 0.95)  # the input's area when no --input is given
DASH = 5.0  # points: one node's dash on a computed region's edge


def plot_tiles(plan, outdir, written, index, input_picture):
    """input_picture: (picture, note) from load_input_picture, or None."""
    name = plan.layer_names[index]
    _, channels, layer_height, layer_width = plan.shapes[index]
    _, _, height, width = plan.shapes[0]
    scale_y, scale_x = height / layer_height, width / layer_width  # layer rows/cols -> input pixels
    fused = plan.owners is not None
    owned = [spatial_box(region) for region in (plan.owners[index] if fused else plan.regions[index])]
    computed = [spatial_box(region) for region in plan.regions[index]]
    # Fused: nodes whose computed region reaches beyond what they own.
    recomputing = [k for k in range(1, plan.nodes + 1) if fused and computed[k - 1] not in (None, owned[k - 1])]

    def to_input(box):  # layer (y0, y1, x0, x1) -> input pixels (left, upper, right, lower)
        y0, y1, x0, x1 = box
        return x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y

    if input_picture is not None:
        picture, note = input_picture
        background = "image"
    else:
        picture, note, background = np.ones((height, width, 3)) * BLANK_MAP, "blank map", "blank"

    notes = []
    shared = [nodes for nodes in region_groups(owned).values() if len(nodes) > 1]
    regions = plan.owners[index] if fused else plan.regions[index]
    for nodes in shared:
        ranges = [f"{int(regions[k - 1][0])}-{int(regions[k - 1][1])}" for k in nodes]
        notes.append(f"nodes {node_ranges(nodes)} share the box: channels " +
                     (", ".join(ranges) if len(nodes) <= 8 else f"{ranges[0]}, ..., {ranges[-1]}"))
    empty = [k for k in range(1, plan.nodes + 1) if owned[k - 1] is None]
    if empty:
        notes.append(f"nodes without a region of this layer: {node_ranges(empty)}")
    if fused:
        notes.append(f"recomputed MACs in the plan (all layers): {plan.recomputed_macs:,}")
        if not recomputing:
            notes.append("no node recomputes anything of this layer")
    notes = [line for note in notes for line in textwrap.wrap(note, 120, subsequent_indent="    ")]
    notes_h = 0.15 * len(notes)  # inches: 7-point lines

    # Fixed axes placement (no automatic layout) so that tiles.json's PNG
    # coordinates are exactly where the rectangles land. Fused plans get one
    # small map per node below: its owned tile and the border it recomputes.
    side = 6.0  # inches of the main map's longer side
    image_w, image_h = (side, side * height / width) if width >= height else (side * width / height, side)
    top, bottom = 1.0, 0.3
    below = 0.75 + notes_h  # under the main map: the legend row, then the notes
    columns = min(plan.nodes, 4 if plan.nodes <= 16 else 8)
    thumb_rows = math.ceil(plan.nodes / columns) if recomputing else 0
    thumb_w = min(image_w, 7.0) / columns * 0.8
    thumb_h = thumb_w * height / width
    thumbs_h = thumb_rows * (thumb_h + 0.35)
    fig_w = max(image_w + 1.2, 8.0)
    fig_h = top + image_h + below + (0.35 + thumbs_h + bottom if thumb_rows else 0.15)
    # Quarter inches: exact in binary, so the figure is a whole number of PNG pixels.
    fig_w, fig_h = math.ceil(fig_w * 4) / 4, math.ceil(fig_h * 4) / 4
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)

    def place(left, upper, w, h):  # inches from the figure's top-left corner
        return fig.add_axes((left / fig_w, 1 - (upper + h) / fig_h, w / fig_w, h / fig_h))

    def show(axis, alpha=1.0):
        axis.imshow(picture, extent=(0, width, height, 0), interpolation="nearest", alpha=alpha,
                    cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        axis.set_xlim(0, width)
        axis.set_ylim(height, 0)
        for spine in axis.spines.values():
            spine.set_visible(False)

    axis = place((fig_w - image_w) / 2, top, image_w, image_h)
    show(axis)
    axis.tick_params(labelsize=7)

    colors = node_colors(plan.nodes)
    rectangles, texts = [], []

    def draw(box, nodes, kind, color, linestyle):
        left, upper, right, lower = to_input(box)
        axis.add_patch(Rectangle((left, upper), right - left, lower - upper, fill=False, edgecolor=color,
                                 lw=3.0 if kind == "owned" else 2.0, ls=linestyle, clip_on=False,
                                 zorder=3 if kind == "owned" else 4))
        rectangles.append({"nodes": nodes, "kind": kind, "layer_box": list(box),
                           "input_box": [left, upper, right, lower],  # x0, y0, x1, y1 in input pixels
                           "color": [round(255 * c) for c in to_rgb(color)],
                           "linestyle": "solid" if kind == "owned" else "dashed"})
        return left, upper, right, lower

    for box, nodes in sorted(region_groups(owned).items(), key=lambda item: item[1]):
        color = colors[nodes[0] - 1] if len(nodes) == 1 else (0.0, 0.0, 0.0, 1.0)
        left, upper, right, lower = draw(box, nodes, "owned", color, "-")
        text = str(nodes[0]) if len(nodes) == 1 else f"nodes {node_ranges(nodes)}\n(channels split)"
        size = max(7, min(16, 0.25 * min(right - left, lower - upper) / width * image_w * 72))
        texts.append((axis.text((left + right) / 2, (upper + lower) / 2, text, ha="center", va="center",
                                fontsize=size, color=color, weight="bold", zorder=5,
                                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "alpha": 0.85}),
                      text))
    # Computed regions often share edges (or are all the whole map): each
    # node's dashes sit at its own offset in a common period of up to four
    # dashes, so edges that coincide show the nodes' colours in turn.
    slots = min(len(recomputing), 4)
    for position, k in enumerate(recomputing):
        draw(computed[k - 1], [k], "computed", colors[k - 1],
             ((position % slots) * DASH, (DASH, (slots - 1) * DASH if slots > 1 else DASH)))

    title = f"{plan.title()}\nregions of layer '{name}' ({channels}x{layer_height}x{layer_width}), "
    scale = f"x{scale_x:.3g}" if scale_x == scale_y else f"x{scale_x:.3g} (columns), x{scale_y:.3g} (rows)"
    title += f"{scale} onto the {width}x{height} input ({note})"
    fig.text(0.5, 1 - 0.15 / fig_h, title, ha="center", va="top", fontsize=9)
    legend = [Line2D([], [], color="gray", lw=3, label="owned tile" if fused else "region")]
    if fused:
        legend.append(Line2D([], [], color="gray", lw=2, ls=(0, (3, 2)), label="computed (owned + recomputed border)"))
    fig.legend(handles=legend, loc="center left", fontsize=8, frameon=False, ncol=2,
               bbox_to_anchor=(0.02, 1 - (top + image_h + 0.45) / fig_h))
    if notes:
        fig.text(0.3 / fig_w, 1 - (top + image_h + 0.7) / fig_h, "\n".join(notes), ha="left", va="top",
                 fontsize=7, linespacing=1.3)

    # Per node: what it owns (solid) and the recomputed border (tinted, dashed).
    thumb_left = (fig_w - columns * thumb_w / 0.8) / 2
    for k in range(1, plan.nodes + 1) if thumb_rows else []:
        row, column = divmod(k - 1, columns)
        small = place(thumb_left + column * thumb_w / 0.8, top + image_h + below + 0.35 + row * (thumb_h + 0.35) + 0.25,
                      thumb_w, thumb_h)
        show(small, alpha=0.35)
        small.set_xticks([])
        small.set_yticks([])
        color = colors[k - 1]
        if computed[k - 1] is not None:
            left, upper, right, lower = to_input(computed[k - 1])
            small.add_patch(Rectangle((left, upper), right - left, lower - upper, facecolor=color, alpha=0.3,
                                      lw=0))
            small.add_patch(Rectangle((left, upper), right - left, lower - upper, fill=False, edgecolor=color,
                                      lw=1.2, ls=(0, (3, 2)), clip_on=False))
        if owned[k - 1] is not None:
            left, upper, right, lower = to_input(owned[k - 1])
            small.add_patch(Rectangle((left, upper), right - left, lower - upper, fill=False, edgecolor=color,
                                      lw=2.0, clip_on=False))
        for spine in small.spines.values():
            spine.set_visible(True)
            spine.set_color("#cccccc")
        area = lambda box: 0 if box is None else (box[1] - box[0]) * (box[3] - box[2])  # noqa: E731
        ratio = f"{area(computed[k - 1]) / area(owned[k - 1]):.2f}x" if area(owned[k - 1]) else "no tile"
        small.set_title(f"node {k}: {ratio}", fontsize=8, color=color, pad=2)
    if thumb_rows:
        fig.text(0.5, 1 - (top + image_h + below + 0.1) / fig_h,
                 "per node: owned tile (solid) and computed region (tinted, dashed); "
                 "computed area / owned area", ha="center", va="top", fontsize=8)

    return save_tiles(fig, axis, outdir, written, rectangles, texts,
                      {"layer": name, "layer_index": index, "layer_shape": [channels, layer_height, layer_width],
                       "input_size": [height, width], "background": background, "fused": fused,
                       "background_rgb": [round(255 * c) for c in BLANK_MAP] if background == "blank" else None})


def save_tiles(fig, axis, outdir, written, rectangles, texts, header):
    """tiles.png, and tiles.json: the rectangles in input pixels and in PNG
    pixels (x right, y down from the PNG's top-left corner)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    png_height = fig.bbox.height

    def to_png(x, y):
        px, py = axis.transData.transform((x, y))
        return [float(px), float(png_height - py)]

    for rectangle in rectangles:
        x0, y0, x1, y1 = rectangle["input_box"]
        rectangle["png_box"] = to_png(x0, y0) + to_png(x1, y1)
    height, width = header["input_size"]
    labels = []
    for artist, text in texts:
        extent = artist.get_bbox_patch().get_window_extent(renderer)
        labels.append({"text": text, "png_box": [float(extent.x0), float(png_height - extent.y1),
                                                 float(extent.x1), float(png_height - extent.y0)]})
    description = dict(header)
    description.update({"png_size": [int(round(fig.bbox.width)), int(round(png_height))],
                        "input_png_box": to_png(0, 0) + to_png(width, height),
                        "rectangles": rectangles, "labels": labels})
    path = save(fig, outdir, "tiles.png", written)
    json_path = os.path.join(outdir, "tiles.json")
    with open(json_path, "w") as file:
        json.dump(description, file, indent=1)
    written.append(json_path)
    return path


# /emulation/per_layer's first four columns, in the order they are drawn
# within a layer; the fifth is the node's clock after the layer.
EMULATED_PARTS = (("wait", "#c7c7c7"), ("communication", "#f28e2b"), ("flash", "#59a14f"),
                  ("compute", "#4878a8"))
GATHER_COLOR = "#b07aa1"  # the output gather's transfer (its wait is drawn as a wait)
TOTAL_COLOR = "#ff0000"


def timeline_segments(emulation):
    """Per node, the drawn bars: (start, duration, part), seconds. Layer i of
    node k ends at per_layer[k, i, 4]; its wait, communication, flash and
    compute lie back to back, in that order, before it. Then the output
    gather: its wait and its transfer ('gather'), ending at the node's finish."""
    per_layer, node_seconds = emulation["per_layer"], emulation["node_seconds"]
    segments = []
    for k in range(per_layer.shape[0]):
        bars = []
        for layer in range(per_layer.shape[1]):
            end = per_layer[k, layer, 4]
            start = end - per_layer[k, layer, :4].sum()
            for part, (label, _) in enumerate(EMULATED_PARTS):
                duration = per_layer[k, layer, part]
                if duration > 0:
                    bars.append((start, duration, label))
                start += duration
        finish, gather_wait, gather_transfer = node_seconds[k]
        start = finish - gather_wait - gather_transfer
        for duration, label in ((gather_wait, "wait"), (gather_transfer, "gather")):
            if duration > 0:
                bars.append((start, duration, label))
            start += duration
        segments.append(bars)
    return segments


def format_time(value):
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def plot_emulated_timeline(plan, outdir, written):
    """Each node's emulated clock through the inference: per layer its wait,
    communication, flash and compute ending at its clock after the layer,
    then the output gather; the emulated total as a vertical line. Beside
    it timeline.json: where the time axis and each node's row lie in the PNG."""
    emulation = plan.emulation
    if emulation is None:
        print("plot: timeline.png skipped: plan.h5 holds no emulated times "
              "(/emulation, written by `splitinfer plan --device NAME`)")
        return None
    total = emulation["total_seconds"]
    per_layer, node_seconds = emulation["per_layer"], emulation["node_seconds"]
    end = max(total, float(node_seconds[:, 0].max()) if plan.nodes else 0.0)
    unit, scale = ("s", 1.0) if end >= 10 else ("ms", 1e3)
    colors = dict(EMULATED_PARTS, gather=GATHER_COLOR)
    fig, (axis, strip) = plt.subplots(2, 1, figsize=(13, 2.4 + 0.55 * plan.nodes), sharex=True,
                                      gridspec_kw={"height_ratios": [max(2.0, 0.55 * plan.nodes), 0.45]},
                                      constrained_layout=True)
    axis.set_axisbelow(True)  # grid lines under the bars
    for k, bars in enumerate(timeline_segments(emulation), 1):
        for label in colors:
            spans = [(start * scale, duration * scale) for start, duration, part in bars if part == label]
            if spans:
                axis.broken_barh(spans, (k - 0.4, 0.8), color=colors[label], lw=0, zorder=2)
    axis.axvline(total * scale, color=TOTAL_COLOR, ls="--", lw=2, zorder=3)
    axis.set_yticks(range(1, plan.nodes + 1))
    axis.set_yticklabels([f"node {k + 1}  (done {format_time(node_seconds[k, 0] * scale)} {unit}, "
                          f"waits {format_time((per_layer[k, :, 0].sum() + node_seconds[k, 1]) * scale)} {unit})"
                          for k in range(plan.nodes)], fontsize=7)
    axis.set_ylim(plan.nodes + 0.6, 0.4)
    axis.set_xlim(0, end * scale * 1.01)
    axis.grid(axis="x", alpha=0.3)
    sums = per_layer[:, :, :4].sum(axis=(0, 1))  # over nodes and layers, per part
    gather = emulation["output_gather_seconds"]
    handles = [Patch(color=color, label=f"{label} ({format_time(sums[i] / max(plan.nodes, 1) * scale)} {unit} per node)")
               for i, (label, color) in enumerate(EMULATED_PARTS)]
    handles.append(Patch(color=GATHER_COLOR, label=f"output gather ({format_time(gather * scale)} {unit} "
                                                   f"after the last layer)"))
    handles.append(Line2D([], [], color=TOTAL_COLOR, ls="--", lw=2,
                          label=f"emulated total {format_time(total * scale)} {unit}\n(the coordinator holds the output)"))
    axis.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)

    # The layers along the cluster's latest clock: layer i moves it by
    # layer_seconds[i]; the longest ones are named.
    edges = np.concatenate([[0.0], np.cumsum(emulation["layer_seconds"])]) * scale
    shaded = 0
    for i in range(len(plan.layer_names)):
        if edges[i + 1] > edges[i]:
            strip.axvspan(edges[i], edges[i + 1], color="#d8d8d8" if shaded % 2 else "#f0f0f0", lw=0)
            shaded += 1
            if edges[i + 1] - edges[i] >= 0.08 * end * scale:
                strip.text((edges[i] + edges[i + 1]) / 2, 0.5, plan.layer_names[i], ha="center", va="center",
                           fontsize=6, clip_on=True)
    strip.axvline(total * scale, color=TOTAL_COLOR, ls="--", lw=2)
    strip.set_yticks([0.5])
    strip.set_yticklabels(["layers (latest clock)"], fontsize=7)
    strip.set_ylim(0, 1)
    strip.set_xlabel(f"emulated time ({unit})")

    device = plan.device or "an unnamed device"
    note = ("\n(relays to the coordinator follow the compute but are drawn with the layer's communication)"
            if plan.via_coordinator else "")
    axis.set_title(f"{plan.title()}: emulated timeline on {device}\n"
                   f"per node and layer: wait, communication, flash, compute, ending at the node's clock after "
                   f"the layer{note}", fontsize=9)
    fig.canvas.draw()
    png_height = fig.bbox.height

    def to_png(x, y):
        px, py = axis.transData.transform((x, y))
        return [float(px), float(png_height - py)]

    description = {"device": plan.device, "unit_seconds": 1.0 / scale,
                   "png_size": [int(round(fig.bbox.width)), int(round(png_height))],
                   # PNG x of time 0 and of the total; PNG y of each node's row centre
                   "time_png_x": [to_png(0, 1)[0], to_png(total * scale, 1)[0]],
                   "total_seconds": total,
                   "node_png_y": [to_png(0, k)[1] for k in range(1, plan.nodes + 1)],
                   "bar_png_height": abs(to_png(0, 1.4)[1] - to_png(0, 0.6)[1]),
                   "colors": {label: [round(255 * c) for c in to_rgb(color)] for label, color in colors.items()}}
    path = save(fig, outdir, "timeline.png", written)
    json_path = os.path.join(outdir, "timeline.json")
    with open(json_path, "w") as file:
        json.dump(description, file, indent=1)
    written.append(json_path)
    return path


# ---------------------------------------------------------------- run figures


HOST_PARTS = {"compute": "#4878a8", "exchange": "#f28e2b", "relay": "#e15759", "coordinator": "#bab0ac"}


def plot_host_timeline(tracks, trace_path, outdir, written, title):
    rows = list(tracks.items())
    fig, axis = plt.subplots(figsize=(12, 1.5 + 0.4 * len(rows)), constrained_layout=True)
    labels, used = [], set()
    for row, (_, (name, slices)) in enumerate(rows, 1):
        spans, busy = {}, {}
        for start, duration, category, _ in slices:
            part = category.split(" ")[0] if category.split(" ")[0] in HOST_PARTS else "other"
            spans.setdefault(part, []).append((start / 1e3, duration / 1e3))
            busy[part] = busy.get(part, 0.0) + duration / 1e3
        for part, bars in spans.items():
            axis.broken_barh(bars, (row - 0.4, 0.8), color=HOST_PARTS.get(part, "#999999"), lw=0)
            used.add(part)
        summary = ", ".join(f"{part} {busy[part]:.3g}" for part in ("compute", "exchange", "relay") if part in busy)
        labels.append(f"{name}" + (f"  ({summary} ms)" if summary else ""))
    axis.set_yticks(range(1, len(rows) + 1))
    axis.set_yticklabels(labels, fontsize=7)
    axis.set_ylim(len(rows) + 0.6, 0.4)
    axis.set_xlabel("host time since the traced inference started (ms)")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(handles=[Patch(color=HOST_PARTS.get(part, "#999999"), label=part) for part in sorted(used)],
                fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.set_title(f"{title}: measured host timeline ({os.path.basename(trace_path)})", fontsize=9)
    return save(fig, outdir, "host_timeline.png", written)


def stats_title(stats):
    grid = stats.get("grid")
    grid = f", grid {grid[0]}x{grid[1]}" if isinstance(grid, list) and len(grid) == 2 else ""
    return (f"{stats.get('model', 'model')}: {stats.get('strategy', '?')} run on "
            f"{len(stats['nodes'])} node(s){grid}")


def grouped_bars(axis, nodes, series):
    width = 0.8 / len(series)
    x = np.arange(len(nodes))
    for i, (label, values, style) in enumerate(series):
        axis.bar(x - 0.4 + width * (i + 0.5), np.asarray(values, dtype=np.float64) / KIB, width, label=label,
                 zorder=2, **style)
    step = max(1, math.ceil(len(nodes) / 32))
    axis.set_xticks(x[::step])
    axis.set_xticklabels([str(rank) for rank in nodes[::step]], fontsize=7)
    axis.set_xlabel("node (MPI rank)")
    axis.grid(axis="y", alpha=0.3, zorder=0)


def plot_stats_memory(stats, outdir, written):
    nodes = stats["nodes"]
    ranks = [node["rank"] for node in nodes]
    fig, axis = plt.subplots(figsize=(max(8, 0.35 * len(nodes) + 3), 5), constrained_layout=True)
    grouped_bars(axis, ranks, [
        ("measured peak RAM", [node["peak_ram_bytes"] for node in nodes], {"color": "#4878a8"}),
        ("predicted by the plan", [node["predicted_peak_ram_bytes"] for node in nodes],
         {"color": "#a0c4e8", "hatch": "//", "edgecolor": "#4878a8"})])
    caps = {node.get("ram_cap_bytes") for node in nodes} - {None}
    for cap in caps:
        axis.axhline(cap / KIB, color="red", ls="--", lw=1.5, label=f"RAM cap {format_bytes(cap)}")
    axis.set_ylabel("KiB")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    equal = all(node["peak_ram_bytes"] == node["predicted_peak_ram_bytes"] for node in nodes)
    axis.set_title(f"{stats_title(stats)}: peak RAM per node\n(measured "
                   f"{'equals' if equal else 'differs from'} predicted on every node; "
                   f"{'no RAM cap' if not caps else 'cap as dashed line'})", fontsize=9)
    return save(fig, outdir, "memory.png", written)


def plot_stats_bytes(stats, outdir, written):
    nodes = stats["nodes"]
    ranks = [node["rank"] for node in nodes]
    series = [("bytes sent (measured)", [node["bytes_sent"] for node in nodes], {"color": "#4878a8"})]
    if all("predicted_bytes_sent" in node for node in nodes):
        series.append(("bytes sent (predicted)", [node["predicted_bytes_sent"] for node in nodes],
                       {"color": "#a0c4e8", "hatch": "//", "edgecolor": "#4878a8"}))
    if all("bytes_received" in node for node in nodes):
        series.append(("bytes received (measured)", [node["bytes_received"] for node in nodes],
                       {"color": "#f28e2b"}))
    fig, axis = plt.subplots(figsize=(max(8, 0.45 * len(nodes) + 3), 5), constrained_layout=True)
    grouped_bars(axis, ranks, series)
    axis.set_ylabel("KiB")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    total = stats.get("total_bytes_moved")
    moved = f"; {format_bytes(total)} moved in all" if isinstance(total, (int, float)) else ""
    axis.set_title(f"{stats_title(stats)}: bytes per node{moved}", fontsize=9)
    return save(fig, outdir, "bytes.png", written)


# ---------------------------------------------------------------- jobs/intermittent


RECONFIGURE_COLUMNS = ["nodes", "intermittency", "configuration", "order", "job_ms", "device_ms"]
LEVELS = ["continuous", "weak", "strong"]


def read_reconfigure(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PlotError(f"cannot read '{path}': {error}")
    missing = [c for c in RECONFIGURE_COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise PlotError(f"'{path}' is not a jobs/intermittent reconfigure.csv "
                        f"(no column {', '.join(missing)})")
    cells = {}
    for line, row in enumerate(rows, start=2):
        try:
            value = float(row["device_ms"])
        except ValueError:
            raise PlotError(f"'{path}' line {line}: device_ms '{row['device_ms']}' is not a number")
        if row["intermittency"] not in LEVELS:
            raise PlotError(f"'{path}' line {line}: intermittency '{row['intermittency']}' "
                            f"is not one of {', '.join(LEVELS)}")
        cells.setdefault((row["nodes"], row["intermittency"]), {})[row["configuration"]] = value
    for (nodes, level), configurations in cells.items():
        if "dynamic" not in configurations or len(configurations) < 2:
            raise PlotError(f"'{path}': {nodes} node(s), {level}: needs static configurations and 'dynamic'")
    return cells


def plot_reconfigure(cells, outdir, written):
    nodes = sorted({n for n, _ in cells}, key=lambda n: int(n) if n.isdigit() else n)
    levels = [level for level in LEVELS if any(l == level for _, l in cells)]
    fig, axes = plt.subplots(len(nodes), len(levels), figsize=(4.6 * len(levels), 3.6 * len(nodes)),
                             squeeze=False, constrained_layout=True)
    colors = {"channels": "#4878a8", "rows": "#59a14f", "": "#9d9d9d"}
    for i, count in enumerate(nodes):
        for j, level in enumerate(levels):
            axis = axes[i][j]
            configurations = cells.get((count, level))
            if configurations is None:
                axis.set_axis_off()
                continue
            static = [c for c in configurations if c != "dynamic"]
            static.sort(key=lambda c: (c == "layer", c.split(":")[-1], float(c.split(":")[0]) if ":" in c else 0))
            labels = [c.split(":")[0] if ":" in c else "layers" for c in static] + ["dyn."]
            values = [configurations[c] for c in static] + [configurations["dynamic"]]
            bar_colors = [colors[c.split(":")[1] if ":" in c else ""] for c in static] + ["#ff0000"]
            x = np.arange(len(values))
            axis.bar(x, values, color=bar_colors, zorder=2)
            axis.axhline(configurations["dynamic"], color="#ff0000", ls="--", lw=1, zorder=3)
            axis.set_xticks(x)
            axis.set_xticklabels(labels, fontsize=7)
            axis.grid(axis="y", alpha=0.3, zorder=0)
            best, worst = min(configurations[c] for c in static), max(configurations[c] for c in static)
            axis.set_title(f"{count} node(s), {level}: dynamic / best static {configurations['dynamic'] / best:.2f}, "
                           f"worst / dynamic {worst / configurations['dynamic']:.2f}", fontsize=8)
            if j == 0:
                axis.set_ylabel("device ms per inference\n(slowest node)")
            axis.set_xlabel("static job ms (channels | rows), whole layers, dynamic", fontsize=7)
    axes[0][0].legend(handles=[Patch(color=colors["channels"], label="static, channel bands"),
                        Patch(color=colors["rows"], label="static, row bands"),
                        Patch(color=colors[""], label="static, whole layers"),
                        Patch(color="#ff0000", label="--reconfigure dynamic")],
               loc="upper left", fontsize=7)
    fig.suptitle("Job sizes and loop orders under intermittent power (jobs/intermittent)", fontsize=10)
    return save(fig, outdir, "reconfigure.png", written)


# ---------------------------------------------------------------- main


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise PlotError(message)


def parse(argv):
    parser = Parser(prog="jobs/plot", description=__doc__.split("\n\n")[0],
                    epilog="\n\n".join(__doc__.split("\n\n")[2:]),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="PLANDIR_OR_JSON",
                        help="a plan directory (or its plan.h5), a run --stats JSON, a run --trace JSON, "
                        "or jobs/intermittent's reconfigure.csv")
    parser.add_argument("--input", metavar="IMAGE", help="picture under the tiles: .png/.jpg, or .h5 with /input")
    parser.add_argument("--layer", metavar="NAME", help="layer whose regions tiles.png draws "
                        "(default: the first layer that reads the input)")
    parser.add_argument("--trace", metavar="TRACE.json", help="a run --trace file: host_timeline.png")
    parser.add_argument("-o", "--output", metavar="OUTDIR", help="where the PNGs go")
    return parser.parse_args(argv)


def run(argv):
    args = parse(argv)
    source = args.source
    if not os.path.exists(source):
        raise PlotError(f"'{source}' does not exist (expected a plan directory, "
                        f"a run --stats JSON or a run --trace JSON)")
    if args.trace:
        require_exists(args.trace, "--trace")
    written = []
    # Every input is read and checked before the first file is written.
    if source.lower().endswith(".csv"):
        if args.input or args.layer or args.trace:
            raise PlotError("--input, --layer and --trace apply to a plan or a run, not to reconfigure.csv")
        cells = read_reconfigure(source)
        outdir = args.output or os.path.splitext(source)[0] + "_plots"
        os.makedirs(outdir, exist_ok=True)
        plot_reconfigure(cells, outdir, written)
    elif os.path.isdir(source) or not source.lower().endswith(".json"):
        plan = Plan(source)
        outdir = args.output or os.path.join(plan.dir, "plots")
        tracks = trace_tracks(read_json(args.trace, "--trace"), args.trace) if args.trace else None
        if tracks:
            node_tracks = [tid for tid in tracks if tid != 0]
            if len(node_tracks) != plan.nodes:
                raise PlotError(f"'{args.trace}' traces {len(node_tracks)} node(s) but the plan has {plan.nodes}")
        index = plan.layer_index(args.layer)
        picture = load_input_picture(args.input, plan) if args.input else None
        os.makedirs(outdir, exist_ok=True)
        plot_memory(plan, outdir, written)
        plot_bytes(plan, outdir, written)
        plot_tiles(plan, outdir, written, index, picture)
        plot_emulated_timeline(plan, outdir, written)
        if tracks:
            plot_host_timeline(tracks, args.trace, outdir, written, plan.title())
    else:
        if args.input or args.layer:
            raise PlotError("--input and --layer apply to a plan directory (tiles.png), not to a JSON file")
        document = read_json(source, "input")  # exists: checked above
        outdir = args.output or os.path.splitext(source)[0] + "_plots"
        if isinstance(document, dict) and "traceEvents" in document:
            if args.trace:
                raise PlotError(f"'{source}' is itself a trace; --trace goes with a plan or a stats file")
            tracks = trace_tracks(document, source)
            os.makedirs(outdir, exist_ok=True)
            plot_host_timeline(tracks, source, outdir, written, "run")
        else:
            stats = check_stats(document, source)
            tracks = trace_tracks(read_json(args.trace, "--trace"), args.trace) if args.trace else None
            os.makedirs(outdir, exist_ok=True)
            plot_stats_memory(stats, outdir, written)
            plot_stats_bytes(stats, outdir, written)
            if tracks:
                plot_host_timeline(tracks, args.trace, outdir, written, stats_title(stats))
            else:
                print("plot: host_timeline.png skipped: no --trace given")
    for path in written:
        print(path)


def main(argv=None):
    try:
        run(sys.argv[1:] if argv is None else argv)
    except PlotError as error:
        print(f"plot: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - still one line, naming what failed
        print(f"plot: error: {type(error).__name__}: {error}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
