"""fk eyeball uv-landmarks: blobs -> centroids -> 3D through the coord map; safe coord.pkl; config edits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk_eyeball.uv_landmarks import find_green_blobs, load_coord, uv_landmarks, write_config_key
from PIL import Image


def test_lift_returns_the_painted_texels_true_points(synthetic_subject, tmp_path):
    root, truth = synthetic_subject
    for eye in ("leye", "reye"):
        pts, rc = uv_landmarks(root / f"diffuse_{eye}_landmark.png", root / "coord.npy")
        assert len(pts) == 4
        np.testing.assert_allclose(pts, truth["painted_landmarks"][eye], atol=1e-5)
        # the same map saved as upstream's coord.pkl (torch.save of [1, 3, S, S]) gives the same points
        torch.save(torch.from_numpy(np.load(root / "coord.npy")), tmp_path / "coord.pkl")
        pts_pkl, _ = uv_landmarks(root / f"diffuse_{eye}_landmark.png", tmp_path / "coord.pkl")
        np.testing.assert_array_equal(pts_pkl, pts)
        # painted landmarks lie on the eyeball (within 0.3 mm: texels next to the lids sit on the tessellated
        # head-plus-eyeball surface, whose lid triangles bridge the sphere and the head)
        r = np.linalg.norm(pts - np.asarray(truth["centers"][eye]), axis=1)
        np.testing.assert_allclose(r, truth["radius"], atol=3e-3)


def test_single_pixels_keep_upstreams_scan_order_and_blobs_become_centroids(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[9, 2] = img[3, 12] = (0, 255, 0)
    img[5:7, 4:6] = (0, 255, 0)  # a 2x2 blob: centroid (5.5, 4.5)
    img[12, 12] = (0, 254, 0)  # not pure green
    Image.fromarray(img).save(tmp_path / "l.png")
    np.testing.assert_array_equal(find_green_blobs(tmp_path / "l.png"), [[3, 12], [5.5, 4.5], [9, 2]])
    coord = np.zeros((3, 16, 16), np.float32)
    coord[:, 2:14, 2:14] = np.arange(12 * 12 * 3, dtype=np.float32).reshape(3, 12, 12)
    np.save(tmp_path / "c.npy", coord[None])
    pts, _ = uv_landmarks(tmp_path / "l.png", tmp_path / "c.npy")
    np.testing.assert_allclose(
        pts[0], coord[:, 3, 12]
    )  # a single pixel: exactly upstream's coord[0][:, y, x]
    np.testing.assert_allclose(pts[1], coord[:, 5:7, 4:6].mean(axis=(1, 2)))  # bilinear at the centroid


def test_blob_count_errors_and_warnings(synthetic_subject, tmp_path, capsys):
    from fk.cli.main import main

    root, _ = synthetic_subject
    coord = root / "coord.npy"
    empty = np.asarray(Image.open(root / "diffuse.png")).copy()
    Image.fromarray(empty).save(tmp_path / "none.png")
    with pytest.raises(InputError, match=r"none.png: no pure-green \(0, 255, 0\) landmark pixels"):
        uv_landmarks(tmp_path / "none.png", coord)
    seven = np.asarray(Image.open(root / "diffuse_leye_landmark.png")).copy()
    rows, cols = np.nonzero((seven == (0, 255, 0)).all(-1))
    for k in range(3):  # three more single-pixel blobs next to the painted ones, on the eye
        seven[rows[0] + 6 + 3 * k, cols[0] + 6] = (0, 255, 0)
    Image.fromarray(seven).save(tmp_path / "diffuse_leye_landmark.png")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("data:\n  bound: 1.5\n")
    rc = main(
        [
            "eyeball",
            "uv-landmarks",
            "--ldm-img",
            str(tmp_path / "diffuse_leye_landmark.png"),
            "--coord",
            str(coord),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0
    assert "diffuse_leye_landmark.png: found 7 green blobs, expected 4" in out.err
    assert out.out.count("  - [") == 7
    rc = main(["eyeball", "uv-landmarks", "--ldm-img", str(tmp_path / "diffuse_leye_landmark.png"), "--coord",
               str(coord), "--write-config", str(cfg)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert err.splitlines()[0].endswith("diffuse_leye_landmark.png: found 7 green blobs, expected 4")
    assert cfg.read_text() == "data:\n  bound: 1.5\n"
    Image.fromarray(seven).save(tmp_path / "l.jpg", format="JPEG")
    (tmp_path / "l.jpg").rename(tmp_path / "jpeg.png")
    with pytest.raises(InputError, match="jpeg.png: landmark image is JPEG, not PNG"):
        find_green_blobs(tmp_path / "jpeg.png")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch evil_ran",))


def test_malicious_coord_pkl_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "coord.pkl", "wb") as fh:
        pickle.dump({"coord": _Evil()}, fh)
    refused = "this coord map holds Python objects or code, not only tensors: fk refuses it"
    with pytest.raises(InputError, match=f"coord.pkl: {refused}") as err:
        load_coord(tmp_path / "coord.pkl")
    assert "torch.save(tensor)" in err.value.hint
    torch.save({"x": _Evil()}, tmp_path / "zip.pkl")
    with pytest.raises(InputError, match=f"zip.pkl: {refused}"):
        load_coord(tmp_path / "zip.pkl")
    assert not (tmp_path / "evil_ran").exists()


def test_write_config_keeps_the_rest_of_the_file(tmp_path):
    cfg = tmp_path / "config.yaml"
    text = (
        "# subject config\n"
        "device: cuda\n"
        "data:\n"
        "  meta_path: data/x/transforms.json  # the cameras\n"
        "  left_eye_ldm:\n"
        "  - [0, 0, 0]\n"
        "  - [1, 1, 1]\n"
        "\n"
        "  bound: 1.0\n"
        "network:\n"
        "  num_levels: 16\n"
    )
    cfg.write_text(text)
    pts = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    write_config_key(cfg, "left_eye_ldm", pts)
    write_config_key(cfg, "right_eye_ldm", pts[::-1])
    new = cfg.read_text()
    expect = text.replace(
        "  left_eye_ldm:\n  - [0, 0, 0]\n  - [1, 1, 1]\n",
        "  left_eye_ldm: [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]\n",
    )
    expect = expect.replace(
        "  bound: 1.0\n", "  bound: 1.0\n  right_eye_ldm: [[0.4, 0.5, 0.6], [0.1, 0.2, 0.3]]\n"
    )
    assert new == expect
