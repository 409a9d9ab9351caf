"""Check a `splitinfer quantize --weights fp16` file against its float model.

    /usr/bin/python3 tests/torch/check_fp16.py FLOAT.h5 FP16.h5 FLOAT.json FP16.json

FLOAT.json and FP16.json are `splitinfer inspect --json` of the two files.
Required: the same layers in the same order with the same attributes; every
conv2d/linear weight and bias stored as float16 holding numpy's
round-to-nearest-even float16 of the float32 value (bit for bit); every other
dataset unchanged; and the parameter bytes `inspect` reports exactly half the
float model's. Exit status 0 on success, 1 otherwise.
"""
import json
import sys

import h5py
import numpy as np


def main(argv=None):
    float_path, fp16_path, float_json, fp16_json = (argv or sys.argv[1:])[:4]
    failures = []
    converted = 0
    with h5py.File(float_path, "r") as ff, h5py.File(fp16_path, "r") as hf:
        order = list(ff["layers"].attrs["order"])
        if list(hf["layers"].attrs["order"]) != order:
            failures.append("the layers differ")
        for name in order:
            name = name.decode() if isinstance(name, bytes) else name
            fl, hl = ff["layers"][name], hf["layers"][name]
            for key, value in fl.attrs.items():
                if key not in hl.attrs or not np.array_equal(np.asarray(hl.attrs[key]), np.asarray(value)):
                    failures.append(f"{name}: attribute {key} changed")
            op = fl.attrs["op"]
            for blob in fl:
                f, h = np.asarray(fl[blob]), np.asarray(hl[blob]) if blob in hl else None
                if h is None:
                    failures.append(f"{name}/{blob} missing")
                elif op in ("conv2d", "linear") and f.dtype == np.float32:
                    converted += f.size
                    if h.dtype != np.float16:
                        failures.append(f"{name}/{blob} is {h.dtype}, not float16")
                    elif not np.array_equal(h.view(np.uint16), f.astype(np.float16).view(np.uint16)):
                        failures.append(f"{name}/{blob} is not the round-to-nearest float16 of the weights")
                elif h.dtype != f.dtype or not np.array_equal(h, f):
                    failures.append(f"{name}/{blob} changed")
    float_bytes = json.load(open(float_json))["totals"]["param_bytes"]
    fp16_bytes = json.load(open(fp16_json))["totals"]["param_bytes"]
    print(f"{converted} weights as float16; parameter bytes {float_bytes} -> {fp16_bytes}")
    if 2 * fp16_bytes != float_bytes:
        failures.append(f"parameter bytes {fp16_bytes} are not half of {float_bytes}")
    for failure in failures[:20]:
        print("  FAIL " + failure)
    if failures:
        print(f"check_fp16: FAIL ({len(failures)} problems)", file=sys.stderr)
        return 1
    print("check_fp16: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
