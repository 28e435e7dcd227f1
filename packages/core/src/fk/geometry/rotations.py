"""Rotation representations and conversions (torch; numpy inputs are converted and returned as numpy).

Convention (all functions):
- column vectors: ``R @ x`` rotates x; matrices are (*batch, 3, 3);
- radians; right-handed: +angle about +z maps +x toward +y;
- axis-angle (*batch, 3) = angle * unit axis, angle in [0, pi] on output;
- quaternions (*batch, 4) = (w, x, y, z), real part first; inputs are normalised,
  outputs have w >= 0 (q and -q are the same rotation);
- Euler angles (*batch, 3) = (a, b, c) about the **fixed** axes named by ``order``,
  applied in that order: order "xyz" means R = Rz(c) · Ry(b) · Rx(a) (Deep3D's
  ``angle``); any of the six Tait-Bryan orders is accepted.
- dtype and device follow the input; gradients are finite at the identity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fk.geometry.shapes import check_shape

_AXIS = {"x": 0, "y": 1, "z": 2}


def _numpy_in_numpy_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Let a torch function take numpy arrays (float64 kept) and give numpy back."""

    @functools.wraps(fn)
    def wrapper(x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, np.ndarray):
            out = fn(torch.from_numpy(np.asarray(x, dtype=np.float64 if x.dtype.kind != "f" else x.dtype)),
                     *args, **kwargs)  # fmt: skip
            return tuple(o.numpy() for o in out) if isinstance(out, tuple) else out.numpy()
        return fn(x, *args, **kwargs)

    return wrapper


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(*batch, 3) -> (*batch, 3, 3) cross-product matrix [v]x, so [v]x @ w = v x w."""
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*v.shape[:-1], 3, 3)


@_numpy_in_numpy_out
def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (*batch, 3) axis-angle -> (*batch, 3, 3) rotation matrix.

    Convention: R = I + (sin t / t) K + ((1 - cos t) / t^2) K^2 with K = [v]x, t = |v|;
    Taylor series near t = 0 keep the value and gradient finite there.
    """
    check_shape(axis_angle, "*batch 3", name="axis_angle")
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


@_numpy_in_numpy_out
def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(*batch, 4) quaternion (w, x, y, z), normalised here -> (*batch, 3, 3).

    Convention: (1, 0, 0, 0) is the identity; (0, 0, 0, 1) is a half turn about z.
    """
    check_shape(quaternion, "*batch 4", name="quaternion")
    q = quaternion / quaternion.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


@_numpy_in_numpy_out
def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(*batch, 3, 3) rotation -> (*batch, 4) unit quaternion (w, x, y, z) with w >= 0.

    Convention: Shepperd's method: of the four ways to solve for q, each element uses
    the one with the largest pivot (|w|, |x|, |y| or |z|, at least 1/2), so it is
    stable for every rotation, half turns included.
    """
    check_shape(matrix, "*batch 3 3", name="matrix")
    m = matrix
    r00, r01, r02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    r10, r11, r12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    r20, r21, r22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    four_sq = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)
    # 2|q_i| per candidate; clamped so the unused candidates never divide by ~0
    two_abs = torch.sqrt(torch.clamp(four_sq, min=1e-12))
    denom = torch.clamp(two_abs, min=0.1)
    cand = torch.stack(
        [
            torch.stack([two_abs[..., 0] ** 2, r21 - r12, r02 - r20, r10 - r01], -1) / (2 * denom[..., 0:1]),
            torch.stack([r21 - r12, two_abs[..., 1] ** 2, r01 + r10, r02 + r20], -1) / (2 * denom[..., 1:2]),
            torch.stack([r02 - r20, r01 + r10, two_abs[..., 2] ** 2, r12 + r21], -1) / (2 * denom[..., 2:3]),
            torch.stack([r10 - r01, r02 + r20, r12 + r21, two_abs[..., 3] ** 2], -1) / (2 * denom[..., 3:4]),
        ],
        -2,
    )  # (*batch, 4 candidates, 4)
    best = four_sq.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@_numpy_in_numpy_out
def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """(*batch, 4) (w, x, y, z) -> (*batch, 3) axis-angle with angle in [0, pi]."""
    check_shape(quaternion, "*batch 4", name="quaternion")
    q = quaternion / quaternion.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    s2 = (v * v).sum(-1)
    small = s2 < 1e-12
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    # angle / sin(angle/2) with angle = 2 atan2(s, w); near 0 it tends to 2 / w
    factor = torch.where(small, 2.0 / w - (2.0 / 3.0) * s2 / w**3, 2.0 * torch.atan2(s, w) / s)
    return v * factor[..., None]


@_numpy_in_numpy_out
def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(*batch, 3) axis-angle -> (*batch, 4) (w, x, y, z) = (cos t/2, sin(t/2) axis)."""
    check_shape(axis_angle, "*batch 3", name="axis_angle")
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    half_sinc = torch.where(small, 0.5 - theta2 / 48.0, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1.0 - theta2 / 8.0, torch.cos(theta / 2))
    return torch.cat([w[..., None], axis_angle * half_sinc[..., None]], -1)


@_numpy_in_numpy_out
def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(*batch, 3, 3) -> (*batch, 3) axis-angle, angle in [0, pi] (through the quaternion)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def _check_order(order: str) -> tuple[int, int, int]:
    if len(order) != 3 or set(order) != {"x", "y", "z"}:
        raise ValueError(f"order: expected a permutation of 'xyz' (Tait-Bryan), got {order!r}")
    return _AXIS[order[0]], _AXIS[order[1]], _AXIS[order[2]]


def _elementary(axis: int, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        flat = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        flat = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        flat = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(flat, -1).reshape(*angle.shape, 3, 3)


@_numpy_in_numpy_out
def euler_to_matrix(angles: torch.Tensor, order: str = "xyz") -> torch.Tensor:
    """(*batch, 3) Euler angles -> (*batch, 3, 3).

    Convention: angles[..., k] turns about fixed axis ``order[k]``, first k = 0:
    R = R_{order[2]}(angles[2]) · R_{order[1]}(angles[1]) · R_{order[0]}(angles[0]).
    "xyz" gives Deep3D's M = Rz·Ry·Rx. (Equivalently intrinsic rotations in reverse order.)
    """
    check_shape(angles, "*batch 3", name="angles")
    i, j, k = _check_order(order)
    return _elementary(k, angles[..., 2]) @ _elementary(j, angles[..., 1]) @ _elementary(i, angles[..., 0])


@_numpy_in_numpy_out
def matrix_to_euler(matrix: torch.Tensor, order: str = "xyz") -> torch.Tensor:
    """(*batch, 3, 3) -> (*batch, 3) Euler angles, inverse of :func:`euler_to_matrix`.

    Convention: the middle angle is in [-pi/2, pi/2], the others in (-pi, pi]. At
    gimbal lock (middle angle +-pi/2) the split between the outer angles is arbitrary.
    """
    check_shape(matrix, "*batch 3 3", name="matrix")
    i, j, k = _check_order(order)
    # +1 for cyclic orders (xyz, yzx, zxy), -1 for the others
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    m = matrix
    middle = torch.asin(torch.clamp(-sign * m[..., k, i], -1.0, 1.0))
    first = torch.atan2(sign * m[..., k, j], m[..., k, k])
    last = torch.atan2(sign * m[..., j, i], m[..., i, i])
    return torch.stack([first, middle, last], -1)


def random_rotations(
    n: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n, 3, 3) rotations uniform on SO(3) (normalised Gaussian quaternions)."""  # fmt: skip
    q = torch.randn(n, 4, dtype=dtype, device=device, generator=generator)
    return quaternion_to_matrix(q)
