"""An int8 model's output against a reference, in LSB of the output's scale.

    /usr/bin/python3 tests/onnx/compare_lsb.py REF.h5 OUT.h5 [--lsb 1 | --report-only]

OUT.h5 is `splitinfer run --output` of a quint8 model (/output_q: uint8 with
scale and zero point; /output its value). With /output_q in REF (ONNX
Runtime's integers, export_onnx.py --reference) the integers are compared;
otherwise REF's /output (e.g. PyTorch's dequantized output) is taken in
units of OUT's scale. Prints the count of elements that differ and the
largest difference in LSB; with --lsb K exit status 1 when an element
differs by more than K LSB or the top-1 class differs (--report-only: 0,
unless a file is unusable: 2).
"""
import argparse
import sys

import h5py
import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare_lsb", description=__doc__.split("\n\n")[0])
    parser.add_argument("ref")
    parser.add_argument("out")
    parser.add_argument("--lsb", type=float, default=0.0)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    try:
        with h5py.File(args.ref, "r") as ref, h5py.File(args.out, "r") as out:
            q = out["output_q"]
            scale, zp = float(q.attrs["scale"]), int(q.attrs["zero_point"])
            got = np.asarray(q).astype(np.float64)
            if "output_q" in ref:
                want = np.asarray(ref["output_q"]).astype(np.float64)
                what = "integers"
            else:
                want = np.asarray(ref["output"], dtype=np.float64) / scale + zp
                what = "dequantized output / scale"
    except (OSError, KeyError) as e:
        print(f"compare_lsb: error: {e}", file=sys.stderr)
        return 2
    if got.shape != want.shape:
        print(f"compare_lsb: error: output shape {list(got.shape)}, reference {list(want.shape)}", file=sys.stderr)
        return 2
    diff = np.abs(got - want)
    worst = float(diff.max())
    differing = int((diff > 1e-3).sum())
    ref_top, out_top = int(np.argmax(want)), int(np.argmax(got))
    print(f"{differing} of {got.size} output elements differ ({what}), max {worst:.3g} LSB, "
          f"top-1 {ref_top} vs {out_top}")
    if args.report_only:
        return 0
    if worst > args.lsb + 1e-3 or ref_top != out_top:
        print(f"compare_lsb: FAIL: max {worst:.3g} LSB > {args.lsb:g} or top-1 differs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
