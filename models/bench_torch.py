"""Time PyTorch's own inference of a model on one thread, for jobs/bench's
ratio of splitinfer's time to PyTorch's.

    /usr/bin/python3 models/bench_torch.py --model NAME [--seed S]
        [--quantize qnnpack --calib CALIB.h5] --input-file X.h5 [--repeat K]
        (--json OUT.json [--output OUT.h5] | --export-onnx OUT.onnx)

The model is the one export_torch.py exports with the same arguments, built
by the same code (torch_models.load_model: the seed's weights and random
BatchNorm statistics; with --quantize, quantize_torch.quantize: the same
recipe and calibration), so splitinfer and PyTorch run one model. PyTorch
runs it as it ships: the float model eager in eval mode under no_grad
(BatchNorm not folded), the int8 model as PyTorch's converted module on the
qnnpack engine.

Like `splitinfer run --repeat K`: one warm-up inference, then K timed ones
(time.perf_counter around each call), and the median. OUT.json holds
seconds_median, every time, the thread count and the versions; --output
writes the last inference's /output (float32 logits, dequantized for int8)
so the caller can check both engines computed the same thing.

--export-onnx writes the same model as ONNX instead of timing it, for
ONNX Runtime (models/bench_ort.py): torch.onnx.export at opset 13 with the
input as its example; the int8 model is PyTorch's converted qnnpack module,
which the exporter writes as QuantizeLinear/DequantizeLinear around its
operators (a QDQ model).
"""
import argparse
import json
import os
import statistics
import sys
import time

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quantize_torch  # noqa: E402
from model_file import ExportError  # noqa: E402
from reference import read_input  # noqa: E402
from torch_models import load_model  # noqa: E402


def build(name, seed, quantize, calib_path):
    """(module to time, input shape, description) for NAME as export_torch.py
    builds it."""
    model, shape, _, source = load_model(name, None, seed)
    if not quantize:
        return model.eval(), shape, source
    calib, calib_desc = quantize_torch.read_calibration(calib_path, shape)
    qmodel, _, source = quantize_torch.quantize(name, model, calib, calib_desc, source)
    return qmodel.eval(), shape, source


def time_inferences(model, x, repeat):
    """Seconds of each of `repeat` inferences after one warm-up, and the last output."""
    times = []
    with torch.no_grad():
        out = model(x)   # warm-up: qnnpack packs its weights, allocators settle
        for _ in range(repeat):
            start = time.perf_counter()
            out = model(x)
            times.append(time.perf_counter() - start)
    return times, out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_torch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantize", choices=["qnnpack"])
    parser.add_argument("--calib", metavar="CALIB.h5")
    parser.add_argument("--input-file", required=True, metavar="X.h5")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument("--output", metavar="OUT.h5")
    parser.add_argument("--export-onnx", metavar="OUT.onnx")
    args = parser.parse_args(argv)
    if bool(args.quantize) != bool(args.calib):
        parser.error("--quantize and --calib go together")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if bool(args.json) == bool(args.export_onnx):
        parser.error("one of --json and --export-onnx is needed")
    # One thread, as one splitinfer node computes: intra-op and inter-op.
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    try:
        model, shape, source = build(args.model, args.seed, args.quantize, args.calib)
        x = read_input(args.input_file, shape)
    except ExportError as e:
        print(f"bench_torch: error: {e}", file=sys.stderr)
        return 2
    if args.export_onnx:
        with torch.no_grad():
            torch.onnx.export(model, x, args.export_onnx, opset_version=13,
                              input_names=["input"], output_names=["output"])
        return 0
    times, out = time_inferences(model, x, args.repeat)
    if out.is_quantized:
        out = out.dequantize()
    result = {"model": args.model, "dtype": "int8" if args.quantize else "float32",
              "engine": torch.backends.quantized.engine if args.quantize else "eager float32",
              "source": source, "torch_version": torch.__version__,
              "threads": torch.get_num_threads(), "repeat": args.repeat,
              "seconds_median": statistics.median(times), "seconds": times}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    if args.output:
        with h5py.File(args.output, "w") as f:
            f.create_dataset("output", data=out.detach().float().numpy().astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
