"""CoRA's mesh-rasterisation stage (``train.mesh_render``, cora.md §9.3): material refinement on a fixed mesh.

Once ``step > train.mesh_render_iter`` (CoRA's test, ``step`` = steps done), training switches for good:

1. :func:`extract_training_mesh`: marching cubes of the **composite** SDF (head and eyeballs) on a
   ``mesh_render_resolution³`` lattice (CoRA: 256) over ``[-bound, bound]³`` at VolSDF's level ``β``,
   quadric decimation to 50%, then only the faces seen in some frame at a pixel with ``mask > 0.5``, and
   the largest connected component. The mesh is written as ``precompute_mesh_XXXXX.obj`` and kept in every
   later checkpoint (so a resume continues on the same mesh).
2. Each later step (:func:`mesh_step`): one whole frame drawn at random; the mesh rasterised through the
   frame's camera with fk's renderer (nvdiffrast's API) with no gradient, interpolating the world position
   and the vertices' squared distance to the camera ``d²``; the material field queried at the covered
   pixels' surface points, the normal the (detached) gradient of the composite SDF there; shaded with the
   flashlight (divided by the **interpolated** ``d²`` as upstream) and the ambient SH term of that view.
   Loss: ``w_lpips·LPIPS(pred, pix^γ) + w_l1·L1 + w_reg_diff·Σ(hair·s)/Σ hair + w_abdmm_refine·
   L1(s·M·light_scale, bfm·M)`` with ``M = coverage·(1 - hair)``; ``pred`` linear, as upstream feeds it
   to LPIPS. No eyeball material override here (upstream applies it only when validating).
3. After ``backward`` every gradient outside the material field is dropped (CoRA zeroes every parameter
   whose name lacks "material"), so only the material hash grid and MLP move.

Differences from upstream (docs/eyeball.md): fk's interpolation is perspective-correct (pytorch3d's
``rasterize_meshes`` default interpolates screen-space barycentrics); no pymeshfix hole filling after the
visibility clip; scikit-image marching cubes and fast-simplification's decimation (as the export).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fk_eyeball.brdf import point_light, sh_ambient, sh_basis

MESH_DECIMATION = 0.5  # CoRA: pymeshlab quadric decimation to 50%
VISIBLE_MASK = 0.5  # faces hit where mask > 0.5 in some frame are kept


def _camera(data, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    return data.rot[index], data.centre[index]


def rasterize_frame(vertices: torch.Tensor, faces: torch.Tensor, data, index: int,
                    attributes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """Rasterise the world-space mesh in frame ``index`` of ``data`` (:class:`fk_eyeball.train.RayData`).

    Returns image-layout ``(H, W, ·)`` maps: ``position`` (world, interpolated), ``coverage`` (the
    interpolated vertex value 1: 1 on the mesh, 0 off it), ``dist2`` (interpolated squared vertex-camera
    distances), ``triangle`` (face index, -1 empty) and ``attributes`` when given ``(N, C)``. No gradient.
    """
    from fk.render.mesh import render_mesh

    rot, centre = _camera(data, index)
    with torch.no_grad():
        cam = (vertices - centre) @ rot  # world -> OpenCV camera frame (rows: x_cam = Rᵀ (x - t))
        z = cam[:, 2]
        near = float(z.min().clamp_min(1e-6)) / 2  # CoRA: near = min z / 2, far = max z · 2
        far = float(z.max()) * 2
        dist2 = ((vertices - centre) ** 2).sum(-1, keepdim=True)
        extra = [attributes] if attributes is not None else []
        colours = torch.cat([vertices, torch.ones_like(dist2), dist2, *extra], -1)
        K = torch.as_tensor(data.K, dtype=vertices.dtype, device=vertices.device)
        size = (data.h, data.w)
        r = render_mesh(cam[None], faces, K, size, vertex_colors=colours[None], near=near, far=far)
    img = r.rgb[0]
    out = {"position": img[..., :3], "coverage": img[..., 3:4], "dist2": img[..., 4:5],
           "triangle": r.triangle_id[0]}  # fmt: skip
    if attributes is not None:
        out["attributes"] = img[..., 5:]
    return out


def extract_training_mesh(
    avatar, data, resolution: int, log: Callable[[str], None] = print
) -> tuple[np.ndarray, np.ndarray]:
    """CoRA's ``_clip_mesh_fn`` in training (eyeballs included): ``(vertices (N, 3) world, faces (F, 3))``."""
    from fk.geometry.mesh_ops import compact, largest_component

    from fk_eyeball.export_avatar import decimate, marching_cubes, sdf_grid, surface_level

    device = data.mask.device
    lo, hi = (np.asarray(b, np.float64) for b in avatar.bounds)
    values, spacing = sdf_grid(avatar.sdf, lo, hi, int(resolution), device=device)
    verts, faces = marching_cubes(values, lo, spacing, level=surface_level(avatar))
    verts, faces = decimate(verts, faces, MESH_DECIMATION)
    v = torch.as_tensor(verts, dtype=torch.float32, device=device)
    f = torch.as_tensor(faces, dtype=torch.int64, device=device)
    seen = torch.zeros(len(faces), dtype=torch.bool, device=device)
    for index in range(data.n_frames):
        tri = rasterize_frame(v, f, data, index)["triangle"]
        hit = tri[(tri >= 0) & (data.mask[index] > VISIBLE_MASK)]
        seen[hit] = True
    kept = faces[seen.cpu().numpy()]
    if not len(kept):
        kept = faces  # nothing seen (an untrained model far off the masks): keep the whole surface
    kept = largest_component(kept, len(verts))
    verts, kept, _ = compact(verts, kept)
    log(f"mesh stage: {len(verts)} vertices, {len(kept)} faces ({resolution}^3 marching cubes, "
        f"{len(faces)} faces after decimation, visible faces kept)")  # fmt: skip
    return verts, kept


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    from fk.atomic import write_text

    lines = [f"v {x:.8g} {y:.8g} {z:.8g}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    write_text(path, "\n".join(lines) + "\n")


def shade_mesh_frame(avatar, raster: dict, data, index: int, cfg: dict, eye_override: bool) -> dict:
    """Per-pixel linear radiance of the covered pixels; ``(H, W, ·)`` images, zero off the mesh.

    Materials carry gradients (the fields are refined); the normal is the detached composite-SDF gradient.
    ``eye_override``: eyeball points get CoRA's fixed specular/roughness (validation only, as upstream).
    """
    h, w = data.h, data.w
    vis = (raster["coverage"][..., 0] > 0).reshape(-1)
    points = raster["position"].reshape(-1, 3)[vis]
    x01 = avatar.to01(points).detach().requires_grad_(True)
    with torch.enable_grad():
        q = avatar.sdf01(x01)
        (grad,) = torch.autograd.grad(q["sdf"].sum(), x01)
    normal = torch.nn.functional.normalize(grad.detach(), dim=-1)
    eye = (q["sdf"] < q["face"]).detach() if (eye_override and avatar.spec.hybrid) else None
    mat = avatar.material01(x01.detach(), eye)
    light = cfg["light"]
    colour = torch.tensor(light["color"], dtype=points.dtype, device=points.device)
    light_rgb = colour * float(light["intensity"])
    dist2 = raster["dist2"].reshape(-1, 1)[vis].clamp_min(1e-6)
    _, centre = _camera(data, index)
    diff, spec = point_light(points, normal, centre, mat["albedo"], mat["specular"], mat["roughness"],
                             light_rgb, dist2=dist2)  # fmt: skip
    occ_code = avatar.sh_occlusion[index]
    data_cfg = cfg["data"]
    amb = sh_ambient(normal, mat["albedo"], avatar.sh_env, occ_code, data_cfg["sh_scale"], data_cfg["beta"])

    def image(values: torch.Tensor) -> torch.Tensor:
        full = values.new_zeros(h * w, values.shape[-1])
        return full.index_put((vis.nonzero()[:, 0],), values).reshape(h, w, -1)

    out = {"diffuse_flash": image(diff), "specular_flash": image(spec), "ambient": image(amb),
           "specular": image(mat["specular"]), "normal": image(normal),
           "coverage": raster["coverage"]}  # fmt: skip
    out["recon"] = out["diffuse_flash"] + out["specular_flash"] + out["ambient"]
    out["sh_occlusion"] = image(torch.sigmoid((sh_basis(normal) * occ_code).sum(-1, keepdim=True)))
    return out


def mesh_terms(avatar, shaded: dict, data, index: int, weights: dict,
               lpips: torch.nn.Module | None) -> dict[str, torch.Tensor]:  # fmt: skip
    """CoRA's mesh-stage loss terms, each already multiplied by its weight (fk's losses.jsonl convention)."""
    pred = shaded["recon"]
    gt = data.pixels[index]  # linear (pix ** gamma)
    hair = data.hair[index][..., None]
    spec = shaded["specular"]
    terms = {"mesh_l1": weights["w_l1"] * (pred - gt).abs().mean()}
    if lpips is not None and weights["w_lpips"]:
        as_batch = lambda x: x.permute(2, 0, 1)[None]  # noqa: E731
        terms["mesh_lpips"] = weights["w_lpips"] * lpips(as_batch(pred), as_batch(gt)).mean()
    terms["mesh_hair_diff"] = weights["w_reg_diff"] * (hair * spec).sum() / hair.sum().clamp_min(1e-3)
    m = shaded["coverage"] * (1 - hair)
    bfm = data.bfm[index][..., None]
    terms["abdmm_refine"] = weights["w_abdmm_refine"] * (spec * m * avatar.light_scale - bfm * m).abs().mean()
    return terms


def keep_material_gradients(avatar: torch.nn.Module) -> None:
    """Drop every gradient outside the material field (CoRA: ``"material" not in name``: ``grad = None``)."""
    for name, p in avatar.named_parameters():
        if "material" not in name:
            p.grad = None


__all__ = [
    "extract_training_mesh", "keep_material_gradients", "mesh_terms", "rasterize_frame", "shade_mesh_frame",
    "write_obj",
]  # fmt: skip
