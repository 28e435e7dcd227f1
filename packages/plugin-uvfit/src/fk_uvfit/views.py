"""Pictures of a textured head: yaw renders with fk's renderer, the stage vis strip.

Renders go through ``fk.render.mesh.render_mesh`` (OpenCV camera frame, pixel intrinsics, row 0 at the
top); several textured meshes (head, eyeballs) are rendered one by one and composited by depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fk.cameras.deep3d import CAMERA_DISTANCE, opencv_from_deep3d_camera, to_camera
from fk.geometry.rotations import euler_to_matrix

BACKGROUND = (0.93, 0.93, 0.93)


@dataclass
class TexturedMesh:
    """vertices (N, 3) in the model frame (y up), faces (F, 3), uvs (T, 2) (v up), uv_faces (F, 3),
    texture (H, W, 3) uint8."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    texture: np.ndarray


def render_textured(
    meshes: list[TexturedMesh],
    vertices_cv: list[np.ndarray],
    K: np.ndarray,
    size: tuple[int, int],
    renderer: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Render textured meshes (vertices already in the OpenCV camera frame) and keep the nearest surface:
    ((H, W, 3) float RGB in [0, 1], (H, W) bool mask)."""
    import torch
    from fk.render.mesh import render_mesh

    h, w = size
    rgb = np.zeros((h, w, 3))
    depth = np.full((h, w), np.inf)
    with torch.no_grad():
        for mesh, verts in zip(meshes, vertices_cv, strict=True):
            out = render_mesh(
                torch.as_tensor(verts, dtype=torch.float32)[None],
                mesh.faces,
                torch.as_tensor(K, dtype=torch.float32),
                (h, w),
                uvs=torch.as_tensor(mesh.uvs),
                uv_faces=mesh.uv_faces,
                texture=mesh.texture,
                backend=renderer,
            )
            m = out.mask[0].numpy()
            d = np.where(m, out.depth[0].double().numpy(), np.inf)
            nearer = d < depth
            rgb[nearer] = out.rgb[0].clamp(0, 1).double().numpy()[nearer]
            depth[nearer] = d[nearer]
    return rgb, np.isfinite(depth)


def yaw_views(
    meshes: list[TexturedMesh], yaws_deg: list[float], size: int = 384, renderer: str = "auto"
) -> list[np.ndarray]:
    """The meshes (model frame, unposed) turned by each yaw (degrees; positive turns the face toward the
    image left), framed on the first mesh (the head); uint8 (size, size, 3) on a light grey background."""
    head = np.asarray(meshes[0].vertices, np.float64)
    lo, hi = head.min(0), head.max(0)
    centre = 0.5 * (lo + hi)
    radius = 0.5 * float(np.max(hi[:2] - lo[:2]))
    focal = 0.45 * size * CAMERA_DISTANCE / max(radius, 1e-6)
    K = np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1.0]])
    frames = []
    for yaw in yaws_deg:
        rot = euler_to_matrix(np.array([0.0, np.deg2rad(yaw), 0.0]), "xyz")
        cams = [
            opencv_from_deep3d_camera(to_camera((np.asarray(m.vertices) - centre) @ rot.T)) for m in meshes
        ]
        rgb, mask = render_textured(meshes, cams, K, (size, size), renderer)
        img = np.where(mask[..., None], rgb, np.asarray(BACKGROUND))
        frames.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
    return frames


def draw_points(
    image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: int = 1
) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    for x, y in np.rint(np.asarray(points)).astype(int):
        out[max(0, y - radius) : min(h, y + radius + 1), max(0, x - radius) : min(w, x + radius + 1)] = color
    return out
