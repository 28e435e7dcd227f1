"""The 68 -> 5 point reduction and the seeds' landmark files."""

from __future__ import annotations

import numpy as np
import pytest
from fk.errors import InputError
from fk_align.landmarks import (
    five_from_68,
    flip_y,
    format_five_points,
    read_five_points,
    read_landmarks68,
    write_five_points,
)


def test_five_points_follow_deep3d_one_based_indices():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 500, size=(68, 2))
    # deep3d.md §3.1, 1-based: eye A = mean(37, 40), eye B = mean(43, 46), nose 31, mouth 49 and 55.
    one = lambda i: lm[i - 1]  # noqa: E731
    expected = np.array([(one(37) + one(40)) / 2, (one(43) + one(46)) / 2, one(31), one(49), one(55)])
    np.testing.assert_allclose(five_from_68(lm), expected, rtol=0, atol=1e-12)


def test_five_points_batch_matches_single():
    rng = np.random.default_rng(1)
    lms = rng.uniform(0, 100, size=(3, 4, 68, 2))
    out = five_from_68(lms)
    assert out.shape == (3, 4, 5, 2)
    np.testing.assert_allclose(out[2, 1], five_from_68(lms[2, 1]))


def test_five_points_on_a_real_face_are_ordered_left_to_right(astro_face):
    p = five_from_68(astro_face.landmarks)
    eye_l, eye_r, nose, mouth_l, mouth_r = p
    assert eye_l[0] < nose[0] < eye_r[0]
    assert mouth_l[0] < nose[0] < mouth_r[0]
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_five_point_file_round_trip(tmp_path):
    pts = np.array([[1.25, 2.5], [300.125, 2.75], [150.0, 99.5], [10.0, 200.0], [290.0, 201.0]])
    path = write_five_points(tmp_path / "detections" / "a_00.txt", pts)
    text = path.read_text()
    assert text.count("\n") == 5
    assert text.splitlines()[0].split() == ["1.250000", "2.500000"]
    np.testing.assert_allclose(read_five_points(path), pts)
    # MTCNN-style tab-separated files read the same
    (tmp_path / "tab.txt").write_text("".join(f"{x}\t{y}\n" for x, y in pts))
    np.testing.assert_allclose(read_five_points(tmp_path / "tab.txt"), pts)


def test_bad_landmark_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3 4\n")
    with pytest.raises(InputError, match="bad.txt"):
        read_five_points(bad)
    np.save(tmp_path / "lm.npy", np.zeros((67, 2)))
    with pytest.raises(InputError, match="lm.npy"):
        read_landmarks68(tmp_path / "lm.npy")
    with pytest.raises(InputError, match="68"):
        five_from_68(np.zeros((5, 2)))


def test_flip_y_is_an_involution_and_pins_the_convention():
    pts = np.array([[3.0, 0.0], [4.0, 9.0]])
    np.testing.assert_array_equal(flip_y(pts, 10), [[3.0, 9.0], [4.0, 0.0]])
    np.testing.assert_array_equal(flip_y(flip_y(pts, 10), 10), pts)
    assert format_five_points(np.zeros((5, 2))).splitlines() == ["0.000000 0.000000"] * 5
