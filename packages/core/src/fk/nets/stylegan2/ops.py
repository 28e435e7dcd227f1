"""StyleGAN2-ADA's low-level operators in plain torch: FIR resampling, bias+activation, resampling
convolution and modulated convolution.

Written from the operators' definitions (NVlabs/stylegan2-ada-pytorch, ``torch_utils/ops``), with the
same arguments and conventions so a layer built on them gives NVIDIA's numbers:

- ``upfirdn2d``: insert ``up - 1`` zeros after every sample, pad (negative = crop), convolve with the
  FIR filter ``f`` (a true convolution; ``flip_filter=True`` correlates), keep every ``down``-th sample.
  ``gain`` scales the 2-D filter (a 1-D filter by ``sqrt(gain)`` per axis).
- ``bias_act``: ``clamp(act(x + b, alpha) * gain, -clamp, clamp)``; gains default to each activation's
  ``def_gain`` (``sqrt(2)`` for relu/lrelu/swish, 1 otherwise).
- ``conv2d_resample``: a convolution with the FIR filter applied once around up/down-sampling, padding
  given relative to the upsampled image.
- ``modulated_conv2d``: StyleGAN2's style modulation and demodulation, fused (grouped convolution) or
  not (scaling activations), with NVIDIA's FP16 pre-normalisation.

Rank-1 filters (every filter StyleGAN2 uses, ``[1,3,3,1]`` outer itself) are applied as two 1-D passes,
and zero-insertion upsampling is done by a strided transposed convolution; both give the same sums as the
direct form up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

__all__ = [
    "ACTIVATIONS",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "normalize_2nd_moment",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]


@dataclass(frozen=True)
class Activation:
    name: str
    def_alpha: float
    def_gain: float


_SQRT2 = float(np.sqrt(2))
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", 0.0, 1.0),
        Activation("relu", 0.0, _SQRT2),
        Activation("lrelu", 0.2, _SQRT2),
        Activation("tanh", 0.0, 1.0),
        Activation("sigmoid", 0.0, 1.0),
        Activation("elu", 0.0, 1.0),
        Activation("selu", 0.0, 1.0),
        Activation("softplus", 0.0, 1.0),
        Activation("swish", 0.0, _SQRT2),
    )
}


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along ``dim`` (StyleGAN2's latent normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# -- FIR filters --------------------------------------------------------------------------------------


def setup_filter(
    f: Any,
    device: torch.device | str = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """A float32 FIR filter: 1-D taps become their outer product (unless ``separable``, the default for
    8 taps or more), normalised to unit DC gain, optionally flipped and scaled by ``gain``."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32, device="cpu")  # real values even under a meta-device context
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected 0-2 dimensions and at least one tap, got {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _as_pair(v: int | tuple[int, int] | list[int], what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if len(v) != 2:
        raise ValueError(f"{what}: expected an int or [x, y], got {v!r}")
    return int(v[0]), int(v[1])


def _parse_padding(padding: Any) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) != 4:
        raise ValueError(f"padding: expected an int, [x, y] or [x0, x1, y0, y1], got {padding!r}")
    return padding[0], padding[1], padding[2], padding[3]


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D filter is square."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def _separate(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(fy, fx) with f == outer(fy, fx) for a rank-1 2-D filter, else None."""
    if f.ndim == 1:
        return f, f
    fy = f.sum(dim=1)
    total = fy.sum()
    if float(total) == 0.0:
        return None
    fx = f.sum(dim=0) / total
    if not torch.allclose(torch.outer(fy, fx), f, rtol=1e-6, atol=1e-7 * float(f.abs().max())):
        return None
    return fy, fx


def _depthwise(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Valid correlation of every channel of x with the 2-D kernel k."""
    c = x.shape[1]
    return F.conv2d(x, k[None, None].expand(c, 1, *k.shape), groups=c)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | tuple[int, int] = 1,
    down: int | tuple[int, int] = 1,
    padding: Any = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample a batch of images.

    Args:
        x: ``[N, C, H, W]`` images (float32/float64/float16).
        f: float32 filter ``[fh, fw]`` or separable ``[taps]``; None is the identity.
        up, down: integer factors, one or ``[x, y]``.
        padding: ``p``, ``[px, py]`` or ``[px0, px1, py0, py1]`` on the upsampled image; negative crops.
        flip_filter: False convolves, True correlates.
        gain: overall signal gain.

    Returns:
        ``[N, C, (H*up + py0 + py1 - fh + 1) // down ...]`` rounded up, like NVIDIA's op.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be [N, C, H, W], got {tuple(x.shape)}")
    upx, upy = _as_pair(up, "up")
    downx, downy = _as_pair(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape

    # Taps per axis (true-convolution order), gain folded in.
    sep = _separate(f)
    if sep is not None:
        scale = float(gain) ** 0.5  # the gain split evenly between the two passes
        fy, fx = (sep[0] * scale).to(x.dtype), (sep[1] * scale).to(x.dtype)
        if flip_filter:
            fy, fx = fy.flip(0), fx.flip(0)
        x = _upfirdn_axis(x, fx, upx, downx, px0, px1, axis=3)
        return _upfirdn_axis(x, fy, upy, downy, py0, py1, axis=2)

    # Non-separable filter: zero insertion, pad, 2-D convolution, decimation.
    k = (f * float(gain)).to(x.dtype)
    if not flip_filter:
        k = k.flip([0, 1])
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1]).reshape(n, c, h * upy, w * upx)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    x = _depthwise(x, k)
    return x[:, :, ::downy, ::downx]


def _upfirdn_axis(
    x: torch.Tensor, taps: torch.Tensor, up: int, down: int, p0: int, p1: int, axis: int
) -> torch.Tensor:
    """upfirdn along one axis (2: rows, 3: columns) with 1-D taps in convolution order."""
    c = x.shape[1]
    k = taps.numel()
    size = x.shape[axis]
    if k == 1 and up == 1 and down == 1 and p0 == 0 and p1 == 0:
        return x * taps[0] if float(taps[0]) != 1.0 else x
    if up > 1:
        # conv_transpose with the un-flipped taps == zero insertion followed by the full convolution;
        # its index n matches the padded-and-filtered index j = n - (k - 1) + p0.
        one = (1, 1, k, 1) if axis == 2 else (1, 1, 1, k)
        stride = (up, 1) if axis == 2 else (1, up)
        full = F.conv_transpose2d(x, taps.reshape(one).expand(c, *one[1:]), stride=stride, groups=c)
        full_len = (size - 1) * up + k
        out_len = size * up + p0 + p1 - k + 1
        start = k - 1 - p0
        # zero-extend where the requested window leaves the full convolution
        lo, hi = max(-start, 0), max(start + out_len - full_len, 0)
        if lo or hi:
            pad = [0, 0, lo, hi] if axis == 2 else [lo, hi, 0, 0]
            full = F.pad(full, pad)
        s = start + lo
        y = full.narrow(axis, s, out_len)
    else:
        pad = [0, 0, max(p0, 0), max(p1, 0)] if axis == 2 else [max(p0, 0), max(p1, 0), 0, 0]
        if any(pad):
            x = F.pad(x, pad)
        if p0 < 0 or p1 < 0:
            x = x.narrow(axis, max(-p0, 0), x.shape[axis] - max(-p0, 0) - max(-p1, 0))
        one = (1, 1, k, 1) if axis == 2 else (1, 1, 1, k)
        stride = (down, 1) if axis == 2 else (1, down)
        # correlation with reversed taps == convolution; decimate through the stride
        return F.conv2d(x, taps.flip(0).reshape(one).expand(c, *one[1:]), stride=stride, groups=c)
    if down > 1:
        y = y[:, :, ::down, :] if axis == 2 else y[:, :, :, ::down]
    return y


def filter2d(
    x: torch.Tensor, f: torch.Tensor | None, padding: Any = 0, flip_filter: bool = False, gain: float = 1
) -> torch.Tensor:
    """FIR-filter keeping the image size (plus ``padding``)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | tuple[int, int] = 2,
    padding: Any = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample by ``up`` with the FIR filter; the output is ``up`` times the input size."""
    upx, upy = _as_pair(up, "up")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: int | tuple[int, int] = 2,
    padding: Any = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Downsample by ``down`` with the FIR filter; the output is the input size over ``down``."""
    downx, downy = _as_pair(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


# -- bias + activation ----------------------------------------------------------------------------------


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)`` with the bias broadcast along ``dim``.

    In place on ``x``'s buffer when no gradient is being recorded (inference), else out of place.
    """
    spec = ACTIVATIONS.get(act)
    if spec is None:
        raise ValueError(f"bias_act: unknown activation {act!r}; one of {sorted(ACTIVATIONS)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None, got {clamp}")
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    inplace = not (torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)))
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias {tuple(b.shape)} does not match dim {dim} of {tuple(x.shape)}")
        b = b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = x + b  # a fresh buffer: later in-place steps never touch the caller's tensor
    elif inplace and (act != "linear" or gain != 1 or clamp is not None):
        x = x.clone()
    fresh = b is not None or inplace
    if act == "lrelu":
        x = F.leaky_relu_(x, alpha) if inplace and fresh else F.leaky_relu(x, alpha)
    elif act == "relu":
        x = F.relu_(x) if inplace and fresh else F.relu(x)
    elif act == "tanh":
        x = torch.tanh(x)
    elif act == "sigmoid":
        x = torch.sigmoid(x)
    elif act == "elu":
        x = F.elu(x)
    elif act == "selu":
        x = F.selu(x)
    elif act == "softplus":
        x = F.softplus(x)
    elif act == "swish":
        x = torch.sigmoid(x) * x
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


# -- convolution with resampling ------------------------------------------------------------------------


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: Any = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    if not flip_weight:  # torch convolutions correlate; a true convolution flips the kernel
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Any = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution of x ``[N, I, H, W]`` with w ``[O, I/groups, kh, kw]`` and optional FIR
    up/down-sampling by ``f``; ``padding`` is relative to the upsampled image and applied once.
    ``flip_weight=True`` correlates (like ``torch.nn.functional.conv2d``)."""
    if w.dtype != x.dtype:
        raise ValueError(f"conv2d_resample: weight {w.dtype} and input {x.dtype} differ")
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: decimate first, then convolve
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1: convolve first, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then a strided convolution
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # a strided transposed convolution, then the filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight
        )
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(
        x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter
    )
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


# -- modulated convolution ------------------------------------------------------------------------------


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Any = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution.

    Args:
        x: ``[N, I, H, W]`` activations.
        weight: ``[O, I, kh, kw]`` base weight (already scaled by the caller if it wants a gain).
        styles: ``[N, I]`` per-sample input-channel scales.
        noise: added to the output (broadcast), after demodulation.
        demodulate: divide each output channel by the norm of its modulated weight (+1e-8).
        fused_modconv: one grouped convolution with per-sample weights, else scale activations
            before and after one shared convolution (same result).

    Returns:
        ``[N, O, H', W']``.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (batch, in_channels):
        raise ValueError(f"modulated_conv2d: styles {tuple(styles.shape)}, expected ({batch}, {in_channels})")
    if x.shape[1] != in_channels:
        raise ValueError(f"modulated_conv2d: x has {x.shape[1]} channels, weight expects {in_channels}")

    if x.dtype == torch.float16 and demodulate:  # keep FP16 activations from overflowing
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            f=resample_filter,
            up=up,
            down=down,
            padding=padding,
            flip_weight=flip_weight,
        )
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x
