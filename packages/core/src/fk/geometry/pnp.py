"""Perspective-n-Point: the camera pose that projects known 3D points onto observed pixels.

Convention:
- returns ``cam_from_world`` (R, t): x_cam = R x_world + t, OpenCV camera frame
  (x right, y down, z forward), pixel centres at integers, K a pixel pinhole matrix;
- initialisation: normalised DLT for non-planar points (N >= 6), a plane-to-image
  homography for planar ones (N >= 4); then Levenberg-Marquardt on the pixel
  reprojection error over (axis-angle, t) with ``scipy.optimize.least_squares``;
- numpy float64 in and out.
"""

from __future__ import annotations

import numpy as np

from fk.geometry.shapes import check_shape


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(v).as_matrix()


def _matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(r).as_rotvec()


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vh = np.linalg.svd(m)
    r = u @ vh
    if np.linalg.det(r) < 0:
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vh
    return r


def _normalising_transform(points: np.ndarray) -> np.ndarray:
    """Similarity (D+1, D+1) moving the centroid to 0 and the mean distance to sqrt(D)."""
    dim = points.shape[1]
    centre = points.mean(0)
    spread = np.linalg.norm(points - centre, axis=1).mean()
    s = np.sqrt(dim) / max(spread, 1e-12)
    t = np.eye(dim + 1)
    t[:dim, :dim] *= s
    t[:dim, dim] = -s * centre
    return t


def _dlt(world: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-planar DLT on normalised image coordinates (N, 2) -> (R, t)."""
    tw = _normalising_transform(world)
    ti = _normalising_transform(rays)
    xw = (np.c_[world, np.ones(len(world))]) @ tw.T
    xi = (np.c_[rays, np.ones(len(rays))]) @ ti.T
    rows = []
    for x, (u, v, _) in zip(xw, xi):
        rows.append(np.r_[x, np.zeros(4), -u * x])
        rows.append(np.r_[np.zeros(4), x, -v * x])
    _, _, vh = np.linalg.svd(np.asarray(rows))
    p = np.linalg.inv(ti) @ vh[-1].reshape(3, 4) @ tw  # x_img ~ P X in un-normalised coordinates
    m, p4 = p[:, :3], p[:, 3]
    if np.linalg.det(m) < 0:
        m, p4 = -m, -p4
    lam = np.cbrt(np.linalg.det(m))
    rot = _nearest_rotation(m / lam)
    return rot, p4 / lam


def _planar(world: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on a plane: homography from plane coordinates to normalised image -> (R, t)."""
    centre = world.mean(0)
    _, _, vh = np.linalg.svd(world - centre)
    basis = vh.copy()  # rows: in-plane e1, e2, normal
    if np.linalg.det(basis) < 0:  # keep the plane frame right-handed so R stays a rotation
        basis[2] = -basis[2]
    plane_xy = (world - centre) @ basis[:2].T
    tp = _normalising_transform(plane_xy)
    ti = _normalising_transform(rays)
    xp = np.c_[plane_xy, np.ones(len(world))] @ tp.T
    xi = np.c_[rays, np.ones(len(rays))] @ ti.T
    rows = []
    for x, (u, v, _) in zip(xp, xi):
        rows.append(np.r_[x, np.zeros(3), -u * x])
        rows.append(np.r_[np.zeros(3), x, -v * x])
    _, _, vh2 = np.linalg.svd(np.asarray(rows))
    h = np.linalg.inv(ti) @ vh2[-1].reshape(3, 3) @ tp  # ~ [r1 r2 t] in the plane frame
    lam = (np.linalg.norm(h[:, 0]) + np.linalg.norm(h[:, 1])) / 2
    h = h / lam
    if h[2, 2] < 0:  # the plane's centre must be in front of the camera
        h = -h
    r1, r2 = h[:, 0], h[:, 1]
    rot_plane = _nearest_rotation(np.c_[r1, r2, np.cross(r1, r2)])
    t_plane = h[:, 2]
    # x_cam = R_p (B (x - c)) + t_p  =>  R = R_p B, t = t_p - R c
    rot = rot_plane @ basis
    return rot, t_plane - rot @ centre


def solve_pnp(
    points3d: np.ndarray,
    points2d: np.ndarray,
    K: np.ndarray,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
    loss: str = "linear",
    f_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Camera pose from 3D-2D correspondences.

    Args:
        points3d: (N, 3) world points.
        points2d: (N, 2) observed pixels (x, y).
        K: (3, 3) pixel intrinsics.
        initial: optional (R, t) to start from instead of the linear solution.
        loss: ``scipy.optimize.least_squares`` loss; "linear" (plain least squares,
            Levenberg-Marquardt) or a robust one ("soft_l1", "huber", "cauchy") when
            some correspondences may be wrong; ``f_scale`` is its inlier scale in pixels.
    Returns:
        R (3, 3), t (3,): cam_from_world.

    Convention: exact (to solver precision) on noise-free data with N >= 6 general
    points or N >= 4 coplanar ones; with fewer, or degenerate configurations, give
    ``initial``.
    """
    from scipy.optimize import least_squares

    world = np.asarray(points3d, dtype=np.float64)
    pix = np.asarray(points2d, dtype=np.float64)
    kmat = np.asarray(K, dtype=np.float64)
    dims = check_shape(world, "N 3", name="points3d")
    check_shape(pix, "N 2", name="points2d", dims=dims)
    check_shape(kmat, "3 3", name="K")
    n = dims["N"]
    rays = (np.c_[pix, np.ones(n)] @ np.linalg.inv(kmat).T)[:, :2]
    if initial is not None:
        rot, t = np.asarray(initial[0], np.float64), np.asarray(initial[1], np.float64)
    else:
        sing = np.linalg.svd(world - world.mean(0), compute_uv=False)
        planar = sing[2] <= 1e-9 * max(sing[0], 1e-300)
        if planar or n < 6:
            if n < 4:
                raise ValueError(f"solve_pnp: need at least 4 points (6 if not coplanar), got {n}")
            rot, t = _planar(world, rays)
        else:
            rot, t = _dlt(world, rays)

    def residual(params: np.ndarray) -> np.ndarray:
        cam = world @ _rotvec_to_matrix(params[:3]).T + params[3:]
        proj = cam @ kmat.T
        return (proj[:, :2] / proj[:, 2:3] - pix).ravel()

    x0 = np.r_[_matrix_to_rotvec(rot), t]
    method = "lm" if loss == "linear" and 2 * n >= 6 else "trf"
    result = least_squares(residual, x0, method=method, loss=loss, f_scale=f_scale, xtol=1e-15, ftol=1e-15,
                           gtol=1e-15, max_nfev=200 * 6)  # fmt: skip
    return _rotvec_to_matrix(result.x[:3]), result.x[3:].copy()
