"""Convert an ONNX graph to splitinfer layers and write a model file
(io/FORMAT.md, version 1), float32 or int8.

Why a converter of its own beside fx_convert.py: an ONNX file is already a
flat graph of typed nodes, so no tracing is needed, but it carries what a
tracer never sees: shape arithmetic that torch and tf2onnx emit around
Flatten and channel shuffles (Shape, Gather, Concat, Reshape chains), padding
given as separate begin and end amounts (a pool padded unequally is the
pool padded the larger amount on both sides and cropped), interpolation
defined by coordinate formulas (Resize becomes tables of taps, computed
here once), and int8 models spelled as
QuantizeLinear/DequantizeLinear pairs around float ops (QDQ) or as QLinear
ops. Each is turned into the engine's small op set or refused by name, so a
graph is either computed as ONNX defines it or not at all.

    convert(model_proto, input_shape=None, drop_final_softmax=False) -> Conversion
        .layers (model_file.Layer records, shapes set), .output (name of the
        output layer), .input_name (the ONNX graph input), .onnx_input_shape
        (the shape the graph was given), .model (the prepared ModelProto:
        input shape set, constants folded, shapes inferred) and .refs (ONNX
        tensor per layer, for references).

Steps: the graph's input gets its shape (input_shape, N = 1); constant
subgraphs are evaluated with numpy (fold_constants) and ONNX shape inference
gives every tensor's shape; then each node is mapped (Converter). A node
whose op, attribute or operand has no exact splitinfer form raises
ExportError naming the node, its op type and what is not supported.

int8: a QuantizeLinear makes a quint8 tensor, a DequantizeLinear of one is a
float view of it. A float op whose activation inputs are such views and
whose only reader (after an optional Relu or Clip(0, 6)) is a
QuantizeLinear becomes the op's quint8 form, with the QuantizeLinear's scale
and zero point and the relu as its clamp (QDQ); QLinearConv, QLinearMatMul
and com.microsoft QLinearAdd map directly. A view read by any other op is
dequantized by a `dequantize` layer. Scales must be float32 per tensor for
activations (per channel along axis 0 for weights), zero points uint8 for
activations and int8 (or uint8, shifted by 128) for weights, biases int32
at scale input scale x weight scale: the arithmetic of models/quantization.md. Two roundings differ
from ONNX Runtime's in rare elements by one LSB, the reason the int8 tests
allow 1 LSB: a `quantize` layer multiplies by the float32 reciprocal of the
scale where QuantizeLinear divides, and a quint8 add requantizes in fixed
point (qnnpack's) where ONNX Runtime's QLinearAdd uses float.

Float mappings that round differently from ONNX in the last bit: Gemm's
alpha (beta) is folded into the weights (bias), Div by a constant is a
multiplication by its reciprocal, BatchNormalization is folded into the
convolution before it.
"""
import math
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from model_file import ExportError, Layer, conv_output_size, infer_layer_shape

MIN_OPSET, MAX_OPSET = 1, 17
F32 = np.float32

# Ops evaluated at export time when every input is a constant (the shape
# arithmetic around Flatten, Reshape and channel shuffles).
FOLDABLE = {"Constant", "Identity", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice",
            "Cast", "Reshape", "ConstantOfShape", "Add", "Sub", "Mul", "Div", "Transpose", "Floor",
            "Ceil", "Sqrt", "Range", "Equal", "Where", "Expand", "Neg", "Max", "Min", "ReduceProd"}
ONNX_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
               onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32,
               onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8,
               onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.FLOAT16: np.float16}


# The attributes each op's conversion reads; any other (an attribute of a
# later opset, or a legacy one such as opset 6's broadcast) is refused, since
# it could change the result. consumed_inputs (opsets 1-5) is a memory hint.
_WINDOW = {"auto_pad", "dilations", "kernel_shape", "pads", "strides"}
ATTRIBUTES = {
    "Conv": _WINDOW | {"group"}, "QLinearConv": _WINDOW | {"group"},
    "MaxPool": _WINDOW | {"ceil_mode", "storage_order"},
    "AveragePool": _WINDOW | {"ceil_mode", "count_include_pad"},
    "BatchNormalization": {"epsilon", "momentum", "training_mode", "spatial", "is_test"},
    "Relu": set(), "Sigmoid": set(), "HardSwish": set(), "LeakyRelu": {"alpha"},
    "HardSigmoid": {"alpha", "beta"}, "Clip": {"min", "max"},
    "Add": set(), "Sub": set(), "Mul": set(), "Div": set(), "Concat": {"axis"}, "Flatten": {"axis"},
    "GlobalAveragePool": set(), "ReduceMean": {"axes", "keepdims"}, "Identity": set(),
    "Dropout": {"ratio", "seed", "is_test"}, "Reshape": {"allowzero", "shape"}, "Transpose": {"perm"},
    "Slice": {"starts", "ends", "axes"}, "Split": {"axis", "split"}, "Softmax": {"axis"},
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"}, "MatMul": set(),
    "Resize": {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
               "exclude_outside", "extrapolation_value"},
    "Upsample": {"mode", "scales"}, "Pad": {"mode", "pads", "value"},
    "QuantizeLinear": {"axis"}, "DequantizeLinear": {"axis"}, "Cast": {"to"},
    "QLinearMatMul": set(), "QLinearAdd": set(),
}

# Ops that are one splitinfer op of the same operands.
UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "HardSwish": "hardswish"}
BINARY = {"Add": "add", "Mul": "mul", "Sub": "sub", "Div": "div"}


def describe(node):
    return f"node '{node.name or node.output[0]}' ({node.op_type})"


def refuse(node, what):
    raise ExportError(f"{describe(node)}: {what}")


def attributes(node):
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif a.type == onnx.AttributeProto.TENSOR:
            value = numpy_helper.to_array(value)
        out[a.name] = value
    return out


def check_attributes(node):
    """Refuses an attribute the conversion of node's op does not read."""
    known = ATTRIBUTES.get(node.op_type, set()) | {"consumed_inputs"}
    for a in node.attribute:
        if a.name not in known:
            refuse(node, f"attribute '{a.name}' is not supported")


# --------------------------------------------------------------------------
# Preparing the graph: input shape, constant folding, shape inference

def opset_of(model):
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ExportError("the model imports no version of the default ONNX operator set")


def _tensor_shape(value_info):
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def _fold(node, ins, shapes):
    """numpy value(s) of a foldable node from its constant inputs."""
    a = attributes(node)
    op = node.op_type
    x = ins[0] if ins else None
    if op == "Constant":
        if "value" in a:
            return [a["value"]]
        for key, dtype in (("value_float", F32), ("value_int", np.int64)):
            if key in a:
                return [np.array(a[key], dtype=dtype)]
        for key, dtype in (("value_floats", F32), ("value_ints", np.int64)):
            if key in a:
                return [np.array(a[key], dtype=dtype)]
        raise ExportError(f"{describe(node)}: attribute {sorted(a)} is not supported")
    if op == "Identity":
        return [x]
    if op == "Shape":
        shape = shapes[node.input[0]]
        start, end = a.get("start", 0), a.get("end", None)
        return [np.array(shape[start:end], dtype=np.int64)]
    if op == "Size":
        return [np.array(math.prod(shapes[node.input[0]]), dtype=np.int64)]
    if op == "Gather":
        return [np.take(x, ins[1].astype(np.int64), axis=a.get("axis", 0))]
    if op == "Unsqueeze":
        axes = a["axes"] if "axes" in a else list(ins[1])
        out = x
        for axis in sorted(int(v) % (x.ndim + len(axes)) for v in axes):
            out = np.expand_dims(out, axis)
        return [out]
    if op == "Squeeze":
        axes = a.get("axes", list(ins[1]) if len(ins) > 1 else None)
        return [np.squeeze(x, axis=tuple(int(v) for v in axes) if axes is not None else None)]
    if op == "Concat":
        return [np.concatenate(ins, axis=a["axis"])]
    if op == "Slice":
        if "starts" in a:   # opset < 10
            starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
        else:
            starts, ends = ins[1], ins[2]
            axes = ins[3] if len(ins) > 3 and ins[3] is not None else None
            steps = ins[4] if len(ins) > 4 and ins[4] is not None else None
        axes = list(range(len(starts))) if axes is None else list(axes)
        steps = [1] * len(starts) if steps is None else list(steps)
        index = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            index[int(ax)] = slice(int(s), int(e), int(st))
        return [x[tuple(index)]]
    if op == "Cast":
        return [x.astype(ONNX_DTYPES[a["to"]])]
    if op == "Reshape":
        target = [int(v) for v in ins[1]]
        target = [x.shape[i] if v == 0 and not a.get("allowzero", 0) else v for i, v in enumerate(target)]
        return [x.reshape(target)]
    if op == "ConstantOfShape":
        value = a.get("value", np.zeros(1, dtype=F32))
        return [np.full([int(v) for v in x], value.reshape(-1)[0], dtype=value.dtype)]
    if op in ("Add", "Sub", "Mul", "Div", "Equal", "Max", "Min"):
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Equal": np.equal,
              "Max": np.maximum, "Min": np.minimum}.get(op)
        if op == "Div":
            out = x // ins[1] if x.dtype.kind in "iu" else np.divide(x, ins[1])
        else:
            out = ins[0]
            for other in ins[1:]:
                out = fn(out, other)
        return [np.asarray(out).astype(x.dtype) if op != "Equal" else np.asarray(out)]
    if op == "Transpose":
        return [np.transpose(x, a.get("perm"))]
    if op in ("Floor", "Ceil", "Sqrt", "Neg"):
        return [{"Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt, "Neg": np.negative}[op](x)]
    if op == "Range":
        return [np.arange(ins[0], ins[1], ins[2]).astype(ins[0].dtype)]
    if op == "Where":
        return [np.where(ins[0], ins[1], ins[2])]
    if op == "Expand":
        return [x * np.ones([int(v) for v in ins[1]], dtype=x.dtype)]
    if op == "ReduceProd":
        return [np.prod(x, axis=tuple(a["axes"]) if "axes" in a else None, keepdims=bool(a.get("keepdims", 1)))]
    raise AssertionError(op)


def prepare(model, input_shape=None):
    """(model, input name, its shape, constants, shapes): the graph's one
    input given `input_shape` (its batch must be 1), constant subgraphs
    folded into initializers, and every tensor's shape from ONNX shape
    inference."""
    opset = opset_of(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported (ONNX opsets {MIN_OPSET} to {MAX_OPSET})")
    for entry in model.opset_import:
        if entry.domain not in ("", "ai.onnx", "com.microsoft", "ai.onnx.ml"):
            raise ExportError(f"operator domain '{entry.domain}' is not supported")
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ExportError(f"the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                          f"splitinfer takes models with one input")
    value = inputs[0]
    elem = value.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8):
        raise ExportError(f"graph input '{value.name}' is {onnx.TensorProto.DataType.Name(elem)}; "
                          f"splitinfer takes a float32 (or uint8 quantized) input")
    declared = _tensor_shape(value)
    if declared is not None and input_shape is None and len(declared) not in (2, 4):
        raise ExportError(f"graph input '{value.name}' of shape {list(declared)}: splitinfer holds "
                          f"4-D N,C,H,W tensors (and 2-D N,F ones), not {len(declared)}-D")
    if input_shape is None:
        if declared is None or any(d is None for d in declared[1:]):
            raise ExportError(f"graph input '{value.name}' has no fixed shape {list(declared or [])}: "
                              f"give --input-shape")
        if declared[0] not in (None, 1):
            raise ExportError(f"graph input '{value.name}' has batch size {declared[0]}; splitinfer runs "
                              f"one image at a time: give --input-shape 1,...")
        input_shape = (1,) + tuple(declared[1:])
    input_shape = tuple(int(v) for v in input_shape)
    if declared is not None and len(declared) != len(input_shape):
        raise ExportError(f"--input-shape {list(input_shape)} has rank {len(input_shape)}, graph input "
                          f"'{value.name}' has rank {len(declared)}")
    if input_shape[0] != 1 or min(input_shape) < 1:
        raise ExportError(f"input shape must be 1,C,H,W (or 1,F), got {list(input_shape)}")
    if len(input_shape) not in (2, 4):
        raise ExportError(f"graph input '{value.name}' of shape {list(input_shape)}: splitinfer holds "
                          f"4-D N,C,H,W tensors (and 2-D N,F ones), not {len(input_shape)}-D")
    model = onnx.ModelProto.FromString(model.SerializeToString())   # a copy to edit
    graph = model.graph
    dims = next(i for i in graph.input if i.name == value.name).type.tensor_type.shape
    del dims.dim[:]
    for v in input_shape:
        dims.dim.add().dim_value = v
    # Shapes declared for other batch sizes would contradict inference: the
    # outputs keep their names and types, inference gives their shapes.
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    return _fold_and_infer(model, value.name, input_shape)


def _infer(model):
    try:
        return shape_inference.infer_shapes(model)
    except Exception as e:   # onnx raises several types
        raise ExportError(f"ONNX shape inference failed: {' '.join(str(e).split())[:300]}")


def _fold_and_infer(model, input_name, input_shape):
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    while True:
        inferred = _infer(model).graph
        shapes = {input_name: input_shape}
        for v in list(inferred.value_info) + list(inferred.output) + list(inferred.input):
            s = _tensor_shape(v)
            if s is not None and all(d is not None for d in s):
                shapes.setdefault(v.name, s)
        kept, folded = [], False
        for node in graph.node:
            known = all(not name or name in constants for name in node.input)
            if node.op_type in ("Shape", "Size"):
                known = node.input[0] in shapes
            if node.op_type in FOLDABLE and known and node.domain in ("", "ai.onnx"):
                values = _fold(node, [constants.get(n) if n else None for n in node.input], shapes)
                for name, v in zip(node.output, values):
                    constants[name] = np.asarray(v)
                folded = True
            else:
                kept.append(node)
        if not folded:
            return model, input_name, input_shape, constants, shapes
        del graph.node[:]
        graph.node.extend(kept)
        names = {t.name for t in graph.initializer}
        used = {n for node in kept for n in node.input} | {o.name for o in graph.output}
        for name, v in constants.items():
            if name not in names and name in used:
                graph.initializer.append(numpy_helper.from_array(np.asarray(v), name))
        for o in graph.output:
            if o.name in constants:
                raise ExportError(f"graph output '{o.name}' is a constant; splitinfer computes "
                                  f"outputs from the input")


# --------------------------------------------------------------------------
# Values: what an ONNX tensor is in the converted graph

class Float:
    """A float32 tensor held by a layer."""
    def __init__(self, layer):
        self.layer = layer


class Quant:
    """A uint8 tensor held by a quint8 layer, real = scale * (q - zero_point)."""
    def __init__(self, layer, scale, zero_point):
        self.layer, self.scale, self.zero_point = layer, scale, zero_point


class View:
    """DequantizeLinear of a Quant: float values not yet computed (a
    `dequantize` layer is made the first time a float op reads it)."""
    def __init__(self, quant):
        self.quant = quant


class QConst:
    """DequantizeLinear of a constant: integer values with scale(s), zero point(s), axis."""
    def __init__(self, q, scale, zero_point, axis):
        self.q, self.scale, self.zero_point, self.axis = q, scale, zero_point, axis

    def real(self):
        shape = [1] * self.q.ndim
        if self.scale.size > 1:
            shape[self.axis] = -1
        return ((self.q.astype(np.float64) - self.zero_point.astype(np.float64).reshape(shape)) *
                self.scale.astype(np.float64).reshape(shape)).astype(F32)


class Shuffle:
    """A step of the Reshape-Transpose-Reshape channel shuffle: stage
    'grouped' ([N, g, C/g, H, W]) or 'transposed' ([N, C/g, g, H, W])."""
    def __init__(self, stage, source, groups):
        self.stage, self.source, self.groups = stage, source, groups


def _scalar(node, array, what):
    array = np.asarray(array)
    if array.size != 1:
        refuse(node, f"{what} has {array.size} values; only per-tensor quantization is supported here")
    return array.reshape(-1)[0]


def _f32_scale(node, scale, what):
    value = float(scale)
    if not (math.isfinite(value) and value > 0 and float(F32(value)) == value):
        refuse(node, f"{what} {value!r} is not a positive float32")
    return value


# --------------------------------------------------------------------------
# The converter

class Conversion:
    def __init__(self, layers, output, model, input_name, onnx_input_shape, refs):
        self.layers, self.output, self.model = layers, output, model
        self.input_name, self.onnx_input_shape, self.refs = input_name, onnx_input_shape, refs


class Converter:
    def __init__(self, model, input_name, input_shape, constants, shapes, drop_final_softmax):
        self.model, self.graph = model, model.graph
        self.opset = opset_of(model)
        self.constants, self.shapes = constants, shapes
        self.input_name, self.input_shape = input_name, input_shape
        self.drop_final_softmax = drop_final_softmax
        self.values = {}           # ONNX tensor name -> Float | Quant | View | QConst | Shuffle
        self.layers, self.names = [], set()
        self.dequantized = {}      # Quant layer name -> its dequantize layer's Float
        self.done = set()          # ids of nodes consumed by a pattern
        self.readers = {}
        for node in self.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = [o.name for o in self.graph.output]
        self.pad_of = {}           # output of a folded zero Pad -> (its input, [(begin, end)] per axis)

    # -- helpers -------------------------------------------------------------
    def layer_name(self, node):
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or node.output[0]).strip("_") or "layer"
        if base[0].isdigit():
            base = "n" + base
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def shape(self, node, tensor):
        if tensor not in self.shapes:
            refuse(node, f"the shape of '{tensor}' is not known after shape inference")
        return self.shapes[tensor]

    def add(self, node, op, inputs, ref, attrs=None, weights=None, quant=None, clamp=None):
        """A layer computing ONNX tensor `ref`; quant = (scale, zero_point) for a quint8 layer."""
        shape = self.shape(node, ref)
        if len(shape) not in (2, 4) or shape[0] != 1:
            refuse(node, f"output shape {list(shape)} is not one splitinfer holds (1,C,H,W or 1,F)")
        attrs = dict(attrs or {})
        if quant is not None:
            attrs.update({"dtype": "quint8", "scale": float(quant[0]), "zero_point": int(quant[1])})
            if clamp is not None:
                attrs["clamp"] = [int(clamp[0]), int(clamp[1])]
        layer = Layer(self.layer_name(node), op, inputs, ref, attrs, weights)
        layer.shape = tuple(int(v) for v in shape)
        if op != "input":
            ins = [self.layer_by_name[i].shape for i in inputs]
            inferred = infer_layer_shape(layer, ins, layer.shape)
            if inferred != layer.shape:
                refuse(node, f"ONNX gives output shape {list(layer.shape)}, splitinfer's {op} would give "
                             f"{list(inferred) if inferred else None} for these attributes")
        self.layers.append(layer)
        self.layer_by_name[layer.name] = layer
        value = Float(layer) if quant is None else Quant(layer, float(quant[0]), int(quant[1]))
        self.values[ref] = value
        return value

    def value(self, node, name):
        if name not in self.values:
            if name in self.constants:
                refuse(node, f"constant operand '{name}' is not supported here (only an activation is)")
            refuse(node, f"operand '{name}' is not a tensor splitinfer computes")
        return self.values[name]

    def float_in(self, node, name):
        """The layer name of a float32 activation; a dequantized view gets its dequantize layer."""
        v = self.value(node, name)
        if isinstance(v, Float):
            return v.layer.name
        if isinstance(v, View):
            q = v.quant
            if q.layer.name not in self.dequantized:
                layer = Layer(q.layer.name + "_dequantize", "dequantize", [q.layer.name], name)
                layer.shape = q.layer.shape
                self.names.add(layer.name)
                self.layers.append(layer)
                self.layer_by_name[layer.name] = layer
                self.dequantized[q.layer.name] = layer.name
            return self.dequantized[q.layer.name]
        if isinstance(v, Quant):
            refuse(node, f"reads the uint8 tensor '{name}' as a float; a DequantizeLinear must come first")
        refuse(node, f"operand '{name}' is the middle of a channel shuffle")

    def const(self, node, index, what, optional=False):
        if len(node.input) <= index or not node.input[index]:
            if optional:
                return None
            refuse(node, f"{what} is missing")
        name = node.input[index]
        if name not in self.constants:
            if optional and isinstance(self.values.get(name), QConst):
                return self.values[name].real()
            refuse(node, f"{what} '{name}' must be a constant (an initializer)")
        return self.constants[name]

    def sole_reader(self, tensor, op_types):
        """The one node reading `tensor` when it is of op_types and the tensor is no graph output."""
        readers = self.readers.get(tensor, [])
        if len(readers) == 1 and readers[0].op_type in op_types and tensor not in self.outputs:
            return readers[0]
        return None

    # -- conversion ------------------------------------------------------------
    def run(self):
        self.layer_by_name = {}
        shape = self.input_shape
        input_node = onnx.helper.make_node("Input", [], [self.input_name], name="input")
        if len(shape) == 2:   # held as [1, F, 1, 1], then flattened
            self.shapes[self.input_name + "#4d"] = shape + (1, 1)
            layer = Layer("input", "input", [], self.input_name)
            layer.shape = shape + (1, 1)
            self.names.add("input")
            self.layers.append(layer)
            self.layer_by_name["input"] = layer
            self.values[self.input_name] = Float(layer)
            flat = onnx.helper.make_node("Flatten", [], [self.input_name], name="input_flatten")
            self.add(flat, "flatten", ["input"], self.input_name)
        else:
            self.add(input_node, "input", [], self.input_name)
        elem = next(i for i in self.graph.input if i.name == self.input_name).type.tensor_type.elem_type
        if elem == onnx.TensorProto.UINT8:
            self.quantize_uint8_input()
        for node in self.graph.node:
            if id(node) in self.done:
                continue
            handler = getattr(self, "op_" + node.op_type, None)
            if node.op_type in UNARY:
                handler = lambda n: self.unary(n, UNARY[n.op_type])
            elif node.op_type in BINARY:
                handler = lambda n: self.binary(n, BINARY[n.op_type])
            if handler is None or node.domain not in ("", "ai.onnx") and node.op_type != "QLinearAdd":
                refuse(node, f"op type '{node.op_type}' is not supported")
            check_attributes(node)
            handler(node)
        if len(self.outputs) != 1:
            raise ExportError(f"the graph has {len(self.outputs)} outputs; splitinfer models have one")
        out = self.outputs[0]
        v = self.values.get(out)
        if isinstance(v, View):
            v = v.quant   # the final DequantizeLinear: output_q holds the integers, /output their value
        if not isinstance(v, (Float, Quant)):
            raise ExportError(f"graph output '{out}' is not a tensor splitinfer computes")
        return v.layer.name

    def quantize_uint8_input(self):
        """A uint8 graph input: the model file's input is its float value,
        quantized again by a `quantize` layer with the scale and zero point
        its first QLinear reader gives (exact: the float is f32(q - zp) * scale)."""
        readers = self.readers.get(self.input_name, [])
        params = None
        for node in readers:
            if node.op_type in ("QLinearConv", "QLinearMatMul", "QLinearAdd", "DequantizeLinear"):
                params = (self.const(node, 1, "input scale"), self.const(node, 2, "input zero point"))
                break
        # Read only by ops that move values (MaxPool), or dequantized per
        # channel: the integers themselves (scale 1, zero point 0), exact.
        per_channel = params is not None and node.op_type == "DequantizeLinear" and np.asarray(params[0]).size > 1
        moved_only = params is None and readers and all(n.op_type == "MaxPool" for n in readers)
        if per_channel or moved_only:
            params, node = (np.float32(1), np.uint8(0)), readers[0]
        if params is None:
            raise ExportError(f"graph input '{self.input_name}' is uint8 but no QLinear or DequantizeLinear "
                              f"node gives its scale")
        scale = _f32_scale(node, _scalar(node, params[0], "input scale"), "input scale")
        zp = int(_scalar(node, params[1], "input zero point"))
        source = self.values[self.input_name].layer.name
        q = onnx.helper.make_node("QuantizeLinear", [], [self.input_name], name="input_quantize")
        self.add(q, "quantize", [source], self.input_name, quant=(scale, zp))

    # -- float ops -----------------------------------------------------------
    def pads_of(self, node, a, kernel, strides, dilations, in_hw, out_hw):
        """[(begin, end)] per spatial axis from pads or auto_pad."""
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4:
                refuse(node, f"attribute pads={pads} is not 2-D")
            return [(pads[0], pads[2]), (pads[1], pads[3])]
        if auto == "VALID":
            return [(0, 0), (0, 0)]
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            refuse(node, f"attribute auto_pad={auto} is not supported")
        result = []
        for i in range(2):
            out = -(-in_hw[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i])
            small, large = total // 2, total - total // 2
            result.append((small, large) if auto == "SAME_UPPER" else (large, small))
        return result

    def window(self, node, a, x_shape, kernel_from=None):
        kernel = list(kernel_from if kernel_from is not None else a.get("kernel_shape", []))
        if len(kernel) != 2 or len(x_shape) != 4:
            refuse(node, f"a {len(kernel)}-D window on a {len(x_shape)}-D tensor is not supported "
                         f"(splitinfer's are 2-D over N,C,H,W)")
        strides = list(a.get("strides", [1, 1]))
        dilations = list(a.get("dilations", [1, 1]))
        out_hw = self.shapes.get(node.output[0], (None,) * 4)[2:]
        pads = self.pads_of(node, a, kernel, strides, dilations, x_shape[2:], out_hw)
        return kernel, strides, dilations, pads

    def take_pad(self, node, x_name):
        """A constant-zero Pad on H, W right before `node`: (source tensor, [(begin, end)] per axis)."""
        pad = self.pad_of.get(x_name)
        if pad is None:
            return x_name, [(0, 0), (0, 0)]
        return pad

    def op_Pad(self, node):
        a = attributes(node)
        mode = a.get("mode", "constant")
        pads = a["pads"] if "pads" in a else self.const(node, 1, "pads")
        value = a.get("value", 0.0)
        if len(node.input) > 2 and node.input[2]:
            value = float(np.asarray(self.const(node, 2, "constant_value")).reshape(-1)[0])
        pads = [int(v) for v in pads]
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            refuse(node, f"attribute pads={pads} is not supported (only non-negative padding of H and W)")
        if not any(pads):
            self.values[node.output[0]] = self.value(node, node.input[0])
            return
        if mode != "constant" or value != 0.0:
            refuse(node, f"attribute mode={mode} value={value} is not supported (only zero padding "
                         f"folded into the Conv or AveragePool after it)")
        readers = self.readers.get(node.output[0], [])
        if not readers or any(r.op_type not in ("Conv", "AveragePool") for r in readers) or \
                node.output[0] in self.outputs:
            refuse(node, "zero padding is supported only when a Conv or AveragePool reads it")
        self.pad_of[node.output[0]] = (node.input[0], [(pads[2], pads[6]), (pads[3], pads[7])])

    def op_Conv(self, node):
        a = attributes(node)
        x_name, extra = self.take_pad(node, node.input[0])
        weight = self.values.get(node.input[1])
        if isinstance(weight, QConst) or isinstance(self.values.get(x_name), View):
            return self.conv_qdq(node, a, x_name, extra)
        w = np.asarray(self.const(node, 1, "weight"), dtype=np.float64)
        b = self.const(node, 2, "bias", optional=True)
        x_shape = self.shape(node, x_name)
        kernel, strides, dilations, pads = self.window(node, a, self.shape(node, node.input[0]),
                                                       w.shape[2:] if w.ndim == 4 else a.get("kernel_shape"))
        pads = [(p[0] + e[0], p[1] + e[1]) for p, e in zip(pads, extra)]
        ref = node.output[0]
        bias = np.asarray(b, dtype=np.float64) if b is not None else None
        bn = self.sole_reader(node.output[0], {"BatchNormalization"})
        if bn is not None and self.bn_foldable(bn):
            scale, shift = self.bn_params(bn)
            w = w * scale.reshape(-1, 1, 1, 1)
            bias = shift + (bias * scale if bias is not None else 0.0)
            self.done.add(id(bn))
            ref = bn.output[0]
        self.check_conv_channels(node, w.shape, x_shape, a)
        w, padding = self.symmetric_conv(node, w, pads, dilations)
        weights = {"weight": w.astype(F32)}
        if bias is not None:
            weights["bias"] = np.asarray(bias, dtype=np.float64).astype(F32)
        self.add(node, "conv2d", [self.float_in(node, x_name)], ref,
                 {"kernel": list(w.shape[2:]), "stride": strides, "padding": padding,
                  "dilation": dilations, "groups": int(a.get("group", 1))}, weights)

    def check_conv_channels(self, node, w_shape, x_shape, a):
        groups = int(a.get("group", 1))
        if len(w_shape) != 4 or w_shape[1] * groups != x_shape[1] or w_shape[0] % groups:
            refuse(node, f"weight of shape {list(w_shape)} with group {groups} does not fit an input of "
                         f"{x_shape[1]} channels")

    def symmetric_conv(self, node, w, pads, dilations):
        """splitinfer pads top=bottom and left=right. Unequal padding (begin,
        end) is the same convolution with padding max(begin, end) and the
        kernel extended by zero taps on the side padded less, when the
        difference is a multiple of the dilation: exact, zero products added."""
        padding = []
        for axis, ((begin, end), d) in enumerate(zip(pads, dilations)):
            if begin != end:
                diff = abs(begin - end)
                if diff % d:
                    refuse(node, f"attribute pads (begin {begin}, end {end}) with dilation {d}: unequal "
                                 f"padding is supported when the difference is a multiple of the dilation")
                width = [(0, 0)] * 4
                width[2 + axis] = (diff // d, 0) if begin < end else (0, diff // d)
                w = np.pad(w, width)
            padding.append(max(begin, end))
        return w, padding

    def bn_foldable(self, bn):
        a = attributes(bn)
        known = ATTRIBUTES[bn.op_type] | {"consumed_inputs"}
        return len([o for o in bn.output if o]) == 1 and not a.get("training_mode", 0) and \
            a.get("is_test", 1) and all(x.name in known for x in bn.attribute) and \
            a.get("spatial", 1) == 1 and all(n in self.constants for n in bn.input[1:5])

    def bn_params(self, bn):
        a = attributes(bn)
        gamma, beta, mean, var = (np.asarray(self.constants[n], dtype=np.float64) for n in bn.input[1:5])
        scale = gamma / np.sqrt(var + F32(a.get("epsilon", 1e-5)))
        return scale, beta - mean * scale

    def op_BatchNormalization(self, node):
        a = attributes(node)
        if a.get("training_mode", 0) or not a.get("is_test", 1) or len([o for o in node.output if o]) > 1:
            refuse(node, "attribute training_mode=1 (or its running-statistics outputs) is not supported")
        if a.get("spatial", 1) != 1:
            refuse(node, f"attribute spatial={a['spatial']} is not supported")
        params = [np.asarray(self.const(node, i, what), dtype=F32)
                  for i, what in enumerate(["", "scale", "B", "mean", "var"]) if i]
        self.add(node, "batchnorm", [self.float_in(node, node.input[0])], node.output[0],
                 {"eps": float(F32(a.get("epsilon", 1e-5)))},
                 dict(zip(["gamma", "beta", "running_mean", "running_var"], params)))

    def unary(self, node, op, attrs=None):
        x = self.value(node, node.input[0])
        if isinstance(x, View) and self.unary_qdq(node, op, attrs, x):
            return
        self.add(node, op, [self.float_in(node, node.input[0])], node.output[0], attrs)

    def op_LeakyRelu(self, node):
        a = attributes(node)
        self.unary(node, "leaky_relu", {"negative_slope": float(F32(a.get("alpha", 0.01)))})

    def op_HardSigmoid(self, node):
        a = attributes(node)
        alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
        if F32(alpha) != F32(1 / 6) or F32(beta) != F32(0.5):
            refuse(node, f"attributes alpha={alpha:g}, beta={beta:g} are not supported (splitinfer's "
                         f"hardsigmoid is alpha=1/6, beta=0.5)")
        # HardSigmoid(x) * x on the same x is hardswish (torch exports it so before opset 14)
        mul = self.sole_reader(node.output[0], {"Mul"})
        if mul is not None and sorted(mul.input) == sorted([node.input[0], node.output[0]]) and \
                isinstance(self.values.get(node.input[0]), Float):
            self.done.add(id(mul))
            self.add(node, "hardswish", [self.float_in(node, node.input[0])], mul.output[0])
            return
        self.unary(node, "hardsigmoid")

    def clip_bounds(self, node):
        a = attributes(node)
        if self.opset < 11:
            return a.get("min", -math.inf), a.get("max", math.inf)
        lo = self.const(node, 1, "min", optional=True)
        hi = self.const(node, 2, "max", optional=True)
        return (float(lo) if lo is not None else -math.inf, float(hi) if hi is not None else math.inf)

    def op_Clip(self, node):
        lo, hi = self.clip_bounds(node)
        if (lo, hi) == (0.0, 6.0):
            self.unary(node, "relu6")
        elif lo == 0.0 and hi == math.inf:
            self.unary(node, "relu")
        else:
            refuse(node, f"attributes min={lo:g}, max={hi:g} are not supported (only relu: 0, inf and "
                         f"relu6: 0, 6)")

    def op_Identity(self, node):
        self.values[node.output[0]] = self.value(node, node.input[0])

    def op_Dropout(self, node):
        a = attributes(node)
        if len(node.input) > 2 and node.input[2] and bool(np.asarray(self.const(node, 2, "training_mode"))):
            refuse(node, "training_mode=1 is not supported")
        if self.opset < 7 and not a.get("is_test", 0):
            refuse(node, "attribute is_test=0 is not supported")
        self.values[node.output[0]] = self.value(node, node.input[0])

    def binary(self, node, op):
        a_name, b_name = node.input[0], node.input[1]
        a_const, b_const = a_name in self.constants, b_name in self.constants
        if a_const and b_const:
            refuse(node, "both operands are constants")
        if a_const or b_const:
            return self.binary_const(node, op, b_name if a_const else a_name,
                                     self.constants[a_name if a_const else b_name], swapped=a_const)
        if op not in ("add", "mul"):
            refuse(node, f"{node.op_type} of two activations is not supported")
        va, vb = self.value(node, a_name), self.value(node, b_name)
        if isinstance(va, View) and isinstance(vb, View) and self.binary_qdq(node, op, va, vb):
            return
        sa, sb, out = self.shape(node, a_name), self.shape(node, b_name), self.shape(node, node.output[0])
        gate = lambda s: len(s) == 4 and s[2:] == (1, 1) and s[:2] == out[:2]
        if op == "mul" and node.input[0] != node.input[1] and sa == sb and self.silu(node):
            return
        if not (sa == sb or (op == "mul" and len(out) == 4 and (gate(sa) or gate(sb)))):
            refuse(node, f"broadcast of {list(sa)} and {list(sb)} is not supported (same shapes, or a "
                         f"[N, C, 1, 1] gate for Mul)")
        self.add(node, op, [self.float_in(node, a_name), self.float_in(node, b_name)], node.output[0])

    def silu(self, node):
        """x * Sigmoid(x) (how torch exports SiLU) is one silu layer."""
        for x, s in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            producer = self.producer.get(s)
            if producer is not None and producer.op_type == "Sigmoid" and producer.input[0] == x and \
                    self.readers.get(s) == [node] and s not in self.outputs and \
                    isinstance(self.values.get(x), Float):
                self.add(node, "silu", [self.float_in(node, x)], node.output[0])
                return True
        return False

    def binary_const(self, node, op, x_name, c, swapped):
        """An activation and a constant per channel (or a scalar): a depthwise
        1x1 conv2d (weight c and bias 0 for Mul, weight 1 and bias c for Add;
        Sub and Div by their negation and reciprocal), exact but for Div.
        A constant added to a bias-less linear (MatMul then Add) is its bias."""
        x_shape = self.shape(node, x_name)
        c = np.asarray(c, dtype=np.float64)
        channels = x_shape[1]
        if swapped and op in ("sub", "div"):
            refuse(node, "a constant minus or divided by an activation is not supported")
        # ONNX broadcasts from the last axis: one value per channel is a
        # constant of shape [C, 1, 1] (or [1, C, 1, 1]) on N,C,H,W, [C] on N,F.
        aligned = (1,) * (len(x_shape) - c.ndim) + tuple(c.shape)
        if c.ndim > len(x_shape) or (c.size > 1 and aligned != tuple(
                channels if axis == 1 else 1 for axis in range(len(x_shape)))):
            refuse(node, "a constant operand of shape %s on %s is not supported (a scalar or one value "
                         "per channel)" % (list(c.shape), list(x_shape)))
        squeezed = c.reshape(-1)
        values = np.broadcast_to(squeezed, (channels,)).astype(np.float64)
        if op == "sub":
            op, values = "add", -values
        elif op == "div":
            op, values = "mul", 1.0 / values
        x = self.values.get(x_name)
        if op == "add" and len(x_shape) == 2 and isinstance(x, Float) and x.layer.op == "linear" and \
                "bias" not in x.layer.weights and self.readers.get(x_name) == [node] and \
                x_name not in self.outputs:
            x.layer.weights["bias"] = values.astype(F32)
            x.layer.ref = node.output[0]
            self.values[node.output[0]] = x
            return
        ones = np.ones(channels)
        weight = (values if op == "mul" else ones).reshape(channels, 1, 1, 1)
        bias = values if op == "add" else np.zeros(channels)
        source = self.float_in(node, x_name)
        if len(x_shape) == 2:
            refuse(node, "a constant operand on a 2-D tensor is supported only as a linear layer's bias")
        self.add(node, "conv2d", [source], node.output[0],
                 {"kernel": [1, 1], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
                  "groups": channels}, {"weight": weight.astype(F32), "bias": bias.astype(F32)})

    def op_Concat(self, node):
        a = attributes(node)
        for name in node.input:
            if name in self.constants:
                refuse(node, f"constant operand '{name}' is not supported (only activations)")
        out = self.shape(node, node.output[0])
        if a["axis"] % len(out) != 1:
            refuse(node, f"attribute axis={a['axis']} is not supported (only the channel axis 1)")
        values = [self.value(node, n) for n in node.input]
        if values and all(isinstance(v, View) for v in values) and self.concat_qdq(node, values):
            return
        self.add(node, "concat", [self.float_in(node, n) for n in node.input], node.output[0])

    def pool(self, node, op):
        a = attributes(node)
        if len([o for o in node.output if o]) > 1:
            refuse(node, "the indices output is not supported")
        x_name, extra = self.take_pad(node, node.input[0])
        kernel, strides, dilations, pads = self.window(node, a, self.shape(node, node.input[0]))
        include = int(a.get("count_include_pad", 0))
        if any(e != (0, 0) for e in extra):
            if any(p != (0, 0) for p in pads) and not include:
                refuse(node, "a Pad before an AveragePool that pads without counting the padding "
                             "is not supported")
            pads, include = [(p[0] + e[0], p[1] + e[1]) for p, e in zip(pads, extra)], 1
        # Unequal padding (SAME_UPPER, SAME_LOWER, explicit pads): the pool
        # padded max(begin, end) on both sides, then a crop (a resize of one
        # tap per output) keeping the outputs whose windows start where the
        # unequal padding puts them.
        crop = [(p[1] - p[0]) // s if p[1] > p[0] else 0 for p, s in zip(pads, strides)]
        unequal = any(p[0] != p[1] for p in pads)
        if unequal:
            if any(p[1] > p[0] and (p[1] - p[0]) % s for p, s in zip(pads, strides)):
                refuse(node, f"unequal padding (begin, end) {pads} with strides {strides} is not supported "
                             f"(the difference must be a multiple of the stride)")
            if isinstance(self.values.get(x_name), View):
                refuse(node, f"unequal padding (begin, end) {pads} is not supported on an int8 pool")
            pads = [(max(p), max(p)) for p in pads]
        attrs = {"kernel": kernel, "stride": strides, "padding": [p[0] for p in pads],
                 "ceil_mode": int(a.get("ceil_mode", 0))}
        if op == "maxpool":
            attrs["dilation"] = dilations
        else:
            if dilations != [1, 1]:
                refuse(node, f"attribute dilations={dilations} is not supported")
            attrs["count_include_pad"] = include
        if any(p[0] >= k if d == 1 else 2 * p[0] > k for p, k, d in zip(pads, kernel, dilations)):
            refuse(node, f"padding {[p[0] for p in pads]} is not supported with kernel {kernel} and dilations "
                         f"{dilations} (smaller than the kernel; at most half of it when dilated)")
        x = self.values.get(x_name)
        if isinstance(x, View) and self.pool_qdq(node, op, attrs, x):
            return
        if isinstance(x, Quant) and op == "maxpool" and not unequal:  # the maximum of the integers
            self.add(node, op, [x.layer.name], node.output[0], attrs, quant=(x.scale, x.zero_point))
            return
        if not unequal:
            self.add(node, op, [self.float_in(node, x_name)], node.output[0], attrs)
            return
        # The symmetric pool's output, then the crop.
        x_shape, out_shape = self.shape(node, x_name), self.shape(node, node.output[0])
        padded = f"{node.output[0]}/padded"
        size = [conv_output_size(x_shape[2 + i], kernel[i], strides[i], pads[i][0], dilations[i],
                                 attrs["ceil_mode"]) for i in range(2)]
        if any(c + o > n for c, o, n in zip(crop, out_shape[2:], size)):
            refuse(node, f"unequal padding with ceil_mode={attrs['ceil_mode']} is not supported here")
        self.shapes[padded] = tuple(x_shape[:2]) + tuple(size)
        source = self.add(node, op, [self.float_in(node, x_name)], padded, attrs).layer.name
        taps = {"taps": [1, 1]}
        for axis, c, n in (("h", crop[0], out_shape[2]), ("w", crop[1], out_shape[3])):
            taps[f"index_{axis}"] = list(range(c, c + n))
            taps[f"weight_{axis}"] = [1.0] * n
        self.add(node, "resize", [source], node.output[0], taps)

    def op_MaxPool(self, node):
        self.pool(node, "maxpool")

    def op_AveragePool(self, node):
        self.pool(node, "avgpool")

    def op_GlobalAveragePool(self, node):
        if len(self.shape(node, node.input[0])) != 4:
            refuse(node, f"input shape {list(self.shape(node, node.input[0]))} is not 4-D")
        x = self.values.get(node.input[0])
        if isinstance(x, View) and self.pool_qdq(node, "global_avgpool", {}, x):
            return
        self.add(node, "global_avgpool", [self.float_in(node, node.input[0])], node.output[0])

    def op_ReduceMean(self, node):
        a = attributes(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = list(self.const(node, 1, "axes"))
        x_shape = self.shape(node, node.input[0])
        if len(x_shape) != 4 or sorted(int(v) % 4 for v in (axes or [])) != [2, 3]:
            refuse(node, f"attribute axes={axes} is not supported (only the mean over H and W)")
        self.add(node, "global_avgpool", [self.float_in(node, node.input[0])], node.output[0])

    def op_Flatten(self, node):
        a = attributes(node)
        x_shape = self.shape(node, node.input[0])
        axis = a.get("axis", 1)
        if axis % max(len(x_shape), 1) != 1 and not (axis == len(x_shape) == 1):
            # At another axis the values keep their order, as in [1, C*H*W]:
            # fine for the graph's output, which nothing reads after.
            out = node.output[0]
            if len(x_shape) != 4 or x_shape[0] != 1 or out not in self.outputs or self.readers.get(out):
                refuse(node, f"attribute axis={axis} is not supported (only axis 1: [N, C*H*W]; another "
                             f"axis only on the graph's output)")
            self.shapes[out] = (1, int(np.prod(x_shape[1:])))
        self.flatten(node, node.input[0])

    def flatten(self, node, x_name):
        x = self.values.get(x_name)
        if isinstance(x, View) and self.same_qparams_qdq(node, "flatten", {}, x):
            return
        if isinstance(x, Quant):
            self.add(node, "flatten", [x.layer.name], node.output[0], quant=(x.scale, x.zero_point))
            return
        self.add(node, "flatten", [self.float_in(node, x_name)], node.output[0])

    def op_Reshape(self, node):
        ins = self.shape(node, node.input[0])
        outs = self.shape(node, node.output[0])
        x = self.values.get(node.input[0])
        if isinstance(x, Shuffle):
            if x.stage == "transposed" and len(outs) == 4 and outs[1] == ins[1] * ins[2]:
                self.add(node, "channel_shuffle", [x.source], node.output[0], {"groups": x.groups})
                return
            refuse(node, f"reshape of a 5-D tensor to {list(outs)} is not supported")
        if tuple(outs) == tuple(ins):
            self.values[node.output[0]] = self.value(node, node.input[0])
        elif len(outs) == 2 and outs[0] == ins[0] and len(ins) in (2, 4):
            self.flatten(node, node.input[0])
        elif len(ins) == 4 and len(outs) == 5 and outs[0] == ins[0] and outs[1] * outs[2] == ins[1] \
                and tuple(outs[3:]) == tuple(ins[2:]):
            self.values[node.output[0]] = Shuffle("grouped", self.float_in(node, node.input[0]), outs[1])
        else:
            refuse(node, f"reshape from {list(ins)} to {list(outs)} is not supported (only to [N, F], "
                         f"and the channel shuffle)")

    def op_Transpose(self, node):
        perm = list(attributes(node).get("perm", []))
        x = self.values.get(node.input[0])
        if isinstance(x, Shuffle) and x.stage == "grouped" and perm == [0, 2, 1, 3, 4]:
            self.values[node.output[0]] = Shuffle("transposed", x.source, x.groups)
            return
        refuse(node, f"attribute perm={perm} is not supported (only the channel shuffle's "
                     f"Reshape-Transpose-Reshape)")

    def op_Slice(self, node):
        x_shape = self.shape(node, node.input[0])
        a = attributes(node)
        if "starts" in a:
            starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
        else:
            starts, ends = self.const(node, 1, "starts"), self.const(node, 2, "ends")
            axes = self.const(node, 3, "axes", optional=True)
            steps = self.const(node, 4, "steps", optional=True)
        axes = list(range(len(starts))) if axes is None else [int(v) % len(x_shape) for v in axes]
        steps = [1] * len(starts) if steps is None else list(steps)
        if axes != [1] or int(steps[0]) != 1 or len(x_shape) != 4:
            refuse(node, f"slicing axes {axes} with steps {[int(s) for s in steps]} is not supported "
                         f"(only a channel range)")
        start, stop, _ = slice(int(starts[0]), int(ends[0])).indices(x_shape[1])
        x = self.values.get(node.input[0])
        if isinstance(x, Quant):
            self.add(node, "slice", [x.layer.name], node.output[0], {"start": start, "stop": stop},
                     quant=(x.scale, x.zero_point))
            return
        self.add(node, "slice", [self.float_in(node, node.input[0])], node.output[0],
                 {"start": start, "stop": stop})

    def op_Split(self, node):
        a = attributes(node)
        x_shape = self.shape(node, node.input[0])
        if a.get("axis", 0) % len(x_shape) != 1 or len(x_shape) != 4:
            refuse(node, f"attribute axis={a.get('axis', 0)} is not supported (only channels)")
        start = 0
        source = self.float_in(node, node.input[0])
        for out in node.output:
            size = self.shape(node, out)[1]
            self.add(node, "slice", [source], out, {"start": start, "stop": start + size})
            start += size

    def gemm_weights(self, node, a, b, c):
        """linear weight [OUT, IN] and bias from Gemm's B, C and attributes."""
        if a.get("transA", 0):
            refuse(node, "attribute transA=1 is not supported (the input's rows are the batch)")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        w = np.asarray(b, dtype=np.float64)
        if w.ndim != 2:
            refuse(node, f"a weight of shape {list(w.shape)} is not supported (2-D only)")
        w = w if a.get("transB", 0) else w.T
        if alpha != 1.0:
            w = w * F32(alpha)
        bias = None
        if c is not None:
            c = np.asarray(c, dtype=np.float64)
            if c.ndim == 2 and c.shape[0] != 1:
                refuse(node, f"a bias C of shape {list(c.shape)} varies over the batch rows; only a "
                             f"bias per output is supported")
            bias = np.broadcast_to(c.reshape(-1), (w.shape[0],)) * (F32(beta) if beta != 1.0 else 1.0)
        return w, bias

    def op_Gemm(self, node):
        a = attributes(node)
        if isinstance(self.values.get(node.input[1]), QConst) or \
                isinstance(self.values.get(node.input[0]), View):
            return self.linear_qdq(node, a)
        x_shape = self.shape(node, node.input[0])
        if len(x_shape) != 2:
            refuse(node, f"input of shape {list(x_shape)} is not 2-D")
        w, bias = self.gemm_weights(node, a, self.const(node, 1, "B"), self.const(node, 2, "C", optional=True))
        weights = {"weight": w.astype(F32)}
        if bias is not None:
            weights["bias"] = bias.astype(F32)
        self.add(node, "linear", [self.float_in(node, node.input[0])], node.output[0], {}, weights)

    def op_MatMul(self, node):
        x_shape = self.shape(node, node.input[0])
        if isinstance(self.values.get(node.input[1]), QConst) or \
                isinstance(self.values.get(node.input[0]), View):
            return self.linear_qdq(node, {"transB": 0})
        if len(x_shape) != 2:
            refuse(node, f"input of shape {list(x_shape)} is not supported (a 2-D [N, K] input times a "
                         f"constant [K, M] only)")
        w, _ = self.gemm_weights(node, {}, self.const(node, 1, "B"), None)
        self.add(node, "linear", [self.float_in(node, node.input[0])], node.output[0], {},
                 {"weight": w.astype(F32)})

    def op_Softmax(self, node):
        if not self.drop_final_softmax or node.output[0] not in self.outputs or \
                self.readers.get(node.output[0]):
            refuse(node, "splitinfer has no softmax op (export_onnx.py --drop-final-softmax exports the "
                         "logits of a final Softmax instead; top-1 is unchanged)")
        self.values[node.output[0]] = self.value(node, node.input[0])
        self.outputs = [node.input[0] if o == node.output[0] else o for o in self.outputs]

    # -- Resize / Upsample -------------------------------------------
    def op_Upsample(self, node):
        a = attributes(node)
        scales = a["scales"] if "scales" in a else self.const(node, 1, "scales")
        self.resize(node, a.get("mode", "nearest"), list(scales), None, "asymmetric", "floor")

    def op_Resize(self, node):
        a = attributes(node)
        roi = None
        if self.opset < 11:
            scales, sizes, transform, nearest = self.const(node, 1, "scales"), None, "asymmetric", "floor"
        else:
            scales = self.const(node, 2, "scales", optional=True)
            sizes = self.const(node, 3, "sizes", optional=True)
            transform = a.get("coordinate_transformation_mode", "half_pixel")
            nearest = a.get("nearest_mode", "round_prefer_floor")
            if transform == "tf_crop_and_resize":
                roi = np.asarray(self.const(node, 1, "roi"), dtype=np.float64)
        if scales is not None and np.asarray(scales).size == 0:
            scales = None
        self.resize(node, a.get("mode", "nearest"), None if scales is None else list(scales), sizes,
                    transform, nearest, float(a.get("cubic_coeff_a", -0.75)), int(a.get("exclude_outside", 0)),
                    roi, float(a.get("extrapolation_value", 0.0)))

    def resize(self, node, mode, scales, sizes, transform, nearest, cubic_a=-0.75, exclude_outside=0,
               roi=None, extrapolation=0.0):
        if mode not in ("nearest", "linear", "cubic"):
            refuse(node, f"attribute mode={mode} is not supported (nearest, linear, cubic)")
        x_shape = self.shape(node, node.input[0])
        out_shape = self.shape(node, node.output[0])
        if len(x_shape) != 4 or tuple(out_shape[:2]) != tuple(x_shape[:2]):
            refuse(node, f"resizing {list(x_shape)} to {list(out_shape)} is not supported (only H and W)")
        if roi is not None and (roi.size != 8 or list(roi[[0, 1, 4, 5]]) != [0, 0, 1, 1]):
            refuse(node, f"a roi {list(roi)} that crops N or C is not supported (only H and W)")
        if scales is None:
            scales = [o / i for o, i in zip(out_shape, x_shape)]
        x = self.values.get(node.input[0])
        if mode == "nearest" and transform != "tf_crop_and_resize":
            factors, strides = [], []
            for axis in (2, 3):
                index = _resize_taps(node, x_shape[axis], out_shape[axis], float(F32(scales[axis])), mode,
                                     transform, nearest, cubic_a, exclude_outside, None, extrapolation)[1]
                size_in, size_out = x_shape[axis], out_shape[axis]
                f = size_out // size_in
                s = index[1] - index[0] if size_out > 1 else size_in
                if size_out % size_in == 0 and list(index) == [i // f for i in range(size_out)]:
                    factors.append(f)
                    strides.append(1)
                elif s >= 1 and list(index) == [i * s for i in range(size_out)] and -(-size_in // s) == size_out:
                    factors.append(1)
                    strides.append(s)
                else:
                    break
            else:
                if factors == [1, 1] and strides == [1, 1]:
                    self.values[node.output[0]] = self.value(node, node.input[0])
                    return
                if factors == [1, 1] or strides == [1, 1]:
                    if strides != [1, 1]:  # nearest subsampling picks every s-th element: a 1x1 max pool of stride s
                        attrs = {"kernel": [1, 1], "stride": strides, "padding": [0, 0], "dilation": [1, 1],
                                 "ceil_mode": 0}
                        op = "maxpool"
                    else:
                        attrs, op = {"scale": factors}, "upsample_nearest"
                    if isinstance(x, View) and self.same_qparams_qdq(node, op, attrs, x):
                        return
                    self.add(node, op, [self.float_in(node, node.input[0])], node.output[0], attrs)
                    return
        # Any other index map or interpolation: tables of taps per axis.
        attrs = {}
        for axis, name in ((2, "h"), (3, "w")):
            axis_roi = None if roi is None else (roi[axis], roi[axis + 4])
            taps, index, weight, bias = _resize_taps(
                node, x_shape[axis], out_shape[axis], float(F32(scales[axis])), mode, transform, nearest,
                cubic_a, exclude_outside, axis_roi, extrapolation)
            attrs[f"index_{name}"] = index
            attrs[f"weight_{name}"] = weight
            if any(bias):
                attrs[f"bias_{name}"] = bias
            attrs.setdefault("taps", []).append(taps)
        self.add(node, "resize", [self.float_in(node, node.input[0])], node.output[0], attrs)

    # -- int8: QDQ -----------------------------------------------------------
    def qparams(self, node, scale_index, zp_index, what):
        scale = np.asarray(self.const(node, scale_index, f"{what} scale"), dtype=np.float64)
        zp = self.const(node, zp_index, f"{what} zero point", optional=True)
        zp = np.zeros(scale.shape, dtype=np.uint8) if zp is None else np.asarray(zp)
        return scale, zp

    def op_QuantizeLinear(self, node):
        scale, zp = self.qparams(node, 1, 2, "output")
        if zp.dtype != np.uint8:
            refuse(node, f"zero point of type {zp.dtype} is not supported (splitinfer's activations are uint8)")
        s = _f32_scale(node, _scalar(node, scale, "scale"), "scale")
        z = int(_scalar(node, zp, "zero point"))
        x = self.values.get(node.input[0])
        if isinstance(x, View) and x.quant.scale == s and x.quant.zero_point == z:
            self.values[node.output[0]] = x.quant   # DQ then Q with the same parameters
            return
        self.add(node, "quantize", [self.float_in(node, node.input[0])], node.output[0], quant=(s, z))

    def op_DequantizeLinear(self, node):
        a = attributes(node)
        scale, zp = self.qparams(node, 1, 2, "input")
        if node.input[0] in self.constants:
            q = np.asarray(self.constants[node.input[0]])
            axis = int(a.get("axis", 1)) % max(q.ndim, 1)
            self.values[node.output[0]] = QConst(q, scale.reshape(-1), zp.reshape(-1), axis)
            return
        x = self.value(node, node.input[0])
        if not isinstance(x, Quant):
            refuse(node, f"input '{node.input[0]}' is not a uint8 tensor from a QuantizeLinear")
        if scale.size > 1 and (x.scale, x.zero_point) == (1.0, 0):
            self.dequantize_per_channel(node, a, x, scale, zp)
            return
        s = _f32_scale(node, _scalar(node, scale, "scale"), "scale")
        z = int(_scalar(node, zp, "zero point"))
        if (s, z) != (x.scale, x.zero_point):
            refuse(node, f"scale {s!r} and zero point {z} differ from those its input was quantized with "
                         f"({x.scale!r}, {x.zero_point})")
        self.values[node.output[0]] = View(x)

    def dequantize_per_channel(self, node, a, x, scale, zp):
        """DequantizeLinear along the channel axis of integers (a uint8 input
        taken as scale 1, zero point 0): (q - zp_c), exact, then times s_c,
        one rounding as ONNX's (q - zp) * s."""
        shape = self.shape(node, node.input[0])
        channels = shape[1] if len(shape) == 4 else 0
        if len(shape) != 4 or int(a.get("axis", 1)) % 4 != 1 or scale.size != channels or \
                zp.size not in (1, channels):
            refuse(node, f"input scale has {scale.size} values; only per-tensor quantization, or one scale "
                         f"per channel of a 4-D input, is supported here")
        zp = np.broadcast_to(zp.reshape(-1), (channels,)).astype(np.float64)
        window = {"kernel": [1, 1], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
                  "groups": channels}
        ones = np.ones((channels, 1, 1, 1), dtype=F32)
        integers, centred = f"{node.input[0]}/integers", f"{node.output[0]}/centred"
        self.values[integers] = View(x)   # the integers as floats (scale 1, zero point 0)
        self.shapes[centred] = tuple(shape)
        source = self.add(node, "conv2d", [self.float_in(node, integers)], centred, window,
                          {"weight": ones, "bias": (-zp).astype(F32)}).layer.name
        self.add(node, "conv2d", [source], node.output[0], window,
                 {"weight": scale.reshape(channels, 1, 1, 1).astype(F32),
                  "bias": np.zeros(channels, dtype=F32)})

    def op_Cast(self, node):
        to = attributes(node)["to"]
        x = self.values.get(node.input[0])
        if isinstance(x, Quant) and to == onnx.TensorProto.UINT8 or \
                isinstance(x, Float) and to == onnx.TensorProto.FLOAT:
            self.values[node.output[0]] = x
            return
        refuse(node, f"attribute to={onnx.TensorProto.DataType.Name(to)} is not supported on this tensor")

    def requantized_by(self, node, allow_relu=True):
        """The QuantizeLinear that reads node's output (through a Relu or
        Clip(0, 6) when allow_relu): (Q node, nodes consumed, relu op or None)."""
        tensor, consumed, relu = node.output[0], [], None
        nxt = self.sole_reader(tensor, {"Relu", "Clip", "QuantizeLinear"})
        if allow_relu and nxt is not None and nxt.op_type in ("Relu", "Clip"):
            if nxt.op_type == "Clip":
                lo, hi = self.clip_bounds(nxt)
                if (lo, hi) not in ((0.0, 6.0), (0.0, math.inf)):
                    return None
                relu = "relu6" if hi == 6.0 else "relu"
            else:
                relu = "relu"
            consumed.append(nxt)
            nxt = self.sole_reader(nxt.output[0], {"QuantizeLinear"})
        if nxt is None or nxt.op_type != "QuantizeLinear":
            return None
        scale, zp = self.qparams(nxt, 1, 2, "output")
        if zp.dtype != np.uint8:
            refuse(nxt, f"zero point of type {zp.dtype} is not supported (splitinfer's activations are uint8)")
        s = _f32_scale(nxt, _scalar(nxt, scale, "scale"), "scale")
        z = int(_scalar(nxt, zp, "zero point"))
        consumed.append(nxt)
        return nxt, consumed, relu, (s, z)

    def clamp_for(self, relu, scale, zp):
        if relu is None:
            return None
        if relu == "relu":
            return (zp, 255)
        six = zp + int(np.rint(F32(6.0) * (F32(1.0) / F32(scale))))   # models/quantization.md q(6)
        return (zp, min(max(six, 0), 255))

    def finish_qdq(self, node, op, inputs, attrs, weights, found):
        q, consumed, relu, (scale, zp) = found
        for n in consumed:
            self.done.add(id(n))
        self.add(node, op, inputs, q.output[0], attrs, weights, quant=(scale, zp),
                 clamp=self.clamp_for(relu, scale, zp))

    def int8_weights(self, node, wq, out_channels):
        """int8 weight, float32 scale [1] or [OC], int32 zero point from a DequantizeLinear'd constant."""
        q = np.asarray(wq.q)
        zp = np.asarray(wq.zero_point).astype(np.int64)
        if q.dtype == np.uint8:   # (q - zp) is the same with both shifted by 128
            q, zp = (q.astype(np.int16) - 128).astype(np.int8), zp - 128
        if q.dtype != np.int8:
            refuse(node, f"weight of type {q.dtype} is not supported (int8 or uint8)")
        if wq.scale.size > 1 and (wq.axis != 0 or wq.scale.size != out_channels):
            refuse(node, f"weight quantized along axis {wq.axis} is not supported (per output channel: axis 0)")
        if zp.size not in (1, wq.scale.size) or zp.min() < -128 or zp.max() > 127:
            refuse(node, f"weight zero point {zp.reshape(-1)[:4]} is not supported")
        for s in wq.scale:
            _f32_scale(node, s, "weight scale")
        n = wq.scale.size
        return {"weight": q, "weight_scale": wq.scale.astype(F32).reshape(n),
                "weight_zero_point": np.broadcast_to(zp.reshape(-1), (n,)).astype(np.int32).copy()}

    def int32_bias(self, node, bias_value, x_scale, w_scale, out_channels):
        """int32 bias at scale f32(w_scale * x_scale) (models/quantization.md 3.2)."""
        expected = (F32(w_scale) * F32(x_scale)).astype(F32)
        expected = np.broadcast_to(expected.reshape(-1), (out_channels,))
        if isinstance(bias_value, QConst):
            q = np.asarray(bias_value.q)
            scale = np.broadcast_to(bias_value.scale.astype(F32), (out_channels,))
            if q.dtype != np.int32 or np.any(bias_value.zero_point != 0) or \
                    np.any(np.abs(scale.astype(np.float64) - expected) > 1e-6 * expected):
                refuse(node, "bias quantized otherwise than int32 at input scale x weight scale, zero point 0")
            return q.reshape(out_channels).astype(np.int32)
        bias = np.asarray(bias_value, dtype=F32).reshape(out_channels)
        q = np.rint(bias * (F32(1.0) / expected.astype(F32)))
        return np.clip(q, -2**31, 2**31 - 1).astype(np.int32)

    def conv_qdq(self, node, a, x_name, extra):
        x = self.values.get(x_name)
        wq = self.values.get(node.input[1])
        if not isinstance(x, View) or not isinstance(wq, QConst):
            refuse(node, "mixes quantized and float operands (int8 convolutions need a dequantized "
                         "uint8 input and a dequantized int8 weight)")
        found = self.requantized_by(node)
        if found is None:
            refuse(node, "a quantized convolution must be read by a QuantizeLinear (after an optional Relu)")
        if any(e != (0, 0) for e in extra):
            refuse(node, "a Pad before an int8 convolution is not supported")
        out_channels = wq.q.shape[0]
        self.check_conv_channels(node, wq.q.shape, self.shape(node, x_name), a)
        weights = self.int8_weights(node, wq, out_channels)
        kernel, strides, dilations, pads = self.window(node, a, self.shape(node, x_name), wq.q.shape[2:])
        if any(p[0] != p[1] for p in pads):
            refuse(node, f"unequal padding {pads} is not supported on an int8 convolution")
        if len(node.input) > 2 and node.input[2]:
            b = self.values.get(node.input[2], self.constants.get(node.input[2]))
            weights["bias"] = self.int32_bias(node, b, x.quant.scale, weights["weight_scale"], out_channels)
        self.finish_qdq(node, "conv2d", [x.quant.layer.name],
                        {"kernel": list(kernel), "stride": strides, "padding": [p[0] for p in pads],
                         "dilation": dilations, "groups": int(a.get("group", 1))}, weights, found)

    def linear_qdq(self, node, a):
        x = self.values.get(node.input[0])
        wq = self.values.get(node.input[1])
        if not isinstance(x, View) or not isinstance(wq, QConst):
            refuse(node, "mixes quantized and float operands")
        if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            refuse(node, "attributes transA, alpha, beta other than 0, 1, 1 are not supported on int8")
        found = self.requantized_by(node)
        if found is None:
            refuse(node, "a quantized Gemm/MatMul must be read by a QuantizeLinear")
        if len(self.shape(node, node.input[0])) != 2:
            refuse(node, "input is not 2-D")
        q = wq.q if a.get("transB", 0) else wq.q.T
        axis = wq.axis if a.get("transB", 0) else 1 - wq.axis
        weights = self.int8_weights(node, QConst(np.ascontiguousarray(q), wq.scale, wq.zero_point, axis),
                                    q.shape[0])
        if len(node.input) > 2 and node.input[2]:
            b = self.values.get(node.input[2], self.constants.get(node.input[2]))
            weights["bias"] = self.int32_bias(node, b, x.quant.scale, weights["weight_scale"], q.shape[0])
        self.finish_qdq(node, "linear", [x.quant.layer.name], {}, weights, found)

    def binary_qdq(self, node, op, va, vb):
        found = self.requantized_by(node)
        if found is None or va.quant.layer.shape != vb.quant.layer.shape:
            return False
        self.finish_qdq(node, op, [va.quant.layer.name, vb.quant.layer.name], {}, None, found)
        return True

    def concat_qdq(self, node, values):
        found = self.requantized_by(node, allow_relu=False)
        if found is None:
            return False
        self.finish_qdq(node, "concat", [v.quant.layer.name for v in values], {}, None, found)
        return True

    def pool_qdq(self, node, op, attrs, x):
        if op == "maxpool":
            return self.same_qparams_qdq(node, op, attrs, x)
        if op == "avgpool":
            return False
        found = self.requantized_by(node, allow_relu=False)
        if found is None:
            return False
        self.finish_qdq(node, op, [x.quant.layer.name], attrs, None, found)
        return True

    def same_qparams_qdq(self, node, op, attrs, x):
        """An op that moves values (max pool, flatten, upsample): quint8 when
        requantized with its input's scale and zero point."""
        found = self.requantized_by(node, allow_relu=False)
        if found is None or found[3] != (x.quant.scale, x.quant.zero_point):
            return False
        self.finish_qdq(node, op, [x.quant.layer.name], attrs, None, found)
        return True

    def unary_qdq(self, node, op, attrs, x):
        if op in ("relu", "relu6"):
            found = self.requantized_by(node, allow_relu=False)
            if found is None or found[3] != (x.quant.scale, x.quant.zero_point):
                return False
            s, z = found[3]
            q, consumed, _, _ = found
            for n in consumed:
                self.done.add(id(n))
            self.add(node, op, [x.quant.layer.name], q.output[0], quant=(s, z),
                     clamp=self.clamp_for(op, s, z))
            return True
        if op in ("hardswish", "hardsigmoid"):
            found = self.requantized_by(node, allow_relu=False)
            if found is None:
                return False
            self.finish_qdq(node, op, [x.quant.layer.name], attrs, None, found)
            return True
        return False

    # -- int8: QLinear ops -----------------------------------------------------
    def qlinear_in(self, node, index):
        """(Quant, scale, zp) of QLinear input `index` (scale and zero point follow it)."""
        x = self.value(node, node.input[index])
        if not isinstance(x, Quant):
            refuse(node, f"input '{node.input[index]}' is not a uint8 tensor")
        s = _f32_scale(node, _scalar(node, self.const(node, index + 1, "scale"), "scale"), "scale")
        z = self.const(node, index + 2, "zero point")
        if np.asarray(z).dtype != np.uint8:
            refuse(node, f"zero point of type {np.asarray(z).dtype} is not supported (uint8 activations)")
        if (s, int(_scalar(node, z, "zero point"))) != (x.scale, x.zero_point):
            refuse(node, "the input's scale and zero point differ from those it was quantized with")
        return x

    def qlinear_out(self, node, scale_index):
        s = _f32_scale(node, _scalar(node, self.const(node, scale_index, "y_scale"), "y_scale"), "y_scale")
        z = self.const(node, scale_index + 1, "y_zero_point")
        if np.asarray(z).dtype != np.uint8:
            refuse(node, f"zero point of type {np.asarray(z).dtype} is not supported (uint8 activations)")
        return s, int(_scalar(node, z, "y_zero_point"))

    def qlinear_weight(self, node, index, transpose=False):
        q = np.asarray(self.const(node, index, "weight"))
        scale = np.asarray(self.const(node, index + 1, "weight scale"), dtype=np.float64).reshape(-1)
        zp = np.asarray(self.const(node, index + 2, "weight zero point")).reshape(-1)
        if transpose:
            if q.ndim != 2:
                refuse(node, f"weight of shape {list(q.shape)} is not 2-D")
            q = np.ascontiguousarray(q.T)
        return QConst(q, scale, zp, 0)

    def op_QLinearConv(self, node):
        a = attributes(node)
        x = self.qlinear_in(node, 0)
        wq = self.qlinear_weight(node, 3)
        out_channels = wq.q.shape[0]
        self.check_conv_channels(node, wq.q.shape, self.shape(node, node.input[0]), a)
        weights = self.int8_weights(node, wq, out_channels)
        kernel, strides, dilations, pads = self.window(node, a, self.shape(node, node.input[0]), wq.q.shape[2:])
        if any(p[0] != p[1] for p in pads):
            refuse(node, f"unequal padding {pads} is not supported on an int8 convolution")
        if len(node.input) > 8 and node.input[8]:
            b = np.asarray(self.const(node, 8, "bias"))
            if b.dtype != np.int32:
                refuse(node, f"bias of type {b.dtype} is not supported (int32)")
            weights["bias"] = b.reshape(out_channels)
        s, z = self.qlinear_out(node, 6)
        self.add(node, "conv2d", [x.layer.name], node.output[0],
                 {"kernel": list(kernel), "stride": strides, "padding": [p[0] for p in pads],
                  "dilation": dilations, "groups": int(a.get("group", 1))}, weights, quant=(s, z))

    def op_QLinearMatMul(self, node):
        x = self.qlinear_in(node, 0)
        if len(x.layer.shape) != 2:
            refuse(node, f"input of shape {list(x.layer.shape)} is not 2-D")
        wq = self.qlinear_weight(node, 3, transpose=True)
        if wq.scale.size > 1:
            wq.axis = 0
        weights = self.int8_weights(node, wq, wq.q.shape[0])
        s, z = self.qlinear_out(node, 6)
        self.add(node, "linear", [x.layer.name], node.output[0], {}, weights, quant=(s, z))

    def op_QLinearAdd(self, node):
        a = self.qlinear_in(node, 0)
        b = self.qlinear_in(node, 3)
        if a.layer.shape != b.layer.shape:
            refuse(node, "broadcasting is not supported")
        s, z = self.qlinear_out(node, 6)
        self.add(node, "add", [a.layer.name, b.layer.name], node.output[0], quant=(s, z))


def _resize_taps(node, size_in, size_out, scale, mode, transform, nearest, cubic_a, exclude_outside,
                 roi, extrapolation):
    """ONNX Resize along one axis as taps: for each output coordinate, the
    input coordinates it reads, their weights, and a constant (the
    extrapolation value of tf_crop_and_resize outside the roi, else 0).
    Returns (taps, index, weight, bias), index and weight flattened as
    size_out x taps, weights rounded to float32. The input coordinate x of
    an output one follows coordinate_transformation_mode; the n neighbours
    of x (n = 2 for nearest and linear, 4 for cubic; ties to the lower
    index) get the mode's coefficients of x's fraction r in (0, 1];
    neighbours outside the axis read its edge (or, with exclude_outside,
    weigh nothing and the others are scaled back to a sum of 1). Nearest
    keeps the one neighbour its nearest_mode picks."""
    width = scale * size_in  # the resized length as ONNX's formulas take it (not rounded)
    n = {"nearest": 2, "linear": 2, "cubic": 4}[mode]
    taps = 1 if mode == "nearest" else n
    index, weight, bias = [], [], []
    for o in range(size_out):
        if transform == "asymmetric":
            x = o / scale
        elif transform == "half_pixel":
            x = (o + 0.5) / scale - 0.5
        elif transform == "pytorch_half_pixel":
            x = (o + 0.5) / scale - 0.5 if width > 1 else 0.0
        elif transform == "align_corners":
            x = o * (size_in - 1) / (width - 1) if width != 1 else 0.0
        elif transform == "tf_half_pixel_for_nn":
            x = (o + 0.5) / scale
        elif transform == "tf_crop_and_resize":
            start, end = roi
            x = (o * (end - start) * (size_in - 1) / (width - 1) if width != 1
                 else (end - start) * (size_in - 1) / 2) + start * (size_in - 1)
            if x < 0 or x > size_in - 1:
                index += [0] * taps
                weight += [0.0] * taps
                bias.append(float(F32(extrapolation)))
                continue
        else:
            refuse(node, f"attribute coordinate_transformation_mode={transform} is not supported")
        # The neighbours: the n integers nearest x, ties to the lower one, so
        # that x's fraction r is in (0, 1].
        below = math.ceil(x) - 1
        r = x - below
        first = below + 1 - n // 2
        neighbours = list(range(first, first + n))
        if mode == "linear":
            coeffs = [1 - r, r]
        elif mode == "cubic":
            a, s = cubic_a, 1 - r
            coeffs = [((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                      ((a + 2) * r - (a + 3)) * r * r + 1,
                      ((a + 2) * s - (a + 3)) * s * s + 1,
                      ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a]
        else:
            pick = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5, "floor": False,
                    "ceil": True}.get(nearest)
            if pick is None:
                refuse(node, f"attribute nearest_mode={nearest} is not supported")
            coeffs = [0.0, 1.0] if r == 1.0 or pick else [1.0, 0.0]
        if exclude_outside:
            coeffs = [c if 0 <= i < size_in else 0.0 for c, i in zip(coeffs, neighbours)]
            total = sum(coeffs)
            if total == 0:
                refuse(node, f"attribute exclude_outside=1 leaves output {o} with no input to read")
            coeffs = [c / total for c in coeffs]
        clamped = [min(max(i, 0), size_in - 1) for i in neighbours]
        if mode == "nearest":
            clamped, coeffs = [clamped[coeffs.index(1.0)]], [1.0]
        index += clamped
        weight += [float(F32(c)) for c in coeffs]
        bias.append(0.0)
    return taps, index, weight, bias


def convert(model, input_shape=None, drop_final_softmax=False):
    """See the module docstring."""
    prepared, input_name, shape, constants, shapes = prepare(model, input_shape)
    converter = Converter(prepared, input_name, shape, constants, shapes, drop_final_softmax)
    converter.producer = {o: n for n in prepared.graph.node for o in n.output}
    output = converter.run()
    layers = _drop_unused(converter.layers, output)
    return Conversion(layers, output, prepared, input_name, shape,
                      {layer.name: layer.ref for layer in layers})


def _drop_unused(layers, output):
    """Layers nothing reads on the way to the output (e.g. a dequantize made
    for a tensor only a dropped node read) are left out."""
    needed = {output}
    for layer in reversed(layers):
        if layer.name in needed:
            needed.update(layer.inputs)
    return [layer for layer in layers if layer.name in needed or layer.op == "input"]
