"""GMPI's pose-conditioned discriminator (gmpi.md §3.2; ``networks_cond_on_pos_enc.py:Discriminator``).

Core's StyleGAN2 ResNet discriminator (``fk.nets.stylegan2.Discriminator``, NVIDIA's blocks and names)
with GMPI's conditioning instead of StyleGAN2's label mapping network:

- the condition is the flattened 4x4 world-to-camera matrix (``D_cond_pose_dim`` 16; 9 = rotation only);
- ``mapping`` is a single ``torch.nn.Linear(16, cmap_dim)`` (GMPI's ``use_ori_mapping: False``), its output
  normalised by its second moment (x / sqrt(mean x² + 1e-8));
- ``b4.out`` has ``cmap_dim`` (16) outputs; score = (out · cmap) / sqrt(cmap_dim);
- minibatch-std group size 1 (``STYLEGAN2_CFG_SPECS`` mbstd 1): the extra channel is kept, so pretrained
  shapes match, but it is the constant sqrt(1e-8) = 1e-4; ``use_mbstd_in_D: False`` puts zeros there.

:func:`load_pretrained_discriminator` copies an unconditional StyleGAN2 D into it as GMPI's
``copy_params_and_buffers(require_all=False)`` does: every tensor whose name the source has is
``copy_``-ed, which **broadcasts** ``b4.out.weight`` [1, C] / ``b4.out.bias`` [1] into all 16 rows;
``mapping`` keeps its random initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
from fk.errors import InputError
from fk.nets.stylegan2 import Discriminator, FullyConnectedLayer, normalize_2nd_moment


class GmpiDiscriminator(Discriminator):
    """``D(img, flat_w2c) -> logits [N, 1]``."""

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        cmap_dim: int | None = 16,
        mbstd_group_size: int = 1,
        use_mbstd_in_D: bool = True,  # noqa: N803 - GMPI's name
    ):
        super().__init__(
            c_dim=0,  # core's label mapping network is not built; GMPI's linear one is, below
            img_resolution=img_resolution,
            img_channels=img_channels,
            architecture="resnet",
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            conv_clamp=conv_clamp,
            epilogue_kwargs={"mbstd_group_size": mbstd_group_size},
        )
        c4 = self.b4.in_channels
        if cmap_dim is None:
            cmap_dim = c4
        self.c_dim = c_dim
        self.use_mbstd_in_D = use_mbstd_in_D
        if c_dim > 0:
            # GMPI registers mapping before b4: the same state_dict order and optimizer_D indices
            epilogue = self._modules.pop("b4")
            self.mapping = torch.nn.Linear(c_dim, cmap_dim)
            self.b4 = epilogue
            self.b4.out = FullyConnectedLayer(c4, cmap_dim)
            self.b4.cmap_dim = cmap_dim
        if not use_mbstd_in_D:
            self.b4.mbstd = _ZeroChannel()

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, **block_kwargs: Any) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = normalize_2nd_moment(self.mapping(c)) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)


class _ZeroChannel(torch.nn.Module):
    """GMPI's ``use_mbstd_in_D: False``: a zero channel where minibatch-std would be."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.zeros_like(x[:, :1])], 1)


def load_pretrained_discriminator(d: torch.nn.Module, state: dict[str, Any], source: str) -> int:
    """GMPI's ``copy_params_and_buffers(D_pkl, D, require_all=False)``; returns the tensors copied."""
    src = {k: torch.as_tensor(v) for k, v in state.items()}
    copied = 0
    with torch.no_grad():
        for name, tensor in [*d.named_parameters(), *d.named_buffers()]:
            if name not in src:
                continue
            try:
                tensor.copy_(src[name].to(tensor.dtype))  # broadcasts [1, C] -> [16, C], as GMPI's copy_
            except RuntimeError as exc:
                raise InputError(
                    f"{source}: discriminator tensor {name} {tuple(src[name].shape)} does not fit "
                    f"{tuple(tensor.shape)}",
                    hint="the pickle's D does not match the dataset's resolution/channels",
                ) from exc
            copied += 1
    return copied
