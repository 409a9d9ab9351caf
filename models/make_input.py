"""Write a seeded random input file (io/FORMAT.md, `X.h5`): /input float32
[N, C, H, W] of standard-normal values, for reference runs and tests that need
an input without decoding an image.

    /usr/bin/python3 models/make_input.py --shape 1,3,96,96 [--seed 0] --out X.h5
"""
import argparse
import sys

import h5py
import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_input", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", required=True, help="N,C,H,W, e.g. 1,3,96,96")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        shape = tuple(int(v) for v in args.shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        parser.error(f"--shape must be four positive integers N,C,H,W, got {args.shape!r}")
    x = np.random.default_rng(args.seed).standard_normal(shape, dtype=np.float32)
    with h5py.File(args.out, "w") as f:
        f.create_dataset("input", data=x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
