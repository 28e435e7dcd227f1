"""The detector contract rejects detectors that break it (each check can fail)."""

from __future__ import annotations

import numpy as np
import pytest
from fk.components import Component, Port
from fk.testing.detector_contract import DetectorContract
from fk.types import Face


def _face(box, score=1.0, index=0, lm=None, size=(100, 100)):
    x0, y0, x1, y1 = box
    if lm is None:
        lm = np.column_stack([np.linspace(x0, x1, 68), np.linspace(y0, y1, 68)])
    return Face(box=np.array(box, float), score=score, landmarks=lm, image_size=size, index=index)


class _Contract(DetectorContract):
    component = "detect:fake"


@pytest.fixture
def contract():
    return _Contract()


def test_unsorted_faces_fail(contract):
    faces = [_face((10, 10, 20, 20), index=0), _face((30, 30, 70, 70), index=1)]
    with pytest.raises(AssertionError, match="largest first"):
        contract.test_sorted_largest_first(faces)
    contract.test_sorted_largest_first([_face((30, 30, 70, 70)), _face((10, 10, 20, 20), index=1)])


def test_box_outside_the_image_fails(contract):
    rgb = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(AssertionError, match="leaves"):
        contract.test_boxes_inside_image([_face((-20, 10, 50, 60))], ({}, rgb))
    contract.test_boxes_inside_image([_face((0, 10, 50, 60))], ({}, rgb))


def test_far_landmarks_and_bad_scores_fail(contract):
    far = np.full((68, 2), 95.0)
    with pytest.raises(AssertionError, match="far outside"):
        contract.test_landmarks_68_near_box([_face((10, 10, 30, 30), lm=far)])
    with pytest.raises(AssertionError):
        contract.test_landmarks_68_near_box([_face((10, 10, 30, 30), lm=np.zeros((5, 2)))])
    with pytest.raises(AssertionError, match="score"):
        contract.test_scores_are_floats([_face((10, 10, 30, 30), score=np.float32(0.5))])
    with pytest.raises(AssertionError, match="score"):
        contract.test_scores_are_floats([_face((10, 10, 30, 30), score=float("nan"))])


def test_faces_on_a_blank_image_fail(contract, tmp_path):
    def sees_faces(inputs, ctx):
        return {"faces": [_face((10, 10, 30, 30))]}

    with pytest.raises(AssertionError, match="blank image"):
        contract.test_blank_image_gives_no_face(sees_faces, tmp_path)


def test_wrong_declaration_fails(contract):
    no_fan = Component(
        stage="detect",
        name="fake",
        summary="",
        factory="x:y",
        inputs=(Port("image", "image"),),
        outputs=(Port("faces", "faces"),),
    )
    with pytest.raises(AssertionError, match="fan out"):
        contract.test_declares_detect_interface(no_fan)
    with pytest.raises(AssertionError, match="no value"):
        contract.test_returns_declared_outputs(no_fan, ({"boxes": []}, None))
