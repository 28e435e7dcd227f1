"""``fk eyeball train``: CoRA's volume-stage training of the hybrid avatar (cora.md §4-9), in plain torch.

Reads CoRA's ``config.yaml`` keys (§4). Keys with a default in CoRA's code keep it (``data.sh_scale`` 0.1,
``data.beta`` 10, ``data.dilate_ks`` 0, ``renderer.max_num_ray`` 65536, ``loss.w_ldm`` 0, ...). CoRA's own
dataset configs were never published, so the keys it leaves to them get fk's values (``FK_DEFAULTS``;
each run lists the ones it filled in). ``data.meta_path`` and ``data.bound`` are required, and in the
hybrid mode ``data.eyeball_min_size``/``eyeball_max_size``.

Modes: **hybrid** (CoRA's Step 2) when the config has eyeball landmarks (``data.left_eye_ldm`` /
``right_eye_ldm``) or centres (``data.eyeball_left_center`` / ``eyeball_right_center``), otherwise
``config_wo-hybrid`` (Step 1: the head SDF alone). fk's key ``data.hybrid: true|false`` forces either.
CoRA starts the centres from the config's ``eyeball_*_center`` (world/bound units, default the origin);
fk does so too when they are given, and otherwise starts them from a sphere fit to the landmarks.

Each iteration (§9): ``num_rays`` pixels drawn uniformly over all frames; marching through the
occupancy grid with steps of ``2·bound·√3/render_n_samples`` (stratified); per sample the head SDF and
eyeball spheres, the Laplace density, normals from autograd, the radiance head, the materials and the
flashlight + ambient SH shading; losses: photometric (radiance head and PBR), mask, eikonal, object
masks, hair specular, AlbedoMM specular prior, normal smoothness (stronger under ``hair_mask``),
eyeball landmarks. Adam (lr 1e-3, eps 1e-15), linear warm-up then ×0.33 at the milestones; the ray
count adapts to ``sample_batch_size``; hash levels grow from ``init_level`` every ``level_grow_iter``.
With ``train.mesh_render``, steps after ``train.mesh_render_iter`` run CoRA's mesh-rasterisation stage
(:mod:`fk_eyeball.mesh_stage`: material refinement on the extracted mesh, L1 + LPIPS when its weights are
installed + hair/AlbedoMM specular terms). Validation reports PSNR, SSIM (window 3) and LPIPS (with its
weights). ``train.accelerator`` (fk key, ``--accelerator``; :mod:`fk_eyeball.accel`): ``auto`` uses
tiny-cuda-nn's networks and nerfacc 0.3.1's occupancy grid and marcher on CUDA when they import, else fk's
torch code; ``torch`` always fk's; ``tcnn`` CoRA's stack or an error. As in CoRA, samples are marched in
world units and each sample's opacity is ``σ·Δ`` with ``σ`` in the networks' x01 units and ``Δ`` in world
units, and the marcher drops samples behind transmittance 1e-4 (nerfacc's early stop).

Outputs in ``--out``: ``config.yaml`` (the merged config), ``losses.jsonl`` (one line per step),
``iter_XXXXX.pth`` every ``save_freq``, ``latest.pth`` every 1000 steps and at the end (weights only:
tensors and plain containers; in the mesh stage they also hold its mesh), ``val/iter_XXXXXXXX/
inv-render_NNNNN.png`` strips every ``val_freq`` (CoRA's panels: SH occlusion, SH diffuse, flashlight
diffuse, 3×specular, reconstruction, ground truth, normal, leye×GT, reye×GT, face×GT; in the mesh stage
CoRA's six: SH diffuse, flashlight diffuse, 3×specular, reconstruction, ground truth, normal) with their
metrics in ``val.jsonl``, and ``precompute_mesh_XXXXX.obj`` when the mesh stage starts.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fk.errors import InputError

from fk_eyeball.avatar import AvatarSpec, HybridAvatar
from fk_eyeball.brdf import point_light, sh_ambient, sh_basis
from fk_eyeball.sampling import accumulate, transmittance

CORA_DEFAULTS: dict[str, dict[str, Any]] = {  # defaults in CoRA's code (cora.md §4)
    "data": {"dilate_ks": 0, "sh_scale": 0.1, "beta": 10.0, "left_eye_ldm": None, "right_eye_ldm": None,
             "eyeball_left_center": [0.0, 0.0, 0.0], "eyeball_right_center": [0.0, 0.0, 0.0],
             "fix_eyeball_center": False},
    "renderer": {"max_num_ray": 65536},
    "loss": {"w_ldm": 0.0},
}  # fmt: skip
FK_DEFAULTS: dict[str, dict[str, Any]] = {  # keys CoRA leaves to its unpublished dataset configs
    "network": {"num_levels": 16, "level_dim": 2, "geo_feat_dim": 16, "neighbor_eps": 0.005},
    "light": {"intensity": 8.0, "color": [1.0, 1.25, 0.7], "gamma": 2.2},  # Capture.md's example
    "brdf": {"type": "blender", "min_roughness": 0.1, "max_roughness": 0.9},
    "renderer": {"render_n_samples": 1024, "sample_batch_size": 262144, "chunk_size": 16384,
                 "grid_resolution": 128},
    "train": {"max_steps": 30000, "warmup_steps": 500, "milestones": [15000, 25000], "save_freq": 5000,
              "val_freq": 1000, "vis_freq": 1000, "mesh_render": False, "mesh_render_iter": 0,
              "mesh_render_resolution": 256, "accelerator": "auto",
              "init_level": 4, "level_grow_iter": 1000, "seed": 0},
    "loss": {"w_l1": 1.0, "w_mask": 0.1, "w_eikonal": 0.1, "w_sdf_mask": 0.1, "w_reg_diff": 0.01,
             "w_abdmm": 0.1, "w_abdmm_refine": 0.1, "w_eps_n": 0.001, "w_eps_n_smooth": 0.01, "w_lpips": 0.1},
}  # fmt: skip
LR, ADAM_EPS, DECAY = 1e-3, 1e-15, 0.33  # CoRA's optimiser (§9.4)
OCC_EVERY, OCC_EMA, OCC_THRESHOLD, OCC_WARMUP = 16, 0.95, 0.01, 256  # nerfacc 0.3.1's defaults


# ---------------------------------------------------------------- config
def _bad(path: Path, what: str, fix: str) -> InputError:
    return InputError(f"{path}: {what}", hint=fix)


def load_config(path: str | Path) -> tuple[dict, list[str]]:
    """CoRA's config with defaults filled in; returns (config, the keys fk filled from FK_DEFAULTS).

    Raises a one-line InputError naming the file and the key for unreadable YAML, a missing required key
    or a value of the wrong kind.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise _bad(path, "no such config file", "pass the subject's config.yaml") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _bad(path, f"cannot read the YAML ({first})", "fix the file's syntax") from None
    if not isinstance(raw, dict):
        raise _bad(path, "is not a YAML mapping", "write CoRA's keys (data:, network:, train:, ...)")
    cfg = copy.deepcopy(raw)
    for section in {*CORA_DEFAULTS, *FK_DEFAULTS}:
        if cfg.get(section) is None:
            cfg[section] = {}
        if not isinstance(cfg[section], dict):
            raise _bad(path, f"'{section}' must be a mapping", f"write {section}: with its keys below it")
    filled = []
    for section, keys in CORA_DEFAULTS.items():
        for k, v in keys.items():
            cfg[section].setdefault(k, copy.deepcopy(v))
    for section, keys in FK_DEFAULTS.items():
        for k, v in keys.items():
            if k not in cfg[section]:
                cfg[section][k] = copy.deepcopy(v)
                filled.append(f"{section}.{k}")
    data = cfg["data"]
    for key in ("meta_path", "bound"):
        if data.get(key) is None:
            raise _bad(path, f"data.{key} is missing", "CoRA's config needs data.meta_path and data.bound")
    _check_number(path, cfg, "data.bound", positive=True)
    for key in ("network.num_levels", "network.level_dim", "network.geo_feat_dim",
                "renderer.render_n_samples",
                "renderer.sample_batch_size", "renderer.max_num_ray", "renderer.grid_resolution",
                "train.max_steps", "train.level_grow_iter", "train.save_freq", "train.val_freq",
                "train.mesh_render_resolution"):  # fmt: skip
        _check_number(path, cfg, key, positive=True, integer=True)
    for key in ("train.warmup_steps", "train.init_level", "data.dilate_ks", "train.mesh_render_iter"):
        _check_number(path, cfg, key, integer=True)
    for key in [f"loss.{k}" for k in cfg["loss"]] + ["light.intensity", "light.gamma", "data.sh_scale",
                                                       "data.beta", "network.neighbor_eps"]:  # fmt: skip
        _check_number(path, cfg, key)
    from fk_eyeball.accel import ACCELERATORS

    if cfg["train"]["accelerator"] not in ACCELERATORS:
        raise _bad(path, f"train.accelerator is {cfg['train']['accelerator']!r}",
                   f"set it to one of {', '.join(ACCELERATORS)}")  # fmt: skip
    if cfg["brdf"]["type"] != "blender":
        raise _bad(path, f"brdf.type is {cfg['brdf']['type']!r}", "CoRA implements only brdf.type: blender")
    _check_vector(path, cfg, "light.color")
    if not isinstance(cfg["train"]["milestones"], list):
        raise _bad(path, "train.milestones must be a list of steps", "write e.g. milestones: [15000, 25000]")
    hybrid = data.get("hybrid")
    if hybrid is None:
        eye_keys = ("left_eye_ldm", "right_eye_ldm", "eyeball_left_center", "eyeball_right_center")
        hybrid = any(k in (raw.get("data") or {}) for k in eye_keys)
    data["hybrid"] = bool(hybrid)
    if data["hybrid"]:
        for key in ("eyeball_min_size", "eyeball_max_size"):
            if data.get(key) is None:
                raise _bad(path, f"data.{key} is missing", "the hybrid model needs the eyeball radius range")
            _check_number(path, cfg, f"data.{key}", positive=True)
        for key in ("eyeball_left_center", "eyeball_right_center"):
            _check_vector(path, cfg, f"data.{key}")
        for key in ("left_eye_ldm", "right_eye_ldm"):
            v = data.get(key)
            if v is not None:
                a = np.asarray(v, dtype=object)
                if a.ndim != 2 or a.shape[1] != 3 or not all(isinstance(x, (int, float)) for x in a.ravel()):
                    raise _bad(path, f"data.{key} must be a list of [x, y, z] points",
                               "paste the points of `fk eyeball uv-landmarks` or `landmarks-3d`")  # fmt: skip
    return cfg, filled


def _get(cfg: dict, dotted: str) -> Any:
    section, key = dotted.split(".")
    return cfg[section].get(key)


def _check_number(path: Path, cfg: dict, dotted: str, positive: bool = False, integer: bool = False) -> None:
    v = _get(cfg, dotted)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (not integer or float(v).is_integer()) and (not positive or v > 0)
    if not ok:
        kind = ("a positive " if positive else "a ") + ("whole number" if integer else "number")
        raise _bad(path, f"{dotted} is {v!r}, expected {kind}", f"set {dotted} to {kind}")


def _check_vector(path: Path, cfg: dict, dotted: str) -> None:
    v = _get(cfg, dotted)
    if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
        raise _bad(path, f"{dotted} is {v!r}, expected [x, y, z]", f"write {dotted}: [x, y, z]")


def resolve_meta(cfg: dict, config_path: Path) -> Path:
    """``data.meta_path`` as written (CoRA), else relative to the config's folder, else its name there."""
    p = Path(cfg["data"]["meta_path"])
    for cand in (p, config_path.parent / p, config_path.parent / p.name):
        if cand.is_file():
            return cand
    raise _bad(config_path, f"data.meta_path {p} not found",
               "point it at the subject's transforms.json (absolute, or relative to the config)")  # fmt: skip


# ---------------------------------------------------------------- data
class RayData:
    """Every frame's linear pixels, masks and rays on one device (CoRA keeps its dataset on the GPU)."""

    def __init__(self, subject, gamma: float, dilate_ks: int, device: torch.device) -> None:
        frames = subject.frames
        h, w = subject.size
        load = subject.load

        def stack(folder: str, required: bool = False) -> torch.Tensor:
            return torch.from_numpy(np.stack([load(folder, f, required=required) for f in frames]))

        rgb = stack("image", required=True)
        self.pixels = (rgb**gamma).to(device)  # linear targets (pixels ** gamma)
        self.mask = stack("mask")[..., 0]
        hair = stack("hair_mask")[..., 0]
        if dilate_ks > 0:  # CoRA's hair shrink: hair *= 1 - dilate(mask - hair)
            face = (self.mask - hair)[:, None]
            grown = torch.nn.functional.max_pool2d(face, dilate_ks, stride=1, padding=dilate_ks // 2)
            hair = hair * (1 - grown[:, 0, :h, :w])
        self.mask, self.hair = self.mask.to(device), hair.to(device)
        self.leye = stack("leye_mask")[..., 0].to(device)
        self.reye = stack("reye_mask")[..., 0].to(device)
        self.bfm = stack("specular_bfm").mean(-1).to(device)  # CoRA: mean over RGB
        K = torch.as_tensor(subject.K, dtype=torch.float64)
        self.K = K.float()  # OpenCV pixel centres (the mesh stage rasterises with it)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")  # fmt: skip
        d_cam = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
        c2w = torch.as_tensor(subject.cam2world, dtype=torch.float64)
        self.rot = c2w[:, :3, :3].float().to(device)
        self.centre = c2w[:, :3, 3].float().to(device)
        self.d_cam = d_cam.reshape(-1, 3).float().to(device)
        self.n_frames, self.h, self.w = len(frames), h, w
        self.names = [f.name for f in frames]

    def rays(self, frame: torch.Tensor, pixel: torch.Tensor) -> dict[str, torch.Tensor]:
        d = torch.einsum("rij,rj->ri", self.rot[frame], self.d_cam[pixel])
        row, col = pixel // self.w, pixel % self.w
        return {
            "origin": self.centre[frame], "dir": torch.nn.functional.normalize(d, dim=-1), "frame": frame,
            "rgb": self.pixels[frame, row, col], "mask": self.mask[frame, row, col],
            "hair": self.hair[frame, row, col], "leye": self.leye[frame, row, col],
            "reye": self.reye[frame, row, col], "bfm": self.bfm[frame, row, col],
        }  # fmt: skip


# ---------------------------------------------------------------- rendering
def render_step(avatar: HybridAvatar, cfg: dict) -> float:
    """CoRA's ``render_step_size``: ``2·bound·√3 / render_n_samples`` (world units)."""
    return 2 * avatar.bound * math.sqrt(3) / cfg["renderer"]["render_n_samples"]


def scene_density(avatar: HybridAvatar, x: torch.Tensor) -> torch.Tensor:
    """CoRA's ``query_density``: the composite SDF's Laplace density at world points (x01-unit β)."""
    return avatar.density(avatar.sdf01(avatar.to01(x))["sdf"])


def render_rays(
    avatar: HybridAvatar,
    sampler: torch.nn.Module,
    rays: dict[str, torch.Tensor],
    cfg: dict,
    training: bool,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Volume-render a batch of world rays; returns per-ray maps and (training) per-sample terms.

    ``sampler``: :class:`fk_eyeball.accel.TorchSampler` or :class:`~fk_eyeball.accel.NerfaccSampler`. As in
    CoRA, samples are marched in world units and each one's opacity is ``σ·Δ`` with the density in the
    networks' x01 units and the step ``Δ`` in world units.
    """
    bound = avatar.bound
    origins = rays["origin"]
    dirs = rays["dir"]
    with torch.no_grad():
        s = sampler.march_world(origins, dirs, render_step(avatar, cfg), stratified=training,
                                sigma_fn=lambda x: scene_density(avatar, x), generator=generator)  # fmt: skip
    ri = s.ray_index
    n_rays = len(dirs)
    t_mid = (s.t_starts + s.t_ends) / 2
    x01 = avatar.to01(origins[ri] + dirs[ri] * t_mid[:, None]).detach().requires_grad_(True)
    with torch.enable_grad():
        q = avatar.sdf01(x01)
        (grad,) = torch.autograd.grad(q["sdf"].sum(), x01, create_graph=training)
    if not training:
        grad = grad.detach()
    normal = torch.nn.functional.normalize(grad, dim=-1)
    delta = s.t_ends - s.t_starts
    sigma = avatar.density(q["sdf"])
    trans = transmittance(sigma * delta, ri)
    weights = trans * (1 - torch.exp(-sigma * delta))
    eye = (q["sdf"] < q["face"]) if avatar.spec.hybrid else None
    mat = avatar.material01(x01, eye)
    light = cfg["light"]
    light_rgb = torch.tensor(light["color"], dtype=x01.dtype, device=x01.device) * float(light["intensity"])
    points = x01 * (2 * bound) - bound
    cams = rays["origin"][ri]
    diff, spec = point_light(
        points, normal, cams, mat["albedo"], mat["specular"], mat["roughness"], light_rgb
    )
    occ_code = avatar.sh_occlusion[rays["frame"][ri]]
    amb = sh_ambient(normal.detach(), mat["albedo"], avatar.sh_env, occ_code, cfg["data"]["sh_scale"],
                     cfg["data"]["beta"])  # fmt: skip
    amb_occ = None if training else torch.sigmoid((sh_basis(normal) * occ_code).sum(-1, keepdim=True))
    head_rgb = avatar.radiance(q["feature"], dirs[ri], normal)
    acc = lambda v: accumulate(v, weights, ri, n_rays)  # noqa: E731
    out = {
        "rgb_head": acc(head_rgb), "recon": acc(diff + spec + amb), "acc": acc(torch.ones_like(weights)),
        "specular": acc(mat["specular"])[:, 0], "normal": acc(normal), "diffuse_flash": acc(diff),
        "specular_flash": acc(spec), "ambient": acc(amb), "n_samples": torch.tensor(len(ri)),
    }  # fmt: skip
    if amb_occ is not None:
        out["sh_occlusion"] = acc(amb_occ)
    if avatar.spec.hybrid:
        for name in ("face", "leye", "reye"):  # occlusion-aware object opacities (ObjectSDF++)
            w_obj = trans * (1 - torch.exp(-avatar.density(q[name]) * delta))
            out[f"acc_{name}"] = accumulate(w_obj, torch.ones_like(w_obj), ri, n_rays)
    if training:
        out.update(grad=grad, ray_index=ri, x01=x01, normal_samples=normal)
    return out


def smoothness_normals(avatar: HybridAvatar, x01: torch.Tensor, normal: torch.Tensor, eps: float,
                       generator: torch.Generator | None) -> torch.Tensor:  # fmt: skip
    """Normals at ``x + eps·t·N(0, 1)``, ``t`` a random unit tangent (PermutoSDF-style)."""
    r = torch.rand(normal.shape, generator=generator, dtype=normal.dtype, device=normal.device)
    tangent = torch.nn.functional.normalize(torch.cross(r, normal.detach(), dim=-1), dim=-1)
    g = torch.randn(normal.shape[:1], generator=generator, dtype=normal.dtype, device=normal.device)
    xp = (x01.detach() + eps * tangent * g[:, None]).requires_grad_(True)
    with torch.enable_grad():
        sp = avatar.sdf01(xp)["sdf"]
        (gp,) = torch.autograd.grad(sp.sum(), xp, create_graph=True)
    return torch.nn.functional.normalize(gp, dim=-1)


# ---------------------------------------------------------------- training
def lr_factor(step: int, warmup: int, milestones: list[int]) -> float:
    """LinearLR 0.01 -> 1 over ``warmup`` steps, then MultiStepLR ×0.33 (milestones counted after warm-up)."""
    if warmup > 0 and step < warmup:
        return 0.01 + 0.99 * step / warmup
    after = step - max(warmup, 0)
    return DECAY ** sum(after >= m for m in milestones)


class Trainer:
    def __init__(self, config_path: str | Path, out: str | Path, device: str = "cpu", resume: bool = False,
                 log: Callable[[str], None] = print, accelerator: str | None = None) -> None:  # fmt: skip
        from fk_eyeball.accel import ACCELERATORS, make_sampler, resolve_backend
        from fk_eyeball.dataset import load_subject

        self.config_path = Path(config_path)
        self.cfg, filled = load_config(self.config_path)
        if accelerator is not None:
            if accelerator not in ACCELERATORS:
                raise InputError(f"--accelerator {accelerator}: not one of {', '.join(ACCELERATORS)}",
                                 hint="pass auto, torch or tcnn")  # fmt: skip
            self.cfg["train"]["accelerator"] = accelerator
            filled = [k for k in filled if k != "train.accelerator"]
        self.out = Path(out)
        self.log = log
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available here", hint="pass --device cpu")
        self.backend = resolve_backend(self.cfg["train"]["accelerator"], self.device)
        self.cfg["train"]["backend"] = self.backend.as_dict()  # recorded in --out/config.yaml
        meta = resolve_meta(self.cfg, self.config_path)
        self.subject = load_subject(meta.parent, meta=meta)
        if filled:
            log(f"fk defaults for keys not in {self.config_path.name}: {', '.join(filled)}")
        if self.subject.warning():
            log("warning: " + self.subject.warning())
        data = self.cfg["data"]
        self.data = RayData(
            self.subject, float(self.cfg["light"]["gamma"]), int(data["dilate_ks"]), self.device
        )
        self.landmarks = {}
        for eye, key in (("leye", "left_eye_ldm"), ("reye", "right_eye_ldm")):
            if data.get(key) is not None:
                self.landmarks[eye] = torch.tensor(data[key], dtype=torch.float32, device=self.device)
        spec = self._spec()
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, the caller's RNG untouched
            torch.manual_seed(int(self.cfg["train"]["seed"]))
            self.avatar = HybridAvatar(spec).to(self.device)
        self.grid = make_sampler(self.backend, spec.bound, int(self.cfg["renderer"]["grid_resolution"]))
        self.grid = self.grid.to(self.device)
        params = [p for p in self.avatar.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=LR, eps=ADAM_EPS)
        self.gen = torch.Generator(device=self.device).manual_seed(int(self.cfg["train"]["seed"]))
        if self.backend.sampling == "nerfacc":  # nerfacc draws from torch's global RNG: seed it (and save it)
            torch.manual_seed(int(self.cfg["train"]["seed"]))
        r = self.cfg["renderer"]
        self.num_rays = max(1, r["sample_batch_size"] // r["render_n_samples"])
        self.step = 0
        self.mesh: tuple[torch.Tensor, torch.Tensor] | None = None  # the mesh stage's fixed mesh
        self.lpips = self._lpips()
        self.resumed = resume
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load(self.out / "latest.pth")
        mode = "hybrid (head SDF + 2 eyeballs)" if spec.hybrid else "wo-hybrid (head SDF only)"
        log(f"{mode}: {self.data.n_frames} frames of {self.data.w}x{self.data.h}, bound {spec.bound}, "
            f"device {self.device}" + (f", resumed at step {self.step}" if resume else ""))  # fmt: skip
        log(f"accelerator {self.cfg['train']['accelerator']}: {self.backend.describe()}")

    def _spec(self) -> AvatarSpec:
        cfg, data = self.cfg, self.cfg["data"]
        bound = float(data["bound"])
        centres = [
            list(map(float, data["eyeball_left_center"])),
            list(map(float, data["eyeball_right_center"])),
        ]
        raw = self._raw_data_keys()
        if data["hybrid"] and not {"eyeball_left_center", "eyeball_right_center"} & raw:
            if len(self.landmarks) == 2:
                from fk_eyeball.triangulate import fit_spheres

                pts = {e: v.cpu().double().numpy() for e, v in self.landmarks.items()}
                r0 = (float(data["eyeball_min_size"]) + float(data["eyeball_max_size"])) / 2  # CoRA's start
                fitted, _, _ = fit_spheres(pts, radius=r0)
                centres = [(fitted["leye"] / bound).tolist(), (fitted["reye"] / bound).tolist()]
                self.log(f"eyeball centres start from a landmark sphere fit (radius fixed at {r0:.4g})")
            else:
                self.log(
                    "warning: hybrid without eyeball centres or both eyes' landmarks: centres start at 0"
                )
        net = cfg["network"]
        return AvatarSpec(
            bound=bound, num_levels=int(net["num_levels"]), level_dim=int(net["level_dim"]),
            geo_feat_dim=int(net["geo_feat_dim"]), min_roughness=float(cfg["brdf"]["min_roughness"]),
            max_roughness=float(cfg["brdf"]["max_roughness"]), hybrid=bool(data["hybrid"]),
            eye_centers=centres,
            eyeball_min_size=float(data.get("eyeball_min_size") or 0.01),
            eyeball_max_size=float(data.get("eyeball_max_size") or 0.02),
            fix_eyeball_center=bool(data["fix_eyeball_center"]), n_views=max(500, self.data.n_frames),
            sh_scale=float(data["sh_scale"]), sh_beta=float(data["beta"]), networks=self.backend.networks,
        )  # fmt: skip

    def _lpips(self) -> torch.nn.Module | None:
        """LPIPS-VGG16 (core's) when its two weight files are where `fk doctor` says: the mesh stage's
        ``w_lpips`` term and a validation metric (CoRA's). Otherwise None: with ``train.mesh_render`` the term
        is skipped (``w_lpips`` acts as 0), with a notice."""
        from fk.assets import asset_status
        from fk.nets import LPIPS_LIN_ASSET, LPIPS_VGG_ASSET
        from fk.nets.lpips import load_lpips

        wanted = {LPIPS_VGG_ASSET: None, LPIPS_LIN_ASSET: None}
        for st in asset_status():
            if st["name"] in wanted:
                wanted[st["name"]] = Path(st["path"]) if st["present"] else None
        if None in wanted.values():
            if self.cfg["train"]["mesh_render"] and self.cfg["loss"]["w_lpips"]:
                self.log("notice: LPIPS weights absent (assets lpips-vgg16, lpips-vgg-lin; see `fk doctor`): "
                         "the mesh stage's LPIPS term is skipped (loss.w_lpips acts as 0)")  # fmt: skip
            return None
        self.log(
            f"LPIPS-VGG16 (mesh-stage term, validation metric) from {wanted[LPIPS_VGG_ASSET]} and "
            f"{wanted[LPIPS_LIN_ASSET]}"
        )
        return load_lpips(wanted[LPIPS_VGG_ASSET], wanted[LPIPS_LIN_ASSET], device=self.device)

    def _raw_data_keys(self) -> set[str]:
        import yaml

        raw = yaml.safe_load(self.config_path.read_text())
        return set((raw.get("data") or {}).keys())

    # ---- checkpoints
    def state(self) -> dict:
        mesh = {} if self.mesh is None else {"mesh_vertices": self.mesh[0], "mesh_faces": self.mesh[1]}
        return {**mesh,
            "spec": asdict(self.avatar.spec), "radiance_field": self.avatar.state_dict(),
            "occupancy_grid": self.grid.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
            "num_rays": self.num_rays, "generator": self.gen.get_state(), "level": self.level(self.step),
            "config_json": json.dumps(self.cfg), "backend": self.backend.as_dict(), **self._global_rng(),
        }  # fmt: skip

    def _global_rng(self) -> dict:
        """nerfacc draws its stratified offsets and grid cells from torch's global RNG: saved so that a resume
        continues the same stream (fk's own sampler uses the run's generator)."""
        if self.backend.sampling != "nerfacc":
            return {}
        state = {"global_rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["global_rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, name: str) -> Path:
        from fk.atomic import atomic_path

        path = self.out / name
        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return path

    def _load(self, path: Path) -> None:
        from fk.io.weights import load_torch_weights

        fix = "run without --resume, or point --out at a folder with a latest.pth of `fk eyeball train`"
        ckpt = load_torch_weights(path, "training checkpoint", fix, map_location=self.device)
        if not isinstance(ckpt, dict) or "optimizer" not in ckpt:
            raise InputError(f"{path}: not an fk eyeball train checkpoint", hint=fix)
        written = ckpt.get("backend", {"networks": "torch", "sampling": "torch"})  # before accel: torch
        if written != self.backend.as_dict():
            from fk_eyeball.accel import Backend

            raise InputError(
                f"{path}: written with {Backend(**written).describe()}; this run would use "
                f"{self.backend.describe()}",
                hint="resume with the accelerator it was trained with (--accelerator tcnn on CUDA with "
                "tinycudann and nerfacc 0.3.1, or --accelerator torch), or use a new --out",
            )
        if asdict(AvatarSpec.from_dict(ckpt["spec"])) != asdict(self.avatar.spec):
            raise InputError(
                f"{path}: its model does not match {self.config_path.name}",
                hint="resume with the config it was trained with, or use a new --out",
            )
        self.avatar.load_state_dict(ckpt["radiance_field"])
        self.grid.load_state_dict(ckpt["occupancy_grid"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step, self.num_rays = int(ckpt["step"]), int(ckpt["num_rays"])
        self.gen.set_state(ckpt["generator"].cpu())
        if "global_rng_cpu" in ckpt:
            torch.set_rng_state(ckpt["global_rng_cpu"].cpu())
        if "global_rng_cuda" in ckpt and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["global_rng_cuda"].cpu(), self.device)
        if "mesh_vertices" in ckpt:  # resumed inside the mesh stage: the same mesh, not a new extraction
            self.mesh = (ckpt["mesh_vertices"].to(self.device), ckpt["mesh_faces"].to(self.device))

    # ---- one step
    def level(self, step: int) -> int:
        t = self.cfg["train"]
        return min(int(t["init_level"]) + step // int(t["level_grow_iter"]), self.avatar.spec.num_levels)

    def occupancy_eval(self, x: torch.Tensor) -> torch.Tensor:
        """CoRA's ``query_opacity``: ``σ·render_step_size`` at world points."""
        return scene_density(self.avatar, x) * render_step(self.avatar, self.cfg)

    def in_mesh_stage(self) -> bool:
        """CoRA's switch: ``train.mesh_render`` and ``step > train.mesh_render_iter`` (steps done)."""
        t = self.cfg["train"]
        return bool(t["mesh_render"]) and self.step > int(t["mesh_render_iter"])

    def _enter_mesh_stage(self) -> None:
        from fk_eyeball.mesh_stage import extract_training_mesh, write_obj

        self.avatar.set_level(self.level(self.step))
        verts, faces = extract_training_mesh(
            self.avatar, self.data, int(self.cfg["train"]["mesh_render_resolution"]), self.log
        )
        write_obj(self.out / f"precompute_mesh_{self.step:05d}.obj", verts, faces)
        self.mesh = (torch.as_tensor(verts, dtype=torch.float32, device=self.device),
                     torch.as_tensor(faces, dtype=torch.int64, device=self.device))  # fmt: skip

    def mesh_step(self) -> dict[str, float]:
        """One mesh-stage iteration (cora.md §9.3): a whole random frame, only the material field moves."""
        from fk_eyeball.mesh_stage import (
            keep_material_gradients,
            mesh_terms,
            rasterize_frame,
            shade_mesh_frame,
        )

        cfg, t = self.cfg, self.cfg["train"]
        if self.mesh is None:
            self._enter_mesh_stage()
        self.avatar.train()
        self.avatar.set_level(self.level(self.step))
        for g in self.opt.param_groups:
            g["lr"] = LR * lr_factor(self.step, int(t["warmup_steps"]), list(t["milestones"]))
        index = int(torch.randint(0, self.data.n_frames, (1,), generator=self.gen, device=self.device))
        raster = rasterize_frame(*self.mesh, self.data, index)
        shaded = shade_mesh_frame(self.avatar, raster, self.data, index, cfg, eye_override=False)
        terms = mesh_terms(self.avatar, shaded, self.data, index, cfg["loss"], self.lpips)
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        keep_material_gradients(self.avatar)
        self.opt.step()
        rec = {"step": self.step + 1, "stage": "mesh", "loss": float(loss.detach()),
               **{k: float(v.detach()) for k, v in terms.items()}, "frame": self.data.names[index],
               "pixels": int((raster["coverage"] > 0).sum()), "lr": self.opt.param_groups[0]["lr"],
               "level": self.level(self.step)}  # fmt: skip
        self.step += 1
        return rec

    def train_step(self) -> dict[str, float]:
        if self.in_mesh_stage():
            return self.mesh_step()
        cfg, w = self.cfg, self.cfg["loss"]
        t = cfg["train"]
        self.avatar.train()
        self.avatar.set_level(self.level(self.step))
        for g in self.opt.param_groups:
            g["lr"] = LR * lr_factor(self.step, int(t["warmup_steps"]), list(t["milestones"]))
        self.grid.update_every(self.step, self.occupancy_eval, generator=self.gen, threshold=OCC_THRESHOLD,
                               ema_decay=OCC_EMA, warmup_steps=OCC_WARMUP, every_n=OCC_EVERY)  # fmt: skip
        d = self.data
        n = self.num_rays
        frame = torch.randint(0, d.n_frames, (n,), generator=self.gen, device=self.device)
        pixel = torch.randint(0, d.h * d.w, (n,), generator=self.gen, device=self.device)
        rays = d.rays(frame, pixel)
        r = render_rays(self.avatar, self.grid, rays, cfg, training=True, generator=self.gen)
        gt = rays["rgb"]
        terms: dict[str, torch.Tensor] = {}
        terms["l1"] = w["w_l1"] * ((r["rgb_head"] - gt).abs().mean() + (r["recon"] - gt).abs().mean())
        terms["mask"] = w["w_mask"] * (r["acc"] - rays["mask"]).abs().mean()
        zero = gt.new_zeros(())
        terms["eikonal"] = (
            w["w_eikonal"] * ((r["grad"].norm(dim=-1) - 1) ** 2).mean() if len(r["grad"]) else zero
        )
        if self.avatar.spec.hybrid:
            face_mask = rays["mask"] - rays["leye"] - rays["reye"]
            terms["sdf_mask"] = w["w_sdf_mask"] * (
                (r["acc_face"] - face_mask).abs().mean() + (r["acc_leye"] - rays["leye"]).abs().mean()
                + (r["acc_reye"] - rays["reye"]).abs().mean()
            )  # fmt: skip
        terms["reg_diff"] = w["w_reg_diff"] * (r["specular"] * rays["hair"]).mean()
        m = rays["mask"] * (1 - rays["hair"])
        terms["abdmm"] = (
            w["w_abdmm"] * (r["specular"] * m * self.avatar.light_scale - rays["bfm"] * m).abs().mean()
        )
        if (w["w_eps_n"] or w["w_eps_n_smooth"]) and len(r["ray_index"]):
            w_ray = rays["hair"] * w["w_eps_n_smooth"] + rays["mask"] * (1 - rays["hair"]) * w["w_eps_n"]
            w_sample = w_ray[r["ray_index"]]
            keep = w_sample > 0  # samples of rays with zero weight add nothing: not evaluated
            n_eps = smoothness_normals(self.avatar, r["x01"][keep], r["normal_samples"][keep],
                                       float(cfg["network"]["neighbor_eps"]), self.gen)  # fmt: skip
            per = w_sample[keep] * (1 - (r["normal_samples"][keep] * n_eps).sum(-1))
            terms["normal_smooth"] = per.sum() / n  # = samples per ray × mean over samples
        if self.avatar.spec.hybrid and w["w_ldm"] and self.landmarks:
            centres = (2 * self.avatar.eye_c01 - 1) * self.avatar.bound
            radius = self.avatar.eye_radius01 * 2 * self.avatar.bound
            pairs = [(k, self.landmarks.get(e)) for k, e in enumerate(("leye", "reye"))]
            ldm = sum(
                ((p - centres[k]).norm(dim=-1) - radius).abs().mean() for k, p in pairs if p is not None
            )
            terms["ldm"] = w["w_ldm"] * ldm
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        n_samples = int(r["n_samples"])
        values = {k: float(v.detach()) for k, v in terms.items()}
        rec = {"step": self.step + 1, "loss": float(loss.detach()), **values,
               "num_rays": n, "n_samples": n_samples, "lr": self.opt.param_groups[0]["lr"],
               "beta": float(self.avatar.beta.detach()), "level": self.level(self.step)}  # fmt: skip
        if self.avatar.spec.hybrid:
            rec["eyeball_centres"] = self.avatar.eyeball_centres.cpu().tolist()
            rec["eyeball_radius"] = float(self.avatar.eyeball_radius)
        r_cfg = cfg["renderer"]
        self.num_rays = min(
            max(1, int(n * r_cfg["sample_batch_size"] / max(n_samples, 16))), r_cfg["max_num_ray"]
        )
        self.step += 1
        return rec

    # ---- validation
    @torch.no_grad()
    def render_frame(self, index: int) -> dict[str, torch.Tensor]:
        d = self.data
        self.avatar.eval()
        chunk = int(self.cfg["renderer"]["chunk_size"])
        pixels = torch.arange(d.h * d.w, device=self.device)
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(pixels), chunk):
            px = pixels[i : i + chunk]
            rays = d.rays(torch.full_like(px, index), px)
            r = render_rays(self.avatar, self.grid, rays, self.cfg, training=False)
            for k, v in r.items():
                if v.dim() >= 1 and len(v) == len(px):
                    parts.setdefault(k, []).append(v.detach())
        return {k: torch.cat(v).reshape(d.h, d.w, -1) for k, v in parts.items()}

    @torch.no_grad()
    def render_frame_mesh(self, index: int) -> dict[str, torch.Tensor]:
        from fk_eyeball.mesh_stage import rasterize_frame, shade_mesh_frame

        self.avatar.eval()
        raster = rasterize_frame(*self.mesh, self.data, index)
        return shade_mesh_frame(self.avatar, raster, self.data, index, self.cfg, eye_override=True)

    def validate(self) -> list[dict]:
        """Every 10th frame (CoRA's val split): a PNG strip and PSNR, SSIM (window 3, kornia's) and, with
        its weights, LPIPS-VGG16 of the display-space reconstruction against the photo."""
        from fk.io.image import save_image
        from fk.metrics.ssim import ssim

        from fk_eyeball.brdf import to_display

        gamma = float(self.cfg["light"]["gamma"])
        folder = self.out / "val" / f"iter_{self.step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        records = []
        mesh = self.mesh is not None and self.in_mesh_stage()
        for index in range(0, self.data.n_frames, 10):  # CoRA's val split: every 10th frame
            r = self.render_frame_mesh(index) if mesh else self.render_frame(index)
            gt = self.data.pixels[index]
            show = lambda x: to_display(x, gamma).clamp(0, 1)  # noqa: E731
            recon = show(r["recon"])
            gt_srgb = show(gt)
            mse = float(((recon - gt_srgb) ** 2).mean())
            psnr = -10 * math.log10(max(mse, 1e-12))
            rep = lambda x: x.expand(-1, -1, 3) if x.shape[-1] == 1 else x  # noqa: E731
            as_batch = lambda x: x.permute(2, 0, 1)[None]  # noqa: E731
            if mesh:  # CoRA's valid_mesh_step: SH diffuse, flash diffuse, 3x specular, recon, GT, normal
                nrm = (torch.nn.functional.normalize(r["normal"], dim=-1) + 1) / 2
                panels = [show(r["ambient"]), show(r["diffuse_flash"]),
                          3 * to_display(r["specular_flash"].clamp_min(0.01), gamma), recon, gt_srgb,
                          nrm]  # fmt: skip
            else:
                panels = [rep(r["sh_occlusion"]), show(r["ambient"]), show(r["diffuse_flash"]),
                          show(3 * r["specular_flash"]), recon, gt_srgb,
                          (r["normal"] + 1) / 2 * r["acc"]]  # fmt: skip
                for key in ("leye", "reye"):
                    panels.append(gt_srgb * rep(getattr(self.data, key)[index][..., None]))
                face = (self.data.mask[index] - self.data.leye[index] - self.data.reye[index]).clamp(0, 1)
                panels.append(gt_srgb * face[..., None])
            strip = torch.cat([p.clamp(0, 1) for p in panels], dim=1).cpu().numpy()
            path = folder / f"inv-render_{index:05d}.png"
            save_image(path, np.floor(strip * 255 + 0.5).astype(np.uint8))
            rec = {"step": self.step, "frame": self.data.names[index], "psnr": psnr,
                   "ssim": float(ssim(as_batch(recon), as_batch(gt_srgb), window_size=3)),
                   "png": str(path)}  # fmt: skip
            if self.lpips is not None:
                rec["lpips"] = float(self.lpips(as_batch(recon), as_batch(gt_srgb)).mean())
            if mesh:
                rec["stage"] = "mesh"
            records.append(rec)
        with open(self.out / "val.jsonl", "a") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
        return records

    # ---- the loop
    def run(self, progress: Callable[[int, int], None] | None = None) -> dict:
        from fk.atomic import write_text

        t = self.cfg["train"]
        max_steps = int(t["max_steps"])
        import yaml

        write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg, sort_keys=False))
        start = time.perf_counter()
        first = self.step
        last: dict = {}
        if not self.resumed:  # a fresh run starts fresh logs
            for name in ("losses.jsonl", "val.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        with open(self.out / "losses.jsonl", "a") as fh:
            while self.step < max_steps:
                rec = self.train_step()
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                last = rec
                if not math.isfinite(rec["loss"]):
                    raise RuntimeError(
                        f"loss became {rec['loss']} at step {self.step}; see {self.out / 'losses.jsonl'}"
                    )
                if self.step % int(t["save_freq"]) == 0:
                    self.save(f"iter_{self.step:05d}.pth")
                if self.step % 1000 == 0 and self.step < max_steps:
                    self.save("latest.pth")
                if self.step % int(t["val_freq"]) == 0:
                    last["val"] = self.validate()
                if progress:
                    progress(self.step, max_steps)
        ckpt = self.save("latest.pth")
        elapsed = time.perf_counter() - start
        return {"steps": self.step - first, "seconds": elapsed, "last": last, "checkpoint": str(ckpt)}
