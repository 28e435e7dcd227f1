"""FFHQ-UV's cropface630resize1024 variant on generated topo_assets PNGs and a tiny generated texture GAN.

The generated files have upstream's names and kinds (RGB PNGs; masks white inside) at 256², so every
resize upstream does (to 1664² for the fit, to 1024² for saving) happens here too. The template is a
smooth colour ramp, the minor mask a large disc, the major mask a smaller one inside it, the hair mask
the top band of the map.
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
from fk_uvfit import cropface as C
from PIL import Image

SIDE = 256
ROOT = Path(__file__).resolve().parents[2]


def _disc(radius: float, centre=(0.5, 0.55)) -> np.ndarray:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    return (((yy - centre[1]) ** 2 + (xx - centre[0]) ** 2) < radius**2).astype(np.uint8) * 255


def write_topo(folder) -> dict[str, object]:
    """template_base_uv.png, minor/major_valid_whole_mask.png and hair_mask.png, as FFHQ-UV names them."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
    template = np.stack([150 + 60 * xx, 110 + 40 * yy, 90 + 30 * xx * yy], -1).astype(np.uint8)
    hair = np.zeros((SIDE, SIDE), np.uint8)
    hair[: SIDE // 5] = 255
    images = {"template": template, "minor": _disc(0.36), "major": _disc(0.25), "hair": hair}
    out = {}
    for key, img in images.items():
        path = folder / C.TOPO_FILES[key]
        Image.fromarray(img).convert("RGB").save(path)
        out[key] = path
    return out


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    return write_topo(tmp_path_factory.mktemp("topo"))


@pytest.fixture(scope="module")
def decoder(topo):
    from fk_uvfit import texgan as T

    torch.manual_seed(0)
    small = {"channel_base": 256, "channel_max": 16, "num_fp16_res": 0}
    synthesis = {**T.TEXGAN_KWARGS["synthesis_kwargs"], **small}
    tiny = {"img_resolution": 16, "z_dim": 32, "w_dim": 32, "synthesis_kwargs": synthesis}
    gen = T.build_texgan(**tiny).eval().requires_grad_(False)
    return C.CropFaceDecoder(gen, topo)


def test_face_is_pasted_at_upstreams_rows_and_columns(decoder, topo):
    face = torch.rand(1, 3, 1024, 1024)
    full = decoder.paste(face)
    assert full.shape == (1, 3, 1664, 1664)
    torch.testing.assert_close(full[:, :, 187:1211, 317:1341], face)
    template = C.read_rgb(topo["template"], 1664) / 255.0
    outside = full[0].permute(1, 2, 0).numpy().copy()
    outside[187:1211, 317:1341] = template[187:1211, 317:1341]
    np.testing.assert_allclose(outside, template, atol=1e-6)
    assert decoder.paste(torch.rand(1, 3, 16, 16)).shape == (1, 3, 1664, 1664)  # fk: other sizes resized


def test_minor_blend_is_differentiable_inside_and_template_under_the_hair(decoder, topo):
    face = torch.rand(1, 3, 1024, 1024, requires_grad=True)
    out = decoder.blend(decoder.paste(face))
    assert out.shape == (1, 3, 1024, 1024)
    out.sum().backward()
    grad = face.grad[0, 0]
    # the paste covers rows 187-1210 of 1664: the disc centre (row 0.55 * 1664 = 915) is in it, weight 1
    assert float(grad[915 - 187, 832 - 317]) > 0
    # the hair band (top fifth of the map) is the raw template: no gradient, template colours
    hair_rows = int(0.2 * 1664) - 40  # inside the band, away from its blurred edge
    assert float(grad[: hair_rows - 187].abs().max()) == 0
    template = torch.from_numpy(C.read_rgb(topo["template"], 1664) / 255.0).permute(2, 0, 1)[None]
    want = torch.nn.functional.interpolate(template, size=(1024, 1024), mode="bilinear", align_corners=False)
    top = int(hair_rows / 1664 * 1024) - 4
    torch.testing.assert_close(out[..., :top, :].detach(), want[..., :top, :].float(), atol=1e-5, rtol=0)
    # outside the minor disc (its blur included) the colour-matched template fills: not the pasted face
    corner = out[0, :, 1000, 1000].detach()
    assert not torch.allclose(corner, decoder.paste(face)[0, :, 1625, 1625].detach(), atol=1e-3)


def test_colour_match_equals_scikit_image_yuv_statistics():
    from skimage.color import convert_colorspace

    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-3)):  # upstream's maps are float32
        src = rng.uniform(0, 255, (40, 50, 3)).astype(dtype)
        dst = rng.uniform(30, 200, (40, 50, 3)).astype(dtype)
        valid = rng.uniform(size=(40, 50)) > 0.3
        s, d = convert_colorspace(src, "rgb", "yuv"), convert_colorspace(dst, "rgb", "yuv")
        want = (s - s[valid].mean(0)) / s[valid].std(0) / 1.5 * d[valid].std(0) + d[valid].mean(0)
        want = np.clip(convert_colorspace(want, "yuv", "rgb"), 0, 255)
        got = C.match_color_yuv(src, dst, valid)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, atol=tol)


def test_laplacian_pyramid_reconstructs_and_blends_by_the_mask():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 255, (100, 90, 3))
    b = rng.uniform(0, 255, (100, 90, 3))
    levels = C.laplacian_pyramid(a, 5)
    assert [lv.shape[:2] for lv in levels] == [(100, 90), (50, 45), (25, 23), (13, 12), (7, 6)]
    np.testing.assert_allclose(C.collapse_pyramid(levels), a, atol=1e-9)
    np.testing.assert_allclose(C.pyramid_blend(b, a, np.ones_like(a)), a, atol=1e-9)
    np.testing.assert_allclose(C.pyramid_blend(b, a, np.zeros_like(a)), b, atol=1e-9)
    half = np.zeros_like(a)
    half[:, :45] = 1
    mixed = C.pyramid_blend(b, a, half)
    np.testing.assert_allclose(mixed[:, :20], a[:, :20], atol=1.0)  # far from the seam: the image
    np.testing.assert_allclose(mixed[:, 70:], b[:, 70:], atol=1.0)  # and the template


def test_saving_blend_keeps_the_face_and_puts_the_template_under_the_hair(decoder, topo):
    rng = np.random.default_rng(2)
    uv = torch.from_numpy(rng.uniform(0.2, 0.8, (1, 3, 1024, 1024)).astype(np.float32))
    out = decoder.for_saving(uv)
    assert out.shape == uv.shape
    assert out.dtype == uv.dtype
    o = out[0].permute(1, 2, 0).numpy() * 255
    u = uv[0].permute(1, 2, 0).numpy() * 255
    template = C.read_rgb(topo["template"], 1024)
    centre = (slice(520, 600), slice(480, 540))  # deep inside the major disc (centre row 563, col 512)
    np.testing.assert_allclose(o[centre], u[centre], atol=0.05)
    np.testing.assert_allclose(o[:150], template[:150], atol=1e-3)  # hair band (rows < 205, minus the blur)
    assert 0 <= o.min()
    assert o.max() <= 255


def test_missing_topo_files_are_named(topo, tmp_path):
    from fk_uvfit import assets as A

    gen = torch.nn.Linear(1, 1)
    with pytest.raises(InputError, match="hair_mask.png"):
        C.CropFaceDecoder(gen, {**topo, "hair": tmp_path / "hair_mask.png"})
    names = {a.name for a in A.ASSETS}
    assert {A.TEXGAN_CROPFACE, *A.TOPO_ASSET_OF.values()} <= names  # fk doctor lists each


def test_stages_fit_the_blended_map(decoder, tmp_path):
    """One step of stages 2 and 3 on the cropface decoder: the fit renders the 1024² blended map and the
    latent moves."""
    from fk.models.hifi3dpp import load_hifi3dpp, read_hifi3dpp_info
    from fk.models.synthetic import hifi3dpp_info
    from fk_uvfit import losses as L
    from fk_uvfit import stages as S
    from fk_uvfit import texgan as T
    from scipy.io import savemat

    savemat(str(tmp_path / "m.mat"), hifi3dpp_info(seed=4, grid=(16, 14)))
    model = load_hifi3dpp(tmp_path / "m.mat")
    render = S.UVRenderer(model, read_hifi3dpp_info(tmp_path / "m.mat")["vtx_vt"])
    avg, std = T.w_stats(decoder.gen, samples=300, batch=300)
    coeffs = model.zero_coeffs()
    model.split_coeffs(coeffs)["trans"][:] = torch.tensor([0.0, 0.1, 0.4])
    with torch.no_grad():
        lm = render(coeffs, None)["lm"]
    ones = torch.ones(1, 1, 224, 224)
    data = S.Processed(img=torch.rand(1, 3, 224, 224), skin_mask=ones, parse_mask=ones, lm=lm)
    r2 = S.stage2(render, decoder, avg, std, data, coeffs, {**L.STAGE2, "steps": 1})
    assert r2.uv.shape == (1, 3, 1024, 1024)
    z0 = T.initial_z(decoder.mapping.num_ws, decoder.z_dim)
    assert float((r2.latents_z - z0).abs().max()) > 0
    r3 = S.stage3(render, decoder, avg, std, data, r2, {**L.STAGE3, "steps": 1})
    assert float((r3.latents_w - r2.latents_w).abs().max()) > 0
    written = S.write_stage(tmp_path / "out", 3, model, r3, model.uvs.numpy(), model.uv_faces.numpy(), lm,
                            decoder.for_saving(r3.uv), decoder.raw(r3.latents_w))  # fmt: skip
    assert "stage3_uv_no_blend.png" in written
    from fk.io import load_image

    assert load_image(tmp_path / "out" / "stage3_uv.png").shape == (1024, 1024, 3)
    assert load_image(tmp_path / "out" / "stage3_uv_no_blend.png").shape == (16, 16, 3)


@pytest.mark.slow
def test_recipe_runs_the_cropface_variant(tmp_path):
    """`fk uvfit fit` with texgan_variant=cropface630, the topo files where `fk doctor` says they go."""
    from fk.models.hifi3dpp import load_hifi3dpp
    from fk.models.synthetic import hifi3dpp_info
    from fk.testing.stylegan2 import write_stylegan2_pickle
    from scipy.io import savemat

    home = tmp_path / "home"
    (home / "assets" / "hifi3dpp").mkdir(parents=True)
    mat = home / "assets" / "hifi3dpp" / "hifi3dpp_model_info.mat"
    savemat(str(mat), hifi3dpp_info(seed=3, grid=(24, 20)))
    write_topo(home / "assets" / "ffhquv" / "topo_assets")
    rnet = home / "assets" / "ffhquv" / "checkpoints" / "deep3d_model" / "epoch_latest.pth"
    rnet.parent.mkdir(parents=True)
    from fk.nets.reconnet import ReconNet
    from fk_uvfit.full import reconnet_layout

    torch.manual_seed(0)
    torch.save({"net_recon": ReconNet(reconnet_layout(load_hifi3dpp(mat))).state_dict()}, rnet)
    gan = tmp_path / "network-snapshot-cropface.pkl"
    write_stylegan2_pickle(gan, resolution=16, z_dim=32, w_dim=32, channel_base=512, channel_max=32,
                           mapping_layers=2, with_discriminator=False)  # fmt: skip
    out = tmp_path / "out"
    sets = ["fit.s2_steps=1", "fit.s3_steps=1", "fit.w_stat_samples=500", f"fit.texgan={gan}",
            "fit.texgan_variant=cropface630", "uvfit.view_size=64", "renderer=cpu"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "run", str(ROOT / "recipes" / "uvfit.yaml"), "--out", str(out),
         *[a for s in sets for a in ("--set", s)]],
        capture_output=True, text=True, timeout=900, env={**os.environ, "FK_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = out / "astronaut_00"
    names = {p.name for p in item.iterdir()}
    assert {"stage2_uv_no_blend.png", "stage3_uv_no_blend.png", "stage3_uv.png", "stage3_vis.png"} <= names
    info = json.loads((item / "uvfit.json").read_text())
    assert info["texgan_variant"] == "cropface630"
    from fk.io import load_image

    uv = load_image(item / "stage3_uv.png")
    assert uv.shape == (1024, 1024, 3)
    template = C.read_rgb(home / "assets/ffhquv/topo_assets/template_base_uv.png", 1024)
    np.testing.assert_allclose(uv[:150].astype(float), template[:150], atol=1.0)  # hair: the template
    assert "texture GAN variant cropface630" in proc.stdout + proc.stderr
