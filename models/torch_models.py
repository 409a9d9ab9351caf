"""A PyTorch model by name, built as export_torch.py exports it and
bench_torch.py times it, so that both scripts run one model.

    load_model(name, weights=None, seed=0) -> (model, input_shape, meta, source)

NAME is an entry of zoo.REGISTRY or a torchvision.models classification
builder. Without weights the model is built after torch.manual_seed(seed) and
every BatchNorm gets random statistics and affine parameters, so that BN
folding is exercised by the reference comparison. weights: a state_dict (.pt)
for that model, or a splitinfer float model file (.h5), which is then rebuilt
as a module by h5_module.py (NAME only names the result).
"""
import os

import torch
import torch.nn as nn
import torchvision

import h5_module
import zoo
from model_file import ExportError, one_line


def _randomize_batchnorm(model):
    """Random running statistics and affine parameters (drawn from the seeded
    torch RNG): freshly built BNs are identities, which would test nothing."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.normal_(0.0, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, 0.1)


def load_model(name, weights=None, seed=0):
    """(model, default input shape, meta, source) for a zoo or torchvision name
    (see the module docstring)."""
    torch.manual_seed(seed)
    if weights and weights.endswith(".h5"):
        try:
            model, shape, meta, _, _ = h5_module.build_module(weights)
        except h5_module.H5ModuleError as e:
            raise ExportError(str(e))
        return model, shape, meta, f"{os.path.basename(weights)} (rebuilt by models/h5_module.py)"
    if name in zoo.REGISTRY:
        model, shape, meta = zoo.build(name)
        source = f"models/zoo.py {name}"
    elif name in torchvision.models.list_models(module=torchvision.models):
        model = getattr(torchvision.models, name)(weights=None)
        shape, meta = (1, 3, 224, 224), zoo.imagenet_meta()
        source = f"torchvision.models.{name}"
    else:
        raise ExportError(f"unknown model '{name}' (neither in models/zoo.py nor a "
                          f"torchvision.models classifier)")
    if weights:
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu"))
        except Exception as e:
            raise ExportError(f"cannot load weights {weights}: {one_line(e)}")
        source += f", weights {os.path.basename(weights)}"
    else:
        _randomize_batchnorm(model)
        source += f", seed {seed}"
    return model.eval(), shape, meta, source
