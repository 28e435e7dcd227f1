"""GMPI's cameras: the MPI world, sphere sampling, trajectories and Deep3D/EG3D poses (gmpi.md §1.3-1.4).

Convention (numpy, float64, vectorised over a leading batch):
- GMPI world ("MPI world"): +x right, +y **down**, +z forward; the MPI centre (sphere centre)
  sits at (0, 0, ``sphere_center_z``); every plane is perpendicular to z.
- GMPI camera: OpenCV (x right, y down, z forward), i.e. fk's camera frame. ``c2w`` matrices
  are fk's ``world_from_cam``; ``w2c`` are ``cam_from_world`` (4, 4).
- Sampling sphere: origin at the MPI centre, +x backward, +y right, +z up. yaw is the angle
  from +x in the x-y plane, pitch the elevation; yaw = pitch = 0 puts the camera on the -z side
  of the MPI centre looking at it; positive yaw moves it to world +x, positive pitch up (-y).
  The sphere -> world map is Rx(+90°)·Rz(-90°) then a translation to the centre, so a sphere
  point (r cos p cos y, r cos p sin y, r sin p) lands at (r cos p sin y, -r sin p, c - r cos p cos y).
- Look-at cameras never roll: forward = normalize(centre - position), right =
  normalize(down_ref x forward) with down_ref = sphere -z (world +y), down = forward x right.
- Intrinsics: f = W / (2 tan(FoV / 2)) and principal point (W/2, H/2) for rays through pixel
  *corners* + 0.5 (GMPI's ``ray_from_pix_center``); in fk's integer-centre pixels that is
  cx = W/2 - 0.5 (:func:`intrinsics`).
- Deep3D pose -> GMPI w2c (:func:`w2c_from_deep3d_pose`, GMPI's
  ``compute_w2c_mat_from_estimated_pose_ffhq``): translate by -c, flip y and z into Deep3D's
  y-up world, apply [M | trans] (M = Rz Ry Rx of ``angle``), translate by -10 (camera distance),
  flip y and z back; with ``normalize_trans`` the camera centre is moved along the ray from the
  MPI centre onto the sphere of radius r (rotation and direction kept).

Random draws use numpy's Generator, not torch's stream: matrices agree with GMPI's to float
precision (bench/conformance_gmpi.py); the random yaw/pitch values themselves differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fk.cameras.eg3d import decode_label
from fk.geometry.shapes import check_shape

DEEP3D_CAMERA_DISTANCE = 10.0
FFHQ_FOV_DEG = 12.6  # 2 atan(112 / 1015) = 12.59°: Deep3D's camera (gmpi.md §1.2)


@dataclass(frozen=True)
class CameraSetup:
    """One dataset's camera constants (``curriculums.py`` and ``configs/gmpi.yml`` ``FOR_*``)."""

    fov_deg: float
    ray_start: float  # nearest plane z
    ray_end: float  # farthest plane z
    sphere_center_z: float
    sphere_r: float
    h_stddev: float  # yaw sigma (rad)
    v_stddev: float  # pitch sigma (rad)
    n_truncated_stds: float
    h_mean: float = 0.0
    v_mean: float = 0.0
    spatial_enlarge_factor: float = 1.001


CAMERA_SETUPS: dict[str, CameraSetup] = {
    "FFHQ": CameraSetup(FFHQ_FOV_DEG, 0.95, 1.12, 1.0, 1.0, 0.289, 0.127, 2),
    "MetFaces": CameraSetup(FFHQ_FOV_DEG, 0.95, 1.12, 1.0, 1.0, 0.339, 0.133, 2),
    "AFHQCat": CameraSetup(13.39, 2.55, 2.8, 2.7, 2.7, 0.19, 0.15, 3),
}


def camera_setup(dataset: str) -> CameraSetup:
    """FFHQ256/512/1024 -> the FFHQ setup; MetFaces; AFHQCat."""
    key = "FFHQ" if dataset.upper().startswith("FFHQ") else dataset
    for name, setup in CAMERA_SETUPS.items():
        if name.lower() == key.lower():
            return setup
    raise ValueError(
        f"unknown GMPI dataset {dataset!r}: one of FFHQ256, FFHQ512, FFHQ1024, MetFaces, AFHQCat"
    )


def focal_from_fov(fov_deg: float, width: int) -> float:
    """f = W / (2 tan(FoV/2)) in pixels (FFHQ: about 4.529 W)."""
    return width / (2.0 * np.tan(np.deg2rad(fov_deg) / 2.0))


def intrinsics(fov_deg: float, height: int, width: int) -> np.ndarray:
    """(3, 3) K in fk's pixels (centres at integers): GMPI's [[f, 0, W/2], [0, f, H/2]] minus 0.5."""
    f = focal_from_fov(fov_deg, width)
    return np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])


def pixel_rays(fov_deg: float, height: int, width: int) -> np.ndarray:
    """(H, W, 3) unit ray directions in the camera frame through every pixel centre."""
    f = focal_from_fov(fov_deg, width)
    u = (np.arange(width) + 0.5 - width / 2.0) / f
    v = (np.arange(height) + 0.5 - height / 2.0) / f
    d = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), -1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def sample_plane_depths(near: float, far: float, n: int, method: str = "inverse") -> np.ndarray:
    """(n,) plane z in ascending order (plane 0 nearest), GMPI's ``sample_distance``, float32 as GMPI.

    ``inverse`` (the default, uniform in disparity), ``uniform``, ``log-uniform``, ``sqrt``, ``squared``.
    """
    if not (0 < near <= far) or n < 1:
        raise ValueError(f"plane depths need 0 < near <= far and n >= 1, got {near}, {far}, {n}")
    if method == "uniform":
        z = np.linspace(near, far, n)
    elif method == "log-uniform":
        z = np.exp(np.linspace(np.log(near), np.log(far), n))
    elif method == "sqrt":
        z = np.linspace(near**0.5, far**0.5, n) ** 2
    elif method == "squared":
        z = np.sqrt(np.linspace(near**2, far**2, n))
    elif method == "inverse":
        z = (1.0 / np.linspace(1.0 / far, 1.0 / near, n))[::-1]
    else:
        raise ValueError(
            f"unknown plane placement {method!r}: inverse, uniform, log-uniform, sqrt or squared"
        )
    return np.asarray(z, dtype=np.float32)


def truncated_normal(shape, mean: float, std: float, n_stds: float, rng: np.random.Generator) -> np.ndarray:
    """GMPI's truncated normal: 4 draws per value, keep the first strictly inside mean ± n·std, else clamp."""
    draws = rng.standard_normal((*np.atleast_1d(shape), 4)) * std + mean
    lo, hi = mean - n_stds * std, mean + n_stds * std
    valid = (draws > lo) & (draws < hi)
    first = np.argmax(valid, axis=-1)  # 0 when none is valid: GMPI then clamps that first draw
    out = np.take_along_axis(draws, first[..., None], -1)[..., 0]
    return np.clip(out, lo, hi)


def sample_camera_positions_sphere(
    n: int = 1,
    r: float = 1.0,
    yaw_mean: float = 0.0,
    yaw_std: float = float(np.sqrt(np.pi)),
    pitch_mean: float = 0.0,
    pitch_std: float = float(np.sqrt(np.pi)),
    given_yaws=None,
    given_pitches=None,
    flag_rnd: bool = True,
    flag_det_horizontal: bool = True,
    sample_method: str = "uniform",
    n_truncated_stds: float = 2,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera positions on the sampling sphere (sphere frame), with their pitches and yaws, each (n, 1).

    Returns (positions (n, 3), pitches (n, 1), yaws (n, 1)); the same order and options as GMPI.
    ``flag_rnd=False`` gives a deterministic sweep of n values over mean ± n·std (yaw when
    ``flag_det_horizontal``, else pitch).
    """
    if given_yaws is None:
        if given_pitches is not None:
            raise ValueError("given_pitches needs given_yaws")
        rng = rng or np.random.default_rng()
        if flag_rnd:
            if sample_method == "uniform":
                yaws = (rng.random((n, 1)) - 0.5) * 2 * n_truncated_stds * yaw_std + yaw_mean
                pitches = (rng.random((n, 1)) - 0.5) * 2 * n_truncated_stds * pitch_std + pitch_mean
            elif sample_method in ("normal", "gaussian"):
                yaws = rng.standard_normal((n, 1)) * yaw_std + yaw_mean
                pitches = rng.standard_normal((n, 1)) * pitch_std + pitch_mean
            elif sample_method == "truncated_gaussian":
                yaws = truncated_normal((n, 1), yaw_mean, yaw_std, n_truncated_stds, rng)
                pitches = truncated_normal((n, 1), pitch_mean, pitch_std, n_truncated_stds, rng)
            else:
                raise ValueError(f"unknown sample_method {sample_method!r}")
        else:
            sweep = np.linspace(-n_truncated_stds, n_truncated_stds, n).reshape(n, 1)
            if flag_det_horizontal:
                yaws, pitches = sweep * yaw_std + yaw_mean, np.full((n, 1), float(pitch_mean))
            else:
                yaws, pitches = np.full((n, 1), float(yaw_mean)), sweep * pitch_std + pitch_mean
    else:
        yaws = np.asarray(given_yaws, dtype=np.float64).reshape(-1, 1)
        pitches = np.asarray(given_pitches, dtype=np.float64).reshape(-1, 1)
        n = yaws.shape[0]
    pos = np.concatenate(
        [
            r * np.abs(np.cos(pitches)) * np.cos(yaws),
            r * np.abs(np.cos(pitches)) * np.sin(yaws),
            r * np.sin(pitches),
        ],
        axis=1,
    )
    return pos, pitches, yaws


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def create_cam2sphere_sys_matrix(forward_vector: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(n, 3) forward directions and camera positions in the sphere frame -> (n, 4, 4) cam2sphere.

    Columns [right, down, forward, origin]; down_ref is the sphere's -z (so no roll).
    """
    f = _unit(np.asarray(forward_vector, dtype=np.float64))
    check_shape(f, "n 3", name="forward_vector")
    down_ref = np.broadcast_to(np.array([0.0, 0.0, -1.0]), f.shape)
    right = _unit(np.cross(down_ref, f))
    down = _unit(np.cross(f, right))
    out = np.tile(np.eye(4), (f.shape[0], 1, 1))
    out[:, :3, :3] = np.stack([right, down, f], axis=-1)
    out[:, :3, 3] = np.asarray(origin, dtype=np.float64)
    return out


def sphere2world_matrix(sphere_center) -> np.ndarray:
    """(4, 4) sphere frame -> GMPI world: translate(centre) · Rx(+90°) · Rz(-90°)."""
    c = np.asarray(sphere_center, dtype=np.float64).reshape(3)
    rot = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])  # (a, b, c) -> (b, -c, -a)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = c
    return out


def gen_sphere_path(
    n_cams: int,
    sphere_center,
    sphere_r: float | None,
    yaw_mean: float = 0.0,
    yaw_std: float = float(np.sqrt(np.pi)),
    pitch_mean: float = 0.0,
    pitch_std: float = float(np.sqrt(np.pi)),
    given_yaws=None,
    given_pitches=None,
    flag_rnd: bool = True,
    flag_det_horizontal: bool = True,
    sample_method: str = "uniform",
    n_truncated_stds: float = 2,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look-at cameras on the sphere: (c2w (n, 4, 4) in the GMPI world, yaws (n, 1), pitches (n, 1))."""
    centre = np.asarray(sphere_center, dtype=np.float64).reshape(3)
    if sphere_r is None:
        sphere_r = float(np.linalg.norm(centre))
    pos, pitches, yaws = sample_camera_positions_sphere(
        n_cams,
        sphere_r,
        yaw_mean,
        yaw_std,
        pitch_mean,
        pitch_std,
        given_yaws,
        given_pitches,
        flag_rnd,
        flag_det_horizontal,
        sample_method,
        n_truncated_stds,
        rng,
    )
    cam2sphere = create_cam2sphere_sys_matrix(_unit(-pos), pos)
    return sphere2world_matrix(centre) @ cam2sphere, yaws, pitches


def c2w_from_yaw_pitch(yaws, pitches, setup: CameraSetup) -> np.ndarray:
    """(n,) yaws and pitches (rad) -> (n, 4, 4) look-at c2w on the setup's sphere."""
    y = np.atleast_1d(np.asarray(yaws, dtype=np.float64))
    p = np.broadcast_to(np.atleast_1d(np.asarray(pitches, dtype=np.float64)), y.shape)
    c2w, _, _ = gen_sphere_path(
        len(y), (0.0, 0.0, setup.sphere_center_z), setup.sphere_r, given_yaws=y, given_pitches=p
    )
    return c2w


def yaw_pitch_from_w2c(w2c: np.ndarray, sphere_center) -> tuple[np.ndarray, np.ndarray]:
    """GMPI's ``compute_pitch_yaw_from_w2c_mat``: (n, 4, 4) w2c -> (yaws (n, 1), pitches (n, 1))."""
    m = np.asarray(w2c, dtype=np.float64)
    check_shape(m, "n 4 4", name="w2c")
    centre_world = np.linalg.inv(m)[:, :, 3]
    in_sphere = (np.linalg.inv(sphere2world_matrix(sphere_center)) @ centre_world[..., None])[:, :3, 0]
    in_sphere = _unit(in_sphere)
    yaws = np.arctan2(in_sphere[:, 1], in_sphere[:, 0])
    pitches = np.pi / 2 - np.arccos(np.clip(in_sphere[:, 2], -1.0, 1.0))
    return yaws[:, None], pitches[:, None]


_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def _translate_z(z: float) -> np.ndarray:
    out = np.eye(4)
    out[2, 3] = z
    return out


def _snap_to_sphere(w2c: np.ndarray, sphere_center_z: float, sphere_r: float) -> np.ndarray:
    rot, t = w2c[:, :3, :3], w2c[:, :3, 3:]
    centre = -np.linalg.inv(rot) @ t
    c = np.array([0.0, 0.0, sphere_center_z]).reshape(1, 3, 1)
    d = centre - c
    new_centre = d / np.linalg.norm(d, axis=1, keepdims=True) * sphere_r + c
    out = w2c.copy()
    out[:, :3, 3:] = -rot @ new_centre
    return out


def w2c_from_deep3d_pose(
    angles, trans, sphere_center_z: float = 1.0, sphere_r: float = 1.0, normalize_trans: bool = False
) -> np.ndarray:
    """GMPI's ``compute_w2c_mat_from_estimated_pose_ffhq``: Deep3D ``angle``/``trans`` -> (n, 4, 4) w2c.

    Args:
        angles: (n, 3) Deep3D Euler angles (x, y, z), radians; trans: (n, 3).
        normalize_trans: GMPI's datasets use True (camera snapped onto the training sphere).
    """
    from fk.cameras.deep3d import rotation_from_angles

    a = np.asarray(angles, dtype=np.float64)
    t = np.asarray(trans, dtype=np.float64)
    check_shape(a, "n 3", name="angles")
    check_shape(t, "n 3", name="trans")
    face = np.tile(np.eye(4), (a.shape[0], 1, 1))
    face[:, :3, :3] = rotation_from_angles(a)
    face[:, :3, 3] = t
    w2c = _FLIP_YZ @ _translate_z(-DEEP3D_CAMERA_DISTANCE) @ face @ _FLIP_YZ @ _translate_z(-sphere_center_z)
    return _snap_to_sphere(w2c, sphere_center_z, sphere_r) if normalize_trans else w2c


compute_w2c_mat_from_estimated_pose_ffhq = w2c_from_deep3d_pose


def w2c_from_eg3d_cam2world(
    cam2world, sphere_center_z: float = 2.7, sphere_r: float = 2.7, normalize_trans: bool = False
) -> np.ndarray:
    """GMPI's ``compute_w2c_mat_from_estimated_pose_afhq``: EG3D OpenCV cam2world (n, 4, 4) -> GMPI w2c."""
    c2w = np.asarray(cam2world, dtype=np.float64)
    check_shape(c2w, "n 4 4", name="cam2world")
    w2c = np.linalg.inv(c2w) @ _FLIP_YZ @ _translate_z(-sphere_center_z)
    return _snap_to_sphere(w2c, sphere_center_z, sphere_r) if normalize_trans else w2c


compute_w2c_mat_from_estimated_pose_afhq = w2c_from_eg3d_cam2world


def read_eg3d_dataset_json(path) -> dict[str, np.ndarray]:
    """EG3D's ``dataset.json`` -> {file name: (25,) label}; errors name the file."""
    import json
    from pathlib import Path

    from fk.errors import InputError

    p = Path(path)
    try:
        labels = json.loads(p.read_text())["labels"]
        return {str(name): np.asarray(lab, dtype=np.float64).reshape(25) for name, lab in labels}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{p}: not an EG3D dataset.json ({exc})",
            hint='expected {"labels": [[file name, 25 floats], ...]}',
        ) from exc


def afhq_w2c_from_dataset_json(path, normalize_trans: bool = True) -> dict[str, np.ndarray]:
    """AFHQCat's GMPI cameras: every EG3D label in ``dataset.json`` -> (4, 4) w2c on the r = 2.7 sphere."""
    labels = read_eg3d_dataset_json(path)
    names = sorted(labels)
    if not names:
        return {}
    c2w, _ = decode_label(np.stack([labels[n] for n in names]))
    s = CAMERA_SETUPS["AFHQCat"]
    w2c = w2c_from_eg3d_cam2world(c2w, s.sphere_center_z, s.sphere_r, normalize_trans)
    return dict(zip(names, w2c, strict=False))
