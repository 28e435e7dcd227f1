"""detect:dlib / dlib-cnn / face-alignment / lpff: the detector contract, and the inputs users really have."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fk.engine.context import ItemContext
from fk.errors import InputError, NoFaceError
from fk.testing.detector_contract import DetectorContract
from fk_align import landmarks as L
from fk_align.dlib_detect import DlibDetector
from fk_align.landmarks import five_from_68, read_five_points
from PIL import Image


class TestDlibContract(DetectorContract):
    component = "detect:dlib"


class TestDlibCnnContract(DetectorContract):
    component = "detect:dlib-cnn"
    params = {"upsample": 0}  # the astronaut's 90 px face needs no upsampling; keeps the CNN to ~2 s


class TestFaceAlignmentContract(DetectorContract):
    component = "detect:face-alignment"  # skipped unless its weights are in $FK_HOME/assets or torch's cache


class TestLpffContract(DetectorContract):
    component = "detect:lpff"


def _ctx(tmp_path, key="photo", source=None):
    return ItemContext(
        key=key, source=source, step_id="detect", run_dir=tmp_path, step_dir=tmp_path / "detect"
    )


def test_landmark_groups_sit_on_the_astronauts_features(astro_face):
    lm = astro_face.landmarks
    eye_l, eye_r = lm[list(L.EYE_LEFT)].mean(0), lm[list(L.EYE_RIGHT)].mean(0)
    nose, mouth = lm[list(L.NOSE_BASE)].mean(0), lm[list(L.MOUTH_OUTER)].mean(0)
    brows = lm[list(L.BROW_LEFT + L.BROW_RIGHT)].mean(0)
    x0, y0, x1, y1 = astro_face.box
    assert eye_l[0] < eye_r[0], "image-left eye first"
    assert brows[1] < max(eye_l[1], eye_r[1]) < nose[1] < mouth[1], "brows above eyes above nose above mouth"
    assert eye_l[0] < nose[0] < eye_r[0]
    assert eye_l[0] < mouth[0] < eye_r[0]
    for p in (eye_l, eye_r, nose, mouth):
        assert x0 <= p[0] <= x1
        assert y0 <= p[1] <= y1
    # the astronaut's eyes are at about (200, 103) and (240, 105) in the 512 photo (looked up by hand)
    np.testing.assert_allclose(eye_l, [203, 104], atol=6)
    np.testing.assert_allclose(eye_r, [245, 105], atol=6)
    assert astro_face.detector == "dlib"
    assert astro_face.index == 0


def test_write_landmarks_writes_one_file_pair_per_face(astro_path, tmp_path):
    out = DlibDetector(write_landmarks=True)({"image": astro_path}, _ctx(tmp_path, "astronaut", astro_path))
    faces = out["faces"]
    assert len(faces) == 2, "dlib's default threshold also reports a weak box on the suit patch"
    for f in faces:
        key = f"astronaut_{f.index:02d}"
        np.testing.assert_array_equal(np.load(tmp_path / "detect" / f"{key}.npy"), f.landmarks)
        np.testing.assert_allclose(
            read_five_points(tmp_path / "detect" / "detections" / f"{key}.txt"),
            five_from_68(f.landmarks),
            atol=1e-6,
        )
    assert faces[0].score > faces[1].score


def test_min_score_drops_weak_detections(astro_path):
    faces = DlibDetector(min_score=0.3).find_faces(astro_path)
    assert len(faces) == 1
    assert faces[0].score > 1.0


def test_two_faces_side_by_side(astro_rgb, tmp_path):
    pair = np.concatenate([astro_rgb, astro_rgb[:, ::-1]], axis=1)  # the second one mirrored: not identical
    out = DlibDetector(min_score=0.3, write_landmarks=True)({"image": pair}, _ctx(tmp_path, "pair"))
    faces = out["faces"]
    assert len(faces) == 2
    centres = sorted(f.landmarks[30, 0] for f in faces)
    assert centres[0] == pytest.approx(225, abs=10)
    assert centres[1] == pytest.approx(1024 - 1 - 225, abs=10)
    assert sorted(p.name for p in (tmp_path / "detect").glob("*.npy")) == ["pair_00.npy", "pair_01.npy"]


def test_max_faces_keeps_the_largest(astro_path):
    faces = DlibDetector(max_faces=1).find_faces(astro_path)
    assert len(faces) == 1
    assert faces[0].score > 1.0


def test_grayscale_photo(astro_rgb, astro_face, tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(astro_rgb).convert("L").save(path)
    face = DlibDetector().find_faces(path)[0]
    np.testing.assert_allclose(face.box, astro_face.box, atol=8)
    assert np.abs(face.landmarks - astro_face.landmarks).mean() < 2.0
    assert face.source == path


def test_rgba_photo(astro_rgb, astro_face, tmp_path):
    rgba = np.dstack([astro_rgb, np.full(astro_rgb.shape[:2], 255, np.uint8)])
    rgba[:, :100, 3] = 0  # a transparent strip away from the face
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    face = DlibDetector().find_faces(path)[0]
    assert np.abs(face.landmarks - astro_face.landmarks).mean() < 1.0


def test_exif_rotated_photo_is_read_upright(astro_rgb, astro_face, tmp_path):
    # Stored sideways with EXIF orientation 6 ("rotate 90 CW to view"): a viewer shows it upright.
    stored = Image.fromarray(astro_rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    face = DlibDetector().find_faces(path)[0]
    np.testing.assert_allclose(face.box, astro_face.box, atol=8)
    assert np.abs(face.landmarks - astro_face.landmarks).mean() < 3.0


def test_tiny_face(astro_rgb, tmp_path):
    small = np.asarray(Image.fromarray(astro_rgb).resize((256, 256), Image.Resampling.LANCZOS))
    face = DlibDetector(upsample=1).find_faces(small)[0]  # a ~45 px face: found with one upsampling
    assert 35 < face.box[2] - face.box[0] < 64
    with pytest.raises(NoFaceError, match="min_face=64"):
        DlibDetector(upsample=1, min_face=64).find_faces(small)
    tiny = np.asarray(Image.fromarray(astro_rgb).resize((64, 64), Image.Resampling.LANCZOS))
    with pytest.raises(NoFaceError, match="no face found"):
        DlibDetector(upsample=1)({"image": tiny}, _ctx(tmp_path, "tiny"))
    assert not (tmp_path / "detect").exists(), "nothing is written for a photo without a face"


def test_no_face_error_names_the_file(tmp_path):
    path = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(path)
    with pytest.raises(NoFaceError, match="wall.png: no face found by detect:dlib") as info:
        DlibDetector(write_landmarks=True, debug=True)({"image": path}, _ctx(tmp_path, "wall", path))
    assert info.value.hint
    assert not (tmp_path / "detect").exists()


def test_truncated_photo_raises_input_error(astro_path, tmp_path):
    buf = io.BytesIO()
    Image.open(astro_path).save(buf, format="JPEG", quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated.jpg") as info:
        DlibDetector()({"image": path}, _ctx(tmp_path, "truncated", path))
    assert not isinstance(info.value, NoFaceError)
    assert "\n" not in str(info.value)


def test_lpff_naming_keeps_dlibs_order_from_01_and_records_scores(astro_path, tmp_path):
    import json

    from fk_align.dlib_detect import _hog

    rgb = np.asarray(Image.open(astro_path).convert("RGB"))
    rects, scores, _ = _hog().run(rgb, 1, 0.0)  # LPFF: detector(img, 1), faces named in this order
    detector = DlibDetector(write_landmarks=True, naming="lpff")
    out = detector({"image": astro_path}, _ctx(tmp_path, "astronaut"))
    faces = out["faces"]
    assert [f.key_suffix for f in faces] == ["01", "02"]
    assert [f.score for f in faces] == pytest.approx(list(scores))
    assert [f.box[0] for f in faces] == pytest.approx([max(r.left(), 0) for r in rects])
    names = sorted(p.name for p in (tmp_path / "detect").glob("*.npy"))
    assert names == ["astronaut_01.npy", "astronaut_02.npy"]
    recorded = json.loads((tmp_path / "detect" / "faces" / "astronaut.json").read_text())
    assert recorded["astronaut_02"]["score"] == pytest.approx(faces[1].score)
    assert recorded["astronaut_02"]["score"] < 0.3, "the weak suit-patch box is kept (LPFF has no threshold)"
    with pytest.raises(InputError, match="naming"):
        DlibDetector(naming="alphabetical")


def test_lpff_naming_reaches_the_engines_item_keys(astro_rgb, tmp_path):
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

    photos = tmp_path / "photos"
    photos.mkdir()
    # small face left, large face right: fk names the large one _00, LPFF names dlib's first _01
    small = np.asarray(Image.fromarray(astro_rgb).resize((384, 384)))
    pair = np.zeros((512, 896, 3), np.uint8)
    pair[:384, :384], pair[:, 384:] = small, astro_rgb
    Image.fromarray(pair).save(photos / "pair.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "fk: 1\nname: t\ninputs:\n  photos: {type: images, path: " + str(photos) + "}\nsteps:\n"
        "  - id: detect\n    use: detect:dlib\n    in: {image: inputs.photos}\n"
        "    with: {naming: lpff, min_score: 0.3, write_landmarks: true}\n"
    )
    run_plan(load_recipe(recipe), RunOptions(tmp_path / "out", progress=False))
    names = sorted(p.stem for p in (tmp_path / "out" / "detect").glob("*.npy"))
    assert names == ["pair_01", "pair_02"]
    records = json.loads((tmp_path / "out" / "detect" / "faces" / "pair.json").read_text())
    assert set(records) == {"pair_01", "pair_02"}


def test_lpff_detects_on_dlibs_view_of_a_transparent_photo(astro_rgb, tmp_path):
    import dlib
    from fk_align.detection import dlib_loader_rgb
    from fk_align.fan_detect import LpffDetector

    alpha = np.tile(np.linspace(30, 255, 512).astype(np.uint8), (512, 1))[:, :, None]
    path = tmp_path / "half.png"
    Image.fromarray(np.concatenate([astro_rgb, alpha], axis=2), "RGBA").save(path)
    view = dlib_loader_rgb(path)
    np.testing.assert_array_equal(view, dlib.load_rgb_image(str(path)))  # what LPFF's dlib sees
    Image.fromarray(astro_rgb).save(tmp_path / "opaque.png")
    assert dlib_loader_rgb(tmp_path / "opaque.png") is None
    face = LpffDetector(fallback=False).find_faces(path)[0]
    expected = DlibDetector().detect(view)
    np.testing.assert_array_equal(face.landmarks, expected[0].landmarks)
