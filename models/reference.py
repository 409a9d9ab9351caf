"""PyTorch's reference values (io/FORMAT.md, "Reference file"): read an input
file, run the model, write /input, /output and /layers/<name> for the tests
to compare with splitinfer's.

Why they come from torch.fx.Interpreter: running the traced module node by
node and capturing node values gives PyTorch's own numbers for every layer,
never a re-implementation of the ops. The float reference runs the *unfolded*
module (BatchNorm still separate), so BN folding is checked too.

    read_input(path, shape) -> tensor
        /input of X.h5, which must have the model's input shape.
    write_reference(model, input_tensor, ref_path, layer_map)
        Runs `model` (the same module given to fx_convert.export_model) on
        input_tensor [1, C, H, W] and writes /input, /output and
        /layers/<name> for every layer of layer_map.
    write_quantized_reference(qmodel, gm, input_tensor, ref_path, layer_map,
                              output_layer)
        The same for a model converted by quantize_torch.quantize: uint8
        values with their scale and zero point, and /output_q.
"""
import h5py
import numpy as np
import torch
import torch.fx as fx

from fx_convert import trace
from model_file import ExportError


def read_input(path, shape):
    try:
        with h5py.File(path, "r") as f:
            x = np.asarray(f["input"], dtype=np.float32)
    except (OSError, KeyError) as e:
        raise ExportError(f"cannot read /input from {path}: {e}")
    if x.shape != tuple(shape):
        raise ExportError(f"{path}: /input has shape {list(x.shape)}, the model's input shape is {list(shape)}")
    return torch.from_numpy(x)


def capture(gm, x, node_names):
    """Run the GraphModule gm on x (no grad); returns its output and
    {node name: value} for every node named in node_names."""
    wanted = set(node_names)
    values = {}

    class Capture(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            if n.name in wanted:   # copy: a later in-place op (ReLU6(inplace)) may overwrite it
                values[n.name] = result.detach().clone()
            return result

    with torch.no_grad():
        out = Capture(gm).run(x)
    return out, values


def write_reference(model, input_tensor, ref_path, layer_map):
    """Run `model` on input_tensor and write PyTorch's value of every layer."""
    gm = model if isinstance(model, fx.GraphModule) else trace(model)
    x = input_tensor.detach().float()
    out, values = capture(gm, x, layer_map.values())
    with h5py.File(ref_path, "w") as f:
        f.create_dataset("input", data=x.numpy())
        f.create_dataset("output", data=out.numpy())
        group = f.create_group("layers", track_order=True)   # topological order when listed
        for layer, node in layer_map.items():
            group.create_dataset(layer, data=values[node].numpy())


def _quantized_dataset(group, key, value):
    if value.is_quantized:
        ds = group.create_dataset(key, data=value.int_repr().numpy().astype(np.uint8))
        ds.attrs["scale"] = np.float64(value.q_scale())
        ds.attrs["zero_point"] = np.int64(value.q_zero_point())
    else:
        group.create_dataset(key, data=value.numpy().astype(np.float32))


def write_quantized_reference(qmodel, gm, input_tensor, ref_path, layer_map, output_layer):
    """Run the converted model on input_tensor [1, C, H, W] and write /input,
    /output (float32, dequantized), /output_q (uint8 + scale, zero_point) and
    /layers/<name> (uint8 + scale, zero_point for quint8 layers). gm is the fx
    graph of qmodel the layers were made from; when it is a trace of the eager
    qmodel, its output is checked equal, bit for bit, to qmodel's own."""
    x = input_tensor.detach().float()
    out, values = capture(gm, x, layer_map.values())
    if gm is not qmodel:
        with torch.no_grad():
            direct = qmodel(x)
        if not torch.equal(direct, out):
            raise ExportError("internal error: the traced quantized model and the converted "
                              "model give different outputs")
    q = values[layer_map[output_layer]]
    with h5py.File(ref_path, "w") as f:
        f.create_dataset("input", data=x.numpy())
        f.create_dataset("output", data=(q.dequantize() if q.is_quantized else q).numpy().astype(np.float32))
        if q.is_quantized:
            _quantized_dataset(f, "output_q", q)
        group = f.create_group("layers", track_order=True)
        for layer, node in layer_map.items():
            _quantized_dataset(group, layer, values[node])
    if not out.is_quantized and q.is_quantized and not torch.equal(out, q.dequantize()):
        raise ExportError("internal error: /output differs from the model's own float output")
