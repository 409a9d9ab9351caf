"""Import an ONNX model into a splitinfer model file (io/FORMAT.md, version 1)
and, optionally, write ONNX Runtime's values as the reference.

Command line:

    /usr/bin/python3 models/export_onnx.py MODEL.onnx --out MODEL.h5 [--input-shape 1,C,H,W]
        [--drop-final-softmax] [--mean M,M,M --std S,S,S] [--channel-order rgb|bgr|gray]
        [--reference REF.h5 --input-file X.h5]

The graph (opsets 1 to 17) must have one input, float32 (or uint8 with the
scale of the QLinear/DequantizeLinear reading it), 4-D N,C,H,W or 2-D N,F,
batch 1: --input-shape gives it when the file leaves it open or declares
another batch size (a 2-D input [1, F] is held as [1, F, 1, 1]: that is the
shape of /input in X.h5). float32 and int8 (QDQ, QLinear) graphs are
converted by onnx_convert.py; anything it cannot compute exactly is refused
with one line naming the node, its op type and what is not supported.

--drop-final-softmax: splitinfer has no softmax op; with this option a
Softmax that ends the graph is left out and the model's output is its input
(the logits), as the option says; without it such a graph is refused.

/meta (how `splitinfer run` turns an image into the input): --mean, --std
(one value per input channel; default 0 and 1), --channel-order (rgb); pixels
are scaled by 1/255 first.

--reference writes, for /input of X.h5, ONNX Runtime's output (/output; for
an int8 model also /output_q, uint8 with scale and zero point) and its value
of the tensor every layer holds (/layers/<name>), computed by onnxruntime-node
(models/ort_reference.py) on the original graph with only its input shape
set, so that the reference never passes through this converter.

This file is only the command line; model_file.write_model_file writes.
"""
import argparse
import os
import sys

import h5py
import numpy as np
import onnx

from model_file import ExportError, one_line, write_model_file
from onnx_convert import convert
from ort_reference import OrtError, run_ort


def _numbers(kind):
    def parse(text):
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")
    return parse


def load_onnx(path):
    try:
        model = onnx.load(path)
    except Exception as e:   # protobuf's DecodeError, OSError, ...
        raise ExportError(f"cannot read {path} as an ONNX model: {one_line(e, 200)}")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ExportError(f"{path} is not a valid ONNX model: {one_line(e, 200)}")
    return model


def make_meta(args, channels):
    mean = list(args.mean) if args.mean else [0.0] * channels
    std = list(args.std) if args.std else [1.0] * channels
    if len(mean) != channels or len(std) != channels:
        raise ExportError(f"--mean and --std need {channels} values (one per input channel)")
    if any(s <= 0 for s in std):
        raise ExportError("--std values must be positive")
    return {"channel_order": args.channel_order, "pixel_scale": 1.0 / 255.0, "mean": mean, "std": std,
            "resize": "bilinear"}


def onnx_input_value(conversion, x):
    """The graph input's value for ONNX Runtime: x [1, C, H, W] (or [1, F, 1, 1]
    for a 2-D graph input) reshaped; a uint8 graph input gets x quantized as the
    model's `quantize` layer quantizes it."""
    x = x.reshape(conversion.onnx_input_shape)
    graph_input = next(i for i in conversion.model.graph.input if i.name == conversion.input_name)
    if graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
        q = next(layer for layer in conversion.layers if layer.op == "quantize")
        inverse = np.float32(1.0) / np.float32(q.attrs["scale"])
        x = np.clip(np.rint(x * inverse) + q.attrs["zero_point"], 0, 255).astype(np.uint8)
    return x


def reference_model(model, conversion, layers):
    """The original graph with the input shape set and the tensors of
    `layers` as outputs too (a dropped Softmax's input, an int8 output's
    uint8 integers, or every layer's value)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    dims = next(i for i in graph.input if i.name == conversion.input_name).type.tensor_type.shape
    del dims.dim[:]
    for v in conversion.onnx_input_shape:
        dims.dim.add().dim_value = v
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    present = {o.name for o in graph.output}
    for layer in layers:
        if layer.ref not in present:
            elem = onnx.TensorProto.UINT8 if layer.attrs.get("dtype") == "quint8" else onnx.TensorProto.FLOAT
            graph.output.append(onnx.helper.make_tensor_value_info(layer.ref, elem, None))
            present.add(layer.ref)
    return model


def run_reference(model, conversion, layers, x, path):
    """ONNX Runtime's value of every layer's tensor: {layer name: array}."""
    augmented = reference_model(model, conversion, layers)
    onnx.save(augmented, path)
    try:
        values = run_ort(path, {conversion.input_name: onnx_input_value(conversion, x)})
    except OrtError as e:
        raise ExportError(f"ONNX Runtime: {e}")
    finally:
        os.remove(path)
    by_name = dict(zip([o.name for o in augmented.graph.output], values))
    return {layer.name: by_name[layer.ref].reshape(layer.shape) for layer in layers}


def _quantized_dataset(group, key, value, layer):
    ds = group.create_dataset(key, data=value.astype(np.uint8))
    ds.attrs["scale"] = np.float64(layer.attrs["scale"])
    ds.attrs["zero_point"] = np.int64(layer.attrs["zero_point"])


def write_reference(model, conversion, input_file, ref_path):
    """/input, /output (/output_q) from a run of the graph with only the
    output layer's tensor added as an output (so ONNX Runtime optimizes it
    as it would the original), /layers from a run with every layer's."""
    try:
        with h5py.File(input_file, "r") as f:
            x = np.asarray(f["input"], dtype=np.float32)
    except (OSError, KeyError) as e:
        raise ExportError(f"cannot read /input from {input_file}: {one_line(e)}")
    expected = conversion.layers[0].shape
    if x.shape != tuple(expected):
        raise ExportError(f"{input_file}: /input has shape {list(x.shape)}, the model's input shape is "
                          f"{list(expected)}")
    out_layer = next(layer for layer in conversion.layers if layer.name == conversion.output)
    wanted = [layer for layer in conversion.layers
              if layer.op != "input" and layer.ref != conversion.input_name]
    temporary = f"{ref_path}.tmp-{os.getpid()}.onnx"
    out = run_reference(model, conversion, [out_layer], x, temporary)[out_layer.name]
    values = run_reference(model, conversion, wanted, x, temporary)
    with h5py.File(ref_path, "w") as f:
        f.create_dataset("input", data=x)
        if out_layer.attrs.get("dtype") == "quint8":   # DequantizeLinear: f32(q - zp) * scale
            _quantized_dataset(f, "output_q", out, out_layer)
            out = (out.astype(np.float32) - np.float32(out_layer.attrs["zero_point"])) * \
                np.float32(out_layer.attrs["scale"])
        f.create_dataset("output", data=out.astype(np.float32))
        group = f.create_group("layers", track_order=True)
        for layer in wanted:
            if layer.attrs.get("dtype") == "quint8":
                _quantized_dataset(group, layer.name, values[layer.name], layer)
            else:
                group.create_dataset(layer.name, data=values[layer.name].astype(np.float32))


def export(args):
    model = load_onnx(args.model)
    conversion = convert(model, args.input_shape, args.drop_final_softmax)
    layers = conversion.layers
    input_shape = layers[0].shape
    name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    source = f"ONNX {os.path.basename(args.model)} (producer {model.producer_name or '?'} " \
             f"{model.producer_version}, opset {conversion_opset(model)})"
    int8 = any(layer.attrs.get("dtype") == "quint8" for layer in layers)
    write_model_file(args.out, name, source, make_meta(args, input_shape[1]), input_shape, layers,
                     conversion.output, {"requantization": "pytorch"} if int8 else None)
    if args.reference:
        write_reference(model, conversion, args.input_file, args.reference)
    return conversion


def conversion_opset(model):
    return next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), "?")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="MODEL.onnx")
    parser.add_argument("--out", required=True)
    parser.add_argument("--input-shape", type=_numbers(int), help="1,C,H,W (or 1,F for a 2-D input)")
    parser.add_argument("--drop-final-softmax", action="store_true",
                        help="leave out a Softmax that ends the graph: the output is its logits")
    parser.add_argument("--name", help="the model's name (default: the file's)")
    parser.add_argument("--mean", type=_numbers(float))
    parser.add_argument("--std", type=_numbers(float))
    parser.add_argument("--channel-order", choices=["rgb", "bgr", "gray"], default="rgb")
    parser.add_argument("--reference")
    parser.add_argument("--input-file")
    args = parser.parse_args(argv)
    if bool(args.reference) != bool(args.input_file):
        parser.error("--reference and --input-file go together")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        export(args)
    except ExportError as e:
        print(f"export_onnx: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
