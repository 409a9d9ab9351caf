"""make_bad_limits_files.py GOOD_MODEL.h5 OUT_DIR: writes the files the
bad-input tests of splitinfer's limits feed it, each with one fault. The
bombs are small on disk and declare (or inflate to) far more:

  meta_nan_mean.h5          /meta mean [NaN]
  meta_inf_std.h5           /meta std [inf]
  meta_zero_std.h5          /meta std [0]
  meta_tiny_std.h5          /meta std [1e-30]
  meta_nan_pixel_scale.h5   /meta pixel_scale NaN
  meta_huge_pixel_scale.h5  /meta pixel_scale 1e30
  meta_huge_mean.h5         /meta mean [1e300]
  meta_nan_accuracy.h5      /meta test_accuracy NaN
  duplicate_layer.h5        /layers order names the conv layer twice
  newline_op.h5             a layer whose op is "gel\\nu"
  newline_input_name.h5     a layer whose input is named "co\\nnv\\x1b[31m"
  nan_leaky_slope.h5        a relu turned into a leaky_relu of slope NaN
  huge_image.png            a 20000x20000 gray PNG (a few hundred KB)
  huge_image.jpg            a JPEG whose header says 60000x60000
  huge_bmp.png              a BMP (named .png) whose header says 30000x30000
  huge_input.h5             /input declared 1x1x100000x100000 (never written)
  huge_calib.h5             /input declared 100000x1x28x28 x 10 (never written)
  bomb_images/              Fashion-MNIST files: images whose header is right
                            but that inflate to 100 MB more
  bomb_declared/            images whose header declares 2^24 x 28 x 28
  bomb_labels/              labels whose header declares 2^31 labels
"""
import gzip
import io
import os
import shutil
import struct
import sys
import zlib

import h5py
import numpy as np
from PIL import Image


def copy(good, out_dir, name):
    path = os.path.join(out_dir, name)
    shutil.copyfile(good, path)
    return path


def layer_names(f):
    return [n.decode() if isinstance(n, bytes) else n for n in f["layers"].attrs["order"]]


def layer_of_op(f, op):
    for name in layer_names(f):
        if f["layers"][name].attrs["op"] == op:
            return name
    raise SystemExit("make_bad_limits_files: the model has no " + op + " layer")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path, side):
    """A gray 8-bit PNG of side x side zeros, compressed row by row."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the pixels
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) +
                png_chunk(b"IEND", b""))


def huge_jpeg(path, side):
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)  # height, width
    open(path, "wb").write(bytes(data))


def huge_bmp(path, side):
    pixels = 4 * 4
    header = b"BM" + struct.pack("<IHHI", 54 + pixels, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, pixels, 2835, 2835, 0, 0)
    open(path, "wb").write(header + info + bytes(pixels))


def idx_gzip(path, magic, dims, data_bytes):
    """An IDX file whose header says `dims`, followed by `data_bytes` zeros."""
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims))
        chunk = bytes(1 << 20)
        left = data_bytes
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def main():
    good, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for name, attr, value in [
        ("meta_nan_mean.h5", "mean", np.array([np.nan])),
        ("meta_inf_std.h5", "std", np.array([np.inf])),
        ("meta_zero_std.h5", "std", np.array([0.0])),
        ("meta_tiny_std.h5", "std", np.array([1e-30])),
        ("meta_nan_pixel_scale.h5", "pixel_scale", np.nan),
        ("meta_huge_pixel_scale.h5", "pixel_scale", 1e30),
        ("meta_huge_mean.h5", "mean", np.array([1e300])),
        ("meta_nan_accuracy.h5", "test_accuracy", np.nan),
    ]:
        with h5py.File(copy(good, out_dir, name), "r+") as f:
            f["meta"].attrs[attr] = value
    with h5py.File(copy(good, out_dir, "duplicate_layer.h5"), "r+") as f:
        names = layer_names(f)
        conv = layer_of_op(f, "conv2d")
        names.insert(names.index(conv), conv)
        f["layers"].attrs["order"] = np.array(names, dtype=h5py.string_dtype())
    with h5py.File(copy(good, out_dir, "newline_op.h5"), "r+") as f:
        f["layers"][layer_of_op(f, "conv2d")].attrs["op"] = "gel\nu"
    with h5py.File(copy(good, out_dir, "newline_input_name.h5"), "r+") as f:
        layer = f["layers"][layer_of_op(f, "conv2d")]
        layer.attrs["inputs"] = np.array(["co\nnv\x1b[31m"], dtype=h5py.string_dtype())
    with h5py.File(copy(good, out_dir, "nan_leaky_slope.h5"), "r+") as f:
        layer = f["layers"][layer_of_op(f, "relu")]
        layer.attrs["op"] = "leaky_relu"
        layer.attrs["negative_slope"] = np.nan
    huge_png(os.path.join(out_dir, "huge_image.png"), 20000)
    huge_jpeg(os.path.join(out_dir, "huge_image.jpg"), 60000)
    huge_bmp(os.path.join(out_dir, "huge_bmp.png"), 30000)
    with h5py.File(os.path.join(out_dir, "huge_input.h5"), "w") as f:
        f.create_dataset("input", shape=(1, 1, 100000, 100000), dtype="f4", chunks=(1, 1, 64, 64))
    with h5py.File(os.path.join(out_dir, "huge_calib.h5"), "w") as f:
        f.create_dataset("input", shape=(1000000, 1, 28, 28), dtype="f4", chunks=(1, 1, 28, 28))
    images, labels = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    for folder in ("bomb_images", "bomb_declared", "bomb_labels"):
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    count = 10
    idx_gzip(os.path.join(out_dir, "bomb_images", images), 0x803, [count, 28, 28],
             count * 28 * 28 + (100 << 20))
    idx_gzip(os.path.join(out_dir, "bomb_images", labels), 0x801, [count], count)
    idx_gzip(os.path.join(out_dir, "bomb_declared", images), 0x803, [1 << 24, 28, 28], 1 << 20)
    idx_gzip(os.path.join(out_dir, "bomb_declared", labels), 0x801, [1 << 24], 1 << 20)
    idx_gzip(os.path.join(out_dir, "bomb_labels", images), 0x803, [count, 28, 28], count * 784)
    idx_gzip(os.path.join(out_dir, "bomb_labels", labels), 0x801, [1 << 31], 1 << 20)


if __name__ == "__main__":
    main()
