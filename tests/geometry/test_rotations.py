"""fk.geometry.rotations: round trips, gradcheck, convention pins, dtype/device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk import ShapeError
from fk.geometry import rotations as rot

ORDERS = ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"]


@pytest.fixture
def rotations64():
    return rot.random_rotations(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _elem(axis, a):
    c, s = np.cos(a), np.sin(a)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_random_rotations_are_proper(rotations64):
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    torch.testing.assert_close(rotations64 @ rotations64.transpose(1, 2), eye)
    torch.testing.assert_close(torch.det(rotations64), torch.ones(64, dtype=torch.float64))


def test_right_handed_pin():
    # +90 degrees about +z maps +x to +y (column vectors)
    r = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(r @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64))


def test_quaternion_order_pin():
    # (w, x, y, z): (0, 0, 0, 1) is a half turn about z; (1, 0, 0, 0) the identity
    half_z = rot.quaternion_to_matrix(torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
    torch.testing.assert_close(half_z, torch.diag(torch.tensor([-1.0, -1, 1], dtype=torch.float64)))
    torch.testing.assert_close(rot.quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0])), torch.eye(3))


def test_axis_angle_round_trip(rotations64):
    aa = rot.matrix_to_axis_angle(rotations64)
    assert (aa.norm(dim=-1) <= np.pi + 1e-12).all()
    torch.testing.assert_close(rot.axis_angle_to_matrix(aa), rotations64, atol=1e-12, rtol=0)
    small = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for scale in (1e-9, 1e-3, 1.0):
        v = small * scale
        v = v[v.norm(dim=-1) < np.pi - 1e-3]
        torch.testing.assert_close(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v)), v, atol=1e-12, rtol=1e-9)


def test_axis_angle_matches_naive_rodrigues():
    v = np.array([0.3, -1.2, 0.5])
    theta = np.linalg.norm(v)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / theta
    naive = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    np.testing.assert_allclose(rot.axis_angle_to_matrix(v), naive, atol=1e-15)


def test_quaternion_round_trip_up_to_sign(rotations64):
    q = rot.matrix_to_quaternion(rotations64)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(rot.quaternion_to_matrix(q), rotations64, atol=1e-12, rtol=0)
    q2 = torch.randn(64, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    q2 = q2 / q2.norm(dim=-1, keepdim=True)
    back = rot.matrix_to_quaternion(rot.quaternion_to_matrix(q2))
    torch.testing.assert_close(back, torch.where(q2[:, :1] < 0, -q2, q2), atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.axis_angle_to_quaternion(rot.quaternion_to_axis_angle(back)), back,
                               atol=1e-12, rtol=0)


def test_half_turns_are_stable():
    # trace = -1: the w-pivot vanishes; Shepperd must take another pivot
    for axis in np.eye(3):
        r = rot.axis_angle_to_matrix(np.pi * axis)
        np.testing.assert_allclose(rot.quaternion_to_matrix(rot.matrix_to_quaternion(r)), r, atol=1e-14)
        np.testing.assert_allclose(np.abs(rot.matrix_to_axis_angle(r)), np.pi * axis, atol=1e-7)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_naive_product_and_round_trips(order):
    rng = np.random.default_rng(3)
    angles = rng.uniform(-np.pi, np.pi, size=(64, 3))
    angles[:, 1] = rng.uniform(-np.pi / 2 + 0.05, np.pi / 2 - 0.05, size=64)  # away from gimbal lock
    mats = rot.euler_to_matrix(angles, order)
    a = angles[5]
    naive = _elem(order[2], a[2]) @ _elem(order[1], a[1]) @ _elem(order[0], a[0])
    np.testing.assert_allclose(mats[5], naive, atol=1e-15)
    np.testing.assert_allclose(rot.matrix_to_euler(mats, order), angles, atol=1e-10)


def test_euler_xyz_is_deep3d_order_pin():
    # "xyz" = Rz Ry Rx: x first. Turning x by +90 then z by +90 sends e_y to e_z (x) and keeps it (z).
    r = rot.euler_to_matrix(np.array([np.pi / 2, 0.0, np.pi / 2]), "xyz")
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    with pytest.raises(ValueError, match="permutation"):
        rot.euler_to_matrix(np.zeros(3), "xxy")


def test_numpy_in_numpy_out_and_dtype_follow():
    out = rot.axis_angle_to_matrix(np.array([0.1, 0.2, 0.3], dtype=np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    t = rot.axis_angle_to_matrix(torch.zeros(2, 3, dtype=torch.float32))
    assert t.dtype == torch.float32
    with pytest.raises(ShapeError, match=r"axis_angle: expected \(\*batch, 3\)"):
        rot.axis_angle_to_matrix(torch.zeros(2, 4))


def test_mixed_batch_shapes_broadcast():
    q = torch.randn(7, 3, 1, 4, dtype=torch.float64)
    assert rot.quaternion_to_matrix(q).shape == (7, 3, 1, 3, 3)
    assert rot.matrix_to_euler(rot.random_rotations(5).reshape(5, 1, 3, 3)).shape == (5, 1, 3)


def test_gradcheck():
    g = torch.Generator().manual_seed(4)
    aa = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    q = torch.randn(4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    eul = (0.5 * torch.randn(4, 3, dtype=torch.float64, generator=g)).requires_grad_()
    mats = rot.random_rotations(4, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (q,))
    assert torch.autograd.gradcheck(rot.euler_to_matrix, (eul,))
    assert torch.autograd.gradcheck(rot.matrix_to_quaternion, (mats,))
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (mats,))
    assert torch.autograd.gradcheck(rot.quaternion_to_axis_angle, (q,))


def test_gradients_finite_at_identity():
    aa = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    rot.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    eye = torch.eye(3, dtype=torch.float64, requires_grad=True)
    rot.matrix_to_axis_angle(eye).sum().backward()
    assert torch.isfinite(eye.grad).all()
    q = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64, requires_grad=True)
    rot.quaternion_to_axis_angle(q).sum().backward()
    assert torch.isfinite(q.grad).all()
    # an optimiser step from the identity moves toward a target rotation
    target = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64))
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    loss = (rot.axis_angle_to_matrix(v) - target).square().sum()
    loss.backward()
    assert v.grad[2] < 0 and torch.isfinite(v.grad).all()
