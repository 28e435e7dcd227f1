"""The FID Inception-v3 in plain torch; its weights read without pickled code.

This is the network behind every standard FID/KID number (TTUR's ``fid.py``, pytorch-fid's
``FIDInceptionA..E``, torch-fidelity's ``inception-v3-compat``, clean-fid's legacy mode): Inception-v3 as
TensorFlow froze it on 2015-12-05, with the graph's quirks that differ from torchvision's network:

- the average pools inside the A, C and first E blocks exclude the zero padding (TF's ``SAME`` pooling);
- the last E block (``Mixed_7c``) pools its side branch with a **max** pool;
- batch norm with eps 0.001, no bias on the convolutions, a 1008-way classifier (``fc``);
- input: uint8 RGB, resized to 299² by TensorFlow 1.x's bilinear resize (:func:`resize_bilinear_tf1`,
  no half-pixel offset), then mapped to [-1, 1] by (x - 128) / 128.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's conversion of the TF graph; torch-fidelity
re-hosts the same file as ``weights-inception-2015-12-05-6726825d.pth``), a plain ``state_dict`` whose
names this module's layers reproduce (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch_pool.bn.running_var``,
``fc.weight`` ...). fk never downloads it: :data:`INCEPTION_ASSET` is where ``fk doctor`` asks for it,
and :func:`load_fid_inception` reads it with ``torch.load(weights_only=True)`` and checks every name and
shape, so a pickle carrying code is refused.

Features (``"2048"``) are the global average pool of ``Mixed_7c``, float32, as the FID and KID of
``fk.metrics.fid`` expect.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fk.errors import InputError
from fk.nets import INCEPTION_ASSET, INCEPTION_FILE, INCEPTION_URL

__all__ = ["INCEPTION_ASSET", "INCEPTION_FILE", "INCEPTION_URL", "FidInceptionV3", "load_fid_inception"]
INPUT_SIZE = 299
FEATURE_DIM = 2048


def resize_bilinear_tf1(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """TensorFlow 1.x's ``resize_bilinear`` (``align_corners=False``), which the FID graph uses.

    Args:
        x: (B, C, H, W) floating point.
    Returns:
        (B, C, height, width) in x's dtype.

    Convention: output pixel i samples the input at i · (in / out), **no** half-pixel offset (TF1's
    legacy mode, unlike torch's ``interpolate``); the sample between rows lo = floor(s) and
    hi = min(lo + 1, in - 1) is blended with weight s - lo, first along x, then along y. The source
    coordinates are float32 products, as torch-fidelity's bit-exact port computes them.
    """
    if x.ndim != 4 or not torch.is_floating_point(x):
        raise ValueError(
            f"resize_bilinear_tf1: expected a floating (B, C, H, W) tensor, got {tuple(x.shape)}"
        )
    in_h, in_w = x.shape[-2:]

    def axis(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(n_in / n_out, dtype=torch.float32, device=x.device)
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * scale
        lo = src.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, (src - lo.float()).to(x.dtype)

    ylo, yhi, dy = axis(height, in_h)
    xlo, xhi, dx = axis(width, in_w)
    top, bottom = x[:, :, ylo], x[:, :, yhi]
    top = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * dx
    bottom = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * dx
    return top + (bottom - top) * dy[:, None]


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 stride-1 ``SAME`` average pool: the padded zeros are not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_same(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_same(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool="avg"``: ``Mixed_7b`` (padding-excluding average); ``"max"``: ``Mixed_7c`` (TF's max pool)."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = (
            _avg_pool_same(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        )
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FidInceptionV3(nn.Module):
    """The 2015-12-05 FID Inception-v3; ``forward`` takes uint8 (B, 3, H, W) and returns (B, 2048) float32."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"FID Inception: expected uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        x = resize_bilinear_tf1(images.float(), INPUT_SIZE, INPUT_SIZE)
        x = (x - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def load_fid_inception(path: str | Path, device: str | torch.device = "cpu") -> FidInceptionV3:
    """The FID Inception with the weights of ``path`` (a plain state_dict), in eval mode without gradients.

    Refuses (``InputError``) a file that is not plain tensors (``weights_only=True``: pickled code never
    runs), and one whose names or shapes differ from the 2015-12-05 network's; batch-norm
    ``num_batches_tracked`` counters may be absent (they are unused at inference).
    """
    from fk.io.weights import load_torch_weights

    path = Path(path)
    state = load_torch_weights(
        path, "FID Inception weight file", f"put {INCEPTION_FILE} there ({INCEPTION_URL}; see fk doctor)"
    )
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state_dict, got {type(state).__name__}", hint=INCEPTION_URL)
    net = FidInceptionV3()
    own = net.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"{len(missing)} missing (e.g. {missing[0]})" if missing else ""
        what += ("; " if what else "") + (
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else ""
        )
        raise InputError(
            f"{path}: not the 2015-12-05 FID Inception weights: {what}",
            hint=f"expected {INCEPTION_FILE} ({INCEPTION_URL})",
        )
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(own[name].shape):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise InputError(
                f"{path}: {name} has shape {got}, the FID Inception has {tuple(own[name].shape)}",
                hint=f"expected {INCEPTION_FILE}",
            )
    net.load_state_dict(state, strict=False)
    return net.eval().requires_grad_(False).to(device)


def inception_features(
    net: FidInceptionV3,
    batches: Iterable[np.ndarray],
    device: str | torch.device = "cpu",
) -> Iterator[np.ndarray]:
    """(B, H, W, 3) uint8 batches -> (B, 2048) float32 pool features, one array per batch."""
    with torch.no_grad():
        for batch in batches:
            arr = np.ascontiguousarray(batch)
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                raise ValueError(f"expected uint8 (B, H, W, 3) images, got {arr.dtype} {arr.shape}")
            x = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2)
            yield net(x).float().cpu().numpy()
