"""PyTorch post-training int8 quantization (engine "qnnpack") and its export
to a quantized splitinfer model file (io/FORMAT.md, "Quantized models").

Why PyTorch quantizes and splitinfer only imports: PyTorch's activation
observer (HistogramObserver) is not reproduced by the engine, so the scales,
zero points and int8 weights are taken from PyTorch's converted model, and the
file holds everything the engine needs to give PyTorch's integers (0 LSB,
models/quantization.md): int8 weights, int32 biases quantized exactly as
qnnpack does at run time, every output scale and zero point, and the clamps.

Two recipes:

- eager, for a torchvision model with a quantizable twin
  (torchvision.models.quantization.NAME): PyTorch's default eager recipe of
  models/quantization.md section 1 (fuse_model, get_default_qconfig("qnnpack"),
  prepare, calibrate, convert) on the twin, loaded with the float model's
  state_dict, so it has the float export's seeded weights;
- fx, for everything else (models/zoo.py models, and a float MODEL.h5
  rebuilt by h5_module.py): prepare_fx / convert_fx with
  get_default_qconfig_mapping("qnnpack").

Calibration feeds each input of CALIB.h5 /input [K, C, H, W] as its own batch
of one, in file order.

The converted model is a torch.fx graph (convert_fx's own, or the eager model
traced with its quantized modules as leaves). Its nodes are mapped to layers
by the float exporter's converter (fx_convert.Converter) extended with the
quantized modules and ops; ops the format has no quint8 form for are refused
by name. Layers carry dtype/scale/zero_point from the value PyTorch computes
at that node. A quantized relu or relu6 (FX leaves ReLU6 as a separate op;
PyTorch computes it as an integer clamp to [zp, quantize(6)]) is folded into
the clamp of the conv/linear/add before it when that layer has no other
reader; the folded layer keeps its name and produces what the relu produced
(as with BatchNorm folding). A dequantize at the very end is dropped: the
model's output is the last quint8 layer. PyTorch 1.13.1 computes these
relu6/hardtanh ops wrongly on channels-last tensors (fix_quantized_clamps),
so the exporter makes their input contiguous in the converted model before
anything is run.

The file is written by model_file.write_model_file. Reference values
(reference.write_quantized_reference) come from running the converted model
node by node with torch.fx.Interpreter; for the eager recipe the traced
graph's output is checked equal, bit for bit, to the converted module's.
"""
import os

import h5py
import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torchvision
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

import make_calib
import quant_arith
from fx_convert import Converter, check_shapes, node_arg, target_name, trace
from model_file import ExportError, layers_by_name, one_line, write_model_file

try:   # torch >= 1.13 names; the torch.nn.* aliases are the same classes
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq
except ImportError:   # pragma: no cover
    import torch.nn.intrinsic.quantized as nniq
    import torch.nn.quantized as nnq

ENGINE = "qnnpack"
F32 = np.float32

# Ops whose quint8 output has the input's scale and zero point (io/FORMAT.md).
SAME_QPARAMS = {"maxpool", "flatten", "slice", "channel_shuffle", "upsample_nearest", "relu", "relu6"}
# Ops with a quint8 form and their own output scale and zero point.
OWN_QPARAMS = {"quantize", "conv2d", "linear", "add", "mul", "concat", "hardswish", "hardsigmoid",
               "global_avgpool"}
# Layers a following relu/relu6 may be folded into: their output is
# requantized and then clamped.
CLAMPED = {"conv2d", "linear", "add", "mul"}
# Modules of these packages are quantized kernels; the ones not handled below
# are refused by name.
_QUANTIZED_PACKAGES = ("torch.ao.nn.quantized", "torch.nn.quantized",
                       "torch.ao.nn.intrinsic.quantized", "torch.nn.intrinsic.quantized")


def _qop(target):
    """'quantized::add' for torch.ops.quantized.add, else None."""
    name = getattr(target, "_qualified_op_name", None)
    if name is None and hasattr(target, "overloadpacket"):
        name = getattr(target.overloadpacket, "_qualified_op_name", None)
    return name


def has_twin(name):
    """A torchvision classifier with a quantizable twin in torchvision.models.quantization."""
    return f"quantized_{name}" in torchvision.models.list_models(module=torchvision.models.quantization)


# --------------------------------------------------------------------------
# Calibration and the two recipes

def read_calibration(path, input_shape):
    """(float32 tensor [K, C, H, W], description) from CALIB.h5 /input."""
    try:
        with h5py.File(path, "r") as f:
            if "input" not in f:
                raise ExportError(f"calibration file {path} has no /input")
            x = np.asarray(f["input"], dtype=np.float32)
            what = f.attrs.get("source", "")
    except OSError as e:
        raise ExportError(f"cannot read calibration file {path}: {one_line(e)}")
    if x.ndim != 4 or x.shape[0] < 1 or tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise ExportError(f"calibration file {path}: /input has shape {list(x.shape)}, want "
                          f"[K, {', '.join(str(v) for v in input_shape[1:])}] for the model's input "
                          f"shape {list(input_shape)}")
    what = what.decode() if isinstance(what, bytes) else str(what)
    desc = f"{os.path.basename(path)} ({x.shape[0]} inputs{': ' + what if what else ''})"
    return torch.from_numpy(x), desc


def _calibrate(model, calib):
    with torch.no_grad():
        for i in range(calib.shape[0]):
            model(calib[i:i + 1])


def quantize_eager(name, float_model, calib):
    """models/quantization.md section 1 on torchvision.models.quantization.NAME,
    loaded with float_model's weights (a torchvision.models.NAME)."""
    from torch.ao.quantization import convert, get_default_qconfig, prepare
    torch.backends.quantized.engine = ENGINE
    twin = getattr(torchvision.models.quantization, name)(weights=None, quantize=False)
    try:
        twin.load_state_dict(float_model.state_dict())
    except RuntimeError as e:
        raise ExportError(f"the quantizable {name} does not take the float model's weights: {one_line(e)}")
    twin.eval()
    twin.fuse_model()
    twin.qconfig = get_default_qconfig(ENGINE)
    prepare(twin, inplace=True)
    _calibrate(twin, calib)
    convert(twin, inplace=True)
    return twin.eval()


def quantize_fx(model, calib):
    """prepare_fx / convert_fx with the default qnnpack qconfig mapping."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = ENGINE
    model.eval()
    try:
        prepared = prepare_fx(model, get_default_qconfig_mapping(ENGINE), example_inputs=(calib[:1],))
    except Exception as e:
        raise ExportError(f"FX quantization cannot prepare {type(model).__name__}: {one_line(e)}")
    _calibrate(prepared, calib)
    return convert_fx(prepared).eval()


def quantize_qat(model, calib, epochs, images, lr=1e-4, seed=0):
    """Quantization-aware training (prepare_qat_fx with the default qnnpack
    QAT qconfig mapping): the float model, with fake quantization of its
    weights and activations, trained `epochs` epochs on the first `images`
    Fashion-MNIST training images (models/train_fashion.py's AdamW
    one-cycle schedule, peak lr, seeded), then convert_fx. The converted
    model is exported as a post-training one is."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx
    torch.backends.quantized.engine = ENGINE
    shape = tuple(calib.shape[1:])
    model.train()
    try:
        prepared = prepare_qat_fx(model, get_default_qat_qconfig_mapping(ENGINE), example_inputs=(calib[:1],))
    except Exception as e:
        raise ExportError(f"FX quantization-aware training cannot prepare {type(model).__name__}: {one_line(e)}")
    pixels, labels = make_calib.fashion_images("train", 0, images)
    x = make_calib.fashion_preprocess(pixels, (1,) + shape)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    prepared, _ = make_calib.train_fashion.train(prepared, x, y, epochs, lr, seed, label="qat")
    prepared.eval()
    return convert_fx(prepared).eval()


_CLAMP_MODULES = (nn.Hardtanh, nnq.ReLU6)          # nn.ReLU6 is an nn.Hardtanh
_CLAMP_FUNCTIONS = {torch.nn.functional.relu6, torch.nn.functional.hardtanh, torch.nn.functional.hardtanh_,
                    torch.clamp, torch.clamp_, torch.clip, torch.clip_}
_CLAMP_METHODS = {"clamp", "clamp_", "clip", "clip_"}


def fix_quantized_clamps(gm):
    """Insert x.contiguous() before every hardtanh / relu6 / clamp node.

    Why: in PyTorch 1.13.1 with the qnnpack engine, these ops on a quint8
    tensor all run qnnpack_clamp, which ignores the input's memory format: for
    a channels-last input (what every qnnpack convolution returns) the output,
    an NCHW-contiguous tensor, gets the clamped input bytes in NHWC order, i.e.
    the activations are scrambled across channels and pixels. FX quantization
    leaves ReLU6 as such an op after each convolution, so the converted
    MobileNetV2 computes garbage. On an NCHW-contiguous input the same kernel
    is an exact integer clamp to [zp, quantize(6)] (checked on 20,000 random
    scales), which is what the exported relu6/clamp means; .contiguous() only
    changes the memory layout, so the model is otherwise PyTorch's own.
    Returns the number of nodes fixed."""
    modules = dict(gm.named_modules())
    fixed = 0
    for node in list(gm.graph.nodes):
        hit = ((node.op == "call_module" and isinstance(modules[node.target], _CLAMP_MODULES)) or
               (node.op == "call_function" and (node.target in _CLAMP_FUNCTIONS or
                                                _qop(node.target) == "quantized::relu6")) or
               (node.op == "call_method" and node.target in _CLAMP_METHODS))
        if hit and node.args and isinstance(node.args[0], fx.Node):
            with gm.graph.inserting_before(node):
                contiguous = gm.graph.call_method("contiguous", (node.args[0],))
            node.args = (contiguous,) + tuple(node.args[1:])
            fixed += 1
    if fixed:
        gm.recompile()
    return fixed


def quantize(name, model, calib, calib_desc, source, qat=None):
    """(converted module, fx GraphModule of it, source text) by the eager recipe
    when NAME has a quantizable twin and `model` is torchvision's NAME, else FX;
    qat = (epochs, images): FX quantization-aware training instead."""
    if qat is not None:
        qmodel = quantize_qat(model, calib, *qat)
        fixed = fix_quantized_clamps(qmodel)
        recipe = (f"FX quantization-aware training (prepare_qat_fx/convert_fx, "
                  f"get_default_qat_qconfig_mapping('{ENGINE}'), {qat[0]} epoch(s) on {qat[1]} Fashion-MNIST "
                  f"training images, AdamW one-cycle, peak lr 1e-4"
                  + (f"; .contiguous() before its {fixed} relu6/hardtanh, see quantize_torch.py" if fixed else "")
                  + ")")
        return qmodel, qmodel, f"{recipe} of {source}; example input from {calib_desc}"
    if has_twin(name) and type(model).__module__.startswith("torchvision.models"):
        qmodel = quantize_eager(name, model, calib)
        gm = trace(qmodel)
        if fix_quantized_clamps(gm):   # the eager twins have none (ReLU, fused); the check would fail
            raise ExportError(f"the quantized {name} has a hardtanh/relu6/clamp, which PyTorch 1.13.1 "
                              f"computes wrongly on channels-last tensors")
        recipe = (f"torchvision.models.quantization.{name} eager post-training quantization "
                  f"(fuse_model, get_default_qconfig('{ENGINE}'), prepare, convert)")
    else:
        qmodel = quantize_fx(model, calib)
        gm = qmodel
        fixed = fix_quantized_clamps(gm)
        recipe = (f"FX post-training quantization (prepare_fx/convert_fx, "
                  f"get_default_qconfig_mapping('{ENGINE}')"
                  + (f"; .contiguous() before its {fixed} relu6/hardtanh, see quantize_torch.py" if fixed else "")
                  + ")")
    return qmodel, gm, f"{recipe} of {source}; calibrated on {calib_desc}"


# --------------------------------------------------------------------------
# Graph -> layers

def _meta(node):
    meta = node.meta.get("tensor_meta")
    return meta if isinstance(meta, TensorMetadata) else None


def _is_quantized(node):
    meta = _meta(node)
    return meta is not None and meta.is_quantized


def _f32_scale(value, what):
    scale = float(value)
    if not (np.isfinite(scale) and scale > 0 and float(F32(scale)) == scale):
        raise ExportError(f"{what}: scale {scale!r} is not a positive float32 value")
    return scale


class _QuantConverter(Converter):
    """Converter for a converted (quantized) fx graph: quantized modules and
    ops become quint8 layers; float ops are converted as by the float exporter."""

    def __init__(self, gm):
        super().__init__(gm, fold_bn=False)
        self.node_of = {}          # layer name -> fx node it was made from
        self.fused_relu = set()    # conv/linear/add/mul layers with a fused ReLU
        self.final_dequantize = None

    def add(self, node, op, inputs, attrs=None, weights=None, ref=None):
        layer = super().add(node, op, inputs, attrs, weights, ref)
        self.node_of[layer.name] = node
        return layer

    # -- nodes ---------------------------------------------------------------
    def run(self):
        out = next(n for n in self.gm.graph.nodes if n.op == "output").args[0]
        if isinstance(out, fx.Node) and self.is_dequantize(out) and len(out.users) == 1 and \
                _is_quantized(out.args[0]):
            self.final_dequantize = out
        return super().run()

    def convert_output(self, node):
        out = node.args[0]
        if out is self.final_dequantize:
            out = out.args[0]
        if not isinstance(out, fx.Node) or out not in self.names:
            self.fail(node, "the model must return one tensor")
        self.output = self.names[out]

    def convert_node(self, node):
        if node.op == "get_attr":      # quantization parameters of quantize_per_tensor, add, ...
            return
        if node is self.final_dequantize:
            return
        super().convert_node(node)

    def is_dequantize(self, node):
        if node.op == "call_module":
            return isinstance(self.modules[node.target], nnq.DeQuantize)
        return node.op in ("call_method", "call_function") and node.target in ("dequantize", torch.dequantize)

    def convert_module(self, node, m):
        x = node.args[0] if node.args else None
        kind = type(m)
        if kind is nnq.Quantize:
            if m.dtype != torch.quint8:
                self.refuse_attr(node, "dtype", m.dtype)
            self.add(node, "quantize", [self.src(node, x)])
        elif kind is nnq.DeQuantize:
            self.add(node, "dequantize", [self.src(node, x)])
        elif kind in (nnq.Conv2d, nniq.ConvReLU2d):
            self.quantized_conv(node, m, relu=kind is nniq.ConvReLU2d)
        elif kind in (nnq.Linear, nniq.LinearReLU):
            self.quantized_linear(node, m, relu=kind is nniq.LinearReLU)
        elif kind is nnq.Hardswish:
            self.add(node, "hardswish", [self.src(node, x)])
        elif kind is nnq.ReLU6:
            self.add(node, "relu6", [self.src(node, x)])
        elif kind.__module__.startswith(_QUANTIZED_PACKAGES) and not isinstance(m, nn.Dropout):
            self.fail(node, f"quantized op '{target_name(node, self.modules)}' has no form in io/FORMAT.md")
        else:
            super().convert_module(node, m)

    def convert_function(self, node, key):
        x = node.args[0] if node.args else None
        qop = _qop(key)
        if key is torch.quantize_per_tensor:
            if node_arg(node, 3, "dtype") != torch.quint8:
                self.refuse_attr(node, "dtype", node_arg(node, 3, "dtype"))
            self.add(node, "quantize", [self.src(node, x)])
        elif key in ("dequantize", torch.dequantize):
            self.add(node, "dequantize", [self.src(node, x)])
        elif qop in ("quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu"):
            self.quantized_binary(node, qop)
        elif qop == "quantized::cat":
            dim = node_arg(node, 1, "dim", 0)
            if dim % len(self.shape(node)) != 1:
                self.refuse_attr(node, "dim", dim)
            self.add(node, "concat", [self.src(node, t) for t in x])
        elif qop == "quantized::hardswish":
            self.add(node, "hardswish", [self.src(node, x)])
        elif qop == "quantized::relu6":
            self.add(node, "relu6", [self.src(node, x)])
        elif qop is not None:
            self.fail(node, f"quantized op '{qop}' has no form in io/FORMAT.md")
        else:
            super().convert_function(node, key)

    def quantized_binary(self, node, qop):
        a, b = node.args[0], node.args[1]
        if not all(isinstance(t, fx.Node) and t in self.names for t in (a, b)):
            self.fail(node, f"unsupported '{qop}' with a non-tensor operand")
        op = "mul" if qop.startswith("quantized::mul") else "add"
        sa, sb, out = self.shape(a), self.shape(b), self.shape(node)
        se = lambda s: len(s) == 4 and s[2:] == (1, 1) and s[:2] == out[:2]
        if not (sa == sb or (op == "mul" and len(out) == 4 and (se(sa) or se(sb)))):
            self.fail(node, f"unsupported broadcast '{qop}' of {list(sa)} and {list(sb)}")
        self.add(node, op, [self.names[a], self.names[b]])
        if qop.endswith("_relu"):
            self.fused_relu.add(node.name)

    def quantized_weights(self, node, m):
        """int8 weight, weight_scale, weight_zero_point and the int32 bias
        qnnpack derives at run time from the float bias (models/quantization.md
        section 3.2): scale f32(w_scale * x_scale), zero point 0."""
        w = m.weight()
        oc = w.shape[0]
        qscheme = w.qscheme()
        if qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            scales = np.array([w.q_scale()], dtype=np.float64)
            zero_points = np.array([w.q_zero_point()], dtype=np.int64)
        elif qscheme in (torch.per_channel_affine, torch.per_channel_symmetric) and \
                w.q_per_channel_axis() == 0:
            scales = w.q_per_channel_scales().double().numpy()
            zero_points = w.q_per_channel_zero_points().numpy().astype(np.int64)
        else:
            self.refuse_attr(node, "weight qscheme", qscheme)
        if w.dtype != torch.qint8:
            self.refuse_attr(node, "weight dtype", w.dtype)
        for s in scales:
            _f32_scale(s, f"layer '{node.name}' weight")
        if zero_points.min() < -128 or zero_points.max() > 127:
            self.refuse_attr(node, "weight zero_point", zero_points.tolist())
        weights = {"weight": w.int_repr().numpy().astype(np.int8),
                   "weight_scale": scales.astype(F32),
                   "weight_zero_point": zero_points.astype(np.int32)}
        bias = m.bias()
        if bias is not None:
            x_scale = float(_meta(node.args[0]).qparams["scale"])
            bias_scales = (scales * np.float64(x_scale)).astype(F32)   # exact product, rounded once
            b = bias.detach().float()
            if len(scales) == 1:
                bq = torch.quantize_per_tensor(b, float(bias_scales[0]), 0, torch.qint32)
            else:
                bq = torch.quantize_per_channel(b, torch.from_numpy(bias_scales.astype(np.float64)),
                                                torch.zeros(oc, dtype=torch.long), 0, torch.qint32)
            bq = bq.int_repr().numpy().astype(np.int32)
            expected = quant_arith.quantize_bias(b.numpy(), x_scale, np.broadcast_to(scales.astype(F32), (oc,)))
            if not np.array_equal(bq, expected):
                raise ExportError(f"internal error: layer '{node.name}': torch and quant_arith "
                                  f"quantize the bias differently")
            weights["bias"] = bq
        return weights

    def quantized_conv(self, node, m, relu):
        if m.padding_mode != "zeros":
            self.refuse_attr(node, "padding_mode", m.padding_mode)
        attrs = {"kernel": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding),
                 "dilation": list(m.dilation), "groups": int(m.groups)}
        self.add(node, "conv2d", [self.src(node, node.args[0])], attrs, self.quantized_weights(node, m))
        if relu:
            self.fused_relu.add(node.name)

    def quantized_linear(self, node, m, relu):
        x = node.args[0]
        if len(self.shape(x)) != 2:
            self.fail(node, f"Linear on a {len(self.shape(x))}-D tensor is not supported")
        self.add(node, "linear", [self.src(node, x)], {}, self.quantized_weights(node, m))
        if relu:
            self.fused_relu.add(node.name)

    # -- quantization attributes ---------------------------------------------
    def annotate(self, layers):
        """dtype, scale, zero_point and clamp of every layer, checked against
        what io/FORMAT.md allows."""
        nodes = {n.name: n for n in self.gm.graph.nodes}
        by_name = layers_by_name(layers)
        for layer in layers:
            meta = _meta(nodes[layer.ref])
            where = f"layer '{layer.name}' ({layer.op})"
            ins = [by_name[i] for i in layer.inputs]
            if not meta.is_quantized:
                if layer.op == "dequantize":
                    if ins[0].attrs.get("dtype") != "quint8":
                        raise ExportError(f"{where}: input '{ins[0].name}' is not quint8")
                elif any(i.attrs.get("dtype") == "quint8" for i in ins):
                    raise ExportError(f"{where}: a float op on a quantized tensor")
                if meta.dtype != torch.float32:
                    raise ExportError(f"{where}: output dtype {meta.dtype} is not supported")
                continue
            if meta.dtype != torch.quint8 or meta.qparams["qscheme"] not in (
                    torch.per_tensor_affine, torch.per_tensor_symmetric):
                raise ExportError(f"{where}: {meta.dtype} {meta.qparams['qscheme']} activations are "
                                  f"not supported (only per-tensor quint8)")
            if layer.op not in SAME_QPARAMS | OWN_QPARAMS:
                self.fail(self.node_of[layer.name], f"'{layer.op}' of a quantized tensor has no quint8 "
                                                    f"form in io/FORMAT.md,")
            if layer.op == "quantize":
                if ins[0].attrs.get("dtype") == "quint8":
                    raise ExportError(f"{where}: input '{ins[0].name}' is already quint8")
            elif any(i.attrs.get("dtype") != "quint8" for i in ins):
                raise ExportError(f"{where}: an input is float32, all must be quint8")
            scale = _f32_scale(meta.qparams["scale"], where)
            zero_point = int(meta.qparams["zero_point"])
            if not 0 <= zero_point <= 255:
                raise ExportError(f"{where}: zero point {zero_point} outside [0, 255]")
            if layer.op in SAME_QPARAMS and (scale, zero_point) != (ins[0].attrs["scale"], ins[0].attrs["zero_point"]):
                raise ExportError(f"internal error: {where}: scale and zero point differ from its input's")
            layer.attrs.update(dtype="quint8", scale=scale, zero_point=zero_point)
            if layer.op == "relu" or layer.name in self.fused_relu:
                layer.attrs["clamp"] = [zero_point, 255]
            elif layer.op == "relu6":
                # PyTorch 1.13.1 (hardtanh / relu6 / clamp on a quint8 tensor) clamps to
                # [zp, quantize(6.0)] with quantize() as models/quantization.md section 3.1.
                six = int(quant_arith.quantize(np.float32(6.0), scale, zero_point))
                layer.attrs["clamp"] = [zero_point, six]

    def fold_relu(self, layers, output):
        """Fold each quint8 relu/relu6 into the clamp of the conv/linear/add/mul
        before it, when nothing else reads that layer: the same integers."""
        readers = {}
        for layer in layers:
            for i in layer.inputs:
                readers.setdefault(i, []).append(layer)
        by_name = layers_by_name(layers)
        kept, renamed = [], {}
        for layer in layers:
            layer.inputs = [renamed.get(i, i) for i in layer.inputs]
            producer = by_name[layer.inputs[0]] if layer.inputs else None
            if (layer.op in ("relu", "relu6") and layer.attrs.get("dtype") == "quint8"
                    and producer.op in CLAMPED and len(readers[producer.name]) == 1
                    and producer.name != output):
                lo, hi = producer.attrs.get("clamp", [0, 255])
                producer.attrs["clamp"] = [max(lo, layer.attrs["clamp"][0]), min(hi, layer.attrs["clamp"][1])]
                producer.ref = layer.ref
                renamed[layer.name] = producer.name
                continue
            kept.append(layer)
        return kept, renamed.get(output, output)


# --------------------------------------------------------------------------
# Export

def _shape_prop(gm, x):
    with torch.no_grad():
        ShapeProp(gm).propagate(x)


def export_quantized(gm, input_shape, out_path, name, source, meta, example, fold_relu=True):
    """Write the converted model `gm` (fx) as a quantized MODEL.h5; returns the
    layer map {layer: fx node whose value it holds} and the output layer."""
    input_shape = tuple(int(v) for v in input_shape)
    _shape_prop(gm, example)
    converter = _QuantConverter(gm)
    layers, output = converter.run()
    check_shapes(layers, gm)
    converter.annotate(layers)
    if fold_relu:
        layers, output = converter.fold_relu(layers, output)
    write_model_file(out_path, name, source, meta, input_shape, layers, output,
                     {"requantization": "pytorch"})
    return {layer.name: layer.ref for layer in layers if layer.op != "input"}, output


# --------------------------------------------------------------------------
# Accuracy of the quantized PyTorch model

def fashion_accuracy(qmodel, input_shape, batch=500):
    """Top-1 of the quantized PyTorch model on all 10,000 Fashion-MNIST test
    images, preprocessed as models/train_fashion.py does (make_calib.py)."""
    pixels, labels = make_calib.fashion_images("t10k", 0, 10000)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(pixels), batch):
            x = make_calib.fashion_preprocess(pixels[i:i + batch], input_shape)
            correct += int((qmodel(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(pixels)
