"""EG3D's in-the-wild crop (``lpff.md`` §2.1): Deep3D ``align_img`` at 1024 with rescale 300,
the central 700 px, Lanczos down to 512.

Convention:
    As in :mod:`fk_align.deep3d_align` (image pixels, y down). Relative to Deep3D's
    224 crop (102 px/dm, i.e. 466.285 px/dm at 1024) the 1024 image is 300/466.285 =
    0.643x as zoomed; EG3D's intrinsics (focal 4.2647 of the 700 crop) assume exactly
    this framing, so the camera labels of ``fk.cameras.deep3d`` match these crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fk.types import apply_homography

from fk_align import transforms as tf
from fk_align.deep3d_align import align_img_pil, crop_from_trans_params

ALIGN_SIZE = 1024
RESCALE_FACTOR = 300.0
CENTER_CROP_SIZE = 700
OUTPUT_SIZE = 512


@dataclass
class Eg3dCrop:
    image: np.ndarray  # (512, 512, 3) uint8
    crop_from_source: np.ndarray  # (3, 3)
    trans_params: np.ndarray  # the 1024 align_img's [w0, h0, s, t_x, t_y]
    landmarks: np.ndarray | None


def eg3d_crop(image: np.ndarray, landmarks: np.ndarray, output_size: int = OUTPUT_SIZE) -> Eg3dCrop:
    """Crop one face as EG3D's ``crop_images_in_the_wild.py`` does (landmarks: (68, 2) or (5, 2))."""
    from PIL import Image

    pil, trans_params, _ = align_img_pil(image, landmarks, ALIGN_SIZE, RESCALE_FACTOR)
    left = int(ALIGN_SIZE / 2 - CENTER_CROP_SIZE / 2)  # 162
    box = (left, left, left + CENTER_CROP_SIZE, left + CENTER_CROP_SIZE)
    out = np.asarray(pil.crop(box).resize((output_size, output_size), Image.Resampling.LANCZOS))
    matrix = (
        tf.resize_matrix((CENTER_CROP_SIZE,) * 2, (output_size,) * 2)
        @ tf.crop_matrix(left, left)
        @ crop_from_trans_params(trans_params, ALIGN_SIZE)
    )
    lm = np.asarray(landmarks, dtype=np.float64)
    return Eg3dCrop(
        image=np.ascontiguousarray(out),
        crop_from_source=matrix,
        trans_params=trans_params,
        landmarks=apply_homography(matrix, lm),
    )
