"""Eyeball landmarks by ray intersection, sphere fits, and CoRA's eyeball export (units: the synthetic dm)."""

from __future__ import annotations

import numpy as np
import torch
from fk.cameras import Intrinsics
from fk_eyeball import synth
from fk_eyeball.export import EXPORT_FOLDER, eyeball_cap, write_eyeballs
from fk_eyeball.triangulate import adam_reference, fit_spheres, intersect_rays, pixel_rays, triangulate

MM = 0.01  # 1 mm in the synthetic subject's units (decimetres)


def _cameras_at_full_size():
    f = synth.FULL_FOCAL
    K = np.asarray(Intrinsics(f, f, 359.5, 479.5, 720, 960).matrix)
    return K, synth.phone_cameras(24)


def _project(P, K, c2w):
    cam = np.einsum("vji,vlj->vli", c2w[:, :3, :3], P[None] - c2w[:, None, :3, 3])
    return np.stack(
        [K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2], K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]], -1
    )


def test_triangulated_landmarks_and_sphere_centres_within_half_a_mm_with_1px_noise():
    K, c2w = _cameras_at_full_size()
    truth = {e: synth.contour_landmarks(np.asarray(c)) for e, c in synth.EYE_CENTERS.items()}
    P = np.concatenate([truth["leye"], truth["reye"]])
    px = _project(P, K, c2w) + np.random.default_rng(0).normal(0, 1.0, (24, 12, 2))
    t = triangulate(px, K, c2w)
    assert np.linalg.norm(t.points - P, axis=1).max() < 0.5 * MM
    assert (t.rms_px < 2.0).all()
    centres, r, _ = fit_spheres({"leye": t.points[:6], "reye": t.points[6:]})
    for eye, c in synth.EYE_CENTERS.items():
        assert np.linalg.norm(centres[eye] - np.asarray(c)) < 0.5 * MM
    assert abs(r - synth.EYE_RADIUS) < 0.5 * MM


def test_outlier_views_are_dropped_and_scores_weight():
    K, c2w = _cameras_at_full_size()
    P = synth.contour_landmarks(np.asarray(synth.EYE_CENTERS["leye"]))
    px = _project(P, K, c2w)
    px[3] += 40.0  # one view's landmarks are 40 px off
    t = triangulate(px, K, c2w)
    assert not t.inliers[3].any()
    assert t.inliers.sum() == 23 * 6
    np.testing.assert_allclose(t.points, P, atol=1e-9)
    zero = np.ones((24, 6))
    zero[3] = 0  # a zero score removes the view too
    np.testing.assert_allclose(triangulate(px, K, c2w, scores=zero).points, P, atol=1e-9)


def test_closed_form_is_the_minimum_upstreams_adam_approaches():
    K, c2w = _cameras_at_full_size()
    P = synth.contour_landmarks(np.asarray(synth.EYE_CENTERS["reye"]))[1]
    px = _project(P[None], K, c2w)[:, 0] + np.random.default_rng(1).normal(0, 1.0, (24, 2))
    o, d = pixel_rays(px, K, c2w)
    closed = intersect_rays(o, d)

    def cost(p):
        op = p - o
        return ((op**2).sum(-1) - ((d * op).sum(-1)) ** 2).sum()

    adam = adam_reference(o, d, steps=1000)
    assert cost(closed) <= cost(adam) + 1e-12
    assert np.linalg.norm(adam - closed) < 0.05  # Adam from 0 with lr 0.1 ends within 5 mm (float32)


def test_sphere_fit_with_four_points_per_eye_and_fixed_radius():
    rng = np.random.default_rng(2)
    pts = {}
    for eye, c in synth.EYE_CENTERS.items():
        d = rng.normal(size=(4, 3)) * [1, 1, 0.3] + [0, 0, 1]
        pts[eye] = np.asarray(c) + synth.EYE_RADIUS * d / np.linalg.norm(d, axis=1, keepdims=True)
    centres, r, resid = fit_spheres(pts)
    assert abs(r - synth.EYE_RADIUS) < 1e-6
    for eye, c in synth.EYE_CENTERS.items():
        np.testing.assert_allclose(centres[eye], c, atol=1e-6)
    centres, r, _ = fit_spheres(pts, radius=synth.EYE_RADIUS)
    assert r == synth.EYE_RADIUS


def test_eyeball_export_layout_and_naming_quirk(tmp_path):
    K, c2w = _cameras_at_full_size()
    centres = {e: np.asarray(c) for e, c in synth.EYE_CENTERS.items()}
    calls = []

    def albedo(eye, p):
        calls.append(eye)
        return synth.eyeball_albedo(
            (p - centres[eye]) / np.maximum(np.linalg.norm(p - centres[eye], axis=1, keepdims=True), 1e-12)
        )

    write_eyeballs(tmp_path, centres, synth.EYE_RADIUS, c2w, K, (960, 720), albedo)
    assert EXPORT_FOLDER == {"leye": "right", "reye": "left"}
    from fk.io.mesh import read_obj

    for eye, folder in EXPORT_FOLDER.items():
        d = tmp_path / folder
        assert sorted(p.name for p in d.iterdir()) == ["coord.npy", "coord.pkl", "diffuse.png", "mesh.obj",
                                                       "mesh_uv.obj", "normal.png"]  # fmt: skip
        coord = torch.load(d / "coord.pkl", weights_only=True)
        assert coord.shape == (1, 3, 128, 128)
        mesh = read_obj(d / "mesh_uv.obj")
        assert mesh.uvs is not None
        # every kept vertex is on the sphere around *this* eye's centre: right/ holds leye
        np.testing.assert_allclose(
            np.linalg.norm(mesh.vertices - centres[eye], axis=1), synth.EYE_RADIUS, rtol=1e-6
        )
        # a front cap: no face points away (cos > 0.8) from any camera's mean ray
        v, f = mesh.vertices, mesh.faces
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        assert n.shape[0] < 1280
        on = coord[0].reshape(3, -1).T.numpy()
        on = on[np.any(on != 0, axis=1)]
        np.testing.assert_allclose(np.linalg.norm(on - centres[eye], axis=1), synth.EYE_RADIUS, rtol=2e-2)
    assert calls == ["leye", "reye"]


def test_ico_sphere_level_3_counts():
    v, f = eyeball_cap([0, 0, 0], 1.0, np.zeros((0, 3)))
    assert (len(v), len(f)) == (642, 1280)
