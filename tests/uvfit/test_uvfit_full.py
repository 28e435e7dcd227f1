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
