"""Time ONNX Runtime's inference of an ONNX model on one thread, for
jobs/bench's ratio of splitinfer's time to ONNX Runtime's.

    /usr/bin/python3 models/bench_ort.py MODEL.onnx --input-file X.h5 [--repeat K]
        --json OUT.json [--output OUT.h5]

MODEL.onnx is bench_torch.py --export-onnx's export of the model splitinfer
and PyTorch run (the same seed, weights and calibration). ONNX Runtime
(npm's onnxruntime-node, run in node by models/ort_run.js) runs it with one
intra-op thread, sequential execution and every graph optimization: one
warm-up inference, then K timed ones, each session.run timed in node.
OUT.json holds seconds_median and every time; --output writes the last
inference's /output (float32; an int8 QDQ model's output is already
dequantized) so the caller can compare it with PyTorch's.
"""
import argparse
import json
import os
import statistics
import sys

import h5py
import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ort_reference import OrtError, modules_dir, time_ort  # noqa: E402


def ort_version():
    try:
        with open(os.path.join(modules_dir(), "onnxruntime-node", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_ort", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", metavar="MODEL.onnx")
    parser.add_argument("--input-file", required=True, metavar="X.h5")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--output", metavar="OUT.h5")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        graph = onnx.load(args.model, load_external_data=False).graph
    except Exception as e:  # protobuf's DecodeError and OSError alike: one line
        print(f"bench_ort: error: cannot read {args.model}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 2
    try:
        with h5py.File(args.input_file, "r") as f:
            x = np.asarray(f["input"], dtype=np.float32)
        (out, *_), seconds = time_ort(args.model, {graph.input[0].name: x}, args.repeat)
    except (OSError, KeyError, OrtError) as e:
        print(f"bench_ort: error: {e}", file=sys.stderr)
        return 2
    result = {"model": os.path.basename(args.model), "engine": f"onnxruntime-node {ort_version()}",
              "threads": 1, "repeat": args.repeat,
              "seconds_median": statistics.median(seconds), "seconds": seconds}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    if args.output:
        with h5py.File(args.output, "w") as f:
            f.create_dataset("output", data=np.asarray(out, dtype=np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
