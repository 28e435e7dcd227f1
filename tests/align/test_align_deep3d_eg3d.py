"""crop:deep3d (POS + align_img) and crop:eg3d: geometry, pixels and the maps back."""

from __future__ import annotations

import numpy as np
import pytest
from pathlib import Path

from fk.errors import InputError
from fk.types import apply_homography
from fk_align.deep3d_align import (
    STANDARD_5PT_3D,
    align_img,
    crop_from_trans_params,
    deep3d_points_to_source,
    pos,
)
from fk_align.eg3d_crop import eg3d_crop
from fk_align.landmarks import five_from_68
from PIL import Image

from .conftest import blob_centroid, blob_image


def test_pos_recovers_an_affine_camera():
    r1, r2 = np.array([300.0, 20.0, -15.0]), np.array([-10.0, 290.0, 30.0])
    t = np.array([250.0, 180.0])
    pts2d = np.stack([STANDARD_5PT_3D @ r1 + t[0], STANDARD_5PT_3D @ r2 + t[1]], axis=1)
    t_fit, s = pos(pts2d, STANDARD_5PT_3D)
    np.testing.assert_allclose(t_fit, t, atol=1e-8)
    assert s == pytest.approx((np.linalg.norm(r1) + np.linalg.norm(r2)) / 2, rel=1e-10)


def _reference_box(lm68: np.ndarray, w0: int, h0: int, target: int, rescale: float):
    """deep3d.md §3.2 restated: y-up 5 points, POS, s = rescale / s_pos, int-truncated box."""
    p5 = five_from_68(lm68)
    p5[:, 1] = h0 - 1 - p5[:, 1]
    a = np.zeros((10, 8))
    for i, (X, (_x, _y)) in enumerate(zip(STANDARD_5PT_3D, p5, strict=True)):
        a[2 * i, :3], a[2 * i, 3] = X, 1
        a[2 * i + 1, 4:7], a[2 * i + 1, 7] = X, 1
    k = np.linalg.lstsq(a, p5.reshape(-1), rcond=None)[0]
    s = rescale / ((np.linalg.norm(k[:3]) + np.linalg.norm(k[4:7])) / 2)
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - target / 2 + (k[3] - w0 / 2) * s)
    up = int(h / 2 - target / 2 + (h0 / 2 - k[7]) * s)
    return s, (k[3], k[7]), (w, h), (left, up)


@pytest.fixture(scope="module")
def astro_deep3d(astro_rgb, astro_face):
    return align_img(astro_rgb, astro_face.landmarks)


def test_align_img_matches_reference_geometry_and_pixels(astro_deep3d, astro_rgb, astro_face):
    s, t, (w, h), (left, up) = _reference_box(astro_face.landmarks, 512, 512, 224, 102.0)
    np.testing.assert_allclose(astro_deep3d.trans_params, [512, 512, s, t[0], t[1]], rtol=1e-12)
    assert astro_deep3d.box == (left, up, left + 224, up + 224)
    expected = (
        Image.fromarray(astro_rgb)
        .resize((w, h), Image.Resampling.BICUBIC)
        .crop((left, up, left + 224, up + 224))
    )
    np.testing.assert_array_equal(astro_deep3d.image, np.asarray(expected))


def test_deep3d_crop_frames_the_face(astro_deep3d):
    p5 = astro_deep3d.landmarks[[36, 39, 42, 45, 30, 48, 54]]
    assert (p5 > 20).all()
    assert (p5 < 204).all()
    eye_dist = np.linalg.norm(astro_deep3d.landmarks[42:48].mean(0) - astro_deep3d.landmarks[36:42].mean(0))
    assert 50 < eye_dist < 80, "102 px/dm puts eye centres ~62 px apart (0.62 dm in the 3D template)"


def test_deep3d_landmarks_agree_with_deep3ds_own_formula(astro_deep3d, astro_face):
    """Deep3D maps y-up landmarks with lm' = (lm - t + (w0/2, h0/2)) s - (w/2 - T/2, h/2 - T/2)."""
    w0, h0, s, tx, ty = astro_deep3d.trans_params
    up_lm = astro_face.landmarks.copy()
    up_lm[:, 1] = h0 - 1 - up_lm[:, 1]
    w, h = int(w0 * s), int(h0 * s)
    ref = (up_lm - [tx, ty] + [w0 / 2, h0 / 2]) * s - [w / 2 - 112, h / 2 - 112]
    ref[:, 1] = 223 - ref[:, 1]
    assert np.abs(ref - astro_deep3d.landmarks).max() < 1.5  # Deep3D ignores truncation and half pixels
    # and the parity inverse takes its own crop points back to the source
    back = deep3d_points_to_source(np.stack([ref[:, 0], 223 - ref[:, 1]], 1), astro_deep3d.trans_params)
    np.testing.assert_allclose(back, up_lm, atol=1e-9)


def test_crop_from_trans_params_rebuilds_the_matrix(astro_deep3d):
    np.testing.assert_allclose(
        crop_from_trans_params(astro_deep3d.trans_params), astro_deep3d.crop_from_source
    )


@pytest.mark.parametrize("which", ["deep3d", "eg3d"])
def test_blobs_land_where_the_matrix_says(astro_face, which):
    lm = astro_face.landmarks
    points = np.array([lm[30], lm[36], lm[54], lm[8] - [0, 10]])
    img = blob_image((512, 512), points, sigma=3.0)
    res = align_img(img, lm) if which == "deep3d" else eg3d_crop(img, lm)
    for p in points:
        predicted = apply_homography(res.crop_from_source, p)
        assert np.abs(blob_centroid(res.image, predicted, 8.0) - predicted).max() < 0.1


def test_eg3d_crop_is_the_centre_of_a_1024_align(astro_rgb, astro_face):
    res = eg3d_crop(astro_rgb, astro_face.landmarks)
    big = align_img(astro_rgb, astro_face.landmarks, target_size=1024, rescale_factor=300.0)
    assert res.image.shape == (512, 512, 3)
    expected = (
        Image.fromarray(big.image).crop((162, 162, 862, 862)).resize((512, 512), Image.Resampling.LANCZOS)
    )
    np.testing.assert_array_equal(res.image, np.asarray(expected))
    np.testing.assert_allclose(res.trans_params, big.trans_params)
    # EG3D frames the face 300/466.285 as tightly as Deep3D, then keeps the central 700 of 1024
    d3 = align_img(astro_rgb, astro_face.landmarks)
    eye = lambda c: np.linalg.norm(c.landmarks[42:48].mean(0) - c.landmarks[36:42].mean(0))  # noqa: E731
    assert eye(res) / 512 == pytest.approx(eye(d3) / 224 * (300 / 466.285) * (1024 / 700), rel=0.02)


@pytest.mark.parametrize("which", ["deep3d", "eg3d"])
def test_landmark_round_trip(astro_rgb, astro_face, which):
    res = (
        align_img(astro_rgb, astro_face.landmarks)
        if which == "deep3d"
        else eg3d_crop(astro_rgb, astro_face.landmarks)
    )
    back = apply_homography(np.linalg.inv(res.crop_from_source), res.landmarks)
    assert np.abs(back - astro_face.landmarks).max() < 0.5


def test_five_point_input_gives_the_same_crop(astro_rgb, astro_face, astro_deep3d):
    res = align_img(astro_rgb, five_from_68(astro_face.landmarks))
    np.testing.assert_array_equal(res.image, astro_deep3d.image)


def test_deep3d_folder_runs_like_test_py(astro_rgb, astro_face, tmp_path, fk_home):
    """A Deep3D-style folder (*.jpg + detections/*.txt, 5 points) through fk run: test.py's crop, then
    R-Net's coefficients unchanged in {stem}.mat and the mesh in {stem}.obj (generated BFM + checkpoint)."""
    import json

    import scipy.io
    import torch
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe
    from fk.testing.reconnet import install_deep3d_assets
    from PIL import Image

    net = install_deep3d_assets(fk_home)

    folder = tmp_path / "examples"
    (folder / "detections").mkdir(parents=True)
    Image.fromarray(astro_rgb).save(folder / "000002.jpg", quality=95)
    five = five_from_68(astro_face.landmarks) + 0.3  # not on the pixel grid: float32 matters
    (folder / "detections" / "000002.txt").write_text("".join(f"{float(x)!r}\t{float(y)!r}\n" for x, y in five))
    Image.fromarray(astro_rgb).save(folder / "nodetection.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text((Path(__file__).resolve().parents[2] / "recipes" / "deep3d_folder.yaml").read_text()
                      .replace("builtin:deep3d_examples", str(folder)))
    out = tmp_path / "out"
    run_plan(load_recipe(recipe), RunOptions(out, progress=False))
    failures = {f["item"]: f["error"] for f in json.loads((out / "failures.json").read_text())}
    assert list(failures) == ["nodetection"], "Deep3D skips an image without detections; fk records it"
    assert "detections/nodetection.txt is not found" in failures["nodetection"]
    # test.py: np.loadtxt(...).astype(np.float32), y flipped in float32, align_img on the jpg
    photo = np.asarray(Image.open(folder / "000002.jpg").convert("RGB"))
    expected = align_img(photo, np.loadtxt(folder / "detections" / "000002.txt").astype(np.float32)).image
    np.testing.assert_array_equal(np.asarray(Image.open(out / "crop" / "000002.png")), expected)
    assert (out / "crop" / "debug" / "000002.png").exists()
    # test.py's {stem}.mat holds R-Net's split prediction for that crop, unchanged
    with torch.no_grad():
        want = net(torch.tensor(expected, dtype=torch.float32).permute(2, 0, 1)[None] / 255)[0]
    mat = scipy.io.loadmat(out / "epoch_20_000000" / "000002.mat")
    got = np.concatenate([mat[k][0] for k in ("id", "exp", "tex", "angle", "gamma", "trans")])
    np.testing.assert_allclose(got, want.double().numpy(), rtol=1e-5, atol=1e-6)
    assert (out / "epoch_20_000000" / "000002.obj").stat().st_size > 0
    assert not json.loads((out / "manifest.json").read_text())["plan"]["notices"]  # R-Net ran: no fallback


def test_crops_take_five_points_and_float32_flips_in_float32(astro_rgb, astro_face):
    from fk_align.crops import Deep3DCrop, Eg3dCrop, FfhqCrop

    five = (five_from_68(astro_face.landmarks) + 0.37).astype(np.float32)
    d = Deep3DCrop(save=False).crop(astro_rgb, five)
    assert d.image.shape == (224, 224, 3)
    assert Eg3dCrop(save=False).crop(astro_rgb, five).image.shape == (512, 512, 3)
    # Deep3D flips y as H - 1 - y in float32; the fit then sees exactly those values
    from fk_align.landmarks import flip_y

    flipped = flip_y(five, 512)
    assert flipped.dtype == np.float32
    np.testing.assert_array_equal(flipped[:, 1], np.float32(511) - five[:, 1])
    from fk_align.crops import face_landmarks

    with pytest.raises(InputError, match="68"):
        face_landmarks(five)  # crop:ffhq and the realign need 68
    del FfhqCrop


def test_standard_points_are_deep3ds_float32_values_not_rounded():
    from fk_align.deep3d_align import STANDARD_5PT_3D

    # load_lm3d's means of float32 rows stay float32: every value is exactly a float32
    np.testing.assert_array_equal(STANDARD_5PT_3D.astype(np.float32).astype(np.float64), STANDARD_5PT_3D)
    assert np.abs(STANDARD_5PT_3D - np.round(STANDARD_5PT_3D, 5)).max() > 1e-7, "not the 5-decimal copy"
    # eyes level and symmetric, nose forward: the BFM landmark layout
    assert STANDARD_5PT_3D[2, 2] > STANDARD_5PT_3D[0, 2]
    np.testing.assert_allclose(STANDARD_5PT_3D[0, 0], -STANDARD_5PT_3D[1, 0], atol=0.01)


def _lm3d_file(path, points5, dtype=np.float32):
    """A similarity_Lm3D_all.mat ('lm', 68 x 3) whose 5-point reduction is ``points5``."""
    from scipy.io import savemat

    p = np.asarray(points5, np.float64)
    lm = np.repeat(p[2:3], 68, axis=0)
    lm[36] = lm[39] = p[0]
    lm[42] = lm[45] = p[1]
    lm[48], lm[54] = p[3], p[4]
    savemat(path, {"lm": lm.astype(dtype)})
    return path


def test_lm3d_file_replaces_the_standard_points(astro_rgb, astro_face, astro_deep3d, tmp_path):
    from fk.plugins import get_plugin_manager
    from fk_align.deep3d_align import load_lm3d

    same = _lm3d_file(tmp_path / "same.mat", STANDARD_5PT_3D, np.float64)
    np.testing.assert_array_equal(load_lm3d(same), STANDARD_5PT_3D)
    res = align_img(astro_rgb, astro_face.landmarks, points3d=load_lm3d(same))
    np.testing.assert_array_equal(res.image, astro_deep3d.image)
    # A reference head 10% larger: the same photo is resized 10% more (s = 102 / s_pos), the centre stays.
    big = _lm3d_file(tmp_path / "big.mat", STANDARD_5PT_3D * 1.1, np.float64)
    crop = get_plugin_manager().component("crop:deep3d").load_factory()(save=False, lm3d=str(big))
    got = crop.crop(astro_rgb, astro_face.landmarks)
    ref = astro_deep3d.trans_params
    assert got.params["trans_params"][2] == pytest.approx(ref[2] * 1.1, rel=1e-9)
    np.testing.assert_allclose(got.params["trans_params"][3:], ref[3:], atol=1e-6)
    assert got.params["lm3d"] == str(big)
    w, h = got.params["resized"]
    assert (w, h) == (int(ref[0] * ref[2] * 1.1), int(ref[1] * ref[2] * 1.1))
    # float32 files reduce in float32, as Deep3D's load_lm3d and FFHQ-UV's extract_5p do
    f32 = load_lm3d(_lm3d_file(tmp_path / "f32.mat", STANDARD_5PT_3D))
    assert f32.dtype == np.float32


def test_lm3d_file_errors_name_the_file(tmp_path):
    from fk_align.deep3d_align import load_lm3d
    from scipy.io import savemat

    savemat(tmp_path / "nolm.mat", {"x": np.zeros((68, 3))})
    with pytest.raises(InputError, match="nolm.mat: not a similarity_Lm3D_all.mat"):
        load_lm3d(tmp_path / "nolm.mat")
    savemat(tmp_path / "shape.mat", {"lm": np.zeros((68, 2))})
    with pytest.raises(InputError, match=r"shape.mat: 'lm' must be 68 x 3"):
        load_lm3d(tmp_path / "shape.mat")
    with pytest.raises(InputError, match="missing.mat: no such file"):
        load_lm3d(tmp_path / "missing.mat")
