"""`fk doctor` lists every FFHQ-UV asset with where it goes."""

from __future__ import annotations

import json
import subprocess
import sys


def test_doctor_lists_every_ffhquv_asset_with_its_place(fk_home):
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FK_HOME": str(fk_home)},
    )
    assert proc.returncode == 0, proc.stderr
    assets = {a["name"]: a for a in json.loads(proc.stdout)["assets"]}
    wanted = {
        "ffhquv-texgan": "ffhquv/checkpoints/texgan_model/texgan_ffhq_uv.pth",
        "ffhquv-rnet": "ffhquv/checkpoints/deep3d_model/epoch_latest.pth",
        "ffhquv-arcface": "ffhquv/checkpoints/arcface_model/ms1mv3_arcface_r50_fp16_backbone.pth",
        "ffhquv-parsing": "ffhquv/checkpoints/parsing_model/79999_iter.pth",
        "ffhquv-vgg16": "ffhquv/checkpoints/vgg_model/vgg16.pt",
        "ffhquv-similarity-lm3d": "ffhquv/topo_assets/similarity_Lm3D_all.mat",
        "ffhquv-hair-mask": "ffhquv/topo_assets/hair_mask.png",
        "ffhquv-eye-left": "ffhquv/eye_ball_assets/eyeLeft_mesh_move.obj",
        "hifi3dpp-model-info": "hifi3dpp/hifi3dpp_model_info.mat",  # core's
        "hifi3dpp-unwrap-info": "hifi3dpp/unwrap_1024_info.mat",
    }
    for name, rel in wanted.items():
        assert assets[name]["path"] == str(fk_home / "assets" / rel), name
        assert assets[name]["present"] is False
        assert assets[name]["instructions"]
    topo = [a for a in assets if a.startswith("ffhquv-") and assets[a]["path"].endswith("_mask.png")]
    assert len(topo) == 13
