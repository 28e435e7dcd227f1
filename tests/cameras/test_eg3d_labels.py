"""fk.cameras.eg3d: label layout, LookAt poses, (theta, phi) inverses, mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from fk.cameras import eg3d
from fk.errors import ShapeError

HALF_PI = np.pi / 2


def test_label_layout_pin():
    # cam2world row-major first (translation at 3, 7, 11), then intrinsics row-major.
    c2w = np.arange(16, dtype=float).reshape(4, 4)
    k = np.arange(100, 109, dtype=float).reshape(3, 3)
    label = eg3d.encode_label(c2w, k)
    assert label.shape == (25,)
    assert label[3] == c2w[0, 3] and label[7] == c2w[1, 3] and label[11] == c2w[2, 3]
    assert label[16] == k[0, 0] and label[18] == k[0, 2] and label[21] == k[1, 2]
    back_c2w, back_k = eg3d.decode_label(label)
    np.testing.assert_array_equal(back_c2w, c2w)
    np.testing.assert_array_equal(back_k, k)


def test_encode_broadcasts_and_checks_shapes():
    c2w = np.broadcast_to(np.eye(4), (7, 3, 4, 4))
    labels = eg3d.encode_label(c2w, eg3d.normalized_intrinsics())
    assert labels.shape == (7, 3, 25)
    np.testing.assert_array_equal(labels[..., 16:], np.broadcast_to([4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], (7, 3, 9)))
    with pytest.raises(ShapeError, match=r"cam2world: expected \(\*batch, 4, 4\), got \(3, 4\)"):
        eg3d.encode_label(np.zeros((3, 4)), np.eye(3))
    with pytest.raises(ShapeError, match=r"label: expected \(\*batch, 25\)"):
        eg3d.decode_label(np.zeros(24))


def test_frontal_lookat_is_the_canonical_camera():
    # Derived by hand from LookAtPoseSampler: h = v = pi/2 gives p = pi/2, centre (0, 0, r);
    # forward = (0, 0, -1); right = -(up0 x forward) = (1, 0, 0); down = forward x right = (0, -1, 0).
    c2w = eg3d.lookat_cam2world(HALF_PI, HALF_PI, radius=2.7, pivot=(0, 0, 0))
    expected = np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(c2w, expected, atol=1e-15)


def test_lookat_direction_pins():
    # theta > pi/2 moves the camera toward world +x: x = r cos(pi - h) = r sin(0.3).
    c2w = eg3d.lookat_cam2world(HALF_PI + 0.3, HALF_PI, pivot=(0, 0, 0))
    np.testing.assert_allclose(c2w[:3, 3], [2.7 * np.sin(0.3), 0, 2.7 * np.cos(0.3)], atol=1e-12)
    # phi = pi/4: cos p = 1 - 2 (pi/4) / pi = 1/2, so the camera is above the face at y = r/2.
    c2w = eg3d.lookat_cam2world(HALF_PI, np.pi / 4, pivot=(0, 0, 0))
    np.testing.assert_allclose(c2w[:3, 3], [0, 2.7 * 0.5, 2.7 * np.sqrt(0.75)], atol=1e-12)
    # the camera looks at the pivot: forward column is the unit vector toward it
    pivot = np.array([0.0, 0.0, 0.2])
    c2w = eg3d.lookat_cam2world(1.1, 1.9, pivot=pivot)
    to_pivot = pivot - c2w[:3, 3]
    np.testing.assert_allclose(c2w[:3, 2], to_pivot / np.linalg.norm(to_pivot), atol=1e-12)
    # the rotation is proper and orthonormal
    np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)


def test_theta_phi_round_trip_exact_over_valid_range():
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.05, np.pi - 0.05, size=500)
    phi = rng.uniform(1e-4, np.pi - 1e-4, size=500)
    for radius, pivot in ((2.7, (0, 0, 0.2)), (1.3, (0.1, -0.2, 0.3))):
        labels = eg3d.label_from_lookat_hv(theta, phi, radius=radius, pivot=pivot)
        back_theta, back_phi = eg3d.lookat_hv_from_label(labels)
        np.testing.assert_allclose(back_theta, theta, rtol=0, atol=1e-9)
        np.testing.assert_allclose(back_phi, phi, rtol=0, atol=1e-9)


def test_label_from_theta_phi_intrinsics_and_radius():
    label = eg3d.label_from_lookat_hv(1.2, 1.4, focal=5.0)
    _, k = eg3d.decode_label(label)
    np.testing.assert_array_equal(k, [[5, 0, 0.5], [0, 5, 0.5], [0, 0, 1]])
    assert np.linalg.norm(eg3d.camera_centers(label)) == pytest.approx(2.7)


def test_mirror_twice_is_identity_and_matches_f_p_f():
    rng = np.random.default_rng(1)
    labels = eg3d.label_from_lookat_hv(rng.uniform(0.5, 2.5, 20), rng.uniform(0.8, 2.2, 20))
    np.testing.assert_array_equal(eg3d.mirror_label(eg3d.mirror_label(labels)), labels)
    flip = np.diag([-1.0, 1, 1, 1])
    c2w, k = eg3d.decode_label(labels)
    expected = eg3d.encode_label(flip @ c2w @ flip, k)
    np.testing.assert_allclose(eg3d.mirror_label(labels), expected, atol=0)


def test_mirror_maps_theta_to_pi_minus_theta_and_keeps_phi():
    theta, phi = 1.2, 1.3
    label = eg3d.label_from_lookat_hv(theta, phi)  # pivot (0, 0, 0.2) is on the mirror plane
    mirrored = eg3d.mirror_label(label)
    # Hand check: the centre's x flips sign, y and z stay.
    c, cm = eg3d.camera_centers(label), eg3d.camera_centers(mirrored)
    np.testing.assert_array_equal(cm, c * [-1, 1, 1])
    t_m, p_m = eg3d.lookat_hv_from_label(mirrored)
    assert t_m == pytest.approx(np.pi - theta, abs=1e-12)
    assert p_m == pytest.approx(phi, abs=1e-12)
    # ... and it is exactly the LookAt camera at (pi - theta, phi), rotation included
    np.testing.assert_allclose(mirrored, eg3d.label_from_lookat_hv(np.pi - theta, phi), atol=1e-12)
    pt, pp = eg3d.lpff_theta_phi_from_label(label)
    pt_m, pp_m = eg3d.lpff_theta_phi_from_label(mirrored)
    assert pt_m == pytest.approx(np.pi - pt) and pp_m == pytest.approx(pp)


def test_paper_angles_of_the_eg3d_issue_65_label():
    # lpff.md §1.6: FFHQ-EG3D 00023.png has C = (0.00152, -0.01205, 2.69997); the LPFF KDE
    # stores its paper angles as (1.570233, 1.575261).
    label = eg3d.encode_label(np.eye(4), np.eye(3))
    label[[3, 7, 11]] = (0.00152, -0.01205, 2.69997)
    theta, phi = eg3d.lpff_theta_phi_from_label(label)
    assert theta == pytest.approx(1.570233, abs=2e-6)
    assert phi == pytest.approx(1.575261, abs=2e-6)
    np.testing.assert_allclose(eg3d.centers_from_lpff_theta_phi(theta, phi, radius=np.linalg.norm(label[[3, 7, 11]])),
                               label[[3, 7, 11]], atol=1e-12)


def test_paper_vs_lookat_angles_differ_as_documented():
    # zero pitch: LookAt h = pi - paper theta; phi = pi/2 in both
    label = eg3d.label_from_lookat_hv(HALF_PI + 0.4, HALF_PI)
    h, v = eg3d.lookat_hv_from_label(label)
    theta, phi = eg3d.lpff_theta_phi_from_label(label)
    assert theta == pytest.approx(np.pi - h) and phi == pytest.approx(HALF_PI) and v == pytest.approx(HALF_PI)
    # pitch: v = pi/2 - 0.3 is a true elevation of about 0.19 rad (lpff.md §5, derived there)
    _, phi = eg3d.lpff_theta_phi_from_label(eg3d.label_from_lookat_hv(HALF_PI, HALF_PI - 0.3))
    assert phi == pytest.approx(HALF_PI - 0.19, abs=0.01)


def test_vectorised_over_leading_dims():
    theta = np.full((4, 5), 1.3)
    phi = np.linspace(0.5, 2.5, 5)
    labels = eg3d.label_from_lookat_hv(theta, phi)
    assert labels.shape == (4, 5, 25)
    t, p = eg3d.lookat_hv_from_label(labels)
    assert t.shape == p.shape == (4, 5)
    np.testing.assert_allclose(p[2], phi, atol=1e-12)
