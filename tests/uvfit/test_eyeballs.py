"""Procedural eyeballs: upstream's counts, outward normals, an iris texture, placed behind each eye."""

from __future__ import annotations

import numpy as np
from fk_uvfit import eyeballs as eb


def test_procedural_eyeball_has_upstreams_counts_and_outward_faces():
    from fk.models.demo import demo_head_arrays

    a = demo_head_arrays()
    head = np.asarray(a["mean_shape"]).reshape(-1, 3)
    ball = eb.place_procedural(head, a["keypoints"], eb.LEFT_EYE)
    assert ball.vertices.shape == (770, 3)
    sizes = [len(p) for p in ball.polygons]
    assert sizes.count(4) == 736
    assert sizes.count(3) == 64
    faces, uv_faces = ball.triangles()
    v = ball.vertices[faces]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = ((v.mean(1) - ball.centre) * normal).sum(1)
    assert (outward > 0).all()
    np.testing.assert_allclose(np.linalg.norm(ball.normals, axis=1), 1.0)
    assert uv_faces.max() < len(ball.uvs)
    assert ball.uvs.min() >= 0
    assert ball.uvs.max() <= 1


def test_eyeballs_sit_behind_their_eye_on_the_right_side():
    from fk.models.demo import demo_head_arrays

    a = demo_head_arrays()
    head = np.asarray(a["mean_shape"]).reshape(-1, 3)
    left = eb.place_procedural(head, a["keypoints"], eb.LEFT_EYE)
    right = eb.place_procedural(head, a["keypoints"], eb.RIGHT_EYE)
    assert left.centre[0] > 0 > right.centre[0]  # subject's left eye is +x (image right)
    np.testing.assert_allclose(
        left.centre * [-1, 1, 1], right.centre, atol=0.02
    )  # the demo head is symmetric
    contour = head[a["keypoints"][list(eb.LEFT_EYE)]]
    assert left.vertices[:, 2].max() < contour[:, 2].mean()  # the ball's front stays behind the lids
    assert 0.1 < left.radius < 0.15  # dm: a 24-30 mm eyeball


def test_iris_texture_is_dark_in_the_middle_and_white_outside():
    tex = eb.iris_texture(256)
    assert tex.shape == (256, 256, 3)
    assert tex.dtype == np.uint8
    assert tex[128, 128].max() < 30  # pupil
    assert tex[128, 128 + 20].mean() < 140  # iris
    assert tex[128, 128 + 60].min() > 180  # sclera
    np.testing.assert_array_equal(tex, eb.iris_texture(256))  # deterministic
