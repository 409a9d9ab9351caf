"""Write a calibration file for int8 quantization: /input float32 [K, C, H, W],
K inputs that export_torch.py --quantize feeds to the prepared model one at a
time (a batch of one each), in file order.

    /usr/bin/python3 models/make_calib.py --dataset fashion-mnist --count K --shape 1,1,H,W --out CALIB.h5
    /usr/bin/python3 models/make_calib.py --images DIR [--count K] --shape 1,C,H,W
        [--meta-from MODEL.h5] --out CALIB.h5
    /usr/bin/python3 models/make_calib.py --random [--seed S] --count K --shape 1,C,H,W --out CALIB.h5

--dataset fashion-mnist: the first K images of the TRAINING split, preprocessed
    exactly as models/train_fashion.py trains on them: pixel/255, normalised
    with the Fashion-MNIST mean/std, then (when H, W differ from 28) resized
    with F.interpolate(bilinear, align_corners=False).
--images DIR: the *.png/*.jpg files of DIR in name order (the first K), each
    preprocessed as the float reference path does (tests/torch/image_input.py):
    decoded by torchvision, pixel_scale, bilinear resize (align_corners=False),
    mean/std, channel order, all taken from MODEL.h5's /meta, or by default
    from zoo.fashion_meta() for 1 channel and zoo.imagenet_meta() for 3.
--random: standard-normal values from numpy's default_rng(S), as make_input.py.

The root attribute `source` says which inputs the file holds; the exporter
copies it into the quantized model's `source`.
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_fashion  # noqa: E402
import zoo  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class CalibError(Exception):
    """A bad argument or input; the message is one line."""


# ----------------------------------------------------------------- Fashion-MNIST
def fashion_images(split, start, count):
    """uint8 [count, 28, 28] images start.. of the 'train' or 't10k' split, and
    their labels."""
    images, labels = train_fashion.load_split(split)
    if start + count > len(images):
        raise CalibError(f"fashion-mnist {split} has {len(images)} images, asked for "
                         f"{start}..{start + count - 1}")
    return images[start:start + count], labels[start:start + count]


def fashion_preprocess(pixels_u8, shape):
    """uint8 [K, 28, 28] -> float32 tensor [K, 1, H, W], as train_fashion.py
    feeds its models: normalise, then bilinear resize to H x W if needed."""
    _, c, h, w = shape
    if c != 1:
        raise CalibError(f"fashion-mnist images have 1 channel, the shape asks for {c}")
    x = train_fashion.normalise(pixels_u8)
    if (h, w) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x


# ----------------------------------------------------------------- images
def preprocess_image(image_path, meta, shape):
    """PyTorch's preprocessing of one image file as a model's /meta describes
    it: float32 tensor [1, C, H, W]. tests/torch/image_input.py uses it for the
    float references, so calibration images go through the same code."""
    import torchvision
    from torchvision.io import ImageReadMode
    _, c, h, w = (int(v) for v in shape)
    mode = ImageReadMode.GRAY if c == 1 else ImageReadMode.RGB
    x = torchvision.io.read_image(image_path, mode).float() * float(meta["pixel_scale"])
    if meta["channel_order"] == "bgr":
        x = x.flip(0)
    x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)
    mean = torch.tensor(np.asarray(meta["mean"], dtype=np.float32)).view(1, c, 1, 1)
    std = torch.tensor(np.asarray(meta["std"], dtype=np.float32)).view(1, c, 1, 1)
    return (x - mean) / std


def read_meta(model_path):
    try:
        with h5py.File(model_path, "r") as f:
            return dict(f["meta"].attrs)
    except (OSError, KeyError) as e:
        raise CalibError(f"cannot read /meta from {model_path}: {e}")


def default_meta(channels):
    if channels == 1:
        return zoo.fashion_meta()
    if channels == 3:
        return zoo.imagenet_meta()
    raise CalibError(f"no default preprocessing for {channels} channels: give --meta-from MODEL.h5")


# ----------------------------------------------------------------- main
def _shape(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise CalibError(f"--shape must be 1,C,H,W with positive C, H, W, got {text!r}")
    return shape


def make(args):
    shape = _shape(args.shape)
    if args.count is not None and args.count < 1:
        raise CalibError(f"--count must be at least 1, got {args.count}")
    if args.dataset is not None:
        if args.dataset != "fashion-mnist":
            raise CalibError(f"unknown dataset '{args.dataset}' (known: fashion-mnist)")
        if args.count is None:
            raise CalibError("--dataset needs --count")
        pixels, _ = fashion_images("train", 0, args.count)
        x = fashion_preprocess(pixels, shape)
        source = (f"fashion-mnist training images 0..{args.count - 1}, normalised as "
                  f"train_fashion.py" + (f", resized bilinear to {shape[2]}x{shape[3]}"
                                         if shape[2:] != (28, 28) else ""))
    elif args.images is not None:
        try:
            files = sorted(f for f in os.listdir(args.images) if f.lower().endswith(IMAGE_SUFFIXES))
        except OSError as e:
            raise CalibError(f"cannot list {args.images}: {e.strerror}")
        if not files:
            raise CalibError(f"no .png/.jpg images in {args.images}")
        count = len(files) if args.count is None else args.count
        if count > len(files):
            raise CalibError(f"{args.images} has {len(files)} images, asked for {count}")
        meta = read_meta(args.meta_from) if args.meta_from else default_meta(shape[1])
        meta_name = (f"{os.path.basename(args.meta_from)} /meta" if args.meta_from else
                     "zoo.fashion_meta()" if shape[1] == 1 else "zoo.imagenet_meta()")
        if len(meta["mean"]) != shape[1]:
            raise CalibError(f"the preprocessing has {len(meta['mean'])} channels, the shape {shape[1]}")
        x = torch.cat([preprocess_image(os.path.join(args.images, f), meta, shape)
                       for f in files[:count]])
        source = (f"images {', '.join(files[:count])} of {os.path.basename(os.path.normpath(args.images))}/, "
                  f"preprocessed as {meta_name} says at {shape[2]}x{shape[3]}")
    else:
        if args.count is None:
            raise CalibError("--random needs --count")
        x = torch.from_numpy(np.random.default_rng(args.seed).standard_normal(
            (args.count,) + shape[1:], dtype=np.float32))
        source = f"{args.count} standard-normal inputs, numpy default_rng({args.seed})"
    with h5py.File(args.out, "w") as f:
        f.attrs["source"] = source
        f.create_dataset("input", data=x.numpy().astype(np.float32))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_calib", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help="fashion-mnist")
    what.add_argument("--images", metavar="DIR")
    what.add_argument("--random", action="store_true")
    parser.add_argument("--count", type=int)
    parser.add_argument("--shape", required=True, help="1,C,H,W: one input of the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--meta-from", metavar="MODEL.h5")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        make(args)
    except CalibError as e:
        print(f"make_calib: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
