"""dlib's models load once per process, in the background when the engine warms the steps before item one."""

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


def test_the_engine_warms_every_item_step_once_and_dlib_loads_in_the_background(tmp_path):
    from fk.engine import runner
    from fk.recipe import load_recipe
    from fk.testing import astronaut_path

    plan = load_recipe(ROOT / "recipes" / "align.yaml", [f"inputs.photos={astronaut_path()}"])
    runner.close_runners()
    try:
        runner.warm_runners(plan)
        built = {sid for (_, sid) in runner._RUNNERS}
        assert built == {s.id for s in plan.item_steps}
        detector = runner._RUNNERS[(plan.digest(), plan.item_steps[0].id)]
        assert isinstance(detector, dlib_detect.DlibDetector)
        keys = [("hog", ""), ("shape_predictor", detector.predictor)]
        loads = {key: dlib_detect._loads.get(key) for key in keys}
        assert all(fut is not None for fut in loads.values()), loads  # started by warm(), not by a detection
        for fut in loads.values():
            assert fut.result(timeout=120) is not None
        before = dict(runner._RUNNERS)
        runner.warm_runners(plan)  # once per process and plan
        assert all(runner._RUNNERS[k] is v for k, v in before.items())
        # the detector then uses the loaded models: same result as a fresh load
        from fk.io import load_image

        faces = detector.detect(load_image(astronaut_path()))
        assert len(faces) >= 1
        assert faces[0].landmarks.shape == (68, 2)
    finally:
        runner.close_runners()
