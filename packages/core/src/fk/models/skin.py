"""Deep3D's skin attention mask: a YCbCr two-GMM posterior (deep3d.md §3.5).

Two 4-component 3-D Gaussian mixtures over (Y, Cb, Cr) (BT.601, studio range),
one for skin and one for non-skin, with priors 0.8 / 0.2. The posterior
P(skin | pixel) is the photometric loss weight. The mixture parameters are data
published with Deep3DFaceRecon (util/skin_mask.py) and are reproduced as numbers.

Convention:
    - input: (H, W, 3) RGB, uint8 or float in 0..255 (note: RGB, not cv2's BGR)
    - ``skin_probability`` returns float64 (H, W) in [0, 1]; ``skin_mask_uint8`` returns
      the stored form, round(255·p) as uint8 (H, W), which Deep3D tiles to 3 channels
"""

from __future__ import annotations

import numpy as np

_RGB_TO_YCBCR = np.array([[65.481, 128.553, 24.966],
                          [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])

SKIN_PRIOR = 0.8
_CHUNK = 1 << 18  # pixels per pass

SKIN_WEIGHTS = np.array([0.24063933, 0.16365987, 0.26034665, 0.33535415])
SKIN_MEANS = np.array([[113.71862, 103.39613, 164.08226],
                       [150.19858, 105.18467, 155.51428],
                       [183.92976, 107.62468, 152.71820],
                       [114.90524, 113.59782, 151.38217]])
SKIN_COV_DET = np.array([5692842.5, 5851930.5, 2329131.0, 1585971.0])
SKIN_COV_INV = np.array([
    [[0.0019472069, 0.0020450759, -0.00060243998], [0.0020450759, 0.017700525, 0.0051420014],
     [-0.00060243998, 0.0051420014, 0.0081308950]],
    [[0.0027110141, 0.0011036990, 0.0023122299], [0.0011036990, 0.010707724, 0.010742856],
     [0.0023122299, 0.010742856, 0.017481629]],
    [[0.0048026871, 0.00022935172, 0.0077668377], [0.00022935172, 0.011729696, 0.0081661865],
     [0.0077668377, 0.0081661865, 0.025374353]],
    [[0.0011989699, 0.0022453172, -0.0010748957], [0.0022453172, 0.047758564, 0.020332102],
     [-0.0010748957, 0.020332102, 0.024502251]],
])

NONSKIN_WEIGHTS = np.array([0.12791070, 0.31130761, 0.34245777, 0.21832393])
NONSKIN_MEANS = np.array([[99.200851, 112.07533, 140.20602],
                          [110.91392, 125.52969, 130.19237],
                          [129.75864, 129.96107, 126.96808],
                          [112.29587, 128.85121, 129.05431]])
NONSKIN_COV_DET = np.array([458703648.0, 6466488.0, 90611376.0, 133097.63])
NONSKIN_COV_INV = np.array([
    [[0.00085371657, 0.00071197288, 0.00023958916], [0.00071197288, 0.0025935620, 0.00076557708],
     [0.00023958916, 0.00076557708, 0.0015042332]],
    [[0.00024650150, 0.00045542428, 0.00015019422], [0.00045542428, 0.026412144, 0.018419769],
     [0.00015019422, 0.018419769, 0.037497383]],
    [[0.00037054974, 0.00038146760, 0.00040408765], [0.00038146760, 0.0085505722, 0.0079136286],
     [0.00040408765, 0.0079136286, 0.010982352]],
    [[0.00013709733, 0.00051228428, 0.00012777430], [0.00051228428, 0.28237113, 0.10528370],
     [0.00012777430, 0.10528370, 0.23468947]],
])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in 0..255 -> (..., 3) BT.601 studio-range (Y, Cb, Cr)."""
    return np.asarray(rgb, np.float64) @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET


def _gmm_likelihood(x: np.ndarray, weights, means, cov_det, cov_inv) -> np.ndarray:
    """Mixture density at (N, 3) points, using the stored determinants and inverses."""
    norm = (2.0 * np.pi) ** 1.5 * np.sqrt(cov_det)  # (K,)
    diff = x[:, None, :] - means[None]  # (N, K, 3)
    mahal = np.einsum("nki,kij,nkj->nk", diff, cov_inv, diff)
    return (np.exp(-0.5 * mahal) / norm * weights).sum(axis=1)


def skin_probability(image_rgb: np.ndarray) -> np.ndarray:
    """P(skin | colour) per pixel: (H, W, 3) RGB -> (H, W) float64 in [0, 1]."""
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image_rgb: expected (H, W, 3), got {img.shape}")
    flat = img.reshape(-1, 3)
    post = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], _CHUNK):  # bounded memory on whole photos (FFHQ-UV masks them)
        ycc = rgb_to_ycbcr(flat[start : start + _CHUNK])
        skin = SKIN_PRIOR * _gmm_likelihood(ycc, SKIN_WEIGHTS, SKIN_MEANS, SKIN_COV_DET, SKIN_COV_INV)
        other = (1.0 - SKIN_PRIOR) * _gmm_likelihood(ycc, NONSKIN_WEIGHTS, NONSKIN_MEANS, NONSKIN_COV_DET,
                                                     NONSKIN_COV_INV)
        total = skin + other
        # Colours far from both mixtures underflow to 0/0; call them non-skin.
        post[start : start + _CHUNK] = np.divide(skin, total, out=np.zeros_like(skin), where=total > 0)
    return post.reshape(img.shape[:2])


def skin_mask_uint8(image_rgb: np.ndarray) -> np.ndarray:
    """The stored mask: round(255 · P(skin)) as (H, W) uint8."""
    return np.round(skin_probability(image_rgb) * 255.0).astype(np.uint8)
