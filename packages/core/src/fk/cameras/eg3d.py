"""EG3D camera labels: 25 floats per image (numpy, vectorised over leading dimensions).

Convention:
- label = cam2world (4, 4) flattened row-major (16 floats), then the *normalised*
  intrinsics (3, 3) flattened row-major (9 floats);
- cam2world maps **OpenCV** camera coordinates (x right, y down, z forward) to the
  EG3D world: +y up, the face looks toward +z, the frontal camera sits at (0, 0, 2.7);
- normalised intrinsics act on image coordinates in [0, 1] (0 = left/top edge,
  1 = right/bottom edge): fx_n = fx / W, cx_n = (cx + 0.5) / W for fk pixels whose
  centres are at integers (see :meth:`fk.cameras.Intrinsics.normalized`);
- Two angle pairs, named for what they are (radians both):
  * **LookAt (h, v)**: EG3D's ``LookAtPoseSampler.sample(h, v, ...)`` arguments. The
    camera centre is radius * (sin p cos(pi - h), cos p, sin p sin(pi - h)) with
    p = arccos(1 - 2 v / pi) (an equal-area remapping of v); h = v = pi/2 is frontal,
    h > pi/2 moves the camera toward world +x, v < pi/2 puts it above the face.
    ``lookat_hv_*`` functions (exact inverse: LPFF's ``0_compute_yaw_pitch.py``).
  * **LPFF (theta, phi)**: the paper's angles its KDEs are fitted on
    (``2_dataset_rebalance/0_compute_theta_phi.py``): theta = arccos(C_x / |C|) in
    [0, pi] from world +x (theta < pi/2: camera on the +x side), phi = atan2(C_z, C_y)
    from world +y in the y-z plane (pi/2 level, < pi/2 above looking down).
    ``lpff_theta_phi_*`` functions. Not LookAt's: h ~ pi - theta, and phi is the true
    angle where v is equal-area remapped.
  This is the one module for EG3D camera maths (labels, centres, mirroring, angles).
"""

from __future__ import annotations

import numpy as np

from fk.geometry.shapes import check_shape

EG3D_FOCAL = 4.2647  # 2985.29 px / 700 px crop (deep3d.md §7.3)
EG3D_RADIUS = 2.7  # avg_camera_radius for FFHQ
EG3D_PIVOT = (0.0, 0.0, 0.2)  # avg_camera_pivot for FFHQ
LABEL_SIZE = 25
_V_CLAMP = 1e-5  # LookAtPoseSampler clamps v to [1e-5, pi - 1e-5]


def normalized_intrinsics(focal: float | np.ndarray = EG3D_FOCAL, center: float = 0.5) -> np.ndarray:
    """(…, 3, 3) normalised intrinsics [[f, 0, c], [0, f, c], [0, 0, 1]] (broadcast over ``focal``)."""
    f = np.asarray(focal, dtype=np.float64)
    out = np.zeros((*f.shape, 3, 3))
    out[..., 0, 0] = f
    out[..., 1, 1] = f
    out[..., 0, 2] = center
    out[..., 1, 2] = center
    out[..., 2, 2] = 1.0
    return out


def encode_label(cam2world: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pack cameras into EG3D labels.

    Args:
        cam2world: (*batch, 4, 4) OpenCV cam2world in the EG3D world.
        intrinsics: (*batch, 3, 3) normalised intrinsics (broadcast against cam2world).
    Returns:
        (*batch, 25) float64: cam2world row-major, then intrinsics row-major.
    """
    c2w = np.asarray(cam2world, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    check_shape(c2w, "*batch 4 4", name="cam2world")
    check_shape(k, "*batch 3 3", name="intrinsics")
    batch = np.broadcast_shapes(c2w.shape[:-2], k.shape[:-2])
    c2w = np.broadcast_to(c2w, (*batch, 4, 4)).reshape(*batch, 16)
    k = np.broadcast_to(k, (*batch, 3, 3)).reshape(*batch, 9)
    return np.concatenate([c2w, k], axis=-1)


def decode_label(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(*batch, 25) -> (cam2world (*batch, 4, 4), normalised intrinsics (*batch, 3, 3)), float64 copies."""
    lab = np.asarray(label, dtype=np.float64)
    check_shape(lab, "*batch 25", name="label")
    return lab[..., :16].reshape(*lab.shape[:-1], 4, 4).copy(), lab[..., 16:].reshape(*lab.shape[:-1], 3, 3).copy()


def mirror_label(label: np.ndarray) -> np.ndarray:
    """The label of the horizontally mirrored image (EG3D's ``flip_yaw``).

    Args:
        label: (*batch, 25).
    Returns:
        (*batch, 25): cam2world entries (0,1), (0,2), (1,0), (2,0) and (0,3) negated,
        i.e. F·cam2world·F with F = diag(-1, 1, 1, 1); intrinsics unchanged.

    Convention: the camera centre's x flips sign, so LPFF's theta -> pi - theta and its phi
    stays; applying it twice gives the input back. (EG3D leaves cx alone, which is
    exact for its centred cx = 0.5.)
    """
    out = np.array(label, dtype=np.float64, copy=True)
    check_shape(out, "*batch 25", name="label")
    for row, col in ((0, 1), (0, 2), (1, 0), (2, 0), (0, 3)):
        out[..., 4 * row + col] *= -1.0
    return out


def centers_from_lookat_hv(h: np.ndarray | float, v: np.ndarray | float, radius: float = EG3D_RADIUS) -> np.ndarray:
    """(*batch) LookAt (h, v) -> (*batch, 3) camera origins of ``LookAtPoseSampler`` (v clamped as EG3D does)."""
    h = np.asarray(h, dtype=np.float64)
    v = np.clip(np.asarray(v, dtype=np.float64), _V_CLAMP, np.pi - _V_CLAMP)
    h, v = np.broadcast_arrays(h, v)
    p = np.arccos(1.0 - 2.0 * v / np.pi)
    return radius * np.stack([np.sin(p) * np.cos(np.pi - h), np.cos(p), np.sin(p) * np.sin(np.pi - h)], -1)


def lookat_cam2world(
    h: np.ndarray | float,
    v: np.ndarray | float,
    radius: float = EG3D_RADIUS,
    pivot: tuple[float, float, float] | np.ndarray = EG3D_PIVOT,
) -> np.ndarray:
    """OpenCV cam2world of EG3D's ``LookAtPoseSampler.sample(h, v, pivot, radius)``.

    Args:
        h, v: (*batch) LookAt angles, radians (broadcast together); v is clamped to
            [1e-5, pi - 1e-5] as EG3D does.
        radius: distance of the camera from the **world origin** (not from the pivot).
        pivot: the point looked at, (3,) or (*batch, 3).
    Returns:
        (*batch, 4, 4) float64: columns [right, down, forward, centre].

    Convention: right = -normalize(up0 x forward) with up0 = (0, 1, 0), down =
    normalize(forward x right) (which points to world -y for a level camera), as EG3D.
    """
    centre = centers_from_lookat_hv(h, v, radius)
    forward = _unit(np.asarray(pivot, dtype=np.float64) - centre)
    batch = forward.shape[:-1]
    up0 = np.broadcast_to(np.array([0.0, 1.0, 0.0]), forward.shape)
    right = -_unit(np.cross(up0, forward))
    down = _unit(np.cross(forward, right))
    centre = np.broadcast_to(centre, forward.shape)
    out = np.zeros((*batch, 4, 4))
    out[..., :3, 0] = right
    out[..., :3, 1] = down
    out[..., :3, 2] = forward
    out[..., :3, 3] = centre
    out[..., 3, 3] = 1.0
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def label_from_lookat_hv(
    h: np.ndarray | float,
    v: np.ndarray | float,
    radius: float = EG3D_RADIUS,
    pivot: tuple[float, float, float] | np.ndarray = EG3D_PIVOT,
    focal: float = EG3D_FOCAL,
) -> np.ndarray:
    """(*batch) LookAt (h, v) -> (*batch, 25) labels with intrinsics [[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]]."""
    c2w = lookat_cam2world(h, v, radius=radius, pivot=pivot)
    return encode_label(c2w, normalized_intrinsics(focal))


def camera_centers(label: np.ndarray) -> np.ndarray:
    """(*batch, 25) -> (*batch, 3) camera centres in the EG3D world (label entries 3, 7, 11)."""
    lab = np.asarray(label, dtype=np.float64)
    check_shape(lab, "*batch 25", name="label")
    return lab[..., [3, 7, 11]]


def lookat_hv_from_centers(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(*batch, 3) camera centres -> the LookAt (h, v) whose ``LookAtPoseSampler`` origin they are.

    h = pi - atan2(C_z, C_x) in [0, 2 pi), v = pi (1 - C_y / |C|) / 2 in [0, pi]; exact
    inverse of :func:`centers_from_lookat_hv` at any radius (except where EG3D clamps v).
    """
    c = np.asarray(centers, dtype=np.float64)
    h = np.pi - np.arctan2(c[..., 2], c[..., 0])
    cos_p = np.clip(c[..., 1] / np.linalg.norm(c, axis=-1), -1.0, 1.0)
    return h, np.pi * (1.0 - cos_p) / 2.0


def lookat_hv_from_label(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The LookAt (h, v) of each (*batch, 25) label's camera centre (its rotation is not used).

    Exact inverse of :func:`lookat_cam2world` for every pivot and radius (the centre lies on
    the sphere about the origin whatever is looked at), except where EG3D clamps v.
    """
    return lookat_hv_from_centers(camera_centers(label))


def lpff_theta_phi_from_centers(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(*batch, 3) camera centres -> LPFF's paper (theta, phi) (module Convention).

    theta is computed as atan2(sqrt(C_y^2 + C_z^2), C_x) = arccos(C_x / |C|), which is well
    conditioned where LPFF's C_y / cos(phi) is not.
    """
    c = np.asarray(centers, dtype=np.float64)
    theta = np.arctan2(np.hypot(c[..., 1], c[..., 2]), c[..., 0])
    phi = np.arctan2(c[..., 2], c[..., 1])
    return theta, phi


def lpff_theta_phi_from_label(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LPFF's paper (theta, phi) of each (*batch, 25) label, on which its pose-density KDEs are
    fitted (lpff.md §4.1). Inverse: :func:`centers_from_lpff_theta_phi`."""
    return lpff_theta_phi_from_centers(camera_centers(label))


def centers_from_lpff_theta_phi(theta, phi, radius: float = EG3D_RADIUS) -> np.ndarray:
    """(*batch) LPFF paper angles -> (*batch, 3) centres r (cos th, sin th cos ph, sin th sin ph)."""
    th, ph = np.broadcast_arrays(np.asarray(theta, np.float64), np.asarray(phi, np.float64))
    return radius * np.stack([np.cos(th), np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph)], -1)
