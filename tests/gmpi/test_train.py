"""fk gmpi train: GMPI's config keys, pose-conditioned D, shading, EMA, checkpoints in GMPI's layout,
malformed inputs (the loop on the tiny demo dataset; the DDP, resume and learning tests are in
test_train_runs.py)."""

from __future__ import annotations

import copy
import zipfile

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk_gmpi.train import Ema, TrainOptions, train
from fk_gmpi.train_config import GMPI_YML, read_train_config, settings_from_raw

from .conftest import TRAIN_TEST_CONFIG


def test_no_config_file_means_gmpi_defaults():
    s = read_train_config(None, "FFHQ256")
    assert (s.seed, s.total_iters, s.sample_interval, s.model_save_interval) == (123, 5001, 200, 500)
    assert (s.batch_size, s.batch_split, s.n_views, s.worst_view) == (8, 1, 4, True)
    assert (s.lr, s.betas, s.r1_lambda, s.grad_clip) == (0.002, (0.0, 0.9), 10.0, 10.0)
    assert (s.light_ka, s.light_kd, s.light_start, s.light_grow) == (0.9, 0.1, 1000, 1000)
    assert (s.d_cond_dim, s.cmap_dim, s.cfg.n_planes, s.cfg.resolution) == (16, 16, 32, 256)
    assert read_train_config(None, "FFHQ1024").batch_split == 2  # curriculums.py res_dict
    assert read_train_config(None, "AFHQCat").setup.n_truncated_stds == 3


def test_gmpi_yml_round_trip_and_unknown_key(tmp_path):
    import yaml

    path = tmp_path / "gmpi.yml"
    path.write_text(yaml.safe_dump(GMPI_YML))  # GMPI's own file (as fk records it) is accepted as is
    assert read_train_config(path).total_iters == 5001
    raw = copy.deepcopy(GMPI_YML)
    raw["GMPI"]["TRAIN"]["totl_iters"] = 10
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"gmpi\.yml: unknown config key GMPI\.TRAIN\.totl_iters") as err:
        read_train_config(path)
    assert "\n" not in str(err.value)
    path.write_text("GMPI: [unclosed")
    with pytest.raises(InputError, match="not readable YAML"):
        read_train_config(path)
    with pytest.raises(InputError, match="no such config file"):
        read_train_config(tmp_path / "missing.yml")
    with pytest.raises(InputError, match="use_edge_aware_loss"):
        settings_from_raw({"GMPI": {"TRAIN": {"use_edge_aware_loss": True}}}, "x.yml")


def test_discriminator_from_unconditional_stylegan2(tmp_path):
    from fk.nets.stylegan2 import read_stylegan2_pickle
    from fk.testing.stylegan2 import write_stylegan2_pickle
    from fk_gmpi.discriminator import GmpiDiscriminator, load_pretrained_discriminator

    nets = write_stylegan2_pickle(tmp_path / "t.pkl", resolution=16, channel_base=256, channel_max=16)
    record = read_stylegan2_pickle(tmp_path / "t.pkl")["D"]
    d = GmpiDiscriminator(16, 16, channel_base=256, channel_max=16, cmap_dim=16)
    mapping_before = d.mapping.weight.detach().clone()
    n = load_pretrained_discriminator(d, record.state_dict(), "t.pkl")
    assert n == len(nets["D"].state_dict())
    src = nets["D"].state_dict()
    # b4.out [1, C] broadcast into all 16 rows; the linear pose embedding keeps its initialisation
    assert d.b4.out.weight.shape == (16, src["b4.out.weight"].shape[1])
    assert torch.equal(d.b4.out.weight, src["b4.out.weight"].expand(16, -1))
    assert torch.equal(d.b4.out.bias, src["b4.out.bias"].expand(16))
    assert torch.equal(d.mapping.weight, mapping_before)
    keys = list(d.state_dict())
    assert keys.index("mapping.bias") + 1 == keys.index("b4.conv.weight")  # GMPI's order: mapping, then b4
    # projection: D(x, c) = (out(x) · normalize_2nd_moment(W c + b)) / 4; with identical rows it is
    # mean-of-cmap times the unconditional score
    x, c = torch.randn(3, 3, 16, 16), torch.randn(3, 16)
    feats = {}
    d.b4.fc.register_forward_hook(lambda m, i, o: feats.update(fc=o))
    score = d(x, c)
    fc = feats["fc"]
    cmap = d.mapping(c)
    cmap = cmap / (cmap.square().mean(1, keepdim=True) + 1e-8).sqrt()
    expected = (d.b4.out(fc) * cmap).sum(1, keepdim=True) / 4
    assert torch.allclose(score, expected, atol=1e-5)
    # minibatch std with group size 1 is the constant sqrt(1e-8): the batch does not matter
    assert torch.allclose(d(x[:1], c[:1]), score[:1], atol=1e-5)


def test_shading_ramp_and_lambertian_term():
    from fk.cameras.gmpi import camera_setup
    from fk_gmpi.lighting import LightAugment, gaussian_blur
    from fk_gmpi.mpi import texel_xyz

    light = LightAugment(camera_setup("FFHQ256"), ka_max=0.9, kd_max=0.1, n_grow_iters=4)
    dhw = torch.tensor([[0.95, 0.3, 0.3], [1.0, 0.3, 0.3], [1.12, 0.5, 0.5]])
    mpi = torch.rand(2, 3, 4, 12, 12)
    mpi[:, -1, 3] = 1
    tex = texel_xyz(dhw, 12, 12)
    head_on = np.tile([[0.0, 0.0, 1.0]], (2, 1))  # light along +z (from the camera side), normals face -z
    first = light(mpi, dhw, tex, head_on)
    assert torch.equal(first[:, :, :3], torch.zeros_like(first[:, :, :3]))  # GMPI's first shaded batch: black
    assert torch.equal(first[:, :, 3], mpi[:, :, 3])  # alpha untouched
    for _ in range(4):
        out = light(mpi, dhw, tex, head_on)
    # fully ramped: a fronto-parallel depth (only the last plane opaque) is lit head-on: ka + kd = 1
    flat = mpi.clone()
    flat[:, :-1, 3] = 0
    out = light(flat, dhw, tex, head_on)
    assert torch.allclose(out[:, :, :3], flat[:, :, :3].clamp(0, 1), atol=1e-5)
    # the blur is normalised (a constant image stays constant, reflect padding)
    assert torch.allclose(gaussian_blur(torch.full((1, 1, 9, 9), 3.0)), torch.full((1, 1, 9, 9), 3.0))


def test_ema_follows_torch_ema_warm_up():
    p = [torch.zeros(3)]
    ema = Ema(p, 0.999)
    p[0] += 1
    ema.update(p)  # n = 1: decay min(0.999, 2 / 11)
    assert torch.allclose(ema.shadow[0], torch.full((3,), 1 - 2 / 11))
    assert ema.state_dict()["num_updates"] == 1


def _opts(data, pkl, out, **kw):
    return TrainOptions(
        dataset="FFHQ256", data_root=data, out=out, pickle=pkl, batch_size=2, demo=True, progress=False, **kw
    )


def test_tiny_run_writes_gmpi_checkpoints_that_fk_reads(tmp_path, tiny_train_data, one_thread):
    from fk_gmpi.checkpoint import load_gmpi_checkpoint

    data, pkl = tiny_train_data
    settings = settings_from_raw(TRAIN_TEST_CONFIG, "test config")
    info = train(settings, _opts(data, pkl, tmp_path / "run", total_iters=4), say=lambda line: None)
    ck = tmp_path / "run" / "checkpoints"
    names = {p.name for p in ck.iterdir()}
    for base in ("generator", "discriminator", "ema", "ema2", "optimizer_G", "optimizer_D"):
        assert {f"{base}.pth", f"{base}_0.pth", f"{base}_4.pth"} <= names
    assert {"config.pth", "fk_state.pth"} <= names
    log = [r["step"] for r in _read_log(tmp_path / "run")]
    assert log == [0, 1, 2, 3, 4]
    assert info["iterations"] == 5
    for f in ck.iterdir():  # plain tensors and containers only
        torch.load(f, weights_only=True)
    loaded = load_gmpi_checkpoint(ck)
    ema = torch.load(ck / "ema.pth", weights_only=True)
    assert (ema["num_updates"], ema["decay"]) == (5, 0.999)
    params = dict(loaded.generator.named_parameters())
    for name, shadow in zip(loaded.generator.gmpi_parameter_names(), ema["shadow_params"], strict=True):
        assert torch.equal(params[name], shadow), name
    # the EMA differs from the raw weights after training, and the raw weights moved from the pickle's
    gen = torch.load(ck / "generator.pth", weights_only=True)
    gen0 = torch.load(ck / "generator_0.pth", weights_only=True)
    assert not torch.equal(gen["synthesis.b16.torgb.weight"], gen0["synthesis.b16.torgb.weight"])
    assert not torch.equal(gen["synthesis.b16.toalpha.weight"], params["synthesis.b16.toalpha.weight"])
    assert (tmp_path / "run" / "samples" / "000003.png").exists()
    rec = _read_log(tmp_path / "run")
    assert rec[2]["ka"] == 0  # shading starts after iteration 2, as GMPI's "> start_iter"
    assert rec[3]["ka"] > 0


def _read_log(folder):
    import json

    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_malformed_datasets_fail_with_one_line_naming_the_file(tmp_path, tiny_train_data):
    import shutil

    from fk.cameras.gmpi import camera_setup
    from fk_gmpi.train_data import Deep3dPoseDataset, build_dataset

    data, _ = tiny_train_data

    setup = camera_setup("FFHQ256")
    with pytest.raises(InputError, match=r"ffhq16x16\.zip: missing dataset zip"):
        build_dataset("FFHQ256", tmp_path, 16, setup)
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    (bad / "ffhq16_deep3dface_coeffs" / "00000" / "img00000003.mat").unlink()
    with pytest.raises(InputError, match=r"img00000003\.mat: missing Deep3D coefficient file") as err:
        build_dataset("FFHQ256", bad, 16, setup)
    assert "prepare-ffhq" in err.value.hint
    (bad / "ffhq16_deep3dface_coeffs" / "00000" / "img00000003.mat").write_bytes(b"not a mat")
    with pytest.raises(InputError, match=r"img00000003\.mat: not a Deep3D coefficient \.mat"):
        build_dataset("FFHQ256", bad, 16, setup)
    # listed in fail_list.txt: skipped, as GMPI
    (bad / "ffhq16_deep3dface_coeffs" / "fail_list.txt").write_text("00000/img00000003.png\n")
    assert len(build_dataset("FFHQ256", bad, 16, setup)) == 7
    with zipfile.ZipFile(bad / "ffhq16x16.zip", "a") as zf:
        zf.writestr("00000/img00000009.png", b"garbage")
    (bad / "ffhq16_deep3dface_coeffs" / "00000" / "img00000009.mat").write_bytes(
        (bad / "ffhq16_deep3dface_coeffs" / "00000" / "img00000004.mat").read_bytes()
    )
    ds = build_dataset("FFHQ256", bad, 16, setup)
    with pytest.raises(InputError, match=r"ffhq16x16\.zip:00000/img00000009\.png: not a readable image"):
        ds[len(ds) - 1]
    with pytest.raises(InputError, match="image is 16x16, training runs at 32x32"):
        Deep3dPoseDataset(ds.items[:1], ds.zip_path, setup, 32)[0]
    (tmp_path / "cats" / "afhq_v2_train_cat_512").mkdir(parents=True)
    with pytest.raises(InputError, match="dataset.json: missing"):
        build_dataset("AFHQCat", tmp_path / "cats", 16, camera_setup("AFHQCat"))


@pytest.mark.slow
def test_cli_errors_name_the_file_and_the_fix(tmp_path, tiny_train_data, fk_home):
    import subprocess
    import sys

    data, pkl = tiny_train_data
    fk = [sys.executable, "-c", "import sys; from fk.cli.main import main; sys.exit(main(sys.argv[1:]))"]
    bad = tmp_path / "gmpi.yml"
    bad.write_text("GMPI:\n  TRAIN:\n    total_iter: 3\n")
    args = ["gmpi", "train", "--config", str(bad), "--data-root", str(data), "--pickle", str(pkl), "--out",
            str(tmp_path / "o")]
    res = subprocess.run([*fk, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert f"{bad}: unknown config key GMPI.TRAIN.total_iter" in res.stderr
    assert not (tmp_path / "o").exists()  # nothing written on a refused config
    # no pickle given and the asset is missing: exit 4, naming where the file goes
    res = subprocess.run([*fk, "gmpi", "train", "--dataset", "FFHQ512", "--data-root", str(data), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 4, res.stderr
    assert "ffhq-res512-mirror-stylegan2-noaug.pkl" in res.stderr
    assert not (tmp_path / "o").exists()


def test_dataset_paths_come_from_the_config(tmp_path, tiny_train_data):
    import shutil

    from fk.cameras.gmpi import camera_setup

    from fk_gmpi.train_data import build_dataset

    data, _ = tiny_train_data
    root = tmp_path / "renamed"
    root.mkdir()
    shutil.copy(data / "ffhq16x16.zip", root / "faces16.zip")
    shutil.copytree(data / "ffhq16_deep3dface_coeffs", root / "poses")
    paths = {"FFHQ": {"TRAIN_DATAROOT": "elsewhere/faces{}.zip", "POSE_DATAROOT": "elsewhere/poses"}}
    assert len(build_dataset("FFHQ256", root, 16, camera_setup("FFHQ256"), paths=paths)) == 8
