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

Named differences: the ArcFace identity and LPIPS terms are left out (their weights are counted as 0) until
fk has a safe ArcFace/VGG in core; stage 1 is the caller's start (``fit:deep3d`` with ``model: hifi3dpp``
when FFHQ-UV's HiFi3D++ R-Net is absent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fk_uvfit import losses as L
from fk_uvfit import texgan as T


@dataclass
class Processed:
    """Upstream's processed data: img (1, 3, 224, 224) [0, 1], skin_mask/parse_mask (1, 1, 224, 224),
    lm (1, 68, 2) pixels **y up** (y' = 223 − y)."""

    img: torch.Tensor
    skin_mask: torch.Tensor
    parse_mask: torch.Tensor
    lm: torch.Tensor


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
        import fk.render as dr
        from fk.cameras.deep3d import K_RENDER, ZFAR, ZNEAR
        from fk.render.mesh import projection_from_intrinsics

        self.model = model
        self.vtx_vt = torch.as_tensor(np.asarray(vtx_vt), dtype=model.dtype)
        self.mode = uv_sampling
        self.ctx = dr.get_context(renderer)
        self.tri = model.face_region_triangles().to(torch.int32).contiguous()
        self.proj = projection_from_intrinsics(
            torch.as_tensor(K_RENDER, dtype=model.dtype)[None], (224, 224), ZNEAR, ZFAR
        )[0]

    def __call__(self, coeffs: torch.Tensor, uv: torch.Tensor) -> dict[str, torch.Tensor]:
        import fk.render as dr
        from fk.cameras.deep3d import opencv_from_deep3d_camera
        from fk.render.uv_sampling import sample_uv_texture

        out = self.model(coeffs)
        parts = self.model.split_coeffs(coeffs)
        shading = self.model.illuminate(torch.ones_like(out["albedo"]), out["normals"], parts["gamma"])
        cv = opencv_from_deep3d_camera(out["vertices_cam"])
        pos = torch.cat([cv, torch.ones_like(cv[..., :1])], -1) @ self.proj.T
        rast, _ = dr.rasterize(self.ctx, pos.contiguous(), self.tri, (224, 224))
        attrs = torch.cat([self.vtx_vt.expand(coeffs.shape[0], -1, -1), shading], -1).contiguous()
        feat, _ = dr.interpolate(attrs, rast, self.tri)
        feat = torch.flip(feat, dims=[1])  # nvdiffrast's row 0 is the bottom
        mask = torch.flip((rast[..., 3:] > 0).to(feat.dtype), dims=[1])
        tex = sample_uv_texture(uv.permute(0, 2, 3, 1), feat[..., :2], mode=self.mode)
        image = (tex * feat[..., 2:] * mask).permute(0, 3, 1, 2)
        return {"image": image, "mask": mask.permute(0, 3, 1, 2), "lm": out["landmarks_yup"]}


def _log(step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {"step": step, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def _objective(rend: dict[str, torch.Tensor], data: Processed, cfg: dict) -> dict[str, torch.Tensor]:
    m_hat = rend["mask"].detach()
    face = rend["image"] * m_hat + data.img * (1 - m_hat)
    mask = m_hat * data.parse_mask * data.skin_mask
    return {"color": L.color_loss(face, data.img, mask), "lm": L.landmark_loss(rend["lm"], data.lm)}


def stage2(
    render: UVRenderer,
    gen,
    w_avg: torch.Tensor,
    w_std: torch.Tensor,
    data: Processed,
    coeffs: torch.Tensor,
    cfg: dict = L.STAGE2,
) -> StageResult:
    """Latent search on the hypersphere, shape/pose/light fixed."""
    torch.manual_seed(L.SEED)
    z = T.initial_z(gen.mapping.num_ws, gen.z_dim).requires_grad_(True)
    norms = z.detach().norm(dim=-1, keepdim=True)
    opt = torch.optim.Adam([z], lr=cfg["initial_lr"], betas=cfg["betas"])
    coeffs = coeffs.detach()
    history = []
    for step in range(cfg["steps"]):
        for g in opt.param_groups:
            g["lr"] = cfg["initial_lr"] * L.lr_factor(step, cfg["steps"], cfg["lr_rampdown"])
        w = T.z_to_w(z, w_avg, w_std)
        terms = _objective(render(coeffs, T.synth_uv(gen, w)), data, cfg)
        terms["geocross"] = L.geocross(w)
        loss = cfg["w_color"] * terms["color"] + cfg["w_geocross"] * terms["geocross"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(L.project_to_sphere(z, norms))
        history.append(_log(step, loss, terms))
    with torch.no_grad():
        w = T.z_to_w(z, w_avg, w_std)
        return StageResult(coeffs, w.detach(), z.detach(), T.synth_uv(gen, w), history)


def stage3(
    render: UVRenderer,
    gen,
    w_avg: torch.Tensor,
    w_std: torch.Tensor,
    data: Processed,
    start: StageResult,
    cfg: dict = L.STAGE3,
) -> StageResult:
    """Joint W+ and shape/pose/light optimisation (tex coefficients unused)."""
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
        terms = _objective(render(coeffs, T.synth_uv(gen, w)), data, cfg)
        terms.update(
            reg_id=L.coeff_l2(parts["id"]),
            reg_exp=L.coeff_l2(parts["exp"]),
            gamma=L.gamma_loss(parts["gamma"]),
            geocross=L.geocross(w),
        )
        loss = (
            cfg["w_color"] * terms["color"]
            + cfg["w_reg_id"] * terms["reg_id"]
            + cfg["w_reg_exp"] * terms["reg_exp"]
            + cfg["w_gamma"] * terms["gamma"]
            + cfg["w_geocross"] * terms["geocross"]
            + cfg["w_lm"] * terms["lm"]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(_log(step, loss, terms))
    with torch.no_grad():
        coeffs = model.join_coeffs({k: v.detach() for k, v in parts.items()})
        return StageResult(
            coeffs, w.detach(), T.w_to_z(w.detach(), w_avg, w_std), T.synth_uv(gen, w), history
        )


def write_stage(
    out_dir,
    stage: int,
    model,
    result: StageResult,
    uvs: np.ndarray,
    uv_faces: np.ndarray,
    landmarks: torch.Tensor,
) -> list[str]:
    """``stage{N}_uv.png``, ``stage{N}_mesh_{id,exp}.obj``, ``stage{N}_mesh.mtl``, ``stage{N}_coeffs.npz``."""
    from pathlib import Path

    from fk.atomic import write_bytes, write_text
    from fk.io import save_image

    from fk_uvfit import files as F

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uv = (result.uv[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    save_image(out / f"stage{stage}_uv.png", uv)
    write_text(out / f"stage{stage}_mesh.mtl", F.mtl_text(f"stage{stage}_uv.png"))
    parts = model.split_coeffs(result.coeffs)
    faces = model.triangles.numpy()
    with torch.no_grad():
        for tag, expr in (("id", torch.zeros_like(parts["exp"])), ("exp", parts["exp"])):
            shape = model.shape(parts["id"], expr)[0].double().numpy()
            write_text(
                out / f"stage{stage}_mesh_{tag}.obj",
                F.head_obj_text(shape, uvs, faces, uv_faces, mtl_name=f"stage{stage}_mesh.mtl"),
            )
    import io

    buf = io.BytesIO()
    np.savez(
        buf,
        coeffs=result.coeffs.numpy().astype(np.float32),
        lm68=landmarks.detach().numpy().astype(np.float32),
        latents_w=result.latents_w.numpy(),
        latents_z=result.latents_z.numpy(),
    )
    write_bytes(out / f"stage{stage}_coeffs.npz", buf.getvalue())
    return sorted(p.name for p in out.iterdir() if p.name.startswith(f"stage{stage}_"))
