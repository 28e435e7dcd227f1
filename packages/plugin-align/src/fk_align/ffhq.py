"""FFHQ/StyleGAN face alignment from 68 landmarks (``lpff.md`` §6), with the exact map back.

The official recipe (``recreate_aligned_images`` of NVlabs/ffhq-dataset), restated:
an oriented square ("quad") is built from the eye and mouth landmarks, the photo is
shrunk when the quad is much larger than the output, cropped around the quad with a
border, padded (reflect, blurred and median-filled) when the quad leaves the photo,
warped onto a ``transform_size`` square and resized to ``output_size``. LPFF's variants
(the StyleGAN crop's wider border; the 2400 realign in :mod:`fk_align.realign`) change
only the constants in :class:`QuadAlignSettings`.

Convention:
    Landmarks are (68, 2) (x, y) pixels, y down, pixel centres at integers, iBUG
    order. Images are (H, W, 3) uint8 RGB. ``crop_from_source`` is a (3, 3) matrix
    taking homogeneous source pixels to output pixels; it composes the exact pixel
    maps of every resample, crop, pad and warp actually applied (not the nominal
    quad), so landmarks mapped through it match the output image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from fk.errors import InputError

from fk_align import transforms as tf
from fk_align.landmarks import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, check_landmarks68


@dataclass(frozen=True)
class QuadAlignSettings:
    """The constants of one FFHQ-style alignment (defaults: official FFHQ)."""

    output_size: int = 1024
    transform_size: int = 4096
    quad_scale: float = 1.0  # LPFF realign: 1.8
    border_fraction: float = 0.1  # crop border = max(rint(border_fraction * qsize), border_min)
    border_min: int = 3  # LPFF StyleGAN crop: 0.2 and 100
    enable_padding: bool = True
    proxy_blur: bool = False  # LPFF realign: blur and median on a 0.1x proxy
    min_crop_size: int = 0  # LPFF realign: 512 (reject when the crop is smaller on both sides)
    warp_resample: str = "bilinear"


FFHQ = QuadAlignSettings()
LPFF_STYLEGAN = QuadAlignSettings(border_fraction=0.2, border_min=100)


@dataclass
class QuadAlignment:
    """An aligned image, the quad it came from and the exact map back."""

    image: np.ndarray  # (output_size, output_size, 3) uint8
    crop_from_source: np.ndarray  # (3, 3)
    quad: np.ndarray  # (4, 2) the quad in source pixels (UL, LL, LR, UR)
    qsize: float  # the quad's side in source pixels
    # ``points`` carried as LPFF does (nominal shrink, crop, pad, least-squares warp map, output
    # scale), in output pixels; None when no points were given.
    points_nominal: np.ndarray | None = None


def ffhq_quad(landmarks: np.ndarray, quad_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """FFHQ's oriented square from 68 landmarks.

    Args:
        landmarks: (68, 2) points.
        quad_scale: multiplies both half-axes (LPFF's realign uses 1.8).

    Returns:
        quad (4, 2) float64 corners [upper-left, lower-left, lower-right, upper-right]
        of the upright face, and qsize = the side length (2 |x|).

    Convention:
        eye_l, eye_r = means of points 36-41 and 42-47; mouth = mean(48, 54);
        ee = eye_r - eye_l, em = mouth - (eye_l + eye_r) / 2. The half-axis x is
        ee minus em turned by 90 degrees, normalised and scaled to
        max(2 |ee|, 1.8 |em|); y is x turned +90 degrees in image coordinates
        (down for an upright face); the centre is the eye midpoint + 0.1 em.
    """
    lm = check_landmarks68(landmarks)
    eye_l = lm[list(EYE_LEFT)].mean(axis=0)
    eye_r = lm[list(EYE_RIGHT)].mean(axis=0)
    eye = (eye_l + eye_r) / 2.0
    ee = eye_r - eye_l
    em = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) / 2.0 - eye
    x = np.array([ee[0] + em[1], ee[1] - em[0]])
    norm = math.hypot(*x)
    if norm < 1e-9:
        raise InputError(
            "ffhq_quad: degenerate landmarks (eyes and mouth coincide)", hint="check the detector output"
        )
    x = x / norm * max(2.0 * math.hypot(*ee), 1.8 * math.hypot(*em))
    y = np.array([-x[1], x[0]])
    c = eye + 0.1 * em
    x, y = x * quad_scale, y * quad_scale
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, 2.0 * math.hypot(*x)


def align_quad(
    image: np.ndarray,
    quad: np.ndarray,
    qsize: float,
    settings: QuadAlignSettings = FFHQ,
    points: np.ndarray | None = None,
) -> QuadAlignment:
    """Shrink, crop, pad, warp and resize ``image`` so ``quad`` fills the output square.

    Args:
        image: (H, W, 3) uint8.
        quad: (4, 2) from :func:`ffhq_quad`; qsize: its side.
        settings: the variant's constants.
        points: optional (N, 2) source points to carry through the steps the way
            LPFF's ``realign_process_image`` carries its landmarks (see
            :attr:`QuadAlignment.points_nominal`).

    Returns:
        :class:`QuadAlignment`.

    Raises:
        InputError: the cropped face is smaller than ``settings.min_crop_size`` on
            both sides (LPFF's low-resolution reject).

    The image stays a Pillow image wherever the original uses Pillow (shrink, crop,
    warp, resize) and a numpy array only for the padding, so it is converted at most
    twice per face.
    """
    from PIL import Image

    arr: np.ndarray | None = np.ascontiguousarray(image)
    pil = None
    source_quad = np.asarray(quad, dtype=np.float64).copy()
    q = source_quad.copy()
    cur_from_source = np.eye(3)
    s = settings
    pts = None if points is None else np.asarray(points, dtype=np.float64).copy()

    # Shrink: resample once to near the output's scale so the warp does not alias.
    shrink = int(math.floor(qsize / s.output_size * 0.5))
    if shrink > 1:
        h, w = arr.shape[:2]
        rsize = (int(np.rint(w / shrink)), int(np.rint(h / shrink)))
        cur_from_source = tf.resize_matrix((w, h), rsize) @ cur_from_source
        pil, arr = Image.fromarray(arr).resize(rsize, Image.Resampling.LANCZOS), None
        q /= shrink  # FFHQ scales the quad nominally; the matrix above records the true map
        qsize /= shrink
        if pts is not None:
            pts = pts / shrink

    # Crop around the quad with a border.
    border = max(int(np.rint(qsize * s.border_fraction)), s.border_min)
    w, h = pil.size if pil is not None else (arr.shape[1], arr.shape[0])
    box = (
        int(math.floor(q[:, 0].min())),
        int(math.floor(q[:, 1].min())),
        int(math.ceil(q[:, 0].max())),
        int(math.ceil(q[:, 1].max())),
    )
    box = (max(box[0] - border, 0), max(box[1] - border, 0), min(box[2] + border, w), min(box[3] + border, h))
    if box[2] - box[0] < w or box[3] - box[1] < h:
        if pil is not None:
            pil = pil.crop(box)
        else:
            arr = arr[box[1] : box[3], box[0] : box[2]]
        q -= box[:2]
        cur_from_source = tf.crop_matrix(box[0], box[1]) @ cur_from_source
        if pts is not None:
            pts = pts - np.asarray(box[:2], dtype=np.float64)
    w, h = pil.size if pil is not None else (arr.shape[1], arr.shape[0])
    if s.min_crop_size and w < s.min_crop_size and h < s.min_crop_size:
        raise InputError(
            f"face too small: the crop around it is {w}x{h} px, below {s.min_crop_size} on both sides",
            hint="LPFF rejects such faces; use a larger photo or crop:ffhq",
        )

    # Pad where the quad leaves the image: reflect, then blur and median-fill the padding.
    pad = (
        int(math.floor(q[:, 0].min())),
        int(math.floor(q[:, 1].min())),
        int(math.ceil(q[:, 0].max())),
        int(math.ceil(q[:, 1].max())),
    )
    pad = (
        max(-pad[0] + border, 0),
        max(-pad[1] + border, 0),
        max(pad[2] - w + border, 0),
        max(pad[3] - h + border, 0),
    )
    if s.enable_padding and max(pad) > border - 4:
        pad = tuple(max(p, int(np.rint(qsize * 0.3))) for p in pad)
        if pil is not None:
            arr = np.asarray(pil)
        arr, pil = _pad_blurred(arr, pad, qsize, proxy=s.proxy_blur), None
        q += pad[:2]
        cur_from_source = tf.translation(pad[0], pad[1]) @ cur_from_source
        if pts is not None:
            pts = pts + np.asarray(pad[:2], dtype=np.float64)

    # Warp the quad onto a square, then resize to the output.
    out_from_cur = tf.quad_output_from_source(q, s.transform_size)
    if pts is not None:
        pts = _lpff_quad_points(q, s.transform_size, pts)
    if pil is None:
        pil = Image.fromarray(arr)
    img = tf.warp_quad_image(pil, q, s.transform_size, s.warp_resample)
    if s.output_size < s.transform_size:
        out_from_cur = tf.resize_matrix((s.transform_size,) * 2, (s.output_size,) * 2) @ out_from_cur
        img = img.resize((s.output_size, s.output_size), Image.Resampling.LANCZOS)
        if pts is not None:
            pts = pts * (s.output_size / s.transform_size)
    return QuadAlignment(
        image=np.asarray(img),
        crop_from_source=out_from_cur @ cur_from_source,
        quad=source_quad,
        qsize=float(qsize * max(shrink, 1)),
        points_nominal=pts,
    )


def _lpff_quad_points(q: np.ndarray, size: int, points: np.ndarray) -> np.ndarray:
    """LPFF's landmark map for the warp: the least-squares affine A = D S^T (S S^T)^-1 taking the
    homogeneous corners ``q + 0.5`` to (0, 0), (0, T), (T, T), (T, 0), applied to ``points``.

    It keeps Pillow's +0.5 on the source side only, so it differs from the exact pixel map
    (:func:`fk_align.transforms.quad_output_from_source`) by half an output pixel minus half a
    source pixel; that is what LPFF's ``detections`` and later crops were made from.
    """
    src = np.concatenate([(q + 0.5).T, np.ones((1, 4))], axis=0)
    dst = np.array([[0, 0], [0, size], [size, size], [size, 0]], dtype=np.float64).T
    dst = np.concatenate([dst, np.ones((1, 4))], axis=0)
    a = dst.dot(src.T).dot(np.linalg.inv(src.dot(src.T)))
    hom = np.concatenate([points, np.ones((points.shape[0], 1))], axis=1).T
    return a.dot(hom)[:2, :].T


def _pad_blurred(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float, proxy: bool) -> np.ndarray:
    """Reflect-pad by (left, top, right, bottom), then fade the padding into a blur and the median colour.

    mask is 1 at the outer edge, 0 at the original image's border and negative inside;
    the blur weight clip(3 mask + 1) reaches a third of a pad width into the photo. The
    median is taken *after* the blur blend, as FFHQ and LPFF do. ``proxy`` computes the
    blur and the median on a 0.1x copy (LPFF's speed-up, with its OpenCV operations).
    """
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = pad
    f = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = f.shape[:2]
    y, x = np.ogrid[:h, :w]
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = 1.0 - np.minimum(np.float32(x) / np.float32(left), np.float32(w - 1 - x) / np.float32(right))
        my = 1.0 - np.minimum(np.float32(y) / np.float32(top), np.float32(h - 1 - y) / np.float32(bottom))
    mask = np.maximum(mx, my)[:, :, None]
    if proxy:
        blurred = _proxy_blur(f, sigma=qsize * 0.02 * 0.1)
    else:
        sigma = qsize * 0.02
        blurred = gaussian_filter(f, [sigma, sigma, 0])
    f += (blurred - f) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    median = _proxy_median(f) if proxy else np.median(f, axis=(0, 1))
    f += (median - f) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def _proxy_blur(f: np.ndarray, sigma: float) -> np.ndarray:
    """LPFF's blur: OpenCV INTER_AREA to 0.1x (OpenCV's own size rounding), Gaussian, INTER_LANCZOS4 back."""
    import cv2
    from scipy.ndimage import gaussian_filter

    h, w = f.shape[:2]
    small = cv2.resize(f, (0, 0), fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA)
    small = gaussian_filter(small, [sigma, sigma, 0])
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LANCZOS4)


def _proxy_median(f: np.ndarray) -> np.ndarray:
    """LPFF's fill colour: the per-channel median of a 0.1x INTER_AREA copy of the blurred image."""
    import cv2

    return np.median(cv2.resize(f, (0, 0), fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA), axis=(0, 1))


def ffhq_align(image: np.ndarray, landmarks: np.ndarray, settings: QuadAlignSettings = FFHQ) -> QuadAlignment:
    """Official FFHQ alignment (or a variant: ``LPFF_STYLEGAN``) of one face."""
    quad, qsize = ffhq_quad(landmarks, settings.quad_scale)
    return align_quad(image, quad, qsize, settings)
