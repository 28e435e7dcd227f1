"""Deep3D's camera as fk renders it, and the EG3D label of a Deep3D pose.

Convention (see ``fk.models.camera``): world x right, y up, z toward the viewer (dm);
the camera sits at (0, 0, 10) looking along −z. OpenCV camera coordinates of a world
point are (x, −y, 10 − z); pixel intrinsics ``K_CROP`` put landmarks exactly where
Deep3D's ``lm68`` puts them (x = u, y = 223 − v, pixel centres at integers). fk renders
and fits with this one K, so renders and landmarks agree (Deep3D's own nvdiffrast
render sits half a pixel away from its landmarks; deep3d.md §8.2).
"""

from __future__ import annotations

import numpy as np

try:
    from fk.cameras.deep3d import CAMERA_DISTANCE, CENTER, FOCAL
except ImportError:  # fk.cameras.deep3d not installed yet: the same published numbers
    FOCAL, CENTER, CAMERA_DISTANCE = 1015.0, 112.0, 10.0

CROP_SIZE = 224
K_CROP = np.array([[FOCAL, 0.0, CENTER], [0.0, FOCAL, CENTER - 1.0], [0.0, 0.0, 1.0]])


def opencv_from_world(vertices_world):
    """(…, N, 3) Deep3D world -> OpenCV camera coordinates (x, −y, 10 − z). numpy or torch."""
    x, y, z = vertices_world[..., 0], vertices_world[..., 1], vertices_world[..., 2]
    mod = np if isinstance(vertices_world, np.ndarray) else __import__("torch")
    return mod.stack([x, -y, CAMERA_DISTANCE - z], -1)


def rotation_from_angles_np(angles: np.ndarray) -> np.ndarray:
    """(…, 3) Euler angles (rad) -> (…, 3, 3) R = Rz·Ry·Rx (column vectors), Deep3D's M."""
    a = np.asarray(angles, np.float64)
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*a.shape[:-1], 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*a.shape[:-1], 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*a.shape[:-1], 3, 3)
    return rz @ ry @ rx


def angles_from_rotation_np(rot: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_from_angles_np` for |angle_y| < 90°: (3, 3) -> (3,) rad."""
    r = np.asarray(rot, np.float64)
    ay = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    ax = np.arctan2(r[2, 1], r[2, 2])
    az = np.arctan2(r[1, 0], r[0, 0])
    return np.array([ax, ay, az])


def eg3d_label(angle: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """EG3D's 25-float label of a Deep3D pose (deep3d.md §7.2-7.3, 'orig' normalisation).

    Uses ``fk.cameras.deep3d.eg3d_label_from_deep3d`` when installed; the fallback below
    restates the same published recipe: c = 0.27·Mᵀ((0,0,10) − t) + (0, 0.006, 0.161),
    re-radiused to 2.7; cam2world rotation Mᵀ·diag(1, −1, −1); intrinsics 4.2647 / 0.5.
    """
    try:
        from fk.cameras.deep3d import eg3d_label_from_deep3d
    except ImportError:
        eg3d_label_from_deep3d = None
    if eg3d_label_from_deep3d is not None:
        return np.asarray(eg3d_label_from_deep3d(np.asarray(angle, np.float64), np.asarray(trans, np.float64)),
                          np.float64).reshape(25)
    m = rotation_from_angles_np(angle)
    r = m.T  # Deep3D's compute_rotation (row-vector form)
    t = np.asarray(trans, np.float64) - np.array([0.0, 0.0, CAMERA_DISTANCE])
    c = -r @ t * 0.27 + np.array([0.0, 0.006, 0.161])
    c = c / np.linalg.norm(c) * 2.7
    cam2world = np.eye(4)
    cam2world[:3, :3] = r @ np.diag([1.0, -1.0, -1.0])
    cam2world[:3, 3] = c
    intr = np.array([[4.2647, 0.0, 0.5], [0.0, 4.2647, 0.5], [0.0, 0.0, 1.0]])
    return np.concatenate([cam2world.reshape(-1), intr.reshape(-1)])
