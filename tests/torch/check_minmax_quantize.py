"""Check `splitinfer quantize --observer minmax` against PyTorch's own observers.

    /usr/bin/python3 tests/torch/check_minmax_quantize.py FLOAT.h5 CALIB.h5 INT8.h5
        [--per-tensor] [--activations PYTORCH|ENGINE.h5]

Rebuilds the float model as a torch module (models/h5_module.py), runs it on
every input of CALIB.h5 (a batch of one each, in file order) and feeds every
layer's output to a torch.ao.quantization.MinMaxObserver(dtype=quint8,
qscheme=per_tensor_affine); every conv2d/linear weight goes to a
PerChannelMinMaxObserver(ch_axis=0, dtype=qint8, qscheme=per_channel_symmetric)
(MinMaxObserver(dtype=qint8, qscheme=per_tensor_symmetric) with --per-tensor).
Then, for every layer of INT8.h5 (written by splitinfer quantize), requires
EXACT equality with what those observers give:

- the quantize layer: the input's observer; conv2d, linear, add, mul, concat,
  hardswish: their own observer, or, when a relu/relu6 was their only reader
  (fused, and gone from INT8.h5), that activation's, with clamp [zp, 255]
  (relu6: [zp, min(255, q(6))], q by torch.quantize_per_tensor);
  hardsigmoid: 1/256, 0; every other op: its input's scale and zero point
  (unfused relu/relu6 clamped as above);
- weight_scale and weight_zero_point: the weight observer's, per channel;
  the int8 weights: torch.quantize_per_channel with those parameters; the
  int32 bias: torch.quantize_per_channel(bias, f32(w_scale * x_scale), 0,
  qint32).

--activations ENGINE.h5 takes each layer's float outputs from a file instead
of PyTorch's module: /layers/<name> float32 [K, ...] (K calibration inputs),
as tests/torch/check_quantize.sh gathers them from `splitinfer run
--dump-layers` on the float model. It separates the observer arithmetic
(which must be exact) from PyTorch's and splitinfer's float kernels, which
agree to about 1e-6 but not bit for bit.

Prints one line per mismatch and a summary. Exit status 0 when all is equal,
1 on any mismatch, 2 when a file cannot be read.
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import h5_module  # noqa: E402

OBSERVED = {"conv2d", "linear", "add", "mul", "concat", "hardswish"}
FUSABLE = {"conv2d", "linear", "add"}


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_graph(f):
    """[(name, op, inputs, group)] in order, and the output layer's name."""
    layers = f["layers"]
    graph = []
    for name in layers.attrs["order"]:
        name = text(name)
        g = layers[name]
        graph.append((name, text(g.attrs["op"]), [text(i) for i in g.attrs["inputs"]], g))
    return graph, text(f.attrs["output"])


def activation_observer():
    return MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)


def qparams(observer):
    scale, zero_point = observer.calculate_qparams()
    return np.float32(scale.reshape(-1)[0].item()), int(zero_point.reshape(-1)[0].item())


def observe_pytorch(model_path, calib):
    """{layer name: MinMaxObserver} over PyTorch's float outputs of every layer."""
    gm, _, _, _, _ = h5_module.build_module(model_path)
    observers = {}

    class Observe(torch.fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            if n.op != "output":
                observers.setdefault(n.name, activation_observer())(result.detach())
            return result

    with torch.no_grad():
        for k in range(calib.shape[0]):
            Observe(gm).run(torch.from_numpy(calib[k:k + 1]))
    return observers


def observe_engine(paths, calib, graph):
    """{layer name: MinMaxObserver} over the engine's float outputs: one
    `splitinfer run --dump-layers` file per calibration input, in order."""
    if len(paths) != calib.shape[0]:
        raise OSError(f"{len(paths)} engine output files for {calib.shape[0]} calibration inputs")
    observers = {name: activation_observer() for name, _, _, _ in graph}
    for k, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            for name, op, _, _ in graph:
                values = calib[k:k + 1] if op == "input" else np.asarray(f["layers"][name],
                                                                         dtype=np.float32)
                observers[name](torch.from_numpy(values))
    return observers


def quantize_scalar(value, scale, zero_point):
    """PyTorch's quint8 quantization of one float (models/quantization.md 3.1)."""
    q = torch.quantize_per_tensor(torch.tensor([value], dtype=torch.float32), float(scale),
                                  int(zero_point), torch.quint8)
    return int(q.int_repr()[0])


class Checker:
    def __init__(self, scale_tol, zero_point_tol):
        self.failures = []
        self.checked = {"activation": 0, "weight channels": 0, "weights": 0, "biases": 0}
        self.scale_tol, self.zero_point_tol = scale_tol, zero_point_tol
        self.differing = []       # activation layers whose parameters are not identical
        self.worst_scale = 0.0    # largest |scale - PyTorch's| / PyTorch's
        self.worst_ulps = 0       # ... in float32 units in the last place
        self.worst_zero_point = 0

    def activation(self, what, got, expected):
        """An activation's (scale, zero point) against PyTorch's, within the tolerances."""
        self.checked["activation"] += 1
        if got == expected:
            return
        self.differing.append(what)
        relative = abs(float(got[0]) - float(expected[0])) / float(expected[0])
        ulps = abs(int(np.float32(got[0]).view(np.int32)) - int(np.float32(expected[0]).view(np.int32)))
        zero_point = abs(got[1] - expected[1])
        self.worst_scale = max(self.worst_scale, relative)
        self.worst_ulps = max(self.worst_ulps, ulps)
        self.worst_zero_point = max(self.worst_zero_point, zero_point)
        if relative > self.scale_tol or zero_point > self.zero_point_tol:
            self.failures.append(f"{what}: {got!r}, PyTorch {expected!r} (scale off by "
                                 f"{relative:.2e}, {ulps} ulp; zero point by {zero_point})")

    def equal(self, what, got, expected):
        if isinstance(expected, np.ndarray):
            same = got.shape == expected.shape and np.array_equal(got, expected)
            if not same and got.shape == expected.shape:
                where = np.flatnonzero(got.reshape(-1) != expected.reshape(-1))
                detail = (f"{where.size} of {got.size} differ, first at {where[0]}: "
                          f"{got.reshape(-1)[where[0]]!r} vs {expected.reshape(-1)[where[0]]!r}")
            else:
                detail = f"shape {got.shape} vs {expected.shape}"
        else:
            same = got == expected
            detail = f"{got!r}, PyTorch {expected!r}"
        if not same:
            self.failures.append(f"{what}: {detail}")
        return same


def check(float_path, int8_path, per_tensor, observers, c):
    with h5py.File(float_path, "r") as ff, h5py.File(int8_path, "r") as qf:
        float_graph, float_output = read_graph(ff)
        q_graph, q_output = read_graph(qf)
        float_layers = {name: (op, inputs, g) for name, op, inputs, g in float_graph}
        readers = {}
        for name, _, inputs, _ in float_graph:
            for i in inputs:
                readers.setdefault(i, []).append(name)
        # The relu/relu6 fused into each conv2d/linear/add (the rule the
        # command follows; a fused activation must be gone from INT8.h5).
        fused = {}
        for name, op, inputs, _ in float_graph:
            if op in ("relu", "relu6"):
                producer = inputs[0]
                if (float_layers[producer][0] in FUSABLE and readers[producer] == [name]
                        and producer != float_output):
                    fused[producer] = name
        # Which layer of INT8.h5 each float layer's readers read.
        quantize_layers = [n for n, op, _, _ in q_graph if op == "quantize"]
        c.equal("quantize layers", len(quantize_layers), 1)
        renamed = {}
        for name, op, inputs, _ in float_graph:
            if op == "input":
                renamed[name] = quantize_layers[0] if quantize_layers else None
            else:
                renamed[name] = renamed[inputs[0]] if name in fused.values() else name
        c.equal("output layer", q_output, renamed[float_output])
        expected_names = [n for n, _, _, _ in float_graph if n not in fused.values()]
        got_names = [n for n, op, _, _ in q_graph if op != "quantize"]
        c.equal("layers (without quantize)", got_names, expected_names)

        q = {}  # name -> (scale float32, zero point)
        for name, op, inputs, g in q_graph:
            if op == "input":
                c.equal(f"{name} dtype", text(g.attrs.get("dtype", "float32")), "float32")
                continue
            c.equal(f"{name} dtype", text(g.attrs.get("dtype", "float32")), "quint8")
            got = (np.float32(g.attrs["scale"]), int(g.attrs["zero_point"]))
            clamp = [int(v) for v in g.attrs.get("clamp", [0, 255])]
            q[name] = got
            if op == "quantize":
                c.equal(f"{name} inputs", inputs, [float_graph[0][0]])
            else:
                c.equal(f"{name} inputs", inputs, [renamed[i] for i in float_layers[name][1]])
            # The clamp follows from the layer's own parameters (checked below).
            if op in OBSERVED:
                activation_op = float_layers[fused[name]][0] if name in fused else None
            else:
                activation_op = op if op in ("relu", "relu6") else None
            expected_clamp = [0, 255]
            if activation_op == "relu":
                expected_clamp = [got[1], 255]
            elif activation_op == "relu6":
                expected_clamp = [got[1], min(255, quantize_scalar(6.0, *got))]
            c.equal(f"{name} ({op}) clamp", clamp, expected_clamp)
            if op == "quantize":
                c.activation(f"{name} ({op}) scale, zero point", got, qparams(observers[inputs[0]]))
            elif op in OBSERVED:
                c.activation(f"{name} ({op}) scale, zero point", got,
                             qparams(observers[fused.get(name) or name]))
            elif op == "hardsigmoid":  # fixed by PyTorch
                c.equal(f"{name} ({op}) scale, zero point", got, (np.float32(1 / 256), 0))
            else:  # PyTorch's pass-through ops keep their input's
                c.equal(f"{name} ({op}) scale, zero point", got, q[inputs[0]])

            if op in ("conv2d", "linear"):
                check_weights(c, name, float_layers[name][2], g, q[inputs[0]][0], per_tensor)


def check_weights(c, name, float_group, group, input_scale, per_tensor):
    w = torch.from_numpy(np.asarray(float_group["weight"], dtype=np.float32))
    if per_tensor:
        observer = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    else:
        observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8,
                                            qscheme=torch.per_channel_symmetric)
    observer(w)
    scale, zero_point = observer.calculate_qparams()
    scale = scale.reshape(-1).to(torch.float32)
    zero_point = zero_point.reshape(-1).to(torch.int64)
    c.equal(f"{name} weight_scale", np.asarray(group["weight_scale"]), scale.numpy())
    c.equal(f"{name} weight_zero_point", np.asarray(group["weight_zero_point"]).astype(np.int64),
            zero_point.numpy())
    c.checked["weight channels"] += scale.numel()
    channels = w.shape[0]
    scales = scale.expand(channels) if per_tensor else scale
    zero_points = zero_point.expand(channels) if per_tensor else zero_point
    qw = torch.quantize_per_channel(w, scales.double(), zero_points, 0, torch.qint8).int_repr()
    c.equal(f"{name} int8 weight", np.asarray(group["weight"]), qw.numpy())
    c.checked["weights"] += w.numel()
    if "bias" in float_group:
        b = torch.from_numpy(np.asarray(float_group["bias"], dtype=np.float32))
        bias_scale = (scales * torch.tensor(input_scale, dtype=torch.float32)).to(torch.float32)
        qb = torch.quantize_per_channel(b, bias_scale.double(), torch.zeros(channels, dtype=torch.int64),
                                        0, torch.qint32).int_repr()
        c.equal(f"{name} int32 bias", np.asarray(group["bias"]), qb.numpy())
        c.checked["biases"] += b.numel()
    else:
        c.equal(f"{name} has a bias", "bias" in group, False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="check_minmax_quantize",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("float_model")
    parser.add_argument("calib")
    parser.add_argument("int8_model")
    parser.add_argument("--per-tensor", action="store_true",
                        help="the int8 model was quantized with --per-tensor")
    parser.add_argument("--engine", nargs="+", metavar="OUT_K.h5",
                        help="take the float activations from these `splitinfer run "
                             "--dump-layers` outputs (one per calibration input, in order) "
                             "instead of PyTorch's module")
    parser.add_argument("--scale-tol", type=float, default=0.0,
                        help="largest relative difference of an activation scale (default 0)")
    parser.add_argument("--zero-point-tol", type=int, default=0,
                        help="largest difference of an activation zero point (default 0)")
    args = parser.parse_args(argv)
    c = Checker(args.scale_tol, args.zero_point_tol)
    try:
        with h5py.File(args.calib, "r") as f:
            calib = np.asarray(f["input"], dtype=np.float32)
        if args.engine:
            with h5py.File(args.float_model, "r") as f:
                graph, _ = read_graph(f)
            observers = observe_engine(args.engine, calib, graph)
        else:
            observers = observe_pytorch(args.float_model, calib)
        check(args.float_model, args.int8_model, args.per_tensor, observers, c)
    except (h5_module.H5ModuleError, OSError, KeyError) as e:
        print(f"check_minmax_quantize: error: {e}", file=sys.stderr)
        return 2
    source = "splitinfer's float run" if args.engine else "PyTorch's float module"
    counts = ", ".join(f"{v} {k}" for k, v in c.checked.items())
    print(f"{os.path.basename(args.int8_model)}: observers over {calib.shape[0]} calibration "
          f"inputs, float activations from {source}; checked {counts}")
    print(f"activation scale/zero point: {c.checked['activation'] - len(c.differing)} of "
          f"{c.checked['activation']} identical; largest difference: scale {c.worst_scale:.2e} "
          f"relative ({c.worst_ulps} ulp), zero point {c.worst_zero_point} "
          f"(tolerance {args.scale_tol:g}, {args.zero_point_tol})")
    for failure in c.failures:
        print("  MISMATCH " + failure)
    if c.failures:
        print(f"check_minmax_quantize: FAIL ({len(c.failures)} mismatches)", file=sys.stderr)
        return 1
    print("check_minmax_quantize: PASS")
    return 0

if __name__ == "__main__":
    sys.exit(main())
