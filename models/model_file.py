"""Write a splitinfer model file (io/FORMAT.md, version 1): the one writer
every exporter shares (export_torch.py's float and quantized paths, and an
ONNX exporter).

Why a module of its own, without torch: the file's layout (root attributes,
/meta, /layers with its order, each layer's op, inputs, output shape,
attributes and weight datasets) is the contract with the engine, and it must
be the same whatever the model came from. An exporter maps its graph to a
list of Layer records whose weights are numpy arrays; this module checks the
/meta it is given and writes the records as io/FORMAT.md says, so nothing in
the writer depends on the framework the model was made in.

    write_model_file(out_path, name, source, meta, input_shape, layers, output,
                     root_attrs=None)

Integrity (io/FORMAT.md, "Integrity"): every weight dataset is one chunk
with HDF5's fletcher32 checksum, and the root attribute content_digest holds
the digest of the file's canonical content (every attribute, every dataset's
path, type, extents and checksum flag), computed here exactly as the engine
computes it (io/hdf5.cpp canonical_content, partition/plan.cpp digest).
seal(path) recomputes it after a deliberate edit of a file.

infer_layer_shape(layer, input_shapes, expected) gives the output shape the
engine computes from a layer's attributes; the exporters check it against the
shape their source graph gives (conv_output_size is its window arithmetic,
PyTorch's and the engine's, ceil_mode included).

ExportError is the one error every exporter raises for a model or argument it
cannot handle; its message is one line (one_line shortens a framework's
multi-line message to one).
"""
import math
import os
import struct

import h5py
import numpy as np

FORMAT = "splitinfer-model"
FORMAT_VERSION = 1
STR = h5py.string_dtype("utf-8")
CONTENT_DIGEST = "content_digest"

# /meta attributes every model file has, and the optional ones.
META_KEYS = ("channel_order", "pixel_scale", "mean", "std", "resize")
META_OPTIONAL = ("class_names", "test_accuracy", "dataset")


class ExportError(Exception):
    """A model or argument the exporter cannot handle; the message is one line."""


def one_line(error, limit=400):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."


class Layer:
    """One layer of a model file.

    name, op, inputs (names of the input layers, in argument order) and attrs
    (the op's attributes: str, int, float or a list of ints) as io/FORMAT.md
    names them; weights: {dataset name: numpy array}, written with the array's
    dtype; shape: the output shape, set before the file is written. ref names
    the node of the source graph whose value the layer holds (the reference
    writers read it; the model file does not store it)."""

    def __init__(self, name, op, inputs, ref, attrs=None, weights=None):
        self.name, self.op, self.inputs, self.ref = name, op, inputs, ref
        self.attrs = attrs or {}
        self.weights = weights or {}
        self.shape = None


def layers_by_name(layers):
    return {layer.name: layer for layer in layers}


def check_meta(meta, input_shape, output_shape):
    """Raises ExportError unless `meta` has exactly the known /meta keys, with
    values that fit the model's input and output shapes."""
    unknown = set(meta) - set(META_KEYS) - set(META_OPTIONAL)
    missing = set(META_KEYS) - set(meta)
    if unknown or missing:
        raise ExportError(f"meta: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    channels = input_shape[1]
    if len(meta["mean"]) != channels or len(meta["std"]) != channels:
        raise ExportError(f"meta: mean and std need {channels} values for input shape {list(input_shape)}")
    if "class_names" in meta and [1, len(meta["class_names"])] != list(output_shape):
        raise ExportError(f"meta: {len(meta['class_names'])} class_names for output shape {list(output_shape)}")


def _strings(values):
    return np.array(list(values), dtype=STR)


def _attr(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    array = np.asarray(value)
    if array.dtype.kind == "f":  # a list of reals (resize's weights)
        return array.astype(np.float64)
    return array.astype(np.int64)


def _write_meta(group, meta, input_shape):
    group.attrs["input_shape"] = np.array(input_shape, dtype=np.int64)
    group.attrs["channel_order"] = meta["channel_order"]
    group.attrs["pixel_scale"] = np.float64(meta["pixel_scale"])
    group.attrs["mean"] = np.array(meta["mean"], dtype=np.float64)
    group.attrs["std"] = np.array(meta["std"], dtype=np.float64)
    group.attrs["resize"] = meta["resize"]
    if "class_names" in meta:
        group.attrs["class_names"] = _strings(meta["class_names"])
    if "test_accuracy" in meta:
        group.attrs["test_accuracy"] = np.float64(meta["test_accuracy"])
    if "dataset" in meta:
        group.attrs["dataset"] = str(meta["dataset"])


def digest(data):
    """FNV-1a 64-bit of `data` (bytes) as 16 hex digits, as partition/plan.cpp's digest()."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _canonical_attributes(obj, skip, out):
    for name in sorted(obj.attrs.keys(), key=lambda key: key.encode()):
        if name == skip:
            continue
        value = obj.attrs[name]
        array = np.asarray(value)
        line = "A " + name
        if isinstance(value, (str, bytes)) or array.dtype.kind in "OSU":
            line += " s"
            for item in array.reshape(-1):
                text = item.decode() if isinstance(item, bytes) else str(item)
                line += f" {len(text.encode())}:{text}"
        elif array.dtype.kind in "iu":
            line += " i" + "".join(f" {int(item)}" for item in array.reshape(-1))
        elif array.dtype.kind == "f":
            line += " f" + "".join(" " + struct.pack(">d", float(item)).hex()
                                   for item in array.reshape(-1))
        else:
            line += " ?"
        out.append(line + "\n")


def _canonical_dataset(dataset, path, out):
    dtype = dataset.dtype
    if h5py.check_string_dtype(dtype) is not None:
        kind = "s"
    elif dtype.kind == "f":
        kind = f"f{dtype.itemsize}"
    elif dtype.kind in "iu":
        kind = f"{dtype.kind}{dtype.itemsize}"
    else:
        kind = "?"
    dims = "x".join(str(extent) for extent in (dataset.shape or ()))
    out.append(f"D {path} {kind} {dims} c{1 if dataset.fletcher32 else 0}\n")


def _canonical_group(group, path, skip, out):
    out.append(f"G {path}\n")
    _canonical_attributes(group, skip, out)
    for name in sorted(group.keys(), key=lambda key: key.encode()):
        child = path + ("" if path == "/" else "/") + name
        item = group[name]
        if isinstance(item, h5py.Group):
            _canonical_group(item, child, "", out)
        else:
            _canonical_dataset(item, child, out)
            _canonical_attributes(item, "", out)


def content_digest(group):
    """The digest of `group`'s canonical content (io/hdf5.cpp canonical_content),
    leaving out the content_digest attribute itself."""
    out = []
    _canonical_group(group, "/", CONTENT_DIGEST, out)
    return digest("".join(out).encode())


def seal(path):
    """Recomputes the content_digest of the file at `path` (after an intended
    edit); a file whose digest is right is left untouched, byte for byte (a
    plan records the digest of its node files' bytes)."""
    with h5py.File(path, "r") as f:
        value = content_digest(f)
        if f.attrs.get(CONTENT_DIGEST) == value:
            return
    with h5py.File(path, "r+") as f:
        f.attrs[CONTENT_DIGEST] = value


def _create_checksummed(group, name, value):
    """One chunk holding the whole array, with a fletcher32 checksum (arrays
    without elements or scalars stay contiguous: nothing to chunk)."""
    if value.ndim == 0 or value.size == 0:
        return group.create_dataset(name, data=value)
    return group.create_dataset(name, data=value, chunks=value.shape, fletcher32=True)


def write_model_file(out_path, name, source, meta, input_shape, layers, output, root_attrs=None):
    """Write `layers` (Layer records in topological order, the input layer
    first, every shape set) as the model file out_path. name, source and
    output (the name of the output layer) are root attributes, as is every
    item of root_attrs (e.g. requantization); meta holds the /meta attributes
    (META_KEYS, and any of META_OPTIONAL), checked first; input_shape is
    (1, C, H, W). The file is written under a temporary name beside
    out_path and renamed to it once whole, so out_path never holds half a
    model."""
    check_meta(meta, input_shape, layers_by_name(layers)[output].shape)
    temporary = f"{out_path}.tmp-{os.getpid()}"
    try:
        _write_model_file(temporary, name, source, meta, input_shape, layers, output, root_attrs)
        os.replace(temporary, out_path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _write_model_file(out_path, name, source, meta, input_shape, layers, output, root_attrs):
    with h5py.File(out_path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["name"] = name
        f.attrs["source"] = source
        f.attrs["output"] = output
        for key, value in (root_attrs or {}).items():
            f.attrs[key] = _attr(value)
        _write_meta(f.create_group("meta"), meta, input_shape)
        group = f.create_group("layers")
        group.attrs["order"] = _strings(layer.name for layer in layers)
        for layer in layers:
            g = group.create_group(layer.name)
            g.attrs["op"] = layer.op
            g.attrs["inputs"] = _strings(layer.inputs)
            g.attrs["output_shape"] = np.array(layer.shape, dtype=np.int64)
            for key, value in layer.attrs.items():
                g.attrs[key] = _attr(value)
            for key, value in layer.weights.items():
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"layer '{layer.name}': weight '{key}' is a {type(value).__name__}, "
                                    f"not a numpy array")
                _create_checksummed(g, key, value)
        f.attrs[CONTENT_DIGEST] = content_digest(f)


# --------------------------------------------------------------------------
# Shapes (every exporter checks a layer's shape from its source graph against these)

def conv_output_size(size, k, s, p, d, ceil=False):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:   # PyTorch: last window must start inside
        out -= 1
    return out


def infer_layer_shape(layer, ins, expected):
    """The layer's output shape computed from its exported attributes and its
    input shapes `ins` (what the engine will compute); `expected`, the source
    graph's shape, only tells a 2-D global_avgpool from a 4-D one."""
    a = layer.attrs
    x = ins[0] if ins else None
    if layer.op == "conv2d":
        oc = layer.weights["weight"].shape[0]
        return (x[0], oc) + tuple(conv_output_size(x[2 + i], a["kernel"][i], a["stride"][i],
                                                   a["padding"][i], a["dilation"][i]) for i in range(2))
    if layer.op in ("maxpool", "avgpool"):
        d = a.get("dilation", [1, 1])
        return x[:2] + tuple(conv_output_size(x[2 + i], a["kernel"][i], a["stride"][i], a["padding"][i],
                                              d[i], a["ceil_mode"]) for i in range(2))
    if layer.op == "global_avgpool":
        return x[:2] + ((1, 1) if len(expected) == 4 else ())
    if layer.op == "flatten":
        return (x[0], math.prod(x[1:]))
    if layer.op == "linear":
        w = layer.weights["weight"]
        return (x[0], w.shape[0]) if x[1] == w.shape[1] else None
    if layer.op == "concat":
        return (x[0], sum(s[1] for s in ins)) + x[2:]
    if layer.op == "slice":
        return (x[0], a["stop"] - a["start"]) + x[2:]
    if layer.op == "upsample_nearest":
        return x[:2] + (x[2] * a["scale"][0], x[3] * a["scale"][1])
    if layer.op == "resize":
        return x[:2] + (len(a["index_h"]) // a["taps"][0], len(a["index_w"]) // a["taps"][1])
    if layer.op == "mul":
        return max(ins, key=math.prod)
    return x   # elementwise ops, batchnorm, channel_shuffle
