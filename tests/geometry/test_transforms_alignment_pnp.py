"""fk.geometry.transforms, alignment (Umeyama, robust 2D similarity) and solve_pnp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk.geometry import rotations as rot
from fk.geometry import transforms as tf
from fk.geometry.alignment import fit_similarity_2d, umeyama
from fk.geometry.pnp import solve_pnp

K = np.array([[800.0, 0.0, 320.0], [0.0, 780.0, 240.0], [0.0, 0.0, 1.0]])


def _random_pose(seed):
    rng = np.random.default_rng(seed)
    r = rot.axis_angle_to_matrix(rng.normal(scale=0.5, size=3))
    t = np.array([rng.normal(scale=0.2), rng.normal(scale=0.2), 4.0 + rng.uniform()])
    return r, t


def _project(points, r, t):
    cam = points @ r.T + t
    p = cam @ K.T
    return p[:, :2] / p[:, 2:]


def test_apply_invert_compose_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    r, t = _random_pose(1)
    pts = rng.normal(size=(10, 3))
    out = tf.apply_rigid(r, t, pts)
    np.testing.assert_allclose(out, np.array([r @ p + t for p in pts]), atol=1e-14)  # naive loop
    ri, ti = tf.invert_rigid(r, t)
    np.testing.assert_allclose(tf.apply_rigid(ri, ti, out), pts, atol=1e-13)
    rc, tc = tf.compose_rigid(ri, ti, r, t)
    np.testing.assert_allclose(rc, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(tc, 0, atol=1e-14)
    rt, tt, pt = torch.from_numpy(r), torch.from_numpy(t), torch.from_numpy(pts)
    torch.testing.assert_close(tf.apply_rigid(rt, tt, pt), torch.from_numpy(out))


def test_matrix_helpers():
    r, t = _random_pose(2)
    m = tf.to_matrix(r, t)
    np.testing.assert_array_equal(m[3], [0, 0, 0, 1])
    r2, t2 = tf.from_matrix(m)
    np.testing.assert_array_equal(r2, r)
    np.testing.assert_array_equal(t2, t)
    pts = np.random.default_rng(3).normal(size=(5, 3))
    np.testing.assert_allclose(tf.transform_points(m, pts), tf.apply_rigid(r, t, pts), atol=1e-14)
    mt = tf.to_matrix(torch.from_numpy(r).expand(4, 3, 3), torch.from_numpy(t))
    assert mt.shape == (4, 4, 4) and mt.dtype == torch.float64


def test_homogeneous_round_trip_and_w_zero():
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(tf.from_homogeneous(tf.to_homogeneous(x)), x)
    h = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, -0.0]], dtype=torch.float64, requires_grad=True)
    out = tf.from_homogeneous(h)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(h.grad).all()


def test_umeyama_exact_2d_and_3d_and_batched():
    rng = np.random.default_rng(4)
    for dim in (2, 3):
        src = rng.normal(size=(20, dim))
        r = rot.axis_angle_to_matrix(rng.normal(size=3))[:dim, :dim] if dim == 3 else None
        if dim == 2:
            a = 0.7
            r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        dst = 1.7 * src @ r.T + rng.normal(size=dim)
        s, r_fit, t_fit = umeyama(src, dst)
        assert s == pytest.approx(1.7, abs=1e-12)
        np.testing.assert_allclose(r_fit, r, atol=1e-12)
        np.testing.assert_allclose(s * src @ r_fit.T + t_fit, dst, atol=1e-12)
    # never a reflection: a mirrored target gives det(R) = +1
    src = rng.normal(size=(10, 3))
    _, r_m, _ = umeyama(src, src * [-1, 1, 1])
    assert np.linalg.det(r_m) == pytest.approx(1.0)
    src_b = torch.randn(4, 10, 3, dtype=torch.float64)
    s_b, r_b, t_b = umeyama(src_b, 2 * src_b + 1)
    torch.testing.assert_close(s_b, torch.full((4,), 2.0, dtype=torch.float64))


def test_fit_similarity_2d_robust_ignores_outliers():
    rng = np.random.default_rng(5)
    src = rng.uniform(0, 100, size=(68, 2))
    a, s, t = 0.2, 1.3, np.array([5.0, -3.0])
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = s * src @ r.T + t + rng.normal(scale=0.1, size=src.shape)
    dst[:6] += rng.uniform(30, 60, size=(6, 2))  # six badly misplaced landmarks
    expected = np.c_[s * r, t]
    robust = fit_similarity_2d(src, dst, robust=True)
    plain = fit_similarity_2d(src, dst)
    assert np.abs(robust - expected).max() < 0.05
    assert np.abs(plain - expected).max() > 0.5  # least squares is pulled away
    exact = fit_similarity_2d(src[6:], s * src[6:] @ r.T + t)
    np.testing.assert_allclose(exact, expected, atol=1e-10)


def test_solve_pnp_exact_without_noise():
    rng = np.random.default_rng(6)
    for seed in range(5):
        r, t = _random_pose(seed)
        world = rng.normal(scale=0.5, size=(12, 3))
        r_est, t_est = solve_pnp(world, _project(world, r, t), K)
        np.testing.assert_allclose(r_est, r, atol=1e-6)
        np.testing.assert_allclose(t_est, t, atol=1e-6)


def test_solve_pnp_planar_points():
    rng = np.random.default_rng(7)
    r, t = _random_pose(8)
    world = np.c_[rng.uniform(-1, 1, size=(8, 2)), np.zeros(8)] @ rot.axis_angle_to_matrix(np.array([0.3, 0.1, 0])).T
    r_est, t_est = solve_pnp(world, _project(world, r, t), K)
    np.testing.assert_allclose(r_est, r, atol=1e-6)
    np.testing.assert_allclose(t_est, t, atol=1e-6)


def test_solve_pnp_with_noise_and_outliers():
    rng = np.random.default_rng(9)
    r, t = _random_pose(10)
    world = rng.normal(scale=0.5, size=(68, 3))
    pix = _project(world, r, t) + rng.normal(scale=0.5, size=(68, 2))
    r_est, t_est = solve_pnp(world, pix, K)
    angle_err = np.linalg.norm(rot.matrix_to_axis_angle(r_est @ r.T))
    assert angle_err < np.deg2rad(0.5)
    assert np.linalg.norm(t_est - t) < 0.05
    pix[:5] += 80.0  # five gross outliers
    r_rob, _ = solve_pnp(world, pix, K, loss="soft_l1", f_scale=2.0)
    assert np.linalg.norm(rot.matrix_to_axis_angle(r_rob @ r.T)) < np.deg2rad(0.5)


def test_solve_pnp_points_in_front_and_errors():
    r, t = _random_pose(11)
    world = np.random.default_rng(12).normal(scale=0.5, size=(8, 3))
    r_est, t_est = solve_pnp(world, _project(world, r, t), K)
    assert ((world @ r_est.T + t_est)[:, 2] > 0).all()
    with pytest.raises(ValueError, match="at least 4"):
        solve_pnp(world[:3], _project(world[:3], r, t), K)


@pytest.mark.parametrize("planar", [False, True])
def test_pnp_linear_initialisers_are_exact_on_their_own(planar):
    from fk.geometry import pnp

    rng = np.random.default_rng(13)
    r, t = _random_pose(14)
    world = rng.normal(scale=0.5, size=(10, 3))
    if planar:
        world[:, 2] = 0.0
        world = world @ rot.axis_angle_to_matrix(np.array([0.3, 0.1, 0.0])).T
    rays = (np.c_[_project(world, r, t), np.ones(10)] @ np.linalg.inv(K).T)[:, :2]
    r0, t0 = (pnp._planar if planar else pnp._dlt)(world, rays)
    np.testing.assert_allclose(r0, r, atol=1e-9)
    np.testing.assert_allclose(t0, t, atol=1e-9)
