"""LPFF's camera angles (theta, phi) from EG3D labels, their inverse, and EG3D's LookAt (h, v).

Convention:
    - A label is 25 floats: an OpenCV-style cam2world 4x4 flattened row-major (16),
      then the normalised 3x3 intrinsics flattened row-major (9). EG3D world: +y up,
      the face looks toward +z, the frontal camera sits at C = (0, 0, 2.7).
    - theta = arccos(C_x / |C|) in [0, pi], measured from world +x: pi/2 is no yaw,
      theta < pi/2 puts the camera on the +x side (the subject's left).
    - phi = atan2(C_z, C_y) in (-pi, pi], measured from world +y (up) inside the y-z
      plane: pi/2 is level, phi < pi/2 is a camera above looking down (top of the head
      shows), phi > pi/2 a camera below (chin shows).
    - Radians throughout. This is LPFF's "paper" parameterisation
      (``2_dataset_rebalance/0_compute_theta_phi.py``), the one its KDEs were fitted on.
      theta is computed as atan2(sqrt(C_y^2 + C_z^2), C_x), which is well conditioned
      where LPFF's C_y / cos(phi) is not.
    - Inverse: C = r (cos theta, sin theta cos phi, sin theta sin phi).
    - EG3D's ``LookAtPoseSampler`` (h, v) is a different pair: h = pi - atan2(C_z, C_x),
      v = pi (1 - cos p) / 2 with p = arccos(C_y / |C|) (v is equal-area remapped).
      ``lookat_hv_from_centers`` / ``centers_from_lookat_hv`` convert exactly.
"""

from __future__ import annotations

import numpy as np

from fk.errors import InputError

LABEL_SIZE = 25
# Flattened positions of the cam2world entries [0,1], [0,2], [0,3], [1,0], [2,0]
# that EG3D's flip_yaw negates (F P F with F = diag(-1, 1, 1, 1)).
_FLIP_YAW_ENTRIES = np.array([1, 2, 3, 4, 8])


def as_labels(labels, name: str = "labels") -> np.ndarray:
    """(N, 25) float64 view of ``labels``; a single (25,) label becomes (1, 25)."""
    arr = np.asarray(labels, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != LABEL_SIZE:
        raise InputError(f"{name}: expected EG3D labels of 25 floats each, got an array of shape {arr.shape}")
    return arr


def camera_centers(labels) -> np.ndarray:
    """(N, 25) labels -> (N, 3) camera centres C = cam2world[:3, 3] in EG3D world units."""
    lab = as_labels(labels)
    return lab[:, [3, 7, 11]].copy()


def theta_phi_from_centers(centers) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) camera centres -> (theta (N,), phi (N,)) in radians (module Convention)."""
    c = np.asarray(centers, dtype=np.float64)
    x, y, z = c[..., 0], c[..., 1], c[..., 2]
    theta = np.arctan2(np.hypot(y, z), x)
    phi = np.arctan2(z, y)
    return theta, phi


def theta_phi_from_labels(labels) -> tuple[np.ndarray, np.ndarray]:
    """(N, 25) EG3D labels -> (theta (N,), phi (N,)) in radians (module Convention)."""
    return theta_phi_from_centers(camera_centers(labels))


def centers_from_theta_phi(theta, phi, radius: float = 2.7) -> np.ndarray:
    """Inverse of :func:`theta_phi_from_centers`: (...,) angles -> (..., 3) centres at ``radius``."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    s = np.sin(theta)
    return np.stack([radius * np.cos(theta), radius * s * np.cos(phi), radius * s * np.sin(phi)], axis=-1)


def lookat_hv_from_centers(centers) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) centres -> EG3D ``LookAtPoseSampler`` (h, v) that reproduce them exactly."""
    c = np.asarray(centers, dtype=np.float64)
    r = np.linalg.norm(c, axis=-1)
    h = np.pi - np.arctan2(c[..., 2], c[..., 0])
    p = np.arccos(np.clip(c[..., 1] / r, -1.0, 1.0))
    v = np.pi * (1.0 - np.cos(p)) / 2.0
    return h, v


def centers_from_lookat_hv(h, v, radius: float = 2.7) -> np.ndarray:
    """EG3D ``LookAtPoseSampler`` camera origin for (h, v) (v clamped like EG3D)."""
    h = np.asarray(h, dtype=np.float64)
    v = np.clip(np.asarray(v, dtype=np.float64), 1e-5, np.pi - 1e-5)
    p = np.arccos(1.0 - 2.0 * v / np.pi)
    return np.stack([radius * np.sin(p) * np.cos(np.pi - h), radius * np.cos(p),
                     radius * np.sin(p) * np.sin(np.pi - h)], axis=-1)


def mirror_labels(labels) -> np.ndarray:
    """EG3D's ``flip_yaw`` on (N, 25) labels: reflect world x and camera x.

    Convention: C_x -> -C_x, theta -> pi - theta, phi unchanged, intrinsics unchanged;
    applying it twice gives the input back.
    """
    out = as_labels(labels).copy()
    out[:, _FLIP_YAW_ENTRIES] *= -1.0
    return out
