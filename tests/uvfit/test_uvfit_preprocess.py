"""FFHQ-UV step 1: EXIF orientations (and the seed's 6/8 bug), processed_data fields, face checks."""

from __future__ import annotations

import numpy as np
import pytest
from fk.engine.context import ItemContext
from fk.errors import InputError, ItemFiltered
from fk.io import load_image
from PIL import Image


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
def astronaut_crop(tmp_path_factory):
    from fk.plugins import get_plugin_manager
    from fk.testing import astronaut_path

    pm = get_plugin_manager()
    detect = pm.component("detect:dlib").load_factory()(upsample=1, min_score=0.3)
    crop = pm.component("crop:deep3d").load_factory()()
    tmp = tmp_path_factory.mktemp("crop")
    ctx = ItemContext(key="astronaut", source=astronaut_path(), step_id="x", run_dir=tmp, step_dir=tmp)
    faces = detect({"image": astronaut_path()}, ctx)["faces"]
    return crop({"image": astronaut_path(), "face": faces[0]}, ctx)["crop"]


def _ctx(tmp_path, key="astronaut_00"):
    return ItemContext(key=key, source=None, step_id="preprocess", run_dir=tmp_path, step_dir=tmp_path)


def test_processed_data_has_upstreams_fields_and_shapes(tmp_path, astronaut_crop):
    from fk_uvfit.preprocess import ARCFACE_TEMPLATE, Preprocessor, five_points, load_processed

    out = Preprocessor()({"crop": astronaut_crop}, _ctx(tmp_path))
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
    lm = np.asarray(astronaut_crop.landmarks)
    np.testing.assert_allclose(data["lm"][0, :, 1], 223 - lm[:, 1], atol=1e-4)  # y up
    warped = five_points(lm) @ data["M"][0, :, :2].T + data["M"][0, :, 2]
    assert np.abs(warped - ARCFACE_TEMPLATE).max() < 6  # the ArcFace crop puts the 5 points on its template
    parse = data["parse_mask"][0, 0]
    assert parse[int(lm[30, 1]), int(lm[30, 0])] == 1  # nose tip inside
    eye = lm[36:42].mean(0)
    assert parse[int(eye[1]), int(eye[0])] == 0  # eyes cut out
    assert parse[5, 5] == 0
    skin = data["skin_mask"][0, 0]
    assert skin[int(lm[30, 1]), int(lm[30, 0])] > 0.5
    assert (tmp_path / out["processed"]["vis"]).is_file()
    assert "landmark polygon" in (tmp_path / out["processed"]["json"]).read_text()


def test_only_the_largest_face_and_not_a_tiny_one(tmp_path, astronaut_crop):
    from dataclasses import replace

    from fk_uvfit.preprocess import Preprocessor

    second = replace(astronaut_crop, face=replace(astronaut_crop.face, index=1))
    with pytest.raises(ItemFiltered, match="largest"):
        Preprocessor()({"crop": second}, _ctx(tmp_path))
    tiny = replace(astronaut_crop, face=replace(astronaut_crop.face, box=np.array([10.0, 10.0, 79.0, 80.0])))
    with pytest.raises(InputError, match="too small"):
        Preprocessor()({"crop": tiny}, _ctx(tmp_path))


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
