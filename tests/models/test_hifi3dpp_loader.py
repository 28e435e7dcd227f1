"""HiFi3D++ (FFHQ-UV layout) on a generated hifi3dpp_model_info.mat and unwrap table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from fk.errors import InputError
from fk.models.hifi3dpp import load_hifi3dpp, load_unwrap_info, unwrap_to_uv
from fk.models.synthetic import write_hifi3dpp_info


def test_fields_map_to_the_face_model(tmp_path):
    raw = write_hifi3dpp_info(tmp_path / "hifi3dpp_model_info.mat", seed=2)
    model = load_hifi3dpp(tmp_path / "hifi3dpp_model_info.mat", dtype=torch.float64)
    assert (model.n_id, model.n_exp, model.n_tex) == (7, 5, 6)
    np.testing.assert_array_equal(model.triangles.numpy(), raw["head_tri"] - 1)
    np.testing.assert_array_equal(model.face_triangles.numpy(), raw["tri"] - 1)
    np.testing.assert_array_equal(model.uv_faces.numpy(), raw["head_tri_vt"] - 1)
    np.testing.assert_allclose(model.uvs.numpy(), raw["vt_list"])
    np.testing.assert_array_equal(model.keypoints.numpy(), raw["keypoints"].ravel() - 1)
    # 0 padding of the 1-based point_buf -> F (the appended zero normal); real entries shift by one
    pb = raw["point_buf"].astype(int)
    want = np.where(pb == 0, len(raw["head_tri"]), pb - 1)
    np.testing.assert_array_equal(model.point_buf.numpy(), want)
    # the uv triangles and the vertex triangles describe the same corners (vt -> vertex table)
    vt_vtx = raw["vt_vtx_idx"].ravel().astype(int) - 1
    np.testing.assert_array_equal(vt_vtx[model.uv_faces.numpy()], model.triangles.numpy())
    out = model(model.zero_coeffs())
    mean = raw["meanshape"].reshape(-1, 3).astype(np.float32)
    np.testing.assert_allclose(out["shape"][0].numpy(), mean - mean.mean(0), atol=1e-6)  # recentred
    np.testing.assert_allclose(out["albedo"][0].numpy(), raw["meantex"].reshape(-1, 3) / 255.0, atol=1e-6)
    assert (out["normals"][0, :, 2] > 0.5).all()  # the generated grid faces the camera


def test_missing_field_and_bad_index_are_named(tmp_path):
    raw = write_hifi3dpp_info(tmp_path / "ok.mat")
    bad = dict(raw)
    del bad["head_tri_vt"]
    savemat(tmp_path / "no_vt.mat", bad)
    with pytest.raises(InputError, match=r"no_vt\.mat: missing variable\(s\) head_tri_vt"):
        load_hifi3dpp(tmp_path / "no_vt.mat")
    bad = dict(raw, keypoints=raw["keypoints"] - 1)  # 0-based by mistake
    savemat(tmp_path / "zero_based.mat", bad)
    with pytest.raises(InputError, match=r"zero_based\.mat: keypoints must hold indices in \[1, 80\]"):
        load_hifi3dpp(tmp_path / "zero_based.mat")
    with pytest.raises(InputError, match="missing HiFi3D"):
        load_hifi3dpp(tmp_path / "absent.mat")


def test_unwrap_table_blends_vertex_values(tmp_path):
    size, n = 8, 12
    g = np.random.default_rng(0)
    ids = g.integers(0, n, size=(size, size, 3))
    bw = g.dirichlet(np.ones(3), size=(size, size))
    savemat(tmp_path / "unwrap.mat", {"uv_idx_v_idx": ids.astype(np.float64), "uv_idx_bw": bw})
    mask = np.zeros((size, size, 3), np.uint8)
    mask[:, : size // 2] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    info = load_unwrap_info(tmp_path / "unwrap.mat", tmp_path / "mask.png")
    values = g.uniform(size=(n, 3))
    uv = unwrap_to_uv(values, info)
    r, c = 3, 1  # inside the mask: the barycentric blend of the three vertices
    want = sum(bw[r, c, k] * values[ids[r, c, k]] for k in range(3))
    np.testing.assert_allclose(uv[r, c], want, atol=1e-6)
    assert (uv[:, size // 2:] == 0).all()  # outside the mask
