"""make_bad_int8_files.py GOOD_INT8.h5 GOOD_FLOAT.h5 OUT_DIR: broken int8 model
files for the bad-input tests, each derived from a good file with one fault:

  scale_zero.h5          a quint8 layer whose scale is 0
  scale_nan.h5           a quint8 layer whose scale is NaN
  scale_not_float32.h5   a scale that no float32 holds (0.1)
  zero_point_300.h5      a zero point outside [0, 255]
  clamp_reversed.h5      a clamp [200, 100]
  unknown_dtype.h5       a layer of dtype 'qint4'
  weight_scale_negative.h5  a conv's weight_scale below 0
  int8_weight_float_op.h5   int8 weights on a float32 conv (from the float file)
  float_after_quint8.h5  a float32 layer reading a quint8 one
  unknown_requantization.h5 requantization 'fast'
"""
import os
import shutil
import sys

import h5py
import numpy as np


def copy(good, out_dir, name):
    path = os.path.join(out_dir, name)
    shutil.copyfile(good, path)
    return path


def layers_where(f, predicate):
    for name in f["layers"].attrs["order"]:
        name = name.decode() if isinstance(name, bytes) else name
        if predicate(f["layers"][name]):
            yield f["layers"][name]


def first(f, predicate, what):
    for layer in layers_where(f, predicate):
        return layer
    raise SystemExit(f"make_bad_int8_files: the model has no {what}")


def quint8(layer):
    dtype = layer.attrs.get("dtype", "float32")
    return (dtype.decode() if isinstance(dtype, bytes) else dtype) == "quint8"


def conv(layer):
    return layer.attrs["op"] == "conv2d"


def main():
    good, good_float, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    for name, value in (("scale_zero", 0.0), ("scale_nan", float("nan")), ("scale_not_float32", 0.1)):
        with h5py.File(copy(good, out_dir, name + ".h5"), "r+") as f:
            first(f, quint8, "quint8 layer").attrs["scale"] = value
    with h5py.File(copy(good, out_dir, "zero_point_300.h5"), "r+") as f:
        first(f, quint8, "quint8 layer").attrs["zero_point"] = 300
    with h5py.File(copy(good, out_dir, "clamp_reversed.h5"), "r+") as f:
        first(f, quint8, "quint8 layer").attrs["clamp"] = np.array([200, 100], np.int64)
    with h5py.File(copy(good, out_dir, "unknown_dtype.h5"), "r+") as f:
        first(f, quint8, "quint8 layer").attrs["dtype"] = "qint4"
    with h5py.File(copy(good, out_dir, "weight_scale_negative.h5"), "r+") as f:
        layer = first(f, lambda l: conv(l) and quint8(l), "quint8 conv2d")
        scale = layer["weight_scale"][...]
        del layer["weight_scale"]
        layer["weight_scale"] = -np.abs(scale)
    with h5py.File(copy(good_float, out_dir, "int8_weight_float_op.h5"), "r+") as f:
        layer = first(f, conv, "conv2d")
        weight = layer["weight"][...]
        del layer["weight"]
        layer["weight"] = np.clip(np.rint(weight * 100), -128, 127).astype(np.int8)
    with h5py.File(copy(good, out_dir, "float_after_quint8.h5"), "r+") as f:
        layer = first(f, lambda l: quint8(l) and l.attrs["op"] == "maxpool", "quint8 maxpool")
        for attr in ("dtype", "scale", "zero_point", "clamp"):
            if attr in layer.attrs:
                del layer.attrs[attr]
    with h5py.File(copy(good, out_dir, "unknown_requantization.h5"), "r+") as f:
        f.attrs["requantization"] = "fast"


if __name__ == "__main__":
    main()
