"""2D-FAN landmarks through the ``face-alignment`` package, offline, and LPFF's dlib-then-FAN cascade.

face-alignment downloads its weights (2DFAN-4 and the S3FD detector) at first use.
fk never downloads: the files are looked up in ``weights_dir``, then
``$FK_HOME/assets/face_alignment/``, then torch's hub cache (where the package
itself would have put them), and a missing file raises one line saying what to put
where. The package is then pointed at the found files through a private hub folder
of links, so no code path of it can start a download.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import AssetMissingError, InputError
from fk.types import Face

from fk_align import transforms as tf
from fk_align.detection import DetectorRunner, clip_box
from fk_align.plugin import FAN_FILES, FAN_FOLDER, FAN_URLS


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weight_paths(weights_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Where the 2DFAN-4 and S3FD files are: {"2DFAN-4": path, "s3fd": path}, or AssetMissingError."""
    from fk.assets import asset_root

    folders = (
        [Path(weights_dir).expanduser()] if weights_dir else [asset_root() / FAN_FOLDER, _hub_checkpoints()]
    )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, filename in FAN_FILES.items():
        hit = next((f / filename for f in folders if (f / filename).is_file()), None)
        if hit is None:
            missing.append(key)
        else:
            found[key] = hit
    if missing:
        where = folders[0]
        files = " and ".join(FAN_FILES[k] for k in missing)
        urls = " ".join(FAN_URLS[k] for k in missing)
        raise AssetMissingError(
            f"face-alignment weights missing: put {files} into {where}/",
            hint=f"download {urls} (fk never downloads at run time); "
            f"searched {', '.join(str(f) for f in folders)}",
        )
    return found


@lru_cache(maxsize=4)
def load_face_alignment(fan_path: str, s3fd_path: str, device: str = "cpu", threshold: float = 0.5) -> Any:
    """A ``face_alignment.FaceAlignment`` (2D, S3FD, no flip: LPFF's settings) built from local files."""
    try:
        import face_alignment
        import torch
    except ImportError as exc:
        raise AssetMissingError(
            f"the face-alignment package is not installed ({exc})",
            hint="pip install 'fk-plugin-align[fan]'  (or: pip install face-alignment)",
        ) from exc
    kwargs: dict[str, Any] = {
        "device": device,
        "flip_input": False,
        "face_detector": "sfd",
        "face_detector_kwargs": {"path_to_detector": s3fd_path, "filter_threshold": threshold},
    }
    if "compile" in inspect.signature(face_alignment.FaceAlignment.__init__).parameters:
        kwargs["compile"] = False  # torch.compile would write a cache under ~/.cache and take minutes on CPU
    landmarks_type = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="fk-fan-hub-") as hub:
        (Path(hub) / "checkpoints").mkdir()
        os.symlink(fan_path, Path(hub) / "checkpoints" / FAN_FILES["2DFAN-4"])
        torch.hub.set_dir(hub)
        try:
            return face_alignment.FaceAlignment(landmarks_type, **kwargs)
        except Exception as exc:  # noqa: BLE001 - say which file, never "use weights_only=False"
            raise _refused_weights(exc, fan_path, s3fd_path) from None
        finally:
            torch.hub.set_dir(previous)


def _refused_weights(exc: Exception, fan_path: str, s3fd_path: str) -> Exception:
    """Name the face-alignment file that cannot be loaded safely (checked one by one, weights only)."""
    import torch
    from fk.io.weights import load_torch_weights, weights_error

    fix = "download {} again and put it there (fk never loads pickled code)"
    try:  # face-alignment's 2DFAN-4 file is a TorchScript archive (as face-alignment itself loads it)
        torch.jit.load(fan_path, map_location="cpu")
    except Exception as bad:  # noqa: BLE001
        return weights_error(fan_path, "2DFAN-4 TorchScript file", fix.format(FAN_URLS["2DFAN-4"]), bad)
    try:
        load_torch_weights(s3fd_path, "S3FD weight file", fix.format(FAN_URLS["s3fd"]))
    except InputError as refused:
        return refused
    return exc


class FanDetector(DetectorRunner):
    """``detect:face-alignment``: S3FD boxes and 2D-FAN 68 landmarks."""

    name = "face-alignment"

    def __init__(
        self, weights_dir: str | None = None, device: str | None = None, min_score: float = 0.5, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.weights = fan_weight_paths(weights_dir)
        self.device = device
        self.min_score = float(min_score)

    def model(self, device: str | None = None) -> Any:
        return load_face_alignment(
            str(self.weights["2DFAN-4"]),
            str(self.weights["s3fd"]),
            self.device or device or "cpu",
            self.min_score,
        )

    def detect(self, rgb: np.ndarray, device: str | None = None) -> list[Face]:
        lms, _, boxes = self.model(device).get_landmarks_from_image(
            np.ascontiguousarray(rgb), return_bboxes=True
        )
        if lms is None:
            return []
        faces = []
        for lm, box in zip(lms, boxes, strict=True):
            faces.append(
                Face(
                    box=clip_box(box[:4], rgb.shape[:2]),
                    score=float(box[4]),
                    landmarks=np.asarray(lm, dtype=np.float64)[:, :2],
                    image_size=(int(rgb.shape[0]), int(rgb.shape[1])),
                    detector=self.name,
                )
            )
        return faces

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        self.device = self.device or (getattr(ctx, "options", None) or {}).get("device")
        return super().__call__(inputs, ctx)


def fan_on_shrunk(fan_detect: Any, rgb: np.ndarray, max_side: int = 600) -> list[Face]:
    """Run ``fan_detect(rgb) -> list[Face]`` on a copy whose longer side is at most ``max_side``
    (LPFF's fallback) and map boxes and landmarks back to ``rgb``'s pixels exactly."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return fan_detect(rgb)
    small_size = (max(int(w * scale), 1), max(int(h * scale), 1))
    source_from_small = np.linalg.inv(tf.resize_matrix((w, h), small_size))
    faces = fan_detect(tf.resize(rgb, small_size, "bilinear"))
    for f in faces:
        corners = tf.apply_points(source_from_small, np.asarray(f.box, dtype=np.float64).reshape(2, 2))
        f.box = clip_box(corners.reshape(4), (h, w))
        if f.landmarks is not None:
            f.landmarks = tf.apply_points(source_from_small, f.landmarks)
        f.image_size = (int(h), int(w))
    return faces


def lpff_preflight(params: dict[str, Any]) -> list[str]:
    """``detect:lpff``'s check before a run: say once that the face-alignment fallback is off, and why."""
    if not params.get("fallback", True):
        return []
    try:
        fan_weight_paths(params.get("weights_dir"))
    except AssetMissingError as exc:
        return [
            f"the face-alignment fallback is off (photos where dlib finds no face will fail): {exc}; "
            f"{exc.hint}"
        ]
    return []


class LpffDetector(DetectorRunner):
    """``detect:lpff``: dlib HOG (upsample 1); 2D-FAN on a <= 600 px copy only when dlib finds nothing."""

    name = "lpff"

    def __init__(
        self,
        upsample: int = 1,
        fallback: bool = True,
        max_side: int = 600,
        weights_dir: str | None = None,
        device: str | None = None,
        **kw: Any,
    ) -> None:
        from fk_align.dlib_detect import DlibDetector

        super().__init__(**kw)
        self.dlib = DlibDetector(upsample=upsample)
        self.fallback = bool(fallback)
        self.max_side = int(max_side)
        if self.max_side < 1:
            raise InputError(f"detect:lpff: max_side must be positive, got {max_side}")
        self.weights_dir = weights_dir
        self.device = device
        self._fan: FanDetector | None = None
        self.fan_error: AssetMissingError | None = None

    def fan(self) -> FanDetector | None:
        """The fallback detector, built on first need; None (``fan_error`` set) without weights."""
        if self._fan is None and self.fan_error is None:
            try:
                self._fan = FanDetector(weights_dir=self.weights_dir, device=self.device)
            except AssetMissingError as exc:
                self.fan_error = exc
        return self._fan

    def detection_image(self, rgb: np.ndarray, source: Path | None) -> np.ndarray:
        """LPFF runs dlib on ``dlib.load_rgb_image``'s pixels: a photo with alpha is blended over black."""
        from fk_align.detection import dlib_loader_rgb

        view = dlib_loader_rgb(source) if source is not None and Path(source).is_file() else None
        return rgb if view is None or view.shape != rgb.shape else view

    def detect(self, rgb: np.ndarray) -> list[Face]:
        faces = self.dlib.detect(rgb)
        if not faces and self.fallback and (fan := self.fan()) is not None:
            faces = fan_on_shrunk(fan.detect, rgb, self.max_side)
        for f in faces:
            f.detector = f"{self.name}/{f.detector}"
        return faces

    def no_face_hint(self) -> str:
        if self.fallback and self.fan_error is not None:
            return f"dlib found none, and the face-alignment fallback could not run: {self.fan_error}"
        return super().no_face_hint()
