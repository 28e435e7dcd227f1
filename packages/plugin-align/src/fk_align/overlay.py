"""Debug overlays: landmarks (coloured by part), detector boxes and crop outlines drawn on a photo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fk.types import Crop, Face, apply_homography

from fk_align import landmarks as L

# One colour per landmark group, so a swapped eye or a mouth on the nose shows at a glance.
GROUP_COLOURS: tuple[tuple[tuple[int, ...], tuple[int, int, int]], ...] = (
    (L.JAW, (255, 255, 255)),
    (L.BROW_LEFT + L.BROW_RIGHT, (255, 200, 0)),
    (L.NOSE_BRIDGE + L.NOSE_BASE, (0, 200, 255)),
    (L.EYE_LEFT, (0, 255, 0)),
    (L.EYE_RIGHT, (255, 0, 255)),
    (L.MOUTH_OUTER + L.MOUTH_INNER, (255, 40, 40)),
)


def _radius(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 400))


def draw_landmarks(draw: object, points: np.ndarray, radius: int) -> None:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape == (68, 2):
        for idx, colour in GROUP_COLOURS:
            for x, y in pts[list(idx)]:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    else:
        for x, y in pts:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(0, 255, 0))


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """The photo with each face's box (labelled by index) and landmarks."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(image))
    d = ImageDraw.Draw(im)
    r = _radius(image)
    for f in faces:
        x0, y0, x1, y1 = (float(v) for v in f.box)
        d.rectangle([x0, y0, x1, y1], outline=(255, 255, 0), width=r)
        d.text((x0 + 2, y0 + 2), f"{f.index:02d} {f.score:.2f}", fill=(255, 255, 0))
        if f.landmarks is not None:
            draw_landmarks(d, f.landmarks, r)
        elif f.keypoints is not None:
            draw_landmarks(d, f.keypoints, r)
    return np.asarray(im)


def draw_crop(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The source photo with the crop's outline (its square mapped back) and the face's landmarks."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(image))
    d = ImageDraw.Draw(im)
    r = _radius(image)
    h, w = crop.image.shape[:2]
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    outline = apply_homography(crop.source_from_crop, corners)
    d.polygon([tuple(p) for p in outline], outline=(255, 255, 0), width=r)
    # Mark the crop's top edge so a rotated crop shows which way is up.
    d.line([tuple(outline[0]), tuple(outline[1])], fill=(255, 0, 0), width=2 * r)
    if crop.landmarks is not None:
        draw_landmarks(d, crop.to_source(crop.landmarks), r)
    return np.asarray(im)
