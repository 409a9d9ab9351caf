"""make_corrupt_files.py WORK_DIR: writes the damaged files the integrity
tests feed to splitinfer, each derived from a good file in WORK_DIR (good.h5,
fp16.h5, plan/, other_plan/), with exactly one fault. Bits are flipped in the
raw bytes of the file at a dataset's chunk, as disk corruption would, so the
dataset's fletcher32 checksum is stale; attributes are edited with h5py and,
unless the name says "resealed", the content digest is left as it was:

  bitflip_weight.h5              a bit of the first conv weight of good.h5 (Python writer)
  bitflip_fp16_weight.h5         a bit of the first conv weight of fp16.h5 (C++ writer)
  stride_changed.h5              the first conv's stride changed in good.h5
  bitflip_node_plan/             a bit of a weight in node_1.h5
  bitflip_regions_plan/          a bit of plan.h5's /regions
  op_renamed_plan/               a relu renamed relu6 in plan.h5's graph
  op_renamed_resealed_plan/      the same, with plan.h5's content digest recomputed
  plan_attribute_edited_plan/    plan.h5's ram_cap_bytes changed
  node_unchecksummed_plan/       node_1.h5's weight rewritten without its checksum
  stale_node_plan/               node_1.h5 of the plan of another model (other.h5),
                                 its plan_id forged to this plan's and resealed
"""
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
from model_file import seal  # noqa: E402


def first_conv_weight(f, layers="layers"):
    """The path of the first conv2d layer's weight dataset (model or plan graph)."""
    order = f[layers].attrs["order"]
    for name in order:
        name = name.decode() if isinstance(name, bytes) else name
        if f[layers][name].attrs["op"] == "conv2d":
            return f"{layers}/{name}/weight"
    raise SystemExit("make_corrupt_files: the model has no conv2d layer")


def flip_bit(path, dataset):
    """Flips one bit in the middle of `dataset`'s stored bytes in the file at `path`."""
    with h5py.File(path, "r") as f:
        dset = f[dataset]
        if dset.chunks:
            info = dset.id.get_chunk_info(0)
            offset, size = info.byte_offset, info.size
        else:
            offset, size = dset.id.get_offset(), dset.id.get_storage_size()
    with open(path, "r+b") as raw:
        raw.seek(offset + size // 2)
        byte = raw.read(1)[0]
        raw.seek(offset + size // 2)
        raw.write(bytes([byte ^ 0x10]))


def copy_plan(work, source, name):
    target = os.path.join(work, name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.join(work, source), target)
    return target


def rename_relu(plan_h5):
    with h5py.File(plan_h5, "r+") as f:
        layers = f["model/layers"]
        for name in layers.attrs["order"]:
            name = name.decode() if isinstance(name, bytes) else name
            if layers[name].attrs["op"] == "relu":
                layers[name].attrs["op"] = "relu6"
                return
    raise SystemExit("make_corrupt_files: the plan's graph has no relu layer")


def main():
    work = sys.argv[1]
    good = os.path.join(work, "good.h5")

    path = os.path.join(work, "bitflip_weight.h5")
    shutil.copyfile(good, path)
    with h5py.File(path, "r") as f:
        weight = first_conv_weight(f)
    flip_bit(path, weight)

    path = os.path.join(work, "bitflip_fp16_weight.h5")
    shutil.copyfile(os.path.join(work, "fp16.h5"), path)
    with h5py.File(path, "r") as f:
        weight = first_conv_weight(f)
    flip_bit(path, weight)

    path = os.path.join(work, "stride_changed.h5")
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        conv = f[first_conv_weight(f)].parent
        conv.attrs["stride"] = np.array([2, 2], dtype=np.int64)

    plan = copy_plan(work, "plan", "bitflip_node_plan")
    node = os.path.join(plan, "node_1.h5")
    with h5py.File(node, "r") as f:
        weights = f["weights"]
        layer = sorted(weights.keys())[0]
        dataset = f"weights/{layer}/weight"
    flip_bit(node, dataset)

    plan = copy_plan(work, "plan", "bitflip_regions_plan")
    flip_bit(os.path.join(plan, "plan.h5"), "regions")

    plan = copy_plan(work, "plan", "op_renamed_plan")
    rename_relu(os.path.join(plan, "plan.h5"))

    plan = copy_plan(work, "plan", "op_renamed_resealed_plan")
    rename_relu(os.path.join(plan, "plan.h5"))
    seal(os.path.join(plan, "plan.h5"))

    plan = copy_plan(work, "plan", "plan_attribute_edited_plan")
    with h5py.File(os.path.join(plan, "plan.h5"), "r+") as f:
        f.attrs["ram_cap_bytes"] = np.int64(1 << 30)

    plan = copy_plan(work, "plan", "node_unchecksummed_plan")
    node = os.path.join(plan, "node_1.h5")
    with h5py.File(node, "r+") as f:
        group = f["weights"][sorted(f["weights"].keys())[0]]
        weight = group["weight"][...]
        del group["weight"]
        group.create_dataset("weight", data=weight)  # contiguous: no checksum

    plan = copy_plan(work, "plan", "stale_node_plan")
    node = os.path.join(plan, "node_1.h5")
    shutil.copyfile(os.path.join(work, "other_plan", "node_1.h5"), node)
    with h5py.File(os.path.join(plan, "plan.h5"), "r") as f:
        plan_id = f.attrs["plan_id"]
    with h5py.File(node, "r+") as f:
        f.attrs["plan_id"] = plan_id
    seal(node)


if __name__ == "__main__":
    main()
