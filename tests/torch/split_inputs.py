"""Write single inputs for `splitinfer run --input`: PREFIX_0.h5, PREFIX_1.h5, ...
each /input float32 [1, C, H, W].

    /usr/bin/python3 tests/torch/split_inputs.py --from CALIB.h5 PREFIX
    /usr/bin/python3 tests/torch/split_inputs.py --fashion-test K --shape 1,1,H,W PREFIX

--from: every input of a calibration file (/input [K, C, H, W]), in order.
--fashion-test: the first K images of Fashion-MNIST's TEST split (t10k),
    preprocessed as models/make_calib.py preprocesses the training images.
Prints the number of files written.
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="split_inputs", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--from", dest="source", metavar="CALIB.h5")
    what.add_argument("--fashion-test", type=int, metavar="K")
    parser.add_argument("--shape", help="1,1,H,W (with --fashion-test)")
    parser.add_argument("prefix")
    args = parser.parse_args(argv)
    if args.source:
        with h5py.File(args.source, "r") as f:
            x = np.asarray(f["input"], dtype=np.float32)
    else:
        import make_calib
        shape = tuple(int(v) for v in args.shape.split(","))
        pixels, _ = make_calib.fashion_images("t10k", 0, args.fashion_test)
        x = make_calib.fashion_preprocess(pixels, shape).numpy().astype(np.float32)
    for k in range(x.shape[0]):
        with h5py.File(f"{args.prefix}_{k}.h5", "w") as f:
            f.create_dataset("input", data=x[k:k + 1])
    print(x.shape[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
