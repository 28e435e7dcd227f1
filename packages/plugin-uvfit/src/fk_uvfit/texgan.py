"""FFHQ-UV's texture decoder on fk's StyleGAN2 (``fk.nets.stylegan2``): loading, W statistics, latents.

Facts (ffhquv.md §1.4, upstream ``RGB_Fitting/network/texgan.py``): a StyleGAN2-ADA ``Generator`` with
z/w 512, no labels, 1024² RGB (18 ws), 8 mapping layers (lrelu, lr multiplier 0.01, w_avg_beta 0.995),
synthesis channel_base 32768, channel_max 512, 4 FP16 resolutions, conv_clamp 256, ``skip``
architecture, filter [1, 3, 3, 1], noise on, 3 x 3 kernels; the checkpoint ``texgan_ffhq_uv.pth`` is the
generator's **state dict** (read here with ``torch.load(weights_only=True)``: a file that needs any
pickled code is refused). The map is ``(G.synthesis(w, noise_mode='const') + 1) / 2``, frozen.

W statistics: mean and std of the first ws of 100,000 mapped z ~ N(0, I) drawn by
``numpy.random.RandomState(123)``. Upstream caches them as ``<checkpoint>.pt`` **next to the checkpoint**
(a write into the user's model folder); fk never writes there: :func:`w_stats` returns them and the
caller keeps them (named difference). Initial latents: ``RandomState(123).randn(1, num_ws, z_dim)``.

A StyleGAN2-ADA training snapshot (``network-snapshot-*.pkl``, what training your own texture GAN with
StyleGAN2-ADA-PyTorch gives, csbhr/FFHQ-UV issue #43) is read too: its ``G_ema`` through core's
persistence reader (``fk.nets.stylegan2.load_stylegan2_pickle``, which never runs pickled code), with the
architecture the snapshot records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from fk.errors import InputError
from fk.io.weights import load_torch_weights

TEXGAN_KWARGS: dict[str, Any] = {
    "z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 1024, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 8, "embed_features": None, "layer_features": None, "activation": "lrelu",
                       "lr_multiplier": 0.01, "w_avg_beta": 0.995},
    "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256,
                         "architecture": "skip", "resample_filter": [1, 3, 3, 1], "use_noise": True,
                         "activation": "lrelu", "fp16_channels_last": False, "kernel_size": 3},
}  # fmt: skip
SEED = 123
W_STAT_SAMPLES = 100_000


def build_texgan(**overrides: Any):
    """An untrained texture decoder with upstream's architecture (``overrides`` for tests: e.g. a small
    ``img_resolution`` or ``synthesis_kwargs``)."""
    from fk.nets.stylegan2 import Generator

    kwargs = {**TEXGAN_KWARGS, **overrides}
    return Generator(**kwargs)


def load_texgan(path: str | Path, device: str = "cpu", **overrides: Any):
    """Load ``texgan_ffhq_uv.pth`` (a state dict) into the decoder, or a StyleGAN2-ADA snapshot ``.pkl``'s
    ``G_ema``; frozen, eval mode."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"missing texture GAN {p}", hint="see `fk doctor` (ffhquv-texgan) for where it goes")
    if p.suffix.lower() == ".pkl":
        from fk.nets.stylegan2.persistence import load_stylegan2_pickle

        gen = load_stylegan2_pickle(p).get("G_ema")
        if gen is None or getattr(gen, "c_dim", 0) != 0 or getattr(gen, "img_channels", 3) != 3:
            raise InputError(
                f"{p}: not an unconditional RGB StyleGAN2-ADA generator (G_ema)",
                hint="a texture GAN has c_dim 0 and 3 channels",
            )
        return gen.eval().requires_grad_(False).to(device)
    state = load_torch_weights(
        p, "texture GAN weight file", "use FFHQ-UV's texgan_ffhq_uv.pth (a generator state dict)"
    )
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{p}: expected a generator state dict", hint="use FFHQ-UV's texgan_ffhq_uv.pth")
    gen = build_texgan(**overrides)
    try:
        gen.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(
            f"{p}: does not fit FFHQ-UV's texture decoder ({str(exc).splitlines()[0]})"
        ) from None
    return gen.eval().requires_grad_(False).to(device)


def w_stats(
    gen, samples: int = W_STAT_SAMPLES, seed: int = SEED, batch: int = 10_000
) -> tuple[torch.Tensor, ...]:
    """(w_avg, w_std), each (1, 1, w_dim) float32 on the generator's device: mean and std over ``samples``
    mapped z of the first ws. The mapping runs on that device; the statistics are taken in numpy float32,
    as upstream does."""
    device = generator_device(gen)
    z = np.random.RandomState(seed).randn(samples, gen.z_dim)
    firsts = []
    with torch.no_grad():
        for i in range(0, samples, batch):
            zz = torch.as_tensor(z[i : i + batch], dtype=torch.float32, device=device)
            firsts.append(gen.mapping(zz, None)[:, :1].float().cpu().numpy())
    w = np.concatenate(firsts).astype(np.float32)
    avg = w.mean(0, keepdims=True)
    std = w.std(0, keepdims=True)
    return torch.as_tensor(avg, device=device), torch.as_tensor(std, device=device)


def generator_device(gen) -> torch.device:
    return next(gen.parameters()).device


def initial_z(num_ws: int, z_dim: int, seed: int = SEED, device: str | torch.device = "cpu") -> torch.Tensor:
    """Upstream's stage-2 start: ``RandomState(seed).randn(1, num_ws, z_dim)`` as float32 on ``device``."""
    z = np.random.RandomState(seed).randn(1, num_ws, z_dim)
    return torch.as_tensor(z, dtype=torch.float32, device=device)


def z_to_w(z: torch.Tensor, w_avg: torch.Tensor, w_std: torch.Tensor) -> torch.Tensor:
    return z * w_std + w_avg


def w_to_z(w: torch.Tensor, w_avg: torch.Tensor, w_std: torch.Tensor) -> torch.Tensor:
    return (w - w_avg) / w_std


def synth_uv(gen, w: torch.Tensor, force_fp32: bool = True) -> torch.Tensor:
    """UV maps (B, 3, R, R) in [0, 1] (not clamped, as upstream) from W+ latents (B, num_ws or 1, w_dim)."""
    if w.shape[1] == 1:
        w = w.repeat(1, gen.mapping.num_ws, 1)
    return (gen.synthesis(w, noise_mode="const", force_fp32=force_fp32) + 1) * 0.5
