"""Build a PyTorch module from a splitinfer float model file (io/FORMAT.md).

Why: a shipped model may exist only as MODEL.h5 (models/fashion/
mobilenetv2_035_96.h5 has no state_dict), yet FX-mode quantization and the
quantized reference need a torch module. The file is already a flat graph of
named layers, so it maps one to one onto a torch.fx.Graph of standard modules
and functions: conv2d -> nn.Conv2d (with bias: BatchNorm is folded), relu6 ->
nn.ReLU6, add -> operator.add, global_avgpool -> F.adaptive_avg_pool2d, ...
Every fx node and submodule is named after its layer, so what FX quantization
derives from the module keeps the file's layer names.

    build_module(path) -> (fx.GraphModule, input_shape, meta, name, source)

Only float32 (or float16-weight) files; a quantized file is refused. Any op
outside the table below is refused by name.
"""
import operator

import h5py
import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F


class H5ModuleError(Exception):
    """A model file this builder cannot turn into a module; one-line message."""


def _strs(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class _Resize(nn.Module):
    """The resize op (io/FORMAT.md) as dense interpolation matrices:
    out = Wy (x Wx^T + bias_w) + bias_h."""

    def __init__(self, g, in_h, in_w):
        super().__init__()
        taps = [int(t) for t in g.attrs["taps"]]
        for axis, size, t in (("h", in_h, taps[0]), ("w", in_w, taps[1])):
            index = np.asarray(g.attrs[f"index_{axis}"], dtype=np.int64).reshape(-1, t)
            weight = np.asarray(g.attrs[f"weight_{axis}"], dtype=np.float64).reshape(-1, t)
            dense = np.zeros((index.shape[0], size))
            for o in range(index.shape[0]):
                np.add.at(dense[o], index[o], weight[o])
            bias = np.asarray(g.attrs[f"bias_{axis}"]) if f"bias_{axis}" in g.attrs else np.zeros(index.shape[0])
            self.register_buffer(f"matrix_{axis}", torch.tensor(dense, dtype=torch.float32))
            self.register_buffer(f"bias_{axis}", torch.tensor(bias, dtype=torch.float32))

    def forward(self, x):
        along = torch.matmul(x, self.matrix_w.t()) + self.bias_w
        return torch.matmul(self.matrix_h, along) + self.bias_h[:, None]


def _ints(g, key):
    return [int(v) for v in np.asarray(g.attrs[key]).reshape(-1)]


def _weight(g, key):
    data = np.asarray(g[key])
    if data.dtype not in (np.float32, np.float16):
        raise H5ModuleError(f"layer '{g.name.split('/')[-1]}': {key} is {data.dtype}, "
                            f"not a float model (quantized files cannot be rebuilt)")
    return torch.from_numpy(data.astype(np.float32))


def _meta(f):
    meta = {}
    for key, value in f["meta"].attrs.items():
        if key == "input_shape":
            continue
        if key == "class_names":
            value = _strs(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        meta[key] = value
    return meta


class _Builder:
    def __init__(self, f):
        self.f = f
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.nodes = {}   # layer name -> fx node

    def module(self, name, module, inputs):
        self.root.add_module(name, module)
        return self.graph.create_node("call_module", name, tuple(inputs), {}, name=name)

    def function(self, name, target, args, kwargs=None):
        return self.graph.create_node("call_function", target, tuple(args), kwargs or {}, name=name)

    def layer(self, name, g):
        op = g.attrs["op"]
        op = op.decode() if isinstance(op, bytes) else str(op)
        if "dtype" in g.attrs and str(g.attrs["dtype"]) != "float32":
            raise H5ModuleError(f"layer '{name}' has dtype {g.attrs['dtype']}: "
                                f"only float models can be rebuilt")
        ins = [self.nodes[i] for i in _strs(g.attrs["inputs"])]
        shape = _ints(g, "output_shape")
        if op == "conv2d":
            w = _weight(g, "weight")
            groups = int(g.attrs["groups"])
            m = nn.Conv2d(w.shape[1] * groups, w.shape[0], _ints(g, "kernel"), _ints(g, "stride"),
                          _ints(g, "padding"), _ints(g, "dilation"), groups, bias=True)
            m.weight.data.copy_(w)
            m.bias.data.copy_(_weight(g, "bias") if "bias" in g else torch.zeros(w.shape[0]))
            return self.module(name, m, ins)
        if op == "linear":
            w = _weight(g, "weight")
            m = nn.Linear(w.shape[1], w.shape[0], bias=True)
            m.weight.data.copy_(w)
            m.bias.data.copy_(_weight(g, "bias") if "bias" in g else torch.zeros(w.shape[0]))
            return self.module(name, m, ins)
        if op == "batchnorm":
            gamma = _weight(g, "gamma")
            m = nn.BatchNorm2d(gamma.shape[0], eps=float(g.attrs["eps"]))
            m.weight.data.copy_(gamma)
            m.bias.data.copy_(_weight(g, "beta"))
            m.running_mean.copy_(_weight(g, "running_mean"))
            m.running_var.copy_(_weight(g, "running_var"))
            return self.module(name, m, ins)
        activations = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
                       "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid}
        if op in activations:
            return self.module(name, activations[op](), ins)
        if op == "leaky_relu":
            return self.module(name, nn.LeakyReLU(float(g.attrs["negative_slope"])), ins)
        if op == "add":
            return self.function(name, operator.add, ins)
        if op == "mul":
            return self.function(name, operator.mul, ins)
        if op == "concat":
            return self.function(name, torch.cat, [list(ins), 1])
        if op == "slice":
            start, stop = int(g.attrs["start"]), int(g.attrs["stop"])
            return self.function(name, torch.narrow, [ins[0], 1, start, stop - start])
        if op == "channel_shuffle":
            return self.module(name, nn.ChannelShuffle(int(g.attrs["groups"])), ins)
        if op == "maxpool":
            return self.module(name, nn.MaxPool2d(_ints(g, "kernel"), _ints(g, "stride"), _ints(g, "padding"),
                                                  _ints(g, "dilation"), ceil_mode=bool(g.attrs["ceil_mode"])), ins)
        if op == "avgpool":
            return self.module(name, nn.AvgPool2d(_ints(g, "kernel"), _ints(g, "stride"), _ints(g, "padding"),
                                                  ceil_mode=bool(g.attrs["ceil_mode"]),
                                                  count_include_pad=bool(g.attrs["count_include_pad"])), ins)
        if op == "global_avgpool":
            if len(shape) == 2:     # [N, C]: what torch.mean over H, W gives
                return self.function(name, torch.mean, [ins[0], [2, 3]])
            return self.function(name, F.adaptive_avg_pool2d, [ins[0], 1])
        if op == "flatten":
            return self.function(name, torch.flatten, [ins[0], 1])
        if op == "upsample_nearest":
            return self.module(name, nn.Upsample(scale_factor=tuple(float(s) for s in _ints(g, "scale")),
                                                 mode="nearest"), ins)
        if op == "resize":
            in_shape = _ints(self.f["layers"][_strs(g.attrs["inputs"])[0]], "output_shape")
            return self.module(name, _Resize(g, in_shape[2], in_shape[3]), ins)
        raise H5ModuleError(f"layer '{name}': op '{op}' cannot be rebuilt as a torch module")

    def build(self):
        layers = self.f["layers"]
        order = _strs(layers.attrs["order"])
        for i, name in enumerate(order):
            g = layers[name]
            op = str(g.attrs["op"])
            if op == "input":
                if i != 0:
                    raise H5ModuleError(f"layer '{name}': the input layer must come first")
                self.nodes[name] = self.graph.create_node("placeholder", name, name=name)
            else:
                self.nodes[name] = self.layer(name, g)
            if self.nodes[name].name != name:
                raise H5ModuleError(f"layer name '{name}' is not usable as a torch.fx node name")
        self.graph.output(self.nodes[str(self.f.attrs["output"])])
        return fx.GraphModule(self.root, self.graph, "H5Module")


def build_module(path):
    """(GraphModule in eval mode, input shape, meta dict, name, source) of the
    float model file at path."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise H5ModuleError(f"cannot open {path}: {e}")
    with f:
        if f.attrs.get("format") != "splitinfer-model":
            raise H5ModuleError(f"{path} is not a splitinfer model file")
        if "requantization" in f.attrs:
            raise H5ModuleError(f"{path} is a quantized model: only float models can be rebuilt")
        try:
            gm = _Builder(f).build()
            shape = tuple(int(v) for v in f["meta"].attrs["input_shape"])
            meta = _meta(f)
        except KeyError as e:
            raise H5ModuleError(f"{path}: missing {e}")
        return gm.eval(), shape, meta, str(f.attrs["name"]), str(f.attrs["source"])
