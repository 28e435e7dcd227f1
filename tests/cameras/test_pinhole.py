"""fk.cameras.pinhole: intrinsics, poses, projection and axis/NDC conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk.cameras import (
    Intrinsics,
    Pose,
    clip_from_cam,
    invert_pose_matrix,
    ndc_from_pixel,
    opencv_from_opengl_cam2world,
    opencv_from_opengl_points,
    pixel_from_ndc,
    project,
    project_points,
    unproject,
)
from fk.cameras import eg3d
from fk.geometry.rotations import axis_angle_to_matrix

K = np.array([[500.0, 0.0, 200.0], [0.0, 480.0, 150.0], [0.0, 0.0, 1.0]])


def test_opencv_frame_pins():
    # +x in the camera frame lands right of the principal point, +y below it
    px = project_points(np.array([[0.1, 0.0, 2.0], [0.0, 0.1, 2.0]]), K)
    np.testing.assert_allclose(px, [[225.0, 150.0], [200.0, 174.0]])


def test_opengl_camera_looks_down_minus_z():
    # a point straight ahead of an OpenGL camera has z < 0 there and z > 0 in OpenCV
    ahead_gl = np.array([0.0, 0.2, -3.0])  # and slightly *up* in OpenGL
    cv = opencv_from_opengl_points(ahead_gl)
    np.testing.assert_array_equal(cv, [0.0, -0.2, 3.0])  # up is -y in OpenCV
    assert project_points(cv[None], K)[0, 1] < K[1, 2]  # ... so it is above the principal point
    # cam2world: EG3D's frontal OpenCV camera at +z looking at the origin, in OpenGL axes, is the identity rotation
    frontal_cv = eg3d.lookat_cam2world(np.pi / 2, np.pi / 2, pivot=(0, 0, 0))
    gl = opencv_from_opengl_cam2world(frontal_cv)
    np.testing.assert_allclose(gl[:3, :3], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(opencv_from_opengl_cam2world(gl), frontal_cv, atol=0)


def test_intrinsics_matrix_and_normalised_round_trip():
    intr = Intrinsics.from_matrix(K, width=400, height=300)
    np.testing.assert_array_equal(intr.matrix, K)
    kn = intr.normalized()
    # pixel centre convention: cx = 199.5 would be the exact image centre of a 400-wide image
    np.testing.assert_allclose(kn, [[1.25, 0, 200.5 / 400], [0, 1.6, 150.5 / 300], [0, 0, 1]])
    back = Intrinsics.from_normalized(kn, 400, 300)
    np.testing.assert_allclose(back.matrix, K, atol=1e-12)
    centred = Intrinsics(1.0, 1.0, 199.5, 149.5, 400, 300).normalized()
    np.testing.assert_allclose(centred[:2, 2], [0.5, 0.5])


def test_resized_keeps_edges_aligned():
    intr = Intrinsics(100.0, 100.0, 63.5, 63.5, 128, 128).resized(256, 256)  # centre stays the centre
    assert (intr.cx, intr.cy, intr.fx) == (127.5, 127.5, 200.0)


def test_batched_intrinsics_torch():
    fx = torch.tensor([100.0, 200.0], dtype=torch.float64)
    m = Intrinsics(fx, fx, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 10, 10).matrix
    assert m.shape == (2, 3, 3) and m.dtype == torch.float64
    assert m[1, 0, 0] == 200.0 and m[1, 2, 2] == 1.0


def test_pose_round_trips():
    rng = np.random.default_rng(0)
    r = axis_angle_to_matrix(rng.normal(size=3))
    t = rng.normal(size=3)
    pose = Pose(r, t)
    c2w = pose.world_from_cam
    np.testing.assert_allclose(c2w @ pose.cam_from_world, np.eye(4), atol=1e-14)
    np.testing.assert_allclose(c2w[:3, 3], pose.center)
    np.testing.assert_allclose(Pose.from_cam2world(c2w).cam_from_world, pose.cam_from_world, atol=1e-14)
    np.testing.assert_allclose(invert_pose_matrix(invert_pose_matrix(c2w)), c2w, atol=1e-14)
    # the camera centre maps to the camera origin
    np.testing.assert_allclose(pose.apply(pose.center[None]), 0, atol=1e-14)
    world = rng.normal(size=(4, 3))
    np.testing.assert_allclose(pose.inverse().apply(pose.apply(world)), world, atol=1e-12)


def test_project_unproject_round_trip_and_naive():
    rng = np.random.default_rng(1)
    pts = np.c_[rng.normal(size=(64, 2)), rng.uniform(1, 5, size=64)]
    pix = project_points(pts, K)
    naive = np.array([(K @ p)[:2] / (K @ p)[2] for p in pts])
    np.testing.assert_allclose(pix, naive, atol=1e-12)
    np.testing.assert_allclose(unproject(pix, pts[:, 2], K), pts, atol=1e-12)
    pose = Pose(np.eye(3), np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(project(pts, K, pose), project_points(pts + [0, 0, 1], K))


def test_project_torch_gradients_and_dtype():
    pts = torch.tensor([[0.1, -0.2, 2.0]], dtype=torch.float64, requires_grad=True)
    kt = torch.from_numpy(K)
    assert torch.autograd.gradcheck(lambda p: project_points(p, kt), (pts,))
    assert project_points(pts.float(), kt.float()).dtype == torch.float32


def test_ndc_pins_and_round_trip():
    w, h = 4, 2
    # left edge of pixel 0 is -1; centre of the last column is 1 - 1/W; top row is y up (+)
    np.testing.assert_allclose(ndc_from_pixel(np.array([[-0.5, -0.5], [3.0, 1.0]]), w, h), [[-1, 1], [0.75, -0.5]])
    pts = np.random.default_rng(2).uniform(-0.5, 3.5, size=(10, 2))
    np.testing.assert_allclose(pixel_from_ndc(ndc_from_pixel(pts, w, h), w, h), pts, atol=1e-14)


def test_clip_from_cam_agrees_with_projection():
    rng = np.random.default_rng(3)
    pts = np.c_[rng.normal(size=(20, 2)), rng.uniform(1.5, 4, size=20)]
    clip = np.c_[pts, np.ones(20)] @ clip_from_cam(K, 400, 300, near=1.0, far=5.0).T
    ndc = clip[:, :3] / clip[:, 3:]
    np.testing.assert_allclose(ndc[:, :2], ndc_from_pixel(project_points(pts, K), 400, 300), atol=1e-12)
    z_near = (clip_from_cam(K, 400, 300, 1.0, 5.0) @ [0, 0, 1.0, 1])
    z_far = (clip_from_cam(K, 400, 300, 1.0, 5.0) @ [0, 0, 5.0, 1])
    assert z_near[2] / z_near[3] == pytest.approx(-1) and z_far[2] / z_far[3] == pytest.approx(1)
