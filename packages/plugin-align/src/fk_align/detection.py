"""What every fk_align detector shares: ordering, naming, filtering, the no-face error and the landmark files.

A detector runner implements ``detect(rgb) -> list[Face]`` (the detector's own order,
source pixels); :class:`DetectorRunner` turns that into the component protocol: load
the image, keep faces at least ``min_face`` px, order and name them (``naming``), cap
at ``max_faces``, raise :class:`fk.errors.NoFaceError` when none is left, and write the
seeds' landmark files and a debug overlay on request.

Naming (each face becomes a child item ``{photo}_{suffix}``):
    - ``fk`` (default): largest face first, suffixes 00, 01, ...
    - ``lpff``: the detector's own order (dlib's), suffixes 01, 02, ... as LPFF's
      ``0_get_landmarks.py`` names its ``lm_facealignment_dlib/{stem}_{NN}.npy`` files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import InputError, NoFaceError
from fk.types import Face

from fk_align.landmarks import five_from_68, format_five_points


def load_input_image(value: Any) -> tuple[np.ndarray, Path | None]:
    """The ``image`` port's value (a path or an array) as (H, W, 3) uint8 RGB, plus its path if any."""
    from fk.io import as_rgb

    source = Path(value) if isinstance(value, (str, os.PathLike)) else None
    return as_rgb(value), source


def dlib_loader_rgb(path: Path) -> np.ndarray | None:
    """The RGB pixels ``dlib.load_rgb_image`` gives for a photo with alpha, or None without alpha.

    dlib blends each pixel over black: kept as is where alpha is 255, else (c * alpha) >> 8
    (measured against dlib's loader). LPFF and FFHQ ran dlib on those pixels while cropping
    Pillow's ``convert("RGB")`` (alpha dropped), so their landmarks come from this view.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        if not (im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)):
            return None
        rgba = np.asarray(ImageOps.exif_transpose(im).convert("RGBA")).astype(np.uint16)
    rgb, alpha = rgba[:, :, :3], rgba[:, :, 3:]
    return np.where(alpha == 255, rgb, (rgb * alpha) >> 8).astype(np.uint8)


def face_sort_key(face: Face) -> tuple[float, float, float, float]:
    """Largest box first; ties by higher score, then left to right, top to bottom."""
    x0, y0, x1, y1 = (float(v) for v in face.box)
    return (-(x1 - x0) * (y1 - y0), -float(face.score), x0, y0)


def clip_box(box: Any, image_size: tuple[int, int]) -> np.ndarray:
    """(x0, y0, x1, y1) clipped to the image's pixel centres [0, W-1] x [0, H-1]."""
    h, w = image_size
    b = np.asarray(box, dtype=np.float64).copy()
    b[[0, 2]] = np.clip(b[[0, 2]], 0.0, w - 1.0)
    b[[1, 3]] = np.clip(b[[1, 3]], 0.0, h - 1.0)
    return b


NAMINGS = ("fk", "lpff")


def order_faces(faces: list[Face], min_face: int = 0, max_faces: int = 0, naming: str = "fk") -> list[Face]:
    """Drop faces whose box is under ``min_face`` px on its shorter side, order them (largest
    first for ``naming="fk"``, the detector's order for ``"lpff"``), keep at most ``max_faces``
    (0: all), and number and name them (``Face.index``, ``Face.key_suffix``)."""
    if naming not in NAMINGS:
        raise InputError(f"naming must be one of {NAMINGS}, got {naming!r}")
    kept = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= min_face]
    if naming == "fk":
        kept.sort(key=face_sort_key)
    if max_faces and max_faces > 0:
        kept = kept[:max_faces]
    for i, f in enumerate(kept):
        f.index = i
        f.key_suffix = f"{i + 1:02d}" if naming == "lpff" else f"{i:02d}"
    return kept


def face_key(item_key: str, face: Face) -> str:
    """The child item name the engine gives ``face``: ``{stem}_{key_suffix}``."""
    return f"{item_key}_{face.key_suffix or f'{face.index:02d}'}"


class DetectorRunner:
    """Base of the detector components (subclasses set ``name`` and implement ``detect``)."""

    name = ""

    def __init__(
        self,
        min_face: int = 0,
        max_faces: int = 0,
        write_landmarks: bool = False,
        debug: bool = False,
        naming: str = "fk",
    ) -> None:
        if naming not in NAMINGS:
            raise InputError(f"detect:{self.name}: naming must be one of {NAMINGS}, got {naming!r}")
        self.naming = naming
        self.min_face = int(min_face or 0)
        self.max_faces = int(max_faces or 0)
        self.write_landmarks = bool(write_landmarks)
        self.debug = bool(debug)

    def detect(self, rgb: np.ndarray) -> list[Face]:  # pragma: no cover - abstract
        raise NotImplementedError

    def no_face_hint(self) -> str:
        return "check that the photo shows a face at least ~80 px wide; try upsample: 2 for small faces"

    def find_faces(self, image: Any) -> list[Face]:
        """Detect, filter and order the faces of one image (a path or an array); raise NoFaceError if none."""
        rgb, source = load_input_image(image)
        return self._find(rgb, source)

    def detection_image(self, rgb: np.ndarray, source: Path | None) -> np.ndarray:
        """The pixels the detector sees (the photo as loaded, unless a detector reads files its own way)."""
        return rgb

    def _find(self, rgb: np.ndarray, source: Path | None) -> list[Face]:
        found = self.detect(self.detection_image(rgb, source))
        faces = order_faces(found, self.min_face, self.max_faces, self.naming)
        for f in faces:
            f.source = source
        if not faces:
            where = source if source is not None else "image"
            why = f" ({len(found)} smaller than min_face={self.min_face} px)" if found else ""
            raise NoFaceError(f"{where}: no face found by detect:{self.name}{why}", hint=self.no_face_hint())
        return faces

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        rgb, source = load_input_image(inputs["image"])
        faces = self._find(rgb, source if source is not None else getattr(ctx, "source", None))
        if self.write_landmarks:
            for f in faces:
                key = face_key(ctx.key, f)
                if f.landmarks is not None:
                    ctx.save_npy(f"{key}.npy", np.asarray(f.landmarks, dtype=np.float64))
                five = f.keypoints if f.landmarks is None else five_from_68(f.landmarks)
                if five is not None:
                    ctx.write_text(f"detections/{key}.txt", format_five_points(five))
            # boxes and scores for review (LPFF keeps every dlib box; weak ones get a flag, not a drop)
            ctx.write_json(
                f"faces/{ctx.key}.json",
                {
                    face_key(ctx.key, f): {
                        "box": [float(v) for v in f.box],
                        "score": float(f.score),
                        "detector": f.detector,
                    }
                    for f in faces
                },
            )
        if self.debug:
            from fk_align.overlay import draw_faces

            ctx.save_image(f"debug/{ctx.key}.png", draw_faces(rgb, faces))
        return {"faces": faces}


class FivePointFile:
    """``detect:five-points``: the face of a Deep3D-style folder, from ``detections/{stem}.txt``.

    Deep3D's ``test.py`` pairs ``{root}/{stem}.png|jpg`` with ``{root}/detections/{stem}.txt``
    (5 lines ``x y``: eye centres, nose tip, mouth corners, image pixels) and reads the points
    as float32; so does this step, so ``crop:deep3d`` gives ``test.py``'s crop. One face per
    image, keyed by the image's name as ``test.py`` names its outputs.
    """

    def __init__(self, folder: str = "detections", **_: Any) -> None:
        self.folder = folder

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        from fk.errors import InputError

        from fk_align.landmarks import read_five_points

        value = inputs["image"]
        if not isinstance(value, (str, os.PathLike)):
            raise InputError("detect:five-points needs the image's path (a deep3d-folder or images input)")
        image = Path(value)
        txt = image.parent / self.folder / f"{image.stem}.txt"
        if not txt.is_file():
            raise InputError(
                f"{txt} is not found",
                hint="Deep3D's layout: detections/{stem}.txt beside each image (5 lines 'x y'); "
                "write one with any 5-point detector (detect:mtcnn) or detect:dlib",
            )
        points = read_five_points(txt).astype(np.float32)
        rgb, _ = load_input_image(image)
        h, w = rgb.shape[:2]
        box = np.array([*points.min(0), *points.max(0)], dtype=np.float64)
        face = Face(box=box, score=1.0, landmarks=points, image_size=(h, w), source=image,
                    detector="five-points")
        return {"face": face}
