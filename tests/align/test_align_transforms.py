"""The pixel maps of Pillow's resize and QUAD warp, checked by where a blob actually lands."""

from __future__ import annotations

import numpy as np
import pytest
from fk.types import apply_homography
from fk_align import transforms as tf

from .conftest import blob_centroid, blob_image


@pytest.mark.parametrize(
    ("dst", "resample"), [((173, 91), "bilinear"), ((800, 611), "bicubic"), ((64, 48), "lanczos")]
)
def test_resize_matrix_predicts_where_a_blob_lands(dst, resample):
    p = np.array([171.3, 122.7])
    img = blob_image((300, 400), [p], sigma=6.0)
    out = tf.resize(img, dst, resample)
    m = tf.resize_matrix((400, 300), dst)
    predicted = apply_homography(m, p)
    scale = dst[0] / 400
    np.testing.assert_allclose(
        blob_centroid(out, predicted, 20 * scale + 3), predicted, atol=0.05 + 0.05 * scale
    )


def test_quad_warp_matrix_predicts_where_blobs_land():
    # an asymmetric, rotated parallelogram: flipped axes or a swapped corner order would show
    q0, ex, ey = np.array([100.0, 50.0]), np.array([200.0, 20.0]), np.array([-20.0, 200.0])
    quad = np.stack([q0, q0 + ey, q0 + ex + ey, q0 + ex])
    points = np.array([[171.3, 122.7], [250.0, 200.5], [120.0, 220.0]])
    img = blob_image((320, 400), points, sigma=3.0)
    out = tf.warp_quad(img, quad, 256)
    m = tf.quad_output_from_source(quad, 256)
    for p in points:
        predicted = apply_homography(m, p)
        np.testing.assert_allclose(blob_centroid(out, predicted, 12), predicted, atol=0.05)


def test_quad_corners_map_to_output_edges():
    quad = np.array([[10.0, 20.0], [0.0, 120.0], [100.0, 130.0], [110.0, 30.0]])
    m = tf.quad_output_from_source(quad, 64)
    # corner q (pixel centre) is Pillow's edge point q + 0.5, i.e. the output's outer corner
    np.testing.assert_allclose(
        apply_homography(m, quad), [[-0.5, -0.5], [-0.5, 63.5], [63.5, 63.5], [63.5, -0.5]], atol=1e-9
    )


def test_crop_box_pads_black_outside():
    img = np.full((10, 10, 3), 200, np.uint8)
    out = tf.crop_box(img, -2, -3, 5, 4)
    assert out.shape == (7, 7, 3)
    assert (out[:3] == 0).all()
    assert (out[:, :2] == 0).all()
    assert (out[3:, 2:] == 200).all()
