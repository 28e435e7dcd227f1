"""crop:ffhq against an independent computation of FFHQ's quad, pixel stability and exactness."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from fk.types import apply_homography
from fk_align.ffhq import FFHQ, LPFF_STYLEGAN, align_quad, ffhq_align, ffhq_quad
from PIL import Image

from .conftest import blob_centroid, blob_image


def reference_quad(lm: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """FFHQ's quad restated with complex numbers (lpff.md §1.3 step 2, §6): x = ee - i*em, y = i*x."""
    z = lm[:, 0] + 1j * lm[:, 1]
    eye_l, eye_r = z[36:42].mean(), z[42:48].mean()
    eye = (eye_l + eye_r) / 2
    ee, em = eye_r - eye_l, (z[48] + z[54]) / 2 - eye
    x = ee - 1j * em
    x = x / abs(x) * max(2.0 * abs(ee), 1.8 * abs(em)) * scale
    y = 1j * x
    c = eye + 0.1 * em
    corners = [c - x - y, c - x + y, c + x + y, c + x - y]
    return np.array([[p.real, p.imag] for p in corners])


@pytest.fixture(scope="module")
def astro_ffhq(astro_rgb, astro_face):
    return ffhq_align(astro_rgb, astro_face.landmarks)


def test_quad_matches_independent_computation(astro_face):
    quad, qsize = ffhq_quad(astro_face.landmarks)
    ref = reference_quad(astro_face.landmarks)
    np.testing.assert_allclose(quad, ref, atol=1e-9)
    assert qsize == pytest.approx(np.linalg.norm(ref[3] - ref[0]))
    np.testing.assert_allclose(
        ffhq_quad(astro_face.landmarks, 1.8)[0], reference_quad(astro_face.landmarks, 1.8), atol=1e-9
    )


def test_quad_pins_orientation_on_a_tilted_face():
    # A face rotated 30 degrees clockwise on screen: the quad's top edge must follow the eyes.
    rng = np.random.default_rng(3)
    base = np.zeros((68, 2))
    base[36:42] = [-30, 0] + rng.normal(0, 1, (6, 2))
    base[42:48] = [30, 0] + rng.normal(0, 1, (6, 2))
    base[48], base[54] = [-20, 60], [20, 60]
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = base @ rot.T + [200, 150]
    quad, _ = ffhq_quad(lm)
    top = quad[3] - quad[0]
    assert np.degrees(np.arctan2(top[1], top[0])) == pytest.approx(30, abs=2)
    down = quad[1] - quad[0]
    assert down[1] > 0, "the quad's left edge points down the face"


def test_crop_maps_the_independent_quad_onto_the_output_square(astro_ffhq, astro_face):
    ref = reference_quad(astro_face.landmarks)
    n = astro_ffhq.image.shape[0]
    assert astro_ffhq.image.shape == (1024, 1024, 3)
    corners = apply_homography(astro_ffhq.crop_from_source, ref)
    np.testing.assert_allclose(
        corners, [[-0.5, -0.5], [-0.5, n - 0.5], [n - 0.5, n - 0.5], [n - 0.5, -0.5]], atol=1e-6
    )


def test_pixels_follow_crop_from_source(astro_ffhq, astro_rgb):
    """Sample the photo directly at source_from_crop of each crop pixel; compare inside the photo."""
    from scipy.ndimage import map_coordinates

    n = 256
    step = astro_ffhq.image.shape[0] / n
    cy, cx = np.mgrid[:n, :n] * step + (step - 1) / 2  # centres of 4x4 crop-pixel blocks
    src = apply_homography(np.linalg.inv(astro_ffhq.crop_from_source), np.stack([cx, cy], -1))
    h, w = astro_rgb.shape[:2]
    inside = (src[..., 0] > 2) & (src[..., 0] < w - 3) & (src[..., 1] > 2) & (src[..., 1] < h - 3)
    sampled = np.stack(
        [
            map_coordinates(astro_rgb[..., c].astype(float), [src[..., 1], src[..., 0]], order=1)
            for c in range(3)
        ],
        -1,
    )
    crop_small = np.asarray(Image.fromarray(astro_ffhq.image).resize((n, n), Image.Resampling.BOX), float)
    diff = np.abs(sampled - crop_small)[inside]
    assert inside.mean() > 0.5
    assert diff.mean() < 6.0, f"crop pixels disagree with crop_from_source (mean |diff| {diff.mean():.1f})"


def test_crop_is_pixel_stable(astro_rgb, astro_face, astro_ffhq):
    again = ffhq_align(astro_rgb.copy(), astro_face.landmarks.copy())
    assert (
        hashlib.sha256(again.image.tobytes()).digest() == hashlib.sha256(astro_ffhq.image.tobytes()).digest()
    )
    np.testing.assert_array_equal(again.crop_from_source, astro_ffhq.crop_from_source)


def test_landmark_round_trip(astro_ffhq, astro_face):
    m = astro_ffhq.crop_from_source
    back = apply_homography(np.linalg.inv(m), apply_homography(m, astro_face.landmarks))
    assert np.abs(back - astro_face.landmarks).max() < 0.5


def test_lpff_border_variant_changes_only_the_padding(astro_rgb, astro_face, astro_ffhq):
    lpff = ffhq_align(astro_rgb, astro_face.landmarks, LPFF_STYLEGAN)
    np.testing.assert_allclose(lpff.crop_from_source, astro_ffhq.crop_from_source, atol=1e-9)
    centre = slice(300, 724)
    diff = np.abs(lpff.image[centre, centre].astype(int) - astro_ffhq.image[centre, centre].astype(int))
    assert diff.max() <= 1, "the face itself is the same crop"


@pytest.mark.parametrize("with_padding", [True, False])
def test_blobs_land_where_the_matrix_says(astro_face, with_padding):
    """Exactness through shrink, crop, pad, warp and resize: an output of 32 px forces a 3x shrink."""
    quad, qsize = ffhq_quad(astro_face.landmarks)
    centre = quad.mean(axis=0)
    points = centre + np.array([[-20.0, -15.0], [25.0, 5.0], [0.0, 30.0]])
    img = blob_image((512, 512), points, sigma=9.0)
    settings = replace(FFHQ, output_size=32, transform_size=128, enable_padding=with_padding)
    res = align_quad(img, quad, qsize, settings)
    assert int(np.floor(qsize / 32 * 0.5)) > 1, "the test must exercise the shrink"
    for p in points:
        predicted = apply_homography(res.crop_from_source, p)
        assert np.abs(blob_centroid(res.image, predicted, 3.0) - predicted).max() < 0.15


@pytest.mark.parametrize("proxy", [False, True])
def test_padding_median_is_taken_after_the_blur_blend(proxy):
    """FFHQ and LPFF take the fill colour's median after blending the blur in; on this image the
    median before the blend is another colour, so the order shows in the pixels."""
    import cv2
    from fk_align.ffhq import _pad_blurred
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    img = np.zeros((120, 160, 3), np.uint8)
    img[:, :70] = 200  # a bright band: reflect padding and the blur move the median
    img[:, 70:] = rng.integers(0, 60, (120, 90, 3))
    pad, qsize = (60, 40, 30, 50), 400.0
    f = np.pad(img.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    h, w = f.shape[:2]
    y, x = np.ogrid[:h, :w]
    mask = np.maximum(1 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                      1 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))[:, :, None]
    if proxy:  # LPFF: OpenCV INTER_AREA 0.1x, Gaussian, INTER_LANCZOS4 back; median of a 0.1x copy
        small = gaussian_filter(cv2.resize(f, (0, 0), fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA),
                                [qsize * 0.002, qsize * 0.002, 0])
        blur = cv2.resize(small, (w, h), interpolation=cv2.INTER_LANCZOS4)

        def median(a):
            return np.median(cv2.resize(a, (0, 0), fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA), axis=(0, 1))
    else:
        blur = gaussian_filter(f, [qsize * 0.02, qsize * 0.02, 0])

        def median(a):
            return np.median(a, axis=(0, 1))
    blended = f + (blur - f) * np.clip(mask * 3 + 1, 0, 1)
    after = blended + (median(blended) - blended) * np.clip(mask, 0, 1)
    before = blended + (median(f) - blended) * np.clip(mask, 0, 1)
    after, before = (np.clip(np.rint(a), 0, 255).astype(np.uint8) for a in (after, before))
    assert np.abs(after.astype(int) - before).max() > 2, "the crafted image tells the two orders apart"
    np.testing.assert_array_equal(_pad_blurred(img, pad, qsize, proxy=proxy), after)
