"""CoRA subject folders: cameras pinned against the renders, missing and malformed files reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk.errors import InputError
from fk_eyeball.dataset import load_subject, write_transforms


def _upstream_pixel(meta, frame, point):
    """Pixel (x, y) whose CoRA ray passes through ``point``: nerf_matrix_to_ngp(scale=1), then
    d_cam = ((x - cx + 0.5)/fx, (y - cy + 0.5)/fy, 1) inverted, written out from cora.md §3."""
    p = np.asarray(frame["transform_matrix"], dtype=np.float64)
    c2w = np.array([[p[1, 0], -p[1, 1], -p[1, 2], p[1, 3]], [p[2, 0], -p[2, 1], -p[2, 2], p[2, 3]],
                    [p[0, 0], -p[0, 1], -p[0, 2], p[0, 3]], [0, 0, 0, 1]])  # fmt: skip
    cam = c2w[:3, :3].T @ (np.asarray(point) - c2w[:3, 3])
    return np.array(
        [cam[0] / cam[2] * meta["fl_x"] + meta["cx"] - 0.5, cam[1] / cam[2] * meta["fl_y"] + meta["cy"] - 0.5]
    )


def test_known_point_projects_to_known_pixel_in_every_frame(synthetic_subject):
    from fk.cameras import project

    root, truth = synthetic_subject
    subject = load_subject(root)
    meta = json.loads((root / "transforms.json").read_text())
    by_name = {f["file_path"].split("/")[-1]: f for f in meta["frames"]}
    from PIL import Image

    hits = 0
    for i, frame in enumerate(subject.frames):
        for eye in ("leye", "reye"):
            c = np.asarray(truth["centers"][eye])
            front = c + truth["radius"] * np.array([0.0, 0.0, 1.0])  # the pupil's centre, in the opening
            px = project(front[None], subject.K, subject.poses.__class__.from_cam2world(frame.cam2world))[0]
            np.testing.assert_allclose(px, _upstream_pixel(meta, by_name[frame.name], front), atol=1e-9)
            # ... and that pixel shows the eyeball in the rendered ground truth whenever any of it is visible
            gt = np.asarray(Image.open(root / "truth" / f"{eye}_mask" / frame.name))[..., 0]
            col, row = np.rint(px).astype(int)
            if gt.sum() > 255 * 150:
                assert gt[row, col] == 255, (frame.name, eye, px)
                hits += 1
        assert i < len(subject.frames)
    assert hits >= len(subject.frames)  # most frames show both eyes


def test_aligned_json_holds_opencv_matrices(synthetic_subject, tmp_path):
    root, _ = synthetic_subject
    a = load_subject(root)
    sub = tmp_path / "s"
    (sub / "image").mkdir(parents=True)
    for f in a.frames:
        (sub / "image" / f.name).write_bytes((root / "image" / f.name).read_bytes())
    write_transforms(
        sub / "transforms_aligned.json", a.intrinsics, [f.name for f in a.frames], a.cam2world, aligned=True
    )
    b = load_subject(sub)
    assert b.meta_path.name == "transforms_aligned.json"
    np.testing.assert_allclose(b.cam2world, a.cam2world, atol=1e-12)


def test_frames_sorted_and_missing_optional_files_reported(subject_copy):
    root, _ = subject_copy
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"] = meta["frames"][::-1]
    (root / "transforms.json").write_text(json.dumps(meta))
    (root / "hair_mask" / "00003.png").unlink()
    s = load_subject(root)
    assert [f.name for f in s.frames] == sorted(f.name for f in s.frames)
    assert s.missing["hair_mask"] == ["00003.png"]
    warning = s.warning()
    assert "hair_mask/: 1 missing (00003.png)" in warning and "leye_mask/" in warning and "\n" not in warning
    np.testing.assert_array_equal(s.load("hair_mask", 2), 0)  # CoRA's zeros, now announced


def test_missing_frame_image_is_a_one_line_error_naming_the_json(subject_copy):
    root, _ = subject_copy
    (root / "image" / "00002.png").unlink()
    with pytest.raises(
        InputError, match=r"transforms.json: 1 listed frame\(s\) have no image/ file: 00002.png"
    ) as e:
        load_subject(root)
    assert "\n" not in str(e.value)


def test_frame_without_matrix_and_bad_json(subject_copy):
    root, _ = subject_copy
    meta = json.loads((root / "transforms.json").read_text())
    del meta["frames"][1]["transform_matrix"]
    (root / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="transforms.json: frame 1 lacks"):
        load_subject(root)
    (root / "transforms.json").write_text("{not json")
    with pytest.raises(InputError, match="transforms.json: cannot read camera JSON"):
        load_subject(root)


def test_mask_of_the_wrong_size_names_the_file(subject_copy):
    from PIL import Image

    root, _ = subject_copy
    Image.new("RGB", (100, 80)).save(root / "mask" / "00004.png")
    with pytest.raises(InputError, match=r"mask/00004.png: image is 100x80, the cameras say 360x480"):
        load_subject(root, check_sizes=True)
    s = load_subject(root)
    with pytest.raises(InputError, match="00004.png"):
        s.load("mask", 3)


def test_inspect_command_reports_missing_files_and_bad_sizes(subject_copy, capsys):
    from PIL import Image

    from fk.cli.main import main

    root, _ = subject_copy
    assert main(["eyeball", "inspect", "--data-root", str(root)]) == 0
    out = capsys.readouterr()
    assert "12 frames of 360x480 in transforms.json" in out.out
    assert "warning: zeros substituted as CoRA does for leye_mask/: 12 missing" in out.err
    Image.new("RGB", (10, 10)).save(root / "hair_mask" / "00004.png")
    assert main(["eyeball", "inspect", "--data-root", str(root)]) == 1
    assert capsys.readouterr().err.splitlines()[0].endswith("hair_mask/00004.png: image is 10x10, the cameras say 360x480")
