"""A small int8 QDQ graph built with the onnx helper API, for the ONNX
import's int8 path beyond what torch exports: per-channel weights (Conv
along axis 0, Gemm with transB), a depthwise conv, uint8 weights with a
zero point, a Relu6 as Clip, an Add of two branches, max pool, global
average pool, Flatten and a float bias quantized at import.

    /usr/bin/python3 tests/onnx/make_qdq_model.py OUT.onnx [--seed S]

Input [1, 4, 12, 12] float32; output the DequantizeLinear of the last Gemm
[1, 10]. Scales are fixed numbers of the right size for a standard-normal
input (saturation included on purpose: it is arithmetic too)."""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def q(x, name, scale, zp):
        s, z = const(name + "_s", np.float32(scale)), const(name + "_z", np.uint8(zp))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [name + "_q"], name=name + "_Q"))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", s, z], [name + "_dq"], name=name + "_DQ"))
        return name + "_dq"

    def weight(name, shape, axis, dtype=np.int8):
        channels = shape[axis]
        values = rng.integers(-100, 100, size=shape) if dtype == np.int8 else rng.integers(30, 230, size=shape)
        scale = (rng.uniform(0.5, 2.0, size=channels) * 0.01).astype(np.float32)
        zp = np.zeros(channels, dtype) if dtype == np.int8 else rng.integers(100, 156, size=channels).astype(dtype)
        w, s, z = const(name, values.astype(dtype)), const(name + "_s", scale), const(name + "_z", zp)
        nodes.append(helper.make_node("DequantizeLinear", [w, s, z], [name + "_dq"], name=name + "_DQ", axis=axis))
        return name + "_dq"

    x = q("x", "in", 0.03, 128)
    # a per-channel 3x3 conv, Relu
    nodes.append(helper.make_node("Conv", [x, weight("w1", (8, 4, 3, 3), 0), const("b1", rng.normal(0, 0.1, 8).astype(np.float32))],
                                  ["c1"], name="conv1", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    a = q("r1", "a", 0.05, 0)
    # a depthwise conv with uint8 weights and zero points, Clip(0, 6)
    nodes.append(helper.make_node("Conv", [a, weight("w2", (8, 1, 3, 3), 0, np.uint8)], ["c2"], name="dw", pads=[1, 1, 1, 1],
                                  group=8))
    nodes.append(helper.make_node("Clip", ["c2", const("lo", np.float32(0)), const("hi", np.float32(6))], ["r2"], name="relu6"))
    b = q("r2", "b", 6 / 255, 0)
    # a 1x1 per-channel conv without activation, added to the first branch
    nodes.append(helper.make_node("Conv", [b, weight("w3", (8, 8, 1, 1), 0)], ["c3"], name="pointwise"))
    c = q("c3", "c", 0.04, 120)
    nodes.append(helper.make_node("Add", [a, c], ["s"], name="add"))
    nodes.append(helper.make_node("Relu", ["s"], ["sr"], name="add_relu"))
    d = q("sr", "d", 0.06, 0)
    nodes.append(helper.make_node("MaxPool", [d], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
    e = q("m", "d2", 0.06, 0)
    nodes.append(helper.make_node("GlobalAveragePool", [e], ["g"], name="gap"))
    f = q("g", "f", 0.03, 0)
    nodes.append(helper.make_node("Flatten", [f], ["fl"], name="flatten"))
    g = q("fl", "f2", 0.03, 0)
    nodes.append(helper.make_node("Gemm", [g, weight("w4", (10, 8), 0), const("b4", rng.normal(0, 0.1, 10).astype(np.float32))],
                                  ["y0"], name="fc", transB=1))
    out = q("y0", "y", 0.02, 128)
    nodes.append(helper.make_node("Identity", [out], ["y"], name="output"))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, args.out)


if __name__ == "__main__":
    main()
