"""``fk gmpi train``'s configuration: GMPI's ``configs/gmpi.yml`` keys with GMPI's defaults (gmpi.md §3.4).

:data:`GMPI_YML` is every key of GMPI's released ``configs/gmpi.yml`` with its value there; a user's YAML
is merged over it, so a missing file or key means GMPI's default. A key GMPI's file does not have (nor
``modify_curriculums`` adds to a saved ``config.pth``) is refused with one line naming it and the file
(GMPI's yacs nodes accept new keys silently; a typo there trains with the default, which fk refuses).

Values the YAML does not carry come from GMPI's curriculum (``gmpi/curriculums.py``, ``train_helpers.py``):
per-GPU batch size by resolution, Adam lr 0.002 / betas (0, 0.9), R1 gamma 10, grad clip 10, z ~ N(0, I),
``mbstd`` group 1; see :data:`CURRICULUM`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fk.errors import InputError

from fk_gmpi.checkpoint import DEFAULTS, GmpiConfig, _merge, config_from_dict

_PRETRAINED = "ckpts/stylegan2_pretrained/"
_CAM = {"spatial_enlarge_factor": 1.001, "cam_pose_sample_method": "truncated_gaussian"}

# GMPI's configs/gmpi.yml at 60c991f, key by key (values are facts of that file)
GMPI_YML: dict[str, Any] = _merge(
    DEFAULTS,
    {
        "SEED": 123,
        "LOG_DIR": "./experiments/",
        "LOG_FILE": "train.log",
        "INFO_DIR": "infos",
        "CHECKPOINT_FOLDER": "checkpoints",
        "TENSORBOARD_DIR": "tb",
        "DEBUG": 0,
        "GMPI": {
            "TRAIN": {
                "dataset": "FFHQ256",
                "total_iters": 5001,
                "n_epochs": 3000,
                "sample_interval": 200,
                "output_dir": "debug",
                "load_dir": "",
                "eval_freq": 5000,
                "port": 12345,
                "model_save_interval": 500,
                "n_dataloader_workers": 8,
                "aug_with_lighting": True,
                "aug_with_lighting_max_ka": 0.9,
                "aug_with_lighting_max_kd": 0.1,
                "aug_with_lighting_start_iter": 1000,
                "aug_with_lighting_grow_n_iters": 1000,
                "use_xyz_ztype": "depth",
                "use_normalized_xyz": True,
                "normalized_xyz_range": "01",
                "D_from_stylegan2": True,
                "D_cond_on_pose": True,
                "D_cond_pose_dim": 16,
                "D_pred_pos": False,
                "n_view_per_z_in_train": 4,
                "G_select_worse_view": "per_z",
                "use_edge_aware_loss": False,
                "edge_aware_loss_w": 1.0,
                "edge_aware_loss_start_iter": 1000,
                "edge_aware_loss_grow_n_iters": 1000,
                "edge_aware_loss_e_min": 0.05,
                "edge_aware_loss_g_min": 0.01,
                "use_cano_reconstruct_loss": False,
                "cano_reconstruct_loss_w": 0.0,
                "only_tune": False,
                "D_train": True,
                "G_tune_alpha": True,
                "G_tune_background": False,
                "G_tune_mapping": False,
                "G_iters": 1,
            },
            "DDP_TRAIN": {"addr": "127.0.1.1", "port": 8338},
            "MPI": {
                "align_corners": True,
                "use_confined_volume": True,
                "n_gen_planes": 32,
                "aug_jitter_to_pixels": False,
                "aug_jitter_to_planes": False,
                "separate_background": False,
                "cam_ray_from_pix_center": True,
                "depth2alpha_n_z_bins": 256,
                "distance_sample_method": "inverse",
                "FOR_FFHQ": {
                    **_CAM,
                    "cam_pose_n_truncated_stds": 2,
                    "cam_sphere_center_z": 1.0,
                    "cam_sphere_r": 1.0,
                },
                "FOR_AFHQCat": {
                    **_CAM,
                    "cam_pose_n_truncated_stds": 3,
                    "cam_sphere_center_z": 2.7,
                    "cam_sphere_r": 2.7,
                },
                "FOR_MetFaces": {
                    **_CAM,
                    "cam_pose_n_truncated_stds": 2,
                    "cam_sphere_center_z": 1.0,
                    "cam_sphere_r": 1.0,
                },
            },
            "MODEL": {
                "use_pretrained_ckpt": True,
                "pretrained_ckpts": {
                    "FFHQ256": _PRETRAINED
                    + "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
                    "FFHQ512": _PRETRAINED
                    + "transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl",
                    "FFHQ1024": _PRETRAINED
                    + "transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl",
                    "AFHQCat": _PRETRAINED + "afhqcat.pkl",
                    "MetFaces": _PRETRAINED + "metfaces.pkl",
                },
                "STYLEGAN2": {
                    "discriminator": {"use_ori_mapping": False, "cmap_dim": 16, "use_mbstd_in_D": True}
                },
            },
        },
        "DATASET": {
            "FFHQ": {
                "TRAIN_DATAROOT": "runtime_dataset/ffhq{}x{}.zip",
                "POSE_DATAROOT": "runtime_dataset/ffhq{}_deep3dface_coeffs",
            },
            "AFHQCat": {
                "TRAIN_DATAROOT": "runtime_dataset/afhq_v2_train_cat_512",
                "POSE_DATAROOT": "runtime_dataset/afhq_v2_train_cat_512",
            },
            "MetFaces": {
                "TRAIN_DATAROOT": "runtime_dataset/metfaces1024x1024_xflip",
                "POSE_DATAROOT": "runtime_dataset/metfaces_xflip_deep3dface_coeffs",
            },
        },
    },
)

# Keys GMPI's modify_curriculums/update_config_log add to the config it saves (config.pth), and the
# latent sizes fk's tiny test networks state; accepted in a --config as well.
_DERIVED = {
    ("VIS_DIR",),
    ("GMPI", "TRAIN", "curriculum"),
    ("GMPI", "MODEL", "pretrained"),
    ("GMPI", "MODEL", "pretrained_D"),
    ("GMPI", "MODEL", "STYLEGAN2", "max_out_dim"),
    ("GMPI", "MODEL", "STYLEGAN2", "max_out_dim_D"),
    ("GMPI", "MODEL", "STYLEGAN2", "z_dim"),
    ("GMPI", "MODEL", "STYLEGAN2", "w_dim"),
    ("GMPI", "MODEL", "STYLEGAN2", "discriminator", "mbstd_group_size"),
    ("GMPI", "MPI", "CAM_SETUP"),
}

# gmpi/curriculums.py res_dict (per-GPU batch, batch_split) and the constants of every curriculum
BATCH_PER_GPU = {256: (8, 1), 512: (4, 1), 1024: (4, 2)}
BATCH_PER_GPU_LEARNABLE = {256: (4, 1), 512: (4, 2), 1024: (4, 2)}
CURRICULUM = {"lr": 0.002, "betas": (0.0, 0.9), "r1_lambda": 10.0, "grad_clip": 10.0, "mbstd_group_size": 1}
EMA_DECAYS = (0.999, 0.9999)  # ema.pth, ema2.pth
DATASETS = ("FFHQ256", "FFHQ512", "FFHQ1024", "AFHQCat", "MetFaces")


def unknown_keys(raw: dict, reference: dict = GMPI_YML, path: tuple = ()) -> list[str]:
    """Dotted names of the keys of ``raw`` that GMPI's config does not have."""
    out = []
    for key, value in raw.items():
        here = (*path, key)
        if here in _DERIVED or (len(path) >= 3 and path[:3] == ("GMPI", "MODEL", "pretrained_ckpts")):
            continue
        if key not in reference:
            out.append(".".join(map(str, here)))
        elif isinstance(value, dict) and isinstance(reference[key], dict):
            out.extend(unknown_keys(value, reference[key], here))
    return out


@dataclass
class TrainSettings:
    """Everything the training loop reads, resolved from the config and the command line."""

    cfg: GmpiConfig
    source: str
    seed: int = 123
    total_iters: int = 5001
    sample_interval: int = 200
    model_save_interval: int = 500
    batch_size: int = 8  # per process, GMPI's per-GPU batch
    batch_split: int = 1
    n_views: int = 4
    worst_view: bool = True
    lighting: bool = True
    light_ka: float = 0.9
    light_kd: float = 0.1
    light_start: int = 1000
    light_grow: int = 1000
    d_cond_dim: int = 16
    cmap_dim: int = 16
    use_mbstd: bool = True
    lr: float = CURRICULUM["lr"]
    betas: tuple = CURRICULUM["betas"]
    r1_lambda: float = CURRICULUM["r1_lambda"]
    grad_clip: float = CURRICULUM["grad_clip"]
    truncation_psi: float = 1.0
    workers: int = 0
    noise_mode: str = "random"

    @property
    def setup(self):
        from fk.cameras.gmpi import camera_setup

        base = camera_setup(self.cfg.dataset)
        key = {"AFHQCat": "FOR_AFHQCat", "MetFaces": "FOR_MetFaces"}.get(self.cfg.dataset, "FOR_FFHQ")
        cam = self.cfg.mpi[key]
        return replace(
            base,
            n_truncated_stds=float(cam["cam_pose_n_truncated_stds"]),
            sphere_center_z=float(cam["cam_sphere_center_z"]),
            sphere_r=float(cam["cam_sphere_r"]),
            spatial_enlarge_factor=float(cam["spatial_enlarge_factor"]),
        )

    @property
    def camera_sample_method(self) -> str:
        key = {"AFHQCat": "FOR_AFHQCat", "MetFaces": "FOR_MetFaces"}.get(self.cfg.dataset, "FOR_FFHQ")
        return str(self.cfg.mpi[key]["cam_pose_sample_method"])


def _refuse(cond: bool, source: str, key: str, why: str) -> None:
    if cond:
        raise InputError(f"{source}: {key} {why}", hint="GMPI's released code has no such training path")


def settings_from_raw(raw: dict | None, source: str, dataset: str | None = None) -> TrainSettings:
    """Merge ``raw`` over GMPI's config, check it, and resolve the training settings."""
    raw = copy.deepcopy(raw or {})
    if not isinstance(raw, dict):
        raise InputError(f"{source}: not a mapping of GMPI config keys", hint="pass GMPI's configs/gmpi.yml")
    bad = unknown_keys(raw)
    if bad:
        raise InputError(
            f"{source}: unknown config key {bad[0]}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""),
            hint="GMPI's configs/gmpi.yml has no such key; check its spelling",
        )
    merged = _merge(GMPI_YML, raw)
    if dataset:
        merged["GMPI"]["TRAIN"]["dataset"] = dataset
    if merged["GMPI"]["TRAIN"]["dataset"] not in DATASETS:
        raise InputError(
            f"{source}: dataset {merged['GMPI']['TRAIN']['dataset']!r} is not one of {', '.join(DATASETS)}",
            hint="--dataset FFHQ256|FFHQ512|FFHQ1024|AFHQCat|MetFaces",
        )
    cfg = config_from_dict(merged, source)
    t, sg = merged["GMPI"]["TRAIN"], merged["GMPI"]["MODEL"]["STYLEGAN2"]
    _refuse(bool(t["use_edge_aware_loss"]), source, "use_edge_aware_loss", "is unimplemented in GMPI too")
    _refuse(
        bool(t["use_cano_reconstruct_loss"]),
        source,
        "use_cano_reconstruct_loss",
        "is unimplemented in GMPI too",
    )
    _refuse(bool(t["only_tune"]) or not t["D_train"], source, "only_tune/D_train", "other than False/True")
    _refuse(
        not t["D_from_stylegan2"] or bool(t["D_pred_pos"]),
        source,
        "D_from_stylegan2/D_pred_pos",
        "other than True/False",
    )
    _refuse(
        bool(sg["discriminator"]["use_ori_mapping"]),
        source,
        "discriminator.use_ori_mapping",
        "True (GMPI raises NotImplementedError)",
    )
    _refuse(t["D_cond_pose_dim"] not in (9, 16), source, "D_cond_pose_dim", "must be 9 or 16")
    _refuse(
        t["G_select_worse_view"] not in ("none", "per_z"),
        source,
        "G_select_worse_view",
        "must be none or per_z",
    )
    _refuse(int(t["G_iters"]) != 1, source, "G_iters", "other than 1")
    learnable = sg["torgba_cond_on_pos_enc_embed_func"] == "learnable_param"
    batch, split = (BATCH_PER_GPU_LEARNABLE if learnable else BATCH_PER_GPU).get(cfg.resolution, (8, 1))
    return TrainSettings(
        cfg=cfg,
        source=source,
        seed=int(merged["SEED"]),
        total_iters=int(t["total_iters"]),
        sample_interval=int(t["sample_interval"]),
        model_save_interval=int(t["model_save_interval"]),
        batch_size=batch,
        batch_split=split,
        n_views=int(t["n_view_per_z_in_train"]),
        worst_view=t["G_select_worse_view"] == "per_z" and int(t["n_view_per_z_in_train"]) > 1,
        lighting=bool(t["aug_with_lighting"]),
        light_ka=float(t["aug_with_lighting_max_ka"]),
        light_kd=float(t["aug_with_lighting_max_kd"]),
        light_start=int(t["aug_with_lighting_start_iter"]),
        light_grow=int(t["aug_with_lighting_grow_n_iters"]),
        d_cond_dim=int(t["D_cond_pose_dim"]) if t["D_cond_on_pose"] else 0,
        cmap_dim=int(sg["discriminator"]["cmap_dim"] or 0) or 16,
        use_mbstd=bool(sg["discriminator"]["use_mbstd_in_D"]),
        truncation_psi=float(sg["truncation_psi"]),
    )


def read_train_config(path: Path | None, dataset: str | None = None) -> TrainSettings:
    """``--config gmpi.yml`` (or None: GMPI's defaults) -> :class:`TrainSettings`."""
    if path is None:
        return settings_from_raw({}, "configs/gmpi.yml defaults", dataset)
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: no such config file",
            hint="pass GMPI's configs/gmpi.yml, or omit --config for GMPI's defaults",
        )
    import yaml

    try:
        raw = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: not readable YAML ({first})", hint="pass GMPI's configs/gmpi.yml") from exc
    return settings_from_raw(raw if raw is not None else {}, str(p), dataset)
