"""image_input.py MODEL.h5 IMAGE OUT.h5 [IMAGE OUT.h5...]: PyTorch's preprocessing of IMAGE as
MODEL.h5's /meta describes it (decode with torchvision, scale by
pixel_scale, resize with F.interpolate(bilinear, align_corners=False),
normalise by mean/std, channel order; models/make_calib.py's
preprocess_image), written as /input of OUT.h5; several images in one
process (importing torch takes seconds).

make IMAGE --size HxW --channels C [--seed S]: writes a seeded random
8-bit image (.png or .jpg) for the tests."""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
from make_calib import preprocess_image  # noqa: E402  (shared with the calibration files)


def preprocess(model_path, image_path, out_path):
    with h5py.File(model_path, "r") as f:
        meta = dict(f["meta"].attrs)
    x = preprocess_image(image_path, meta, meta["input_shape"])
    with h5py.File(out_path, "w") as f:
        f["input"] = x.numpy().astype(np.float32)


def make(image_path, size, channels, seed):
    h, w = (int(v) for v in size.split("x"))
    generator = torch.Generator().manual_seed(seed)
    # Smooth content (a random low-resolution image upscaled) so that JPEG
    # compression stays close to the pixels.
    low = torch.rand(channels, max(h // 4, 1), max(w // 4, 1), generator=generator)
    image = (F.interpolate(low[None], size=(h, w), mode="bilinear", align_corners=False)[0] * 255).round()
    image = image.clamp(0, 255).to(torch.uint8)
    if image_path.endswith(".png"):
        torchvision.io.write_png(image, image_path)
    else:
        torchvision.io.write_jpeg(image, image_path, quality=95)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("image")
        parser.add_argument("--size", required=True)
        parser.add_argument("--channels", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        args = parser.parse_args()
        make(args.image, args.size, args.channels, args.seed)
    else:
        if len(sys.argv) < 4 or len(sys.argv) % 2:
            sys.exit("usage: image_input.py MODEL.h5 IMAGE OUT.h5 [IMAGE OUT.h5...]")
        for image, out in zip(sys.argv[2::2], sys.argv[3::2]):
            preprocess(sys.argv[1], image, out)
