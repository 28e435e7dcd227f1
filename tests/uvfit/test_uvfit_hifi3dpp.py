"""HiFi3D++ through the uvfit recipe (`fit.model=hifi3dpp`) on a generated hifi3dpp_model_info.mat, and the
1049-coefficient layout (532/45/439/3/27/3) of a file with FFHQ-UV's basis sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat


def demo_as_hifi3dpp(path) -> dict[str, np.ndarray]:
    """fk's demo head written in FFHQ-UV's hifi3dpp_model_info.mat layout (1-based, xyz-interleaved, 0-255
    albedo, `tri` = face region, `head_tri`/`head_tri_vt` = whole head), so the astronaut can be fitted."""
    from fk.models.demo import demo_head_arrays
    from fk.models.synthetic import point_buf_1based

    a = demo_head_arrays()
    tris = np.asarray(a["triangles"])
    n = len(a["mean_shape"]) // 3
    pb = point_buf_1based(tris, n, width=8)
    d = {
        "meanshape": np.asarray(a["mean_shape"], np.float32)[None],
        "meantex": (np.asarray(a["mean_albedo"]) * 255).astype(np.float32)[None],
        "idBase": np.asarray(a["id_base"], np.float32),
        "exBase": np.asarray(a["exp_base"], np.float32),
        "texBase": (np.asarray(a["albedo_base"]) * 255).astype(np.float32),
        "tri": (np.asarray(a["face_triangles"]) + 1).astype(np.float64),
        "head_tri": (tris + 1).astype(np.float64),
        "head_tri_vt": (np.asarray(a["uv_faces"]) + 1).astype(np.float64),
        "vt_list": np.asarray(a["uvs"], np.float32),
        "point_buf": np.where(pb == len(tris) + 1, 0, pb).astype(np.float64),
        "keypoints": (np.asarray(a["keypoints"]) + 1).reshape(-1, 1).astype(np.float64),
    }
    savemat(str(path), d)
    return d


def test_a_file_with_ffhquvs_basis_sizes_gives_1049_coefficients(tmp_path):
    from fk.models.hifi3dpp import load_hifi3dpp
    from fk.models.synthetic import hifi3dpp_info

    savemat(str(tmp_path / "m.mat"), hifi3dpp_info(n_id=532, n_exp=45, n_tex=439))
    model = load_hifi3dpp(tmp_path / "m.mat")
    assert model.n_coeffs == 1049
    assert list(model.coeff_sizes.values()) == [532, 45, 439, 3, 27, 3]
    assert len(model.face_region_triangles()) < len(
        model.triangles
    )  # `tri` for the loss, `head_tri` for outputs


@pytest.mark.slow
def test_uvfit_recipe_fits_hifi3dpp_and_writes_its_uv_layout(tmp_path):
    home = tmp_path / "home"
    (home / "assets" / "hifi3dpp").mkdir(parents=True)
    d = demo_as_hifi3dpp(home / "assets" / "hifi3dpp" / "hifi3dpp_model_info.mat")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fk.cli.main",
            "uvfit",
            "fit",
            "builtin:astronaut",
            "--out",
            str(out),
            "--set",
            "fit.model=hifi3dpp",
            "--set",
            "fit.iterations=10",
            "--set",
            "uvfit.uv_size=256",
            "--set",
            "uvfit.glb=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FK_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = out / "astronaut_00"
    info = json.loads((item / "uvfit.json").read_text())
    assert info["model"] == "hifi3dpp"
    assert info["uv_layout"] == "model"
    assert info["eyeballs"].startswith(
        "procedural"
    )  # no template eyeballs installed (and not 20,481 vertices)
    lines = (item / "stage3_mesh_id.obj").read_text().splitlines()
    kinds = [ln.split(" ", 1)[0] for ln in lines]
    assert kinds.count("vt") == len(d["vt_list"])
    assert kinds.count("f") == len(d["head_tri"])  # outputs use head_tri
    coeffs = np.load(item / "stage3_coeffs.npz")
    assert coeffs["coeffs"].shape == (1, 10 + 8 + 6 + 33)
