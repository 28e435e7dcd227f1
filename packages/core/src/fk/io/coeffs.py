"""Deep3DFaceRecon's saved coefficient dict, the one writer of its ``.mat`` content and LPFF's ``.npy``.

Convention (Deep3D ``FaceReconModel.get_coeff``/``save_coeff``, LPFF's
``realign/epoch_20_000000/{face}.npy``): keys id (1, 80), exp (1, 64), tex (1, 80),
angle (1, 3), gamma (1, 27), trans (1, 3), all float32 as R-Net outputs them, and lm68
(1, 68, 2) float32: the predicted landmarks in 224-crop pixels, y down. Deep3D writes the
dict with ``scipy.io.savemat``; LPFF with ``np.save`` (a pickled 0-d object array, read back
with ``np.load(path, allow_pickle=True).item()``, as its ``5_process_camera_parameter.py`` does).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from fk.errors import InputError

COEFF_KEYS = ("id", "exp", "tex", "angle", "gamma", "trans")


def deep3d_coeff_dict(coeffs: Mapping[str, Any], landmarks68: Any) -> dict[str, np.ndarray]:
    """The dict ``get_coeff()`` returns: each coefficient (1, K) float32, ``lm68`` (1, 68, 2) float32."""
    missing = [k for k in COEFF_KEYS if k not in coeffs]
    if missing:
        raise InputError(f"Deep3D coefficients lack {', '.join(missing)}")
    out = {k: np.asarray(coeffs[k], dtype=np.float32).reshape(1, -1) for k in COEFF_KEYS}
    lm = np.asarray(landmarks68, dtype=np.float32)
    if lm.size != 136:
        raise InputError(f"lm68: expected 68 (x, y) landmarks, got shape {lm.shape}")
    out["lm68"] = lm.reshape(1, 68, 2)
    return out


def lpff_coeff_npy(coeffs: Mapping[str, Any], landmarks68: Any) -> bytes:
    """The bytes of LPFF's ``epoch_20_000000/{face}.npy``: ``np.save`` of :func:`deep3d_coeff_dict`."""
    buf = io.BytesIO()
    np.save(buf, np.array(deep3d_coeff_dict(coeffs, landmarks68), dtype=object), allow_pickle=True)
    return buf.getvalue()
