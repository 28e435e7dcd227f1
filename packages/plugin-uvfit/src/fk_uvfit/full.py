"""``fit:uvfit``: FFHQ-UV's RGB fitting, stage 1 -> 2 -> 3, when its files are installed, else embedded.

**Full path** (``path: auto`` with every required file present, or ``path: full``), per face, into
``<out>/<item>/`` with upstream's names (ffhquv.md §1.3-1.5, §3.3; ``.pt`` pickles become ``.npz``):

- stage 1: HiFi3D++ R-Net (``fk.nets.reconnet``, layout 532/45/439/3/27/3 with the exp ReLU) on the
  aligned 224² image: ``stage1_vis.png``, ``stage1_vis_3dmmtex_as_uv.png`` (the linear albedo unwrapped),
  ``stage1_mesh_{id,exp}.obj`` (vertex colours), ``stage1_coeffs.npz`` (``coeffs``, ``lm68``);
- stage 2 (latent search on the sphere) and stage 3 (joint W+/shape/pose/light): :mod:`fk_uvfit.stages`,
  ``stage{2,3}_vis.png``, ``stage{2,3}_uv.png``, ``stage{2,3}_mesh_{id,exp}.obj``, ``stage{2,3}_mesh.mtl``,
  ``stage{2,3}_coeffs.npz`` (``coeffs``, ``lm68``, ``latents_w``, ``latents_z``).

Required: the texture GAN (``ffhquv-texgan``), the R-Net (``ffhquv-rnet``) and HiFi3D++
(``hifi3dpp-model-info``, with ``vtx_vt``). Optional: ArcFace (identity term), VGG16 + LPIPS layers
(stage 2's perceptual term): each missing one skips its term with a notice, its weight counted 0 in
``uvfit.json``; ``unwrap_1024_info.mat`` (the stage-1 UV picture; without it fk rasterises the model's
own UV layout, labelled).

**Texture GAN variant** (``texgan_variant``): ``ffhq_uv`` (upstream's default, ``texgan_ffhq_uv.pth``) or
``cropface630`` (``texgan_cropface630resize1024_ffhq_uv_interpolate.pth``, :mod:`fk_uvfit.cropface`): the
face-crop GAN pasted into ``template_base_uv.png`` and blended; ``stage{2,3}_uv.png`` and the vis render
take the second (major-mask) blend, and ``stage{2,3}_uv_no_blend.png`` the GAN output.

**Device**: ``device`` (``cpu``, ``cuda[:N]``, ``auto``) holds every model (face model, texture GAN, R-Net,
ArcFace, LPIPS), every tensor of the fit and the renderer (``fk.render`` picks nvdiffrast under
``renderer: auto`` when it imports with CUDA; fk's CPU rasteriser takes any device's tensors); files are
written from host copies. CUDA on a machine without one is refused when the recipe is checked.

**Embedded path** (no texture GAN or R-Net): ``fit:deep3d`` on the installed model (demo head or BFM09),
and ``export:uvfit`` projects the photo ("projected texture, no GAN"). Which path ran is in
``recon.extra["uvfit"]``, ``uvfit.json`` and the page; the recipe's preflight says it once per run.
"""

from __future__ import annotations

import io
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import InputError

from fk_uvfit import losses as L

FULL_LABEL = "FFHQ-UV texture GAN: stage 1 R-Net, stage 2 latent search, stage 3 joint W+/shape fit"
PATHS = ("auto", "full", "embedded")


def _stage_params() -> dict[str, Any]:
    """Every stage 2/3 constant as a flat recipe parameter: ``s2_<name>`` / ``s3_<name>``."""
    out = {}
    for prefix, cfg in (("s2", L.STAGE2), ("s3", L.STAGE3)):
        for k, v in cfg.items():
            out[f"{prefix}_{k}"] = list(v) if isinstance(v, tuple) else v
    return out


STAGE_PARAMS = _stage_params()


@dataclass
class FullFiles:
    """Where each file of the full path is (None: absent)."""

    texgan: Path | None
    rnet: Path | None
    model: Path | None
    unwrap: Path | None
    unwrap_mask: Path | None
    arcface: Path | None
    vgg: Path | None
    lpips: Path | None
    wanted: dict[str, Path]  # where the required ones are looked for
    variant: str = "ffhq_uv"
    topo: dict[str, Path | None] = field(default_factory=dict)  # cropface630's template and masks

    def missing_required(self) -> list[str]:
        from fk_uvfit.assets import RNET, TEXGAN, TEXGAN_CROPFACE, TOPO_ASSET_OF

        tex = TEXGAN_CROPFACE if self.variant == "cropface630" else TEXGAN
        names = {"texgan": tex, "rnet": RNET, "model": "hifi3dpp-model-info"}
        out = [f"{names[k]} ({self.wanted[k]})" for k in names if getattr(self, k) is None]
        if self.variant == "cropface630":
            out += [f"{TOPO_ASSET_OF[k]} ({self.wanted[k]})" for k, p in self.topo.items() if p is None]
        return out

    def notices(self) -> list[str]:
        out = []
        if self.arcface is None:
            out.append("ArcFace weights absent (ffhquv-arcface): the identity term is skipped (weight 0)")
        if self.vgg is None or self.lpips is None:
            out.append(
                "VGG16/LPIPS weights absent (lpips-vgg16, lpips-vgg-lin): stage 2's perceptual term is "
                "skipped (weight 0)"
            )
        if self.unwrap is None:
            out.append(
                "unwrap_1024_info.mat absent: stage1_vis_3dmmtex_as_uv.png unwraps through fk's "
                "rasterised UV layout"
            )
        return out


def find_files(
    texgan: str | None = None,
    rnet: str | None = None,
    arcface: str | None = None,
    variant: str = "ffhq_uv",
) -> FullFiles:
    from fk.assets import asset_path
    from fk.nets import ASSETS as NET_ASSETS
    from fk.nets import LPIPS_LIN_ASSET, LPIPS_VGG_ASSET

    from fk_uvfit import assets as A
    from fk_uvfit.cropface import VARIANTS

    if variant not in VARIANTS:
        raise InputError(f"fit:uvfit: texgan_variant must be one of {', '.join(VARIANTS)}, got {variant!r}")

    def pick(given: str | None, rel: str) -> tuple[Path | None, Path]:
        p = Path(given).expanduser() if given else asset_path(rel)
        if given and not p.is_file():
            raise InputError(f"{p}: no such file", hint="fix the path or leave the parameter empty")
        return (p if p.is_file() else None), p

    where = {a.name: a.path for a in (*A.ASSETS, *NET_ASSETS)}
    tg, tg_want = pick(texgan, where[A.TEXGAN_CROPFACE if variant == "cropface630" else A.TEXGAN])
    rn, rn_want = pick(rnet, where[A.RNET])
    md, md_want = pick(None, "hifi3dpp/hifi3dpp_model_info.mat")
    af, _ = pick(arcface, where[A.ARCFACE])
    vgg, _ = pick(None, where[LPIPS_VGG_ASSET])
    lin, _ = pick(None, where[LPIPS_LIN_ASSET])
    uw, _ = pick(None, "hifi3dpp/unwrap_1024_info.mat")
    um, _ = pick(None, "hifi3dpp/unwrap_1024_info_mask.png")
    wanted = {"texgan": tg_want, "rnet": rn_want, "model": md_want}
    topo: dict[str, Path | None] = {}
    if variant == "cropface630":
        for key, name in A.TOPO_ASSET_OF.items():
            topo[key], wanted[key] = pick(None, where[name])
    return FullFiles(tg, rn, md, uw, um, af, vgg, lin, wanted, variant, topo)


def choose_path(path: str, files: FullFiles) -> str:
    if path not in PATHS:
        raise InputError(f"fit:uvfit: path must be one of {', '.join(PATHS)}, got {path!r}")
    missing = files.missing_required()
    if path == "full" and missing:
        from fk.errors import AssetMissingError

        raise AssetMissingError(
            f"FFHQ-UV's full path needs {'; '.join(missing)}",
            hint="see `fk doctor` for where each file goes, or set path: embedded",
        )
    if path == "embedded" or missing:
        return "embedded"
    return "full"


def preflight(params: dict[str, Any]) -> list[str]:
    """Once per run: which path will run, and which optional terms are off."""
    variant = params.get("texgan_variant") or "ffhq_uv"
    files = find_files(params.get("texgan"), params.get("rnet"), params.get("arcface"), variant)
    chosen = choose_path(params.get("path") or "auto", files)
    if chosen == "embedded":
        why = (
            "path: embedded"
            if params.get("path") == "embedded"
            else "missing " + "; ".join(files.missing_required())
        )
        return [
            f"embedded path (fit:deep3d + projected texture, no GAN): {why}; `fk doctor` says where "
            "FFHQ-UV's files go"
        ]
    variant = "" if files.variant == "ffhq_uv" else f" (texture GAN variant {files.variant})"
    return [f"full path: {FULL_LABEL}{variant}", *files.notices()]


def stage_configs(params: dict[str, Any]) -> tuple[dict, dict]:
    s2 = {k: params.get(f"s2_{k}", v) for k, v in L.STAGE2.items()}
    s3 = {k: params.get(f"s3_{k}", v) for k, v in L.STAGE3.items()}
    for cfg in (s2, s3):
        cfg["betas"] = tuple(cfg["betas"])
        cfg["steps"] = int(cfg["steps"])
    return s2, s3


def setup_seed(seed: int) -> None:
    """Upstream's ``setup_seed``: torch, numpy and random, at the start of each image."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def reconnet_layout(model):
    """R-Net's head layout for ``model``: FFHQ-UV's (532/45/439 + exp ReLU), or the same heads sized to a
    smaller HiFi3D++-format file (tests' generated models)."""
    from fk.nets.reconnet import HIFI3DPP, HeadLayout

    sizes = (model.n_id, model.n_exp, model.n_tex, 3, 27, 2, 1)
    if sizes == HIFI3DPP.sizes:
        return HIFI3DPP
    return HeadLayout(
        f"HiFi3D++-format ({model.n_id}/{model.n_exp}/{model.n_tex})",
        sizes,
        relu_heads=(1,),
        file_kind=HIFI3DPP.file_kind,
        checkpoint_hint=HIFI3DPP.checkpoint_hint,
    )


def unwrap_table(model, files: FullFiles) -> tuple[dict[str, np.ndarray], str]:
    """``unwrap_1024_info.mat`` when installed, else the same table from rasterising the model's UV layout."""
    from fk.models.hifi3dpp import load_unwrap_info

    if files.unwrap is not None:
        return load_unwrap_info(files.unwrap, files.unwrap_mask), "unwrap_1024_info.mat"
    from fk.geometry.uv import texel_map

    tm = texel_map(model.uvs.cpu().numpy(), model.uv_faces.cpu().numpy(), 1024)
    faces = model.triangles.cpu().numpy()
    inside = tm.triangle >= 0
    vids = np.where(inside[..., None], faces[np.maximum(tm.triangle, 0)], 0)
    return {
        "vertex_ids": vids,
        "barycentrics": tm.barycentric.astype(np.float32),
        "valid": inside,
    }, "fk's rasterised UV layout (no unwrap_1024_info.mat)"


def processed_from_npz(path: Path):
    import torch

    from fk_uvfit.preprocess import load_processed
    from fk_uvfit.stages import Processed

    d = load_processed(path)
    t = {k: torch.as_tensor(d[k], dtype=torch.float32) for k in ("img", "skin_mask", "parse_mask", "lm", "M")}
    return Processed(img=t["img"], skin_mask=t["skin_mask"], parse_mask=t["parse_mask"], lm=t["lm"]), t["M"]


def vis_strip(data, rend: dict, uv=None) -> np.ndarray:
    """Upstream's ``visualize``: input | skin | parse overlay | landmarks (blue detected, red model) on the
    render | render over the photo [| UV map area-resized to 224]."""
    import torch

    from fk_uvfit.views import draw_points

    def u8(x: torch.Tensor) -> np.ndarray:
        return np.clip(x[0].detach().permute(1, 2, 0).cpu().numpy() * 255, 0, 255).astype(np.uint8)

    img = u8(data.img)
    skin = np.repeat(u8(data.skin_mask), 3, -1)
    parse = data.parse_mask[0, 0].cpu().numpy() > 0.5
    over = img.astype(np.float64)
    over[parse] = 0.5 * over[parse] + 0.5 * np.array([60.0, 200.0, 90.0])
    face = u8(rend["image"] * rend["mask"] + (1 - rend["mask"]) * data.img)
    h = img.shape[0]

    def down(lm: torch.Tensor) -> np.ndarray:
        p = lm[0].detach().cpu().numpy().astype(np.float64).copy()
        p[:, 1] = h - 1 - p[:, 1]
        return p

    marks = draw_points(draw_points(face, down(data.lm), (0, 0, 255)), down(rend["lm"]), (255, 0, 0))
    panels = [img, skin, over.astype(np.uint8), marks, face]
    if uv is not None:
        small = torch.nn.functional.interpolate(uv, size=(h, h), mode="area")
        panels.append(u8(small))
    return np.concatenate(panels, axis=1)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@dataclass
class Networks:
    """Everything the full path loads once per run, on one torch device (:meth:`to`)."""

    model: Any
    gen: Any
    w_avg: Any
    w_std: Any
    rnet: Any
    render: Any
    terms: Any
    unwrap: dict[str, np.ndarray]  # numpy, host side: only the stage-1 picture reads it
    unwrap_how: str
    w_stats_seconds: float
    decoder: Any = None  # what the stages call: gen's output (ffhq_uv) or cropface630's blended map

    def __post_init__(self):
        from fk_uvfit.cropface import as_decoder

        self.decoder = as_decoder(self.gen if self.decoder is None else self.decoder)

    @property
    def device(self):
        return self.render.device

    def modules(self) -> dict[str, Any]:
        """Every torch module the fit runs, by name (the loss networks only when loaded)."""
        out = {"model": self.model, "texgan": self.gen, "rnet": self.rnet}
        if self.terms.identity is not None:
            out["arcface"] = self.terms.identity.features
        if self.terms.perceptual is not None:
            out["lpips"] = self.terms.perceptual
        return out

    def tensors(self) -> dict[str, Any]:
        """Every tensor the fit reads outside the modules, by name."""
        r = self.render
        out = {"w_avg": self.w_avg, "w_std": self.w_std, "render.vtx_vt": r.vtx_vt, "render.tri": r.tri,
               "render.head_tri": r.head_tri, "render.proj": r.proj}  # fmt: skip
        for name in ("template_big", "minor_weight", "hair_weight"):
            if hasattr(self.decoder, name):
                out[f"cropface.{name}"] = getattr(self.decoder, name)
        return out

    def to(self, device) -> Networks:
        """Move every module and tensor, and the renderer (with a raster context for ``device``)."""
        import torch

        device = torch.device(device)
        self.render.to(device)
        self.model = self.render.model
        self.decoder = self.decoder.to(device)
        self.gen = self.decoder.gen
        self.rnet = self.rnet.to(device)
        self.w_avg, self.w_std = self.w_avg.to(device), self.w_std.to(device)
        if self.terms.identity is not None:
            self.terms.identity.features = self.terms.identity.features.to(device)
        if self.terms.perceptual is not None:
            self.terms.perceptual = self.terms.perceptual.to(device)
        self.terms.M, self.terms._target = None, None
        return self


def load_networks(
    files: FullFiles,
    uv_sampling: str = "nearest",
    renderer: str = "auto",
    w_stat_samples: int = 100_000,
    device: Any = "cpu",
) -> Networks:
    """Load every network of the full path onto ``device`` (``cpu``, ``cuda[:N]``, ``auto``): the face model,
    texture GAN (its W statistics mapped there), R-Net, renderer and the optional loss networks."""
    from fk.devices import resolve_device
    from fk.models.hifi3dpp import load_hifi3dpp, read_hifi3dpp_info
    from fk.nets.reconnet import load_reconnet

    from fk_uvfit import stages as S
    from fk_uvfit import texgan as T

    device = resolve_device(device)
    info = read_hifi3dpp_info(files.model)
    if "vtx_vt" not in info:
        raise InputError(
            f"{files.model}: has no vtx_vt (per-vertex UV in 512-px units), which stages 2-3 render with",
            hint="use FFHQ-UV's topo_assets/hifi3dpp_model_info.mat",
        )
    model = load_hifi3dpp(files.model).to(device)
    gen = T.load_texgan(files.texgan, device=device)
    t0 = time.perf_counter()
    w_avg, w_std = T.w_stats(gen, samples=w_stat_samples)
    w_seconds = time.perf_counter() - t0
    rnet = load_reconnet(files.rnet, device, layout=reconnet_layout(model)).requires_grad_(False)
    render = S.UVRenderer(model, info["vtx_vt"], uv_sampling=uv_sampling, renderer=renderer)
    terms = S.Terms()
    if files.arcface is not None:
        from fk.nets.arcface import load_identity

        terms.identity = L.IdentityTerm(load_identity(files.arcface, device))
    if files.vgg is not None and files.lpips is not None:
        from fk.nets.lpips import load_lpips

        terms.perceptual = load_lpips(files.vgg, files.lpips, device)
    unwrap, how = unwrap_table(model, files)
    decoder = None
    if files.variant == "cropface630":
        from fk_uvfit.cropface import CropFaceDecoder

        decoder = CropFaceDecoder(gen, files.topo, device)
    return Networks(model, gen, w_avg, w_std, rnet, render, terms, unwrap, how, w_seconds, decoder).to(device)


def fit_stages(
    nets: Networks, data, matrix, cfg2: dict, cfg3: dict, seed: int = L.SEED, after=None
) -> dict[int, Any]:
    """Stage 1 (R-Net), 2 and 3 on one face's processed data; ``after(stage, result, seconds)`` is called
    after each (stage 1's result: ``(coeffs, render)``). Returns ``{1: (coeffs, render), 2: .., 3: ..}``."""
    import torch

    from fk_uvfit import stages as S

    data = data.to(nets.device)
    nets.terms.M, nets.terms._target = torch.as_tensor(matrix).to(nets.device), None
    setup_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        coeffs1 = nets.rnet(data.img)
        rend1 = nets.render(coeffs1, None)
    out = {1: (coeffs1, rend1)}
    if after is not None:
        after(1, out[1], time.perf_counter() - t0)
    for stage, run, cfg in ((2, S.stage2, cfg2), (3, S.stage3, cfg3)):
        t0 = time.perf_counter()
        start = coeffs1 if stage == 2 else out[2]
        out[stage] = run(nets.render, nets.decoder, nets.w_avg, nets.w_std, data, start, cfg, nets.terms)
        if after is not None:
            after(stage, out[stage], time.perf_counter() - t0)
    return out


def write_stage1(writer, nets: Networks, data, coeffs, rend) -> list[str]:
    """``stage1_vis.png``, ``stage1_vis_3dmmtex_as_uv.png``, ``stage1_mesh_{id,exp}.obj`` and
    ``stage1_coeffs.npz`` (``coeffs``, ``lm68``: upstream's keys)."""
    import torch
    from fk.models.hifi3dpp import unwrap_to_uv

    from fk_uvfit import files as F

    model = nets.model
    writer.image("stage1_vis.png", vis_strip(data, rend))
    albedo = rend["out"]["albedo"][0].double().cpu().numpy()
    tex_uv = unwrap_to_uv(albedo, nets.unwrap) * 255
    writer.image("stage1_vis_3dmmtex_as_uv.png", np.clip(tex_uv, 0, 255).astype(np.uint8))
    parts = model.split_coeffs(coeffs)
    faces = model.triangles.cpu().numpy()
    with torch.no_grad():
        for tag, expr in (("id", torch.zeros_like(parts["exp"])), ("exp", parts["exp"])):
            shape = model.shape(parts["id"], expr)[0].double().cpu().numpy()
            writer.text(f"stage1_mesh_{tag}.obj", F.vertex_colour_obj_text(shape, albedo, faces))
    writer.bytes(
        "stage1_coeffs.npz",
        _npz(
            coeffs=coeffs.cpu().numpy().astype(np.float32), lm68=rend["lm"].cpu().numpy().astype(np.float32)
        ),
    )
    return [
        "stage1_coeffs.npz",
        "stage1_mesh_exp.obj",
        "stage1_mesh_id.obj",
        "stage1_vis.png",
        "stage1_vis_3dmmtex_as_uv.png",
    ]


class UVFitter:
    """``fit:uvfit``: the full FFHQ-UV path when its files are present, else the embedded fit (labelled)."""

    def __init__(
        self,
        path: str = "auto",
        texgan: str | None = None,
        rnet: str | None = None,
        arcface: str | None = None,
        texgan_variant: str = "ffhq_uv",
        uv_sampling: str = "nearest",
        w_stat_samples: int = 100_000,
        seed: int = L.SEED,
        iterations: int = 30,
        model: str = "auto",
        renderer: str = "auto",
        device: str = "cpu",
        threads: int = 1,
        **stage_params: Any,
    ):
        unknown = set(stage_params) - set(STAGE_PARAMS)
        if unknown:
            raise InputError(f"fit:uvfit: unknown parameter(s) {', '.join(sorted(unknown))}")
        self.params = {"path": path or "auto", "texgan": texgan, "rnet": rnet, "arcface": arcface}
        self.cfg2, self.cfg3 = stage_configs(stage_params)
        self.uv_sampling = uv_sampling
        self.w_stat_samples = int(w_stat_samples)
        self.seed = int(seed)
        self.fit_iterations = int(iterations)
        from fk.devices import resolve_device

        # one device for every model, tensor and the renderer (auto: CUDA when torch sees a GPU)
        self.device = str(resolve_device(device or "cpu"))
        self.model_name, self.renderer, self.threads = model, renderer or "auto", int(threads)
        self.files = find_files(texgan, rnet, arcface, texgan_variant or "ffhq_uv")
        self.path = choose_path(self.params["path"], self.files)
        self._nets: Networks | None = None
        self._embedded = None

    def _run_embedded(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        if self._embedded is None:
            from fk.plugins import get_plugin_manager

            factory = get_plugin_manager().component("fit:deep3d").load_factory()
            self._embedded = factory(
                model=self.model_name,
                renderer=self.renderer,
                device=self.device,
                iterations=self.fit_iterations,
                threads=self.threads,
            )
        recon = self._embedded({"crop": inputs["crop"]}, ctx)["recon"]
        missing = self.files.missing_required()
        recon.extra = {
            **(recon.extra or {}),
            "uvfit": {
                "path": "embedded",
                "why": "path: embedded"
                if self.params["path"] == "embedded"
                else "missing " + "; ".join(missing),
            },
        }
        return {"recon": recon}

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        if self.path == "embedded":
            return self._run_embedded(inputs, ctx)
        import torch

        before = torch.get_num_threads()
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        try:
            return self._run_full(inputs, ctx)
        finally:
            torch.set_num_threads(before)

    def _processed(self, inputs: dict[str, Any], ctx):
        import torch

        proc = inputs.get("processed")
        if isinstance(proc, dict) and proc.get("npz"):
            return processed_from_npz(Path(ctx.run_dir) / proc["npz"])
        from fk_uvfit.preprocess import processed_arrays
        from fk_uvfit.stages import Processed

        d = processed_arrays(inputs["crop"])
        t = {
            k: torch.as_tensor(d[k], dtype=torch.float32)
            for k in ("img", "skin_mask", "parse_mask", "lm", "M")
        }
        return Processed(img=t["img"], skin_mask=t["skin_mask"], parse_mask=t["parse_mask"], lm=t["lm"]), t[
            "M"
        ]

    def _run_full(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        import torch
        from fk.cameras.deep3d import eg3d_label_from_deep3d
        from fk.types import Crop, Reconstruction

        from fk_uvfit import stages as S

        crop = inputs["crop"]
        if not isinstance(crop, Crop):
            raise InputError(f"{ctx.key}: fit:uvfit needs the 224² crop", hint="wire crop: preprocess.crop")
        if self._nets is None:
            self._nets = load_networks(
                self.files, self.uv_sampling, self.renderer, self.w_stat_samples, self.device
            )
        nets = self._nets
        model, key = nets.model, ctx.key
        writer = S.ContextWriter(ctx, key)
        data, matrix = self._processed(inputs, ctx)
        data, matrix = data.to(nets.device), matrix.to(nets.device)
        seconds: dict[str, float] = {}
        names: list[str] = []
        uvs, uv_faces = model.uvs.double().cpu().numpy(), model.uv_faces.cpu().numpy()

        def after(stage: int, result: Any, took: float) -> None:
            t0 = time.perf_counter()
            if stage == 1:
                names.extend(write_stage1(writer, nets, data, *result))
            else:
                with torch.no_grad():
                    # the map saved and shown: the fitted one, or cropface630's second (major) blend of it
                    shown = nets.decoder.for_saving(result.uv)
                    rend = nets.render(result.coeffs, shown)
                    cropped = nets.decoder.variant == "cropface630"
                    raw = nets.decoder.raw(result.latents_w) if cropped else None
                names.extend(
                    S.write_stage(writer, stage, model, result, uvs, uv_faces, rend["lm"], shown, raw)
                )
                writer.image(f"stage{stage}_vis.png", vis_strip(data, rend, shown))
                names.append(f"stage{stage}_vis.png")
                h = result.history
                ctx.log(
                    f"{key}: stage {stage}: {len(h)} steps in {took:.1f}s, loss "
                    f"{h[0]['loss'] if h else float('nan'):.4g} -> {h[-1]['loss'] if h else float('nan'):.4g}"
                )
            seconds[f"stage{stage}"] = took
            seconds[f"stage{stage}_files"] = time.perf_counter() - t0

        results = fit_stages(nets, data, matrix, self.cfg2, self.cfg3, self.seed, after)
        final = results[3]
        with torch.no_grad():
            out = model(final.coeffs)
        parts = {k: v[0].double().cpu().numpy() for k, v in model.split_coeffs(final.coeffs).items()}
        lm = out["landmarks_2d"][0].double().cpu().numpy()
        lm_in = data.lm[0].cpu().numpy()
        target = np.stack([lm_in[:, 0], 223.0 - lm_in[:, 1]], 1)
        rmse = float(np.sqrt(((lm - target) ** 2).sum(-1).mean()))
        files = {
            n.rsplit(".", 1)[0]: Path(os.path.relpath(ctx.path(f"{key}/{n}"), ctx.run_dir)).as_posix()
            for n in names
        }
        terms = nets.terms
        info = {
            "path": "full",
            "label": FULL_LABEL,
            "texgan_variant": nets.decoder.variant,
            "files": files,
            "loss_weights": {"stage2": terms.weights(self.cfg2), "stage3": terms.weights(self.cfg3)},
            "notices": self.files.notices(),
            "stage1_uv_unwrap": nets.unwrap_how,
            "final_loss": {f"stage{s}": results[s].history[-1] if results[s].history else {} for s in (2, 3)},
            "w_stats_seconds_once": round(nets.w_stats_seconds, 3),
        }
        recon = Reconstruction(
            model=model.name,
            coeffs=parts,
            vertices=out["vertices_world"][0].double().cpu().numpy(),
            triangles=model.triangles.cpu().numpy(),
            colors=out["colors"][0].clamp(0, 1).double().cpu().numpy(),
            landmarks=lm,
            crop=crop,
            camera_label=eg3d_label_from_deep3d(parts["angle"], parts["trans"]),
            uvs=uvs,
            uv_faces=uv_faces,
            extra={
                "uvfit": info,
                "landmark_rmse": rmse,
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
            },
        )
        return {"recon": recon}
