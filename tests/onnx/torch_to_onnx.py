"""A PyTorch model as an ONNX file, for the ONNX import's model tests, with
PyTorch's own output as a second reference.

    /usr/bin/python3 tests/onnx/torch_to_onnx.py --model NAME --input-shape 1,3,H,W --opset 13
        --out MODEL.onnx [--seed S] [--quantize qnnpack --calib CALIB.h5]
        [--torch-reference TORCH.h5 --input-file X.h5]

NAME as export_torch.py takes it (models/torch_models.py: seeded random
weights, random BatchNorm statistics; nothing is downloaded). The model is
exported with torch.onnx.export at the given opset, in eval mode.
--quantize qnnpack quantizes it first with PyTorch's recipe
(models/quantize_torch.py, calibrated on CALIB.h5) and exports the converted
model: a QDQ graph (QuantizeLinear/DequantizeLinear around Conv, Gemm, Add).
--torch-reference writes PyTorch's output for /input of X.h5 as /output (and
for a quantized model /output_q, uint8 with scale and zero point).
"""
import argparse
import sys
import os
import warnings

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "models"))
import quantize_torch  # noqa: E402
from model_file import ExportError  # noqa: E402
from reference import read_input  # noqa: E402
from torch_models import load_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="torch_to_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input-shape", required=True)
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quantize", choices=["qnnpack"])
    parser.add_argument("--calib")
    parser.add_argument("--torch-reference")
    parser.add_argument("--input-file")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.input_shape.split(","))
    try:
        model, _, _, source = load_model(args.model, None, args.seed)
        if args.quantize:
            calib, desc = quantize_torch.read_calibration(args.calib, shape)
            model, _, _ = quantize_torch.quantize(args.model, model, calib, desc, source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(shape), args.out, opset_version=args.opset,
                              input_names=["input"], output_names=["output"])
        if args.torch_reference:
            x = read_input(args.input_file, shape)
            with torch.no_grad():
                out = model(x)
            with h5py.File(args.torch_reference, "w") as f:
                f.create_dataset("input", data=x.numpy())
                f.create_dataset("output", data=out.dequantize().numpy() if out.is_quantized else out.numpy())
                if out.is_quantized:
                    ds = f.create_dataset("output_q", data=out.int_repr().numpy().astype(np.uint8))
                    ds.attrs["scale"], ds.attrs["zero_point"] = np.float64(out.q_scale()), np.int64(out.q_zero_point())
    except ExportError as e:
        print(f"torch_to_onnx: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
