"""ONNX Runtime's outputs for an ONNX model: the reference the ONNX import
is compared with (models/export_onnx.py --reference, the model tests).

ONNX Runtime comes from npm (onnxruntime-node, installed by jobs/lib/common.sh
ensure_onnxruntime), so it runs in node: models/ort_run.js reads the inputs
as raw files and writes the outputs the same way.

    run_ort(model_path, inputs, threads=1) -> [numpy array per graph output]
        inputs: {graph input name: numpy array}. The reference: int8
        products exact also on CPUs without VNNI, where ONNX Runtime's
        default kernels add pairs of u8 x s8 products in saturating int16
        (session.x64quantprecision, set by ort_run.js's "precise").
    time_ort(model_path, inputs, repeat, threads=1) -> (outputs, seconds)
        one warm-up run, then `repeat` timed runs (seconds: each one's
        session.run, timed in node); outputs are the last run's. ONNX
        Runtime as it runs by default (as a user would time it).

The node_modules directory is $SPLITINFER_ORT_MODULES, else
$SPLITINFER_BUILD/npm/node_modules, else build/npm/node_modules of the
source tree. Raises OrtError with one line when node or ONNX Runtime fails.
"""
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "models", "ort_run.js")
DTYPES = {"float32": np.float32, "float64": np.float64, "int8": np.int8, "uint8": np.uint8,
          "int32": np.int32, "int64": np.int64}


class OrtError(Exception):
    """node or ONNX Runtime failed; the message is one line."""


def modules_dir():
    if os.environ.get("SPLITINFER_ORT_MODULES"):
        return os.environ["SPLITINFER_ORT_MODULES"]
    build = os.environ.get("SPLITINFER_BUILD", os.path.join(ROOT, "build"))
    return os.path.join(build, "npm", "node_modules")


def run_ort(model_path, inputs, threads=1):
    return _run(model_path, inputs, threads, 0, precise=True)[0]


def time_ort(model_path, inputs, repeat, threads=1):
    return _run(model_path, inputs, threads, repeat, precise=False)


def _run(model_path, inputs, threads, repeat, precise):
    with tempfile.TemporaryDirectory(prefix="ort-") as work:
        request = {"model": os.path.abspath(model_path), "threads": threads, "outputs": work,
                   "inputs": [], "precise": precise}
        if repeat:
            request.update(repeat=repeat, timing=os.path.join(work, "timing.json"))
        for k, (name, value) in enumerate(inputs.items()):
            value = np.ascontiguousarray(value)
            dtype = next((key for key, t in DTYPES.items() if value.dtype == t), None)
            if dtype is None:
                raise OrtError(f"input '{name}' has dtype {value.dtype}, which ort_run.js does not pass")
            file = os.path.join(work, f"input_{k}.bin")
            value.tofile(file)
            request["inputs"].append({"name": name, "dtype": dtype, "dims": list(value.shape), "file": file})
        with open(os.path.join(work, "request.json"), "w") as f:
            json.dump(request, f)
        env = dict(os.environ, NODE_PATH=modules_dir())
        try:
            done = subprocess.run(["node", SCRIPT, os.path.join(work, "request.json")], env=env,
                                  capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise OrtError(f"cannot run node: {e}")
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"node exited with status {done.returncode}"]
            raise OrtError(lines[-1])
        outputs = []
        for item in json.loads(done.stdout.strip().splitlines()[-1]):
            if item["dtype"] not in DTYPES:
                raise OrtError(f"output '{item['name']}' has dtype {item['dtype']}")
            outputs.append(np.fromfile(item["file"], dtype=DTYPES[item["dtype"]]).reshape(item["dims"]))
        seconds = json.load(open(request["timing"]))["seconds"] if repeat else []
        return outputs, seconds
