"""The 68 -> 5 landmark reduction every seed uses (Deep3D's ``extract_5p``, LPFF's detections, ArcFace).

Convention:
    68 points in the iBUG 300-W order dlib and 2D-FAN give (0-based), as (..., 68, 2)
    (x, y). The 5 points are [left eye, right eye, nose tip, left mouth corner, right
    mouth corner], "left" meaning image-left: eye centres are the means of the eye
    corners 36 & 39 and 42 & 45, then points 30, 48 and 54 (1-based iBUG 37&40, 43&46,
    31, 49, 55). That is Deep3DFaceRecon's ``extract_5p`` order and MTCNN's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fk.errors import InputError

EYE_CORNERS_LEFT = (36, 39)
EYE_CORNERS_RIGHT = (42, 45)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def five_from_68(landmarks: Any) -> Any:
    """Reduce (..., 68, 2) landmarks to (..., 5, 2); (..., 68, 3) 3-D landmarks to (..., 5, 3) the same way
    (Deep3D's and FFHQ-UV's ``similarity_Lm3D_all.mat``).

    Args:
        landmarks: a numpy array or a torch tensor (any leading batch dims).

    Returns:
        The same kind: a torch tensor keeps its dtype and device (and gradient); a
        numpy float array keeps its dtype (float32 in, float32 out, as Deep3D's
        ``np.mean`` does); other numpy input becomes float64.
    """
    is_torch = type(landmarks).__module__.startswith("torch")
    lm = landmarks if is_torch else np.asarray(landmarks)
    if not is_torch and not np.issubdtype(lm.dtype, np.floating):
        lm = lm.astype(np.float64)
    if tuple(lm.shape[-2:]) not in ((68, 2), (68, 3)):
        raise InputError(
            f"five_from_68: expected (..., 68, 2) or (..., 68, 3) landmarks, got shape {tuple(lm.shape)}"
        )
    rows = [
        (lm[..., EYE_CORNERS_LEFT[0], :] + lm[..., EYE_CORNERS_LEFT[1], :]) / 2,
        (lm[..., EYE_CORNERS_RIGHT[0], :] + lm[..., EYE_CORNERS_RIGHT[1], :]) / 2,
        lm[..., NOSE_TIP, :],
        lm[..., MOUTH_LEFT, :],
        lm[..., MOUTH_RIGHT, :],
    ]
    if is_torch:
        import torch

        return torch.stack(rows, dim=-2)
    return np.stack(rows, axis=-2)
