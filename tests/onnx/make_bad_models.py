"""Small ONNX files the import must refuse, each with one line naming the
node, its op type and what is not supported (tests/onnx/check_refusals.sh).

    /usr/bin/python3 tests/onnx/make_bad_models.py DIR

writes DIR/NAME.onnx for every NAME of CASES, and DIR/good.onnx (a conv and
a relu, which the import takes)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])


def model(nodes, output_shape, initializers=(), opset=13, inputs=(X,)):
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)
    graph = helper.make_graph(nodes, "g", list(inputs), [y],
                              [numpy_helper.from_array(v, k) for k, v in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


W = ("w", np.ones((4, 3, 3, 3), dtype=np.float32))
CASES = {
    # name: (model, the words the error line must hold)
    # normalisation by per-channel constants (depthwise 1x1 convs), a conv, a relu
    "good": (model([helper.make_node("Sub", ["x", "mean"], ["centred"], name="sub"),
                    helper.make_node("Div", ["centred", "std"], ["scaled"], name="div"),
                    helper.make_node("Conv", ["scaled", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")], [1, 4, 8, 8],
                   [W, ("mean", np.array([0.5, -0.25, 0.125], np.float32).reshape(3, 1, 1)),
                    ("std", np.array([0.25, 0.5, 2.0], np.float32).reshape(3, 1, 1))]), None),
    "mul_last_axis": (model([helper.make_node("Mul", ["x", "c"], ["y"], name="mul")], [1, 3, 8, 8],
                            [("c", np.arange(8, dtype=np.float32))]),
                      "node 'mul' (Mul): a constant operand of shape [8] on [1, 3, 8, 8] is not supported"),
    "unsupported_op": (model([helper.make_node("Tanh", ["x"], ["y"], name="tanh")], [1, 3, 8, 8]),
                       "node 'tanh' (Tanh): op type 'Tanh' is not supported"),
    "clip_bounds": (model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")], [1, 3, 8, 8],
                          [("lo", np.array(-1, np.float32)), ("hi", np.array(1, np.float32))]),
                    "node 'clip' (Clip): attributes min=-1, max=1 are not supported"),
    "resize_channels": (model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="up", mode="linear")],
                              [1, 6, 8, 8], [("s", np.array([1, 2, 1, 1], np.float32))]),
                        "node 'up' (Resize): resizing [1, 3, 8, 8] to [1, 6, 8, 8] is not supported"),
    "flatten_axis_inside": (model([helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=2),
                                   helper.make_node("Relu", ["f"], ["y"], name="relu")], [3, 64]),
                            "node 'flat' (Flatten): attribute axis=2 is not supported"),
    "softmax": (model([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                       helper.make_node("Softmax", ["f"], ["y"], name="softmax")], [1, 192]),
                "node 'softmax' (Softmax): splitinfer has no softmax op"),
    "dilated_unequal_pads": (model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[0, 1, 1, 1],
                                                     dilations=[2, 2])], [1, 4, 5, 6], [W]),
                             "node 'conv' (Conv): attribute pads (begin 0, end 1) with dilation 2"),
    "legacy_broadcast": (model([helper.make_node("Add", ["x", "b"], ["y"], name="add", broadcast=1)],
                               [1, 3, 8, 8], [("b", np.ones(3, np.float32))], opset=6),
                         "node 'add' (Add): attribute 'broadcast' is not supported"),
    "five_d_input": (model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [1, 3, 2, 8, 8],
                           inputs=(helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 8, 8]),)),
                     "graph input 'x' of shape [1, 3, 2, 8, 8]: splitinfer holds 4-D"),
    "int8_activation": (model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant"),
                               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant")],
                              [1, 3, 8, 8], [("s", np.array(0.1, np.float32)), ("z", np.array(0, np.int8))]),
                        "node 'quant' (QuantizeLinear): zero point of type int8 is not supported"),
    "conv_channels": (model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [1, 4, 6, 6],
                            [("w", np.ones((4, 2, 3, 3), dtype=np.float32))]),
                      "node 'conv' (Conv): weight of shape [4, 2, 3, 3] with group 1 does not fit an input of 3"),
    "opset_18": (model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [1, 3, 8, 8], opset=18),
                 "opset 18 is not supported"),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, (m, _) in CASES.items():
        onnx.save(m, os.path.join(out, f"{name}.onnx"))
    with open(os.path.join(out, "expected.txt"), "w") as f:
        for name, (_, words) in CASES.items():
            if words:
                f.write(f"{name}\t{words}\n")


if __name__ == "__main__":
    main()
