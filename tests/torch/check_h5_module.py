"""Check that models/h5_module.py rebuilds a float model file faithfully.

    /usr/bin/python3 tests/torch/check_h5_module.py MODEL.h5 REF.h5 [--tol 1e-5]

Builds the torch module of MODEL.h5, runs it on REF.h5's /input, and
compares /output and every /layers/<name> of REF.h5 (written by
export_torch.py from the original PyTorch model, whose layer names the file
keeps): max|out - ref| / max|ref| must be <= tol. Exit status 0 on success, 1
when a layer differs or is missing, 2 when a file cannot be read or rebuilt.
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import h5_module  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="check_h5_module", description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("ref")
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    try:
        gm, _, _, _, _ = h5_module.build_module(args.model)
        ref = h5py.File(args.ref, "r")
        x = torch.from_numpy(np.asarray(ref["input"], dtype=np.float32))
    except (h5_module.H5ModuleError, OSError, KeyError) as e:
        print(f"check_h5_module: error: {e}", file=sys.stderr)
        return 2
    values = {}

    class Capture(torch.fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            values[n.name] = result.detach().clone()
            return result

    with torch.no_grad():
        values["output"] = Capture(gm).run(x)
    failures, worst = [], (-1.0, "")
    for name in ["output"] + [f"layers/{n}" for n in ref["layers"]]:
        short = name.split("/")[-1]
        r = np.asarray(ref[name], dtype=np.float64)
        if short not in values or tuple(values[short].shape) != r.shape:
            failures.append(f"{short} missing or of another shape")
            continue
        diff = np.abs(values[short].numpy().astype(np.float64) - r).max()
        err = diff / max(np.abs(r).max(), 1e-30)
        worst = max(worst, (err, short))
        if not err <= args.tol:
            failures.append(f"{short} error {err:.3e} > {args.tol:g}")
    print(f"{len(ref['layers'])} layers of {os.path.basename(args.model)}: max relative error "
          f"{worst[0]:.3e} (layer {worst[1]})")
    if failures:
        print("check_h5_module: FAIL: " + "; ".join(failures[:5]), file=sys.stderr)
        return 1
    print("check_h5_module: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
