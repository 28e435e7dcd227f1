"""The automatic path: eye-contour masks, near-frontal frames, dlib on the synthetic renders, landmarks-3d."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk_eyeball.auto import EYE_INDICES, frontal_frames, load_2d_landmarks, polygon_mask
from fk_eyeball.dataset import load_subject
from PIL import Image


def _truth_landmarks_68(subject, truth, frame):
    """68 points with the synthetic eye contours at 36-47 (the rest NaN-free filler)."""
    from fk.cameras import Pose, project

    lm = np.zeros((68, 2))
    for eye, idx in EYE_INDICES.items():
        lm[idx] = project(
            np.asarray(truth["contour_landmarks"][eye]), subject.K, Pose.from_cam2world(frame.cam2world)
        )
    return lm


def test_eye_contour_polygons_cover_the_true_eyes(synthetic_subject):
    root, truth = synthetic_subject
    subject = load_subject(root)
    inter = union = 0
    for frame in subject.frames:
        lm = _truth_landmarks_68(subject, truth, frame)
        for eye, idx in EYE_INDICES.items():  # 36-41 -> leye_mask (CoRA's image-left eye)
            t = np.asarray(Image.open(root / "truth" / f"{eye}_mask" / frame.name))[..., 0] > 127
            if t.sum() < 100:
                continue
            p = polygon_mask(lm[idx], subject.size, dilate_px=1.0) > 0.5
            inter += (p & t).sum()
            union += (p | t).sum()
    assert inter / union >= 0.8, inter / union


def test_polygon_mask_is_soft_and_dilated():
    square = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    m0 = polygon_mask(square, (32, 32), dilate_px=0)
    m2 = polygon_mask(square, (32, 32), dilate_px=2)
    assert m0[15, 15] == 1 and m0[5, 5] == 0
    assert 0 < m0[10, 15] < 1  # the edge pixel is half covered
    assert m2.sum() > m0.sum() + 4 * 10 * 1.5


def test_frontal_frames_come_from_the_poses(synthetic_subject):
    root, _ = synthetic_subject
    subject = load_subject(root)
    picked = frontal_frames(subject.cam2world, max_angle_deg=25)
    axes = subject.cam2world[:, :3, 2]
    # the camera looking most straight at the face (-z in the synthetic world) is chosen, side views are not
    assert int(np.argmax(-axes[:, 2])) in picked
    assert all(-axes[i, 2] > np.cos(np.radians(45)) for i in picked)
    assert len(picked) >= 5


@pytest.mark.slow
def test_dlib_finds_the_synthetic_face_and_its_eyes(synthetic_subject, tmp_path):
    from fk_eyeball.auto import detect_2d_landmarks

    root, truth = synthetic_subject
    work = tmp_path / "s"
    import shutil

    shutil.copytree(root, work)
    s = detect_2d_landmarks(work)
    assert len(s["found"]) >= 3
    lms = load_2d_landmarks(work)
    for name, v in lms.items():
        assert (work / "vis_landmarks" / name).is_file()
        for eye, idx in EYE_INDICES.items():
            t = np.asarray(Image.open(work / "truth" / f"{eye}_mask" / name))[..., 0] > 127
            rows, cols = np.nonzero(t)
            cx, cy = v["landmarks"][idx].mean(0)
            # dlib's eye centre lands on the right eye (left/right not swapped), within its bounding box + 4 px
            assert cols.min() - 4 <= cx <= cols.max() + 4 and rows.min() - 4 <= cy <= rows.max() + 4, (
                name,
                eye,
            )


def test_landmarks_3d_cli_from_saved_2d_landmarks(subject_copy, capsys):
    import yaml
    from fk.cli.main import main

    root, truth = subject_copy
    subject = load_subject(root)
    rng = np.random.default_rng(0)
    info = {}
    for frame in subject.frames:
        lm = _truth_landmarks_68(subject, truth, frame) + rng.normal(0, 0.5, (68, 2))
        info[frame.name] = {"landmarks": lm.tolist(), "scores": [1.0] * 68}
        (root / "vis_landmarks").mkdir(exist_ok=True)
        (root / "vis_landmarks" / frame.name).write_bytes(b"")
    (root / "vis_landmarks" / subject.frames[0].name).unlink()  # deleting an overlay drops the view
    (root / "2d_eyeball_landmarks.json").write_text(json.dumps(info))
    rc = main(
        ["eyeball", "landmarks-3d", "--data-root", str(root), "--write-config", str(root / "config.yaml")]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "# 11 views" in out
    data = yaml.safe_load((root / "config.yaml").read_text())["data"]
    for eye, key in (("leye", "left_eye_ldm"), ("reye", "right_eye_ldm")):
        err = np.linalg.norm(np.asarray(data[key]) - np.asarray(truth["contour_landmarks"][eye]), axis=1)
        assert err.max() < 0.005  # 0.5 mm in the synthetic decimetres
    assert data["bound"] == 1.5  # the rest of the config is kept
    rc = main(["eyeball", "fit-spheres", "--config", str(root / "config.yaml"), "--write-config"])
    out = capsys.readouterr().out
    assert rc == 0
    data = yaml.safe_load((root / "config.yaml").read_text())["data"]
    np.testing.assert_allclose(
        np.asarray(data["eyeball_left_center"]) * 1.5, truth["centers"]["leye"], atol=0.01
    )


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch evil_ran",))


def test_upstream_landmark_pickle_read_safely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lm = np.arange(136, dtype=np.float32).reshape(68, 2)
    torch.save(
        {"00001.png": {"landmarks": lm, "scores": np.ones(68, np.float32)}},
        tmp_path / "2d_eyeball_landmarks.pkl",
    )
    got = load_2d_landmarks(tmp_path)
    np.testing.assert_array_equal(got["00001.png"]["landmarks"], lm)
    torch.save({"00001.png": {"landmarks": _Evil()}}, tmp_path / "2d_eyeball_landmarks.pkl")
    refused = "2d_eyeball_landmarks.pkl: this landmark pickle holds Python objects or code"
    with pytest.raises(InputError, match=refused) as err:
        load_2d_landmarks(tmp_path)
    assert "fk eyeball landmarks-2d" in err.value.hint
    with open(tmp_path / "2d_eyeball_landmarks.pkl", "wb") as fh:
        pickle.dump(_Evil(), fh)
    with pytest.raises(InputError, match=refused):
        load_2d_landmarks(tmp_path)
    assert not (tmp_path / "evil_ran").exists()


def test_bisenet_eye_masks_follow_upstreams_swap():
    """The network and its loader are core's (tests/nets/test_bisenet.py); CoRA's eye-mask rule is here."""
    from fk_eyeball import auto

    class Fake(torch.nn.Module):  # class 5 on the image-left half of the padded square, class 4 on the right
        def forward(self, x):
            out = torch.zeros(1, 19, *x.shape[2:])
            out[:, 5, 200:300, 150:250] = 1
            out[:, 4, 200:300, 262:362] = 1
            return out

    leye, reye = auto.eye_masks(Fake(), np.zeros((96, 72, 3), np.uint8))
    assert leye.shape == reye.shape == (96, 72)
    assert leye[:, :36].sum() > 10 * leye[:, 36:].sum()  # upstream's leye = class 5 ("r_eye") = image left
    assert reye[:, 36:].sum() > 10 * reye[:, :36].sum()
    # padding 12 px left of the 72-wide frame: class 5 starts at column 150/512*96 - 12 = 16.1
    cols = np.nonzero(leye.max(0) > 0.5)[0]
    assert abs(cols.min() - 16) <= 1


@pytest.mark.slow
def test_auto_eye_masks_cli_writes_coras_masks_where_dlib_finds_a_face(synthetic_subject, tmp_path, capsys):
    from fk.cli.main import main

    root, truth = synthetic_subject
    rc = main(["eyeball", "auto-eye-masks", "--data-root", str(root), "--out", str(tmp_path), "--method", "landmarks"])
    out = capsys.readouterr()
    assert rc == 0
    written = sorted(p.name for p in (tmp_path / "leye_mask").glob("*.png"))
    assert f"dlib: wrote leye_mask/ and reye_mask/ for {len(written)} of 12 frames" in out.out
    assert len(written) >= 6
    missing = sorted(set(truth["frames"]) - set(written))
    assert (not missing) or ("no face in" in out.err and missing[0] in out.err)
    m = np.asarray(Image.open(tmp_path / "leye_mask" / written[0]))
    assert m.shape == (480, 360, 3) and m.dtype == np.uint8 and m.max() == 255
    assert not (root / "leye_mask").exists()  # nothing written outside --out


def test_auto_eye_masks_uses_bisenet_when_weights_are_given(subject_copy, tmp_path, monkeypatch):
    from fk.errors import MissingError
    from fk.nets import bisenet
    from fk_eyeball import auto

    root, _ = subject_copy
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"] = meta["frames"][:2]
    (root / "two.json").write_text(json.dumps(meta))

    class Fake(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(1, 19, *x.shape[2:])
            out[:, 5, 250:270, 200:240] = 1  # upstream's leye class
            return out

    (tmp_path / "w.pth").write_bytes(b"")
    monkeypatch.setattr(bisenet, "load_bisenet", lambda path: Fake())
    s = auto.auto_eye_masks(root, meta="two.json", out=tmp_path / "o", method="auto", weights=tmp_path / "w.pth")
    assert s["detector"] == "bisenet"
    m = np.asarray(Image.open(tmp_path / "o" / "leye_mask" / "00001.png"))[..., 0]
    assert m.max() == 255 and m[:, : m.shape[1] // 2].sum() > m[:, m.shape[1] // 2 :].sum()
    assert np.asarray(Image.open(tmp_path / "o" / "reye_mask" / "00001.png")).max() == 0
    with pytest.raises(MissingError, match="BiSeNet weights not found"):
        auto.auto_eye_masks(root, meta="two.json", out=tmp_path / "o", method="bisenet", weights=tmp_path / "no.pth")
