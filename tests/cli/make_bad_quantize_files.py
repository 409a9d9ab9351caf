"""make_bad_quantize_files.py GOOD_MODEL.h5 OUT_DIR: the files the bad-input
tests of `splitinfer quantize` need, derived from a good float model (the
CNN_on_MCU CNN: input 1x1x28x28, conv -> relu -> maxpool -> flatten -> fc):

  calib.h5              2 good calibration inputs [2, 1, 28, 28]
  calib_wrong_shape.h5  /input [2, 1, 32, 32]
  calib_no_input.h5     the inputs under /images instead of /input
  calib_empty.h5        /input [0, 1, 28, 28]
  calib_nan.h5          a NaN in input 1
  batchnorm.h5          the model with a batchnorm between conv and relu
  sigmoid.h5            the model with its relu replaced by a sigmoid
"""
import os
import shutil
import sys

import h5py
import numpy as np


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def main():
    good, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28), dtype=np.float32)
    for name, data, key in [("calib.h5", x, "input"),
                            ("calib_wrong_shape.h5", np.zeros((2, 1, 32, 32), np.float32), "input"),
                            ("calib_no_input.h5", x, "images"),
                            ("calib_empty.h5", np.zeros((0, 1, 28, 28), np.float32), "input")]:
        with h5py.File(os.path.join(out_dir, name), "w") as f:
            f[key] = data
    nan = x.copy()
    nan[1, 0, 3, 4] = np.nan
    with h5py.File(os.path.join(out_dir, "calib_nan.h5"), "w") as f:
        f["input"] = nan

    path = os.path.join(out_dir, "batchnorm.h5")
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        layers = f["layers"]
        order = [text(n) for n in layers.attrs["order"]]
        conv = next(n for n in order if text(layers[n].attrs["op"]) == "conv2d")
        relu = order[order.index(conv) + 1]
        channels = int(layers[conv].attrs["output_shape"][1])
        bn = layers.create_group("bn")
        bn.attrs["op"] = "batchnorm"
        bn.attrs["inputs"] = [conv]
        bn.attrs["output_shape"] = layers[conv].attrs["output_shape"]
        bn.attrs["eps"] = 1e-5
        for blob, value in [("gamma", 1.0), ("beta", 0.0), ("running_mean", 0.0), ("running_var", 1.0)]:
            bn[blob] = np.full(channels, value, np.float32)
        layers[relu].attrs["inputs"] = ["bn"]
        order.insert(order.index(conv) + 1, "bn")
        layers.attrs["order"] = order

    path = os.path.join(out_dir, "sigmoid.h5")
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        for name in f["layers"].attrs["order"]:
            layer = f["layers"][text(name)]
            if text(layer.attrs["op"]) == "relu":
                layer.attrs["op"] = "sigmoid"


if __name__ == "__main__":
    main()
