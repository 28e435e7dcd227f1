"""fk.cameras.deep3d: the projection's y-up convention and the EG3D label recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk.cameras import deep3d, eg3d


def test_constants():
    assert (deep3d.FOCAL, deep3d.CENTER, deep3d.CAMERA_DISTANCE) == (1015.0, 112.0, 10.0)


def test_projection_is_y_up_and_image_rows_flip():
    cam = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 10.0]])
    uv = deep3d.project_deep3d(cam)
    # 1015 * 1 / 10 + 112 = 213.5
    np.testing.assert_allclose(uv, [[213.5, 112.0], [112.0, 213.5]])
    # a point above the axis (y up) lands near the top of the image: row 223 - 213.5 = 9.5
    np.testing.assert_allclose(deep3d.image_from_deep3d_pixels(uv), [[213.5, 111.0], [112.0, 9.5]])
    np.testing.assert_allclose(deep3d.image_from_deep3d_pixels(deep3d.image_from_deep3d_pixels(uv)), uv)


def test_k_landmarks_equals_deep3d_projection_on_opencv_coordinates():
    rng = np.random.default_rng(0)
    world = rng.normal(scale=0.8, size=(50, 3))
    cam = deep3d.to_camera(world)
    np.testing.assert_allclose(cam[:, 2], 10.0 - world[:, 2])
    cv = deep3d.opencv_from_deep3d_camera(cam)
    proj = cv @ deep3d.K_LANDMARKS.T
    pix = proj[:, :2] / proj[:, 2:]
    np.testing.assert_allclose(pix, deep3d.image_from_deep3d_pixels(deep3d.project_deep3d(cam)), atol=1e-10)


def test_torch_inputs_keep_dtype():
    cam = torch.tensor([[0.5, -0.25, 9.0]], dtype=torch.float64, requires_grad=True)
    uv = deep3d.project_deep3d(deep3d.to_camera(cam))
    assert uv.dtype == torch.float64
    uv.sum().backward()
    assert torch.isfinite(cam.grad).all()


def test_rotation_order_pin():
    # M = Rz Ry Rx: rotating x by pi/2 then z by pi/2 sends e_y -> e_z (by x) -> e_z (z keeps it);
    # the other order (Rx Rz) would send e_y -> -e_x -> -e_x.
    m = deep3d.rotation_from_angles(np.array([np.pi / 2, 0.0, np.pi / 2]))
    np.testing.assert_allclose(m @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    # +y angle turns the nose (+z) toward +x
    np.testing.assert_allclose(deep3d.rotation_from_angles(np.array([0, 0.3, 0])) @ [0, 0, 1],
                               [np.sin(0.3), 0, np.cos(0.3)], atol=1e-12)


def test_eg3d_label_of_the_identity_pose_by_hand():
    label = deep3d.eg3d_label_from_deep3d(np.zeros(3), np.zeros(3))
    # C = -R (0, 0, -10) = (0, 0, 10); 0.27 C + (0, 0.006, 0.161) = (0, 0.006, 2.861); radius 2.7
    c = np.array([0.0, 0.006, 2.861])
    c = 2.7 * c / np.sqrt(0.006**2 + 2.861**2)
    expected = np.array([[1, 0, 0, c[0]], [0, -1, 0, c[1]], [0, 0, -1, c[2]], [0, 0, 0, 1]])
    np.testing.assert_allclose(label[:16].reshape(4, 4), expected, atol=1e-15)
    np.testing.assert_array_equal(label[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1])


def test_eg3d_label_of_a_yawed_and_shifted_pose_by_hand():
    beta = 0.4
    trans = np.array([0.2, -0.1, 0.5])
    label = deep3d.eg3d_label_from_deep3d(np.array([0.0, beta, 0.0]), trans)
    # M = Ry(beta), R = M^T = Ry(-beta); C = -Ry(-beta) (trans - (0, 0, 10))
    ry_minus = np.array([[np.cos(beta), 0, -np.sin(beta)], [0, 1, 0], [np.sin(beta), 0, np.cos(beta)]])
    c = -ry_minus @ (trans - [0, 0, 10])
    c = 0.27 * c + [0, 0.006, 0.161]
    c = 2.7 * c / np.linalg.norm(c)
    c2w, _ = eg3d.decode_label(label)
    np.testing.assert_allclose(c2w[:3, 3], c, atol=1e-14)
    np.testing.assert_allclose(c2w[:3, :3], ry_minus @ np.diag([1, -1, -1]), atol=1e-15)
    # the face turned toward +x, so the camera sits on its -x side: LookAt theta < pi/2
    theta, _ = eg3d.lookat_hv_from_label(label)
    assert c[0] < 0 and theta < np.pi / 2


def test_eg3d_label_vectorised_matches_loop():
    rng = np.random.default_rng(2)
    angle = rng.normal(scale=0.3, size=(6, 2, 3))
    trans = rng.normal(scale=0.2, size=(6, 2, 3))
    batch = deep3d.eg3d_label_from_deep3d(angle, trans)
    assert batch.shape == (6, 2, 25)
    for i in range(6):
        for j in range(2):
            np.testing.assert_allclose(batch[i, j], deep3d.eg3d_label_from_deep3d(angle[i, j], trans[i, j]), atol=0)


def test_lpff_readme_example_radius():
    # lpff.md §1.5: every label's camera centre lies at radius 2.7
    rng = np.random.default_rng(3)
    labels = deep3d.eg3d_label_from_deep3d(rng.normal(scale=0.5, size=(20, 3)), rng.normal(scale=0.3, size=(20, 3)))
    np.testing.assert_allclose(np.linalg.norm(eg3d.camera_centers(labels), axis=-1), 2.7, atol=1e-12)
    rot = labels[:, :16].reshape(20, 4, 4)[:, :3, :3]
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
