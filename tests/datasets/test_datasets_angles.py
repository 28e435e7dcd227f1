"""LPFF's paper angles and EG3D's LookAt (h, v), from the one EG3D camera module (fk.cameras.eg3d)."""
import numpy as np
import pytest
from fk.cameras.eg3d import camera_centers, centers_from_lookat_hv, lookat_hv_from_centers
from fk.cameras.eg3d import centers_from_lpff_theta_phi as centers_from_theta_phi
from fk.cameras.eg3d import lpff_theta_phi_from_centers as theta_phi_from_centers
from fk.cameras.eg3d import lpff_theta_phi_from_label as theta_phi_from_labels
from fk.cameras.eg3d import mirror_label as mirror_labels
from fk.errors import ShapeError

from .conftest import lookat_label


def test_pin_against_lpff_kde_sample():
    # FFHQ-EG3D label of 00023.png (EG3D issue #65) is sample #46 of LPFF's kde.pkl:
    # (theta, phi) = (1.570233, 1.575261) in its paper parameterisation.
    theta, phi = theta_phi_from_centers(np.array([[0.00152, -0.01205, 2.69997]]))
    assert theta[0] == pytest.approx(1.570233, abs=2e-6)
    assert phi[0] == pytest.approx(1.575261, abs=2e-6)


def test_pin_directions_are_asymmetric():
    # Camera on the +x side and above: theta < pi/2, phi < pi/2 (looking down).
    theta, phi = theta_phi_from_centers(np.array([[1.0, 0.5, 2.0]]))
    assert theta[0] == pytest.approx(np.arccos(1.0 / np.sqrt(5.25)))
    assert phi[0] == pytest.approx(np.arctan2(2.0, 0.5))
    assert theta[0] < np.pi / 2 and phi[0] < np.pi / 2


def test_round_trip_theta_phi(rng):
    theta = rng.uniform(0.2, np.pi - 0.2, 64)
    phi = rng.uniform(0.3, np.pi - 0.3, 64)
    c = centers_from_theta_phi(theta, phi, radius=2.7)
    np.testing.assert_allclose(np.linalg.norm(c, axis=-1), 2.7)
    t2, p2 = theta_phi_from_centers(c)
    np.testing.assert_allclose(t2, theta, atol=1e-12)
    np.testing.assert_allclose(p2, phi, atol=1e-12)


def test_labels_use_the_camera_translation_column(rng):
    theta = rng.uniform(1.0, 2.0, 8)
    phi = rng.uniform(1.2, 1.8, 8)
    labels = lookat_label(theta, phi)
    np.testing.assert_allclose(camera_centers(labels), centers_from_theta_phi(theta, phi), atol=1e-12)
    t2, p2 = theta_phi_from_labels(labels)
    np.testing.assert_allclose(t2, theta, atol=1e-12)
    np.testing.assert_allclose(p2, phi, atol=1e-12)


def test_lookat_hv_round_trip_and_frontal(rng):
    np.testing.assert_allclose(centers_from_lookat_hv(np.pi / 2, np.pi / 2), [0, 0, 2.7], atol=1e-12)
    h = rng.uniform(1.0, 2.1, 32)
    v = rng.uniform(1.0, 2.1, 32)
    h2, v2 = lookat_hv_from_centers(centers_from_lookat_hv(h, v))
    np.testing.assert_allclose(h2, h, atol=1e-12)
    np.testing.assert_allclose(v2, v, atol=1e-12)
    # h > pi/2 moves the camera toward +x (EG3D's LookAtPoseSampler)
    assert centers_from_lookat_hv(np.pi / 2 + 0.3, np.pi / 2)[0] > 0


def test_mirror_flips_theta_keeps_phi_and_is_an_involution(rng):
    theta = rng.uniform(0.8, 2.3, 16)
    phi = rng.uniform(1.2, 1.8, 16)
    labels = lookat_label(theta, phi)
    m = mirror_labels(labels)
    t2, p2 = theta_phi_from_labels(m)
    np.testing.assert_allclose(t2, np.pi - theta, atol=1e-12)
    np.testing.assert_allclose(p2, phi, atol=1e-12)
    np.testing.assert_array_equal(mirror_labels(m), labels)
    np.testing.assert_array_equal(m[:, 16:], labels[:, 16:])
    # flip_yaw equals F P F with F = diag(-1, 1, 1, 1)
    f = np.diag([-1.0, 1, 1, 1])
    expect = (f @ labels[:, :16].reshape(-1, 4, 4) @ f).reshape(-1, 16)
    np.testing.assert_array_equal(m[:, :16], expect)
    # a mirrored rotation is still a rotation
    r = m[:, :16].reshape(-1, 4, 4)[:, :3, :3]
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_bad_label_shape_names_the_problem():
    with pytest.raises(ShapeError, match="label"):
        theta_phi_from_labels(np.zeros((3, 24)))
