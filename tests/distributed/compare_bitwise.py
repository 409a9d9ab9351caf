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


def compare(one_path, many_path):
    """None when every tensor of ONE_PATH is in MANY_PATH bit for bit (printing how many),
    else what differs first."""
    with h5py.File(one_path, "r") as one, h5py.File(many_path, "r") as many:
        compared = 0
        for name, expected in tensors(one):
            if name not in many:
                return f"compare_bitwise: {name} is missing from {many_path}"
            got = many[name][...]
            if got.shape != expected.shape or got.tobytes() != expected.tobytes():
                bits = np.uint8 if expected.dtype.itemsize == 1 else np.uint32
                where = np.argwhere(got.view(bits) != expected.view(bits)) if got.shape == expected.shape else []
                return (f"compare_bitwise: {name} differs (shape {got.shape} vs {expected.shape}; "
                        f"{len(where)} elements differ, first at {where[0].tolist() if len(where) else '-'})")
            compared += 1
    print(f"compare_bitwise: {compared} tensors equal bit for bit")
    return None


def main():
    failure = compare(sys.argv[1], sys.argv[2])
    if failure:
        print(failure)
    sys.exit(1 if failure else 0)


if __name__ == "__main__":
    main()
