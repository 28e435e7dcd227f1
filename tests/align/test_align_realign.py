"""crop:lpff-realign: the 2400^2 realignment, its landmarks, its files and its low-resolution reject."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fk.engine.context import ItemContext
from fk.errors import InputError
from fk.types import apply_homography
from fk_align.crops import LpffRealignCrop
from fk_align.dlib_detect import DlibDetector
from fk_align.landmarks import five_from_68, read_five_points
from fk_align.realign import LPFF_REALIGN, lpff_realign

from .conftest import blob_centroid, blob_image
from .test_align_ffhq import reference_quad


@pytest.fixture(scope="module")
def astro2x_face(astro2x_path):
    return DlibDetector().find_faces(astro2x_path)[0]


@pytest.fixture(scope="module")
def realigned(astro2x_path, astro2x_face, tmp_path_factory):
    run = tmp_path_factory.mktemp("realign")
    ctx = ItemContext(
        key="astronaut2x_00", source=astro2x_path, step_id="realign", run_dir=run, step_dir=run / "realign"
    )
    crop = LpffRealignCrop(debug=True)({"image": astro2x_path, "face": astro2x_face}, ctx)["crop"]
    return crop, ctx


def test_realign_is_2400_and_covers_1_8x_the_ffhq_quad(realigned, astro2x_face):
    crop, _ = realigned
    assert crop.image.shape == (2400, 2400, 3)
    quad18 = reference_quad(astro2x_face.landmarks, 1.8)
    np.testing.assert_allclose(
        apply_homography(crop.crop_from_source, quad18),
        [[-0.5, -0.5], [-0.5, 2399.5], [2399.5, 2399.5], [2399.5, -0.5]],
        atol=1e-6,
    )
    # the FFHQ-equivalent face region is the central 2400 / 1.8 = 1333 px
    ffhq_corners = apply_homography(crop.crop_from_source, reference_quad(astro2x_face.landmarks))
    assert np.linalg.norm(ffhq_corners[3] - ffhq_corners[0]) == pytest.approx(2400 / 1.8, rel=1e-6)


def lpff_landmark_map(landmarks, quad, transform=4096, output=2400):
    """LPFF's map restated independently (no shrink): the least-squares affine taking the source
    corners quad + 0.5 onto (0, 0), (0, T), (T, T), (T, 0), then scaled by output / T (crop and pad
    shifts cancel: they move quad and landmarks alike)."""
    src = np.c_[quad + 0.5, np.ones(4)]
    dst = np.array([[0, 0], [0, transform], [transform, transform], [transform, 0]], dtype=float)
    affine, *_ = np.linalg.lstsq(src, dst, rcond=None)
    return np.c_[landmarks, np.ones(len(landmarks))] @ affine * (output / transform)


def test_realign_carries_the_landmarks_and_writes_lpff_files(realigned, astro2x_face):
    crop, ctx = realigned
    quad18 = reference_quad(astro2x_face.landmarks, 1.8)
    np.testing.assert_allclose(crop.landmarks, lpff_landmark_map(astro2x_face.landmarks, quad18), atol=1e-6)
    exact = apply_homography(crop.crop_from_source, astro2x_face.landmarks)
    # LPFF's map keeps Pillow's +0.5 on the source side only: a constant shift of half a source
    # pixel, magnified by the realign (about 3x for this small face)
    shift = crop.landmarks - exact
    assert 0.5 < np.abs(shift).max() < 3.0
    np.testing.assert_allclose(shift, shift[:1].repeat(68, 0), atol=1e-6)
    assert (ctx.step_dir / "astronaut2x_00.png").exists()
    assert (ctx.step_dir / "debug" / "astronaut2x_00.png").exists()
    np.testing.assert_allclose(
        read_five_points(ctx.step_dir / "detections" / "astronaut2x_00.txt"),
        five_from_68(crop.landmarks),
        atol=0,
    )
    text = (ctx.step_dir / "detections" / "astronaut2x_00.txt").read_text().split()
    assert text[0] == repr(float(five_from_68(crop.landmarks)[0, 0])), "LPFF writes str(float(x))"
    eyes = crop.landmarks[36:48].mean(0)
    assert abs(eyes[0] - 1200) < 60, "the face sits in the middle"
    assert 900 < eyes[1] < 1200, "the eyes a bit above the centre"


def test_realign_pads_beyond_the_photo_with_blurred_fill(realigned):
    crop, _ = realigned
    # the 1.8x quad of a face 180 px below the top of a 1024 photo runs off the top: the padding is filled
    # smoothly (blurred reflection faded to the median colour), never left black
    top = crop.image[:150].astype(float)
    assert top.min() > 5
    assert np.abs(np.diff(top, axis=1)).mean() < 2.0, "blurred fill, no sharp reflected detail"


def test_low_resolution_face_is_rejected(astro_rgb, astro_face):
    with pytest.raises(InputError, match="face too small.*512"):
        lpff_realign(astro_rgb, astro_face.landmarks)
    small = replace(LPFF_REALIGN, min_crop_size=0, output_size=300, transform_size=512)
    assert lpff_realign(astro_rgb, astro_face.landmarks, small).image.shape == (300, 300, 3)


def test_realign_blobs_land_where_the_matrix_says(astro_face):
    lm = astro_face.landmarks
    points = np.array([lm[30], lm[36], lm[48] + [0, 5]])
    img = blob_image((512, 512), points, sigma=3.0)
    res = lpff_realign(img, lm, replace(LPFF_REALIGN, min_crop_size=0, output_size=600, transform_size=1024))
    for p in points:
        predicted = apply_homography(res.crop_from_source, p)
        assert np.abs(blob_centroid(res.image, predicted, 12.0) - predicted).max() < 0.1
