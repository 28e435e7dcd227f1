"""One differentiable vertex-colour render call for this plugin.

Uses ``fk.render.mesh.render_mesh`` when installed; otherwise the same thing from the
nvdiffrast-API primitives (``fk.render.rasterize`` / ``interpolate``), so fitting only
needs the core rasteriser.

Convention: vertices (B, N, 3) in the OpenCV camera frame (x right, y down, z forward),
K (B, 3, 3) pixel intrinsics with pixel centres at integers; outputs in image layout
(row 0 at the top): rgb (B, H, W, C), mask (B, H, W) bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rendered:
    rgb: torch.Tensor
    mask: torch.Tensor


def clip_from_camera(vertices: torch.Tensor, K: torch.Tensor, size: tuple[int, int], near: float = 0.1,
                     far: float = 100.0) -> torch.Tensor:
    """(B, N, 3) OpenCV camera points -> (B, N, 4) clip coordinates whose NDC y grows with the image row.

    A point at pixel (x, y) lands at NDC (2(x + 0.5)/W − 1, 2(y + 0.5)/H − 1); with nvdiffrast's
    bottom-up memory rows this makes memory row i the image row i (top first).
    """
    h, w = size
    X, Y, Z = vertices.unbind(-1)
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy, s = K[:, 0, 2, None], K[:, 1, 2, None], K[:, 0, 1, None]
    xc = (2.0 / w) * (fx * X + s * Y) + (2.0 * (cx + 0.5) / w - 1.0) * Z
    yc = (2.0 / h) * fy * Y + (2.0 * (cy + 0.5) / h - 1.0) * Z
    zc = ((far + near) * Z - 2.0 * far * near) / (far - near)
    return torch.stack([xc, yc, zc, Z], -1)


def render_vertex_colors(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: tuple[int, int],
                         colors: torch.Tensor, backend: str = "auto") -> Rendered:
    try:
        from fk.render.mesh import render_mesh
    except ImportError:
        render_mesh = None
    if render_mesh is not None:
        out = render_mesh(vertices, faces, K, image_size=tuple(size), vertex_colors=colors, backend=backend)
        return Rendered(out.rgb, out.mask)
    import fk.render as dr

    ctx = dr.get_context(backend)
    tri = faces.to(torch.int32).contiguous()
    pos = clip_from_camera(vertices, K, size).contiguous()
    rast, _ = dr.rasterize(ctx, pos, tri, tuple(size))
    rgb, _ = dr.interpolate(colors.contiguous(), rast, tri)
    mask = rast[..., 3] > 0
    return Rendered(rgb * mask[..., None].to(rgb.dtype), mask)
