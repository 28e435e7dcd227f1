"""CoRA's eyeball export (cora.md §10.2, ``trainer.py::_export_eyeball_material_fn``): the writer the trainer reuses.

Per eye: an ico-sphere of level 3 (642 vertices, 1280 faces) scaled to the world radius (``+ beta`` for a
VolSDF backbone) and moved to the centre; faces whose normal has cosine > 0.8 with the mean ray direction
of **any** frame (faces pointing away from that camera) are deleted; the largest connected piece is kept
(``mesh.obj``); it is UV-unwrapped (``mesh_uv.obj``), UV-rasterised at 128² into ``coord.pkl``
(``torch.save`` of ``[1, 3, 128, 128]``) and ``coord.npy``; ``diffuse.png`` is the albedo at those points
saved **linear** (no gamma, as upstream) and ``normal.png`` is ``(normalize(x - c) + 1) / 2``. Texels off
the UV islands hold the values at position 0, as upstream (it queries coordinate 0 there).

Folder naming quirk reproduced: CoRA's ``leye`` (image-left eye, the subject's right) goes to ``right/``
and ``reye`` to ``left/``: the export folders use anatomical names, the masks image-side names.

Differences: upstream unwraps with Blender 3.1's angle-based ``uv.unwrap``; fk (no Blender) uses an
azimuthal equidistant projection about the cap's mean normal, which is bijective for the trimmed cap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

EXPORT_FOLDER = {"leye": "right", "reye": "left"}  # CoRA's naming quirk (§7, §10.2)
COORD_SIZE = 128


def mean_ray_direction(K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(3,) camera-frame mean of the normalised pixel rays of a full frame (upstream's ``view_mean``)."""
    h, w = size
    x = (np.arange(w) - K[0, 2]) / K[0, 0]
    y = (np.arange(h) - K[1, 2]) / K[1, 1]
    xx, yy = np.meshgrid(x, y)
    d = np.stack([xx, yy, np.ones_like(xx)], axis=-1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    m = d.reshape(-1, 3).mean(0)
    return m / np.linalg.norm(m)


def eyeball_cap(center, radius: float, view_directions: np.ndarray, level: int = 3):
    """(vertices, faces) of the trimmed ico-sphere: faces with cos(normal, view) > 0.8 in any view removed."""
    from fk.geometry.mesh_ops import compact, ico_sphere, largest_component

    v, f = ico_sphere(level)
    v = v * radius + np.asarray(center, np.float64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    views = np.asarray(view_directions, np.float64).reshape(-1, 3)
    views = views / np.linalg.norm(views, axis=1, keepdims=True)
    seen = ~((n @ views.T) > 0.8).any(axis=1)
    faces = largest_component(f[seen], len(v))
    verts, faces, _ = compact(v, faces)
    return verts, faces


def cap_uvs(vertices: np.ndarray, center) -> np.ndarray:
    """(N, 2) azimuthal equidistant UVs about the cap's mean direction, filling [0.02, 0.98]²."""
    d = vertices - np.asarray(center, np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    axis = d.mean(0)
    axis /= np.linalg.norm(axis)
    helper = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, axis)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    theta = np.arccos(np.clip(d @ axis, -1, 1))
    phi = np.arctan2(d @ e2, d @ e1)
    rho = theta / max(theta.max(), 1e-12)
    return 0.5 + 0.48 * np.stack([rho * np.cos(phi), rho * np.sin(phi)], axis=1)


def write_eyeball(
    out_dir: str | Path,
    center,
    radius: float,
    view_directions: np.ndarray,
    albedo: Callable[[np.ndarray], np.ndarray],
    coord_size: int = COORD_SIZE,
) -> dict:
    """Write one eyeball's ``mesh.obj``, ``mesh_uv.obj``, ``coord.pkl``/``coord.npy``, ``diffuse.png``, ``normal.png``.

    ``albedo(points (N, 3)) -> (N, 3)`` linear RGB in [0, 1] is the texture source (the trainer's material
    field, or a projection of the photos). Returns a summary.
    """
    import torch
    from fk.io.image import save_image
    from fk.io.mesh import Mesh, write_obj

    from fk_eyeball.uvmaps import coord_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = np.asarray(center, np.float64)
    verts, faces = eyeball_cap(c, radius, view_directions)
    write_obj(out / "mesh.obj", Mesh(verts, faces, name="eyeball"))
    uv = cap_uvs(verts, c)
    write_obj(out / "mesh_uv.obj", Mesh(verts, faces, uvs=uv, uv_faces=faces, name="eyeball_uv"))
    coord = coord_map(verts, faces, uv, faces, coord_size)  # (3, S, S), 0 off the islands
    torch.save(torch.from_numpy(coord[None].copy()), out / "coord.pkl")
    np.save(out / "coord.npy", coord[None])
    pts = coord.reshape(3, -1).T.astype(np.float64)
    diff = np.clip(np.asarray(albedo(pts), np.float64), 0, 1).reshape(coord_size, coord_size, 3)
    normal = pts - c
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    normal = ((normal + 1) / 2).reshape(coord_size, coord_size, 3)
    save_image(out / "diffuse.png", to_uint8(diff))
    save_image(out / "normal.png", to_uint8(normal))
    return {"dir": str(out), "vertices": len(verts), "faces": len(faces)}


def to_uint8(x: np.ndarray) -> np.ndarray:
    """torchvision ``save_image`` rounding: floor(255 x + 0.5) in float32."""
    return np.clip(np.asarray(x, np.float32) * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)


def write_eyeballs(
    out_dir: str | Path,
    centers: dict[str, np.ndarray],
    radius: float,
    cam2world: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    albedo: Callable[[str, np.ndarray], np.ndarray],
    beta: float = 0.0,
) -> dict:
    """Both eyeballs into ``out_dir/right`` (leye) and ``out_dir/left`` (reye), as CoRA's ``export_eyeball``.

    ``albedo(eye, points)`` gives linear RGB; ``beta`` is added to the radius (VolSDF backbones).
    """
    view = mean_ray_direction(K, size)
    views = np.einsum("fij,j->fi", np.asarray(cam2world)[:, :3, :3], view)
    return {
        eye: write_eyeball(
            Path(out_dir) / EXPORT_FOLDER[eye],
            centers[eye],
            radius + beta,
            views,
            lambda p, e=eye: albedo(e, p),
        )  # fmt: skip
        for eye in ("leye", "reye")
    }


def photo_albedo(subject, eye: str, center, points: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    """A texture source without a trainer: the mean linearised photo colour over the frames where the
    point faces the camera and projects inside that frame's eye mask (> 0.5); 0 where never seen."""
    from fk.cameras import Pose

    pts = np.asarray(points, np.float64)
    acc = np.zeros((len(pts), 3))
    cnt = np.zeros(len(pts))
    normal = pts - np.asarray(center)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    K = subject.K
    h, w = subject.size
    for frame in subject.frames:
        mask_path = subject.path(f"{eye}_mask", frame)
        if not mask_path.is_file():
            continue
        mask = subject.load(f"{eye}_mask", frame)[..., 0]
        image = subject.load("image", frame) ** gamma
        cam = Pose.from_cam2world(frame.cam2world).apply(pts)
        facing = (normal * (frame.cam2world[:3, 3] - pts)).sum(1) > 0
        z = np.maximum(cam[:, 2], 1e-9)
        col = np.rint(K[0, 0] * cam[:, 0] / z + K[0, 2]).astype(int)
        row = np.rint(K[1, 1] * cam[:, 1] / z + K[1, 2]).astype(int)
        ok = facing & (cam[:, 2] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        ok[ok] &= mask[row[ok], col[ok]] > 0.5
        acc[ok] += image[row[ok], col[ok]]
        cnt[ok] += 1
    return acc / np.maximum(cnt, 1)[:, None]
