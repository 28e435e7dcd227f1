"""Photo-space face masks made from the 68 landmarks (used where no face-parsing network is installed).

``landmark_face_mask`` fills the polygon of the jaw line (iBUG 0-16) closed over the eyebrows
(26 -> 17). ``forehead`` lifts the brow points by that fraction of the brow-to-chin height, so the
forehead and hairline are inside (the UV projection uses 0.7: the hair is part of the head's texture);
``shrink`` erodes the polygon by that fraction of the face width so the photo's background next to
the silhouette is not copied, and ``feather`` softens the edge (same unit).
"""

from __future__ import annotations

import numpy as np


def landmark_face_mask(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    forehead: float = 0.0,
    shrink: float = 0.0,
    feather: float = 0.0,
) -> np.ndarray:
    """(H, W) float32 mask in [0, 1] from (68, 2) landmarks (x right, y down, pixels)."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    lm = np.asarray(landmarks, np.float64)
    h, w = image_size
    jaw = lm[0:17]
    brows = lm[26:16:-1].copy()
    height = float(np.linalg.norm(lm[8] - lm[17:27].mean(0)))
    brows[:, 1] -= forehead * height
    poly = np.concatenate([jaw, brows])
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in poly.tolist()], fill=255)
    mask = np.asarray(canvas) > 0
    width = float(np.linalg.norm(lm[0] - lm[16]))
    r = int(round(shrink * width))
    if r > 0:  # erode by a disc of radius r: distance to the outside > r
        mask = ndimage.distance_transform_edt(mask) > r
    out = mask.astype(np.float32)
    if feather * width > 0:
        out = ndimage.gaussian_filter(out, feather * width).astype(np.float32)
    return out


# face-parsing.PyTorch's classes FFHQ-UV's "face" takes: skin, brows, eyes, nose, mouth, lips.
PARSE_FACE = (1, 2, 3, 4, 5, 10, 11, 12, 13)
PARSE_MOUTH = 11
PARSE_EYES = (4, 5)


def ffhquv_parse_mask(labels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 {0, 255}: FFHQ-UV's RGB-fitting parse mask from BiSeNet class ids (ffhquv.md §1.1.5).

    face × (1 − mouth) × (1 − (l_eye + r_eye > 0.5)): the face classes minus the inner mouth and both
    eyes; glasses, ears, neck and hair are out. Upstream stores it as an 8-bit image before aligning it.
    """
    lab = np.asarray(labels)
    face = np.isin(lab, PARSE_FACE)
    mouth = lab == PARSE_MOUTH
    eyes = np.isin(lab, PARSE_EYES)
    return np.where(face & ~mouth & ~eyes, 255, 0).astype(np.uint8)
