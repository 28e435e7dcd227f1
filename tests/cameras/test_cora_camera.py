"""fk.cameras.cora: CoRA's transforms.json conventions (nerf_matrix_to_ngp(scale=1), +0.5 pixel centres)."""

from __future__ import annotations

import numpy as np
import torch
from fk.cameras import Intrinsics, Pose, project
from fk.cameras.cora import (
    intrinsics_from_transforms,
    ngp_from_opencv_cam2world,
    opencv_cam2world_from_ngp,
    transforms_intrinsics,
)

META = {"fl_x": 800.0, "fl_y": 800.0, "cx": 360.0, "cy": 480.0, "w": 720, "h": 960}


def _upstream_nerf_matrix_to_ngp(p):
    # cora.md §3.2 / render_uv_eye_mask.py, written out entry by entry (scale 1)
    return np.array([[p[1, 0], -p[1, 1], -p[1, 2], p[1, 3]],
                     [p[2, 0], -p[2, 1], -p[2, 2], p[2, 3]],
                     [p[0, 0], -p[0, 1], -p[0, 2], p[0, 3]],
                     [0, 0, 0, 1]])  # fmt: skip


def test_identity_ngp_matrix_pin():
    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    c2w = opencv_cam2world_from_ngp(m)
    # camera x is world +z, camera y (down) is world -x, camera z (forward) is world -y; centre (2, 3, 1)
    np.testing.assert_array_equal(c2w[:3, :3], [[0, -1, 0], [0, 0, -1], [1, 0, 0]])
    np.testing.assert_array_equal(c2w[:3, 3], [2.0, 3.0, 1.0])


def test_round_trip_and_matches_upstream_formula_numpy_and_torch():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 3, 3)))
    m = np.tile(np.eye(4), (5, 1, 1))
    m[:, :3, :3] = q
    m[:, :3, 3] = rng.normal(size=(5, 3))
    got = opencv_cam2world_from_ngp(m)
    for k in range(5):
        np.testing.assert_allclose(got[k], _upstream_nerf_matrix_to_ngp(m[k]), atol=0)
    np.testing.assert_allclose(ngp_from_opencv_cam2world(got), m, atol=1e-15)
    t = opencv_cam2world_from_ngp(torch.as_tensor(m))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), got)


def test_plus_half_pixel_centres_pin():
    intr = intrinsics_from_transforms(META)
    assert (intr.cx, intr.cy) == (359.5, 479.5)
    # CoRA's ray through pixel column j is (j - cx + 0.5) / fx: the ray straight ahead is column cx - 0.5
    pose = Pose(np.eye(3), np.zeros(3))
    px = project(np.array([[0.0, 0.0, 2.0], [0.1, -0.05, 1.0]]), intr.matrix, pose)
    np.testing.assert_allclose(px, [[359.5, 479.5], [359.5 + 80.0, 479.5 - 40.0]])
    # CoRA's rasteriser's normalised intrinsics (fx/W, fy/H, cx/W, cy/H) are fk's normalised ones
    np.testing.assert_allclose(intr.normalized(), [[800 / 720, 0, 0.5], [0, 800 / 960, 0.5], [0, 0, 1]])
    back = transforms_intrinsics(intr)
    assert {k: back[k] for k in META} == META
    assert isinstance(Intrinsics, type)
