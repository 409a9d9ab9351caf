"""make_bad_files.py GOOD_MODEL.h5 OUT_DIR: writes the broken files the
bad-input tests feed to splitinfer, each derived from a good model file
(so each has exactly one fault):

  not_hdf5.h5           a text file
  truncated.h5          the first half of the model's bytes
  version99.h5          format_version 99
  missing_weight.h5     a conv layer without its weight dataset
  wrong_shape_weight.h5 a conv weight with one output channel too few
  nan_weight.h5         a NaN in a conv weight
  unknown_op.h5         a layer whose op is 'gelu'
  extra_weight.h5       a conv layer with a weight dataset no conv has
  window_too_large.h5   a max pool whose window is larger than its input
  input_wrong_shape.h5  an input with one row too many
  bad_image.png         bytes that are not an image
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


def first_conv(f):
    for name in f["layers"].attrs["order"]:
        name = name.decode() if isinstance(name, bytes) else name
        if f["layers"][name].attrs["op"] == "conv2d":
            return f["layers"][name]
    raise SystemExit("make_bad_files: the model has no conv2d layer")


def main():
    good, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "not_hdf5.h5"), "w") as f:
        f.write("this is not an HDF5 file\n")
    data = open(good, "rb").read()
    with open(os.path.join(out_dir, "truncated.h5"), "wb") as f:
        f.write(data[: len(data) // 2])
    with h5py.File(copy(good, out_dir, "version99.h5"), "r+") as f:
        f.attrs["format_version"] = 99
    with h5py.File(copy(good, out_dir, "missing_weight.h5"), "r+") as f:
        del first_conv(f)["weight"]
    with h5py.File(copy(good, out_dir, "wrong_shape_weight.h5"), "r+") as f:
        conv = first_conv(f)
        weight = conv["weight"][...]
        del conv["weight"]
        conv["weight"] = weight[:-1]
    with h5py.File(copy(good, out_dir, "nan_weight.h5"), "r+") as f:
        conv = first_conv(f)
        weight = conv["weight"][...]
        weight.flat[0] = np.nan
        conv["weight"][...] = weight
    with h5py.File(copy(good, out_dir, "unknown_op.h5"), "r+") as f:
        first_conv(f).attrs["op"] = "gelu"
    with h5py.File(copy(good, out_dir, "extra_weight.h5"), "r+") as f:
        first_conv(f)["extra"] = np.zeros(2, dtype=np.float32)
    with h5py.File(copy(good, out_dir, "window_too_large.h5"), "r+") as f:
        for name in f["layers"].attrs["order"]:
            layer = f["layers"][name.decode() if isinstance(name, bytes) else name]
            if layer.attrs["op"] == "maxpool":
                layer.attrs["kernel"] = np.array([1000, 1000], dtype=np.int64)
                layer.attrs["stride"] = np.array([1000, 1000], dtype=np.int64)
    with h5py.File(good, "r") as f:
        shape = [int(v) for v in f["meta"].attrs["input_shape"]]
    shape[2] += 1
    with h5py.File(os.path.join(out_dir, "input_wrong_shape.h5"), "w") as f:
        f["input"] = np.zeros(shape, dtype=np.float32)
    with open(os.path.join(out_dir, "bad_image.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)


if __name__ == "__main__":
    main()
