"""ResNet image backbone (torchvision parameter names) and an FPN-style neck to one stride.

Parameter names match torchvision's resnet18/34/50 (conv1, bn1, layer1.0.conv1, ...
layer1.0.downsample.0), so an ImageNet state_dict loads with ``load_torchvision_weights``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.config import BackboneConfig


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)  # stride on the 3x3, as torchvision (v1.5)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


RESNET_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNet(nn.Module):
    """ResNet without the classifier; forward returns the four stage outputs (strides 4..32)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 widths: Sequence[int] = (64, 128, 256, 512), stem_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem_width
        self.out_channels: list[int] = []
        for i, (n, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                down = None
                cout = width * block.expansion
                s = stride if j == 0 else 1
                if j == 0 and (s != 1 or cin != cout):
                    down = nn.Sequential(conv1x1(cin, cout, s), nn.BatchNorm2d(cout))
                blocks.append(block(cin, width, s, down))
                cin = cout
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.out_channels.append(cin)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


def build_resnet(cfg: BackboneConfig) -> ResNet:
    if cfg.depth:
        block, layers = RESNET_SPECS[cfg.depth]
        return ResNet(block, layers)
    if cfg.layers is None or cfg.widths is None:
        raise ValueError("a custom backbone (depth 0) needs layers and widths")
    custom: type[BasicBlock] | type[Bottleneck] = Bottleneck if cfg.bottleneck else BasicBlock
    return ResNet(custom, list(cfg.layers), list(cfg.widths), cfg.stem_width)


def load_torchvision_weights(net: ResNet, path: str) -> tuple[list[str], list[str]]:
    """Load a torchvision ResNet state_dict (fc.* ignored); returns (missing, unexpected)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = net.load_state_dict(state, strict=False)
    return list(result.missing_keys), list(result.unexpected_keys)


class FPNNeck(nn.Module):
    """Lateral 1x1 on every stage at or coarser than ``out_stride``, resized and summed."""

    def __init__(self, in_channels: list[int], out_channels: int, out_stride: int = 16):
        super().__init__()
        strides = [4, 8, 16, 32]
        self.levels = [i for i, s in enumerate(strides) if s >= out_stride]
        if not self.levels:
            raise ValueError(f"out_stride {out_stride} finer than the backbone's stride 4")
        self.lateral = nn.ModuleList(
            nn.Sequential(conv1x1(in_channels[i], out_channels), nn.BatchNorm2d(out_channels))
            for i in self.levels)
        self.fuse = nn.Sequential(conv3x3(out_channels, out_channels), nn.BatchNorm2d(out_channels),
                                  nn.ReLU(inplace=True))
        self.out_stride = out_stride

    def forward(self, feats: list[Tensor], size: tuple[int, int]) -> Tensor:
        out = None
        for lat, i in zip(self.lateral, self.levels):
            y = lat(feats[i])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return self.fuse(out)


class ImageEncoder(nn.Module):
    """Backbone + neck: (BN, 3, H, W) -> (BN, neck_channels, H / s, W / s)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.backbone = build_resnet(cfg)
        if cfg.pretrained:
            load_torchvision_weights(self.backbone, cfg.pretrained)
        self.neck = FPNNeck(self.backbone.out_channels, cfg.neck_channels, cfg.out_stride)
        self.out_stride = cfg.out_stride
        self.out_channels = cfg.neck_channels

    def forward(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        size = (h // self.out_stride, w // self.out_stride)
        return self.neck(self.backbone(images), size)
