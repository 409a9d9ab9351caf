"""Convert a PyTorch module to splitinfer layers with torch.fx, and export a
float model file (io/FORMAT.md, version 1).

Why torch.fx: the engine needs the model as a flat graph of named layers
in a small op set. Tracing the module with torch.fx and mapping each node
generically (instead of hand-writing a graph per model) means every
torchvision classifier and every model in zoo.py is exported by the same
code, and anything outside the op set is refused by name at export time
rather than silently mis-run later. torch.fx's ShapeProp gives every node's
shape; each layer's shape is also recomputed from the exported attributes and
must agree, which catches attribute-extraction mistakes early.

    export_model(model, input_shape, out_path, name, source, meta,
                 fold_bn=True) -> layer_map
        Puts `model` in eval mode, traces it and writes MODEL.h5
        (model_file.py). input_shape: (1, C, H, W). meta: the /meta
        attributes (channel_order, pixel_scale, mean, std, resize; optional
        class_names, test_accuracy, dataset). Returns layer_map, a dict
        {layer name: fx node name whose value the layer produces} for every
        layer except the input, in topological order, for
        reference.write_reference. Raises ExportError with a one-line message.

Converter maps the nodes of a shape-propagated GraphModule to model_file.Layer
records; quantize_torch.py extends it with the quantized modules and ops.
"""
import dis
import inspect
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from model_file import ExportError, Layer, infer_layer_shape, one_line, write_model_file


# --------------------------------------------------------------------------
# Tracing

def _proxy_iter(proxy):
    """Replacement for torch.fx's Proxy.__iter__, which finds the
    UNPACK_SEQUENCE being executed at instruction index f_lasti // 2: wrong
    since Python 3.11 (inline caches), so `a, b = x.chunk(2, 1)` and
    `n, c, h, w = x.size()` fail to trace. Look it up by byte offset instead."""
    frame = inspect.currentframe().f_back
    for inst in dis.get_instructions(frame.f_code):
        if inst.offset == frame.f_lasti and inst.opname == "UNPACK_SEQUENCE":
            return (proxy[i] for i in range(inst.argval))
    return proxy.tracer.iter(proxy)


def trace(model):
    """Eval-mode fx GraphModule of `model`; deterministic, so tracing the same
    module twice gives the same node names."""
    model.eval()
    original = fx.Proxy.__iter__
    fx.Proxy.__iter__ = _proxy_iter
    try:
        graph = fx.Tracer().trace(model)
    except Exception as e:
        raise ExportError(f"cannot trace {type(model).__name__} with torch.fx: "
                          f"{one_line(e)}")
    finally:
        fx.Proxy.__iter__ = original
    return fx.GraphModule(model, graph, type(model).__name__)


# --------------------------------------------------------------------------
# Naming things in error messages

_NAMESPACES = [("torch.nn.functional", F), ("torch", torch), ("operator", operator),
               ("torchvision.ops", torchvision.ops)]


def target_name(node, modules):
    """The op of an fx node as error messages name it: torch.nn.Conv2d,
    torch.nn.functional.relu, Tensor.view, operator.add, ..."""
    if node.op == "call_module":
        cls = type(modules[node.target])
        if cls.__module__.startswith("torch.nn.modules"):
            return f"torch.nn.{cls.__name__}"
        return f"{cls.__module__}.{cls.__qualname__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        for prefix, ns in _NAMESPACES:
            for attr in sorted(dir(ns), key=lambda a: a.startswith("_")):   # add before __add__
                if getattr(ns, attr, None) is node.target:
                    return f"{prefix}.{attr}"
        return f"{getattr(node.target, '__module__', '?')}.{getattr(node.target, '__name__', node.target)}"
    return f"{node.op} {node.target}"


# --------------------------------------------------------------------------
# Op tables (fx targets -> splitinfer ops)

_ACT_MODULES = [(nn.ReLU6, "relu6"), (nn.ReLU, "relu"), (nn.SiLU, "silu"),
                (nn.Sigmoid, "sigmoid"), (nn.Hardswish, "hardswish"),
                (nn.Hardsigmoid, "hardsigmoid")]
_ACT_FUNCS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu",
              F.relu6: "relu6", torch.sigmoid: "sigmoid", torch.sigmoid_: "sigmoid",
              F.silu: "silu", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid"}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}
_LEAKY = {F.leaky_relu, F.leaky_relu_}
_HARDTANH = {F.hardtanh, F.hardtanh_}
_ADD = {operator.add, operator.iadd, torch.add, "add", "add_"}
_MUL = {operator.mul, operator.imul, torch.mul, "mul", "mul_"}
_CAT = {torch.cat, torch.concat}
_SPLIT = {torch.chunk, torch.split, "chunk", "split"}
_RESHAPE = {torch.flatten, torch.reshape, "flatten", "view", "reshape"}
_TRANSPOSE = {torch.transpose, "transpose", "permute"}
_DROPOUT_FUNCS = {F.dropout, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout}


def node_arg(node, index, name, default=None):
    """Argument `index` of an fx call node, or its keyword `name`, or default."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _pair(v):
    return [int(v), int(v)] if isinstance(v, (int, float)) else [int(x) for x in v]


def _weight_array(value):
    """What the model file stores of a weight: torch tensors as float32;
    numpy arrays (the int8, int32 and float32 datasets of quantized layers)
    keep their dtype."""
    if isinstance(value, np.ndarray):
        return value
    return value.detach().cpu().numpy().astype(np.float32)


class Converter:
    """Maps the nodes of a shape-propagated GraphModule to model_file.Layer
    records."""

    def __init__(self, gm, fold_bn):
        self.gm = gm
        self.fold_bn = fold_bn
        self.modules = dict(gm.named_modules())
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}
        self.layers = []
        self.names = {}      # fx node -> name of the layer holding its value
        self.pieces = {}     # chunk/split node -> (source layer, [(start, stop)])
        self.shuffle = {}    # node in a channel-shuffle pattern -> (stage, source layer, groups)
        self.folded = set()  # BatchNorm nodes folded into their conv
        self.output = None

    # -- helpers -----------------------------------------------------------
    def fail(self, node, what=None):
        what = what or f"unsupported op '{target_name(node, self.modules)}'"
        raise ExportError(f"{what} at node '{node.name}'")

    def refuse_attr(self, node, attr, value):
        self.fail(node, f"unsupported attribute {attr}={value!r} of "
                        f"'{target_name(node, self.modules)}'")

    @staticmethod
    def shape(node):
        return tuple(node.meta["tensor_meta"].shape)

    def src(self, node, arg):
        if not isinstance(arg, fx.Node) or arg not in self.names:
            self.fail(node, f"unsupported operand {arg!r} of '{target_name(node, self.modules)}'")
        return self.names[arg]

    def add(self, node, op, inputs, attrs=None, weights=None, ref=None):
        weights = {key: _weight_array(value) for key, value in (weights or {}).items()}
        layer = Layer(node.name, op, inputs, (ref or node).name, attrs, weights)
        self.layers.append(layer)
        self.names[node] = node.name
        return layer

    def check_inplace(self, node, inplace):
        """An in-place op changes its input for the nodes that read it later;
        the engine's graph would give those nodes the unchanged value."""
        if not inplace:
            return
        x = node.args[0]
        later = [u for u in x.users if u is not node and self.order[u] > self.order[node]]
        if later:
            self.fail(node, f"in-place '{target_name(node, self.modules)}' overwrites "
                            f"'{x.name}', which '{later[0].name}' reads later,")

    # -- conversion ----------------------------------------------------------
    def run(self):
        for node in self.gm.graph.nodes:
            if node.op == "output":
                self.convert_output(node)
            else:
                self.convert_node(node)
        return self.layers, self.output

    def convert_output(self, node):
        out = node.args[0]
        if not isinstance(out, fx.Node) or out not in self.names:
            self.fail(node, "the model must return one tensor")
        self.output = self.names[out]

    def convert_node(self, node):
        meta = node.meta.get("tensor_meta")
        if meta is None:
            return                            # size arithmetic: x.size(), shape[i], ...
        if node.op == "placeholder":
            if self.layers:
                self.fail(node, "models with more than one input are not supported")
            self.add(node, "input", [])
        elif not isinstance(meta, TensorMetadata):
            self.convert_split(node)
        elif node.op == "call_module":
            self.convert_module(node, self.modules[node.target])
        elif node.op in ("call_function", "call_method"):
            self.convert_function(node, node.target)
        else:
            self.fail(node, f"unsupported use of tensor '{node.target}' outside its module "
                            f"(e.g. F.conv2d with a module's weight)")

    def convert_module(self, node, m):
        x = node.args[0] if node.args else None
        inplace = getattr(m, "inplace", False)
        if isinstance(m, nn.Conv2d):
            self.convert_conv(node, m)
        elif isinstance(m, nn.BatchNorm2d):
            if node in self.folded:
                self.names[node] = self.names[x]
                return
            if m.running_mean is None:
                self.refuse_attr(node, "track_running_stats", False)
            c = m.num_features
            gamma = m.weight if m.affine else torch.ones(c)
            beta = m.bias if m.affine else torch.zeros(c)
            self.add(node, "batchnorm", [self.src(node, x)], {"eps": float(m.eps)},
                     {"gamma": gamma, "beta": beta, "running_mean": m.running_mean,
                      "running_var": m.running_var})
        elif any(isinstance(m, cls) for cls, _ in _ACT_MODULES):
            self.check_inplace(node, inplace)
            op = next(op for cls, op in _ACT_MODULES if isinstance(m, cls))
            self.add(node, op, [self.src(node, x)])
        elif isinstance(m, nn.Hardtanh):
            self.activation_hardtanh(node, m.min_val, m.max_val, inplace)
        elif isinstance(m, nn.LeakyReLU):
            self.check_inplace(node, inplace)
            self.add(node, "leaky_relu", [self.src(node, x)],
                     {"negative_slope": float(m.negative_slope)})
        elif isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                self.refuse_attr(node, "return_indices", True)
            self.maxpool(node, x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        elif isinstance(m, nn.AvgPool2d):
            self.avgpool(node, x, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                         m.count_include_pad, m.divisor_override)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.global_avgpool(node, x, m.output_size)
        elif isinstance(m, nn.Flatten):
            self.reshape(node, x)
        elif isinstance(m, nn.Linear):
            if len(self.shape(x)) != 2:
                self.fail(node, f"Linear on a {len(self.shape(x))}-D tensor is not supported")
            self.add(node, "linear", [self.src(node, x)], {},
                     {"weight": m.weight, **({"bias": m.bias} if m.bias is not None else {})})
        elif isinstance(m, nn.Upsample):
            self.upsample(node, x, m.mode, m.scale_factor, m.align_corners)
        elif isinstance(m, (nn.Identity, nn.modules.dropout._DropoutNd)):
            self.names[node] = self.src(node, x)
        else:
            self.fail(node)

    def convert_conv(self, node, m):
        if m.padding_mode != "zeros":
            self.refuse_attr(node, "padding_mode", m.padding_mode)
        k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        if m.padding == "valid":
            p = [0, 0]
        elif m.padding == "same":
            total = [di * (ki - 1) for ki, di in zip(k, d)]
            if any(t % 2 for t in total):
                self.refuse_attr(node, "padding", "same (asymmetric for an even kernel)")
            p = [t // 2 for t in total]
        else:
            p = _pair(m.padding)
        weight = m.weight.detach().double()
        bias = m.bias.detach().double() if m.bias is not None else None
        ref = node
        bn_node = next(iter(node.users)) if len(node.users) == 1 else None
        bn = self.modules.get(bn_node.target) if bn_node is not None and bn_node.op == "call_module" else None
        if (self.fold_bn and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None
                and bn_node.args[0] is node):
            scale = bn.running_var.double().add(bn.eps).rsqrt()
            if bn.affine:
                scale = scale * bn.weight.detach().double()
            shift = -bn.running_mean.double() * scale
            if bias is not None:
                shift = shift + bias * scale
            if bn.affine:
                shift = shift + bn.bias.detach().double()
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = shift
            self.folded.add(bn_node)
            ref = bn_node
        weights = {"weight": weight}
        if bias is not None:
            weights["bias"] = bias
        self.add(node, "conv2d", [self.src(node, node.args[0])],
                 {"kernel": k, "stride": s, "padding": p, "dilation": d, "groups": int(m.groups)},
                 weights, ref)

    def activation_hardtanh(self, node, lo, hi, inplace):
        if (lo, hi) != (0.0, 6.0):
            self.refuse_attr(node, "min_val,max_val", (lo, hi))
        self.check_inplace(node, inplace)
        self.add(node, "relu6", [self.src(node, node.args[0])])

    def maxpool(self, node, x, kernel, stride, padding, dilation, ceil_mode):
        k = _pair(kernel)
        self.add(node, "maxpool", [self.src(node, x)],
                 {"kernel": k, "stride": _pair(stride) if stride else k,
                  "padding": _pair(padding), "dilation": _pair(dilation),
                  "ceil_mode": int(bool(ceil_mode))})

    def avgpool(self, node, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
        if divisor is not None:
            self.refuse_attr(node, "divisor_override", divisor)
        k = _pair(kernel)
        self.add(node, "avgpool", [self.src(node, x)],
                 {"kernel": k, "stride": _pair(stride) if stride else k,
                  "padding": _pair(padding), "ceil_mode": int(bool(ceil_mode)),
                  "count_include_pad": int(bool(count_include_pad))})

    def global_avgpool(self, node, x, output_size):
        if output_size not in (1, (1, 1), [1, 1]):
            self.refuse_attr(node, "output_size", output_size)
        self.add(node, "global_avgpool", [self.src(node, x)])

    def upsample(self, node, x, mode, scale_factor, align_corners):
        if mode != "nearest":
            self.refuse_attr(node, "mode", mode)
        if align_corners is not None:
            self.refuse_attr(node, "align_corners", align_corners)
        (_, _, h, w), (_, _, oh, ow) = self.shape(x), self.shape(node)
        if scale_factor is not None:
            factors = [scale_factor] * 2 if isinstance(scale_factor, (int, float)) else list(scale_factor)
            if any(float(f) != int(f) for f in factors):
                self.refuse_attr(node, "scale_factor", scale_factor)
        if oh % h or ow % w:
            self.refuse_attr(node, "size", (oh, ow))
        self.add(node, "upsample_nearest", [self.src(node, x)], {"scale": [oh // h, ow // w]})

    def reshape(self, node, x):
        """view/reshape/flatten: [N, ...] -> [N, F] is `flatten`; the 4-D -> 5-D
        -> transpose(1, 2) -> 4-D sequence is one `channel_shuffle`."""
        ins, outs = self.shape(x), self.shape(node)
        if x in self.shuffle:
            stage, source, groups = self.shuffle[x]
            if stage == "transposed" and len(outs) == 4 and outs[1] == ins[1] * ins[2]:
                self.add(node, "channel_shuffle", [source], {"groups": groups})
                return
            self.fail(node, f"unsupported reshape of a 5-D tensor to {list(outs)}")
        if len(outs) == 2 and outs[0] == ins[0] and len(ins) in (2, 4):
            self.add(node, "flatten", [self.src(node, x)])
        elif len(ins) == 4 and len(outs) == 5 and outs[0] == ins[0] and \
                outs[1] * outs[2] == ins[1] and outs[3:] == ins[2:]:
            self.shuffle[node] = ("grouped", self.src(node, x), outs[1])
        else:
            self.fail(node, f"unsupported reshape from {list(ins)} to {list(outs)}")

    def transpose(self, node, key, x):
        dims = list(node.args[1:]) or list(node.kwargs.values())
        if key == "permute":
            dims = list(dims[0]) if len(dims) == 1 else dims
            swap = dims == [0, 2, 1, 3, 4]
        else:
            swap = sorted(d % 5 for d in dims) == [1, 2]
        if x in self.shuffle and self.shuffle[x][0] == "grouped" and swap:
            self.shuffle[node] = ("transposed",) + self.shuffle[x][1:]
        else:
            self.fail(node, f"unsupported '{target_name(node, self.modules)}' (only the "
                            f"channel-shuffle pattern is supported)")

    def convert_split(self, node):
        if node.op not in ("call_function", "call_method") or node.target not in _SPLIT:
            self.fail(node)
        x = node.args[0]
        dim = node_arg(node, 2, "dim", 0)   # chunk/split(tensor, chunks or sizes, dim)
        if dim % len(self.shape(x)) != 1:
            self.refuse_attr(node, "dim", dim)
        ranges, start = [], 0
        for piece in node.meta["tensor_meta"]:
            ranges.append((start, start + piece.shape[1]))
            start += piece.shape[1]
        self.pieces[node] = (self.src(node, x), ranges)

    def convert_function(self, node, key):
        x = node.args[0] if node.args else None
        if key in _ACT_FUNCS or key in _LEAKY or key in _HARDTANH or \
                (node.op == "call_method" and key in _ACT_METHODS):
            self.activation_function(node, key, x)
        elif key in _ADD or key in _MUL:
            self.binary(node, key)
        elif key in _CAT:
            tensors = node_arg(node, 0, "tensors")
            dim = node_arg(node, 1, "dim", 0)
            if dim % len(self.shape(node)) != 1:
                self.refuse_attr(node, "dim", dim)
            self.add(node, "concat", [self.src(node, t) for t in tensors])
        elif key is operator.getitem and x in self.pieces:
            source, ranges = self.pieces[x]
            start, stop = ranges[node.args[1]]
            self.add(node, "slice", [source], {"start": start, "stop": stop})
        elif key in _RESHAPE:
            self.reshape(node, x)
        elif key in _TRANSPOSE:
            self.transpose(node, key, x)
        elif key == "contiguous":
            if x in self.shuffle:
                self.shuffle[node] = self.shuffle[x]
            else:
                self.names[node] = self.src(node, x)
        elif key is F.max_pool2d:
            if node_arg(node, 6, "return_indices", False):
                self.refuse_attr(node, "return_indices", True)
            self.maxpool(node, x, node_arg(node, 1, "kernel_size"), node_arg(node, 2, "stride"),
                         node_arg(node, 3, "padding", 0), node_arg(node, 4, "dilation", 1),
                         node_arg(node, 5, "ceil_mode", False))
        elif key is F.avg_pool2d:
            self.avgpool(node, x, node_arg(node, 1, "kernel_size"), node_arg(node, 2, "stride"),
                         node_arg(node, 3, "padding", 0), node_arg(node, 4, "ceil_mode", False),
                         node_arg(node, 5, "count_include_pad", True), node_arg(node, 6, "divisor_override"))
        elif key is F.adaptive_avg_pool2d:
            self.global_avgpool(node, x, node_arg(node, 1, "output_size"))
        elif key in (torch.mean, "mean"):
            dims = node_arg(node, 1, "dim")
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            if len(self.shape(x)) != 4 or sorted(d % 4 for d in dims) != [2, 3] or \
                    node_arg(node, 3, "dtype") is not None:
                self.refuse_attr(node, "dim", dims)
            self.add(node, "global_avgpool", [self.src(node, x)])
        elif key is F.interpolate:
            self.upsample(node, x, node_arg(node, 3, "mode", "nearest"), node_arg(node, 2, "scale_factor"),
                          node_arg(node, 4, "align_corners"))
        elif key in _DROPOUT_FUNCS or key is torchvision.ops.stochastic_depth:
            training = node_arg(node, 2, "training", True) if key in _DROPOUT_FUNCS \
                else node_arg(node, 3, "training", True)
            if training:
                self.refuse_attr(node, "training", training)
            self.names[node] = self.src(node, x)
        else:
            self.fail(node)

    def activation_function(self, node, key, x):
        name = key if isinstance(key, str) else key.__name__
        inplace = name.endswith("_")
        if key in _LEAKY:        # leaky_relu(input, negative_slope=0.01, inplace=False)
            self.check_inplace(node, inplace or node_arg(node, 2, "inplace", False))
            self.add(node, "leaky_relu", [self.src(node, x)],
                     {"negative_slope": float(node_arg(node, 1, "negative_slope", 0.01))})
        elif key in _HARDTANH:   # hardtanh(input, min_val=-1, max_val=1, inplace=False)
            self.activation_hardtanh(node, float(node_arg(node, 1, "min_val", -1.0)),
                                     float(node_arg(node, 2, "max_val", 1.0)),
                                     inplace or node_arg(node, 3, "inplace", False))
        else:                    # op(input, inplace=False)
            self.check_inplace(node, inplace or node_arg(node, 1, "inplace", False))
            op = _ACT_METHODS[key] if isinstance(key, str) else _ACT_FUNCS[key]
            self.add(node, op, [self.src(node, x)])

    def binary(self, node, key):
        a, b = node_arg(node, 0, "input"), node_arg(node, 1, "other")
        if node_arg(node, 2, "alpha", 1) != 1:
            self.refuse_attr(node, "alpha", node_arg(node, 2, "alpha"))
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node) and a in self.names and b in self.names):
            self.fail(node, f"unsupported '{target_name(node, self.modules)}' with a non-tensor operand")
        self.check_inplace(node, isinstance(key, str) and key.endswith("_"))
        sa, sb, out = self.shape(a), self.shape(b), self.shape(node)
        op = "add" if key in _ADD else "mul"
        se = lambda s: len(s) == 4 and s[2:] == (1, 1) and s[:2] == out[:2]
        if not (sa == sb or (op == "mul" and len(out) == 4 and (se(sa) or se(sb)))):
            self.fail(node, f"unsupported broadcast '{target_name(node, self.modules)}' "
                            f"of {list(sa)} and {list(sb)}")
        self.add(node, op, [self.names[a], self.names[b]])


# --------------------------------------------------------------------------
# Shapes

def check_shapes(layers, gm):
    """Sets every layer's shape from its fx node and checks it against the
    shape its exported attributes give."""
    nodes = {n.name: n for n in gm.graph.nodes}
    shapes = {}
    for layer in layers:
        layer.shape = tuple(nodes[layer.ref].meta["tensor_meta"].shape)
        if layer.op != "input":
            inferred = infer_layer_shape(layer, [shapes[i] for i in layer.inputs], layer.shape)
            if inferred != layer.shape:
                raise ExportError(f"internal error: layer '{layer.name}' ({layer.op}) has shape "
                                  f"{list(layer.shape)} in PyTorch but {inferred} from its attributes")
        shapes[layer.name] = layer.shape


# --------------------------------------------------------------------------
# Float export

def export_model(model, input_shape, out_path, name, source, meta, fold_bn=True):
    """Trace `model` and write it to out_path; returns the layer map for
    reference.write_reference (see the module docstring)."""
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 4 or input_shape[0] != 1 or min(input_shape) < 1:
        raise ExportError(f"input shape must be 1,C,H,W, got {list(input_shape)}")
    gm = trace(model)
    x = torch.zeros(input_shape)
    with torch.no_grad():
        try:
            model(x)
        except Exception as e:
            raise ExportError(f"the model does not run on input {list(input_shape)}: "
                              f"{one_line(e)}")
        ShapeProp(gm).propagate(x)
    layers, output = Converter(gm, fold_bn).run()

    check_shapes(layers, gm)
    write_model_file(out_path, name, source, meta, input_shape, layers, output)
    return {layer.name: layer.ref for layer in layers if layer.op != "input"}
