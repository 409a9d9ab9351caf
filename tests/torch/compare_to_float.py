"""Compare int8 (or float16-weight) runs with float runs of one model on the same inputs.

    /usr/bin/python3 tests/torch/compare_to_float.py --tol T [--require-top1]
        FLOAT_0.h5 INT8_0.h5 [FLOAT_1.h5 INT8_1.h5 ...]

Each pair is the `splitinfer run --output` file of the float model and of
its int8 model (or its float16-weight model: a file without /output_q) on
one input. For every pair:

- the error max|out - float| / max|float| of /output must be <= T;
- for an int8 output, /output_q (uint8) must be there with its scale and
  zero_point, and /output must equal its dequantization f32(q - zp) * scale;
- the top-1 classes are printed with the float model's margin (top-1 minus
  top-2 logit); with --require-top1 they must be identical (for trained
  models; a random-weight model's margins are often smaller than int8's
  error, so its top-1 is reported, not required).

Exit status 0 when every pair passes, 1 otherwise, 2 when a file is unreadable.
"""
import argparse
import sys

import h5py
import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare_to_float", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tol", type=float, required=True)
    parser.add_argument("--require-top1", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if len(args.files) % 2:
        parser.error("give FLOAT.h5 INT8.h5 pairs")
    failures, worst, agree = [], 0.0, 0
    pairs = list(zip(args.files[0::2], args.files[1::2]))
    for k, (float_path, int8_path) in enumerate(pairs):
        try:
            with h5py.File(float_path, "r") as f:
                ref = np.asarray(f["output"], dtype=np.float32).reshape(-1)
            with h5py.File(int8_path, "r") as f:
                out = np.asarray(f["output"], dtype=np.float32).reshape(-1)
                if "output_q" in f:
                    q = f["output_q"]
                    scale, zero_point = np.float32(q.attrs["scale"]), int(q.attrs["zero_point"])
                    dequantized = (np.asarray(q).astype(np.int32) - zero_point).astype(np.float32) * scale
                    if not np.array_equal(dequantized.reshape(-1), out):
                        failures.append(f"input {k}: /output is not the dequantized /output_q")
                elif any(np.issubdtype(f[n].dtype, np.integer) for n in f):
                    failures.append(f"input {k}: {int8_path} has an integer tensor but no /output_q")
        except (OSError, KeyError) as e:
            print(f"compare_to_float: error: {e}", file=sys.stderr)
            return 2
        error = float(np.abs(out - ref).max() / np.abs(ref).max())
        worst = max(worst, error)
        order = np.argsort(ref)[::-1]
        margin = float(ref[order[0]] - ref[order[1]]) if ref.size > 1 else float("inf")
        top_ref, top_out = int(order[0]), int(np.argmax(out))
        agree += top_ref == top_out
        print(f"input {k}: error {error:.3e}, top-1 float {top_ref} (margin {margin:.3g}), "
              f"quantized {top_out}")
        if not error <= args.tol:
            failures.append(f"input {k}: error {error:.3e} > {args.tol:g}")
        if args.require_top1 and top_ref != top_out:
            failures.append(f"input {k}: top-1 {top_out}, float {top_ref}")
    print(f"{len(pairs)} inputs: max error {worst:.3e} (tolerance {args.tol:g}), top-1 agrees on "
          f"{agree} of {len(pairs)}" + ("" if args.require_top1 else " (reported, not required)"))
    for failure in failures:
        print("  FAIL " + failure)
    if failures:
        print(f"compare_to_float: FAIL ({len(failures)} problems)", file=sys.stderr)
        return 1
    print("compare_to_float: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
