"""Rendering meshes given in the OpenCV camera frame with pixel intrinsics, in image layout.

A convenience layer over :mod:`fk.render` (nvdiffrast's API): it builds the clip-space
projection from ``K``, rasterises, interpolates colours (or samples a texture) and returns
images with row 0 at the **top**.

Convention:
- Camera frame: OpenCV, x right, y down, z forward; vertices ``(B, N, 3)``.
- ``K (B, 3, 3)``: pixel intrinsics, pixel centres at integer coordinates (OpenCV): a point
  projecting to ``(u, v) = (col, row)`` lands on the centre of pixel ``(row, col)`` of the output.
- Depth is the camera ``z`` (perspective-correctly interpolated), 0 where empty; clipped to
  ``[near, far]``.
- Textures use OBJ's convention: ``uv (0, 0)`` is the bottom-left corner of the texture image,
  whose row 0 is the top (it is flipped for nvdiffrast's bottom-up lookup).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import fk.render as dr
from fk.errors import ShapeError


@dataclass
class Rendered:
    """Images in image layout (row 0 at the top).

    rgb ``(B, H, W, C)``; depth ``(B, H, W)`` camera z, 0 where empty; mask ``(B, H, W)`` bool;
    triangle_id ``(B, H, W)`` int64 (index into ``faces``), -1 where empty.
    """

    rgb: torch.Tensor | None
    depth: torch.Tensor
    mask: torch.Tensor
    triangle_id: torch.Tensor


def projection_from_intrinsics(K: torch.Tensor, image_size: tuple[int, int], near: float = 0.01,
                               far: float = 100.0) -> torch.Tensor:
    """OpenCV camera frame to nvdiffrast clip space, ``(B, 4, 4)``, acting on column vectors ``(x, y, z, 1)``.

    Args:
        K: ``(B, 3, 3)`` pixel intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
        image_size: ``(H, W)``.

    Convention:
        - clip ``w = z``; NDC ``x = (2 u + 1) / W - 1`` with ``u = (fx x + s y) / z + cx``, so pixel
          column ``u`` is sampled at its centre; NDC ``y = 1 - (2 v + 1) / H``: image row ``v`` (top-down)
          becomes nvdiffrast row ``H - 1 - v`` (bottom-up), which :func:`render_mesh` flips back.
        - ``z/w`` maps ``z = near`` to -1 and ``z = far`` to +1 (OpenGL style).
    """
    if K.ndim != 3 or K.shape[-2:] != (3, 3):
        raise ShapeError(f"K: expected (B, 3, 3), got {tuple(K.shape)}")
    height, width = image_size
    fx, s, cx = K[:, 0, 0], K[:, 0, 1], K[:, 0, 2]
    fy, cy = K[:, 1, 1], K[:, 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    a = (far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    rows = [
        torch.stack([2 * fx / width, 2 * s / width, (2 * cx + 1) / width - 1, zero], -1),
        torch.stack([zero, -2 * fy / height, 1 - (2 * cy + 1) / height, zero], -1),
        torch.stack([zero, zero, a * one, b * one], -1),
        torch.stack([zero, zero, one, zero], -1),
    ]
    return torch.stack(rows, -2)


def _texture_tensor(texture: Any, like: torch.Tensor) -> torch.Tensor:
    tex = torch.as_tensor(np.ascontiguousarray(texture) if isinstance(texture, np.ndarray) else texture)
    if tex.dtype == torch.uint8:
        tex = tex.to(like.dtype) / 255.0
    tex = tex.to(device=like.device, dtype=like.dtype)
    if tex.ndim == 3:
        tex = tex[None]
    if tex.ndim != 4:
        raise ShapeError(f"texture: expected (H, W, C) or (B, H, W, C), got {tuple(tex.shape)}")
    return torch.flip(tex, dims=[1]).contiguous()  # OBJ: image row 0 is v = 1; nvdiffrast: row 0 is v = 0


def render_mesh(vertices: torch.Tensor, faces: Any, K: torch.Tensor, image_size: tuple[int, int],
                vertex_colors: torch.Tensor | None = None, uvs: torch.Tensor | None = None,
                uv_faces: Any = None, texture: Any = None, near: float = 0.01, far: float = 100.0,
                backend: str = "auto", context: Any = None) -> Rendered:
    """Rasterise ``vertices (B, N, 3)`` (OpenCV camera frame) through ``K (B, 3, 3)`` into ``(H, W)`` images.

    Colours come from ``vertex_colors (B|1, N, C)`` or, with ``uvs (T, 2)``, ``uv_faces (F, 3)`` and
    ``texture (H', W', C)`` (uint8 or float in [0, 1]), from the texture (bilinear, wrapped).
    Differentiable w.r.t. ``vertices`` (through the barycentrics, not the silhouette), colours and texture.
    Outputs follow ``vertices``' dtype and device.
    """
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ShapeError(f"vertices: expected (B, N, 3), got {tuple(vertices.shape)}")
    n_images = vertices.shape[0]
    if K.ndim == 2:
        K = K[None].expand(n_images, 3, 3)
    if K.shape[0] != n_images:
        raise ShapeError(f"K: expected ({n_images}, 3, 3) to match vertices, got {tuple(K.shape)}")
    height, width = (int(x) for x in image_size)
    ctx = context if context is not None else dr.get_context(backend)
    device = vertices.device
    work = torch.device("cuda") if getattr(ctx, "backend", "cpu") == "nvdiffrast" else device
    verts = vertices.to(work)
    proj = projection_from_intrinsics(K.to(device=work, dtype=verts.dtype), (height, width), near, far)
    homo = torch.cat([verts, torch.ones_like(verts[..., :1])], -1)
    pos = homo @ proj.transpose(1, 2)
    if work.type == "cuda":
        pos = pos.float()
    tri = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
    tri = tri.to(device=work, dtype=torch.int32).contiguous()
    rast, _ = dr.rasterize(ctx, pos.contiguous(), tri, (height, width))
    covered = rast[..., 3] > 0
    depth, _ = dr.interpolate(verts[..., 2:3].contiguous().to(pos.dtype), rast, tri)
    rgb = None
    if texture is not None:
        if uvs is None or uv_faces is None:
            raise ShapeError("texture needs uvs (T, 2) and uv_faces (F, 3)")
        uv_tri = torch.as_tensor(np.asarray(uv_faces) if not isinstance(uv_faces, torch.Tensor) else uv_faces)
        uv, _ = dr.interpolate(torch.as_tensor(uvs).to(device=work, dtype=pos.dtype).contiguous(), rast,
                               uv_tri.to(device=work, dtype=torch.int32).contiguous())
        rgb = dr.texture(_texture_tensor(texture, pos), uv, filter_mode="linear", boundary_mode="wrap")
        rgb = rgb * covered[..., None]
    elif vertex_colors is not None:
        rgb, _ = dr.interpolate(vertex_colors.to(device=work, dtype=pos.dtype).contiguous(), rast, tri)

    def image(x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=[1]).to(device)

    return Rendered(
        rgb=None if rgb is None else image(rgb).to(vertices.dtype),
        depth=image(depth[..., 0]).to(vertices.dtype),
        mask=image(covered),
        triangle_id=image(rast[..., 3].long() - 1),
    )


def overlay(photo: Any, rgb: Any, mask: Any, alpha: float = 0.6) -> np.ndarray:
    """Blend a render onto a photo where ``mask`` is set: ``HxWx3`` uint8.

    ``photo`` HxWx3 uint8; ``rgb`` HxWx3 in [0, 1] (float) or uint8; ``mask`` HxW bool; tensors allowed
    (a leading batch of 1 is dropped).
    """
    def arr(x: Any, ndim: int) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        return x[0] if x.ndim == ndim + 1 and x.shape[0] == 1 else x

    photo_a, rgb_a, mask_a = arr(photo, 3), arr(rgb, 3), arr(mask, 2).astype(bool)
    if photo_a.dtype != np.uint8 or photo_a.ndim != 3 or photo_a.shape[2] != 3:
        raise ShapeError(f"photo: expected HxWx3 uint8, got {photo_a.shape} {photo_a.dtype}")
    if rgb_a.shape[:2] != photo_a.shape[:2] or mask_a.shape != photo_a.shape[:2]:
        raise ShapeError(f"rgb {rgb_a.shape} and mask {mask_a.shape} must match the photo's {photo_a.shape[:2]}")
    render = rgb_a.astype(np.float64) if rgb_a.dtype == np.uint8 else np.clip(rgb_a, 0, 1) * 255.0
    out = photo_a.astype(np.float64)
    m = mask_a[..., None]
    out = np.where(m, alpha * render[..., :3] + (1 - alpha) * out, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def lambert_shade(vertices: torch.Tensor, faces: Any, albedo: torch.Tensor,
                  light_dir: tuple[float, float, float] = (0.0, 0.0, -1.0), ambient: float = 0.3) -> torch.Tensor:
    """Per-vertex Lambertian colours ``(B, N, C)``: ``albedo * (ambient + (1 - ambient) max(0, n . l))``.

    Vertex normals are area-weighted face normals (OpenCV camera frame); ``light_dir`` points from the
    surface towards the light (default: towards the camera). Two-sided: ``|n . l|``.
    """
    tri = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces,
                          device=vertices.device).long()
    v0, v1, v2 = (vertices[:, tri[:, k]] for k in range(3))
    face_n = torch.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices).index_add(1, tri.reshape(-1), face_n.repeat_interleave(3, dim=1))
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    light = torch.as_tensor(light_dir, dtype=vertices.dtype, device=vertices.device)
    light = light / light.norm()
    lit = (normals @ light).abs()[..., None]
    return albedo * (ambient + (1 - ambient) * lit)
