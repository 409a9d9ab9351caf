"""Compare the engine's output file with PyTorch's quantized reference, bit
for bit (io/FORMAT.md: quantized models).

    /usr/bin/python3 tests/torch/compare_quantized.py REF.h5 OUT.h5 [--float-tol 0] [--lsb 0]

REF.h5 is written by export_torch.py --quantize ... --reference, OUT.h5 by
`splitinfer run --output OUT.h5 --dump-layers`. Required:

- /output_q and every quint8 /layers/<name> of REF (uint8 with attributes
  scale and zero_point) are in OUT as uint8 with the same scale and zero
  point and EXACTLY the same values (0 LSB);
- /output and every float32 layer (dequantize outputs, float ops between
  quantized parts) within --float-tol of max|ref| (default 0: identical;
  dequantization is exact arithmetic);
- the same top-1 class.

--lsb K allows quint8 tensors to differ by up to K LSB (ONNX Runtime's
requantization is not PyTorch's bit for bit), and /output by K times
/output_q's scale.

Each tensor's line gives the number of differing elements and the largest
|diff| (in LSB for quint8). Exit status 0 only when everything passes; 1
when a tensor differs, has another shape, dtype or quantization, or is
missing; 2 when a file or /output is missing.
"""
import argparse
import sys

import h5py
import numpy as np


def open_file(path):
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise SystemExit(f"compare_quantized: error: cannot open {path}: {e}")


def quantization(ds):
    if "scale" not in ds.attrs or "zero_point" not in ds.attrs:
        return None
    return float(ds.attrs["scale"]), int(ds.attrs["zero_point"])


def compare(name, ref, out, float_tol, lsb=0.0, output_scale=None):
    """(line to print, failure or None) for one tensor."""
    r, o = np.asarray(ref), np.asarray(out)
    if o.shape != r.shape:
        return f"{name} {list(r.shape)} SHAPE {list(o.shape)}", f"{name} has shape {list(o.shape)}"
    quantized = r.dtype == np.uint8
    if quantized:
        if o.dtype != np.uint8:
            return f"{name} DTYPE {o.dtype}", f"{name} is {o.dtype}, the reference is quint8 (uint8)"
        if quantization(out) != quantization(ref):
            return (f"{name} QPARAMS {quantization(out)} vs {quantization(ref)}",
                    f"{name} scale/zero_point {quantization(out)}, reference {quantization(ref)}")
    diff = np.abs(o.astype(np.float64) - r.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    differing = int((diff > 0).sum())
    if quantized:
        line = f"{name} {list(r.shape)} quint8: {differing} differ, max |diff| {worst:g} LSB"
        return line, (f"{name}: {differing} elements differ, max {worst:g} LSB" if worst > lsb else None)
    if name == "output" and lsb and output_scale:
        line = f"{name} {list(r.shape)} float32: {differing} differ, max |diff| {worst / output_scale:.3g} LSB"
        return line, (f"{name}: max |diff| {worst / output_scale:.3g} LSB > {lsb:g}"
                      if worst > lsb * output_scale * (1 + 1e-6) else None)
    peak = float(np.abs(r).max()) if r.size else 0.0
    error = worst / peak if peak > 0 else worst
    line = f"{name} {list(r.shape)} float32: {differing} differ, max |diff| {worst:.3g} (relative {error:.3g})"
    return line, (f"{name}: relative error {error:.3g} > {float_tol:g}" if not error <= float_tol else None)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare_quantized", description=__doc__.split("\n\n")[0])
    parser.add_argument("ref")
    parser.add_argument("out")
    parser.add_argument("--float-tol", type=float, default=0.0,
                        help="float32 tensors: allowed max|diff| / max|ref| (default 0)")
    parser.add_argument("--lsb", type=float, default=0.0,
                        help="quint8 tensors: allowed max|diff| in LSB (default 0)")
    args = parser.parse_args(argv)
    ref, out = open_file(args.ref), open_file(args.out)
    for f in (ref, out):
        if "output" not in f:
            print(f"compare_quantized: error: {f.filename} has no /output", file=sys.stderr)
            return 2
    names = ["output"] + (["output_q"] if "output_q" in ref else []) + \
        [f"layers/{n}" for n in (ref["layers"] if "layers" in ref else [])]
    failures, exact = [], 0
    for name in names:
        if name not in out:
            print(f"{name} MISSING")
            failures.append(f"{name} missing from {args.out}")
            continue
        scale = float(out["output_q"].attrs["scale"]) if "output_q" in out else None
        line, failure = compare(name, ref[name], out[name], args.float_tol, args.lsb, scale)
        print(line)
        if failure:
            failures.append(failure)
        elif ref[name].dtype == np.uint8 and np.array_equal(ref[name], out[name]):
            exact += 1
    ref_top, out_top = int(np.argmax(ref["output"])), int(np.argmax(out["output"]))
    print(f"top-1: reference {ref_top}, output {out_top}")
    if ref_top != out_top:
        failures.append(f"top-1 differs: reference {ref_top}, output {out_top}")
    if failures:
        print(f"compare_quantized: FAIL ({len(failures)} problems): " + "; ".join(failures[:5]) +
              ("; ..." if len(failures) > 5 else ""), file=sys.stderr)
        return 1
    quantized = sum(1 for name in names if name in ref and ref[name].dtype == np.uint8)
    print(f"compare_quantized: PASS ({exact} of {quantized} quint8 tensors identical, "
          f"the others within {args.lsb:g} LSB)" if args.lsb else
          f"compare_quantized: PASS ({exact} quint8 tensors identical, 0 LSB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
