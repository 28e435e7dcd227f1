"""The ``crop`` components: thin runners around the pure functions of ffhq, realign, deep3d_align, eg3d_crop.

Each takes ``image`` (a path or an array) and ``face`` (a :class:`fk.types.Face` with
68 landmarks, or a bare (68, 2) array; ``crop:deep3d`` and ``crop:eg3d`` also take 5 points,
as Deep3D's own inference does) and returns ``crop``: a :class:`fk.types.Crop`
with the exact ``crop_from_source`` and the landmarks in crop pixels. ``save`` writes
``{key}.png``; ``debug`` writes ``debug/{key}.png`` (landmarks and crop outline on the photo).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from fk.errors import InputError
from fk.types import Crop, Face, apply_homography

from fk_align.detection import load_input_image
from fk_align.landmarks import check_landmarks68, five_from_68, format_five_points


def face_landmarks(face: Any, allow_five: bool = False) -> tuple[np.ndarray, Face | None]:
    """The landmarks of the ``face`` port's value (a Face or an array): (68, 2) float64, or with
    ``allow_five`` also (5, 2) five points, whose dtype is kept (float32 5 points are what
    Deep3D's ``test.py`` and LPFF read from ``detections/*.txt``)."""
    pts = face.landmarks if isinstance(face, Face) else face
    if isinstance(face, Face) and pts is None:
        raise InputError(
            f"face {face.index} from detect:{face.detector} has no landmarks",
            hint="use a detector that gives 68 landmarks (detect:dlib, detect:lpff...)",
        )
    name = "face.landmarks" if isinstance(face, Face) else "face"
    if allow_five and np.shape(pts) == (5, 2):
        arr = np.asarray(pts)
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)):
            arr = np.asarray(arr, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name}: five points contain NaN or inf")
        return arr, face if isinstance(face, Face) else None
    if allow_five and np.shape(pts) != (68, 2):
        raise InputError(
            f"{name}: expected 68 landmarks or 5 points (x, y), got shape {np.shape(pts)}",
            hint="5 points: eye centres, nose tip, mouth corners (Deep3D's detections/*.txt order)",
        )
    return check_landmarks68(pts, name=name), face if isinstance(face, Face) else None


class CropRunner:
    method = ""
    accepts_five = False  # Deep3D's align_img (and EG3D's crop built on it) works from 5 points

    def __init__(self, save: bool = True, debug: bool = False) -> None:
        self.save = bool(save)
        self.debug = bool(debug)

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray) -> Crop:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_extras(self, crop: Crop, ctx: Any) -> None:
        """Method-specific files beside ``{key}.png`` (none by default)."""

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        rgb, _ = load_input_image(inputs["image"])
        lm, face = face_landmarks(inputs["face"], allow_five=self.accepts_five)
        crop = self.crop(rgb, lm)
        crop.face = face
        if self.save:
            ctx.save_image(f"{ctx.key}.png", crop.image)
        self.write_extras(crop, ctx)
        if self.debug:
            from fk_align.overlay import draw_crop

            ctx.save_image(f"debug/{ctx.key}.png", draw_crop(rgb, crop))
        return {"crop": crop}


class FfhqCrop(CropRunner):
    """``crop:ffhq``: official FFHQ alignment, or LPFF's StyleGAN variant (``border: lpff``)."""

    method = "ffhq"

    def __init__(
        self,
        size: int = 1024,
        transform_size: int = 4096,
        border: str = "ffhq",
        padding: bool = True,
        **kw: Any,
    ) -> None:
        from fk_align.ffhq import FFHQ, LPFF_STYLEGAN

        super().__init__(**kw)
        if border not in ("ffhq", "lpff"):
            raise InputError(f"crop:ffhq: border must be 'ffhq' or 'lpff', got {border!r}")
        base = FFHQ if border == "ffhq" else LPFF_STYLEGAN
        self.settings = replace(
            base,
            output_size=int(size),
            transform_size=max(int(transform_size), int(size)),
            enable_padding=bool(padding),
        )

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray) -> Crop:
        from fk_align.ffhq import ffhq_align

        res = ffhq_align(rgb, landmarks, self.settings)
        return Crop(
            image=res.image,
            crop_from_source=res.crop_from_source,
            landmarks=apply_homography(res.crop_from_source, landmarks),
            method=self.method,
            params={
                "quad": res.quad.tolist(),
                "qsize": res.qsize,
                "border_fraction": self.settings.border_fraction,
                "border_min": self.settings.border_min,
            },
        )


class LpffRealignCrop(CropRunner):
    """``crop:lpff-realign``: LPFF's 2400^2 realignment; writes ``detections/{key}.txt`` (5 points) too."""

    method = "lpff-realign"

    def __init__(
        self,
        size: int = 2400,
        min_crop: int = 512,
        write_detections: bool = True,
        landmark_map: str = "lpff",
        **kw: Any,
    ) -> None:
        from fk_align.realign import LANDMARK_MAPS, LPFF_REALIGN

        super().__init__(**kw)
        self.settings = replace(LPFF_REALIGN, output_size=int(size), min_crop_size=int(min_crop))
        self.write_detections = bool(write_detections)
        if landmark_map not in LANDMARK_MAPS:
            raise InputError(
                f"crop:lpff-realign: landmark_map must be one of {LANDMARK_MAPS}, got {landmark_map!r}"
            )
        self.landmark_map = landmark_map

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray) -> Crop:
        from fk_align.realign import lpff_realign

        res = lpff_realign(rgb, landmarks, self.settings, landmark_map=self.landmark_map)
        return Crop(
            image=res.image,
            crop_from_source=res.crop_from_source,
            landmarks=res.landmarks,
            method=self.method,
            params={"quad": res.quad.tolist(), "landmark_map": self.landmark_map},
        )

    def write_extras(self, crop: Crop, ctx: Any) -> None:
        if self.write_detections:
            text = format_five_points(five_from_68(crop.landmarks), style="repr")
            ctx.write_text(f"detections/{ctx.key}.txt", text)


class Deep3DCrop(CropRunner):
    """``crop:deep3d``: Deep3DFaceRecon's ``align_img`` (224 crop, 102 px/dm); ``params['trans_params']``.

    ``lm3d``: a ``similarity_Lm3D_all.mat`` whose 5 reduced points replace Deep3D's standard ones
    (FFHQ-UV aligns against its HiFi3D++ ``topo_assets`` copy). ``params['resized']`` and ``['box']``
    are the resize and crop applied, so masks can follow the photo exactly (Pillow resize, then crop).
    """

    method = "deep3d"
    accepts_five = True

    def __init__(
        self, size: int = 224, rescale_factor: float = 102.0, lm3d: str | None = None, **kw: Any
    ) -> None:
        from fk_align.deep3d_align import load_lm3d

        super().__init__(**kw)
        self.size = int(size)
        self.rescale_factor = float(rescale_factor)
        self.lm3d = str(lm3d or "")
        self.points3d = load_lm3d(self.lm3d) if self.lm3d else None

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray) -> Crop:
        from fk_align.deep3d_align import align_img, crop_geometry

        res = align_img(rgb, landmarks, target_size=self.size, rescale_factor=self.rescale_factor,
                        points3d=self.points3d)  # fmt: skip
        return Crop(
            image=res.image,
            crop_from_source=res.crop_from_source,
            landmarks=res.landmarks,
            method=self.method,
            params={
                "trans_params": res.trans_params.tolist(),
                "target_size": self.size,
                "rescale_factor": self.rescale_factor,
                "box": list(res.box),
                "resized": list(crop_geometry(res.trans_params, self.size)[0]),
                "lm3d": self.lm3d or "deep3d-standard",
            },
        )


class Eg3dCrop(CropRunner):
    """``crop:eg3d``: EG3D's in-the-wild crop (align_img 1024 at rescale 300, centre 700, Lanczos 512)."""

    method = "eg3d"
    accepts_five = True

    def __init__(self, size: int = 512, **kw: Any) -> None:
        super().__init__(**kw)
        self.size = int(size)

    def crop(self, rgb: np.ndarray, landmarks: np.ndarray) -> Crop:
        from fk_align.eg3d_crop import eg3d_crop

        res = eg3d_crop(rgb, landmarks, output_size=self.size)
        return Crop(
            image=res.image,
            crop_from_source=res.crop_from_source,
            landmarks=res.landmarks,
            method=self.method,
            params={"trans_params": res.trans_params.tolist(), "output_size": self.size},
        )
