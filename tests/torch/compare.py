"""Compare the engine's output file with PyTorch's reference (io/FORMAT.md).

    /usr/bin/python3 tests/torch/compare.py REF.h5 OUT.h5 [--tol 1e-4] [--layers]

For every compared tensor the error is max|out - ref| / max|ref| (absolute
when ref is all zeros), so one tolerance fits layers of any magnitude. The
final output and, with --layers, every /layers/<name> of REF are compared;
the top-1 class (argmax of /output) must also be identical. Exit status 0
only when everything passes; 1 when a tensor differs, has another shape or
(with --layers) is missing from OUT; 2 when a file or /output is missing.
"""
import argparse
import sys

import h5py
import numpy as np


class Missing(Exception):
    pass


def open_file(path):
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise Missing(f"cannot open {path}: {e}")


def tensor(f, key):
    if key not in f:
        raise Missing(f"{f.filename} has no /{key}")
    return np.asarray(f[key], dtype=np.float64)


def relative_error(out, ref):
    peak = np.abs(ref).max() if ref.size else 0.0
    diff = np.abs(out - ref).max() if ref.size else 0.0
    return diff / peak if peak > 0 else diff


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("ref")
    parser.add_argument("out")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--layers", action="store_true", help="also compare every /layers/<name>")
    args = parser.parse_args(argv)
    try:
        ref, out = open_file(args.ref), open_file(args.out)
        ref_output, out_output = tensor(ref, "output"), tensor(out, "output")
        if args.layers and "layers" not in ref:
            raise Missing(f"{args.ref} has no /layers")
    except Missing as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 2
    names = ["output"] + ([f"layers/{n}" for n in ref["layers"]] if args.layers else [])
    failures, worst = [], (-1.0, None)
    for name in names:
        short = name.split("/")[-1]
        if name not in out:
            print(f"{short} MISSING")
            failures.append(f"layer {short} missing from {args.out}")
            continue
        r, o = tensor(ref, name), tensor(out, name)
        if o.shape != r.shape:
            print(f"{short} {list(r.shape)} SHAPE {list(o.shape)}")
            failures.append(f"{short} has shape {list(o.shape)}, reference {list(r.shape)}")
            continue
        err = relative_error(o, r)
        print(f"{short} {list(r.shape)} {err:.3e}")
        if err > worst[0]:
            worst = (err, short)
        if not err <= args.tol:   # also catches NaN
            failures.append(f"{short} error {err:.3e} > tolerance {args.tol:g}")
    print(f"model max relative error: {worst[0]:.3e} (layer {worst[1]})")
    ref_top, out_top = int(np.argmax(ref_output)), int(np.argmax(out_output))
    print(f"top-1: reference {ref_top}, output {out_top}")
    if ref_top != out_top:
        failures.append(f"top-1 differs: reference {ref_top}, output {out_top}")
    if failures:
        print(f"compare: FAIL ({len(failures)} problems): " + "; ".join(failures[:5]) +
              ("; ..." if len(failures) > 5 else ""), file=sys.stderr)
        return 1
    print("compare: PASS")
    return 0

if __name__ == "__main__":
    sys.exit(main())
