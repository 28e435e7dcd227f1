"""Deep3D's R-Net: a ResNet-50 regressor from a 224² face crop to 257 coefficients.

Written without torchvision; parameter names follow torchvision's ResNet-50 so the
released checkpoints (``epoch_20.pth``, key ``net_recon``) load unchanged:
``backbone.conv1``, ``backbone.bn1``, ``backbone.layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}``,
``backbone.layer{L}.0.downsample.{0,1}`` and the seven 1×1 heads ``final_layers.{0..6}``.

Convention:
    - input: (B, 3, 224, 224) float RGB in [0, 1], no mean/std normalisation (deep3d.md §3.4)
    - output: (B, 257) = id 80 | exp 64 | tex 80 | angle 3 | gamma 27 | trans 3 (x, y then z)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fk.errors import InputError

# Output widths of the seven heads, in the order the network concatenates them.
HEAD_SIZES: tuple[int, ...] = (80, 64, 80, 3, 27, 2, 1)
COEFF_SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
N_COEFFS = 257


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


class ReconNet(nn.Module):
    """R-Net: backbone + seven zero-initialised 1×1 conv heads -> (B, 257).

    Zero heads make the untrained network predict the mean face, frontal pose,
    zero translation and the 0.8 ambient light (deep3d.md §4).
    """

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet50Backbone()
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, n, 1, bias=True) for n in HEAD_SIZES)
        for head in self.final_layers:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, 224, 224) RGB in [0, 1] -> (B, 257) coefficients."""
        feat = self.backbone(image)
        return torch.cat([head(feat) for head in self.final_layers], dim=1).flatten(1)


def split_coeffs(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, 257) -> {id (B,80), exp (B,64), tex (B,80), angle (B,3), gamma (B,27), trans (B,3)}."""
    if coeffs.shape[-1] != N_COEFFS:
        raise ValueError(f"coeffs: expected (B, {N_COEFFS}), got {tuple(coeffs.shape)}")
    return {k: coeffs[..., s] for k, s in COEFF_SLICES.items()}


def _state_dict_from_file(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: Deep3D checkpoint not found",
                         hint="put the released epoch_20.pth there (see `fk doctor`) or use fit:deep3d")
    from fk.io.weights import load_torch_weights

    # weights_only: tensors and plain containers only, never arbitrary pickled code.
    blob = load_torch_weights(path, "Deep3D checkpoint",
                              "put Deep3DFaceRecon_pytorch's released epoch_20.pth there (see `fk doctor`)")
    if isinstance(blob, Mapping) and "net_recon" in blob:
        blob = blob["net_recon"]
    if not isinstance(blob, Mapping):
        raise InputError(f"{path}: expected a dict with a 'net_recon' state dict, got {type(blob).__name__}",
                         hint="use Deep3DFaceRecon_pytorch's epoch_20.pth (or one saved by `fk deep3d train`)")
    # A DDP-wrapped save carries a "module." prefix; strip it so both layouts load.
    return {k.removeprefix("module."): v for k, v in blob.items()}


def load_reconnet(path: str | Path, device: str | torch.device = "cpu") -> ReconNet:
    """Build R-Net and load ``epoch_20.pth`` strictly (every key, every shape).

    Raises ``InputError`` naming the file for a missing, unreadable or wrong-layout checkpoint,
    listing the first missing/unexpected keys or mismatched shapes.
    """
    path = Path(path)
    state = _state_dict_from_file(path)
    net = ReconNet()
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
        raise InputError(f"{path}: not an R-Net ResNet-50 checkpoint: {'; '.join(parts)}",
                         hint="fk loads Deep3DFaceRecon_pytorch's ResNet-50 epoch_20.pth ('net_recon')")
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise InputError(f"{path}: wrong tensor shapes in checkpoint ({len(bad)}; first: {bad[0]})",
                         hint="fk loads Deep3DFaceRecon_pytorch's ResNet-50 epoch_20.pth ('net_recon')")
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


def save_reconnet(path: str | Path, net: nn.Module, **extra: Any) -> Path:
    """Save in the released layout: ``{"net_recon": state_dict, **extra}`` (e.g. opt_00, sched_00, epoch)."""
    from fk.atomic import atomic_path

    path = Path(path)
    module = net.module if hasattr(net, "module") else net
    with atomic_path(path, suffix="") as tmp:  # the mode open() would give, not mkstemp's 0600
        torch.save({"net_recon": module.state_dict(), **extra}, tmp)
    return path


def load_imagenet_backbone(net: ReconNet, path: str | Path) -> ReconNet:
    """Start R-Net's backbone from torchvision's ImageNet ResNet-50 (``resnet50-0676ba61.pth``), as Deep3D does.

    The file is a plain state dict with torchvision's names (``conv1.weight``, ``layer1.0.bn1.running_mean``,
    ..., ``fc.weight``); it is read with ``weights_only=True`` (tensors only, never pickled code). Like
    Deep3D's ``filter_state_dict``, every key containing ``fc`` is dropped; the others map to
    ``backbone.<key>`` and must cover the backbone exactly (``num_batches_tracked``, absent from older
    torchvision files, may be missing). The heads stay zero.
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
    expected = net.backbone.state_dict()
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
    net.backbone.load_state_dict(kept, strict=False)
    return net
