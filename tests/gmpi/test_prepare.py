"""fk gmpi prepare-ffhq / prepare-metfaces: GMPI's file layout on a generated zip and folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk.cameras import gmpi as cams
from fk_gmpi import prepare
from PIL import Image
from scipy.io import loadmat


def test_gmpi_point_format_and_five_point_face():
    pts = np.array([[10.7, 20.2], [30.9, 20.0], [20.5, 30.5], [12.0, 40.9], [28.2, 41.0]])
    assert prepare.format_gmpi_points(pts) == "10\t20\n30\t20\n20\t30\n12\t40\n28\t41\n"
    face = prepare.face_for_five_points(pts, (64, 64))
    np.testing.assert_array_equal(prepare.five_from_68(face.landmarks), pts)


def test_fail_list_quirks(tmp_path):
    class Fake:
        def __init__(self, faces):
            self.faces = faces

        def __call__(self, inputs, ctx):
            ok = self.faces.pop(0)
            return {
                "faces": [prepare.face_for_five_points(np.arange(10.0).reshape(5, 2), (8, 8))] if ok else []
            }

    def run(out, flags, existing=None):
        comps = prepare.Components(Fake(list(flags)), "fake", None, None, "", None)
        if existing is not None:
            (out / "detections").mkdir(parents=True)
            (out / "detections" / "fail_list.txt").write_text(existing)
        items = [(f"n{i}.png", f"n{i}", lambda: np.zeros((8, 8, 3), np.uint8)) for i in range(len(flags))]
        prepare.LandmarkPass(out, comps).run(items)
        return (out / "detections" / "fail_list.txt").read_text()

    assert run(tmp_path / "a", [True, True]) == "\n"  # nothing failed: one blank line
    assert run(tmp_path / "b", [True, False, False]) == "n1.png\nn2.png\n"
    # after MetFaces' --xflip pass the blank line stays in front, unless image 0 fails ("w" mode)
    assert run(tmp_path / "c", [True, False], existing="\n") == "\nn1.png\n"
    assert run(tmp_path / "d", [False, True], existing="\n") == "n0.png\n"


@pytest.mark.slow
def test_prepare_ffhq_layout_on_a_stylegan2_zip(stylegan2_zip, tmp_path, fk_home):
    from fk.cli.main import main

    out = tmp_path / "mtcnn_ffhq_256"
    rc = main(
        ["gmpi", "prepare-ffhq", "--zip", str(stylegan2_zip), "--out", str(out), "--fit-iterations", "2"]
    )
    assert rc == 0
    res = out / "detections" / "results" / "00000"
    assert sorted(p.name for p in res.iterdir()) == ["img00000000.txt", "img00000001.txt", "img00000003.txt"]
    assert (out / "detections" / "fail_list.txt").read_text() == "00000/img00000002.png\n"
    lines = (res / "img00000000.txt").read_text().splitlines()
    assert len(lines) == 5
    assert all(len(line.split("\t")) == 2 for line in lines)
    pts = np.array([[int(v) for v in line.split("\t")] for line in lines], dtype=float)
    # MTCNN order: left eye, right eye (image left to right), nose between, mouth corners below
    assert pts[0, 0] < pts[2, 0] < pts[1, 0]
    assert pts[3, 0] < pts[4, 0]
    assert pts[[0, 1], 1].max() < pts[2, 1] < pts[[3, 4], 1].min()
    # the mirror's points are the original's mirrored (x -> 255 - x, left/right swapped), within truncation
    mirrored = np.array(
        [[int(v) for v in line.split("\t")] for line in (res / "img00000001.txt").read_text().splitlines()],
        dtype=float,
    )
    np.testing.assert_allclose(255 - mirrored[[1, 0, 2, 4, 3], 0], pts[:, 0], atol=3)
    mats = sorted((out / "epoch_20_000000" / "00000").iterdir())
    assert [p.name for p in mats] == ["img00000000.mat", "img00000001.mat", "img00000003.mat"]
    m = loadmat(mats[0])
    assert {"id", "exp", "tex", "angle", "gamma", "trans", "lm68"} <= set(m)
    assert m["angle"].shape == (1, 3)
    assert m["trans"].shape == (1, 3)
    assert m["lm68"].shape == (1, 68, 2)
    # GMPI's camera from the pose; the mirror's yaw has the other sign
    a0, a1 = loadmat(mats[0])["angle"][0], loadmat(mats[1])["angle"][0]
    assert np.sign(a0[1]) != np.sign(a1[1]) or max(abs(a0[1]), abs(a1[1])) < 0.02
    w2c = cams.w2c_from_deep3d_pose(np.stack([a0, a1]), np.stack([m["trans"][0]] * 2), normalize_trans=True)
    assert np.allclose(np.linalg.norm(np.linalg.inv(w2c)[:, :3, 3] - [0, 0, 1], axis=1), 1.0)
    info = json.loads((out / "fk_prepare.json").read_text())
    assert info["no_face"] == ["00000/img00000002.png"]
    assert info["coefficient_failures"] == []
    assert info["notes"]  # fallbacks are labelled (no epoch_20.pth here)


@pytest.mark.slow
def test_prepare_metfaces_xflip_layout(metfaces_dir, tmp_path, fk_home):
    from fk.cli.main import main

    before = sorted(p.name for p in metfaces_dir.iterdir())
    out = tmp_path / "metfaces_detect"
    rc = main(
        [
            "gmpi",
            "prepare-metfaces",
            "--data-dir",
            str(metfaces_dir),
            "--out",
            str(out),
            "--xflip",
            "--skip-coeffs",
            "--detector",
            "detect:dlib",  # the labelled fallback detector (detect:mtcnn runs in the FFHQ test)
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in metfaces_dir.iterdir()) == before  # nothing written beside the originals
    folder = out / metfaces_dir.name
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.png",
        "a_xflip.png",
        "b.png",
        "b_xflip.png",
        "c.png",
        "c_xflip.png",
        "d.png",
        "d_xflip.png",
    ]
    np.testing.assert_array_equal(
        np.asarray(Image.open(folder / "a_xflip.png")),
        np.asarray(Image.open(metfaces_dir / "a.png"))[:, ::-1],
    )
    # image 0 (a.png) has a face, so the xflip pass's blank line stays in front of the failures
    assert (out / "detections" / "fail_list.txt").read_text() == "\nb.png\nb_xflip.png\n"
    assert any("detect:dlib" in n for n in json.loads((out / "fk_prepare.json").read_text())["notes"])
    names = sorted(p.name for p in (out / "detections" / "results").iterdir())
    assert names == ["a.txt", "a_xflip.txt", "c.txt", "c_xflip.txt", "d.txt", "d_xflip.txt"]


def test_detector_keypoints_are_used_as_they_are(tmp_path):
    class Mtcnn:
        def __call__(self, inputs, ctx):
            face = prepare.face_for_five_points(np.zeros((5, 2)), (8, 8))
            face.landmarks = None
            face.keypoints = np.array([[1.5, 2], [5, 2], [3, 4], [2, 6], [4.9, 6]])
            return {"faces": [face]}

    comps = prepare.Components(Mtcnn(), "detect:mtcnn", None, None, "", None)
    pts = prepare.detect_five(comps, np.zeros((8, 8, 3), np.uint8), tmp_path, "k")
    np.testing.assert_array_equal(pts[0], [1.5, 2])
    assert prepare.format_gmpi_points(pts).splitlines()[0] == "1\t2"


@pytest.mark.slow
def test_prepare_ffhq_with_rnet_writes_deep3ds_257_coefficients(stylegan2_zip, tmp_path, fk_home):
    """With epoch_20.pth (and BFM09) the coefficients come from reconstruct:deep3d: 80/64/80/3/27/3."""
    from fk.cli.main import main
    from fk.testing.reconnet import install_deep3d_assets

    install_deep3d_assets(fk_home)  # test data only: BFM09 + a random R-Net in Deep3D's layout
    out = tmp_path / "out"
    assert main(["gmpi", "prepare-ffhq", "--zip", str(stylegan2_zip), "--out", str(out)]) == 0
    m = loadmat(out / "epoch_20_000000" / "00000" / "img00000000.mat")
    shapes = {k: m[k].shape for k in ("id", "exp", "tex", "angle", "gamma", "trans", "lm68")}
    assert shapes == {"id": (1, 80), "exp": (1, 64), "tex": (1, 80), "angle": (1, 3), "gamma": (1, 27),
                      "trans": (1, 3), "lm68": (1, 68, 2)}
    info = json.loads((out / "fk_prepare.json").read_text())
    assert info["coefficients"] == "reconstruct:deep3d"
    assert not any("epoch_20.pth is missing" in n for n in info["notes"])
