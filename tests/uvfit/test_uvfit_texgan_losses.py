"""Stage 2-3 building blocks: the texture decoder on fk's StyleGAN2 (safe load, W statistics, latents) and
FFHQ-UV's loss terms and schedule with upstream's defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.models.lighting import gamma_loss
from fk_uvfit import losses as L
from fk_uvfit import texgan as T

TINY = {"img_resolution": 16, "z_dim": 32, "w_dim": 32,
        "synthesis_kwargs": {**T.TEXGAN_KWARGS["synthesis_kwargs"], "channel_base": 256, "channel_max": 16,
                             "num_fp16_res": 0}}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    gen = T.build_texgan(**TINY)
    path = tmp_path_factory.mktemp("texgan") / "texgan_ffhq_uv.pth"
    torch.save(gen.state_dict(), path)
    return path, gen


def test_texgan_loads_a_state_dict_and_synthesises_uv_maps(tiny_ckpt):
    path, ref = tiny_ckpt
    gen = T.load_texgan(path, **TINY)
    assert not any(p.requires_grad for p in gen.parameters())
    w = torch.randn(1, gen.mapping.num_ws, 32)
    uv = T.synth_uv(gen, w)
    assert uv.shape == (1, 3, 16, 16)
    with torch.no_grad():
        want = (ref.synthesis(w, noise_mode="const", force_fp32=True) + 1) / 2
    torch.testing.assert_close(uv, want)
    torch.testing.assert_close(
        T.synth_uv(gen, w[:, :1]), T.synth_uv(gen, w[:, :1].repeat(1, gen.mapping.num_ws, 1))
    )


def test_texgan_refuses_pickled_code_and_wrong_shapes(tmp_path, capfd):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(InputError, match="evil.pth: this texture GAN weight file holds Python") as err:
        T.load_texgan(bad, **TINY)
    assert "texgan_ffhq_uv.pth" in err.value.hint
    assert "pwned" not in capfd.readouterr().out
    wrong = tmp_path / "wrong.pth"
    torch.save({"mapping.fc0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(InputError, match="does not fit"):
        T.load_texgan(wrong, **TINY)


def test_w_stats_and_initial_latents_follow_upstreams_seed(tiny_ckpt):
    _, gen = tiny_ckpt
    avg, std = T.w_stats(gen, samples=500, batch=128)
    z = np.random.RandomState(123).randn(500, 32)
    with torch.no_grad():
        w = gen.mapping(torch.as_tensor(z, dtype=torch.float32), None)[:, :1].numpy()
    np.testing.assert_allclose(avg.numpy(), w.mean(0, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), w.std(0, keepdims=True), atol=1e-5)
    z0 = T.initial_z(gen.mapping.num_ws, 32)
    np.testing.assert_array_equal(
        z0.numpy(), np.random.RandomState(123).randn(1, gen.mapping.num_ws, 32).astype(np.float32)
    )
    torch.testing.assert_close(T.w_to_z(T.z_to_w(z0, avg, std), avg, std), z0)


def test_learning_rate_ramps_down_only_at_the_end():
    assert L.lr_factor(0, 100, 0.25) == 1.0
    assert L.lr_factor(75, 100, 0.25) == pytest.approx(1.0)
    assert L.lr_factor(100, 100, 0.25) == pytest.approx(0.0)
    assert L.lr_factor(90, 100, 0.25) == pytest.approx(0.5 - 0.5 * math.cos(0.4 * math.pi))
    rates = L.stage3_learning_rates()
    assert rates == pytest.approx(
        {"latent": 5e-4, "id": 1e-2, "exp": 1e-2, "angle": 5e-4, "trans": 5e-4, "gamma": 5e-4}
    )
    assert L.stage3_learning_rates({**L.STAGE3, "loose_tex": True})["latent"] == pytest.approx(0.01)
    assert (L.STAGE2["steps"], L.STAGE3["steps"], L.SEED) == (100, 200, 123)


def test_geocross_is_zero_for_equal_latents_and_matches_its_formula():
    x = torch.randn(1, 1, 512).repeat(1, 18, 1)
    assert L.geocross(x) < 1e-3
    ws = torch.randn(2, 3, 4)
    d = torch.zeros(2, 3, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                a = ((ws[b, i] - ws[b, j]) ** 2).sum().add(1e-9).sqrt()
                c = ((ws[b, i] + ws[b, j]) ** 2).sum().add(1e-9).sqrt()
                d[b, i, j] = 2 * torch.atan2(a, c)
    torch.testing.assert_close(L.geocross(ws), (512 * d**2).mean((1, 2)).sum() / 8)


def test_landmark_color_gamma_and_coefficient_terms():
    w = L.landmark_weights()
    assert w[28:31].tolist() == [20, 20, 20]
    assert w[60:].tolist() == [20] * 8
    assert w.sum() == 68 + 19 * 11
    assert L.landmark_weights(86).sum() == 86
    pred, gt = torch.zeros(1, 68, 2), torch.zeros(1, 68, 2)
    gt[0, 29] = torch.tensor([1.0, 1.0])
    assert L.landmark_loss(pred, gt) == pytest.approx(20 * 2 / 68)
    img, photo, mask = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    assert L.color_loss(img, photo, mask) == pytest.approx(3.0)  # 3 channels over a one-channel count
    assert gamma_loss(torch.ones(2, 27)) == 0
    assert gamma_loss(torch.cat([torch.ones(1, 9), torch.zeros(1, 18)], 1)) > 0
    assert L.coeff_l2(torch.ones(2, 5)) == 5.0


def test_the_spherical_step_restores_each_latents_norm():
    z0 = T.initial_z(18, 512)
    norms = z0.norm(dim=-1, keepdim=True)
    moved = z0 + 0.3 * torch.randn_like(z0)
    back = L.project_to_sphere(moved, norms)
    torch.testing.assert_close(back.norm(dim=-1, keepdim=True), norms)
    cos = (back * moved).sum(-1) / (back.norm(dim=-1) * moved.norm(dim=-1))
    torch.testing.assert_close(cos, torch.ones_like(cos))  # only the length changes
