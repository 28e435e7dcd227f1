"""fk_gmpi.generator and checkpoint: the four alpha variants on fk's StyleGAN2, GMPI's checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.nets.stylegan2 import Generator
from fk_gmpi.checkpoint import config_from_dict, load_from_stylegan2_pickle, load_gmpi_checkpoint, read_config
from fk_gmpi.generator import (
    GmpiGenerator,
    PlaneInput,
    background_features,
    gmpi_order,
    interpolation_weights,
)
from fk_gmpi.mpi import depth_to_alpha
from fk_gmpi.testing import VARIANT_KEYS, tiny_config, write_gmpi_checkpoint, write_malicious_checkpoint


def tiny(variant: str, n_planes: int = 4, **kw) -> GmpiGenerator:
    torch.manual_seed(0)
    return GmpiGenerator(**config_from_dict(tiny_config(variant, 16, n_planes)).generator_kwargs(), **kw)


def planes(n: int = 4) -> PlaneInput:
    """n planes; the learnable variant's 32 tokens are interpolated to them as GMPI's render_video does."""
    return PlaneInput(torch.linspace(0, 1, n), interpolation_weights(0.95, 1.12, 32, n))


def stylegan2_twin(gen: GmpiGenerator) -> Generator:
    """NVIDIA's plain generator carrying the same StyleGAN2 weights (GMPI's extra layers dropped)."""
    sg = Generator(
        z_dim=gen.z_dim,
        c_dim=0,
        w_dim=gen.w_dim,
        img_resolution=gen.img_resolution,
        img_channels=3,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs={"channel_base": 512, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None},
    )
    own = gen.state_dict()
    sg.load_state_dict({k: own[k] for k in sg.state_dict()})
    return sg.eval()


@pytest.mark.parametrize("variant", ["vanilla", "depth", "learnable", "depth2alpha"])
def test_all_four_variants_run_and_are_differentiable(variant):
    gen = tiny(variant)
    assert gen.variant == variant
    z = torch.randn(2, 32)
    out = gen(z, planes(), noise_mode="const")
    assert out.shape == (2, 4, 4, 16, 16)
    assert out.min() >= 0
    assert out.max() <= 1
    out[:, :, 3].mean().backward()  # the alpha branch learns
    trained = {n for n, p in gen.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    alpha_layer = {
        "vanilla": "toalpha",
        "depth": "pos_enc_embed",
        "learnable": "pos_enc_embed_learnable_param",
        "depth2alpha": "todepth",
    }[variant]
    assert any(alpha_layer in n for n in trained)
    assert any(n.startswith("mapping.") for n in trained)


@pytest.mark.parametrize("variant", ["vanilla", "depth", "learnable", "depth2alpha"])
def test_rgb_path_is_stylegan2s_image_and_background_is_the_last_plane(variant):
    gen = tiny(variant).eval()
    z = torch.randn(2, 32)
    with torch.no_grad():
        out = gen(z, planes(), noise_mode="const")
        img = stylegan2_twin(gen)(z, None, noise_mode="const")
    ref = (torch.tanh(img) + 1) / 2  # G_final_img_act: tanh
    for i in range(3):  # planes 0..N-2 share StyleGAN2's image
        torch.testing.assert_close(out[:, i, :3], ref, atol=1e-5, rtol=1e-5)
    assert (out[:, -1, :3] - ref).abs().max() > 1e-3  # the background plane is built separately
    if variant in ("depth", "learnable"):
        torch.testing.assert_close(out[:, -1, 3], torch.ones_like(out[:, -1, 3]))  # background_alpha_full
    else:
        assert out[:, -1, 3].min() < 1  # GMPI's vanilla and depth2alpha networks do not force it


def test_depth_conditioning_gives_different_alphas_per_plane_and_count_is_free():
    gen = tiny("depth").eval()
    z = torch.randn(1, 32)
    with torch.no_grad():
        a4 = gen(z, planes(4), noise_mode="const")[0, :, 3]
        a7 = gen(z, planes(7), noise_mode="const")[0, :, 3]
    assert (a4[0] - a4[1]).abs().max() > 1e-4
    torch.testing.assert_close(a4[0], a7[0])  # same depth z = 0 gives the same alpha whatever the count


def test_depth2alpha_matches_the_step_formula():
    gen = tiny("depth2alpha").eval()
    z = torch.randn(1, 32)
    nz = torch.linspace(0, 1, 4)
    with torch.no_grad():
        out = gen(z, PlaneInput(nz), noise_mode="const")
    gen_depth = out[0, :, 3]
    # every pixel's alphas are a clamp ramp of one depth: 0 in front, 1 behind, monotone in z
    assert torch.all(gen_depth[1:] >= gen_depth[:-1] - 1e-6)
    d = torch.tensor([[[[0.3]]]])
    a = depth_to_alpha(nz, d, 1.0, 256)
    torch.testing.assert_close(a[0, :, 0, 0], torch.tensor([0.0, 1.0, 1.0, 1.0]))
    d = torch.tensor([[[[1 / 3]]]])
    assert depth_to_alpha(nz, d, 1.0, 256)[0, 1, 0, 0] == pytest.approx(0.5, abs=1e-4)


def test_background_features_keep_border_strips_and_interpolate_between():
    x = torch.randn(1, 2, 20, 20)
    bg = background_features(x, 0.05, eps_in_ratio=False)
    torch.testing.assert_close(bg[..., :1], x[..., :1])
    torch.testing.assert_close(bg[..., -1:], x[..., -1:])
    # column 1 is the left anchor, column 18 is 17/18 of the way to the right anchor (column 18)
    torch.testing.assert_close(bg[..., 1], x[..., 1])
    torch.testing.assert_close(bg[..., 18], x[..., 1] / 18 + x[..., 18] * 17 / 18)


def test_learnable_token_interpolation_weights():
    w = interpolation_weights(0.95, 1.12, 4, 4)
    assert w.shape == (4, 6)
    torch.testing.assert_close(w[:, 1:5], torch.eye(4), atol=1e-4, rtol=0)
    w = interpolation_weights(0.95, 1.12, 32, 7)
    torch.testing.assert_close(w.sum(1), torch.ones(7), atol=1e-5, rtol=0)
    gen = tiny("learnable").eval()
    assert gen.synthesis.b4.pos_enc_embed_learnable_param.shape[1] == 32  # GMPI's fixed token count
    with torch.no_grad():
        out = gen(torch.randn(1, 32), PlaneInput(torch.linspace(0, 1, 7), w), noise_mode="const")
    assert out.shape[1] == 7
    with pytest.raises(ValueError, match="trained for 32 planes"):
        gen(torch.randn(1, 32), PlaneInput(torch.linspace(0, 1, 7)))


def test_gmpi_order_puts_plane_layers_first_in_each_block():
    names = [
        "synthesis.b4.const",
        "synthesis.b4.conv1.weight",
        "synthesis.b4.torgb.weight",
        "synthesis.b4.pos_enc_embed.weight1",
        "synthesis.b4.toalpha.weight",
        "synthesis.b8.conv0.weight",
        "synthesis.b4.pos_enc_embed_learnable_param",
        "mapping.fc0.weight",
    ]
    assert gmpi_order(names) == [
        "synthesis.b4.pos_enc_embed_learnable_param",
        "synthesis.b4.const",
        "synthesis.b4.pos_enc_embed.weight1",
        "synthesis.b4.conv1.weight",
        "synthesis.b4.torgb.weight",
        "synthesis.b4.toalpha.weight",
        "synthesis.b8.conv0.weight",
        "mapping.fc0.weight",
    ]


@pytest.mark.parametrize("variant", list(VARIANT_KEYS))
def test_gmpi_checkpoint_round_trip_uses_ema_weights_and_zero_w_avg(tmp_path, variant):
    ref = write_gmpi_checkpoint(tmp_path / "ck", variant)
    loaded = load_gmpi_checkpoint(tmp_path / "ck")
    z = torch.randn(1, 32)
    # noise buffers are not in the checkpoint's EMA either (GMPI evaluates with random noise): compare without
    a = loaded.generator(z, planes(), truncation_psi=0.7, noise_mode="none")
    b = ref(z, planes(), truncation_psi=0.7, noise_mode="none")
    torch.testing.assert_close(a, b)
    assert loaded.generator.mapping.w_avg.abs().max() == 0  # as GMPI's evaluation: buffers keep their init
    trained = load_gmpi_checkpoint(tmp_path / "ck", w_avg="checkpoint").generator
    assert trained.mapping.w_avg.abs().max() > 0
    # without generator.pth the positional shadows are named by GMPI's registration order
    (tmp_path / "ck" / "generator.pth").unlink()
    again = load_gmpi_checkpoint(tmp_path / "ck").generator
    torch.testing.assert_close(again(z, planes(), noise_mode="none"), ref(z, planes(), noise_mode="none"))


def test_checkpoint_errors_and_malicious_config(tmp_path, capfd):
    write_gmpi_checkpoint(tmp_path / "ck", "depth")
    raw = torch.load(tmp_path / "ck" / "config.pth", weights_only=True)
    raw["config"]["GMPI"]["MODEL"]["STYLEGAN2"]["synthesis_kwargs"]["channel_max"] = 16
    torch.save(raw, tmp_path / "ck" / "config.pth")
    with pytest.raises(InputError, match="shape"):
        load_gmpi_checkpoint(tmp_path / "ck")
    write_malicious_checkpoint(tmp_path / "bad")
    with pytest.raises(InputError, match="config.pth: this GMPI checkpoint file holds Python objects") as err:
        read_config(tmp_path / "bad" / "config.pth")
    assert "--ckpt FOLDER" in err.value.hint
    assert "pwned" not in capfd.readouterr().out  # os.system never ran
    with pytest.raises(InputError, match="no config.pth"):
        load_gmpi_checkpoint(tmp_path)


def test_reads_gmpis_yaml_config(tmp_path):
    (tmp_path / "gmpi.yml").write_text(
        'GMPI:\n  TRAIN:\n    dataset: "MetFaces"\n  MPI:\n    n_gen_planes: 32\n  MODEL:\n    STYLEGAN2:\n'
        '      torgba_cond_on_pos_enc: "depth2alpha"\n'
        '      torgba_cond_on_pos_enc_embed_func: "modulated_lrelu"\n'
    )
    cfg = read_config(tmp_path / "gmpi.yml")
    assert (cfg.dataset, cfg.resolution, cfg.n_planes) == ("MetFaces", 1024, 32)
    kw = cfg.generator_kwargs()
    assert kw["synthesis_kwargs"] == {
        "channel_base": 32768,
        "channel_max": 512,
        "num_fp16_res": 4,
        "conv_clamp": 256,
    }
    assert (
        read_config(tmp_path / "gmpi.yml", "FFHQ256").generator_kwargs()["synthesis_kwargs"]["channel_base"]
        == 16384
    )
    assert cfg.camera_setup().h_stddev == 0.339


def test_stylegan2_pickle_start(tmp_path):
    from fk.testing.stylegan2 import write_stylegan2_pickle

    nets = write_stylegan2_pickle(tmp_path / "tiny.pkl", resolution=16, z_dim=32, w_dim=32)
    loaded = load_from_stylegan2_pickle(tmp_path / "tiny.pkl", "FFHQ256", n_planes=4)
    z = torch.randn(1, 32)
    with torch.no_grad():
        out = loaded.generator(z, planes(), noise_mode="const")
        img = nets["G_ema"].eval()(z, None, noise_mode="const")
    torch.testing.assert_close(out[:, 0, :3], (torch.tanh(img) + 1) / 2, atol=1e-5, rtol=1e-5)
    assert np.isclose(float(out[:, -1, 3].min()), 1.0)
