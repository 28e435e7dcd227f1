"""Rigid transforms and homogeneous coordinates (torch or numpy: the input's type, dtype and device are kept).

Convention:
- column vectors: a transform ``b_from_a`` = (R, t) maps a point in frame a to
  frame b as x_b = R x_a + t; as a 4x4 matrix [[R, t], [0, 0, 0, 1]];
- points are (*batch, N, 3) rows; R (*batch, 3, 3) and t (*batch, 3) broadcast
  against them by the usual rules after the N axis is added (callers add axes
  themselves, nothing is guessed);
- compose(c_from_b, b_from_a) = c_from_a (the left one is applied last).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.geometry.shapes import check_shape


def _xp(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np
    import torch

    return torch


def _swap(x: Any) -> Any:
    return np.swapaxes(x, -1, -2) if isinstance(x, np.ndarray) else x.transpose(-1, -2)


def _cat(xs: list[Any], axis: int) -> Any:
    if isinstance(xs[0], np.ndarray):
        return np.concatenate(xs, axis=axis)
    import torch

    return torch.cat(xs, dim=axis)


def _ones_like(x: Any) -> Any:
    return np.ones_like(x) if isinstance(x, np.ndarray) else x.new_ones(x.shape)


def _zeros_like(x: Any) -> Any:
    return np.zeros_like(x) if isinstance(x, np.ndarray) else x.new_zeros(x.shape)


def apply_rigid(rotation: Any, translation: Any, points: Any) -> Any:
    """x' = R x + t for every point.

    Args:
        rotation: (*batch, 3, 3); translation: (*batch, 3); points: (*batch, N, 3).
    Returns:
        (*batch, N, 3).
    """
    check_shape(rotation, "*batch 3 3", name="rotation")
    check_shape(translation, "*batch 3", name="translation")
    check_shape(points, "*batch 3", name="points")
    return points @ _swap(rotation) + translation[..., None, :]


def invert_rigid(rotation: Any, translation: Any) -> tuple[Any, Any]:
    """(R, t) of ``b_from_a`` -> (Rᵀ, -Rᵀ t) of ``a_from_b``. R must be a rotation."""
    check_shape(rotation, "*batch 3 3", name="rotation")
    check_shape(translation, "*batch 3", name="translation")
    rt = _swap(rotation)
    return rt, -(rt @ translation[..., None])[..., 0]


def compose_rigid(rot_cb: Any, t_cb: Any, rot_ba: Any, t_ba: Any) -> tuple[Any, Any]:
    """c_from_b ∘ b_from_a = c_from_a: (R_cb R_ba, R_cb t_ba + t_cb)."""
    return rot_cb @ rot_ba, (rot_cb @ t_ba[..., None])[..., 0] + t_cb


def _broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    return np.broadcast_to(x, shape) if isinstance(x, np.ndarray) else x.expand(*shape)


def to_matrix(rotation: Any, translation: Any) -> Any:
    """(*batch, 3, 3), (*batch, 3) -> (*batch, 4, 4) [[R, t], [0 0 0 1]]."""
    check_shape(rotation, "*batch 3 3", name="rotation")
    check_shape(translation, "*batch 3", name="translation")
    batch = tuple(np.broadcast_shapes(tuple(rotation.shape[:-2]), tuple(translation.shape[:-1])))
    top = _cat([_broadcast_to(rotation, (*batch, 3, 3)), _broadcast_to(translation, (*batch, 3))[..., None]], -1)
    bottom = _zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return _cat([top, bottom], axis=-2)


def from_matrix(matrix: Any) -> tuple[Any, Any]:
    """(*batch, 4, 4) -> (R (*batch, 3, 3), t (*batch, 3)); the last row is not checked."""
    check_shape(matrix, "*batch 4 4", name="matrix")
    return matrix[..., :3, :3], matrix[..., :3, 3]


def to_homogeneous(points: Any) -> Any:
    """(*batch, D) -> (*batch, D + 1) with a trailing 1."""
    return _cat([points, _ones_like(points[..., :1])], axis=-1)


def from_homogeneous(points: Any, eps: float = 1e-12) -> Any:
    """(*batch, D + 1) -> (*batch, D) divided by the last coordinate.

    Convention: |w| < eps is replaced by eps with w's sign (+eps for w = 0), so points
    at infinity give large finite values and finite gradients instead of inf/nan.
    """
    w = points[..., -1:]
    xp = _xp(points)
    sign = xp.where(w < 0, -_ones_like(w), _ones_like(w))
    safe = xp.where(abs(w) < eps, sign * eps, w)
    return points[..., :-1] / safe


def transform_points(matrix: Any, points: Any) -> Any:
    """(*batch, 4, 4) homogeneous transform applied to (*batch, N, 3) points, with the division by w."""
    check_shape(matrix, "*batch 4 4", name="matrix")
    check_shape(points, "*batch 3", name="points")
    return from_homogeneous(to_homogeneous(points) @ _swap(matrix))
