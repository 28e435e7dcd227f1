"""recipes/lpff.yaml end to end on real photos: the astronaut, mirrored and rotated in-plane.

Slow (a minute on 2 cores): it detects, realigns to 2400², fits the face model and crops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "lpff.yaml"


def _fk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fk.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ})


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut_path_module):
    """LPFF rejects crops under 512 px, so the 512² astronaut is upscaled to 1024² first."""
    folder = tmp_path_factory.mktemp("raw")
    img = Image.open(astronaut_path_module).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    img.save(folder / "astronaut.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "astronaut_mirrored.png")
    img.rotate(15, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)).save(folder / "astronaut_rotated.png")
    return folder


@pytest.fixture(scope="module")
def astronaut_path_module():
    from fk.testing import astronaut_path

    return astronaut_path()


@pytest.mark.slow
def test_frontal_astronauts_are_filtered_as_ffhq_like(photos, tmp_path):
    out = tmp_path / "lpff"
    res = _fk("run", str(RECIPE), "--set", f"inputs.photos={photos}", "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["failures"] == [] and summary["filtered"] == 3
    faces = ["astronaut_01", "astronaut_mirrored_01", "astronaut_rotated_01"]
    assert sorted(p.stem for p in (out / "realign" / "bad_re_align").glob("*.png")) == faces
    report = json.loads((out / "realign" / "density_filter.json").read_text())
    assert report["filtered"] == faces and report["kept"] == []
    for face in faces:  # every decision is labelled as the approximation, since no FFHQ labels were given
        assert report["faces"][face]["criterion"] == "fallback-ellipse"
        theta, phi = report["faces"][face]["theta"], report["faces"][face]["phi"]
        assert abs(np.degrees(theta) - 90) < 10 and abs(np.degrees(phi) - 90) < 15, "a near-frontal camera"
    assert not (out / "realign" / "crop").exists(), "filtered faces get no crops"
    # the mirrored photo's camera is the mirror of the original's: theta -> pi - theta
    t0, t1 = report["faces"]["astronaut_01"]["theta"], report["faces"]["astronaut_mirrored_01"]["theta"]
    assert abs((np.pi - t0) - t1) < np.radians(3)


@pytest.mark.slow
def test_kept_face_gets_lpff_tree_crops_and_camera_parameters(photos, tmp_path):
    """With FFHQ labels all far from a frontal pose, the astronaut is rare in FFHQ, so LPFF keeps it."""
    from fk.cameras.eg3d import label_from_lookat_hv

    one = tmp_path / "one"
    one.mkdir()
    (one / "astronaut.png").write_bytes((photos / "astronaut.png").read_bytes())
    rng = np.random.default_rng(0)
    labels = label_from_lookat_hv(np.pi / 2 + 0.9 + rng.normal(0, 0.05, 500), np.pi / 2 + rng.normal(0, 0.05, 500))
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": [[f"img{i:08d}.png", lab.tolist()] for i, lab in enumerate(labels)]}))
    out = tmp_path / "lpff"
    res = _fk("run", str(RECIPE), "--set", f"inputs.photos={one}", "--set", f"ffhq_labels={dataset}",
              "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    tree = out / "realign"
    assert Image.open(tree / "realign" / "astronaut_01.png").size == (2400, 2400)
    assert Image.open(tree / "crop" / "eg3d" / "astronaut_01.png").size == (512, 512)
    assert Image.open(tree / "crop" / "stylegan" / "astronaut_01.png").size == (1024, 1024)
    label = np.load(tree / "camera_parameters" / "astronaut_01.npy")
    assert label.shape == (25,) and np.allclose(label[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], atol=1e-6)
    params = json.loads((tree / "camera_parameters" / "camera_parameters.json").read_text())
    assert list(params) == ["astronaut_01"] and np.allclose(params["astronaut_01"], label)  # {face: [25 floats]}
    report = json.loads((tree / "density_filter.json").read_text())
    assert report["kept"] == ["astronaut_01"] and report["faces"]["astronaut_01"]["density"] < 0.4
    # LPFF's epoch_20_000000/{face}.npy: get_coeff()'s dict, each coefficient (1, K) float32, lm68 (1, 68, 2)
    coeffs = np.load(tree / "epoch_20_000000" / "astronaut_01.npy", allow_pickle=True).item()
    for key in ("id", "exp", "tex", "angle", "gamma", "trans"):  # K depends on the model (the demo head here)
        assert coeffs[key].ndim == 2
        assert coeffs[key].shape[0] == 1
        assert coeffs[key].dtype == np.float32
    assert coeffs["angle"].shape == (1, 3)
    assert coeffs["trans"].shape == (1, 3)
    assert coeffs["lm68"].shape == (1, 68, 2)
    assert coeffs["lm68"].dtype == np.float32
    # LPFF's 5_process_camera_parameter.py reads it this way (trans[0], angle (1, 3))
    assert coeffs["trans"][0].shape == (3,)
    # no epoch_20.pth here: the camera is fk's fit, labelled as the fallback
    meta = json.loads((tree / "camera_parameters" / "metadata.json").read_text())
    assert meta["camera_source"] == {"astronaut_01": "fit-fallback"}
    assert report["camera_source"] == {"astronaut_01": "fit-fallback"}
    camera = json.loads((tree / "camera" / "astronaut_01.json").read_text())
    assert camera["source"] == "fit-fallback"
    assert camera["flag"] is None, "a good fit is not flagged"
