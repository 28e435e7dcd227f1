"""The built-in demo head: a closed, outward-oriented, deterministic surface whose landmarks sit
where Deep3D's crop puts a real face's, and whose pose can be recovered from a render."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fk.models
from fk.models.demo import demo_head_arrays

# Deep3D's standard 5 points (deep3d.md §3.1, dm): eye L, eye R, nose, mouth L, mouth R.
STANDARD_5 = np.array([[-0.31149, 0.29036, 0.13378], [0.30980, 0.28972, 0.13180], [0.00325, -0.04618, 0.55244],
                       [-0.25217, -0.38134, 0.22406], [0.24847, -0.38128, 0.22236]])


def five_points(lm68):
    """deep3d.md §3.1 reduction (1-based 31, mean(37,40), mean(43,46), 49, 55) in [eyeL, eyeR, nose, mouthL, mouthR] order."""
    return np.stack([(lm68[36] + lm68[39]) / 2, (lm68[42] + lm68[45]) / 2, lm68[30], lm68[48], lm68[54]])


@pytest.fixture(scope="module")
def model():
    return fk.models.load_face_model("demo", dtype=torch.float64)


def test_closed_outward_surface_with_valid_uvs(model):
    tri = model.triangles.numpy()
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # every edge shared by exactly two triangles: closed, manifold
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # consistent winding
    v = model.mean_vertices().numpy()
    p = v[tri]
    volume = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6
    assert volume > 2.0  # positive: outward; a head of roughly 1.5 x 2.7 x 2 dm
    uvs = model.uvs.numpy()
    assert uvs.min() >= 0 and uvs.max() <= 1 and model.uv_faces.shape == model.triangles.shape
    assert 5_000 <= model.n_vertices <= 20_000


def test_deterministic_and_cached():
    a = demo_head_arrays()
    demo_head_arrays.cache_clear()
    b = demo_head_arrays()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_landmarks_match_deep3d_standard_points(model):
    lm = model.mean_vertices().numpy()[model.keypoints.numpy()]
    five = five_points(lm)
    assert np.abs(five - STANDARD_5).max() < 0.03  # within 3 mm in 3D
    # projected at zero pose, like align_img frames a real face (102 px/dm about the crop centre)
    out = model(model.zero_coeffs())
    got = five_points(out["landmarks_2d"][0].numpy())
    want = np.stack([STANDARD_5[:, 0] * 102 + 112, 223 - (STANDARD_5[:, 1] * 102 + 112)], axis=1)
    assert np.abs(got - want).max() < 4.0  # pixels of the 224 crop
    # iBUG layout sanity: left-to-right and top-to-bottom orders of the face parts
    x, y = lm[:, 0], lm[:, 1]
    assert x[0] < x[8] < x[16] and y[8] == y[:17].min()  # jaw from image-left through the chin
    assert y[19] > y[37] > y[30] > y[51] > y[57] > y[8]  # brow > eye > nose tip > upper lip > lower lip > chin
    assert lm[30, 2] == lm[:, 2].max()  # the nose tip is the most forward landmark


def test_modes_change_geometry_and_albedo_is_skin_like(model):
    assert (model.n_id, model.n_exp, model.n_tex) == (10, 8, 6)
    base = model(model.zero_coeffs())
    for block, size in (("id", model.n_id), ("exp", model.n_exp)):
        for k in range(size):
            c = model.zero_coeffs()
            c[0, sum(list(model.coeff_sizes.values())[: list(model.coeff_sizes).index(block)]) + k] = 1.0
            p = model.split_coeffs(c)
            shift = (model.shape(p["id"], p["exp"]) - base["shape"]).norm(dim=-1).max()
            assert 0.005 < shift < 0.2, (block, k)  # between 0.5 mm and 2 cm per unit
    albedo = base["albedo"][0].numpy()
    kp = model.keypoints.numpy()
    assert albedo[kp[30], 0] > albedo[kp[30], 1] > albedo[kp[30], 2]  # skin: R > G > B at the nose
    assert albedo[kp[51]].sum() < albedo[kp[30]].sum()  # darker lips


def _render_world_positions(vertices_cam, triangles, attributes, size=224):
    """Render through fk.render.mesh.render_mesh at the Deep3D landmark camera (K: cx 112, cy 111);
    returns the (H, W) mask and the (H, W, C) interpolated attributes."""
    from fk.models.camera import camera_matrix, opencv_from_camera
    from fk.render.mesh import render_mesh

    rendered = render_mesh(opencv_from_camera(vertices_cam).float(), triangles, camera_matrix()[None],
                           (size, size), vertex_colors=attributes.float(), backend="cpu")
    return rendered.mask[0], rendered.rgb[0]


def test_pose_recovered_from_a_render_within_one_degree(model):
    from fk.geometry.pnp import solve_pnp

    angles = torch.tensor([0.12, -0.35, 0.06], dtype=torch.float64)  # pitch, yaw 20°, roll
    trans = torch.tensor([0.15, -0.1, 0.4], dtype=torch.float64)
    c = model.zero_coeffs()
    parts = model.split_coeffs(c)
    parts["angle"][0], parts["trans"][0] = angles, trans
    out = model(c)
    canon = out["shape"][0]
    mask, pos = _render_world_positions(out["vertices_cam"], model.triangles, canon[None])
    assert 0.15 < mask.float().mean() < 0.7  # the head fills a good part of the crop
    # find each inner-face landmark in the render: the pixel whose surface point is nearest to it
    kp = model.keypoints.numpy()[17:]
    targets = canon[kp].float()
    ys, xs = torch.nonzero(mask, as_tuple=True)
    surface = pos[ys, xs]
    dist = torch.cdist(targets, surface)
    best = dist.argmin(dim=1)
    found = dist.min(dim=1).values < 0.02  # visible: a rendered pixel within 2 mm of the vertex
    assert found.sum() >= 40
    pix = torch.stack([xs[best], ys[best]], dim=1).double().numpy()[found.numpy()]
    model_pix = out["landmarks_2d"][0, 17:].numpy()[found.numpy()]
    assert np.abs(pix - model_pix).max() < 1.5  # render and model projection agree to a pixel
    k = np.array([[1015.0, 0, 112.0], [0, 1015.0, 111.0], [0, 0, 1]])
    r_cv, t_cv = solve_pnp(canon.numpy()[kp][found.numpy()], pix, k)
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV camera = flip · world + (0, 0, 10)
    r = flip @ r_cv
    t = flip @ (t_cv - np.array([0.0, 0.0, 10.0]))
    r_true = out["rotation"][0].numpy()
    err = math.degrees(math.acos(np.clip((np.trace(r.T @ r_true) - 1) / 2, -1, 1)))
    print(f"pose error {err:.4f} deg from {int(found.sum())} landmarks")
    assert err < 1.0
    assert np.abs(t - trans.numpy()).max() < 0.1  # within 1 cm (depth is the loosest)
