"""Shared helpers for the dataset tests: synthetic EG3D labels at known angles."""

from __future__ import annotations

import numpy as np
import pytest

from fk.cameras.eg3d import centers_from_lpff_theta_phi as centers_from_theta_phi


def lookat_label(theta, phi, radius: float = 2.7) -> np.ndarray:
    """A (N, 25) EG3D label whose camera sits at (theta, phi) and looks at the origin.

    Built independently of the code under test: OpenCV camera axes (x right, y down,
    z forward) as cam2world columns, world up = +y, intrinsics 4.2647 / 0.5.
    """
    theta = np.atleast_1d(np.asarray(theta, float))
    phi = np.atleast_1d(np.asarray(phi, float))
    c = np.stack([radius * np.cos(theta), radius * np.sin(theta) * np.cos(phi),
                  radius * np.sin(theta) * np.sin(phi)], -1)
    fwd = -c / np.linalg.norm(c, axis=-1, keepdims=True)
    right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))  # fwd x up points to image right
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(fwd, right)
    m = np.zeros((len(theta), 4, 4))
    m[:, :3, 0], m[:, :3, 1], m[:, :3, 2], m[:, :3, 3], m[:, 3, 3] = right, down, fwd, c, 1.0
    k = np.array([4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1])
    return np.concatenate([m.reshape(-1, 16), np.broadcast_to(k, (len(theta), 9))], axis=1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def ffhq_like_angles(rng, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """FFHQ-like (theta, phi) with exact mirror pairs (original at 2k, mirror at 2k+1)."""
    th = np.pi / 2 + np.clip(rng.standard_t(6, n_pairs) * 0.22, -1.2, 1.2)
    ph = 1.48 + np.clip(rng.normal(0, 0.12, n_pairs), -0.6, 0.6)
    theta = np.empty(2 * n_pairs)
    phi = np.empty(2 * n_pairs)
    theta[0::2], theta[1::2] = th, np.pi - th
    phi[0::2], phi[1::2] = ph, ph
    return theta, phi


__all__ = ["lookat_label", "ffhq_like_angles", "centers_from_theta_phi"]
