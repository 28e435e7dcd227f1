"""Tiny GMPI checkpoints in GMPI's exact on-disk format, for tests (and a malicious one).

:func:`write_gmpi_checkpoint` writes what ``gmpi/train.py`` writes: ``config.pth`` =
``torch.save({"config": <plain nested dict>})``, ``generator.pth`` = the generator's state_dict (GMPI's
key order), ``ema.pth`` = torch_ema's state (``decay``, ``num_updates``, ``shadow_params`` as a positional
list in GMPI's ``parameters()`` order, ``collected_params``), with the shadows deliberately different
from ``generator.pth`` so a test can tell which one was loaded.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import torch

from fk_gmpi.checkpoint import DEFAULTS, config_from_dict
from fk_gmpi.generator import GmpiGenerator, gmpi_order

VARIANT_KEYS = {
    "vanilla": ("none", "none"),
    "depth": ("normalize_add_z", "modulated_lrelu"),
    "learnable": ("normalize_add_z", "learnable_param"),
    "depth2alpha": ("depth2alpha", "modulated_lrelu"),
}


def tiny_config(
    variant: str = "depth", resolution: int = 16, n_planes: int = 4, dataset: str = "FFHQ256"
) -> dict:
    cond, embed = VARIANT_KEYS[variant]
    cfg = copy.deepcopy(DEFAULTS)
    cfg["GMPI"]["TRAIN"]["dataset"] = dataset
    cfg["GMPI"]["MPI"]["n_gen_planes"] = n_planes
    sg = cfg["GMPI"]["MODEL"]["STYLEGAN2"]
    sg.update(
        torgba_cond_on_pos_enc=cond,
        torgba_cond_on_pos_enc_embed_func=embed,
        max_out_dim=resolution,
        max_out_dim_D=resolution,
        gen_alpha_largest_res=min(256, resolution // 2),
        z_dim=32,
        w_dim=32,
    )
    sg["mapping_kwargs"] = {"num_layers": 2}
    sg["synthesis_kwargs"] = {"channel_base": 512, "channel_max": 32}
    return cfg


def write_gmpi_checkpoint(
    folder: str | Path, variant: str = "depth", resolution: int = 16, n_planes: int = 4, seed: int = 0
) -> GmpiGenerator:
    """Write config.pth, generator.pth and ema.pth; returns the generator carrying the EMA weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = tiny_config(variant, resolution, n_planes)
    cfg = config_from_dict(raw)
    torch.manual_seed(seed)
    gen = GmpiGenerator(**cfg.generator_kwargs())
    with torch.no_grad():
        gen.mapping.w_avg.normal_()  # a trained average, which GMPI's evaluation does not restore
    state = gen.state_dict()
    torch.save({k: state[k] for k in gmpi_order(list(state))}, folder / "generator.pth")
    params = dict(gen.named_parameters())
    shadows = [
        params[n].detach().clone() + 0.01 * torch.randn_like(params[n]) for n in gen.gmpi_parameter_names()
    ]
    torch.save(
        {"decay": 0.999, "num_updates": 5000, "shadow_params": shadows, "collected_params": None},
        folder / "ema.pth",
    )
    torch.save({"config": raw}, folder / "config.pth")
    with torch.no_grad():
        for name, tensor in zip(gen.gmpi_parameter_names(), shadows, strict=False):
            params[name].copy_(tensor)
        gen.mapping.w_avg.zero_()
    return gen.eval()


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def write_malicious_checkpoint(folder: str | Path) -> None:
    """A config.pth whose unpickling would call os.system: loaders must refuse it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "config.pth", "wb") as fh:
        pickle.dump({"config": _Boom()}, fh)
