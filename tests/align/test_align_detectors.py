"""detect:dlib / dlib-cnn / face-alignment / lpff: the detector contract, and the inputs users really have."""

from __future__ import annotations

import io

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
