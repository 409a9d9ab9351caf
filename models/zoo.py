"""Model registry: every model splitinfer ships or tests that is not a plain
torchvision classifier.

build(name) returns (module, default input shape N,C,H,W, metadata dict for
/meta in the model file). Names not found here are looked up in
torchvision.models by torch_models.py.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock

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


def darknet_meta():
    """Darknet feeds RGB pixels scaled to 0..1, without mean/std normalisation."""
    return {"channel_order": "rgb", "pixel_scale": 1.0 / 255.0,
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "bilinear"}


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


def fashion_cnn_teacher(num_classes=10):
    """A larger Fashion-MNIST CNN (four 3x3 convolutions with BatchNorm, 32 to
    128 channels, two max pools), trained only to teach: models/prune.py
    distils a pruned cnn_on_mcu toward its outputs (--teacher). 28x28x1 input."""
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
                         *block(64, 128), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 7 * 7, num_classes))


def fashion_mobilenetv2(num_classes=10):
    """MobileNetV2 width 0.35 for 96x96 single-channel Fashion-MNIST images."""
    model = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=num_classes)
    first = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, first.out_channels, 3, 2, 1, bias=False)
    return model


def _darknet(cfg, in_channels=3):
    """An nn.Sequential from a darknet-like list: ("conv", filters, size) is
    conv (pad size//2, no bias) + BatchNorm + LeakyReLU(0.1); ("max", size,
    stride, padding) is a max pool. Modules are named conv<i>, bn<i>,
    leaky<i>, pool<i> after the darknet layer index i, so the exported layer
    names are the darknet layer numbers."""
    modules = OrderedDict()
    for i, layer in enumerate(cfg):
        if layer[0] == "conv":
            _, filters, size = layer
            modules[f"conv{i}"] = nn.Conv2d(in_channels, filters, size, 1, size // 2, bias=False)
            modules[f"bn{i}"] = nn.BatchNorm2d(filters)
            modules[f"leaky{i}"] = nn.LeakyReLU(0.1, inplace=True)
            in_channels = filters
        else:
            _, size, stride, padding = layer
            modules[f"pool{i}"] = nn.MaxPool2d(size, stride, padding)
    return modules, in_channels


class YoloV2First16(nn.Sequential):
    """The first 16 layers of YOLOv2 (darknet cfg/yolo.cfg = yolov2.cfg,
    layers 0-15), the part DeepThings distributes with fused tile
    partitioning:

        0 conv 32 3x3   1 max 2/2   2 conv 64 3x3   3 max 2/2
        4 conv 128 3x3  5 conv 64 1x1   6 conv 128 3x3  7 max 2/2
        8 conv 256 3x3  9 conv 128 1x1  10 conv 256 3x3 11 max 2/2
        12 conv 512 3x3 13 conv 256 1x1 14 conv 512 3x3 15 conv 256 1x1

    Every conv is conv (stride 1, same padding, no bias) + BatchNorm +
    LeakyReLU(0.1). Darknet's 2x2/2 max pool equals PyTorch's MaxPool2d(2, 2)
    on the even sizes used here. A backbone: the output is layer 15's feature
    map, [1, 256, H/16, W/16] (38x38 for the default 608x608 input).
    """

    CFG = [("conv", 32, 3), ("max", 2, 2, 0), ("conv", 64, 3), ("max", 2, 2, 0),
           ("conv", 128, 3), ("conv", 64, 1), ("conv", 128, 3), ("max", 2, 2, 0),
           ("conv", 256, 3), ("conv", 128, 1), ("conv", 256, 3), ("max", 2, 2, 0),
           ("conv", 512, 3), ("conv", 256, 1), ("conv", 512, 3), ("conv", 256, 1)]

    def __init__(self):
        super().__init__(_darknet(self.CFG)[0])


class TinyYoloV2(nn.Sequential):
    """Tiny-YOLOv2 for VOC (darknet cfg/tiny-yolo-voc.cfg), up to the region
    layer:

        0 conv 16  1 max 2/2  2 conv 32  3 max 2/2  4 conv 64  5 max 2/2
        6 conv 128  7 max 2/2  8 conv 256  9 max 2/2  10 conv 512
        11 max 3/1 pad 1  12 conv 1024  13 conv 1024  14 conv 125 1x1

    3x3 convs are conv (no bias) + BatchNorm + LeakyReLU(0.1); layer 14 is a
    plain 1x1 conv with bias (5 anchors x (20 classes + 5)). Deviation from
    darknet: darknet's layer 11 is a 2x2 stride-1 max pool padded on the
    bottom/right only to keep the size; PyTorch pads symmetrically, so a 2x2
    pool cannot keep the size. MaxPool2d(3, 1, 1) keeps it (same shapes,
    slightly larger window). Output [1, 125, H/32, W/32] (13x13 for 416x416).
    """

    CFG = [("conv", 16, 3), ("max", 2, 2, 0), ("conv", 32, 3), ("max", 2, 2, 0),
           ("conv", 64, 3), ("max", 2, 2, 0), ("conv", 128, 3), ("max", 2, 2, 0),
           ("conv", 256, 3), ("max", 2, 2, 0), ("conv", 512, 3), ("max", 3, 1, 1),
           ("conv", 1024, 3), ("conv", 1024, 3)]

    def __init__(self, num_outputs=125):
        modules, channels = _darknet(self.CFG)
        modules[f"conv{len(self.CFG)}"] = nn.Conv2d(channels, num_outputs, 1)
        super().__init__(modules)


class ResNet18Trunk(nn.Module):
    """A ResNet18 feature extractor of base width `width` (torchvision's is
    64): stem conv 7x7/2 + BN + ReLU + max pool 3/2, four stages of two
    BasicBlocks with width, 2, 4, 8 x width channels, global average pool and
    flatten, giving [N, 8 x width] features."""

    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, channels = [], width
        for i, planes in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or channels != planes:
                downsample = nn.Sequential(nn.Conv2d(channels, planes, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes))
            stages.append(nn.Sequential(BasicBlock(channels, planes, stride, downsample),
                                        BasicBlock(planes, planes)))
            channels = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.flatten(self.avgpool(x))


class ResNet18Split2(nn.Module):
    """ResNet18 as an FPL19-style split network: two independent half-width
    ResNet18 trunks (32, 64, 128, 256 channels) see the same input and
    exchange nothing until their pooled features are concatenated (2 x 256 =
    512) for the shared classifier Linear(512, classes). Each branch can run
    on its own node. Module-derived layer names start with branch0_ or
    branch1_ (residual adds are fx function nodes, named add, add_1, ...)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.branch0 = ResNet18Trunk(32)
        self.branch1 = ResNet18Trunk(32)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(torch.cat([self.branch0(x), self.branch1(x)], 1))


class ResizeNet(nn.Module):
    """A small net of the interpolations ONNX's Resize spells: bilinear up
    by 2 (half-pixel), bicubic down to 3/4 with the corners aligned, nearest
    up by 1.5 (no integer factor), between 3x3 convolutions; then a global
    average pool and a classifier. For the ONNX import only (models/
    onnx_convert.py turns each Resize into the resize op's tap tables);
    the PyTorch path (fx_convert.py) has no bilinear or bicubic op."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = torch.relu(self.conv2(x))
        h, w = x.shape[2] * 3 // 4, x.shape[3] * 3 // 4
        x = nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=True)
        x = nn.functional.interpolate(x, scale_factor=1.5, mode="nearest")
        x = torch.relu(self.conv3(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


REGISTRY = {
    "cnn_on_mcu": lambda: (CnnOnMcu(), (1, 1, 28, 28), fashion_meta()),
    "fashion_mobilenetv2": lambda: (fashion_mobilenetv2(), (1, 1, 96, 96), fashion_meta()),
    "fashion_cnn_teacher": lambda: (fashion_cnn_teacher(), (1, 1, 28, 28), fashion_meta()),
    "yolov2_16": lambda: (YoloV2First16(), (1, 3, 608, 608), darknet_meta()),
    "tiny_yolov2": lambda: (TinyYoloV2(), (1, 3, 416, 416), darknet_meta()),
    "resnet18_split2": lambda: (ResNet18Split2(), (1, 3, 224, 224), imagenet_meta()),
    "resize_net": lambda: (ResizeNet(), (1, 3, 32, 32), imagenet_meta()),
}


def build(name):
    if name not in REGISTRY:
        raise KeyError(name)
    return REGISTRY[name]()
