"""reconstruct:deep3d end to end with a generated BFM and checkpoint; exports; the demo recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fk.engine.context import ItemContext
from fk.errors import FkError, InputError
from fk.testing.exporter_contract import ExporterContract
from fk.types import Crop

ALL_FORMATS = ["mat", "obj", "glb", "png", "label", "npy", "overlay", "swing", "input"]


def _crop_of_astronaut():
    """A Deep3D crop of the astronaut photo made by plugin-align (real landmarks)."""
    from fk.io import load_image
    from fk.testing import astronaut_path
    from fk_align.deep3d_align import align_img
    from fk_align.dlib_detect import DlibDetector

    photo = load_image(astronaut_path())
    face = DlibDetector(upsample=1).detect(photo)[0]
    face.source = astronaut_path()
    a = align_img(photo, face.landmarks)
    return Crop(image=a.image, crop_from_source=a.crop_from_source, landmarks=a.landmarks, method="deep3d",
                face=face, params={"trans_params": a.trans_params}), photo


@pytest.fixture(scope="module")
def astronaut_crop():
    return _crop_of_astronaut()


@pytest.fixture
def bfm_and_checkpoint(fk_home):
    from fk.testing.reconnet import install_deep3d_assets

    net = install_deep3d_assets(fk_home)
    assets = fk_home / "assets"
    return assets / "bfm" / "BFM_model_front.mat", assets / "deep3d" / "epoch_20.pth", net


def _ctx(tmp_path, key="astronaut_00", step="s"):
    return ItemContext(key=key, source=None, step_id=step, run_dir=tmp_path, step_dir=tmp_path / step)


def test_reconstruct_with_generated_bfm_and_checkpoint_writes_every_output(
        tmp_path, bfm_and_checkpoint, astronaut_crop):
    from fk.plugins import get_plugin_manager

    _, _, net = bfm_and_checkpoint
    crop, photo = astronaut_crop
    pm = get_plugin_manager()
    runner = pm.component("reconstruct:deep3d").load_factory()(model="auto", renderer="cpu")
    recon = runner({"crop": crop}, _ctx(tmp_path, step="recon"))["recon"]
    assert recon.model == "bfm09" and recon.extra["init"] == "rnet"
    # The coefficients are exactly R-Net's prediction for this crop.
    x = torch.as_tensor(crop.image, dtype=torch.float32).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        want = net(x)[0].double().numpy()
    got = np.concatenate([recon.coeffs[k] for k in ("id", "exp", "tex", "angle", "gamma", "trans")])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert recon.vertices.shape == (80, 3) and recon.landmarks.shape == (68, 2) and recon.camera_label.shape == (25,)

    exporter = pm.component("export:deep3d").load_factory()(formats=ALL_FORMATS, swing_frames=3,
                                                            swing_size=64, renderer="cpu")
    ctx = _ctx(tmp_path, step="export")
    out = exporter({"recon": recon, "image": photo}, ctx)
    files = out["files"]
    assert set(files) == set(ALL_FORMATS)
    for fmt, rel in files.items():
        for r in rel if isinstance(rel, list) else [rel]:
            assert (tmp_path / r).stat().st_size > 0, fmt

    from scipy.io import loadmat

    mat = loadmat(tmp_path / files["mat"])
    assert mat["id"].shape == (1, 80) and mat["exp"].shape == (1, 64) and mat["gamma"].shape == (1, 27)
    assert mat["lm68"].shape == (1, 68, 2)
    # lm68 follows Deep3D's save rule: (u, 223 - v) of the projected keypoints.
    import fk.models

    kp = recon.vertices[fk.models.load_face_model("bfm09").keypoints.numpy()]
    z = 10.0 - kp[:, 2]
    u, v = 1015 * kp[:, 0] / z + 112, 1015 * kp[:, 1] / z + 112
    np.testing.assert_allclose(mat["lm68"][0], np.stack([u, 223 - v], 1), atol=1e-3)
    np.testing.assert_allclose(mat["angle"][0], recon.coeffs["angle"], atol=1e-6)

    from fk.io.mesh import read_obj

    mesh = read_obj(tmp_path / files["obj"])
    np.testing.assert_allclose(mesh.vertices, recon.vertices, atol=1e-5)  # vertex order kept
    lpff = np.load(tmp_path / files["npy"], allow_pickle=True).item()
    assert set(lpff) == {"id", "exp", "tex", "angle", "gamma", "trans", "lm68"}
    assert lpff["lm68"].shape == (1, 68, 2)  # LPFF's get_coeff() layout: (1, K) float32 each
    assert lpff["id"].shape == (1, 80)
    assert lpff["trans"].dtype == np.float32
    label = json.loads((tmp_path / files["label"]).read_text())["astronaut_00.png"]
    np.testing.assert_allclose(label, out["label"])
    cam2world = np.array(label[:16]).reshape(4, 4)
    assert abs(np.linalg.norm(cam2world[:3, 3]) - 2.7) < 1e-9 and label[16] == pytest.approx(4.2647)


def test_reconstruction_carries_the_eg3d_label_of_its_pose():
    import fk.models
    from fk_deep3d.runners import reconstruction

    model = fk.models.load_face_model("demo")
    # Unrotated head moved 0.5 dm right: EG3D camera centre C = -(t - (0, 0, 10)) = (-0.5, 0, 10),
    # 0.27 C + (0, 0.006, 0.161) = (-0.135, 0.006, 2.861), re-radiused to 2.7 (deep3d.md §7.2).
    coeffs = model.join_coeffs({"trans": torch.tensor([[0.5, 0.0, 0.0]])})
    with torch.no_grad():
        out = model(coeffs)
    crop = Crop(image=np.zeros((224, 224, 3), np.uint8), crop_from_source=np.eye(3), landmarks=None, method="deep3d")
    label = reconstruction(model, coeffs, out, crop, {}).camera_label
    c = np.array([-0.135, 0.006, 2.861])
    np.testing.assert_allclose(label[[3, 7, 11]], c / np.linalg.norm(c) * 2.7, atol=1e-6)
    np.testing.assert_allclose(np.array(label[:16]).reshape(4, 4)[:3, :3], np.diag([1, -1, -1]), atol=1e-12)
    np.testing.assert_allclose(label[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], atol=1e-12)


def test_fallback_fit_from_five_points_is_labelled_and_said_once(tmp_path, fk_home, astronaut_crop):
    """Deep3D's test.py input (5 points) without epoch_20.pth: fallback: fit finds 68 landmarks on the
    crop with detect:dlib, fits fk's model and labels the result; fallback: none stops with where it goes."""
    from dataclasses import replace

    from fk.assets import AssetMissingError
    from fk.landmarks import five_from_68
    from fk.plugins import get_plugin_manager
    from fk_deep3d.runners import reconstruct_preflight

    crop, _ = astronaut_crop
    five = replace(crop, landmarks=five_from_68(crop.landmarks))
    runner = get_plugin_manager().component("reconstruct:deep3d").load_factory()(
        model="demo", renderer="cpu", fallback="fit", fit_iterations=3)
    recon = runner({"crop": five}, _ctx(tmp_path, step="recon"))["recon"]
    assert recon.extra["method"] == "fit-fallback"
    assert "epoch_20.pth absent" in recon.extra["fallback"]
    # the dlib landmarks found on the crop agree with the photo's, so the fit lands on the face
    assert recon.extra["landmark_rmse"] < 6.0
    notes = reconstruct_preflight({"fallback": "fit", "fit_iterations": 3})
    assert len(notes) == 1 and "fit-fallback" in notes[0] and "not Deep3D's numbers" in notes[0]
    with pytest.raises(AssetMissingError, match="epoch_20.pth"):
        reconstruct_preflight({"fallback": "none"})
    with pytest.raises(InputError, match="fallback must be 'none' or 'fit'"):
        get_plugin_manager().component("reconstruct:deep3d").load_factory()(fallback="guess")


def test_missing_checkpoint_and_malformed_bfm_name_the_file(tmp_path, fk_home, astronaut_crop):
    from fk_deep3d.runners import FitRunner, ReconstructRunner

    crop, _ = astronaut_crop
    with pytest.raises(FkError, match="epoch_20.pth"):
        ReconstructRunner(model="demo")({"crop": crop}, _ctx(tmp_path))
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="broken.pth: this Deep3D checkpoint is truncated or not a torch file"):
        ReconstructRunner(model="demo", checkpoint=str(bad))({"crop": crop}, _ctx(tmp_path))
    bfm = fk_home / "assets" / "bfm" / "BFM_model_front.mat"
    bfm.parent.mkdir(parents=True)
    bfm.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(FkError, match="BFM_model_front.mat") as info:
        FitRunner(model="bfm09", iterations=0)({"crop": crop}, _ctx(tmp_path))
    assert "\n" not in str(info.value)


class TestDeep3DExporterContract(ExporterContract):
    component = "export:deep3d"
    params = {"formats": ALL_FORMATS, "swing_frames": 2, "swing_size": 48, "renderer": "cpu"}

    def make_inputs(self, tmp_path):
        import fk.models
        from fk_deep3d.runners import reconstruction

        model = fk.models.load_face_model("demo")
        coeffs = model.join_coeffs({"angle": torch.tensor([[0.0, 0.2, 0.0]])})
        with torch.no_grad():
            out = model(coeffs)
        photo = np.full((300, 260, 3), 200, np.uint8)
        crop = Crop(image=np.full((224, 224, 3), 90, np.uint8),
                    crop_from_source=np.array([[1.0, 0, -20], [0, 1.0, -30], [0, 0, 1]]),
                    landmarks=out["landmarks_2d"][0].numpy(), method="deep3d")
        return {"recon": reconstruction(model, coeffs, out, crop, {}), "image": photo}


class TestDemoPageContract(ExporterContract):
    component = "export:demo-page"
    key = "_run"

    def make_inputs(self, tmp_path):
        run = tmp_path / "run"
        (run / "faces").mkdir(parents=True)
        from PIL import Image

        for name in ("a_00_overlay.png", "a_00_t0.png", "a_00_t1.png"):
            Image.new("RGB", (8, 8)).save(run / "faces" / name)
        return {"files": {"a_00": {"overlay": "faces/a_00_overlay.png",
                                   "swing": ["faces/a_00_t0.png", "faces/a_00_t1.png"]}}}

    def test_page_links_resolve(self, exported):
        _, _, result, run_dir = exported
        page = run_dir / result["page"]
        text = page.read_text()
        import re

        for src in re.findall(r"src='([^']+)'", text):
            assert (page.parent / src).is_file(), src
        assert "http" not in text  # nothing fetched from the network at view time


@pytest.mark.slow
def test_demo_recipe_on_astronaut(tmp_path, fk_home):
    """The README command: the overlay lines up and the head is near-frontal."""
    out = tmp_path / "demo"
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
    proc = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--out", str(out), "-q",
                           "--set", "fit.iterations=10", "--set", "renderer=cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "failures.json").read_text()) == []
    faces = out / "faces"
    assert sorted(p.name for p in faces.glob("*.obj")) == ["astronaut_00.obj"]
    from scipy.io import loadmat

    mat = loadmat(faces / "astronaut_00.mat")
    yaw = np.rad2deg(mat["angle"][0, 1])
    assert abs(yaw) < 10.0, yaw
    # The model's landmarks sit on the detected ones (the red-on-blue check of the PNG strip).
    from fk.io import load_image
    from fk.testing import astronaut_path
    from fk_align.dlib_detect import DlibDetector

    det = DlibDetector().detect(load_image(astronaut_path()))[0]
    overlay = load_image(faces / "astronaut_00_overlay.png")
    photo = load_image(astronaut_path())
    changed = np.abs(overlay.astype(int) - photo.astype(int)).sum(-1) > 30
    ys, xs = np.nonzero(changed)
    # The rendered face covers the detected face box's centre and stays around it.
    x0, y0, x1, y1 = det.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert changed[int(cy), int(cx)]
    assert x0 - 40 < xs.mean() < x1 + 40 and y0 - 60 < ys.mean() < y1 + 40
    page = (out / "index.html").read_text()
    assert "faces/astronaut_00_overlay.png" in page and "faces/astronaut_00_swing/00.png" in page


def test_fit_runs_under_the_callers_no_grad_and_leaves_it(astronaut_crop):
    """An evaluation (GMPI's depth/pose metrics) calls the fit inside ``torch.no_grad()``."""
    from fk_deep3d.choose import choose_model
    from fk_deep3d.fit import Fitter

    crop, _ = astronaut_crop
    fitter = Fitter(choose_model("demo"), iterations=2, renderer="cpu")
    with torch.no_grad():
        result = fitter.fit(crop.image, crop.landmarks)
        assert not torch.is_grad_enabled()
    assert np.isfinite(result.landmark_rmse) and result.landmark_rmse < 6.0
