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


def _write_template(path, centre):
    """An eyeball OBJ in the template's format (Maya header, groups, v/vt/vn, quads and triangles)."""
    dirs, uvs, polys = eb.unit_sphere()
    v = np.asarray(centre) + 0.14 * dirs
    lines = [
        "# This file uses centimeters as units for non-parametric coordinates.",
        "",
        "mtllib eye_ball_tex.mtl",
        "g default",
    ]
    lines += [f"v {x:f} {y:f} {z:f}" for x, y, z in v] + [f"vt {a:f} {b:f}" for a, b in uvs]
    lines += [f"vn {x:f} {y:f} {z:f}" for x, y, z in dirs] + [
        "s off",
        "g eye:Mesh",
        "usemtl initialShadingGroup",
    ]
    lines += ["f " + " ".join(f"{a + 1}/{t + 1}/{a + 1}" for a, t in p) for p in polys]
    path.write_text("\n".join(lines) + "\n")
    return np.asarray(v, np.float32)


def test_similarity_fit_recovers_a_known_similarity():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(5, 3)).astype(np.float32)
    angle = 0.3
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    dst = 1.7 * src @ rot.T + np.array([0.3, -0.2, 0.5])
    pts = rng.normal(size=(20, 3))
    np.testing.assert_allclose(
        eb.similarity_fit(src, dst, pts), 1.7 * pts @ rot.T + [0.3, -0.2, 0.5], atol=1e-4
    )


def test_template_fit_places_the_template_on_the_eye_bag_and_walks_it_back(tmp_path):
    """A synthetic HiFi3D++-sized head whose eye-bag anchors are the template's anchors moved by a known
    similarity: the fitted ball is that similarity of the template, then shifted by upstream's refinement
    (z by 0.0005 (i + 2) >= 0.001, y by 0.0002 count - 1.5 D_min), and keeps the template's faces and UVs."""
    template = _write_template(tmp_path / "eyeLeft_mesh_move.obj", (0.32, 0.377, 0.27))
    head = np.zeros((20481, 3), np.float32)
    moved = 1.05 * template + np.array([0.01, -0.02, 0.03], np.float32)
    front = moved[eb.EYE_HALF]
    head[list(eb.CONTOUR["L"])] = front[np.argsort(-front[:, 2])[:19]] + np.array([0, 0, 0.01], np.float32)
    head[list(eb.EYE_BAG["L"])] = moved[list(eb.BALL_ANCHORS["L"])]  # vertex 1883 is in both sets
    ball = eb.fit_template(head, tmp_path / "eyeLeft_mesh_move.obj", "L")
    assert ball.method == "template"
    assert ball.vertices.shape == (770, 3)
    shift = ball.vertices - moved
    np.testing.assert_allclose(
        shift - shift.mean(0), 0, atol=1e-4
    )  # a pure translation of the placed template
    assert shift[0, 2] >= 0.001 - 1e-6  # at least two 0.0005 steps toward the viewer
    assert len(ball.polygons) == 800
    assert ball.uvs.shape == (801, 2)
    np.testing.assert_allclose(np.linalg.norm(ball.normals, axis=1), 1.0, atol=1e-5)
    outward = ((ball.vertices - ball.vertices.mean(0)) * ball.normals).sum(1)
    assert (outward > 0).mean() > 0.99
