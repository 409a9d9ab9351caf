#!/usr/bin/python3
"""Structured channel pruning of a Fashion-MNIST model, fine-tuned, written
as a smaller dense float model file.

    /usr/bin/python3 models/prune.py --model cnn_on_mcu --weights models/fashion/cnn_on_mcu.pt
        --sparsity 0.5 [--rank l1|bn] [--epochs 5] [--lr 1e-3] [--distill]
        [--teacher MODEL=WEIGHTS ...] [--temperature 4] [--reinit] [--weight-decay 1e-4]
        [--seed 0] [--holdout N [--select-seeds K]] [--train-images N] [--test-images N]
        --out PRUNED.h5 [--state-dict PRUNED.pt] [--reference REF.h5 --input-file X.h5]

Which channels can go: the output channels of a convolution whose map
reaches exactly one convolution or linear layer, through element-wise ops,
pools, BatchNorms, depthwise convolutions and a flatten only (no add, concat
or other reader, which would tie its channels to another layer's): in
MobileNetV2, an inverted residual's hidden channels (expansion, depthwise,
projection). Removing channel k removes row k of that convolution (and its
bias), channel k of every BatchNorm and depthwise convolution on the way,
and what reads it: input channel k of the next convolution, or the H x W
columns of block k of the next linear layer's input. The model stays dense, with fewer channels:
less flash, RAM and MACs on every node.

Ranking (--rank): l1, the L1 norm of each channel's weights divided by the
mean of its layer's norms (so layers compare); bn, the |gamma| of the
BatchNorm after the convolution (CNN_on_MCU's and network slimming's
criterion; only where one follows). The --sparsity fraction of all prunable
channels with the lowest scores goes, globally, keeping one per layer at
least; then --epochs of fine-tuning on Fashion-MNIST's training set
(models/train_fashion.py's AdamW one-cycle, lr --lr; with --distill also
toward the unpruned model's softened outputs, and with --teacher toward the
mean of the logits of the unpruned model (with --distill) and of other
trained models, each at its own input size, an ensemble a small student
learns more from than from its unpruned self). With --reinit the pruned
model's weights start from a fresh random initialisation instead of the
kept ones (the pruned architecture trained anew, Liu et al., "Rethinking
the Value of Network Pruning", ICLR 2019): what the unpruned model knew
then reaches it only through distillation. Prints the parameters
and the top-1 on all 10,000 test images before and after, and writes the
model with fx_convert.export_model (the same path as every float export).

Choosing a seed without the test set (--holdout N, --select-seeds K): the
last N of the 60,000 training images are held out. The pruned model is
neither trained on them nor given its teachers' logits for them (those are
computed on the remaining images only); its top-1 on them is printed. With
--select-seeds K, seeds --seed .. --seed+K-1 are each trained alike (the
same pruned channels, each seed's own initialisation with --reinit and its
own batch order; seed S gives what --seed S alone gives), and the one with
the highest held-out top-1 is written (ties: the lowest seed). Only then is
each one's test top-1 measured and printed, for transparency: it plays no
part in the choice. The held-out images are kept from the pruned model's
training only: the unpruned model (whose weights rank the channels) and
the --teacher models were trained on all 60,000.
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_fashion  # noqa: E402
from fx_convert import export_model  # noqa: E402
from model_file import ExportError  # noqa: E402
from reference import read_input, write_reference  # noqa: E402
from torch_models import load_model  # noqa: E402

# Ops a channel passes through unchanged (one input channel -> that output channel).
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity, nn.Hardswish,
                 nn.SiLU, nn.Sigmoid)
_PASS_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6,
                   torch.nn.functional.max_pool2d}


def parameters(model):
    return sum(p.numel() for p in model.parameters())


def _depthwise(module):
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels == module.out_channels > 1


def prunable(model):
    """[(conv name, batchnorm name or None, [modules between, sliced too],
    reader name, reader kind, flatten)] for each convolution whose channels
    can be removed (module docstring)."""
    gm = fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    found = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d):
            continue
        if modules[node.target].groups != 1:
            continue   # a depthwise convolution's channels are its input's
        bn, flatten, current, between = None, False, node, []
        while True:
            users = list(current.users)
            if len(users) != 1:
                break
            user = users[0]
            module = modules.get(user.target) if user.op == "call_module" else None
            if _depthwise(module) or isinstance(module, nn.BatchNorm2d):
                if isinstance(module, nn.BatchNorm2d) and bn is None and current is node:
                    bn = user.target
                between.append(user.target)   # channel k stays channel k: sliced alike
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                if isinstance(module, nn.Conv2d) and module.groups != 1:
                    break
                found.append((node.target, bn, between, user.target,
                              "linear" if isinstance(module, nn.Linear) else "conv", flatten))
                break
            elif isinstance(module, nn.Flatten) or (user.op == "call_function" and user.target is torch.flatten):
                flatten = True
            elif not (isinstance(module, _PASS_MODULES) or
                      (user.op == "call_function" and user.target in _PASS_FUNCTIONS)):
                break
            current = user
    return found


def scores(model, found, rank):
    modules = dict(model.named_modules())
    result = []
    for conv, bn, _, _, _, _ in found:
        if rank == "bn":
            if bn is None:
                raise ExportError(f"--rank bn: no BatchNorm follows convolution '{conv}'")
            s = modules[bn].weight.detach().abs()
        else:
            s = modules[conv].weight.detach().abs().flatten(1).sum(1)
            s = s / s.mean()
        result.append(s.numpy())
    return result


def _replace(model, name, module):
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], module)


def prune(model, sparsity, rank="l1"):
    """The model with the lowest-scored `sparsity` fraction of its prunable
    channels removed (in place); returns {conv: channels kept}."""
    found = prunable(model)
    if not found:
        raise ExportError(f"{type(model).__name__} has no convolution whose channels can be removed alone")
    all_scores = scores(model, found, rank)
    flat = np.concatenate(all_scores)
    remove = int(round(sparsity * flat.size))
    threshold_order = np.argsort(flat, kind="stable")[:remove]
    drop = np.zeros(flat.size, dtype=bool)
    drop[threshold_order] = True
    kept, offset = {}, 0
    modules = dict(model.named_modules())
    for (conv, bn, between, reader, kind, flatten), s in zip(found, all_scores):
        mask = ~drop[offset:offset + s.size]
        offset += s.size
        if not mask.any():   # one channel at least
            mask[int(np.argmax(s))] = True
        keep = torch.tensor(np.nonzero(mask)[0])
        kept[conv] = len(keep)
        old = modules[conv]
        new = nn.Conv2d(old.in_channels, len(keep), old.kernel_size, old.stride, old.padding, old.dilation,
                        bias=old.bias is not None, padding_mode=old.padding_mode)
        new.weight.data = old.weight.data[keep].clone()
        if old.bias is not None:
            new.bias.data = old.bias.data[keep].clone()
        _replace(model, conv, new)
        for name in between:   # BatchNorms and depthwise convolutions on the way
            b = modules[name]
            if isinstance(b, nn.BatchNorm2d):
                nb = nn.BatchNorm2d(len(keep), b.eps, b.momentum, b.affine, b.track_running_stats)
                for attr in ("weight", "bias"):
                    if getattr(b, attr) is not None:
                        getattr(nb, attr).data = getattr(b, attr).data[keep].clone()
                nb.running_mean.data = b.running_mean[keep].clone()
                nb.running_var.data = b.running_var[keep].clone()
            else:
                nb = nn.Conv2d(len(keep), len(keep), b.kernel_size, b.stride, b.padding, b.dilation,
                               groups=len(keep), bias=b.bias is not None, padding_mode=b.padding_mode)
                nb.weight.data = b.weight.data[keep].clone()
                if b.bias is not None:
                    nb.bias.data = b.bias.data[keep].clone()
            _replace(model, name, nb)
        r = modules[reader]
        if kind == "conv":
            nr = nn.Conv2d(len(keep), r.out_channels, r.kernel_size, r.stride, r.padding, r.dilation,
                           bias=r.bias is not None, padding_mode=r.padding_mode)
            nr.weight.data = r.weight.data[:, keep].clone()
        else:
            per_channel = r.in_features // old.out_channels if flatten else 1
            if r.in_features != old.out_channels * per_channel:
                raise ExportError(f"linear '{reader}' reads {r.in_features} features, not a whole number "
                                  f"per channel of '{conv}'")
            columns = (keep[:, None] * per_channel + torch.arange(per_channel)[None, :]).reshape(-1)
            nr = nn.Linear(len(columns), r.out_features, bias=r.bias is not None)
            nr.weight.data = r.weight.data[:, columns].clone()
        if r.bias is not None:
            nr.bias.data = r.bias.data.clone()
        _replace(model, reader, nr)
        modules = dict(model.named_modules())
    return kept


def load_teacher(name, weights, seed):
    """(name, model, resolution or None) of a --teacher that reads 1-channel images."""
    model, shape, _, _ = load_model(name, weights, seed)
    if tuple(shape[1:2]) != (1,):
        raise ExportError(f"--teacher '{name}' takes {shape[1]} channels; Fashion-MNIST images have 1")
    return name, model.eval(), (shape[2] if shape[2] != 28 else None)


def teacher_logits(teachers, x, y, batch=500):
    """The mean of the teachers' logits on every image of x, [len(x), classes]."""
    total = None
    for name, model, res in teachers:
        with torch.no_grad():
            logits = torch.cat([model(train_fashion.upscale(x[i:i + batch], res) if res else x[i:i + batch])
                                for i in range(0, len(x), batch)])
        accuracy = (logits.argmax(1) == y).float().mean().item()
        print(f"prune: teacher {name}: top-1 {100 * accuracy:.2f}% on the {len(x)} training images",
              flush=True)
        total = logits if total is None else total + logits
    return total / len(teachers)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="prune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a models/zoo.py or torchvision name")
    parser.add_argument("--weights", required=True, help="the trained state_dict .pt, or a float model .h5")
    parser.add_argument("--sparsity", type=float, required=True, help="fraction of prunable channels removed")
    parser.add_argument("--rank", choices=["l1", "bn"], default="l1")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs (0: none)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--distill", action="store_true",
                        help="fine-tune toward the unpruned model's outputs too (knowledge distillation)")
    parser.add_argument("--teacher", action="append", default=[], metavar="MODEL=WEIGHTS",
                        help="also distil toward this trained model's outputs (a models/zoo.py name and "
                             "its weights, .pt or .h5; repeatable): the mean of its logits and the other "
                             "teachers' on every training image, computed once before fine-tuning")
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation's softening (default 4)")
    parser.add_argument("--reinit", action="store_true",
                        help="train the pruned model from freshly initialised weights (seeded by --seed) "
                             "instead of fine-tuning the kept ones")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW's weight decay (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the batch order and, with --reinit, the fresh weights; with "
                             "--select-seeds the first of the seeds tried (default 0)")
    parser.add_argument("--holdout", type=int, default=0, metavar="N",
                        help="hold out the last N of the 60,000 training images: not trained on, no teacher "
                             "logits taken on them; the pruned model's top-1 on them is printed and chooses "
                             "among --select-seeds (default 0: none held out)")
    parser.add_argument("--select-seeds", type=int, default=1, metavar="K",
                        help="train seeds --seed .. --seed+K-1 alike and write the one with the highest top-1 "
                             "on the --holdout images (ties: the lowest seed); each one's test top-1 is "
                             "printed after the choice, which it does not influence (default 1; needs "
                             "--holdout and --epochs)")
    parser.add_argument("--train-images", type=int, default=None, metavar="N",
                        help="fine-tune on the first N training images (default: all 60,000 but the "
                             "--holdout ones)")
    parser.add_argument("--test-images", type=int, default=10000,
                        help="measure top-1 on the first N test images (default all 10000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--state-dict", help="also save the pruned model's state_dict here")
    parser.add_argument("--reference", help="write PyTorch's values of every layer of the pruned model here")
    parser.add_argument("--input-file", help="--reference: the input (/input)")
    args = parser.parse_args(argv)
    if bool(args.reference) != bool(args.input_file):
        parser.error("--reference and --input-file go together")
    if not 0 < args.sparsity < 1:
        parser.error("--sparsity must be between 0 and 1 (exclusive)")
    if not 0 <= args.holdout < 60000:
        parser.error("--holdout must be between 0 and 59999: the training set has 60000 images, and one "
                     "at least must be trained on")
    available = 60000 - args.holdout
    if args.train_images is None:
        args.train_images = available
    if not 1 <= args.train_images <= available or not 1 <= args.test_images <= 10000:
        parser.error(f"--train-images must be between 1 and {available} (60000 training images"
                     f"{f', the last {args.holdout} held out' if args.holdout else ''}), "
                     "--test-images between 1 and 10000")
    if args.select_seeds < 1:
        parser.error("--select-seeds must be 1 or more")
    if args.select_seeds > 1 and not args.holdout:
        parser.error("--select-seeds needs --holdout: the seeds are compared on held-out training images, "
                     "never on the test set")
    if args.select_seeds > 1 and not args.epochs:
        parser.error("--select-seeds needs --epochs: without training every seed gives the same model")
    teachers = []
    for spec in args.teacher:
        name, _, weights = spec.partition("=")
        if not name or not weights:
            parser.error(f"--teacher '{spec}': expected MODEL=WEIGHTS, as in "
                         "fashion_mobilenetv2=models/fashion/mobilenetv2_035_96.h5")
        teachers.append((name, weights))
    if args.temperature <= 0:
        parser.error("--temperature must be positive")
    if args.weight_decay < 0:
        parser.error("--weight-decay must be 0 or more")
    if args.reinit and not args.epochs:
        parser.error("--reinit needs --epochs: a freshly initialised model must be trained")
    torch.set_num_threads(args.threads)
    try:
        model, shape, meta, source = load_model(args.model, args.weights, args.seed)
        if tuple(shape[1:2]) != (1,):
            raise ExportError(f"'{args.model}' takes {shape[1]} channels; Fashion-MNIST images have 1")
        res = shape[2] if shape[2] != 28 else None
        tr_img, tr_lab = train_fashion.load_split("train")
        te_img, te_lab = train_fashion.load_split("t10k")
        if len(tr_img) != 60000:
            raise ExportError(f"expected 60000 Fashion-MNIST training images, found {len(tr_img)}")
        # The held-out images are the last --holdout ones; training (and the
        # teachers' logits) only ever sees the first --train-images of the rest.
        x_tr = train_fashion.normalise(tr_img[:args.train_images])
        y_tr = torch.from_numpy(tr_lab[:args.train_images])
        x_ho = train_fashion.normalise(tr_img[len(tr_img) - args.holdout:]) if args.holdout else None
        y_ho = torch.from_numpy(tr_lab[len(tr_img) - args.holdout:]) if args.holdout else None
        x_te = train_fashion.normalise(te_img[:args.test_images])
        y_te = torch.from_numpy(te_lab[:args.test_images])
        teacher = copy.deepcopy(model).eval() if args.distill else None   # stays in eval mode
        before_params = parameters(model)
        before, _ = train_fashion.evaluate(model, x_te, y_te, res=res)
        print(f"prune: {args.model}: {before_params} parameters, top-1 {100 * before:.2f}%", flush=True)
        kept = prune(model, args.sparsity, args.rank)
        after_params = parameters(model)
        pruned, _ = train_fashion.evaluate(model, x_te, y_te, res=res)
        print(f"prune: kept {kept} channels: {after_params} parameters "
              f"({100 * (1 - after_params / before_params):.2f}% fewer), top-1 {100 * pruned:.2f}% "
              f"before fine-tuning", flush=True)
        if args.epochs and teachers:
            teacher = teacher_logits(([(args.model, teacher, res)] if teacher is not None else []) +
                                     [load_teacher(name, weights, args.seed) for name, weights in teachers],
                                     x_tr, y_tr)
        seeds = list(range(args.seed, args.seed + args.select_seeds))
        trained = []   # (seed, model, held-out images right or None)
        for seed in seeds:
            candidate = copy.deepcopy(model) if len(seeds) > 1 else model
            if args.epochs:
                torch.manual_seed(seed)
                if args.reinit:
                    for module in candidate.modules():
                        if hasattr(module, "reset_parameters"):
                            module.reset_parameters()
                    print(f"prune: weights initialised afresh (seed {seed})", flush=True)
                label = "retrain" if args.reinit else "fine-tune"
                candidate, seconds = train_fashion.train(
                    candidate, x_tr, y_tr, args.epochs, args.lr, seed, res=res,
                    label=f"{label} seed {seed}" if len(seeds) > 1 else label, teacher=teacher,
                    temperature=args.temperature, weight_decay=args.weight_decay)
            candidate.eval()
            right = None
            if args.holdout:
                held, _ = train_fashion.evaluate(candidate, x_ho, y_ho, res=res)
                right = int(round(held * args.holdout))
                print(f"prune: seed {seed}: held-out top-1 {100 * held:.2f}% ({right}/{args.holdout} of the "
                      f"last {args.holdout} training images)"
                      f"{f', trained in {seconds:.0f} s' if args.epochs else ''}", flush=True)
            trained.append((seed, candidate, right))
        # The choice: held-out images only (the first of the best, the lowest seed).
        chosen = 0
        for i, (_, _, right) in enumerate(trained):
            if len(trained) > 1 and right > trained[chosen][2]:
                chosen = i
        seed, model, right = trained[chosen]
        if len(trained) > 1:
            best = [s for s, _, r in trained if r == right]
            print(f"prune: chose seed {seed}: the highest held-out top-1 of seeds {seeds[0]}-{seeds[-1]}, "
                  f"{100 * right / args.holdout:.2f}% ({right}/{args.holdout})"
                  f"{f' (tied with seeds {best[1:]}: the lowest kept)' if len(best) > 1 else ''}; "
                  f"the test set was not used", flush=True)
            # For transparency only, after the choice: every seed's test top-1.
            for s, candidate, r in trained:
                test, _ = train_fashion.evaluate(candidate, x_te, y_te, res=res)
                print(f"prune: seed {s}: held-out top-1 {100 * r / args.holdout:.2f}%, test top-1 "
                      f"{100 * test:.2f}%{' (chosen)' if s == seed else ''}", flush=True)
        after, _ = train_fashion.evaluate(model, x_te, y_te, res=res)
        print(f"prune: after {args.epochs} epochs of {'training' if args.reinit else 'fine-tuning'}: "
              f"top-1 {100 * after:.2f}% "
              f"({100 * (after - before):+.2f} points)", flush=True)
        model.eval()
        meta = dict(meta, test_accuracy=float(after))
        held_out = ""
        if args.holdout:
            held_out = f", the last {args.holdout} held out (top-1 {right / args.holdout:.4f} on them"
            held_out += (f"; seed {seed} chosen of {seeds[0]}-{seeds[-1]} by it)" if len(seeds) > 1 else ")")
        source = (f"{source}, channels pruned by models/prune.py (--sparsity {args.sparsity}, --rank "
                  f"{args.rank}: kept {kept}), {'retrained from fresh weights' if args.reinit else 'fine-tuned'}"
                  f"{' with distillation' if args.distill else ''}"
                  f"{' from ' + ', '.join(args.teacher) if teachers else ''} "
                  f"{args.epochs} epochs on {args.train_images} "
                  f"Fashion-MNIST training images{held_out} (lr {args.lr}, seed {seed}); {before_params} -> "
                  f"{after_params} parameters; test accuracy {after:.4f}")
        layer_map = export_model(model, tuple(shape), args.out, f"{args.model}_pruned", source, meta)
        if args.reference:
            write_reference(model, read_input(args.input_file, shape), args.reference, layer_map)
        if args.state_dict:
            torch.save(model.state_dict(), args.state_dict)
        print(f"prune: wrote {args.out}")
    except (ExportError, OSError) as e:
        print(f"prune: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
