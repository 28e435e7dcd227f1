"""Deep3DFaceRecon's fixed camera, and the EG3D label of a Deep3D pose (deep3d.md §2.3-2.4, §7).

Convention:
- Deep3D world: x right, y up, z toward the viewer, decimetres; the camera sits at
  (0, 0, CAMERA_DISTANCE) looking along -z.
- Deep3D camera coordinates (``to_camera``): (x, y, CAMERA_DISTANCE - z): y stays
  **up**, depth positive (a left-handed frame; fk's OpenCV frame is (x, -y, depth)).
- :func:`project_deep3d` gives Deep3D's y-up pixels (u, v) of the 224 crop;
  image pixels (x right, y down, centres at integers) are (u, 2*CENTER - 1 - v) =
  (u, 223 - v), as Deep3D saves ``lm68``. As a pinhole on OpenCV camera coordinates
  that is :data:`K_LANDMARKS` (principal point (112, 111)); Deep3D's nvdiffrast
  renders sit half a pixel away (principal point (111.5, 111.5), :data:`K_RENDER`).
- angle = (x, y, z) Euler angles, radians: M = Rz·Ry·Rx (column vectors) poses the
  face, v_world = M v + trans.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.cameras.eg3d import EG3D_FOCAL, EG3D_RADIUS, encode_label, normalized_intrinsics
from fk.geometry.shapes import check_shape

FOCAL = 1015.0  # pixels at the 224 crop
CENTER = 112.0  # principal point of Deep3D's projection, y-up pixels
CAMERA_DISTANCE = 10.0  # dm
IMAGE_SIZE = 224
ZNEAR, ZFAR = 5.0, 15.0  # Deep3D's renderer clip planes (dm of depth)

# EG3D conversion constants (deep3d.md §7.2): "factor to match tripleganger" and
# "additional offset used in submission", both unexplained upstream.
EG3D_SCALE = 0.27
EG3D_OFFSET = (0.0, 0.006, 0.161)

K_LANDMARKS = np.array([[FOCAL, 0.0, CENTER], [0.0, FOCAL, CENTER - 1.0], [0.0, 0.0, 1.0]])
K_RENDER = np.array([[FOCAL, 0.0, CENTER - 0.5], [0.0, FOCAL, CENTER - 0.5], [0.0, 0.0, 1.0]])


def _xp(x: Any):
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np
    import torch

    return torch


def to_camera(vertices_world: Any) -> Any:
    """(*batch, N, 3) Deep3D world -> Deep3D camera (x, y, CAMERA_DISTANCE - z). numpy or torch; a new array."""
    check_shape(vertices_world, "*batch 3", name="vertices_world")
    xp = _xp(vertices_world)
    v = vertices_world
    return xp.stack([v[..., 0], v[..., 1], CAMERA_DISTANCE - v[..., 2]], -1)


def opencv_from_deep3d_camera(vertices_cam: Any) -> Any:
    """(*batch, N, 3) Deep3D camera (x, y up, depth) -> OpenCV camera (x, -y, depth). Its own inverse."""
    check_shape(vertices_cam, "*batch 3", name="vertices_cam")
    xp = _xp(vertices_cam)
    v = vertices_cam
    return xp.stack([v[..., 0], -v[..., 1], v[..., 2]], -1)


def project_deep3d(vertices_cam: Any) -> Any:
    """Deep3D's perspective projection, in its y-up pixels.

    Args:
        vertices_cam: (*batch, N, 3) Deep3D camera coordinates (depth > 0). numpy or torch.
    Returns:
        (*batch, N, 2): u = FOCAL x / z + CENTER, v = FOCAL y / z + CENTER; v grows
        **upward**. Use :func:`image_from_deep3d_pixels` for image rows.
    """
    check_shape(vertices_cam, "*batch 3", name="vertices_cam")
    return FOCAL * vertices_cam[..., :2] / vertices_cam[..., 2:3] + CENTER


def image_from_deep3d_pixels(uv: Any) -> Any:
    """(*batch, 2) Deep3D y-up pixels -> image pixels (u, 223 - v). Its own inverse."""
    check_shape(uv, "*batch 2", name="uv")
    xp = _xp(uv)
    return xp.stack([uv[..., 0], (2 * CENTER - 1) - uv[..., 1]], -1)


def rotation_from_angles(angle: np.ndarray) -> np.ndarray:
    """(*batch, 3) Deep3D Euler angles (x, y, z), rad -> (*batch, 3, 3) M = Rz·Ry·Rx (column vectors).

    Deep3D's ``compute_rotation`` returns Mᵀ because it multiplies row vectors.
    """
    from fk.geometry.rotations import euler_to_matrix

    a = np.asarray(angle, dtype=np.float64)
    check_shape(a, "*batch 3", name="angle")
    return euler_to_matrix(a, "xyz")


def eg3d_cam2world_from_deep3d(angle: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(*batch, 3) angle, (*batch, 3) trans -> (*batch, 4, 4) OpenCV cam2world in the EG3D world.

    Steps (deep3d.md §7.2-7.3, EG3D ``3dface2idr_mat.py`` + ``preprocess_face_cameras.py --mode orig``):
    R = Mᵀ; C = -R (trans - (0, 0, 10)); C <- 0.27 C + (0, 0.006, 0.161);
    C <- 2.7 C / |C|; rotation R·diag(1, -1, -1) (Deep3D's y-up camera to OpenCV).
    """
    rot = np.swapaxes(rotation_from_angles(angle), -1, -2)  # R = Mᵀ: face frame -> Deep3D world, inverted
    t = np.asarray(trans, dtype=np.float64)
    check_shape(t, "*batch 3", name="trans")
    t = t - np.array([0.0, 0.0, CAMERA_DISTANCE])
    centre = -np.einsum("...ij,...j->...i", rot, t)
    centre = EG3D_SCALE * centre + np.asarray(EG3D_OFFSET)
    centre = EG3D_RADIUS * centre / np.linalg.norm(centre, axis=-1, keepdims=True)
    batch = np.broadcast_shapes(rot.shape[:-2], centre.shape[:-1])
    out = np.zeros((*batch, 4, 4))
    out[..., :3, :3] = rot * np.array([1.0, -1.0, -1.0])  # = rot @ diag(1, -1, -1): negate columns 1, 2
    out[..., :3, 3] = centre
    out[..., 3, 3] = 1.0
    return out


def eg3d_label_from_deep3d(angle: np.ndarray, trans: np.ndarray, focal: float = EG3D_FOCAL) -> np.ndarray:
    """(*batch, 3) Deep3D angle and trans -> (*batch, 25) EG3D label (intrinsics focal 4.2647, centre 0.5).

    The label matches EG3D's crop of the same photo (1024 frame at 300/102 of the
    Deep3D 224 frame, centre 700 px, resized to 512), as LPFF and FFHQ-EG3D use it.
    """
    c2w = eg3d_cam2world_from_deep3d(angle, trans)
    return encode_label(c2w, normalized_intrinsics(focal))


def deep3d_points_to_source(
    points_crop: np.ndarray, trans_params: np.ndarray, target_size: int = IMAGE_SIZE
) -> np.ndarray:
    """Deep3D's/LPFF's own approximate inverse of ``align_img`` for y-up points (LPFF's
    ``inverse_transformation``).

    lm <- (lm + (w/2 - T/2, h/2 - T/2)) / s + (t_x - w0/2, t_y - h0/2), all y-up, with
    trans_params = [w0, h0, s, t_x, t_y] and (w, h) = int(w0 s), int(h0 s). It ignores the
    truncation of the crop box and the resize's half-pixel offset (up to ~1 crop px); the
    crop's ``crop_from_source`` is the exact map.
    """
    w0, h0, s, tx, ty = (float(v) for v in np.asarray(trans_params, dtype=np.float64).reshape(-1)[:5])
    w, h = int(w0 * s), int(h0 * s)
    pts = np.asarray(points_crop)
    offset = np.array([w / 2 - target_size / 2, h / 2 - target_size / 2])
    return (pts + offset) / s + np.array([tx - w0 / 2, ty - h0 / 2])


def deep3d_points_from_source(
    points_source: np.ndarray, trans_params: np.ndarray, target_size: int = IMAGE_SIZE
) -> np.ndarray:
    """Deep3D's own landmark map of ``align_img`` (its ``resize_n_crop_img``) for y-up points; the inverse
    of :func:`deep3d_points_to_source`.

    lm <- (lm - (t_x, t_y) + (w0/2, h0/2)) s - (w/2 - T/2, h/2 - T/2), all y-up. FFHQ-UV stores its
    ``processed_data`` ``lm`` this way. Like its inverse it ignores the crop box's truncation and the
    resize's half-pixel offset; the crop's ``crop_from_source`` is the exact map of the pixels.
    """
    w0, h0, s, tx, ty = (float(v) for v in np.asarray(trans_params, dtype=np.float64).reshape(-1)[:5])
    w, h = int(w0 * s), int(h0 * s)
    pts = np.asarray(points_source)
    offset = np.array([w / 2 - target_size / 2, h / 2 - target_size / 2])
    return (pts - np.array([tx - w0 / 2, ty - h0 / 2])) * s - offset


def lpff_lm_5p_pred(
    landmarks_crop: np.ndarray, trans_params: np.ndarray, target_size: int = IMAGE_SIZE
) -> np.ndarray:
    """LPFF's ``lm_5p_pred/{face}.npy``: model landmarks in crop pixels (y down) mapped back to the
    image the crop was cut from (y down), the way LPFF's ``2_predict_camera_parameter.py`` does it.

    Steps as LPFF: R-Net's float32 y-up points (y_up = T - 1 - y, in float32), its approximate
    :func:`deep3d_points_to_source` (float64), then y = h0 - 1 - y_up. (68, 2) float64.
    """
    lm = np.array(landmarks_crop, dtype=np.float32, copy=True)
    lm[:, 1] = np.float32(target_size - 1) - lm[:, 1]
    back = deep3d_points_to_source(lm, trans_params, target_size)
    h0 = float(np.asarray(trans_params, dtype=np.float64).reshape(-1)[1])
    back[:, 1] = h0 - 1 - back[:, 1]
    return back
