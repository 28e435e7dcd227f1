"""FFHQ-UV's full path (stage 1 R-Net -> stage 2 -> stage 3) on generated files in the originals' formats:
a HiFi3D++ ``hifi3dpp_model_info.mat`` (a face-sized grid), a tiny StyleGAN2-ADA texture decoder written
as NVIDIA's training-snapshot pickle, and an R-Net checkpoint ``{'net_recon': state_dict}`` with
HiFi3D++'s seven heads (exp head ReLU).

The generated R-Net's heads have zero weights, so it regresses its biases whatever the photo: a known
stage-1 start. That makes the fit-back test meaningful: the start is off the truth by a known pose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fk.errors import InputError
from scipy.io import savemat

GRID = (24, 20)  # columns x rows of the generated HiFi3D++ "head": 480 vertices, 874 triangles
DECODER = {"resolution": 16, "z_dim": 32, "w_dim": 32, "channel_base": 512, "channel_max": 32,
           "mapping_layers": 2}  # fmt: skip
STAGE_FILES = [
    "stage1_coeffs.npz", "stage1_mesh_exp.obj", "stage1_mesh_id.obj", "stage1_vis.png",
    "stage1_vis_3dmmtex_as_uv.png",
    *[f"stage{s}_{n}" for s in (2, 3) for n in ("coeffs.npz", "mesh.mtl", "mesh_exp.obj", "mesh_id.obj",
                                                 "uv.png", "vis.png")],
]  # fmt: skip
EYE_FILES = ["L_ball.obj", "R_ball.obj", "eye_ball_tex.mtl", "eye_ball_tex.png"]


def write_rnet(path: Path, model, start: torch.Tensor) -> Path:
    """R-Net in FFHQ-UV's checkpoint layout whose heads output ``start`` (1, n_coeffs) for any photo."""
    from fk.nets.reconnet import ReconNet
    from fk_uvfit.full import reconnet_layout

    torch.manual_seed(0)
    net = ReconNet(reconnet_layout(model))
    with torch.no_grad():
        off = 0
        for head in net.final_layers:
            n = head.bias.numel()
            head.bias.copy_(start[0, off : off + n])
            off += n
    torch.save({"net_recon": net.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """FK_HOME with HiFi3D++ and the R-Net where `fk doctor` says they go, and the decoder pickle."""
    from fk.models.hifi3dpp import load_hifi3dpp
    from fk.models.synthetic import hifi3dpp_info
    from fk.testing.stylegan2 import write_stylegan2_pickle

    tmp = tmp_path_factory.mktemp("full")
    home = tmp / "home"
    (home / "assets" / "hifi3dpp").mkdir(parents=True)
    mat = home / "assets" / "hifi3dpp" / "hifi3dpp_model_info.mat"
    savemat(str(mat), hifi3dpp_info(seed=3, grid=GRID))
    model = load_hifi3dpp(mat)
    start = model.zero_coeffs()
    parts = model.split_coeffs(start)
    parts["trans"][:] = torch.tensor([0.0, 0.1, 0.4])
    parts["exp"][:] = torch.linspace(-0.5, 0.5, model.n_exp)  # the exp ReLU zeroes the negative ones
    rnet_dir = home / "assets" / "ffhquv" / "checkpoints" / "deep3d_model"
    rnet_dir.mkdir(parents=True)
    write_rnet(rnet_dir / "epoch_latest.pth", model, start)
    gan = tmp / "network-snapshot-texgan.pkl"
    write_stylegan2_pickle(gan, **DECODER, with_discriminator=False)
    return {"home": home, "mat": mat, "model": model, "start": start, "gan": gan,
            "rnet": rnet_dir / "epoch_latest.pth", "tmp": tmp}  # fmt: skip


def _files(a, **kw):
    from fk_uvfit.full import FullFiles

    f = {"texgan": a["gan"], "rnet": a["rnet"], "model": a["mat"], "unwrap": None, "unwrap_mask": None,
         "arcface": None, "vgg": None, "lpips": None, **kw}  # fmt: skip
    return FullFiles(**f, wanted={})


def test_rnet_layout_and_safe_load(assets, tmp_path):
    from fk.nets.reconnet import HIFI3DPP, load_reconnet
    from fk_uvfit.full import reconnet_layout

    model = assets["model"]
    assert HIFI3DPP.sizes == (532, 45, 439, 3, 27, 2, 1)
    assert HIFI3DPP.n_coeffs == 1049
    net = load_reconnet(assets["rnet"], layout=reconnet_layout(model))
    with torch.no_grad():
        got = net(torch.rand(1, 3, 224, 224))
    want = assets["start"].clone()
    model.split_coeffs(want)["exp"].clamp_(min=0)  # upstream's exp head ends in a ReLU
    torch.testing.assert_close(got, want)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "epoch_latest.pth"
    torch.save({"net_recon": {"x": Evil()}}, bad)
    with pytest.raises(InputError, match="refuses"):
        load_reconnet(bad, layout=reconnet_layout(model))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", ["global", "nested-global", "module-src"])
def test_texture_gan_snapshot_loads_safely(assets, tmp_path, kind):
    from fk.testing.stylegan2 import write_malicious_pickle
    from fk_uvfit.texgan import load_texgan

    gen = load_texgan(assets["gan"])
    assert gen.img_resolution == 16
    assert not any(p.requires_grad for p in gen.parameters())
    bad = write_malicious_pickle(tmp_path / "evil.pkl", tmp_path / "marker", kind=kind)
    if kind == "module-src":  # valid; its stored source would run in NVIDIA's loader: read, never run
        load_texgan(bad)
    else:
        with pytest.raises(InputError):
            load_texgan(bad)
    assert not (tmp_path / "marker").exists()


def test_path_choice_and_preflight_notices(assets, monkeypatch):
    from fk.errors import AssetMissingError
    from fk_uvfit.full import choose_path, find_files, preflight

    monkeypatch.setenv("FK_HOME", str(assets["tmp"] / "empty"))
    assert choose_path("auto", find_files()) == "embedded"
    with pytest.raises(AssetMissingError, match="ffhquv-texgan"):
        choose_path("full", find_files())
    assert preflight({"path": "auto"})[0].startswith("embedded path")
    monkeypatch.setenv("FK_HOME", str(assets["home"]))
    files = find_files(texgan=str(assets["gan"]))
    assert choose_path("auto", files) == "full"
    notes = preflight({"path": "auto", "texgan": str(assets["gan"])})
    assert notes[0].startswith("full path")
    assert any("identity term is skipped" in n for n in notes)
    assert any("perceptual term is skipped" in n for n in notes)


@pytest.mark.slow
def test_recipe_runs_stage_1_to_3_and_writes_every_file(assets):
    out = assets["tmp"] / "out"
    sets = ["fit.s2_steps=2", "fit.s3_steps=2", "fit.w_stat_samples=1000", f"fit.texgan={assets['gan']}",
            "uvfit.view_size=96", "renderer=cpu"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "uvfit", "fit", "builtin:astronaut", "--out", str(out),
         *[a for s in sets for a in ("--set", s)]],
        capture_output=True, text=True, timeout=600, env={**os.environ, "FK_HOME": str(assets["home"])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = out / "astronaut_00"
    names = {p.name for p in item.iterdir()}
    assert set(STAGE_FILES + EYE_FILES + ["astronaut_00.glb", "uvfit.json"]) <= names, sorted(names)
    assert not any(n.endswith(".mlt") or n.endswith(".pt") for n in names)
    info = json.loads((item / "uvfit.json").read_text())
    assert info["path"] == "full"
    assert info["texture"].startswith("FFHQ-UV texture GAN")
    assert info["loss_weights"]["stage2"]["w_id"] == 0
    assert info["loss_weights"]["stage2"]["w_lpips"] == 0
    assert info["loss_weights"]["stage2"]["w_color"] == 10.0
    assert info["loss_weights"]["stage3"]["w_lm"] == 2e-3
    assert {"fit_stage1", "fit_stage2", "fit_stage3", "eyeballs"} <= set(info["seconds"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("stage 3: 2 steps" in m for m in manifest["items"]["astronaut"]["messages"])
    assert "fit (fit:uvfit): full path: FFHQ-UV texture GAN" in proc.stdout + proc.stderr  # said once

    # stage 1: upstream's keys, the exp ReLU, vertex-colour OBJs; stages 2-3: latents and the UV map
    s1 = np.load(item / "stage1_coeffs.npz")
    assert sorted(s1.files) == ["coeffs", "lm68"]
    model = assets["model"]
    assert (model.split_coeffs(torch.as_tensor(s1["coeffs"]))["exp"] >= 0).all()
    first_v = next(ln for ln in (item / "stage1_mesh_id.obj").read_text().splitlines() if ln.startswith("v "))
    assert len(first_v.split()) == 7  # v x y z r g b
    s3 = np.load(item / "stage3_coeffs.npz")
    assert s3["latents_w"].shape == s3["latents_z"].shape == (1, 6, 32)  # 16² decoder: 6 ws
    from fk.io import load_image

    assert load_image(item / "stage3_uv.png").shape == (16, 16, 3)
    assert load_image(item / "stage1_vis.png").shape == (224, 5 * 224, 3)
    assert load_image(item / "stage3_vis.png").shape == (224, 6 * 224, 3)
    assert load_image(item / "stage1_vis_3dmmtex_as_uv.png").shape == (1024, 1024, 3)

    import trimesh

    for stage in (2, 3):
        head = trimesh.load(item / f"stage{stage}_mesh_id.obj", process=False)
        assert head.visual.kind == "texture"
        assert head.visual.material.image.size == (16, 16)
        assert len(head.faces) == len(model.triangles)
    ball = trimesh.load(item / "L_ball.obj", process=False)
    assert ball.visual.kind == "texture"
    scene = trimesh.load(item / "astronaut_00.glb")
    assert len(scene.geometry) == 3
    assert all(g.visual.kind == "texture" for g in scene.geometry.values())
    page = (out / "index.html").read_text()
    assert "FFHQ-UV texture GAN" in page


@pytest.mark.slow
def test_fit_back_a_synthetic_photo(assets, monkeypatch):
    """A photo rendered from known coefficients and a known UV map is fitted back by stages 1-3.

    Set-up (why the bars are reachable and meaningful): the true UV map is the 16² decoder's output at a
    latent z* on stage 2's sphere: one random direction for every W+ layer (an inverted photo's layers are
    alike, so geocross does not pull away from it), each vector rescaled to the norm of upstream's
    RandomState(123) start so the spherical search can reach it; a texel covers about 8 x 8 photo pixels.
    The generated R-Net starts stage 2 from the true shape and light but a pose 3° off in yaw: stage 2 must
    find the map through that misregistration, and stage 3 must bring the pose back (to ≤ 2°) with the
    landmarks to ≤ 1 px RMS. Stage 2 runs upstream's 100 steps; stage 3 is cut from 200 to 60 steps for
    CPU time, so its pose learning rate is scaled up from 0.05 to 0.3 of the base rate (a recipe
    parameter). The map is compared on the visible texels (hit by at least 4 face pixels of the true
    render): ≥ 25 dB, where upstream's start is about 6 dB.
    """
    from fk_uvfit import full as FU
    from fk_uvfit import losses as L
    from fk_uvfit import stages as S
    from fk_uvfit import texgan as T

    torch.set_num_threads(1)
    model = assets["model"]
    true = assets["start"].clone()
    parts = model.split_coeffs(true)
    parts["exp"].clamp_(min=0)
    parts["angle"][:] = torch.tensor([0.05, 0.25, 0.02])
    parts["id"][:] = torch.linspace(-0.5, 0.5, model.n_id)
    start = true.clone()
    model.split_coeffs(start)["angle"][:] += torch.tensor([0.0, np.deg2rad(3.0), 0.0])
    rnet = write_rnet(assets["tmp"] / "fitback_rnet.pth", model, start)
    nets = FU.load_networks(_files(assets, rnet=rnet), w_stat_samples=10_000)
    z0 = T.initial_z(nets.gen.mapping.num_ws, nets.gen.z_dim)
    direction = torch.randn(1, 1, z0.shape[-1], generator=torch.Generator().manual_seed(7))
    z_true = direction / direction.norm() * z0.norm(dim=-1, keepdim=True)
    uv_true = T.synth_uv(nets.gen, T.z_to_w(z_true, nets.w_avg, nets.w_std))
    with torch.no_grad():
        rt = nets.render(true, uv_true)
    photo = rt["image"] * rt["mask"] + 0.5 * (1 - rt["mask"])
    ones = torch.ones_like(rt["mask"])
    data = S.Processed(img=photo, skin_mask=ones, parse_mask=ones, lm=rt["lm"])

    size = uv_true.shape[-1]
    hits = (rt["uv_coords"][0][rt["mask"][0, 0] > 0] * (size / 512)).long().clamp(0, size - 1)
    count = torch.zeros(size * size).index_add_(0, hits[:, 0] * size + hits[:, 1], torch.ones(len(hits)))
    visible = (count >= 4).reshape(size, size)
    assert visible.sum() > 60

    def psnr(uv: torch.Tensor) -> float:
        a, b = (x[0].clamp(0, 1).permute(1, 2, 0)[visible] for x in (uv, uv_true))
        return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))

    cfg2 = {**L.STAGE2}
    cfg3 = {**L.STAGE3, "steps": 60, "pose_lr_scale": 0.3}
    out = FU.fit_stages(nets, data, torch.zeros(1, 2, 3), cfg2, cfg3)
    torch.testing.assert_close(out[1][0], start)  # stage 1 = the R-Net's regression
    first = psnr(T.synth_uv(nets.gen, T.z_to_w(z0, nets.w_avg, nets.w_std)))
    final = out[3]
    yaw_err = np.rad2deg(float((model.split_coeffs(final.coeffs)["angle"] - parts["angle"]).abs().max()))
    with torch.no_grad():
        lm = model(final.coeffs)["landmarks_yup"]
    lm_rmse = float((lm - rt["lm"]).norm(dim=-1).pow(2).mean().sqrt())
    assert first < 15, first
    assert yaw_err <= 2.0, yaw_err
    assert lm_rmse <= 1.0, lm_rmse
    assert psnr(final.uv) >= 25.0, (psnr(out[2].uv), psnr(final.uv))


@pytest.mark.slow
def test_identity_and_perceptual_terms_run_when_their_weights_exist(assets, tmp_path, monkeypatch):
    """ArcFace (ffhquv-arcface) and VGG16 + LPIPS layers (lpips-vgg16, lpips-vgg-lin) where `fk doctor` says
    they go: both terms enter the objective with upstream's weights; without them the weights count 0."""
    from fk.nets.arcface import IResNet50
    from fk.nets.lpips import LPIPS
    from fk_uvfit import full as FU
    from fk_uvfit import losses as L
    from fk_uvfit import stages as S

    home = tmp_path / "home"
    arc = home / "assets/ffhquv/checkpoints/arcface_model/ms1mv3_arcface_r50_fp16_backbone.pth"
    arc.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(IResNet50().state_dict(), arc)
    (home / "assets" / "lpips").mkdir(parents=True)
    state = LPIPS().state_dict()
    vgg = {k: v for k, v in state.items() if k.startswith("features.")}
    torch.save(vgg, home / "assets/lpips/vgg16-397923af.pth")
    torch.save({k: v.abs() for k, v in state.items() if k.startswith("lin")}, home / "assets/lpips/vgg.pth")
    monkeypatch.setenv("FK_HOME", str(home))
    found = FU.find_files(texgan=str(assets["gan"]), rnet=str(assets["rnet"]))
    assert found.arcface == arc
    assert len(found.notices()) == 1  # only the unwrap table's
    assert found.notices()[0].startswith("unwrap_1024_info.mat absent")
    nets = FU.load_networks(_files(assets, arcface=found.arcface, vgg=found.vgg, lpips=found.lpips),
                            w_stat_samples=500)  # fmt: skip
    assert nets.terms.weights(L.STAGE2)["w_id"] == 10.0
    assert nets.terms.weights(L.STAGE2)["w_lpips"] == 100.0
    img = torch.rand(1, 3, 224, 224)
    ones = torch.ones(1, 1, 224, 224)
    lm = nets.render(assets["start"], None)["lm"].detach()
    data = S.Processed(img=img, skin_mask=ones, parse_mask=ones, lm=lm)
    from fk_uvfit.preprocess import arcface_matrix

    top_down = torch.stack([lm[0, :, 0], 223 - lm[0, :, 1]], -1).numpy()
    matrix = torch.as_tensor(arcface_matrix(top_down), dtype=torch.float32)[None]
    out = FU.fit_stages(nets, data, matrix, {**L.STAGE2, "steps": 1}, {**L.STAGE3, "steps": 1})
    assert {"id", "lpips", "color", "geocross"} <= set(out[2].history[0])
    assert out[2].history[0]["id"] > 0
    assert "lpips" not in out[3].history[0]  # stage 3's LPIPS weight is 0 upstream
    assert "id" in out[3].history[0]
    # the render's warp from its own landmarks equals preprocessing's rule on the same points
    torch.testing.assert_close(L.IdentityTerm.matrix_from_landmarks(lm, 224), matrix, atol=1e-3, rtol=1e-4)
    assert S.Terms().weights(L.STAGE2)["w_id"] == 0.0  # no network: counted 0
