"""GMPI's config (``configs/gmpi.yml`` or a run's ``config.pth``) and checkpoints, read without running code.

- ``configs/gmpi.yml``: YAML (``yaml.safe_load``); the dataset picks the resolution and camera setup as
  GMPI's ``modify_curriculums`` does (FFHQ256/512/1024, AFHQCat 512, MetFaces 1024).
- ``config.pth``: ``torch.save({"config": <plain nested dict>})``, read weights-only.
- ``ema.pth``: torch_ema's state (``decay``, ``num_updates``, ``shadow_params`` = a **positional** list in
  the generator's ``parameters()`` order, ``collected_params``); ``generator.pth``: the raw state_dict.
  GMPI's evaluation copies the EMA shadows onto the parameters and leaves every buffer at its initial
  value (so ``mapping.w_avg`` is zero and truncation pulls toward the zero vector); fk does the same by
  default (``w_avg="gmpi"``); ``w_avg="checkpoint"`` takes ``generator.pth``'s trained average instead.
  Names for the positional shadows come from ``generator.pth``'s key order when it is there, else from
  GMPI's registration order (:func:`fk_gmpi.generator.gmpi_order`).
- A StyleGAN2-ADA pickle (``.pkl``): fk's safe loader (``fk.nets.stylegan2``); its ``G_ema`` weights go
  into the generator by name (``require_all=False``, as GMPI's training start); the plane layers keep
  their random initialisation (seeded), i.e. GMPI at iteration 0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from fk.errors import InputError
from fk.io.weights import load_torch_weights

# configs/gmpi.yml defaults for the keys the generator and renderer need (gmpi.md §3.4)
DEFAULTS: dict[str, Any] = {
    "GMPI": {
        "TRAIN": {
            "dataset": "FFHQ256",
            "use_normalized_xyz": True,
            "normalized_xyz_range": "01",
            "use_xyz_ztype": "depth",
        },
        "MPI": {
            "align_corners": True,
            "use_confined_volume": True,
            "n_gen_planes": 32,
            "depth2alpha_n_z_bins": 256,
            "distance_sample_method": "inverse",
            "cam_ray_from_pix_center": True,
        },
        "MODEL": {
            "STYLEGAN2": {
                "G_final_img_act": "tanh",
                "truncation_psi": 1.0,
                "torgba_cond_on_pos_enc": "normalize_add_z",
                "torgba_cond_on_pos_enc_embed_func": "modulated_lrelu",
                "pos_enc_multires": 0,
                "torgba_sep_background": True,
                "build_background_from_rgb": True,
                "build_background_from_rgb_ratio": 0.05,
                "cond_on_pos_enc_only_alpha": True,
                "gen_alpha_largest_res": 256,
                "background_alpha_full": True,
                "mapping_kwargs": {"num_layers": 8},
                "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512},
            }
        },
    }
}
RESOLUTIONS = {"FFHQ256": 256, "FFHQ512": 512, "FFHQ1024": 1024, "AFHQCat": 512, "MetFaces": 1024}
FMAPS = {256: 0.5, 512: 1.0, 1024: 1.0}  # train_helpers.STYLEGAN2_CFG_SPECS


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class GmpiConfig:
    """The parts of GMPI's config fk uses, with the dataset-derived values filled in."""

    raw: dict = field(repr=False)
    dataset: str = "FFHQ256"
    resolution: int = 256
    z_dim: int = 512
    w_dim: int = 512

    @property
    def stylegan2(self) -> dict:
        return self.raw["GMPI"]["MODEL"]["STYLEGAN2"]

    @property
    def mpi(self) -> dict:
        return self.raw["GMPI"]["MPI"]

    @property
    def train(self) -> dict:
        return self.raw["GMPI"]["TRAIN"]

    @property
    def n_planes(self) -> int:
        return int(self.mpi["n_gen_planes"])

    def camera_setup(self):
        from fk.cameras.gmpi import camera_setup

        return camera_setup(self.dataset)

    def synthesis_kwargs(self, channel_base: int | None = None, channel_max: int | None = None) -> dict:
        sk = dict(self.stylegan2["synthesis_kwargs"])
        base = (
            channel_base
            if channel_base is not None
            else int(FMAPS.get(self.resolution, 1.0) * sk["channel_base"])
        )
        out = {
            "channel_base": base,
            "channel_max": channel_max if channel_max is not None else sk["channel_max"],
        }
        if self.resolution <= 128:
            out.update(num_fp16_res=0, conv_clamp=None)
        else:
            out.update(num_fp16_res=4, conv_clamp=256)
        return out

    def generator_kwargs(self, n_planes: int | None = None, **synthesis_overrides: Any) -> dict:
        s = self.stylegan2
        z_range = {"01": 1.0, "-11": 2.0}[self.train["normalized_xyz_range"]]
        return dict(
            z_dim=self.z_dim,
            c_dim=0,
            w_dim=self.w_dim,
            img_resolution=self.resolution,
            n_planes=n_planes or self.n_planes,
            torgba_cond_on_pos_enc=s["torgba_cond_on_pos_enc"],
            torgba_cond_on_pos_enc_embed_func=s["torgba_cond_on_pos_enc_embed_func"],
            pos_enc_multires=s["pos_enc_multires"],
            torgba_sep_background=s["torgba_sep_background"],
            build_background_from_rgb=s["build_background_from_rgb"],
            build_background_from_rgb_ratio=s["build_background_from_rgb_ratio"],
            cond_on_pos_enc_only_alpha=s["cond_on_pos_enc_only_alpha"],
            gen_alpha_largest_res=s["gen_alpha_largest_res"],
            background_alpha_full=s["background_alpha_full"],
            G_final_img_act=s["G_final_img_act"],
            depth2alpha_z_range=z_range,
            depth2alpha_n_z_bins=self.mpi.get("depth2alpha_n_z_bins"),
            mapping_kwargs=dict(s["mapping_kwargs"]),
            synthesis_kwargs=self.synthesis_kwargs(**synthesis_overrides),
        )


def config_from_dict(raw: dict, source: str = "config") -> GmpiConfig:
    if not isinstance(raw, dict) or "GMPI" not in raw:
        raise InputError(
            f"{source}: not a GMPI config (no GMPI section)", hint="pass configs/gmpi.yml or config.pth"
        )
    merged = _merge(DEFAULTS, raw)
    dataset = merged["GMPI"]["TRAIN"]["dataset"]
    if dataset not in RESOLUTIONS:
        raise InputError(
            f"{source}: unknown GMPI dataset {dataset!r}", hint=f"one of {', '.join(RESOLUTIONS)}"
        )
    sg = merged["GMPI"]["MODEL"]["STYLEGAN2"]
    res = int(sg.get("max_out_dim") or RESOLUTIONS[dataset])
    # latent sizes are curriculum constants in GMPI (512); a config may state them (fk's tiny test nets do)
    return GmpiConfig(
        raw=merged,
        dataset=dataset,
        resolution=res,
        z_dim=int(sg.get("z_dim", 512)),
        w_dim=int(sg.get("w_dim", 512)),
    )


def read_config(path: Path, dataset: str | None = None) -> GmpiConfig:
    """``configs/gmpi.yml`` (YAML) or ``config.pth`` (weights-only torch load); ``dataset`` overrides."""
    p = Path(path)
    if p.suffix in (".yml", ".yaml"):
        import yaml

        try:
            raw = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{p}: unreadable YAML ({exc})", hint="pass GMPI's configs/gmpi.yml") from exc
    else:
        blob = _torch_load(p) if p.exists() else None
        raw = blob.get("config") if isinstance(blob, dict) else None
        if raw is None:
            raise InputError(f"{p}: no 'config' entry", hint="GMPI's config.pth holds {'config': dict}")
    if dataset:
        raw = _merge(raw or {}, {"GMPI": {"TRAIN": {"dataset": dataset}}})
    return config_from_dict(raw, str(p))


def _torch_load(path: Path) -> Any:
    return load_torch_weights(
        path, "GMPI checkpoint file", "pass GMPI's checkpoint folder as its training saved it: "
        "fk gmpi generate --ckpt FOLDER (config.pth, ema.pth [, generator.pth])"
    )  # fmt: skip


@dataclass
class LoadedGenerator:
    generator: torch.nn.Module
    config: GmpiConfig
    source: str
    notes: list[str]


def load_gmpi_checkpoint(
    folder: Path,
    n_planes: int | None = None,
    w_avg: str = "gmpi",
    config_path: Path | None = None,
    dataset: str | None = None,
) -> LoadedGenerator:
    """A GMPI run folder (``config.pth`` + ``ema.pth`` [+ ``generator.pth``]) -> the EMA generator."""
    from fk_gmpi.generator import GmpiGenerator

    folder = Path(folder)
    cfg_file = config_path or next(
        (folder / n for n in ("config.pth", "gmpi.yml", "config.yml") if (folder / n).exists()), None
    )
    if cfg_file is None:
        raise InputError(
            f"{folder}: no config.pth", hint="pass the GMPI checkpoint folder, or --config gmpi.yml"
        )
    cfg = read_config(cfg_file, dataset)
    n_build = (
        cfg.n_planes
        if cfg.stylegan2["torgba_cond_on_pos_enc"] != "normalize_add_z"
        or cfg.stylegan2["torgba_cond_on_pos_enc_embed_func"] == "learnable_param"
        else (n_planes or cfg.n_planes)
    )
    gen = GmpiGenerator(**cfg.generator_kwargs(n_build))
    params = dict(gen.named_parameters())
    ema_file = folder / "ema.pth"
    gen_file = folder / "generator.pth"
    notes: list[str] = []
    state = _torch_load(gen_file) if gen_file.exists() else None
    if ema_file.exists():
        ema = _torch_load(ema_file)
        shadows = ema.get("shadow_params") if isinstance(ema, dict) else None
        if not isinstance(shadows, list):
            raise InputError(f"{ema_file}: no shadow_params list", hint="expected torch_ema's state_dict")
        names = [k for k in state if k in params] if state is not None else gen.gmpi_parameter_names()
        if len(names) != len(shadows):
            raise InputError(
                f"{ema_file}: {len(shadows)} shadow tensors for {len(names)} generator parameters",
                hint="the config does not describe this checkpoint's network",
            )
        weights = dict(zip(names, shadows, strict=False))
        source = "ema.pth"
    elif state is not None:
        weights = {k: v for k, v in state.items() if k in params}
        source = "generator.pth"
        notes.append("no ema.pth: generator.pth's raw weights (GMPI evaluates the EMA ones)")
    else:
        raise InputError(f"{folder}: neither ema.pth nor generator.pth", hint="pass a GMPI checkpoint folder")
    for name, tensor in weights.items():
        if name not in params:
            raise InputError(f"{source}: unexpected parameter {name}", hint="config and checkpoint disagree")
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise InputError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, the config builds "
                f"{tuple(params[name].shape)}",
                hint="config and checkpoint disagree",
            )
    missing = sorted(set(params) - set(weights))
    if missing:
        raise InputError(
            f"{source}: {len(missing)} parameter(s) missing, e.g. {missing[0]}",
            hint="config and checkpoint disagree",
        )
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
        if w_avg == "checkpoint":
            if state is None or "mapping.w_avg" not in state:
                raise InputError(f"{folder}: w_avg=checkpoint needs generator.pth", hint="or use w_avg=gmpi")
            gen.mapping.w_avg.copy_(state["mapping.w_avg"])
            notes.append("w_avg from generator.pth (fk option; GMPI's evaluation keeps it at zero)")
        elif w_avg != "gmpi":
            raise InputError(f"w_avg must be 'gmpi' or 'checkpoint', got {w_avg!r}")
    return LoadedGenerator(gen.eval().requires_grad_(False), cfg, f"{folder} ({source})", notes)


def load_from_stylegan2_pickle(
    path: Path, dataset: str, config_path: Path | None = None, n_planes: int | None = None, seed: int = 0
) -> LoadedGenerator:
    """A StyleGAN2-ADA pickle -> GMPI's generator at iteration 0 (random plane layers)."""
    from fk.nets.stylegan2 import read_stylegan2_pickle

    cfg = (
        read_config(config_path, dataset)
        if config_path
        else config_from_dict({"GMPI": {"TRAIN": {"dataset": dataset}}}, "configs/gmpi.yml defaults")
    )
    data = read_stylegan2_pickle(path)
    record = data.get("G_ema")
    if record is None:
        raise InputError(f"{path}: no G_ema network", hint="pass a StyleGAN2-ADA training snapshot (.pkl)")
    gen, notes = generator_from_record(record, cfg, n_planes, seed, Path(path).name)
    return LoadedGenerator(gen.eval().requires_grad_(False), cfg, f"{path} (G_ema)", notes)


def generator_from_record(
    record: Any, cfg: GmpiConfig, n_planes: int | None, seed: int, source: str
) -> tuple[torch.nn.Module, list[str]]:
    """GMPI's generator with a StyleGAN2 ``G_ema`` record's weights (by name, ``require_all=False``).

    The network sizes come from the record's ``init_kwargs``; ``cfg.resolution`` is set to its resolution.
    """
    from fk_gmpi.generator import GmpiGenerator

    kw = dict(record.init_kwargs)
    sk = dict(kw.get("synthesis_kwargs") or {})
    gk = cfg.generator_kwargs(n_planes)
    gk.update(
        z_dim=kw["z_dim"],
        w_dim=kw["w_dim"],
        img_resolution=kw["img_resolution"],
        mapping_kwargs=dict(kw.get("mapping_kwargs") or {}),
        synthesis_kwargs={
            k: sk[k] for k in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp") if k in sk
        },
    )
    if kw.get("c_dim", 0):
        raise InputError(
            f"{source}: a conditional StyleGAN2 (c_dim {kw['c_dim']}); GMPI's generator is unconditional"
        )
    cfg.resolution = kw["img_resolution"]
    torch.manual_seed(seed)
    gen = GmpiGenerator(**gk)
    state = record_state(record)
    own = gen.state_dict()
    copied = 0
    with torch.no_grad():
        for name, tensor in state.items():
            if name in own and tuple(own[name].shape) == tuple(tensor.shape):
                own[name].copy_(torch.as_tensor(tensor))
                copied += 1
    notes = [
        f"{copied} StyleGAN2 tensors from {source}; the alpha branch is GMPI's random "
        "initialisation (an untrained GMPI: planes are not yet 3D)"
    ]
    return gen, notes


def record_state(record: Any) -> dict[str, Any]:
    """A persistent record's parameters and buffers as ``{name: tensor}`` (NVIDIA's key names)."""
    return record.state_dict()
