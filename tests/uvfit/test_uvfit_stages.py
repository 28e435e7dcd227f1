"""Stages 2-3 end to end on a generated hifi3dpp_model_info.mat and a tiny generated texture decoder:
a photo rendered from known coefficients and a known UV map is fitted, every stage file is written, and
the objective goes down."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk_uvfit import losses as L
from fk_uvfit import stages as S
from fk_uvfit import texgan as T
from scipy.io import savemat

TINY = {"img_resolution": 16, "z_dim": 32, "w_dim": 32,
        "synthesis_kwargs": {**T.TEXGAN_KWARGS["synthesis_kwargs"], "channel_base": 256, "channel_max": 16,
                             "num_fp16_res": 0}}  # fmt: skip


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from fk.models.hifi3dpp import load_hifi3dpp, read_hifi3dpp_info
    from fk.models.synthetic import hifi3dpp_info

    tmp = tmp_path_factory.mktemp("stages")
    savemat(str(tmp / "hifi.mat"), hifi3dpp_info(seed=2))
    model = load_hifi3dpp(tmp / "hifi.mat")
    info = read_hifi3dpp_info(tmp / "hifi.mat")
    torch.manual_seed(0)
    gen = T.build_texgan(**TINY).eval().requires_grad_(False)
    avg, std = T.w_stats(gen, samples=2000, batch=1000)
    render = S.UVRenderer(model, info["vtx_vt"])
    true = model.zero_coeffs()
    parts = model.split_coeffs(true)
    parts["angle"][:] = torch.tensor([0.05, 0.2, 0.0])
    parts["trans"][:] = torch.tensor([0.0, 0.0, 0.5])
    w_true = T.z_to_w(torch.randn(1, gen.mapping.num_ws, 32), avg, std)
    with torch.no_grad():
        rend = render(true, T.synth_uv(gen, w_true))
    img = rend["image"] * rend["mask"] + 0.5 * (1 - rend["mask"])
    data = S.Processed(
        img=img,
        skin_mask=torch.ones_like(rend["mask"]),
        parse_mask=torch.ones_like(rend["mask"]),
        lm=rend["lm"],
    )
    return model, info, gen, avg, std, render, true, data, rend


def test_render_covers_the_face_and_reads_texels_nearest_by_default(scene):
    model, info, gen, avg, std, render, true, data, rend = scene
    assert rend["mask"].mean() > 0.05
    assert rend["image"].shape == (1, 3, 224, 224)
    bil = S.UVRenderer(model, info["vtx_vt"], uv_sampling="bilinear")
    with torch.no_grad():
        other = bil(true, T.synth_uv(gen, T.z_to_w(torch.zeros(1, gen.mapping.num_ws, 32), avg, std)))
    assert other["mask"].sum() == rend["mask"].sum()


def test_stage2_then_stage3_fit_and_write_every_file(scene, tmp_path):
    model, info, gen, avg, std, render, true, data, _ = scene
    start = true.clone()
    model.split_coeffs(start)["angle"][:] += torch.tensor(
        [0.0, 0.06, 0.0]
    )  # pose off by 3.4°: stage 3 pulls it back
    r2 = S.stage2(render, gen, avg, std, data, start, {**L.STAGE2, "steps": 6})
    assert r2.history[-1]["color"] < r2.history[0]["color"]
    np.testing.assert_allclose(
        r2.latents_z.norm(dim=-1), T.initial_z(gen.mapping.num_ws, 32).norm(dim=-1), rtol=1e-5
    )  # stayed on the sphere
    r3 = S.stage3(render, gen, avg, std, data, r2, {**L.STAGE3, "steps": 12, "pose_lr_scale": 1.0})
    assert r3.history[-1]["loss"] < r3.history[0]["loss"]
    assert r3.history[-1]["lm"] < r3.history[0]["lm"]
    err = (model.split_coeffs(r3.coeffs)["angle"] - model.split_coeffs(true)["angle"]).abs().max()
    assert np.rad2deg(float(err)) <= 2.0  # pose recovered to within 2°
    for stage, res in ((2, r2), (3, r3)):
        names = S.write_stage(
            tmp_path, stage, model, res, info["vt_list"], info["head_tri_vt"].astype(int) - 1, data.lm
        )
        assert names == [
            f"stage{stage}_coeffs.npz",
            f"stage{stage}_mesh.mtl",
            f"stage{stage}_mesh_exp.obj",
            f"stage{stage}_mesh_id.obj",
            f"stage{stage}_uv.png",
        ]
    saved = np.load(tmp_path / "stage3_coeffs.npz")
    assert saved["coeffs"].shape == (1, model.n_coeffs)
    assert saved["latents_w"].shape == saved["latents_z"].shape == (1, gen.mapping.num_ws, 32)
    import trimesh

    mesh = trimesh.load(tmp_path / "stage3_mesh_id.obj", process=False)
    assert mesh.visual.kind == "texture"
