"""dlib's models load once per process, in a helper process (or on a background thread) when the engine
warms the steps before item one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fk_align import dlib_detect

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_callers_share_one_load_and_a_failure_is_retried():
    calls: list[int] = []
    started = threading.Event()

    def slow() -> object:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return object()

    got: list[object] = []
    first = threading.Thread(target=lambda: got.append(dlib_detect._load_once("test", "slow", slow)))
    first.start()
    started.wait(5)
    got.append(dlib_detect._load_once("test", "slow", slow))  # arrives while the first load runs
    first.join()
    assert len(calls) == 1
    assert got[0] is got[1]

    def broken() -> object:
        calls.append(2)
        raise OSError("unreadable model")

    with pytest.raises(OSError, match="unreadable"):
        dlib_detect._load_once("test", "broken", broken)
    with pytest.raises(OSError, match="unreadable"):  # tried again, not a cached failure
        dlib_detect._load_once("test", "broken", broken)
    assert calls.count(2) == 2


def test_the_engine_warms_every_item_step_once_and_dlib_loads_in_a_helper_process(tmp_path, monkeypatch):
    """dlib holds the GIL while it loads, so warm() loads it in a child process (on a machine with a
    second core) that then detects: the same faces, boxes, scores and landmarks as in-process dlib."""
    import numpy as np
    from fk.engine import runner
    from fk.io import load_image
    from fk.recipe import load_recipe
    from fk.testing import astronaut_path

    monkeypatch.setattr(dlib_detect, "_cores", lambda: 2)
    plan = load_recipe(ROOT / "recipes" / "align.yaml", [f"inputs.photos={astronaut_path()}"])
    runner.close_runners()
    try:
        runner.warm_runners(plan)
        built = {sid for (_, sid) in runner._RUNNERS}
        assert built == {s.id for s in plan.item_steps}
        detector = runner._RUNNERS[(plan.digest(), plan.item_steps[0].id)]
        assert isinstance(detector, dlib_detect.DlibDetector)
        helper = detector.helper
        assert helper is not None
        assert helper.proc.poll() is None  # started by warm(), not by a detection
        before = dict(runner._RUNNERS)
        runner.warm_runners(plan)  # once per process and plan
        assert all(runner._RUNNERS[k] is v for k, v in before.items())
        assert detector.helper is helper

        rgb = load_image(astronaut_path())
        faces = detector.detect(rgb)
        assert detector.helper is helper  # answered by the helper
        here = dlib_detect.DlibDetector(upsample=detector.upsample, min_score=detector.min_score).detect(rgb)
        assert len(faces) == len(here) >= 1
        for a, b in zip(faces, here, strict=True):
            np.testing.assert_array_equal(a.box, b.box)
            assert a.score == b.score
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
            assert a.landmarks.dtype == b.landmarks.dtype == np.float64

        helper.proc.kill()  # a lost helper: the runner detects in-process from then on, same answer
        helper.proc.wait()
        again = detector.detect(rgb)
        assert detector.helper is None
        np.testing.assert_array_equal(again[0].landmarks, here[0].landmarks)
    finally:
        runner.close_runners()
    assert helper.proc.poll() is not None  # closing the runners ends the helper


def test_on_one_core_dlib_loads_on_a_background_thread(monkeypatch):
    monkeypatch.setattr(dlib_detect, "_cores", lambda: 1)
    detector = dlib_detect.DlibDetector()
    detector.warm()
    assert detector.helper is None
    loads = [dlib_detect._loads.get(key) for key in (("hog", ""), ("shape_predictor", detector.predictor))]
    assert all(fut is not None for fut in loads)
    assert all(fut.result(timeout=120) is not None for fut in loads)


def test_the_close_of_a_helper_ends_its_process():
    helper = dlib_detect.DlibHelperProcess(str(dlib_detect.dlib_model_path(dlib_detect.PREDICTOR_68)))
    helper.close()
    assert helper.proc.returncode == 0
    assert helper.detect(__import__("numpy").zeros((8, 8, 3), "uint8"), 0, 0.0) is None


@pytest.mark.parametrize(("share", "helper"), [("1", False), ("2", True)])
def test_a_pool_workers_share_of_the_cores_decides_the_helper(monkeypatch, share, helper):
    """Two pool workers on two cores have no idle core for a helper process (each gets a share of 1:
    fk.engine.executors); loading in-process then costs half the helper's CPU."""
    monkeypatch.setenv("FK_WORKER_THREADS", share)
    detector = dlib_detect.DlibDetector()
    try:
        detector.warm()
        assert (detector.helper is not None) is helper
    finally:
        detector.close()
