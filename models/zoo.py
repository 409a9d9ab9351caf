"""Model registry: every model splitinfer ships or tests that is not a plain
torchvision classifier.

build(name) returns (module, default input shape N,C,H,W, metadata dict for
/meta in the model file). Names not found here are looked up in
torchvision.models by export_torch.py.
"""
import torch
import torch.nn as nn
import torchvision

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Fashion-MNIST training-set pixel statistics (pixels scaled to 0..1).
FASHION_MEAN = 0.2860
FASHION_STD = 0.3530


def fashion_meta():
    return {"channel_order": "gray", "pixel_scale": 1.0 / 255.0,
            "mean": [FASHION_MEAN], "std": [FASHION_STD], "resize": "bilinear",
            "class_names": FASHION_CLASSES, "dataset": "fashion-mnist"}


def imagenet_meta():
    return {"channel_order": "rgb", "pixel_scale": 1.0 / 255.0,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "resize": "bilinear"}


class CnnOnMcu(nn.Module):
    """The CNN of CNN_on_MCU: 28x28x1 -> conv 12@3x3 -> ReLU -> maxpool 2 ->
    flatten -> dense 10 (valid padding, as in its Keras definition)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 12, 3)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(12 * 13 * 13, num_classes)

    def forward(self, x):
        x = self.pool(self.relu(self.conv(x)))   # [N,12,13,13]
        return self.fc(torch.flatten(x, 1))


def fashion_mobilenetv2(num_classes=10):
    """MobileNetV2 width 0.35 for 96x96 single-channel Fashion-MNIST images."""
    model = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=num_classes)
    first = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, first.out_channels, 3, 2, 1, bias=False)
    return model


REGISTRY = {
    "cnn_on_mcu": lambda: (CnnOnMcu(), (1, 1, 28, 28), fashion_meta()),
    "fashion_mobilenetv2": lambda: (fashion_mobilenetv2(), (1, 1, 96, 96), fashion_meta()),
}


def build(name):
    if name not in REGISTRY:
        raise KeyError(name)
    return REGISTRY[name]()
