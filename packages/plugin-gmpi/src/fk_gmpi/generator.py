"""GMPI's generator: StyleGAN2's RGB path plus an alpha per MPI plane (gmpi.md §2.2, §3.1).

Built on core's StyleGAN2 (``fk.nets.stylegan2``): the mapping network and the synthesis blocks are
NVIDIA's, with their parameter names; GMPI's extra layers are registered **on those blocks** under
GMPI's names, so ``state_dict()`` keys equal GMPI's (``synthesis.b64.toalpha.weight``,
``synthesis.b64.pos_enc_embed.affine1.weight``, ``synthesis.b64.pos_enc_embed_learnable_param``...).

Variants (``configs/gmpi.yml`` ``torgba_cond_on_pos_enc`` / ``torgba_cond_on_pos_enc_embed_func``):

- ``none`` / ``none`` (vanilla, ``networks_vanilla.py``): ``toalpha`` gives N channels, one per plane.
- ``normalize_add_z`` / ``modulated_lrelu`` (the paper's, ``networks_cond_on_pos_enc.py``): per block
  with resolution <= ``gen_alpha_largest_res``, the plane's normalised depth goes through
  ``pos_enc_embed`` (four modulated 1x1 convs 1 -> C/4 -> C/2 -> C -> C, own affines on the block's
  conv1 w, leaky ReLU, clamp) and is added to the block features instance-normalised per sample
  ((x - mean) / (std + 1e-8), std from the unbiased variance + 1e-8); ``toalpha`` (a ToRGB layer with
  the ToRGB w) gives that plane's alpha. Higher blocks add zeros.
- ``normalize_add_z`` / ``learnable_param`` (``networks_pos_enc_learnable_param.py``): a learnt
  [1, N, C, 1, 1] token per block replaces the embedding; another plane count interpolates the tokens
  linearly in depth (left pad zeros, right pad the last token), GMPI's ``get_xyz_interpolate_ws``. As in
  GMPI there are always 32 tokens (its blocks never receive ``n_gen_planes``).
- ``depth2alpha`` / ``modulated_lrelu`` (``networks_vanilla_depth2alpha.py``): ``todepth`` predicts one
  depth map d; alpha_i = (clamp(z_i - d, -Δ, Δ) + Δ) / (2Δ + 1e-8), Δ = z_range / n_bins.

Background (``torgba_sep_background`` + ``build_background_from_rgb``): the last plane's colour is the
same ToRGB applied to a detached feature map that keeps the left and right border strips (width
max(1, floor(0.05 res))) and interpolates linearly between them. All channels end with
``G_final_img_act`` (tanh: (tanh x + 1) / 2); the depth-conditioned variants then set the last
plane's alpha to 1 (``background_alpha_full``), as GMPI's do (vanilla and depth2alpha do not).

Output: ``[B, N, 4, R, R]`` RGBA in [0, 1], plane 0 nearest. RGB is StyleGAN2's image (accumulated
once, shared by planes 0..N-2); each alpha channel is accumulated through the same skip upsampling,
which is what GMPI's N*4-channel image does channel by channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from fk.nets.stylegan2 import (
    FullyConnectedLayer,
    MappingNetwork,
    SynthesisNetwork,
    ToRGBLayer,
    bias_act,
    modulated_conv2d,
    upsample2d,
)

FLOATING_EPS = 1e-8
# GMPI's learnable tokens always number 32: its SynthesisBlock defaults n_planes=32 and its Generator never
# passes n_gen_planes down (networks_pos_enc_learnable_param.py); other counts interpolate them in depth
LEARNABLE_TOKENS = 32
VARIANTS = {
    ("none", "none"): "vanilla",
    ("normalize_add_z", "modulated_lrelu"): "depth",
    ("normalize_add_z", "learnable_param"): "learnable",
    ("depth2alpha", "modulated_lrelu"): "depth2alpha",
}


def variant_of(cond: str, embed: str) -> str:
    try:
        return VARIANTS[(cond, embed)]
    except KeyError:
        known = ", ".join(f"{a}/{b}" for a, b in VARIANTS)
        raise ValueError(f"GMPI variant {cond}/{embed} is not one of {known}") from None


class ModulatedEmbed(torch.nn.Module):
    """GMPI's ``ToRGBLayerDeeperModulatedConv``: four modulated 1x1 convs (no demodulation), leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        chans = [in_channels, out_channels // 4, out_channels // 2, out_channels, out_channels]
        for k in range(4):
            setattr(self, f"affine{k + 1}", FullyConnectedLayer(w_dim, chans[k], bias_init=1))
            setattr(self, f"weight{k + 1}", torch.nn.Parameter(torch.randn([chans[k + 1], chans[k], 1, 1])))
            setattr(self, f"bias{k + 1}", torch.nn.Parameter(torch.zeros([chans[k + 1]])))
        self.gains = [float(1 / np.sqrt(c)) for c in chans[:4]]

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        for k in range(4):
            styles = getattr(self, f"affine{k + 1}")(w) * self.gains[k]
            x = modulated_conv2d(
                x, getattr(self, f"weight{k + 1}"), styles, demodulate=False, fused_modconv=fused_modconv
            )
            x = bias_act(x, getattr(self, f"bias{k + 1}").to(x.dtype), act="lrelu", clamp=self.conv_clamp)
        return x


def instance_normalize(x: torch.Tensor) -> torch.Tensor:
    """GMPI's ``calc_mean_std`` normalisation: (x - mean) / (sqrt(var_unbiased + 1e-8) + 1e-8)."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    std = (flat.var(dim=2) + FLOATING_EPS).sqrt().reshape(n, c, 1, 1)
    mean = flat.mean(dim=2).reshape(n, c, 1, 1)
    return (x - mean) / (std + FLOATING_EPS)


def background_features(x: torch.Tensor, ratio: float, eps_in_ratio: bool) -> torch.Tensor:
    """GMPI's background features: side strips kept, columns between interpolated."""
    res = x.shape[-1]
    with torch.no_grad():
        out = torch.zeros_like(x)
        pad = max(1, int(np.floor(ratio * res)))
        out[..., :pad] = x[..., :pad]
        out[..., -pad:] = x[..., -pad:]
        start, end = pad, res - pad
        if start < end:
            cols = torch.arange(start, end, device=x.device).reshape(1, 1, 1, -1)
            right = (cols - start) / (end - start + (FLOATING_EPS if eps_in_ratio else 0.0))
            left_feat = x[..., start : start + 1]
            right_feat = x[..., end - 1 : end]
            out[..., start:end] = ((1 - right) * left_feat + right * right_feat).to(x.dtype)
    return out


def interpolation_weights(
    near: float, far: float, n_src: int, n_tgt: int, method: str = "inverse"
) -> torch.Tensor:
    """GMPI's ``get_xyz_interpolate_ws``: (n_tgt, n_src + 2) weights: [left pad, tokens, right pad]."""
    from fk.cameras.gmpi import sample_plane_depths

    src = torch.zeros(n_src + 2)
    src[0], src[-1] = -999999, 999999
    src[1:-1] = torch.from_numpy(sample_plane_depths(near, far, n_src, method))
    tgt = torch.from_numpy(sample_plane_depths(near, far, n_tgt, method))
    rows = []
    for d in tgt:
        w = torch.zeros(n_src + 2)
        for j in range(n_src + 1):
            if src[j] <= d < src[j + 1]:
                span = src[j + 1] - src[j]
                w[j] = (src[j + 1] - d) / (span + 1e-8)
                w[j + 1] = (d - src[j]) / (span + 1e-8)
                rows.append(w)
                break
    return torch.stack(rows)


@dataclass
class PlaneInput:
    """What the generator needs to know about the planes of one call."""

    normalized_z: torch.Tensor  # (N,) normalised plane depth ("01": 0 nearest .. 1 farthest)
    interpolation: torch.Tensor | None = None  # (N, N_train + 2) for the learnable tokens, else None


class GmpiGenerator(torch.nn.Module):
    """GMPI's generator. ``forward(z, planes, truncation_psi=1, noise_mode='random') -> [B, N, 4, R, R]``."""

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 256,
        n_planes: int = 32,
        torgba_cond_on_pos_enc: str = "normalize_add_z",
        torgba_cond_on_pos_enc_embed_func: str = "modulated_lrelu",
        pos_enc_multires: int = 0,
        torgba_sep_background: bool = True,
        build_background_from_rgb: bool = True,
        build_background_from_rgb_ratio: float = 0.05,
        cond_on_pos_enc_only_alpha: bool = True,
        gen_alpha_largest_res: int = 256,
        background_alpha_full: bool = True,
        G_final_img_act: str = "tanh",
        depth2alpha_z_range: float = 1.0,  # noqa: N803 - GMPI's name
        depth2alpha_n_z_bins: int | None = 256,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
    ):
        super().__init__()
        self.variant = variant_of(torgba_cond_on_pos_enc, torgba_cond_on_pos_enc_embed_func)
        if pos_enc_multires != 0:
            raise NotImplementedError(
                "pos_enc_multires > 0 (a NeRF embedding of z) is not used by any GMPI config"
            )
        if self.variant in ("depth", "learnable") and not cond_on_pos_enc_only_alpha:
            raise NotImplementedError(
                "cond_on_pos_enc_only_alpha: False (one ToRGBA on conditioned features)"
            )
        if torgba_sep_background and not build_background_from_rgb:
            raise ValueError("torgba_sep_background needs build_background_from_rgb (GMPI raises too)")
        if G_final_img_act not in ("none", "sigmoid", "tanh"):
            raise ValueError(f"G_final_img_act must be none, sigmoid or tanh, got {G_final_img_act!r}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution = img_resolution
        self.n_planes = n_planes
        self.sep_background = torgba_sep_background
        self.background_ratio = build_background_from_rgb_ratio
        self.gen_alpha_largest_res = gen_alpha_largest_res
        self.background_alpha_full = background_alpha_full and self.variant in ("depth", "learnable")
        self.final_act = G_final_img_act
        self.z_range = depth2alpha_z_range
        self.n_z_bins = depth2alpha_n_z_bins
        synthesis_kwargs = dict(synthesis_kwargs or {})
        conv_clamp = synthesis_kwargs.get("conv_clamp")
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=3, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )
        for res in self.synthesis.block_resolutions:
            block = getattr(self.synthesis, f"b{res}")
            ch = block.conv1.weight.shape[0]
            if self.variant == "vanilla":
                block.toalpha = ToRGBLayer(ch, n_planes, w_dim=w_dim, conv_clamp=conv_clamp)
            elif self.variant == "depth2alpha":
                block.todepth = ToRGBLayer(ch, 1, w_dim=w_dim, conv_clamp=conv_clamp)
            elif res <= gen_alpha_largest_res:
                if self.variant == "depth":
                    block.pos_enc_embed = ModulatedEmbed(1, ch, w_dim, conv_clamp=conv_clamp)
                else:
                    block.pos_enc_embed_learnable_param = torch.nn.Parameter(
                        torch.rand(1, LEARNABLE_TOKENS, ch, 1, 1)
                    )
                    block.register_buffer(
                        "pos_enc_embed_learnable_param_left_append", torch.zeros(1, 1, ch, 1, 1)
                    )
                block.toalpha = ToRGBLayer(ch, 1, w_dim=w_dim, conv_clamp=conv_clamp)

    # -- the alpha branch ------------------------------------------------------------------------
    def _plane_features(
        self, block, x: torch.Tensor, w_conv1: torch.Tensor, planes: PlaneInput, fused: bool
    ) -> torch.Tensor:
        """(B * N, C, H, W) conditioned features: normalised x + the plane's depth embedding or token."""
        bs, n = x.shape[0], planes.normalized_z.shape[0]
        if self.variant == "depth":
            z = (
                planes.normalized_z.to(x)
                .reshape(1, n, 1, 1, 1)
                .expand(bs, -1, -1, -1, -1)
                .reshape(bs * n, 1, 1, 1)
            )
            embed = block.pos_enc_embed(z, w_conv1.repeat_interleave(n, 0), fused_modconv=fused)
        else:
            tokens = block.pos_enc_embed_learnable_param
            if planes.interpolation is not None:
                padded = torch.cat(
                    [block.pos_enc_embed_learnable_param_left_append, tokens, tokens[:, -1:]], 1
                )
                wts = planes.interpolation.to(tokens).reshape(1, n, -1, 1, 1, 1)
                tokens = (padded.unsqueeze(1) * wts).sum(2)
            elif tokens.shape[1] != n:
                raise ValueError(
                    f"learnable tokens were trained for {tokens.shape[1]} planes; pass interpolation "
                    f"weights for {n}"
                )
            embed = tokens.expand(bs, -1, -1, -1, -1).reshape(bs * n, -1, 1, 1)
        cond = instance_normalize(x)
        cond = cond.unsqueeze(1).expand(-1, n, -1, -1, -1).reshape(bs * n, *x.shape[1:])
        return cond + embed

    def synthesize(
        self, ws: torch.Tensor, planes: PlaneInput, noise_mode: str = "random", force_fp32: bool = True
    ) -> torch.Tensor:
        n = planes.normalized_z.shape[0]
        if self.variant == "vanilla" and n != self.n_planes:
            raise ValueError(f"the vanilla variant outputs exactly its {self.n_planes} planes, asked for {n}")
        x = rgb = background = extra = None
        for res, block_ws in zip(self.synthesis.block_resolutions, self.synthesis.split_ws(ws), strict=False):
            block = getattr(self.synthesis, f"b{res}")
            x, rgb = block(x, rgb, block_ws, force_fp32=force_fp32, noise_mode=noise_mode)
            fused = not self.training and (x.dtype == torch.float32 or ws.shape[0] == 1)
            w_rgb = block_ws[:, block.num_conv]
            bs = x.shape[0]
            if background is not None:
                background = upsample2d(background, block.resample_filter)
            if extra is not None:
                extra = upsample2d(extra, block.resample_filter)
            if self.sep_background:
                bg_x = background_features(
                    x, self.background_ratio, eps_in_ratio=self.variant in ("depth", "learnable")
                )
                y = block.torgb(bg_x, w_rgb, fused_modconv=fused).float()
                background = y if background is None else background.add_(y)
            if self.variant in ("vanilla", "depth2alpha"):
                layer = block.toalpha if self.variant == "vanilla" else block.todepth
                y = layer(x, w_rgb, fused_modconv=fused).float()
            elif res <= self.gen_alpha_largest_res:
                feats = self._plane_features(block, x, block_ws[:, block.num_conv - 1], planes, fused)
                y = block.toalpha(feats, w_rgb.repeat_interleave(n, 0), fused_modconv=fused).float()
                y = y.reshape(bs, n, res, res)
            else:
                y = torch.zeros(bs, n, res, res, device=x.device)
            extra = y if extra is None else extra.add_(y)
        rgb, extra = self._activate(rgb), self._activate(extra)
        background = self._activate(background) if background is not None else None
        if self.variant == "depth2alpha":
            from fk_gmpi.mpi import depth_to_alpha

            alpha = depth_to_alpha(planes.normalized_z.to(extra), extra, self.z_range, self.n_z_bins)
        else:
            alpha = extra
        if self.background_alpha_full:
            alpha = torch.cat([alpha[:, :-1], torch.ones_like(alpha[:, -1:])], 1)
        colours = rgb.unsqueeze(1).expand(-1, n, -1, -1, -1)
        if background is not None:
            colours = torch.cat([colours[:, :-1], background.unsqueeze(1)], 1)
        return torch.cat([colours, alpha.unsqueeze(2)], 2)

    def _activate(self, img: torch.Tensor) -> torch.Tensor:
        if self.final_act == "tanh":
            return (torch.tanh(img) + 1.0) / 2.0
        if self.final_act == "sigmoid":
            return torch.sigmoid(img)
        return (img.clamp(-1.0, 1.0) + 1.0) / 2.0

    def forward(
        self,
        z: torch.Tensor,
        planes: PlaneInput,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        c: torch.Tensor | None = None,
        force_fp32: bool = True,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesize(ws, planes, noise_mode=noise_mode, force_fp32=force_fp32)

    def gmpi_parameter_names(self) -> list[str]:
        """Parameter names in GMPI's ``parameters()`` order (its ``ema.pth`` shadow list is positional)."""
        return gmpi_order([name for name, _ in self.named_parameters()])


# GMPI registers its plane layers before StyleGAN2's in each block (own tensors first, then children)
_BLOCK_RANK = {
    "pos_enc_embed_learnable_param": 0,
    "pos_enc_embed_learnable_param_left_append": 0,
    "resample_filter": 0,
    "const": 1,
    "pos_enc_embed": 2,
    "conv0": 3,
    "conv1": 4,
    "torgb": 5,
    "toalpha": 6,
    "todepth": 6,
}


def gmpi_order(names: list[str]) -> list[str]:
    """Sort state/parameter names into GMPI's registration order: blocks (plane layers first), mapping."""

    def key(item: tuple[int, str]) -> tuple:
        idx, name = item
        parts = name.split(".")
        if parts[0] == "synthesis" and len(parts) > 2 and parts[1].startswith("b"):
            own = len(parts) == 3
            return (
                0,
                int(parts[1][1:]),
                0 if own and parts[2] != "const" else 1,
                _BLOCK_RANK.get(parts[2], 9),
                idx,
            )
        return (1, 0, 0, 0, idx)

    return [n for _, n in sorted(enumerate(names), key=key)]


def build_generator(cfg: Any, n_planes: int | None = None) -> GmpiGenerator:
    """A :class:`GmpiGenerator` from a :class:`fk_gmpi.config.GmpiConfig`."""
    return GmpiGenerator(**cfg.generator_kwargs(n_planes))
