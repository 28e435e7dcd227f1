"""ResNet-50 with torchvision's parameter names, written without torchvision.

The backbone of Deep3D's R-Net and FFHQ-UV's HiFi3D++ R-Net (:mod:`fk.nets.reconnet`); the names
(``conv1``, ``bn1``, ``layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}``, ``layer{L}.0.downsample.{0,1}``)
are torchvision's so released checkpoints and ``resnet50-0676ba61.pth`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fk.errors import InputError


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3×3 conv (torchvision's layout)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Backbone(nn.Module):
    """ResNet-50 without the ``fc`` layer: (B, 3, H, W) -> (B, 2048, 1, 1)."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._in = 64
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, width: int, blocks: int, stride: int) -> nn.Sequential:
        out_ch = width * Bottleneck.expansion
        down = None
        if stride != 1 or self._in != out_ch:
            down = nn.Sequential(nn.Conv2d(self._in, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
        mods = [Bottleneck(self._in, width, stride, down)]
        self._in = out_ch
        mods += [Bottleneck(out_ch, width) for _ in range(blocks - 1)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


def load_imagenet_backbone(backbone: ResNet50Backbone, path: str | Path) -> ResNet50Backbone:
    """Start a ResNet-50 backbone (e.g. R-Net's) from torchvision's ImageNet ResNet-50 (``resnet50-0676ba61.pth``), as Deep3D does.

    The file is a plain state dict with torchvision's names (``conv1.weight``, ``layer1.0.bn1.running_mean``,
    ..., ``fc.weight``); it is read with ``weights_only=True`` (tensors only, never pickled code). Like
    Deep3D's ``filter_state_dict``, every key containing ``fc`` is dropped; the others map to
    the backbone's keys and must cover it exactly (``num_batches_tracked``, absent from older
    torchvision files, may be missing).
    """
    from fk.io.weights import load_torch_weights

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ImageNet ResNet-50 weights not found",
                         hint="download resnet50-0676ba61.pth (see `fk doctor`) or pass --init-path none")
    state = load_torch_weights(path, "ImageNet ResNet-50 state dict",
                               "use torchvision's resnet50-0676ba61.pth (a plain state dict)")
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: expected a state dict, got {type(state).__name__}",
                         hint="use torchvision's resnet50-0676ba61.pth (a plain state dict)")
    kept = {k: v for k, v in state.items() if "fc" not in k}
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in kept and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in kept if k not in expected]
    bad = [f"{k} {tuple(kept[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if k in kept and tuple(kept[k].shape) != tuple(v.shape)]
    if missing or unexpected or bad:
        parts = [f"{len(missing)} missing keys (first: {', '.join(missing[:3])})"] if missing else []
        parts += [f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})"] if unexpected else []
        parts += [f"{len(bad)} wrong shapes (first: {bad[0]})"] if bad else []
        raise InputError(f"{path}: not torchvision's ResNet-50 state dict: {'; '.join(parts)}",
                         hint="use resnet50-0676ba61.pth from download.pytorch.org/models")
    backbone.load_state_dict(kept, strict=False)
    return backbone
