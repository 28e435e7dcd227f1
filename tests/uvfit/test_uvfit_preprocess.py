"""FFHQ-UV step 1: EXIF orientations (and the seed's 6/8 bug), processed_data fields and masks, BiSeNet,
HiFi3D++ alignment, face checks, the CLI's missing-photo message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fk.engine.context import ItemContext
from fk.errors import InputError, ItemFiltered
from fk.io import load_image
from PIL import Image


class _Evil:
    def __reduce__(self):
        return (open, ("evil_ran", "w"))


def _upright() -> np.ndarray:
    """A 40 x 60 picture whose four corners all differ, so every rotation and flip is visible."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = (255, 0, 0)
    img[:20, 30:] = (0, 255, 0)
    img[20:, :30] = (0, 0, 255)
    img[20:, 30:] = (255, 255, 0)
    img[:5, :5] = (255, 255, 255)
    return img


# How a camera stores an upright picture for each EXIF orientation (the inverse of what a viewer applies).
_STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, -1),
}


def _write(path, orientation: int):
    stored = np.ascontiguousarray(_STORE[orientation](_upright()))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif, quality=100, subsampling=0)
    return stored


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_loads_upright(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.JPG"  # upper-case extension: no case-sensitive trap
    _write(path, orientation)
    got = load_image(path).astype(int)
    assert got.shape == (40, 60, 3)
    assert np.abs(got - _upright().astype(int)).mean() < 8


@pytest.mark.parametrize("orientation", [6, 8])
def test_the_seeds_exif_rotation_is_wrong_for_6_and_8(tmp_path, orientation):
    """The seed's process_exif.py maps 6 -> rotate(+90) and 8 -> rotate(-90); PIL turns counter-clockwise,
    so both come out upside down relative to the EXIF spec, which fk follows."""
    path = tmp_path / "o.jpg"
    stored = _write(path, orientation)
    seed = np.asarray(Image.fromarray(stored).rotate(90 if orientation == 6 else -90, expand=True)).astype(
        int
    )
    fk_img = load_image(path).astype(int)
    assert seed.shape == fk_img.shape
    assert np.abs(seed - fk_img).mean() > 60  # the seed's result is not upright
    np.testing.assert_allclose(seed[::-1, ::-1], fk_img, atol=40)  # it is fk's turned by 180°


@pytest.fixture(scope="module")
def astronaut_face():
    from fk.plugins import get_plugin_manager
    from fk.testing import astronaut_path

    detect = get_plugin_manager().component("detect:dlib").load_factory()(upsample=1, min_score=0.3)
    return detect({"image": astronaut_path()}, _ctx(Path("/nonexistent"), "astronaut"))["faces"][0]


@pytest.fixture(scope="module")
def astronaut_crop(astronaut_face):
    from fk.plugins import get_plugin_manager
    from fk.testing import astronaut_path

    crop = get_plugin_manager().component("crop:deep3d").load_factory()(save=False)
    return crop({"image": astronaut_path(), "face": astronaut_face}, _ctx(Path("/nonexistent")))["crop"]


@pytest.fixture(scope="module")
def photo():
    from fk.testing import astronaut_path

    return load_image(astronaut_path())


def _ctx(tmp_path, key="astronaut_00"):
    return ItemContext(key=key, source=None, step_id="preprocess", run_dir=tmp_path, step_dir=tmp_path)


@pytest.fixture
def no_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("FK_HOME", str(tmp_path / "fk_home"))
    return tmp_path / "fk_home" / "assets"


def test_processed_data_has_upstreams_fields_and_shapes(tmp_path, astronaut_face, no_assets):
    from fk.testing import astronaut_path
    from fk_uvfit.preprocess import ARCFACE_TEMPLATE, Preprocessor, five_points, load_processed

    out = Preprocessor()({"image": astronaut_path(), "face": astronaut_face}, _ctx(tmp_path))
    data = load_processed(tmp_path / out["processed"]["npz"])
    shapes = {k: v.shape for k, v in data.items()}
    assert shapes == {
        "img": (1, 3, 224, 224),
        "skin_mask": (1, 1, 224, 224),
        "parse_mask": (1, 1, 224, 224),
        "lm": (1, 68, 2),
        "M": (1, 2, 3),
        "trans_params": (5,),
    }
    crop = out["crop"]
    np.testing.assert_array_equal(data["img"][0].transpose(1, 2, 0), crop.image / np.float32(255))
    lm = np.stack([data["lm"][0, :, 0], 223 - data["lm"][0, :, 1]], 1)  # y up -> rows
    assert np.abs(lm - crop.landmarks).max() < 1.0  # upstream's formula vs the exact pixel map
    warped = five_points(lm) @ data["M"][0, :, :2].T + data["M"][0, :, 2]
    assert np.abs(warped - ARCFACE_TEMPLATE).max() < 6  # the ArcFace crop puts the 5 points on its template
    parse = data["parse_mask"][0, 0]
    assert parse[int(lm[30, 1]), int(lm[30, 0])] == 1  # nose tip inside
    eye = lm[36:42].mean(0)
    assert parse[int(eye[1]), int(eye[0])] == 0  # eyes cut out
    assert parse[5, 5] == 0
    brows = lm[17:27].mean(0)  # the forehead is in, as in BiSeNet's face (brows raised by 0.4 of the face)
    above = brows - [0, 0.25 * np.linalg.norm(lm[8] - brows)]
    assert parse[int(above[1]), int(above[0])] == 1
    above = brows - [0, 0.55 * np.linalg.norm(lm[8] - brows)]
    assert parse[int(above[1]), int(above[0])] == 0
    skin = data["skin_mask"][0, 0]
    assert skin[int(lm[30, 1]), int(lm[30, 0])] > 0.5
    assert (tmp_path / out["processed"]["vis"]).is_file()
    meta = json.loads((tmp_path / out["processed"]["json"]).read_text())
    assert "landmark polygon" in meta["parse_mask"]
    assert "Deep3D's standard 3-D points" in meta["alignment"]
    assert "upstream" in meta["skin_mask"]


def test_masks_are_made_on_the_photo_and_follow_its_resize_and_crop(astronaut_crop, photo):
    """Upstream's order: skin GMM on the photo, 8-bit, Pillow bicubic to the resized size, the crop box."""
    from fk.models.skin import skin_mask_uint8, skin_probability
    from fk_uvfit.preprocess import processed_fields

    data, labels = processed_fields(astronaut_crop, photo)
    w, h = astronaut_crop.params["resized"]
    x0, y0, x1, y1 = astronaut_crop.params["box"]
    big = np.asarray(Image.fromarray(skin_mask_uint8(photo)).resize((w, h), Image.Resampling.BICUBIC))
    expect = np.zeros((224, 224), np.float32)  # the box may leave the resized photo: zeros there
    sy, sx = slice(max(y0, 0), min(y1, h)), slice(max(x0, 0), min(x1, w))
    expect[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0] = big[sy, sx] / np.float32(255)
    np.testing.assert_array_equal(data["skin_mask"][0, 0], expect)
    on_crop = skin_probability(astronaut_crop.image.astype(np.float64))
    assert 0 < np.abs(on_crop - expect).mean() < 0.05  # close to the mask of the crop, not equal
    assert "photo" in labels["skin_mask"]
    bare, bare_labels = processed_fields(astronaut_crop)
    np.testing.assert_allclose(bare["skin_mask"][0, 0], on_crop, atol=1e-6)
    assert "no photo" in bare_labels["skin_mask"]


def test_landmarks_follow_upstreams_resize_n_crop_formula(astronaut_crop):
    from fk.cameras.deep3d import deep3d_points_from_source, deep3d_points_to_source
    from fk_uvfit.preprocess import processed_arrays

    tp = np.asarray(astronaut_crop.params["trans_params"])
    src = astronaut_crop.face.landmarks
    up = np.stack([src[:, 0], tp[1] - 1 - src[:, 1]], 1).astype(np.float32).astype(np.float64)
    # resize_n_crop_img: (lm - t + (w0/2, h0/2)) * s - (w/2 - 112, h/2 - 112), y up
    w, h = int(tp[0] * tp[2]), int(tp[1] * tp[2])
    by_hand = (up - tp[3:5] + tp[:2] / 2) * tp[2] - np.array([w / 2 - 112, h / 2 - 112])
    np.testing.assert_allclose(processed_arrays(astronaut_crop)["lm"][0], by_hand, atol=1e-4)
    np.testing.assert_allclose(deep3d_points_to_source(deep3d_points_from_source(up, tp), tp), up, atol=1e-9)


def test_bisenet_parse_mask_when_the_weights_are_installed(
    tmp_path, astronaut_face, photo, no_assets, monkeypatch
):
    """A generated 79999_iter.pth in the original layout at the asset path: BiSeNet runs on the photo and its
    labels become upstream's mask; a malicious file there is refused, never run."""
    import torch
    from fk.nets.bisenet import load_bisenet, parse_labels
    from fk.testing import astronaut_path
    from fk.testing.bisenet import write_bisenet_checkpoint
    from fk_uvfit.masks import ffhquv_parse_mask
    from fk_uvfit.preprocess import PARSING_ASSET, Preprocessor, follow_crop, load_processed

    weights = no_assets / PARSING_ASSET
    write_bisenet_checkpoint(weights, seed=1)
    pre = Preprocessor()
    out = pre({"image": astronaut_path(), "face": astronaut_face}, _ctx(tmp_path))
    data = load_processed(tmp_path / out["processed"]["npz"])
    meta = json.loads((tmp_path / out["processed"]["json"]).read_text())
    assert meta["parse_mask"].startswith("BiSeNet")
    assert meta["parsing_weights"] == str(weights)
    import cv2

    labels = parse_labels(load_bisenet(weights), photo, resize=cv2.resize)  # upstream resizes with OpenCV
    expect = follow_crop(ffhquv_parse_mask(labels), out["crop"])
    np.testing.assert_array_equal(data["parse_mask"][0, 0], expect)
    assert set(np.unique(labels)) - {0}  # a random network still labels something, so the test can fail

    with pytest.raises(InputError, match="parsing must be"):
        Preprocessor(parsing="segformer")
    torch.save({"x": _Evil()}, weights)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="79999_iter.pth: this BiSeNet weight file holds Python objects"):
        Preprocessor()({"image": astronaut_path(), "face": astronaut_face}, _ctx(tmp_path))
    assert not (tmp_path / "evil_ran").exists()
    weights.unlink()
    from fk.errors import MissingError

    with pytest.raises(MissingError, match="BiSeNet weights not found"):
        Preprocessor(parsing="bisenet")
    assert Preprocessor(parsing="auto").parse_net() is None


def test_parse_mask_combination_is_upstreams():
    from fk_uvfit.masks import ffhquv_parse_mask

    labels = np.arange(19).reshape(1, 19)
    kept = np.nonzero(ffhquv_parse_mask(labels)[0])[0].tolist()
    assert kept == [1, 2, 3, 10, 12, 13]  # face {1..5, 10..13} minus mouth 11 and eyes 4, 5


def test_alignment_uses_hifi3dpp_landmarks_when_installed(
    tmp_path, astronaut_face, astronaut_crop, no_assets
):
    """A generated topo_assets/similarity_Lm3D_all.mat: the crop is solved against it (here a head 5% larger
    than Deep3D's, so the photo is resized 5% more) and the .json says so; without it, Deep3D's points."""
    from fk.testing import astronaut_path
    from fk_align.deep3d_align import STANDARD_5PT_3D
    from fk_uvfit.preprocess import LM3D_ASSET, Preprocessor, load_processed
    from scipy.io import savemat

    lm = np.repeat(STANDARD_5PT_3D[2:3], 68, axis=0)
    lm[36] = lm[39] = STANDARD_5PT_3D[0]
    lm[42] = lm[45] = STANDARD_5PT_3D[1]
    lm[48], lm[54] = STANDARD_5PT_3D[3], STANDARD_5PT_3D[4]
    path = no_assets / LM3D_ASSET
    path.parent.mkdir(parents=True)
    savemat(path, {"lm": (lm * 1.05).astype(np.float32)})
    out = Preprocessor()({"image": astronaut_path(), "face": astronaut_face}, _ctx(tmp_path))
    data = load_processed(tmp_path / out["processed"]["npz"])
    ref = np.asarray(astronaut_crop.params["trans_params"])
    assert data["trans_params"][2] == pytest.approx(ref[2] * 1.05, rel=1e-5)
    assert out["crop"].params["lm3d"] == str(path)
    meta = json.loads((tmp_path / out["processed"]["json"]).read_text())
    assert str(path) in meta["alignment"]
    inputs = {"image": astronaut_path(), "face": astronaut_face}
    std = Preprocessor(lm3d="deep3d")(inputs, _ctx(tmp_path, "s"))
    np.testing.assert_array_equal(std["crop"].image, astronaut_crop.image)


def test_only_the_largest_face_and_not_a_tiny_one(tmp_path, astronaut_crop, astronaut_face):
    from dataclasses import replace

    from fk.testing import astronaut_path
    from fk_uvfit.preprocess import Preprocessor

    second = replace(astronaut_crop, face=replace(astronaut_crop.face, index=1))
    with pytest.raises(ItemFiltered, match="largest"):
        Preprocessor()({"crop": second}, _ctx(tmp_path))
    tiny = replace(astronaut_face, box=np.array([10.0, 10.0, 79.0, 80.0]))
    with pytest.raises(InputError, match="too small"):
        Preprocessor()({"image": astronaut_path(), "face": tiny}, _ctx(tmp_path))
    with pytest.raises(InputError, match="needs image and face"):
        Preprocessor()({"image": astronaut_path()}, _ctx(tmp_path))


def test_processed_data_loader_refuses_pickles(tmp_path):
    from fk_uvfit.preprocess import load_processed

    np.savez(tmp_path / "evil.npz", img=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_processed(tmp_path / "evil.npz")


def test_fit_names_a_missing_photo_and_the_cli_fix(tmp_path, capsys):
    from fk.cli.main import main

    rc = main(["uvfit", "fit", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"{tmp_path / 'nope.jpg'}: no such photo or folder" in err
    assert "fk uvfit fit PHOTOS --out DIR" in err
    assert "uvfit.yaml" not in err  # not the bundled recipe's internals
    assert "--set" not in err
    assert not (tmp_path / "out").exists()
