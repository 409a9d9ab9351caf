"""Export a PyTorch CNN to a splitinfer model file (io/FORMAT.md, version 1)
and, optionally, write PyTorch's reference values for every layer.

Command line:

    /usr/bin/python3 models/export_torch.py --model NAME [--weights SD.pt | --weights FLOAT.h5]
        [--seed S] [--input-shape 1,3,H,W] [--no-fold-bn]
        [--quantize qnnpack --calib CALIB.h5 [--qat EPOCHS [--qat-images N]] [--no-fold-relu]
         [--test-accuracy fashion-mnist]]
        --out MODEL.h5 [--reference REF.h5 --input-file X.h5]

NAME is an entry of zoo.REGISTRY or a torchvision.models classification
builder. Without --weights the model is built after torch.manual_seed(S) and
every BatchNorm gets random statistics and affine parameters, so that BN
folding is exercised by the reference comparison. --weights FLOAT.h5 (a
splitinfer float model file) rebuilds the model from that file
(h5_module.py); NAME then only names the output.

--quantize qnnpack writes an int8 model (quantize_torch.py: PyTorch's eager
recipe for a torchvision model with a quantizable twin, FX otherwise,
calibrated on CALIB.h5 /input one input at a time, see make_calib.py), and
--reference then holds PyTorch's quantized values (uint8 + scale/zero_point,
/output_q). --qat EPOCHS quantizes by quantization-aware training instead
(FX prepare_qat_fx, qnnpack's QAT qconfig, EPOCHS epochs on Fashion-MNIST's
first --qat-images training images; CALIB.h5 then only gives an example
input); the converted model is exported the same way, so the file gives
PyTorch's integers. --test-accuracy measures the int8 PyTorch model's top-1 on the
dataset's test split and stores it as /meta test_accuracy.

This file is only the command line; the work is done by (models/ on sys.path):

    torch_models.load_model   the model by name, weights or seed
    fx_convert.export_model   torch.fx conversion of a float model, written by
                              model_file.write_model_file
    quantize_torch            the int8 recipes and their export
    reference                 read_input, write_reference and
                              write_quantized_reference (REF.h5)
"""
import argparse
import sys

import quantize_torch
from fx_convert import export_model
from model_file import ExportError
from reference import read_input, write_quantized_reference, write_reference
from torch_models import load_model


def _shape_arg(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (want e.g. 1,3,224,224)")


def quantize_and_export(args, model, shape, meta, source):
    """--quantize: PyTorch quantizes (quantize_torch.py), the file and the
    reference come from PyTorch's converted model."""
    calib, calib_desc = quantize_torch.read_calibration(args.calib, shape)
    qat = (args.qat, args.qat_images) if args.qat else None
    qmodel, gm, source = quantize_torch.quantize(args.model, model, calib, calib_desc, source, qat)
    meta = {k: v for k, v in meta.items() if k != "test_accuracy"}   # the float model's
    if args.test_accuracy:
        if args.test_accuracy != "fashion-mnist":
            raise ExportError(f"unknown dataset '{args.test_accuracy}' for --test-accuracy (known: fashion-mnist)")
        meta["test_accuracy"] = quantize_torch.fashion_accuracy(qmodel, shape)
        print(f"export_torch: int8 top-1 on the fashion-mnist test split: {meta['test_accuracy']:.4f}")
    layer_map, output = quantize_torch.export_quantized(gm, shape, args.out, args.model, source, meta,
                                                        calib[:1], fold_relu=not args.no_fold_relu)
    if args.reference:
        write_quantized_reference(qmodel, gm, read_input(args.input_file, shape), args.reference,
                                  layer_map, output)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="export_torch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", help="state_dict .pt, or a float splitinfer model .h5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input-shape", type=_shape_arg)
    parser.add_argument("--no-fold-bn", action="store_true")
    parser.add_argument("--quantize", choices=["qnnpack"], help="PyTorch post-training int8 quantization")
    parser.add_argument("--calib", metavar="CALIB.h5", help="calibration inputs for --quantize")
    parser.add_argument("--qat", type=int, metavar="EPOCHS",
                        help="--quantize: quantization-aware training for EPOCHS epochs on Fashion-MNIST's "
                             "training set (FX, qnnpack) instead of post-training calibration")
    parser.add_argument("--qat-images", type=int, default=60000, metavar="N",
                        help="--qat: train on the first N training images (default all 60000)")
    parser.add_argument("--no-fold-relu", action="store_true",
                        help="--quantize: keep quantized relu/relu6 as layers of their own")
    parser.add_argument("--test-accuracy", metavar="DATASET",
                        help="--quantize: measure the int8 model's top-1 on the test split "
                             "(fashion-mnist) and store it in /meta")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reference")
    parser.add_argument("--input-file")
    args = parser.parse_args(argv)
    if bool(args.reference) != bool(args.input_file):
        parser.error("--reference and --input-file go together")
    if bool(args.quantize) != bool(args.calib):
        parser.error("--quantize and --calib go together")
    if not args.quantize and (args.no_fold_relu or args.test_accuracy or args.qat):
        parser.error("--no-fold-relu, --test-accuracy and --qat need --quantize")
    if args.qat is not None and (args.qat < 1 or not 1 <= args.qat_images <= 60000):
        parser.error("--qat needs 1 epoch or more, and --qat-images 1 to 60000")
    try:
        model, shape, meta, source = load_model(args.model, args.weights, args.seed)
        shape = args.input_shape or shape
        if args.quantize:
            quantize_and_export(args, model, shape, meta, source)
            return 0
        layer_map = export_model(model, shape, args.out, args.model, source, meta,
                                 fold_bn=not args.no_fold_bn)
        if args.reference:
            write_reference(model, read_input(args.input_file, shape), args.reference, layer_map)
    except ExportError as e:
        print(f"export_torch: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
