"""LPFF's 2400x2400 realignment (``lpff.md`` §1.3): FFHQ's alignment with a 1.8x quad.

Differences from :func:`fk_align.ffhq.ffhq_align`: both quad half-axes are scaled
by 1.8 (the realigned image covers 1.8x the FFHQ crop, so later Deep3D/EG3D/StyleGAN
crops never run off it); the padding's blur and median are computed on a 0.1x proxy;
faces whose crop is under 512 px on both sides are rejected; the landmarks are carried
into the realigned pixels.

Convention:
    As in :mod:`fk_align.ffhq`. LPFF maps landmarks with a least-squares affine and a
    plain 2400/4096 scale, which ignores Pillow's half-pixel offset (up to 0.2 px);
    here they go through the exact ``crop_from_source``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fk.types import apply_homography

from fk_align.ffhq import QuadAlignSettings, align_quad, ffhq_quad
from fk_align.landmarks import check_landmarks68

LPFF_REALIGN = QuadAlignSettings(
    output_size=2400, transform_size=4096, quad_scale=1.8, proxy_blur=True, min_crop_size=512
)
QUAD_SCALE = 1.8
OUTPUT_SIZE = 2400


@dataclass
class Realignment:
    image: np.ndarray  # (2400, 2400, 3) uint8 by default
    crop_from_source: np.ndarray  # (3, 3)
    landmarks: np.ndarray  # (68, 2) in realigned pixels
    quad: np.ndarray  # (4, 2) in source pixels


def lpff_realign(
    image: np.ndarray, landmarks: np.ndarray, settings: QuadAlignSettings = LPFF_REALIGN
) -> Realignment:
    """Realign one face as LPFF's ``realign_process_image`` does.

    Args:
        image: (H, W, 3) uint8 photo; landmarks: (68, 2) in its pixels.
        settings: ``LPFF_REALIGN`` (pass a copy with another ``output_size`` or
            ``min_crop_size`` to deviate).

    Raises:
        InputError: the face is too small (LPFF's low-resolution reject).
    """
    lm = check_landmarks68(landmarks)
    quad, qsize = ffhq_quad(lm, settings.quad_scale)
    res = align_quad(image, quad, qsize, settings)
    return Realignment(
        image=res.image,
        crop_from_source=res.crop_from_source,
        landmarks=apply_homography(res.crop_from_source, lm),
        quad=res.quad,
    )
