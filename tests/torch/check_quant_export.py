"""Recompute a quantized model file with numpy alone and compare it with
PyTorch's reference, bit for bit.

    /usr/bin/python3 tests/torch/check_quant_export.py MODEL.h5 REF.h5

Starting from REF.h5's /input, every layer of MODEL.h5 is computed in
topological order from the file's contents only (int8 weights, int32 biases,
weight scales and zero points, every layer's scale, zero point and clamp),
each layer from the values this script computed for its inputs (chained, as
the engine runs), with the arithmetic of models/quant_arith.py, the numpy
replica of PyTorch 1.13.1's qnnpack kernels. Every /layers/<name> of REF.h5
and /output_q must be equal: 0 LSB, and the same scale and zero point. This
shows that the file holds everything the engine needs to reproduce PyTorch's
quantized model. The file is also checked against io/FORMAT.md's rules for
quantized models (dtypes, ranges, quint8/float32 inputs of each op).

Exit status 0 when everything matches, 1 when a layer differs or the file
breaks a rule, 2 when a file cannot be read.
"""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import quant_arith as qa  # noqa: E402

F32 = np.float32
SAME_QPARAMS = {"maxpool", "flatten", "slice", "channel_shuffle", "upsample_nearest", "relu", "relu6"}
OWN_QPARAMS = {"quantize", "conv2d", "linear", "add", "mul", "concat", "hardswish", "hardsigmoid",
               "global_avgpool"}


class Bad(Exception):
    """The model file breaks a rule of io/FORMAT.md or holds an op this check cannot compute."""


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def ints(g, key):
    return [int(v) for v in np.asarray(g.attrs[key]).reshape(-1)]


class Tensor:
    """A layer's value: uint8 data with scale/zero point, or float32 data."""

    def __init__(self, data, scale=None, zero_point=None):
        self.data, self.scale, self.zero_point = data, scale, zero_point

    @property
    def quantized(self):
        return self.scale is not None


def dataset(g, key, dtype, shape=None):
    if key not in g:
        raise Bad(f"layer '{g.name.split('/')[-1]}': no dataset '{key}'")
    data = np.asarray(g[key])
    if data.dtype != dtype:
        raise Bad(f"layer '{g.name.split('/')[-1]}': {key} is {data.dtype}, io/FORMAT.md wants {np.dtype(dtype)}")
    if shape is not None and data.shape not in shape:
        raise Bad(f"layer '{g.name.split('/')[-1]}': {key} has shape {list(data.shape)}")
    return data


def qparams(name, g):
    """(scale, zero_point, clamp) of a quint8 layer, checked."""
    for key in ("scale", "zero_point"):
        if key not in g.attrs:
            raise Bad(f"layer '{name}': quint8 without '{key}'")
    scale, zero_point = float(g.attrs["scale"]), int(g.attrs["zero_point"])
    if not (np.isfinite(scale) and scale > 0 and float(F32(scale)) == scale):
        raise Bad(f"layer '{name}': scale {scale!r} is not a positive float32 value")
    if not 0 <= zero_point <= 255:
        raise Bad(f"layer '{name}': zero point {zero_point} outside [0, 255]")
    clamp = ints(g, "clamp") if "clamp" in g.attrs else [0, 255]
    if len(clamp) != 2 or not 0 <= clamp[0] <= clamp[1] <= 255:
        raise Bad(f"layer '{name}': clamp {clamp} is not [lo, hi] with 0 <= lo <= hi <= 255")
    return scale, zero_point, clamp


def weighted(name, g, x, op):
    """conv2d / linear: int32 accumulators from the file's int8 weights and
    int32 bias, requantized by qnnpack's float32 multiplier."""
    w = dataset(g, "weight", np.int8)
    oc = w.shape[0]
    w_scale = dataset(g, "weight_scale", np.float32, [(1,), (oc,)])
    w_zp = dataset(g, "weight_zero_point", np.int32, [(1,), (oc,)])
    if w_zp.min() < -128 or w_zp.max() > 127:
        raise Bad(f"layer '{name}': weight zero point outside [-128, 127]")
    bias = dataset(g, "bias", np.int32, [(oc,)]) if "bias" in g else np.zeros(oc, np.int32)
    w_scale = np.broadcast_to(w_scale, (oc,))
    w_zp = np.broadcast_to(w_zp.astype(np.int64), (oc,))
    xq = x.data.astype(np.int64)
    if op == "linear":      # [N, K] x [OC, K] as a 1x1 convolution
        acc = qa.conv2d_acc(xq[:, :, None, None], x.zero_point, w[:, :, None, None], w_zp, bias)[:, :, 0, 0]
        multiplier = qa.requant_scale(x.scale, w_scale, float(g.attrs["scale"])).reshape(1, -1)
    else:
        acc = qa.conv2d_acc(xq, x.zero_point, w, w_zp, bias, ints(g, "stride"), ints(g, "padding"),
                            ints(g, "dilation"), int(g.attrs["groups"]))
        multiplier = qa.requant_scale(x.scale, w_scale, float(g.attrs["scale"])).reshape(1, -1, 1, 1)
    return qa.requantize_fp32(acc, multiplier, int(g.attrs["zero_point"]))


def compute(name, g, op, ins, shape):
    """The uint8 (or float32) value of one layer from its inputs."""
    x = ins[0] if ins else None
    if op in ("conv2d", "linear"):
        return weighted(name, g, x, op)
    scale = float(g.attrs["scale"]) if "scale" in g.attrs else None
    zero_point = int(g.attrs["zero_point"]) if "zero_point" in g.attrs else None
    if op == "quantize":
        return qa.quantize(x.data, scale, zero_point)
    if op == "dequantize":
        return (x.data.astype(np.int64) - x.zero_point).astype(F32) * F32(x.scale)
    if op in ("add", "mul"):
        if len(ins) != 2:
            raise Bad(f"layer '{name}': {op} needs 2 inputs")
        a, b = ins
        f = qa.add if op == "add" else qa.mul
        return f(a.data, a.scale, a.zero_point, b.data, b.scale, b.zero_point, scale, zero_point)
    if op == "concat":
        return qa.cat([(t.data, t.scale, t.zero_point) for t in ins], 1, scale, zero_point)
    if op == "global_avgpool":
        return qa.global_avgpool(x.data, x.scale, x.zero_point, scale, zero_point).reshape(shape)
    if op == "maxpool":
        k, s, p, d = ints(g, "kernel"), ints(g, "stride"), ints(g, "padding"), ints(g, "dilation")
        if k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d != [1, 1] or int(g.attrs["ceil_mode"]):
            raise Bad(f"layer '{name}': this check computes square, undilated, floor-mode max pools only")
        return qa.maxpool2d(x.data, k[0], s[0], p[0])
    if op == "hardswish":
        return qa.lut_op(qa.hardswish_f, x.scale, x.zero_point, scale, zero_point)[x.data]
    if op == "hardsigmoid":
        return qa.lut_op(qa.hardsigmoid_f, x.scale, x.zero_point, scale, zero_point)[x.data]
    if op in ("relu", "relu6"):
        if "clamp" not in g.attrs:
            raise Bad(f"layer '{name}': {op} needs a clamp")
        return x.data
    if op == "flatten":
        return x.data.reshape(x.data.shape[0], -1)
    if op == "slice":
        return x.data[:, int(g.attrs["start"]):int(g.attrs["stop"])]
    if op == "channel_shuffle":
        n, c = x.data.shape[:2]
        groups = int(g.attrs["groups"])
        return x.data.reshape(n, groups, c // groups, *x.data.shape[2:]).swapaxes(1, 2).reshape(x.data.shape)
    if op == "upsample_nearest":
        sh, sw = ints(g, "scale")
        return x.data.repeat(sh, axis=2).repeat(sw, axis=3)
    raise Bad(f"layer '{name}': this check cannot compute op '{op}'")


def check_layer_types(name, g, op, ins):
    """io/FORMAT.md: which ops may be quint8, and what their inputs must be."""
    dtype = text(g.attrs.get("dtype", "float32"))
    if dtype not in ("float32", "quint8"):
        raise Bad(f"layer '{name}': dtype '{dtype}' is neither float32 nor quint8")
    quantized = dtype == "quint8"
    if quantized:
        if op not in SAME_QPARAMS | OWN_QPARAMS:
            raise Bad(f"layer '{name}': op '{op}' has no quint8 form")
        want_q = [op != "quantize"] * len(ins)
    else:
        if "weight" in g and np.asarray(g["weight"]).dtype == np.int8:
            raise Bad(f"layer '{name}': int8 weights on a float32 layer")
        want_q = [op == "dequantize"] * len(ins)
    for t, q in zip(ins, want_q):
        if t.quantized != q:
            raise Bad(f"layer '{name}' ({dtype} {op}): an input is {'quint8' if t.quantized else 'float32'}")
    if quantized:
        scale, zero_point, clamp = qparams(name, g)
        if op in SAME_QPARAMS and (scale, zero_point) != (ins[0].scale, ins[0].zero_point):
            raise Bad(f"layer '{name}': {op} must keep its input's scale and zero point")
        if op in ("relu", "relu6") and clamp[0] != zero_point:
            raise Bad(f"layer '{name}': {op} clamp {clamp} does not start at the zero point")
        return scale, zero_point, clamp
    return None


def run(model_path, ref_path):
    model, ref = h5py.File(model_path, "r"), h5py.File(ref_path, "r")
    if text(model.attrs.get("requantization", "pytorch")) != "pytorch":
        raise Bad(f"requantization is '{text(model.attrs['requantization'])}': this check is for 'pytorch'")
    layers = model["layers"]
    order = [text(n) for n in layers.attrs["order"]]
    output = text(model.attrs["output"])
    values, failures, kinds = {}, [], {}
    for name in order:
        g = layers[name]
        op = text(g.attrs["op"])
        shape = tuple(ints(g, "output_shape"))
        ins = [values[text(i)] for i in g.attrs["inputs"]]
        if op == "input":
            values[name] = Tensor(np.asarray(ref["input"], dtype=F32))
            continue
        q = check_layer_types(name, g, op, ins)
        data = compute(name, g, op, ins, shape)
        if q is not None:
            scale, zero_point, clamp = q
            data = np.clip(data, clamp[0], clamp[1]).astype(np.uint8)
            values[name] = Tensor(data, scale, zero_point)
            kind = f"{op}+clamp" if "clamp" in g.attrs else op
            kinds[kind] = kinds.get(kind, 0) + 1
        else:
            values[name] = Tensor(np.asarray(data, dtype=F32))
            kinds[f"float {op}"] = kinds.get(f"float {op}", 0) + 1
        if values[name].data.shape != shape:
            raise Bad(f"layer '{name}': computed shape {list(values[name].data.shape)}, "
                      f"output_shape {list(shape)}")
        key = f"layers/{name}"
        if key not in ref:
            failures.append(f"{name} missing from {ref_path}")
            continue
        failures += compare(name, values[name], ref[key])
    out = values[output]
    if out.quantized:
        if "output_q" not in ref:
            failures.append(f"{ref_path} has no /output_q for the quint8 output '{output}'")
        else:
            failures += compare("/output_q", out, ref["output_q"])
        deq = (out.data.astype(np.int64) - out.zero_point).astype(F32) * F32(out.scale)
        if not np.array_equal(deq, np.asarray(ref["output"])):
            failures.append("/output is not the dequantized /output_q")
    elif not np.array_equal(out.data, np.asarray(ref["output"])):
        failures.append("/output differs")
    print("layers: " + ", ".join(f"{k} x{v}" for k, v in kinds.items()))
    print(f"{len(order)} layers, output '{output}' {'quint8' if out.quantized else 'float32'} "
          f"{list(out.data.shape)}; top-1 {int(np.argmax(out.data))} vs reference "
          f"{int(np.argmax(np.asarray(ref['output'])))}")
    return failures


def compare(name, value, ref):
    ref_data = np.asarray(ref)
    if value.quantized:
        if ref_data.dtype != np.uint8 or "scale" not in ref.attrs:
            return [f"{name}: the reference is not quint8"]
        if (float(ref.attrs["scale"]), int(ref.attrs["zero_point"])) != (value.scale, value.zero_point):
            return [f"{name}: scale/zero point {value.scale!r}/{value.zero_point} in the model, "
                    f"{float(ref.attrs['scale'])!r}/{int(ref.attrs['zero_point'])} in the reference"]
    if ref_data.shape != value.data.shape:
        return [f"{name}: shape {list(value.data.shape)}, reference {list(ref_data.shape)}"]
    diff = np.abs(value.data.astype(np.float64) - ref_data.astype(np.float64))
    bad = int((diff > 0).sum())
    if bad:
        unit = "LSB" if value.quantized else ""
        print(f"{name}: {bad} of {diff.size} elements differ, max |diff| {diff.max():g} {unit}")
        return [f"{name}: {bad} elements differ (max {diff.max():g})"]
    return []


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        failures = run(*args)
    except OSError as e:
        print(f"check_quant_export: error: {e}", file=sys.stderr)
        return 2
    except Bad as e:
        print(f"check_quant_export: FAIL: {e}", file=sys.stderr)
        return 1
    if failures:
        print(f"check_quant_export: FAIL ({len(failures)} problems): " + "; ".join(failures[:5]) +
              ("; ..." if len(failures) > 5 else ""), file=sys.stderr)
        return 1
    print("check_quant_export: PASS (every layer and /output_q: 0 LSB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
