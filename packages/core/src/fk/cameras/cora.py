"""CoRA / instant-ngp ``transforms.json`` cameras <-> fk's OpenCV cameras (numpy or torch).

Convention (cora.md §3):
- ``transform_matrix`` in ``transforms.json`` is an instant-ngp/NeRF cam2world: OpenGL camera axes
  (x right, y up, z back) with the world axes cycled. CoRA's reader ``nerf_matrix_to_ngp(scale=1)``
  turns it into an **OpenCV** cam2world: new rows = old rows (1, 2, 0), camera columns 1 and 2 negated.
  :func:`opencv_cam2world_from_ngp` is that map, :func:`ngp_from_opencv_cam2world` its exact inverse.
  ``transforms_aligned.json`` already stores OpenCV cam2worlds (no conversion).
- Intrinsics ``fl_x, fl_y, cx, cy`` are in pixel units whose pixel *edges* are integers: CoRA casts the
  ray of pixel (row i, column j) through ``(j - cx + 0.5) / fl_x``, and its rasteriser uses the normalised
  intrinsics ``(fl_x/W, fl_y/H, cx/W, cy/H)``. fk's pixel centres are integers, so fk's ``cx = cx_json - 0.5``
  (:func:`intrinsics_from_transforms`); then ``Intrinsics.normalized()`` is exactly CoRA's normalised K.
- Distortion (``k1, k2, p1, p2``) is written by agi2nerf but ignored by CoRA, and by fk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.cameras.pinhole import Intrinsics
from fk.geometry.shapes import check_shape

_NGP_ROWS = (1, 2, 0)  # nerf_matrix_to_ngp: new row k is old row _NGP_ROWS[k]


def _column_flip(m: Any) -> Any:
    flip = [1.0, -1.0, -1.0, 1.0]
    if isinstance(m, np.ndarray):
        return m * np.asarray(flip, dtype=m.dtype)
    return m * m.new_tensor(flip)


def opencv_cam2world_from_ngp(transform_matrix: Any) -> Any:
    """(*batch, 4, 4) ``transforms.json`` matrix -> OpenCV cam2world (CoRA's ``nerf_matrix_to_ngp(scale=1)``).

    Convention: rows (1, 2, 0) of the input become rows (0, 1, 2); columns 1 and 2 are negated; the last
    row is set to (0, 0, 0, 1). numpy in, numpy out (dtype kept); torch likewise.
    """
    check_shape(transform_matrix, "*batch 4 4", name="transform_matrix")
    m = transform_matrix
    rows = m[..., list(_NGP_ROWS), :]
    out = _column_flip(rows)
    if isinstance(m, np.ndarray):
        last = np.zeros_like(m[..., :1, :])
        last[..., 0, 3] = 1
        return np.concatenate([out, last], axis=-2)
    import torch

    last = torch.zeros_like(m[..., :1, :])
    last[..., 0, 3] = 1
    return torch.cat([out, last], dim=-2)


def ngp_from_opencv_cam2world(cam2world: Any) -> Any:
    """(*batch, 4, 4) OpenCV cam2world -> ``transforms.json`` matrix (inverse of ``opencv_cam2world_from_ngp``)."""
    check_shape(cam2world, "*batch 4 4", name="cam2world")
    flipped = _column_flip(cam2world[..., :3, :])
    inverse_rows = [0, 0, 0]
    for new, old in enumerate(_NGP_ROWS):
        inverse_rows[old] = new
    rows = flipped[..., inverse_rows, :]
    if isinstance(cam2world, np.ndarray):
        return np.concatenate([rows, cam2world[..., 3:, :]], axis=-2)
    import torch

    return torch.cat([rows, cam2world[..., 3:, :]], dim=-2)


def intrinsics_from_transforms(meta: dict[str, Any]) -> Intrinsics:
    """fk :class:`Intrinsics` (pixel centres at integers) from a ``transforms.json`` dict.

    Convention: ``cx = meta['cx'] - 0.5``, ``cy = meta['cy'] - 0.5`` (CoRA's +0.5 pixel centres);
    focal lengths and the size ``(w, h)`` are kept.
    """
    missing = [k for k in ("fl_x", "fl_y", "cx", "cy", "w", "h") if k not in meta]
    if missing:
        raise KeyError(f"transforms.json lacks {', '.join(missing)}")
    return Intrinsics(float(meta["fl_x"]), float(meta["fl_y"]), float(meta["cx"]) - 0.5, float(meta["cy"]) - 0.5,
                      int(meta["w"]), int(meta["h"]))  # fmt: skip


def transforms_intrinsics(intrinsics: Intrinsics) -> dict[str, Any]:
    """The ``transforms.json`` intrinsic keys (agi2nerf's) for fk ``intrinsics``; inverse of the above."""
    fx, fy = float(intrinsics.fx), float(intrinsics.fy)
    w, h = int(intrinsics.width), int(intrinsics.height)
    return {
        "camera_angle_x": float(2 * np.arctan(w / (2 * fx))), "camera_angle_y": float(2 * np.arctan(h / (2 * fy))),
        "fl_x": fx, "fl_y": fy, "cx": float(intrinsics.cx) + 0.5, "cy": float(intrinsics.cy) + 0.5,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "w": w, "h": h,
    }  # fmt: skip
