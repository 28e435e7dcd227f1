"""The FaceModel math: Deep3D's rotation, camera, SH lighting and normals, gradients, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fk.errors import ShapeError
from fk.models.camera import camera_matrix, image_from_yup, opencv_from_camera, project, to_camera
from fk.models.face_model import FaceModel
from fk.models.lighting import illuminate, sh_basis
from fk.models.normals import area_weighted_normals, point_buf_normals
from fk.models.pose import rotation_from_angles
from fk.models.synthetic import grid_mesh, point_buf_1based


def tiny_model(dtype=torch.float64, with_point_buf=True, seed=0) -> FaceModel:
    """A 12-vertex model with 3 id, 2 exp and 2 tex modes (random bases, fixed seed)."""
    verts, tris = grid_mesh(4, 3)
    n = len(verts)
    g = np.random.default_rng(seed)
    return FaceModel(
        name="tiny", dtype=dtype, mean_shape=verts, id_base=g.normal(0, 0.02, (3 * n, 3)),
        exp_base=g.normal(0, 0.02, (3 * n, 2)), mean_albedo=g.uniform(80, 200, 3 * n),
        albedo_base=g.normal(0, 10, (3 * n, 2)), albedo_scale=255.0, triangles=tris,
        keypoints=np.arange(68) % n,
        point_buf=(point_buf_1based(tris, n) - 1) if with_point_buf else None)


def test_rotation_pins_rz_ry_rx_order_and_signs():
    # +90° about z maps x to y; +90° about x maps y to z; +90° about y maps z to x
    for angles, src, dst in (((0, 0, math.pi / 2), (1, 0, 0), (0, 1, 0)),
                             ((math.pi / 2, 0, 0), (0, 1, 0), (0, 0, 1)),
                             ((0, math.pi / 2, 0), (0, 0, 1), (1, 0, 0))):
        r = rotation_from_angles(torch.tensor([angles], dtype=torch.float64))[0]
        np.testing.assert_allclose((r @ torch.tensor(src, dtype=torch.float64)).numpy(), dst, atol=1e-12)
    # order: x first, then y, then z (extrinsic), against explicit matrices
    a = torch.tensor([[0.3, -0.5, 0.7]], dtype=torch.float64)
    cx, cy, cz = np.cos(a[0].numpy())
    sx, sy, sz = np.sin(a[0].numpy())
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    np.testing.assert_allclose(rotation_from_angles(a)[0].numpy(), rz @ ry @ rx, atol=1e-12)


def test_camera_pins_depth_y_up_and_image_flip():
    v = torch.tensor([[[0.2, 0.1, 0.5]]], dtype=torch.float64)
    cam = to_camera(v)
    np.testing.assert_allclose(cam.numpy(), [[[0.2, 0.1, 9.5]]])
    uv = project(cam)
    np.testing.assert_allclose(uv.numpy(), [[[1015 * 0.2 / 9.5 + 112, 1015 * 0.1 / 9.5 + 112]]])
    img = image_from_yup(uv)
    assert img[0, 0, 1] < 111  # a point above the axis is above the image centre row
    np.testing.assert_allclose(image_from_yup(img).numpy(), uv.numpy())  # its own inverse
    # the landmark K on OpenCV coordinates reproduces image_from_yup(project(.))
    k = camera_matrix(dtype=torch.float64)
    p = opencv_from_camera(cam)[0, 0]
    hom = k @ p
    np.testing.assert_allclose((hom[:2] / hom[2]).numpy(), img[0, 0].numpy(), atol=1e-10)


def test_sh_zero_gamma_is_ambient_prior_and_band_signs():
    n = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    albedo = torch.full((1, 3, 3), 0.5, dtype=torch.float64)
    gamma = torch.zeros(1, 27, dtype=torch.float64)
    np.testing.assert_allclose(illuminate(albedo, n, gamma).numpy(), 0.8 * 0.886227 * 0.5, atol=1e-6)
    y = sh_basis(n)[0].numpy()
    assert y[0, 2] > 0 and y[1, 3] < 0 and y[2, 1] < 0  # +nz, -nx, -ny signs of bands 2, 3, 1
    np.testing.assert_allclose(y[0, 6], 0.700624 * 2, atol=1e-5)  # (a2c2 / 2sqrt3)(3 nz^2 - 1) at nz = 1
    np.testing.assert_allclose(y[1, 8], 1.213516, atol=1e-5)
    # gamma blocks are R, G, B: light only the green band 2 -> only green changes for +z normals
    gamma[0, 9 + 2] = 1.0
    col = illuminate(albedo, n, gamma)[0, 0].numpy()
    np.testing.assert_allclose(col[[0, 2]], 0.8 * 0.886227 * 0.5, atol=1e-6)
    np.testing.assert_allclose(col[1], (0.8 * 0.886227 + 1.772454) * 0.5, atol=1e-6)


def _naive_point_buf_normals(v, tri, buf):
    out = np.zeros_like(v)
    for i in range(len(v)):
        s = np.zeros(3)
        for f in buf[i]:
            if f < len(tri):
                a, b, c = v[tri[f]]
                n = np.cross(a - b, b - c)
                s += n / np.linalg.norm(n)
        out[i] = s / max(np.linalg.norm(s), 1e-12)
    return out


def test_normals_match_naive_reference_and_point_outward():
    verts, tris = grid_mesh(5, 4)
    g = np.random.default_rng(1)
    verts = verts + g.normal(0, 0.02, verts.shape)
    buf = point_buf_1based(tris, len(verts)) - 1
    v = torch.tensor(verts)[None]
    got = point_buf_normals(v, torch.tensor(tris), torch.tensor(buf))[0].numpy()
    np.testing.assert_allclose(got, _naive_point_buf_normals(verts, tris, buf), atol=1e-12)
    aw = area_weighted_normals(v, torch.tensor(tris))[0].numpy()
    assert (got[:, 2] > 0.8).all() and (aw[:, 2] > 0.8).all()  # the grid faces +z


@pytest.mark.parametrize("with_point_buf", [True, False])
def test_forward_gradcheck_every_coefficient(with_point_buf):
    model = tiny_model(with_point_buf=with_point_buf)
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(1, model.n_coeffs, generator=g, dtype=torch.float64) * 0.1
    coeffs[:, -1] += 0.2
    coeffs.requires_grad_(True)

    def outputs(c):
        out = model(c)
        return torch.cat([out[k].reshape(-1) for k in ("vertices_cam", "colors", "landmarks_2d")])

    assert torch.autograd.gradcheck(outputs, (coeffs,), eps=1e-6, atol=1e-6)
    out = model(coeffs)
    grad = torch.autograd.grad(out["colors"].sum() + out["landmarks_2d"].sum(), coeffs)[0]
    assert (grad.abs().sum(0) > 0).all()  # every coefficient influences the output


def test_split_join_round_trip_and_layout():
    model = tiny_model()
    c = torch.arange(2 * model.n_coeffs, dtype=torch.float64).reshape(2, -1)
    parts = model.split_coeffs(c)
    assert list(parts) == ["id", "exp", "tex", "angle", "gamma", "trans"]
    assert [p.shape[1] for p in parts.values()] == [3, 2, 2, 3, 27, 3]
    assert torch.equal(model.join_coeffs(parts), c)
    assert torch.equal(model.join_coeffs({"trans": c[:, -3:]})[:, :-3], torch.zeros(2, model.n_coeffs - 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"coeffs: expected \(B, 40\)"):
        model.split_coeffs(c[:, :-1])


def test_dtype_follows_the_model_and_indices_stay_int64():
    model = tiny_model(dtype=torch.float32)
    out32 = model(model.zero_coeffs(1))
    assert out32["colors"].dtype == torch.float32
    model64 = model.to(torch.float64)
    assert model64.triangles.dtype == torch.int64 and model64.keypoints.dtype == torch.int64
    out64 = model64(model64.zero_coeffs(1))
    assert out64["vertices_cam"].dtype == torch.float64
    np.testing.assert_allclose(out64["vertices_cam"].numpy(), out32["vertices_cam"].double().numpy(), atol=1e-5)


def test_pose_moves_the_face_and_normals_rotate_with_it():
    model = tiny_model()
    c = model.zero_coeffs(1)
    c[0, model.n_id + model.n_exp + model.n_tex + 1] = math.pi / 2  # yaw +90°: the face turns to +x
    c[0, -3:] = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    out = model(c)
    r = out["rotation"][0]
    np.testing.assert_allclose(out["vertices_world"][0].numpy(),
                               (out["shape"][0] @ r.T).numpy() + [0.1, 0.2, 0.3], atol=1e-12)
    assert (out["normals"][0, :, 0] > 0.8).all()  # normals that faced +z now face +x


def test_bad_construction_is_a_shape_error():
    verts, tris = grid_mesh(4, 3)
    kwargs = dict(name="bad", mean_shape=verts, id_base=np.zeros((36, 1)), exp_base=np.zeros((36, 1)),
                  mean_albedo=np.zeros(36), albedo_base=np.zeros((36, 1)), keypoints=np.arange(68) % 12)
    with pytest.raises(ShapeError, match="triangles"):
        FaceModel(triangles=tris + 12, **kwargs)
    with pytest.raises(ShapeError, match="id_base"):
        FaceModel(triangles=tris, **{**kwargs, "id_base": np.zeros((35, 1))})


def test_flattened_row_gather_and_add_equal_index_select_and_index_add_bit_for_bit():
    """The normals' gathers and scatter-adds run on flattened rows (torch's fast path): the same values and
    gradients to the last bit as index_select / index_add along dim 1, repeated indices included."""
    from fk.models.normals import add_rows, gather_rows

    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 50, 3, generator=g, requires_grad=True)
    index = torch.randint(0, 50, (400,), generator=g)  # every row many times
    weights = torch.randn(2, 400, 3, generator=g)
    ours = gather_rows(x, index)
    (gx,) = torch.autograd.grad((ours * weights).sum(), x)
    theirs = x.index_select(1, index)
    (tx,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.equal(ours, theirs)
    assert torch.equal(gx, tx)
    start = torch.randn(2, 50, 3, generator=g)
    assert torch.equal(add_rows(start, index, weights), start.index_add(1, index, weights))
