"""FFHQ-UV's stages 2 and 3 (ffhquv.md §1.4-1.6) on fk's renderer, with the texture decoder frozen.

Stage 2 searches the texture latent on the hypersphere with the shape, pose and light fixed: z (1, 18, 512)
from ``RandomState(123)``, w = z · w_std + w_avg, Adam (lr 0.1, ramp-down 0.25, 100 steps), each latent
vector rescaled to its initial norm after every step. Stage 3 optimises W+ together with id, exp, angle,
gamma and trans (per-group learning rates, ramp-down 0.4, 200 steps). Losses and weights:
:mod:`fk_uvfit.losses` (every one a field of ``STAGE2`` / ``STAGE3``).

Rendering (upstream's): the HiFi3D++ face-region triangles (``tri``) are rasterised at 224² with Deep3D's
camera; each pixel interpolates the vertices' ``vtx_vt`` (512-px units) and SH shading; the texel is read
by :func:`fk.render.uv_sampling.sample_uv_texture` (nearest by default, ``uv_sampling="bilinear"`` is fk's
option) and multiplied by the shading. The photometric target is composited as upstream: the render where
the (detached) render mask is set, the photo elsewhere, and the colour loss is masked by
render mask × parse mask × skin mask.

The ArcFace identity term (``w_id``) and the LPIPS term (``w_lpips``, stage 2 only) run when their networks
are given (:class:`Terms`); without weights the term is skipped and its weight counted as 0 (the caller
says so). Upstream also renders the whole head every step for its TensorBoard pictures; that render is in
no loss and not in the saved ``stage{N}_vis.png``, so fk skips it (same numbers, less time;
``UVRenderer(..., head=True)`` renders it on demand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from fk.models.lighting import gamma_loss

from fk_uvfit import losses as L
from fk_uvfit import texgan as T
from fk_uvfit.cropface import as_decoder


@dataclass
class Processed:
    """Upstream's processed data: img (1, 3, 224, 224) [0, 1], skin_mask/parse_mask (1, 1, 224, 224),
    lm (1, 68, 2) pixels **y up** (y' = 223 − y)."""

    img: torch.Tensor
    skin_mask: torch.Tensor
    parse_mask: torch.Tensor
    lm: torch.Tensor

    def to(self, device: str | torch.device) -> Processed:
        return Processed(*(t.to(device) for t in (self.img, self.skin_mask, self.parse_mask, self.lm)))


@dataclass
class Terms:
    """The optional loss networks: ``identity`` (:class:`fk_uvfit.losses.IdentityTerm`) with the photo's
    ArcFace warp ``M`` (1, 2, 3) from preprocessing, and ``perceptual``
    (``fk.nets.lpips.LPIPS``). None: skipped."""

    identity: Any = None
    M: torch.Tensor | None = None
    perceptual: Any = None
    _target: torch.Tensor | None = None

    def target_identity(self, img: torch.Tensor) -> torch.Tensor:
        if self._target is None:
            with torch.no_grad():
                self._target = self.identity.embed(img, self.M)
        return self._target

    def weights(self, cfg: dict) -> dict[str, float]:
        """The weights actually used: a term without its network counts 0."""
        return {
            **{k: float(v) for k, v in cfg.items() if k.startswith("w_")},
            "w_id": float(cfg["w_id"]) if self.identity is not None else 0.0,
            "w_lpips": float(cfg["w_lpips"]) if self.perceptual is not None else 0.0,
        }


@dataclass
class StageResult:
    coeffs: torch.Tensor  # (1, n_coeffs)
    latents_w: torch.Tensor  # (1, L, C)
    latents_z: torch.Tensor
    uv: torch.Tensor  # (1, 3, S, S) in [0, 1] (unclipped)
    history: list[dict[str, float]] = field(default_factory=list)


class UVRenderer:
    """Renders a HiFi3D++-style model with a UV map the way FFHQ-UV's stages 2-3 do (224², y-up landmarks)."""

    def __init__(self, model, vtx_vt: Any, uv_sampling: str = "nearest", renderer: str = "cpu"):
        from fk.cameras.deep3d import K_RENDER, ZFAR, ZNEAR
        from fk.render.mesh import projection_from_intrinsics

        self.model = model  # its device is the renderer's: every tensor below follows it
        self.renderer = renderer
        self.vtx_vt = torch.as_tensor(np.asarray(vtx_vt), dtype=model.dtype)
        self.mode = uv_sampling
        self.tri = model.face_region_triangles().to(torch.int32).contiguous()
        self.head_tri = model.triangles.to(torch.int32).contiguous()
        self.proj = projection_from_intrinsics(
            torch.as_tensor(K_RENDER, dtype=model.dtype)[None], (224, 224), ZNEAR, ZFAR
        )[0]
        self.to(model.device)

    def to(self, device: str | torch.device) -> UVRenderer:
        """Move the model, the per-vertex UVs, triangles and projection to ``device``; the raster context
        is made for it (``fk.render.get_context``: nvdiffrast when it imports with CUDA under ``auto``,
        else fk's CPU rasteriser, which takes tensors of any device and returns them on it)."""
        import fk.render as dr

        device = torch.device(device)
        self.model = self.model.to(device)
        self.vtx_vt = self.vtx_vt.to(device)
        self.tri, self.head_tri, self.proj = (t.to(device) for t in (self.tri, self.head_tri, self.proj))
        self.ctx = dr.get_context(self.renderer, device=device)
        return self

    @property
    def device(self) -> torch.device:
        return self.vtx_vt.device

    def __call__(
        self, coeffs: torch.Tensor, uv: torch.Tensor | None, head: bool = False
    ) -> dict[str, torch.Tensor]:
        """Render with the UV map ``uv`` (B, 3, S, S); ``uv=None``: the lit per-vertex albedo (stage 1);
        ``head=True`` rasterises the whole head (``head_tri``) instead of the face region (``tri``)."""
        import fk.render as dr
        from fk.cameras.deep3d import opencv_from_deep3d_camera
        from fk.render.uv_sampling import sample_uv_texture

        out = self.model(coeffs)
        parts = self.model.split_coeffs(coeffs)
        shading = self.model.illuminate(torch.ones_like(out["albedo"]), out["normals"], parts["gamma"])
        cv = opencv_from_deep3d_camera(out["vertices_cam"])
        pos = torch.cat([cv, torch.ones_like(cv[..., :1])], -1) @ self.proj.T
        tri = self.head_tri if head else self.tri
        rast, _ = dr.rasterize(self.ctx, pos.contiguous(), tri, (224, 224))
        if uv is None:
            feat, _ = dr.interpolate(out["colors"].contiguous(), rast, tri)
            feat = torch.flip(feat, dims=[1])  # nvdiffrast's row 0 is the bottom
            mask = torch.flip((rast[..., 3:] > 0).to(feat.dtype), dims=[1])
            image = (feat * mask).permute(0, 3, 1, 2)
            return {"image": image, "mask": mask.permute(0, 3, 1, 2), "lm": out["landmarks_yup"], "out": out}
        attrs = torch.cat([self.vtx_vt.expand(coeffs.shape[0], -1, -1), shading], -1).contiguous()
        feat, _ = dr.interpolate(attrs, rast, tri)
        feat = torch.flip(feat, dims=[1])  # nvdiffrast's row 0 is the bottom
        mask = torch.flip((rast[..., 3:] > 0).to(feat.dtype), dims=[1])
        tex = sample_uv_texture(uv.permute(0, 2, 3, 1), feat[..., :2], mode=self.mode)
        image = (tex * feat[..., 2:] * mask).permute(0, 3, 1, 2)
        return {
            "image": image,
            "mask": mask.permute(0, 3, 1, 2),
            "lm": out["landmarks_yup"],
            "out": out,
            "uv_coords": feat[..., :2],
        }


def _log(step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {"step": step, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def _objective(
    rend: dict[str, torch.Tensor], data: Processed, cfg: dict, terms: Terms
) -> dict[str, torch.Tensor]:
    """Upstream's terms on the composited render (the render where its detached mask is set, else photo)."""
    m_hat = rend["mask"].detach()
    face = rend["image"] * m_hat + data.img * (1 - m_hat)
    mask = m_hat * data.parse_mask * data.skin_mask
    out = {"color": L.color_loss(face, data.img, mask), "lm": L.landmark_loss(rend["lm"], data.lm)}
    if terms.identity is not None and cfg["w_id"] > 0:
        # the render's warp comes from its own (detached) landmarks, the photo's from preprocessing
        pred_m = terms.identity.matrix_from_landmarks(rend["lm"].detach(), image_size=data.img.shape[-2])
        feat = terms.identity.embed(face, pred_m)
        out["id"] = L.identity_loss(feat, terms.target_identity(data.img))
    if terms.perceptual is not None and cfg["w_lpips"] > 0:
        vgg_mask = m_hat * data.parse_mask  # no skin term, as upstream
        out["lpips"] = terms.perceptual(face * vgg_mask, data.img * vgg_mask).sum()
    return out


def _weighted(cfg: dict, terms: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    return sum(cfg[f"w_{n}"] * terms[n] for n in names if n in terms)


def stage2(
    render: UVRenderer,
    gen,
    w_avg: torch.Tensor,
    w_std: torch.Tensor,
    data: Processed,
    coeffs: torch.Tensor,
    cfg: dict = L.STAGE2,
    terms: Terms | None = None,
    progress=None,
) -> StageResult:
    """Latent search on the hypersphere, shape/pose/light fixed. ``gen``: the texture generator or a
    decoder of :mod:`fk_uvfit.cropface` (the map the fit renders is ``decoder(w)``)."""
    terms = terms or Terms()
    decode = as_decoder(gen)
    torch.manual_seed(L.SEED)
    z = T.initial_z(decode.mapping.num_ws, decode.z_dim, device=render.device).requires_grad_(True)
    norms = z.detach().norm(dim=-1, keepdim=True)
    opt = torch.optim.Adam([z], lr=cfg["initial_lr"], betas=cfg["betas"])
    coeffs = coeffs.detach()
    history = []
    for step in range(cfg["steps"]):
        for g in opt.param_groups:
            g["lr"] = cfg["initial_lr"] * L.lr_factor(step, cfg["steps"], cfg["lr_rampdown"])
        w = T.z_to_w(z, w_avg, w_std)
        parts = _objective(render(coeffs, decode(w)), data, cfg, terms)
        parts["geocross"] = L.geocross(w)
        loss = _weighted(cfg, parts, ("id", "color", "lpips", "geocross"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(L.project_to_sphere(z, norms))
        history.append(_log(step, loss, parts))
        if progress is not None:
            progress(step + 1, cfg["steps"])
    with torch.no_grad():
        w = T.z_to_w(z, w_avg, w_std)
        return StageResult(coeffs, w.detach(), z.detach(), decode(w), history)


def stage3(
    render: UVRenderer,
    gen,
    w_avg: torch.Tensor,
    w_std: torch.Tensor,
    data: Processed,
    start: StageResult,
    cfg: dict = L.STAGE3,
    terms: Terms | None = None,
    progress=None,
) -> StageResult:
    """Joint W+ and shape/pose/light optimisation (tex coefficients unused)."""
    terms = terms or Terms()
    decode = as_decoder(gen)
    model = render.model
    parts = {
        k: v.detach().clone().requires_grad_(k != "tex") for k, v in model.split_coeffs(start.coeffs).items()
    }
    w = start.latents_w.clone().requires_grad_(True)
    rates = L.stage3_learning_rates(cfg)
    groups = [{"params": [w], "lr": rates["latent"]}] + [
        {"params": [parts[k]], "lr": rates[k]} for k in ("id", "exp", "angle", "gamma", "trans")
    ]
    base = [g["lr"] for g in groups]
    opt = torch.optim.Adam(groups, betas=cfg["betas"])
    history = []
    for step in range(cfg["steps"]):
        factor = L.lr_factor(step, cfg["steps"], cfg["lr_rampdown"])
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * factor
        coeffs = model.join_coeffs(parts)
        got = _objective(render(coeffs, decode(w)), data, cfg, terms)
        got.update(
            reg_id=L.coeff_l2(parts["id"]),
            reg_exp=L.coeff_l2(parts["exp"]),
            gamma=gamma_loss(parts["gamma"]),
            geocross=L.geocross(w),
        )
        loss = _weighted(cfg, got, ("id", "color", "lpips", "reg_id", "reg_exp", "gamma", "geocross", "lm"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(_log(step, loss, got))
        if progress is not None:
            progress(step + 1, cfg["steps"])
    with torch.no_grad():
        coeffs = model.join_coeffs({k: v.detach() for k, v in parts.items()})
        return StageResult(coeffs, w.detach(), T.w_to_z(w.detach(), w_avg, w_std), decode(w), history)


class ContextWriter:
    """Writes ``<prefix>/<name>`` through an item context (atomic, recorded in the run manifest)."""

    def __init__(self, ctx, prefix: str):
        self.ctx, self.prefix = ctx, prefix

    def text(self, name: str, text: str) -> None:
        self.ctx.write_text(f"{self.prefix}/{name}", text)

    def bytes(self, name: str, data: bytes) -> None:
        self.ctx.write_bytes(f"{self.prefix}/{name}", data)

    def image(self, name: str, image: np.ndarray) -> None:
        self.ctx.save_image(f"{self.prefix}/{name}", image)


class FolderWriter:
    """Writes ``<folder>/<name>`` atomically (outside a recipe run)."""

    def __init__(self, folder):
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def text(self, name: str, text: str) -> None:
        from fk.atomic import write_text

        write_text(self.folder / name, text)

    def bytes(self, name: str, data: bytes) -> None:
        from fk.atomic import write_bytes

        write_bytes(self.folder / name, data)

    def image(self, name: str, image: np.ndarray) -> None:
        from fk.io import save_image

        save_image(self.folder / name, image)


def uv_png(uv: torch.Tensor) -> np.ndarray:
    """The first (B, 3, S, S) [0, 1] map as (S, S, 3) uint8: times 255, rounded, clipped (upstream's save)."""
    return (uv[0].detach().permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_stage(
    out,
    stage: int,
    model,
    result: StageResult,
    uvs: np.ndarray,
    uv_faces: np.ndarray,
    landmarks: torch.Tensor,
    uv: torch.Tensor | None = None,
    uv_no_blend: torch.Tensor | None = None,
) -> list[str]:
    """``stage{N}_uv.png``, ``stage{N}_mesh_{id,exp}.obj``, ``stage{N}_mesh.mtl``, ``stage{N}_coeffs.npz``
    (``coeffs``, ``lm68``, ``latents_w``, ``latents_z``: upstream's keys) through ``out`` (a
    :class:`ContextWriter`, :class:`FolderWriter` or a folder path); returns the names written. ``uv``: the
    map to save instead of ``result.uv`` (cropface630's saving blend); ``uv_no_blend``: also written as
    ``stage{N}_uv_no_blend.png``."""
    import io

    from fk_uvfit import files as F

    if not hasattr(out, "text"):
        out = FolderWriter(out)
    names = []
    out.image(f"stage{stage}_uv.png", uv_png(result.uv if uv is None else uv))
    if uv_no_blend is not None:
        out.image(f"stage{stage}_uv_no_blend.png", uv_png(uv_no_blend))
        names.append(f"stage{stage}_uv_no_blend.png")
    out.text(f"stage{stage}_mesh.mtl", F.mtl_text(f"stage{stage}_uv.png"))
    parts = model.split_coeffs(result.coeffs)
    faces = model.triangles.cpu().numpy()
    with torch.no_grad():
        for tag, expr in (("id", torch.zeros_like(parts["exp"])), ("exp", parts["exp"])):
            shape = model.shape(parts["id"], expr)[0].double().cpu().numpy()
            out.text(
                f"stage{stage}_mesh_{tag}.obj",
                F.head_obj_text(shape, uvs, faces, uv_faces, mtl_name=f"stage{stage}_mesh.mtl"),
            )
            names.append(f"stage{stage}_mesh_{tag}.obj")
    buf = io.BytesIO()
    np.savez(
        buf,
        coeffs=result.coeffs.cpu().numpy().astype(np.float32),
        lm68=landmarks.detach().cpu().numpy().astype(np.float32),
        latents_w=result.latents_w.cpu().numpy(),
        latents_z=result.latents_z.cpu().numpy(),
    )
    out.bytes(f"stage{stage}_coeffs.npz", buf.getvalue())
    names += [f"stage{stage}_uv.png", f"stage{stage}_mesh.mtl", f"stage{stage}_coeffs.npz"]
    return sorted(names)
