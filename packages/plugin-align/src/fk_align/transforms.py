"""3x3 pixel maps for the image operations the crops chain together, and the quad warp.

Every crop is a chain of resizes, integer crops, pads and one quad warp; each step's
exact pixel map is a 3x3 matrix here, and a crop's ``crop_from_source`` is their product.

Convention:
    Points are (x, y) pixels with pixel centres at integers (``fk.types``): the
    continuous image spans [-0.5, W - 0.5]. Matrices act on homogeneous column
    vectors and are named ``<to>_from_<from>``. Pillow resamples with pixel centres
    at +0.5 in its own edge-based coordinates, which is where the 0.5 terms come from.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def translation(dx: float, dy: float) -> np.ndarray:
    """(3, 3) matrix adding (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def resize_matrix(src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """dst_from_src of a whole-image resize from ``src_size`` to ``dst_size`` (both (width, height)).

    Pillow's ``Image.resize`` (any filter) maps the image edges onto each other, so
    x_dst = (x_src + 0.5) * W_dst / W_src - 0.5, likewise for y.
    """
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def crop_matrix(left: float, top: float) -> np.ndarray:
    """crop_from_image of cutting a box whose top-left pixel is (left, top) (a pad is a negative crop)."""
    return translation(-left, -top)


def quad_output_from_source(quad: np.ndarray, size: int) -> np.ndarray:
    """output_from_source of Pillow's QUAD warp as FFHQ calls it (corners ``quad + 0.5``).

    Args:
        quad: (4, 2) corners [upper-left, lower-left, lower-right, upper-right] in
            pixel-centre coordinates; must be a parallelogram (FFHQ's is a square),
            for which Pillow's bilinear quad map is exactly affine.
        size: the square output's side in pixels.

    Returns:
        (3, 3) affine matrix. Derivation: Pillow samples output pixel (i, j) at edge
        coordinates (u, v) = (i + 0.5, j + 0.5) from the source edge point
        Q0 + (Q3 - Q0) u / size + (Q1 - Q0) v / size with Q = quad + 0.5; moving both
        sides to pixel-centre coordinates gives source_from_output below.
    """
    q = np.asarray(quad, dtype=np.float64)
    ex = (q[3] - q[0]) / size  # source step per output pixel along x
    ey = (q[1] - q[0]) / size  # ... along y
    origin = q[0] + 0.5 * ex + 0.5 * ey  # source point of output pixel centre (0, 0)
    source_from_output = np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0.0, 0.0, 1.0]])
    return np.linalg.inv(source_from_output)


def warp_quad(image: np.ndarray, quad: np.ndarray, size: int, resample: str = "bilinear") -> np.ndarray:
    """Sample the square ``size`` x ``size`` image spanned by ``quad`` (:func:`quad_output_from_source`)."""
    from PIL import Image

    return np.asarray(warp_quad_image(Image.fromarray(image), quad, size, resample))


def warp_quad_image(image: Any, quad: np.ndarray, size: int, resample: str = "bilinear") -> Any:
    """:func:`warp_quad` on a Pillow image, returning a Pillow image (no array round trip)."""
    from PIL import Image

    filt = {
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "bicubic": Image.Resampling.BICUBIC,
    }[resample]
    data = (np.asarray(quad, dtype=np.float64) + 0.5).flatten().tolist()
    return image.transform((size, size), Image.Transform.QUAD, data, filt)


def resize(image: np.ndarray, size: tuple[int, int], resample: str = "lanczos") -> np.ndarray:
    """Pillow resize of an (H, W, C) uint8 array to ``size`` = (width, height)."""
    from PIL import Image

    filt = {
        "lanczos": Image.Resampling.LANCZOS,
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "box": Image.Resampling.BOX,
    }[resample]
    return np.asarray(Image.fromarray(image).resize(tuple(int(s) for s in size), filt))


def crop_box(image: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """Pillow's ``Image.crop``: the box may leave the image; outside pixels are black."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).crop((int(left), int(top), int(right), int(bottom))))


def apply_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) matrix to (..., 2) points (with the homogeneous divide)."""
    from fk.types import apply_homography

    return apply_homography(matrix, points)
