"""Detectors and crops chained: through the runners directly, and through ``fk run``'s engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk.engine.context import ItemContext
from fk.types import Crop
from fk_align.crops import Deep3DCrop, Eg3dCrop, FfhqCrop, LpffRealignCrop
from fk_align.dlib_detect import DlibDetector
from PIL import Image

CROPS = {
    "ffhq": (FfhqCrop, 1024),
    "deep3d": (Deep3DCrop, 224),
    "eg3d": (Eg3dCrop, 512),
    "lpff-realign": (LpffRealignCrop, 2400),
}


@pytest.fixture(scope="module")
def astro_run(astro_path, tmp_path_factory):
    """detect:dlib then every crop of the astronaut, with overlays, as the engine would call them."""
    run = tmp_path_factory.mktemp("pipeline")
    ctx = ItemContext(
        key="astronaut", source=astro_path, step_id="detect", run_dir=run, step_dir=run / "detect"
    )
    faces = DlibDetector(min_score=0.3, write_landmarks=True, debug=True)({"image": astro_path}, ctx)["faces"]
    crops = {}
    for name, (runner, _) in CROPS.items():
        kw = (
            {"min_crop": 0, "landmark_map": "exact"} if name == "lpff-realign" else {}
        )  # the 512 photo is below LPFF's 512 px crop floor; the exact map makes the round trip exact
        c = ItemContext(key="astronaut_00", source=astro_path, step_id=name, run_dir=run, step_dir=run / name)
        crops[name] = runner(debug=True, **kw)({"image": astro_path, "face": faces[0]}, c)["crop"]
    return run, faces, crops


def test_every_crop_of_the_astronaut_is_written(astro_run):
    run, faces, crops = astro_run
    assert len(faces) == 1
    for name, (_, size) in CROPS.items():
        crop = crops[name]
        assert isinstance(crop, Crop)
        assert crop.method == name
        assert crop.face is faces[0]
        assert crop.image.shape == (size, size, 3)
        written = np.asarray(Image.open(run / name / "astronaut_00.png"))
        np.testing.assert_array_equal(written, crop.image)
        assert (run / name / "debug" / "astronaut_00.png").exists()
    assert (run / "detect" / "debug" / "astronaut.png").exists()
    assert (run / "detect" / "astronaut_00.npy").exists()
    assert (run / "lpff-realign" / "detections" / "astronaut_00.txt").exists()


@pytest.mark.parametrize("name", list(CROPS))
def test_landmarks_round_trip_through_every_crop(astro_run, name):
    _, faces, crops = astro_run
    crop = crops[name]
    assert np.abs(crop.to_source(crop.landmarks) - faces[0].landmarks).max() < 0.5
    assert np.abs(crop.to_crop(faces[0].landmarks) - crop.landmarks).max() < 0.5


@pytest.mark.parametrize("name", list(CROPS))
def test_every_crop_keeps_the_face_upright_and_centred(astro_run, name):
    _, _, crops = astro_run
    lm, n = crops[name].landmarks, crops[name].image.shape[0]
    eyes_l, eyes_r = lm[36:42].mean(0), lm[42:48].mean(0)
    assert eyes_l[0] < eyes_r[0]
    assert abs(eyes_l[1] - eyes_r[1]) < 0.05 * n
    assert eyes_r[1] < lm[30, 1] < lm[48:60, 1].mean()
    assert abs(lm[27:36, 0].mean() - n / 2) < 0.1 * n


def test_overlay_marks_the_landmarks(astro_run):
    run, faces, _ = astro_run
    overlay = np.asarray(Image.open(run / "ffhq" / "debug" / "astronaut_00.png")).astype(int)
    x, y = np.rint(faces[0].landmarks[37]).astype(int)  # an eye point: drawn pure green
    assert (overlay[y, x] == [0, 255, 0]).all()
    x, y = np.rint(faces[0].landmarks[51]).astype(int)  # upper lip: red
    assert (overlay[y, x] == [255, 40, 40]).all()


RECIPE = """
fk: 1
name: align-test
inputs:
  photos: {type: images, path: PHOTOS}
steps:
  - id: detect
    use: detect:dlib
    in: {image: inputs.photos}
    with: {min_score: 0.3, write_landmarks: true}
  - id: deep3d
    use: crop:deep3d
    in: {image: inputs.photos, face: detect.faces}
  - id: eg3d
    use: crop:eg3d
    in: {image: inputs.photos, face: detect.faces}
  - id: realign
    use: crop:lpff-realign
    in: {image: inputs.photos, face: detect.faces}
    with: {size: 600}
"""


def test_fk_run_fans_out_faces_and_records_failures(astro_rgb, astro2x_path, tmp_path):
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(astro2x_path).save(photos / "big.png")
    Image.fromarray(np.concatenate([astro_rgb, astro_rgb[:, ::-1]], axis=1)).save(photos / "pair.png")
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(photos / "wall.png")
    recipe = tmp_path / "align.yaml"
    recipe.write_text(RECIPE.replace("PHOTOS", str(photos)))
    out = tmp_path / "run"
    summary = run_plan(load_recipe(recipe), RunOptions(out, progress=False))

    failures = {(f["item"], f["step"]): f["error"] for f in json.loads((out / "failures.json").read_text())}
    assert "no face found" in failures.pop(("wall", "detect"))
    # the pair's faces are 90 px: LPFF's low-resolution reject, recorded with its reason, per face
    for key in ("pair_00", "pair_01"):
        assert "face too small" in failures.pop((key, "realign"))
    assert failures == {}
    for step in ("deep3d", "eg3d"):
        assert sorted(p.name for p in (out / step).glob("*.png")) == [
            "big_00.png",
            "pair_00.png",
            "pair_01.png",
        ]
    assert sorted(p.name for p in (out / "realign").glob("*.png")) == ["big_00.png"]
    written = [
        p for p in out.rglob("wall*") if ".fk" not in p.relative_to(out).parts
    ]  # .fk: the engine's record
    assert written == [], "nothing is written for the photo without a face"
    assert summary.failed >= 1


def test_fk_run_reads_gifs_and_reports_skipped_entries(astro_rgb, tmp_path):
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

    photos = tmp_path / "photos"
    (photos / "holiday").mkdir(parents=True)
    Image.fromarray(astro_rgb).save(photos / "anim.gif")  # GIF: its first frame is the input
    (photos / "notes.txt").write_text("not a photo")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "fk: 1\nname: t\ninputs:\n  photos: {type: images, path: " + str(photos) + "}\nsteps:\n"
        "  - id: detect\n    use: detect:dlib\n    in: {image: inputs.photos}\n    with: {min_score: 0.3}\n"
        "  - id: crop\n    use: crop:deep3d\n    in: {image: inputs.photos, face: detect.faces}\n"
    )
    out = tmp_path / "out"
    summary = run_plan(load_recipe(recipe), RunOptions(out, progress=False))
    failures = json.loads((out / "failures.json").read_text())
    assert {f["item"]: f["type"] for f in failures} == {"holiday": "SkippedInput", "notes.txt": "SkippedInput"}
    assert "sub-folder" in next(f["error"] for f in failures if f["item"] == "holiday")
    assert (out / "crop" / "anim_00.png").exists(), "the GIF's face was found and cropped"
    assert summary.exit_code == 0, "skipped entries are reported, not failures of the run"
