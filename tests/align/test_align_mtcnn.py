"""detect:mtcnn: the torch MTCNN cascade on the mtcnn package's weight files, read without running
anything; checked on the astronaut against dlib's 68 points."""

from __future__ import annotations

import pickle
from pathlib import Path

import lz4.frame
import numpy as np
import pytest
import torch
from fk.engine.context import ItemContext
from fk.io import load_image
from fk.io.safe_pickle import UnsafePickleError
from fk.testing.detector_contract import DetectorContract
from fk_align.dlib_detect import DlibDetector
from fk_align.mtcnn_detect import (
    MtcnnDetector,
    crop_and_resize,
    load_mtcnn_weights,
    mtcnn_weights_dir,
    nms,
    resize_area,
)


class TestMtcnnContract(DetectorContract):
    component = "detect:mtcnn"
    has_landmarks = False  # 5 keypoints (Face.keypoints), not 68 landmarks


@pytest.fixture(scope="module")
def astronaut_faces() -> tuple[list, list]:
    from fk.testing import astronaut_path

    return MtcnnDetector().find_faces(astronaut_path()), DlibDetector().find_faces(astronaut_path())


def test_astronaut_one_face_five_points_on_eyes_nose_mouth(astronaut_faces: tuple[list, list]) -> None:
    faces, dlib_faces = astronaut_faces
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks is None
    assert f.keypoints.shape == (5, 2)
    assert f.score > 0.99
    lm = dlib_faces[0].landmarks
    expected = np.stack(
        [lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]]  # eyes, nose tip, mouth corners
    )
    err = np.linalg.norm(f.keypoints - expected, axis=1)
    face_size = f.box[2] - f.box[0]
    assert np.all(err < 0.08 * face_size), (
        f"keypoints off dlib's by {err.round(1)} px (face {face_size:.0f} px)"
    )
    # image-left eye is left of the image-right eye; both above the nose, nose above the mouth
    kp = f.keypoints
    assert kp[0, 0] < kp[1, 0]
    assert kp[3, 0] < kp[4, 0]
    assert max(kp[0, 1], kp[1, 1]) < kp[2, 1] < min(kp[3, 1], kp[4, 1])


def test_mtcnn_writes_the_five_points(astronaut_path: Path, tmp_path: Path) -> None:
    runner = MtcnnDetector(write_landmarks=True, order="confidence")
    ctx = ItemContext(
        key="astronaut",
        source=astronaut_path,
        step_id="detect",
        run_dir=tmp_path,
        step_dir=tmp_path / "detect",
    )
    faces = runner({"image": astronaut_path}, ctx)["faces"]
    rows = (tmp_path / "detect" / "detections" / "astronaut_00.txt").read_text().split("\n")
    pts = np.array([[float(v) for v in r.split()] for r in rows if r.strip()])
    np.testing.assert_allclose(pts, faces[0].keypoints, atol=0.01)


def test_weight_files_load_as_keras_arrays() -> None:
    arrays = load_mtcnn_weights(mtcnn_weights_dir() / "pnet.lz4")
    assert [a.shape for a in arrays[:3]] == [(3, 3, 3, 10), (10,), (1, 1, 10)]
    assert all(a.dtype == np.float32 for a in arrays)
    assert len(arrays) == 13


class _Exec:
    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('ran')"

    def __reduce__(self) -> tuple:
        return (exec, (self.code,))


def test_weight_loader_refuses_a_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "pnet.lz4"
    evil.write_bytes(lz4.frame.compress(pickle.dumps([_Exec(marker)], protocol=4)))
    with pytest.raises(UnsafePickleError, match="builtins.exec"):
        load_mtcnn_weights(evil)
    assert not marker.exists()
    pickle.loads(lz4.frame.decompress(evil.read_bytes()))  # what joblib.load would have done
    assert marker.exists()


def test_weight_loader_refuses_objects_inside_array_records(tmp_path: Path) -> None:
    """A joblib record whose dtype is Python objects (joblib would unpickle them) is refused."""
    good = lz4.frame.decompress((mtcnn_weights_dir() / "pnet.lz4").read_bytes())
    evil = tmp_path / "onet.lz4"
    evil.write_bytes(lz4.frame.compress(good.replace(b"\x8c\x02f4", b"\x8c\x02O8", 1)))
    with pytest.raises(UnsafePickleError, match="O8"):
        load_mtcnn_weights(evil)


# -- the TensorFlow image operations, against their definitions --------------------------------------


def test_resize_area_averages_exact_pixel_footprints() -> None:
    img = torch.arange(2 * 5 * 7, dtype=torch.float64).reshape(2, 5, 7)
    out = resize_area(img, (2, 3))
    # output (0, 0) covers rows [0, 2.5) and cols [0, 7/3): a weighted box average
    wy = np.array([1, 1, 0.5, 0, 0])
    wx = np.array([1, 1, 1 / 3, 0, 0, 0, 0])
    want = (wy[:, None] * wx[None] * img[0].numpy()).sum() / (2.5 * 7 / 3)
    assert out.shape == (2, 2, 3)
    assert float(out[0, 0, 0]) == pytest.approx(want)
    assert torch.allclose(resize_area(img, (5, 7)), img)


def test_crop_and_resize_is_bilinear_with_zero_outside() -> None:
    img = torch.arange(6 * 8, dtype=torch.float32).reshape(1, 6, 8)  # value = 8 y + x, linear
    crops = crop_and_resize(img, np.array([[0.2, 0.1, 0.8, 0.9], [-0.5, 0.0, 0.5, 1.0]]), 4)
    ys = 0.2 * 5 + np.arange(4) / 3 * (0.6 * 5)
    xs = 0.1 * 7 + np.arange(4) / 3 * (0.8 * 7)
    np.testing.assert_allclose(crops[0, 0].numpy(), 8 * ys[:, None] + xs[None], rtol=1e-5)
    assert torch.all(crops[1, 0, :2] == 0)  # rows above the image: extrapolation value 0
    assert torch.all(crops[1, 0, 2:] > 0)


def test_nms_lets_suppressed_boxes_suppress() -> None:
    """mtcnn's NMS: B (overlapped by A) is dropped, and still drops C, which overlaps only B."""
    rows = np.array(
        [[0, 0, 0, 10, 10, 0.9], [0, 4, 0, 14, 10, 0.8], [0, 8, 0, 18, 10, 0.7], [0, 50, 50, 60, 60, 0.6]]
    )
    kept = nms(rows, 0.3, "union")
    assert kept[:, 5].tolist() == [0.9, 0.6]


def test_blank_and_tiny_images_give_no_faces() -> None:
    from fk_align.mtcnn_detect import detect_mtcnn

    assert detect_mtcnn(np.full((64, 64, 3), 127, np.uint8)).shape == (0, 15)
    assert detect_mtcnn(np.zeros((10, 10, 3), np.uint8)).shape == (0, 15)


def test_astronaut_photo_loads(astronaut_path: Path) -> None:
    assert load_image(astronaut_path).shape == (512, 512, 3)


def test_variant_011_gives_gmpis_integer_points_near_the_10_cascade(
    astronaut_faces: tuple[list, list],
) -> None:
    """GMPI's pinned mtcnn 0.1.1: same weights, OpenCV resizing, integer outputs."""
    from fk.testing import astronaut_path

    faces = MtcnnDetector(variant="0.1.1").find_faces(astronaut_path())
    assert len(faces) == 1
    kp = faces[0].keypoints
    np.testing.assert_array_equal(kp, np.trunc(kp))
    assert np.abs(kp - astronaut_faces[0][0].keypoints).max() < 3.0


def test_greedy_nms_of_011_keeps_boxes_a_suppressed_box_overlapped() -> None:
    from fk_align.mtcnn_detect import _nms_greedy

    boxes = np.array([[0, 0, 10, 10, 0.9], [4, 0, 14, 10, 0.8], [8, 0, 18, 10, 0.7], [50, 50, 60, 60, 0.6]])
    assert _nms_greedy(boxes, 0.3, "union").tolist() == [0, 2, 3]
