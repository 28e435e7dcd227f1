"""Skin mask: the YCbCr GMM posterior, checked against a per-pixel loop written from the formula."""

from __future__ import annotations

import math

import numpy as np

from fk_deep3d import skin


def _naive_posterior(rgb):
    r, g, b = (float(c) for c in rgb)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112 * b) / 255
    cr = 128 + (112 * r - 93.786 * g - 18.214 * b) / 255
    x = np.array([y, cb, cr])

    def lik(w, mu, det, inv):
        total = 0.0
        for k in range(4):
            d = x - mu[k]
            total += w[k] * math.exp(-0.5 * float(d @ inv[k] @ d)) / ((2 * math.pi) ** 1.5 * math.sqrt(det[k]))
        return total

    s = 0.8 * lik(skin.SKIN_WEIGHTS, skin.SKIN_MEANS, skin.SKIN_COV_DET, skin.SKIN_COV_INV)
    n = 0.2 * lik(skin.NONSKIN_WEIGHTS, skin.NONSKIN_MEANS, skin.NONSKIN_COV_DET, skin.NONSKIN_COV_INV)
    return s / (s + n) if s + n > 0 else 0.0


def test_matches_naive_loop_on_random_colours():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    got = skin.skin_probability(img)
    want = np.array([[_naive_posterior(img[i, j]) for j in range(7)] for i in range(6)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_skin_tone_beats_green_and_blue_and_order_is_rgb():
    img = np.array([[[224, 172, 140], [40, 180, 60], [60, 80, 200]]], np.uint8)
    p = skin.skin_probability(img)[0]
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] < 0.1
    # Reading the skin tone as BGR gives a bluish colour: it must not count as skin.
    assert skin.skin_probability(img[..., ::-1].copy())[0, 0] < 0.5


def test_uint8_mask_on_astronaut():
    from skimage import data

    photo = data.astronaut()
    mask = skin.skin_mask_uint8(photo)
    assert mask.dtype == np.uint8 and mask.shape == photo.shape[:2]
    # The face (around rows 60-140, cols 170-250) is skin; the black helmet and the
    # blue flag corner are not (the orange suit does count as skin: a colour-only model).
    assert np.median(mask[80:130, 190:240]) > 150
    assert np.median(mask[420:480, 330:420]) < 50
    assert np.median(mask[0:40, 0:40]) < 50
