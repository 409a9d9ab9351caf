"""Compare the engine's output file with PyTorch's reference (io/FORMAT.md).

    /usr/bin/python3 tests/torch/compare.py REF.h5 OUT.h5 [--tol 1e-4] [--layers]

For every compared tensor the error is max|out - ref| / max|ref| (absolute
when ref is all zeros), so one tolerance fits layers of any magnitude. The
final output and, with --layers, every /layers/<name> of REF are compared;
the top-1 class (argmax of /output) must also be identical. Exit status 0
only when everything passes, 1 on a mismatch, 2 on a missing file or tensor.
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
        names = ["output"]
        if args.layers:
            if "layers" not in ref:
                raise Missing(f"{args.ref} has no /layers")
            names += [f"layers/{n}" for n in ref["layers"]]
        failures, worst = [], (-1.0, None)
        for name in names:
            r = tensor(ref, name)
            if name not in out:
                print(f"{name} MISSING in {args.out}")
                failures.append(f"{name} missing")
                continue
            o = tensor(out, name)
            if o.shape != r.shape:
                print(f"{name} shape {list(o.shape)} != reference {list(r.shape)}")
                failures.append(f"{name} shape")
                continue
            err = relative_error(o, r)
            print(f"{name.split('/')[-1]} {list(r.shape)} {err:.3e}")
            if err > worst[0]:
                worst = (err, name.split("/")[-1])
            if not err <= args.tol:
                failures.append(f"{name} error {err:.3e} > {args.tol:g}")
        print(f"model max relative error: {worst[0]:.3e} (layer {worst[1]})")
        ref_top, out_top = int(np.argmax(tensor(ref, "output"))), int(np.argmax(tensor(out, "output")))
        print(f"top-1: reference {ref_top}, output {out_top}")
        if ref_top != out_top:
            failures.append("top-1 differs")
    except Missing as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 2
    if failures:
        print(f"compare: FAIL: {len(failures)} problem(s), first: {failures[0]}", file=sys.stderr)
        return 1
    print("compare: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
