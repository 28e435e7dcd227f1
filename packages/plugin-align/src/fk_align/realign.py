"""LPFF's 2400x2400 realignment (``lpff.md`` §1.3): FFHQ's alignment with a 1.8x quad.

Differences from :func:`fk_align.ffhq.ffhq_align`: both quad half-axes are scaled
by 1.8 (the realigned image covers 1.8x the FFHQ crop, so later Deep3D/EG3D/StyleGAN
crops never run off it); the padding's blur and median are computed on a 0.1x proxy;
faces whose crop is under 512 px on both sides are rejected; the landmarks are carried
into the realigned pixels.

Convention:
    As in :mod:`fk_align.ffhq`. The landmarks default to LPFF's own map
    (``landmark_map="lpff"``): scaled nominally by the shrink factor, shifted by the crop
    and pad, mapped by the least-squares affine from ``quad + 0.5`` to the 4096 square and
    scaled by 2400/4096. That is what LPFF wrote to ``detections/*.txt`` and so what its
    Deep3D crops, cameras and later crops were made from. It is not the pixel map of the
    image: it ignores the shrink's and the final resize's half-pixel offsets and Pillow's
    output-side half pixel, so it sits up to a few pixels (measured 0.14-2.84 px on real
    photos, most of it from the shrink) away from where the feature is in the realigned
    image. ``landmark_map="exact"`` carries them through ``crop_from_source`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fk.errors import InputError
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


LANDMARK_MAPS = ("lpff", "exact")


def lpff_realign(
    image: np.ndarray,
    landmarks: np.ndarray,
    settings: QuadAlignSettings = LPFF_REALIGN,
    landmark_map: str = "lpff",
) -> Realignment:
    """Realign one face as LPFF's ``realign_process_image`` does.

    Args:
        image: (H, W, 3) uint8 photo; landmarks: (68, 2) in its pixels.
        settings: ``LPFF_REALIGN`` (pass a copy with another ``output_size`` or
            ``min_crop_size`` to deviate).
        landmark_map: "lpff" (LPFF's least-squares map, the default) or "exact" (the
            image's pixel map, an fk option).

    Raises:
        InputError: the face is too small (LPFF's low-resolution reject), or an
            unknown ``landmark_map``.
    """
    if landmark_map not in LANDMARK_MAPS:
        raise InputError(f"lpff_realign: landmark_map must be one of {LANDMARK_MAPS}, got {landmark_map!r}")
    lm = check_landmarks68(landmarks)
    quad, qsize = ffhq_quad(lm, settings.quad_scale)
    res = align_quad(image, quad, qsize, settings, points=lm if landmark_map == "lpff" else None)
    return Realignment(
        image=res.image,
        crop_from_source=res.crop_from_source,
        landmarks=res.points_nominal
        if landmark_map == "lpff"
        else apply_homography(res.crop_from_source, lm),
        quad=res.quad,
    )
