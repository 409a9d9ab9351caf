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

ExportError is the one error every exporter raises for a model or argument it
cannot handle; its message is one line (one_line shortens a framework's
multi-line message to one).
"""
import h5py
import numpy as np

FORMAT = "splitinfer-model"
FORMAT_VERSION = 1
STR = h5py.string_dtype("utf-8")

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
    return np.array(value, dtype=np.int64)


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


def write_model_file(out_path, name, source, meta, input_shape, layers, output, root_attrs=None):
    """Write `layers` (Layer records in topological order, the input layer
    first, every shape set) as the model file out_path. name, source and
    output (the name of the output layer) are root attributes, as is every
    item of root_attrs (e.g. requantization); meta holds the /meta attributes
    (META_KEYS, and any of META_OPTIONAL), checked first; input_shape is
    (1, C, H, W)."""
    check_meta(meta, input_shape, layers_by_name(layers)[output].shape)
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
                g.create_dataset(key, data=value)
