"""Deep3DFaceRecon's ``align_img`` (POS least squares, rescale, crop) and its inverse (``deep3d.md`` §3).

The 5 image points are fitted to the 5 standard 3D points with an affine camera
(POS); its scale s_pos and the projected 3D origin t fix the crop: the image is
resized by s = rescale_factor / s_pos (bicubic) and a ``target_size`` square is cut
so the origin lands near its centre. The same function with target 1024 and rescale
300 is the first half of EG3D's in-the-wild crop (:mod:`fk_align.eg3d_crop`).

Convention:
    The public functions take and return image pixels (x right, y down, pixel
    centres at integers). Deep3D works y-up internally (y' = H - 1 - y); ``t`` and
    ``trans_params`` are kept in Deep3D's y-up form so they match its files.
    ``trans_params = [w0, h0, s, t_x, t_y]`` as Deep3D saves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fk.cameras.deep3d import deep3d_points_to_source  # noqa: F401 - LPFF's inverse, re-exported
from fk.errors import InputError
from fk.types import apply_homography

from fk_align import transforms as tf
from fk_align.landmarks import five_from_68, flip_y

# The five standard 3D points (decimetres, BFM frame: x right, y up, z to the viewer), derived as
# Deep3D's load_lm3d does: similarity_Lm3D_all.mat['lm'] (68x3 float32) reduced to
# [mean(36, 39), mean(42, 45), 30, 48, 54] with float32 means. These are those float32 values, exactly.
STANDARD_5PT_3D = np.array(
    [
        [-0.3114865720272064, 0.29036077857017517, 0.13377952575683594],  # left eye
        [0.30979886651039124, 0.289720356464386, 0.1317952573299408],  # right eye
        [0.003253498813137412, -0.04617932438850403, 0.5524424314498901],  # nose tip
        [-0.25216928124427795, -0.3813391625881195, 0.22405731678009033],  # left mouth corner
        [0.24846619367599487, -0.38128235936164856, 0.22235769033432007],  # right mouth corner
    ],
    dtype=np.float64,
)

TARGET_SIZE = 224
RESCALE_FACTOR = 102.0


def load_lm3d(path: str | Path) -> np.ndarray:
    """(5, 3) reference points from a ``similarity_Lm3D_all.mat`` (key ``lm``: 68 x 3, or already 5 x 3).

    Reduced as Deep3D's ``load_lm3d`` and FFHQ-UV's ``extract_5p`` do (the file's dtype is kept, so a
    float32 file gives float32 means). FFHQ-UV aligns against its ``topo_assets`` copy of this file.
    """
    from fk.landmarks import five_from_68
    from scipy.io import loadmat

    p = Path(path)
    hint = "use Deep3D's BFM/ or FFHQ-UV's topo_assets/ similarity_Lm3D_all.mat"
    if not p.is_file():
        raise InputError(f"{p}: no such file", hint="pass the path of a similarity_Lm3D_all.mat")
    try:
        lm = loadmat(str(p))["lm"]
    except (KeyError, ValueError, TypeError, OSError, NotImplementedError) as exc:
        why = f"{type(exc).__name__}: {str(exc)[:100]}"
        raise InputError(f"{p}: not a similarity_Lm3D_all.mat with a 68 x 3 'lm' ({why})", hint=hint) from None
    ok = lm.shape in ((68, 3), (5, 3)) and np.issubdtype(lm.dtype, np.floating)
    ok = ok and bool(np.isfinite(lm).all())
    if not ok:
        raise InputError(f"{p}: 'lm' must be 68 x 3 (or 5 x 3) finite floats, got {lm.shape} {lm.dtype}",
                         hint=hint)  # fmt: skip
    return lm if lm.shape == (5, 3) else five_from_68(lm)


@dataclass
class Deep3DAlignment:
    image: np.ndarray  # (target, target, 3) uint8
    crop_from_source: np.ndarray  # (3, 3), image pixels -> crop pixels (both y down)
    trans_params: np.ndarray  # (5,) [w0, h0, s, t_x, t_y] (t y-up)
    landmarks: np.ndarray | None  # the input landmarks in crop pixels (y down)
    box: tuple[int, int, int, int]  # (left, up, right, lower) in the resized image


def pos(points2d: np.ndarray, points3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Affine-camera fit x ~ r1.X + a, y ~ r2.X + b by linear least squares (POS without the rotation).

    Args:
        points2d: (N, 2) image points (Deep3D passes y-up); points3d: (N, 3), N >= 4.

    Returns:
        t = (a, b), the image of the 3D origin, and s = (|r1| + |r2|) / 2 in pixels per 3D unit.
    """
    p2 = np.asarray(points2d, dtype=np.float64)
    p3 = np.asarray(points3d, dtype=np.float64)
    n = p2.shape[0]
    if p2.shape != (n, 2) or p3.shape != (n, 3) or n < 4:
        raise InputError(f"pos: expected (N, 2) and (N, 3) points with N >= 4, got {p2.shape} and {p3.shape}")
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = p3
    a[0::2, 3] = 1.0
    a[1::2, 4:7] = p3
    a[1::2, 7] = 1.0
    k, *_ = np.linalg.lstsq(a, p2.reshape(-1), rcond=None)
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
    if not np.isfinite(s) or s <= 0:
        raise InputError("pos: degenerate landmarks (zero scale)", hint="check the detector output")
    return np.array([k[3], k[7]]), float(s)


def _five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 points align_img fits. Like Deep3D, float32 input stays float32 (its ``read_data`` loads
    ``detections/*.txt`` as float32 and flips y in float32); anything else is float64."""
    lm = np.asarray(landmarks)
    if lm.dtype != np.float32:
        lm = lm.astype(np.float64)
    if lm.shape == (68, 2):
        return five_from_68(lm)
    if lm.shape == (5, 2):
        return lm
    raise InputError(f"align_img: expected (68, 2) or (5, 2) landmarks, got shape {lm.shape}")


def crop_geometry(
    trans_params: np.ndarray, target_size: int = TARGET_SIZE
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The resized size (w, h) and crop box (left, up, right, lower) that ``align_img`` used.

    Deep3D truncates with ``astype(int32)``, i.e. towards zero; so does ``int``.
    """
    w0, h0, s, tx, ty = (float(v) for v in np.asarray(trans_params, dtype=np.float64))
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - target_size / 2 + (tx - w0 / 2) * s)
    up = int(h / 2 - target_size / 2 + (h0 / 2 - ty) * s)
    return (w, h), (left, up, left + target_size, up + target_size)


def crop_from_trans_params(trans_params: np.ndarray, target_size: int = TARGET_SIZE) -> np.ndarray:
    """Exact (3, 3) crop_from_source of ``align_img`` from its ``trans_params`` (image pixels, y down)."""
    w0, h0 = float(trans_params[0]), float(trans_params[1])
    (w, h), (left, up, _, _) = crop_geometry(trans_params, target_size)
    return tf.crop_matrix(left, up) @ tf.resize_matrix((w0, h0), (w, h))


def align_img_pil(
    image: np.ndarray,
    landmarks: np.ndarray,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
    points3d: np.ndarray | None = None,
) -> tuple[object, np.ndarray, tuple[int, int, int, int]]:
    """:func:`align_img`'s crop as a Pillow image (one array->Pillow conversion, as Deep3D works on
    Pillow images), with its ``trans_params`` and box."""
    from PIL import Image

    img = np.asarray(image)
    h0, w0 = img.shape[:2]
    lm5_up = flip_y(_five_points(landmarks), h0)
    t, s_pos = pos(lm5_up, STANDARD_5PT_3D if points3d is None else points3d)
    s = rescale_factor / s_pos
    trans_params = np.array([w0, h0, s, t[0], t[1]], dtype=np.float64)
    (w, h), box = crop_geometry(trans_params, target_size)
    if w < 1 or h < 1:
        raise InputError(f"align_img: the face is too large to rescale ({w0}x{h0} -> {w}x{h})")
    pil = Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC).crop(box)
    return pil, trans_params, box


def align_img(
    image: np.ndarray,
    landmarks: np.ndarray,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
    points3d: np.ndarray | None = None,
) -> Deep3DAlignment:
    """Deep3D's ``align_img``.

    Args:
        image: (H, W, 3) uint8; landmarks: (68, 2) or (5, 2) image pixels (y down);
            68 points are reduced with :func:`fk_align.landmarks.five_from_68`.
        target_size: the crop side (224; EG3D uses 1024).
        rescale_factor: pixels per decimetre after resizing (102; EG3D uses 300).
        points3d: (5, 3) reference points (:func:`load_lm3d`); default Deep3D's
            :data:`STANDARD_5PT_3D`.

    Returns:
        :class:`Deep3DAlignment`; the crop's pixels equal Deep3D's (Pillow bicubic
        resize, then a crop padded with black where it leaves the image).
    """
    pil, trans_params, box = align_img_pil(image, landmarks, target_size, rescale_factor, points3d)
    matrix = crop_from_trans_params(trans_params, target_size)
    lm = np.asarray(landmarks, dtype=np.float64)
    return Deep3DAlignment(
        image=np.asarray(pil),
        crop_from_source=matrix,
        trans_params=trans_params,
        landmarks=apply_homography(matrix, lm),
        box=box,
    )
