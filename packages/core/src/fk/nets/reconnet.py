"""R-Net: a ResNet-50 regressor from a 224² face crop to 3DMM coefficients (Deep3D and FFHQ-UV).

Written without torchvision; parameter names follow torchvision's ResNet-50 so the released
checkpoints (key ``net_recon``) load unchanged: ``backbone.conv1``, ``backbone.bn1``,
``backbone.layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}``, ``backbone.layer{L}.0.downsample.{0,1}``
and the seven 1×1 heads ``final_layers.{0..6}``. Two head layouts exist:

- :data:`DEEP3D` (``epoch_20.pth``, BFM09): id 80 | exp 64 | tex 80 | angle 3 | gamma 27 | trans 3
  = 257 (deep3d.md §3.4);
- :data:`HIFI3DPP` (FFHQ-UV's ``deep3d_model/epoch_latest.pth``): id 532 | exp 45 | tex 439 | angle 3 |
  gamma 27 | trans 3 = 1049, the exp head followed by a ReLU (ffhquv.md §1.3).

Convention: input (B, 3, 224, 224) float RGB in [0, 1], no mean/std normalisation; trans is x, y then z.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fk.errors import InputError
from fk.nets.resnet import ResNet50Backbone


@dataclass(frozen=True)
class HeadLayout:
    """The widths of R-Net's seven heads (concatenation order) and which of them end in a ReLU."""

    name: str
    sizes: tuple[int, ...]  # id, exp, tex, angle, gamma, txy, tz
    relu_heads: tuple[int, ...] = ()
    file_kind: str = "R-Net checkpoint"  # how errors name the file
    checkpoint_hint: str = ""

    @property
    def n_coeffs(self) -> int:
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        """Coefficient groups: id, exp, tex, angle, gamma and trans (the last two heads together)."""
        names = ("id", "exp", "tex", "angle", "gamma")
        out, start = {}, 0
        for name, n in zip(names, self.sizes[:5]):
            out[name] = slice(start, start + n)
            start += n
        out["trans"] = slice(start, self.n_coeffs)
        return out


DEEP3D = HeadLayout("Deep3D (BFM09)", (80, 64, 80, 3, 27, 2, 1), file_kind="Deep3D checkpoint",
                    checkpoint_hint="fk loads Deep3DFaceRecon_pytorch's ResNet-50 epoch_20.pth ('net_recon')")
HIFI3DPP = HeadLayout("FFHQ-UV (HiFi3D++)", (532, 45, 439, 3, 27, 2, 1), relu_heads=(1,),
                      file_kind="FFHQ-UV R-Net checkpoint",
                      checkpoint_hint="fk loads FFHQ-UV's checkpoints/deep3d_model/epoch_latest.pth ('net_recon')")

# Deep3D's layout, the default everywhere a layout is not named.
HEAD_SIZES: tuple[int, ...] = DEEP3D.sizes
COEFF_SLICES: dict[str, slice] = DEEP3D.slices
N_COEFFS = DEEP3D.n_coeffs


class ReconNet(nn.Module):
    """R-Net: backbone + seven zero-initialised 1×1 conv heads -> (B, layout.n_coeffs).

    Zero heads make the untrained network predict the mean face, frontal pose,
    zero translation and the 0.8 ambient light (deep3d.md §4).
    """

    def __init__(self, layout: HeadLayout = DEEP3D) -> None:
        super().__init__()
        self.layout = layout
        self.backbone = ResNet50Backbone()
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, n, 1, bias=True) for n in layout.sizes)
        for head in self.final_layers:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, 224, 224) RGB in [0, 1] -> (B, layout.n_coeffs) coefficients."""
        feat = self.backbone(image)
        outs = [head(feat) for head in self.final_layers]
        for i in self.layout.relu_heads:
            outs[i] = torch.relu(outs[i])
        return torch.cat(outs, dim=1).flatten(1)


def split_coeffs(coeffs: torch.Tensor, layout: HeadLayout = DEEP3D) -> dict[str, torch.Tensor]:
    """(B, n) -> {id, exp, tex, angle (B,3), gamma (B,27), trans (B,3)} for ``layout`` (Deep3D: n = 257)."""
    if coeffs.shape[-1] != layout.n_coeffs:
        raise ValueError(f"coeffs: expected (B, {layout.n_coeffs}) for {layout.name}, got {tuple(coeffs.shape)}")
    return {k: coeffs[..., s] for k, s in layout.slices.items()}


def _state_dict_from_file(path: Path, layout: HeadLayout) -> Mapping[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: {layout.file_kind} not found",
                         hint=f"{layout.checkpoint_hint}; see `fk doctor` for where it goes")
    from fk.io.weights import load_torch_weights

    # weights_only: tensors and plain containers only, never arbitrary pickled code.
    blob = load_torch_weights(path, layout.file_kind, layout.checkpoint_hint)
    if isinstance(blob, Mapping) and "net_recon" in blob:
        blob = blob["net_recon"]
    if not isinstance(blob, Mapping):
        raise InputError(f"{path}: expected a dict with a 'net_recon' state dict, got {type(blob).__name__}",
                         hint=layout.checkpoint_hint)
    # A DDP-wrapped save carries a "module." prefix; strip it so both layouts load.
    return {k.removeprefix("module."): v for k, v in blob.items()}


def load_reconnet(path: str | Path, device: str | torch.device = "cpu", layout: HeadLayout = DEEP3D) -> ReconNet:
    """Build R-Net for ``layout`` and load its checkpoint strictly (every key, every shape).

    Raises ``InputError`` naming the file for a missing, unreadable or wrong-layout checkpoint,
    listing the first missing/unexpected keys or mismatched shapes.
    """
    path = Path(path)
    state = _state_dict_from_file(path, layout)
    net = ReconNet(layout)
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
                         hint=layout.checkpoint_hint)
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise InputError(f"{path}: wrong tensor shapes for the {layout.name} R-Net ({len(bad)}; first: {bad[0]})",
                         hint=layout.checkpoint_hint)
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
