"""compare_bitwise.py ONE_NODE.h5 DISTRIBUTED.h5: /output (/output_q) and every /layers/<name>
of a distributed run equal the one-node run bit for bit (the design's
invariant 2). Prints the first differing tensor; exit 0 when all are equal."""
import sys

import h5py
import numpy as np


def tensors(f):
    yield "output", f["output"][...]
    if "output_q" in f:  # int8 models
        yield "output_q", f["output_q"][...]
    if "layers" in f:
        for name in f["layers"]:
            yield "layers/" + name, f["layers"][name][...]


def main():
    one, many = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
    compared = 0
    for name, expected in tensors(one):
        if name not in many:
            print(f"compare_bitwise: {name} is missing from {sys.argv[2]}")
            sys.exit(1)
        got = many[name][...]
        if got.shape != expected.shape or got.tobytes() != expected.tobytes():
            bits = np.uint8 if expected.dtype.itemsize == 1 else np.uint32
            where = np.argwhere(got.view(bits) != expected.view(bits)) if got.shape == expected.shape else []
            print(f"compare_bitwise: {name} differs (shape {got.shape} vs {expected.shape}; "
                  f"{len(where)} elements differ, first at {where[0].tolist() if len(where) else '-'})")
            sys.exit(1)
        compared += 1
    print(f"compare_bitwise: {compared} tensors equal bit for bit")


if __name__ == "__main__":
    main()
