"""CoRA's mesh-rasterisation stage (`train.mesh_render`) on the synthetic subject at 64x85, on CPU."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

SWITCH = 2  # train.mesh_render_iter: steps 1-3 volumetric, then the mesh (CoRA: step > mesh_render_iter)
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/eyeball/conftest.py


@pytest.fixture
def no_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("FK_HOME", str(tmp_path / "fk-home"))


def _config(root, tmp_path, **train):
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    cfg["data"].update(meta_path=str(root / "transforms.json"), left_eye_ldm=None, right_eye_ldm=None)
    cfg["renderer"].update(sample_batch_size=512, grid_resolution=16)
    cfg["train"].update({"mesh_render": True, "mesh_render_iter": SWITCH, "mesh_render_resolution": 32,
                         "val_freq": 1000, **train})  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _losses(out):
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def test_the_stage_switches_logs_its_terms_and_moves_only_the_material(small_subject, tmp_path, no_assets):
    from fk_eyeball.avatar import load_avatar
    from fk_eyeball.train import Trainer

    root, _ = small_subject
    out = tmp_path / "run"
    lines = []
    cfg = _config(root, tmp_path, max_steps=SWITCH + 1, val_freq=SWITCH + 3)
    trainer = Trainer(cfg, out, log=lines.append)
    assert any("LPIPS weights absent" in m and "w_lpips acts as 0" in m for m in lines)
    trainer.run()
    before = load_avatar(out / "latest.pth").state_dict()
    trainer.cfg["train"]["max_steps"] = SWITCH + 3
    trainer.resumed = True  # keep appending to losses.jsonl
    summary = trainer.run()
    rows = _losses(out)
    assert [r.get("stage", "volume") for r in rows] == ["volume"] * (SWITCH + 1) + ["mesh"] * 2
    assert {"mesh_l1", "mesh_hair_diff", "abdmm_refine"} <= set(rows[-1])
    assert "mesh_lpips" not in rows[-1]  # no weights: the term is skipped
    assert rows[-1]["pixels"] > 100  # the head covers part of the frame
    obj = out / f"precompute_mesh_{SWITCH + 1:05d}.obj"
    assert obj.is_file()
    import trimesh

    mesh = trimesh.load(obj, process=False)
    assert len(mesh.faces) > 100
    torch.testing.assert_close(torch.as_tensor(mesh.vertices, dtype=torch.float32), trainer.mesh[0].cpu(),
                               atol=1e-6, rtol=1e-6)  # fmt: skip
    after = load_avatar(out / "latest.pth").state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved
    assert all(k.startswith("material.") for k in moved), moved
    assert any(k.startswith("material.grid") for k in moved)
    val = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert val[-1]["stage"] == "mesh"
    assert 0 < val[-1]["ssim"] <= 1
    from PIL import Image

    assert Image.open(val[-1]["png"]).size == (6 * 64, 85)  # CoRA's valid_mesh_step strip: 6 panels
    assert summary["steps"] == 2


def test_gradients_reach_the_material_field_and_nothing_else_is_stepped(small_subject, tmp_path, no_assets):
    from fk_eyeball.mesh_stage import keep_material_gradients, mesh_terms, rasterize_frame, shade_mesh_frame
    from fk_eyeball.train import Trainer

    root, _ = small_subject
    trainer = Trainer(_config(root, tmp_path, max_steps=1), tmp_path / "run", log=lambda m: None)
    trainer._enter_mesh_stage()
    raster = rasterize_frame(*trainer.mesh, trainer.data, 0)
    shaded = shade_mesh_frame(trainer.avatar, raster, trainer.data, 0, trainer.cfg, eye_override=False)
    terms = mesh_terms(trainer.avatar, shaded, trainer.data, 0, trainer.cfg["loss"], None)
    sum(terms.values()).backward()
    grads = {n: p.grad for n, p in trainer.avatar.named_parameters()}
    for name in ("material.grid.params", "material.mlp.0.weight", "material.mlp.4.bias"):
        assert grads[name] is not None, name
        assert grads[name].abs().sum() > 0, name
    assert grads["sh_env"].abs().sum() > 0  # the shading depends on it: CoRA drops it explicitly
    assert grads["light_scale"].abs().sum() > 0
    assert all(g is None for n, g in grads.items() if n.startswith("geometry."))  # detached normals
    keep_material_gradients(trainer.avatar)
    kept = {n for n, p in trainer.avatar.named_parameters() if p.grad is not None}
    assert kept
    assert all(n.startswith("material.") for n in kept)
    # the raster: world positions on the mesh, coverage 1 on it, d² the vertex-camera distances interpolated
    cov = raster["coverage"][..., 0] > 0
    assert torch.equal(cov, raster["triangle"] >= 0)
    cam = trainer.data.centre[0]
    d2 = ((raster["position"][cov] - cam) ** 2).sum(-1)
    # each covered pixel's surface point projects back into that pixel (the rays' camera convention)
    rot, K = trainer.data.rot[0], trainer.data.K
    cam_pts = (raster["position"][cov] - cam) @ rot
    uv = (cam_pts[:, :2] / cam_pts[:, 2:]) * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])
    rows, cols = torch.nonzero(cov, as_tuple=True)
    assert (uv[:, 0] - cols).abs().max() < 0.5 + 1e-3
    assert (uv[:, 1] - rows).abs().max() < 0.5 + 1e-3
    got = raster["dist2"][cov][:, 0]
    # the same barycentrics weight positions and d²: by convexity the interpolated d² is >= the exact one
    assert (got - d2 >= -1e-5 * d2).all()
    torch.testing.assert_close(got, d2, rtol=1e-2, atol=0)


def test_resume_across_the_switch_gives_identical_loss_lines(small_subject, tmp_path, no_assets):
    from fk.cli.main import main

    root, _ = small_subject
    cfg = _config(root, tmp_path)
    straight, before_switch, inside = tmp_path / "straight", tmp_path / "before", tmp_path / "inside"
    run = lambda out, n, *extra: main(  # noqa: E731
        ["eyeball", "train", "--config", str(cfg), "--out", str(out), "--max-steps", str(n), *extra]
    )
    assert run(straight, SWITCH + 3) == 0
    assert run(before_switch, SWITCH) == 0  # stops volumetric; the resume makes the switch
    assert run(before_switch, SWITCH + 3, "--resume") == 0
    assert run(inside, SWITCH + 2) == 0  # stops inside the mesh stage; the resume reuses its mesh
    assert run(inside, SWITCH + 3, "--resume") == 0
    expect = _losses(straight)
    assert [r.get("stage") for r in expect][-2:] == ["mesh", "mesh"]
    assert _losses(before_switch) == expect
    assert _losses(inside) == expect
    assert (inside / f"precompute_mesh_{SWITCH + 1:05d}.obj").read_bytes() == (
        straight / f"precompute_mesh_{SWITCH + 1:05d}.obj"
    ).read_bytes()


def test_lpips_joins_the_loss_and_metrics_when_its_weights_are_installed(
    small_subject, tmp_path, monkeypatch
):
    """Random VGG16/LPIPS files in the two places `fk doctor` names (lpips-vgg16, lpips-vgg-lin)."""
    from fk.nets.lpips import LPIPS
    from fk_eyeball.train import Trainer

    home = tmp_path / "fk-home"
    (home / "assets" / "lpips").mkdir(parents=True)
    torch.manual_seed(0)
    state = LPIPS().state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")},
               home / "assets/lpips/vgg16-397923af.pth")  # fmt: skip
    torch.save({k: v.abs() for k, v in state.items() if k.startswith("lin")}, home / "assets/lpips/vgg.pth")
    monkeypatch.setenv("FK_HOME", str(home))
    root, _ = small_subject
    lines = []
    out = tmp_path / "run"
    cfg = _config(root, tmp_path, max_steps=SWITCH + 2, val_freq=SWITCH + 2)
    trainer = Trainer(cfg, out, log=lines.append)
    assert trainer.lpips is not None
    assert not any("LPIPS weights absent" in m for m in lines)
    trainer.run()
    last = _losses(out)[-1]
    assert last["stage"] == "mesh"
    assert last["mesh_lpips"] > 0
    val = json.loads((out / "val.jsonl").read_text().splitlines()[-1])
    assert val["lpips"] > 0
