"""BFM09 -> BFM_model_front.mat exactly as Deep3D converts it, checked element by element against
values computed here from the raw miniature originals (independent per-vertex loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from fk.errors import InputError
from fk.models import bfm
from fk.models.synthetic import write_bfm09_sources


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bfm_src")
    raw = write_bfm09_sources(folder, seed=3)
    return folder, raw


def _expected(raw):
    """Deep3D's conversion written as explicit per-vertex, per-component loops (float32/float64 as Deep3D)."""
    idx = raw["idx"].astype(int) - 1
    trim = raw["trimIndex"].astype(int) - 1
    n = len(idx)
    exp_pc = raw["expPC_stored"]  # (exp_dim, 3M), component-major as stored
    out = {k: np.zeros(s, dtype=t) for k, s, t in (
        ("idBase", (3 * n, 80), np.float32), ("texBase", (3 * n, 80), np.float32),
        ("exBase", (3 * n, 64), np.float64), ("meanshape", (1, 3 * n), np.float32),
        ("meantex", (1, 3 * n), np.float32))}
    sev, tev, eev = raw["shapeEV"].ravel(), raw["texEV"].ravel(), raw["std_exp"]
    for v in range(n):
        e = idx[v]  # expression-mesh vertex
        b = trim[e]  # BFM09 vertex
        for c in range(3):
            row_b, row_e, row = 3 * b + c, 3 * e + c, 3 * v + c
            out["meanshape"][0, row] = raw["shapeMU"][row_b, 0] / np.float32(1e5)
            out["meantex"][0, row] = raw["texMU"][row_b, 0]
            for k in range(80):
                out["idBase"][row, k] = raw["shapePC"][row_b, k] * sev[k] / np.float32(1e5)
                out["texBase"][row, k] = raw["texPC"][row_b, k] * tev[k]
            for k in range(64):
                out["exBase"][row, k] = np.float64(exp_pc[k, row_e]) * eev[k] / 1e5
    return out


def test_conversion_reproduces_every_array_exactly(sources, tmp_path):
    folder, raw = sources
    expected = _expected(raw)
    path = bfm.write_bfm_front(tmp_path / "BFM_model_front.mat", bfm.convert_bfm09(folder))
    saved = loadmat(str(path))
    for key, want in expected.items():
        assert saved[key].dtype == want.dtype, key
        assert saved[key].shape == want.shape, key
        np.testing.assert_array_equal(saved[key], want, err_msg=key)
    for key in bfm.INFO_KEYS:  # copied unchanged, still 1-based
        np.testing.assert_array_equal(saved[key], raw[key], err_msg=key)
    assert "frontmask2" not in saved  # Deep3D does not copy it
    assert not list(tmp_path.glob("*.part"))


def test_exp_pca_reads_header_and_component_major_block(sources):
    folder, raw = sources
    pc = bfm.read_exp_pca(folder / "Exp_Pca.bin", n_vertices=len(raw["trimIndex"]))
    assert pc.shape == (raw["expPC_stored"].shape[1], raw["expPC_stored"].shape[0])
    np.testing.assert_array_equal(pc[7], raw["expPC_stored"][:, 7])  # row = coordinate, column = component


def test_load_zero_coefficients_give_recentred_mean_and_hand_projection(sources, tmp_path):
    folder, raw = sources
    path = bfm.write_bfm_front(tmp_path / "front.mat", bfm.convert_bfm09(folder))
    model = bfm.load_bfm09(path, dtype=torch.float64)
    out = model(model.zero_coeffs())
    saved = loadmat(str(path))
    mean = saved["meanshape"].astype(np.float32).reshape(-1, 3)
    centred = mean - mean.mean(axis=0)
    np.testing.assert_allclose(out["vertices_world"][0].numpy(), centred, atol=1e-6)
    assert np.abs(out["shape"][0].numpy().mean(axis=0)).max() < 1e-6
    # keypoint k: u = 1015 x / (10 - z) + 112, image row = 223 - (1015 y / (10 - z) + 112)
    kp = saved["keypoints"].ravel().astype(int) - 1
    for k in (0, 17, 67):
        x, y, z = (float(c) for c in centred[kp[k]])
        u = 1015.0 * x / (10.0 - z) + 112.0
        v = 1015.0 * y / (10.0 - z) + 112.0
        np.testing.assert_allclose(out["landmarks_yup"][0, k].numpy(), [u, v], atol=1e-4)
        np.testing.assert_allclose(out["landmarks_2d"][0, k].numpy(), [u, 223.0 - v], atol=1e-4)


def test_front_region_gathers_tri_mask2_through_frontmask2_idx(sources, tmp_path):
    folder, raw = sources
    model = bfm.load_bfm09(bfm.write_bfm_front(tmp_path / "f.mat", bfm.convert_bfm09(folder)))
    front = raw["frontmask2_idx"].ravel().astype(int) - 1
    local = raw["tri_mask2"].astype(int) - 1
    want = front[local]
    np.testing.assert_array_equal(model.face_triangles.numpy(), want)
    tri_rows = {tuple(t) for t in model.triangles.tolist()}
    assert all(tuple(t) in tri_rows for t in want.tolist())  # every gathered row is a real triangle
    assert not all(tuple(t) in tri_rows for t in local.tolist())  # the trap: local ids are not triangles


def test_point_buf_padding_is_a_zero_normal(sources, tmp_path):
    folder, raw = sources
    model = bfm.load_bfm09(bfm.write_bfm_front(tmp_path / "f.mat", bfm.convert_bfm09(folder)))
    n_faces = len(model.triangles)
    assert int(model.point_buf.max()) == n_faces  # F + 1 (1-based) -> F
    assert int(model.point_buf.min()) >= 0


@pytest.mark.parametrize("victim", bfm.SOURCE_FILES)
def test_missing_source_file_is_named(sources, tmp_path, victim):
    folder, _ = sources
    copy = tmp_path / "src"
    copy.mkdir()
    for name in bfm.SOURCE_FILES:
        if name != victim:
            (copy / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(InputError, match=victim.replace(".", r"\.")):
        bfm.convert_bfm09(copy)


def _copy(folder, dst):
    dst.mkdir()
    for name in bfm.SOURCE_FILES:
        (dst / name).write_bytes((folder / name).read_bytes())
    return dst


def test_truncated_exp_pca_is_named(sources, tmp_path):
    folder, _ = sources
    src = _copy(folder, tmp_path / "src")
    data = (src / "Exp_Pca.bin").read_bytes()
    (src / "Exp_Pca.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"Exp_Pca\.bin.*truncated"):
        bfm.convert_bfm09(src)


def test_malformed_mat_and_wrong_variables_are_named(sources, tmp_path):
    folder, _ = sources
    src = _copy(folder, tmp_path / "src")
    (src / "01_MorphableModel.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(InputError, match=r"01_MorphableModel\.mat: not a readable"):
        bfm.convert_bfm09(src)
    src2 = _copy(folder, tmp_path / "src2")
    savemat(src2 / "BFM_exp_idx.mat", {"wrong": np.arange(3)})
    with pytest.raises(InputError, match=r"BFM_exp_idx\.mat: missing variable\(s\) trimIndex"):
        bfm.convert_bfm09(src2)


def test_zero_based_index_file_is_rejected(sources, tmp_path):
    folder, raw = sources
    src = _copy(folder, tmp_path / "src")
    savemat(src / "BFM_front_idx.mat", {"idx": (raw["idx"] - 1).reshape(-1, 1).astype(np.float32)})
    with pytest.raises(InputError, match=r"BFM_front_idx\.mat: indices must be 1-based"):
        bfm.convert_bfm09(src)


def test_std_exp_count_must_match(sources, tmp_path):
    folder, raw = sources
    src = _copy(folder, tmp_path / "src")
    np.savetxt(src / "std_exp.txt", raw["std_exp"][:-1])
    with pytest.raises(InputError, match=r"std_exp\.txt"):
        bfm.convert_bfm09(src)
