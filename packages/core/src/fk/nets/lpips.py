"""LPIPS with a VGG16 trunk: a perceptual distance between two images (Zhang et al. 2018, "lin" v0.1).

Written without torchvision. The trunk is VGG16's ``features`` with torchvision's parameter names
(``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}``) so torchvision's ImageNet file
``vgg16-397923af.pth`` loads unchanged (its ``classifier.*`` entries are ignored); the five linear
layers use the ``lpips`` package's names (``lin{0..4}.model.1.weight``, shapes (1, C, 1, 1)) so its
``weights/v0.1/vgg.pth`` loads unchanged. Both files are read with ``weights_only=True``.

Distance, for images in [0, 1] (B, 3, H, W):

1. x -> 2x − 1, then LPIPS's scaling layer (x − shift) / scale, shift (−.030, −.088, −.188), scale
   (.458, .448, .450);
2. VGG16 activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3;
3. each unit-normalised over channels (x / (‖x‖ + 1e-10));
4. d = Σ_layers mean_hw(Σ_c w_c (f̂_a − f̂_b)²), one value per image (B,).

StyleGAN2-ADA's ``vgg16.pt`` (what FFHQ-UV's stage 2 calls with ``return_lpips=True``, then sums the
squared feature differences) is a TorchScript port of this same network: fk never executes TorchScript,
so that file itself is not read (see ``docs/uvfit.md`` for what is and is not verified).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fk.errors import InputError

# VGG16 "D": channels per conv, "M" = 2x2 max-pool; torchvision's features indices follow from it.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# features index after whose ReLU LPIPS taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
TAPS = (3, 8, 15, 22, 29)
CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
VGG_HINT = "use torchvision's ImageNet VGG16 state dict vgg16-397923af.pth (see `fk doctor`)"
LIN_HINT = "use the lpips package's weights/v0.1/vgg.pth (see `fk doctor`)"


def vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for c in VGG16_CFG:
        if c == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(c), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(c)
    return nn.Sequential(*layers[:30])  # up to relu5_3; the last pool is unused


class _Lin(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(0.0), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """``lpips(a, b)`` -> (B,) distances for images (B, 3, H, W) in [0, 1]; frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg16_features()
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", _Lin(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def taps(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image * 2 - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        dist = a.new_zeros(a.shape[0])
        for i, (fa, fb) in enumerate(zip(self.taps(a), self.taps(b), strict=True)):
            lin = getattr(self, f"lin{i}").model[1]
            dist = dist + lin((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return dist


def _state(path: Path, what: str, hint: str) -> Mapping[str, torch.Tensor]:
    from fk.io.weights import load_torch_weights

    if not path.is_file():
        raise InputError(f"{path}: {what} not found", hint=hint)
    state = load_torch_weights(path, what, hint)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict of tensors ({what})", hint=hint)
    return state


def load_lpips(vgg_path: str | Path, lin_path: str | Path, device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS from torchvision's VGG16 file and the lpips package's linear layers, both strictly checked."""
    net = LPIPS()
    want = net.state_dict()
    vgg = {k: v for k, v in _state(Path(vgg_path), "VGG16 weight file", VGG_HINT).items()
           if k.startswith("features.")}
    lin = dict(_state(Path(lin_path), "LPIPS linear-layer file", LIN_HINT))
    for path, got, prefix, hint in ((vgg_path, vgg, "features.", VGG_HINT), (lin_path, lin, "lin", LIN_HINT)):
        expected = {k: v for k, v in want.items() if k.startswith(prefix)}
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        bad = [f"{k} {tuple(got[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
               if k in got and got[k].shape != v.shape]
        if missing or extra or bad:
            first = (missing or extra or bad)[0]
            raise InputError(f"{Path(path)}: does not fit LPIPS-VGG16 ({len(missing)} missing, {len(extra)} "
                             f"unexpected, {len(bad)} wrong-shape entries; first: {first})", hint=hint)
    net.load_state_dict({**vgg, **lin, "shift": net.shift, "scale": net.scale}, strict=True)
    return net.eval().requires_grad_(False).to(device)


__all__ = ["LPIPS", "TAPS", "load_lpips", "vgg16_features"]
