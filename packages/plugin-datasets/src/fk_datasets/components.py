"""Runners behind the datasets plugin's components (see ``plugin.py`` for their ports).

They glue the align and deep3d components into LPFF's pipeline and write LPFF's folder
tree (``lpff.md`` section 1.1) under the step's folder (``dir: realign`` in the recipe):

    realign/{face}.png  (kept)   bad_re_align/{face}.png (filtered: density >= 0.4)
    detections/{face}.txt        (written by crop:lpff-realign in the same folder)
    epoch_20_000000/{face}.npy   lm_5p_pred/{face}.npy   debug/{face}.png
    crop/eg3d/{face}.png         crop/stylegan/{face}.png
    camera_parameters/{face}.npy camera_parameters/camera_parameters.json
    density_filter.json          every face with its density and decision
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fk.errors import InputError
from fk.types import Face


def _face_from_points(points: np.ndarray, image: np.ndarray, detector: str) -> Face:
    pts = np.asarray(points, dtype=np.float64)
    box = np.array([*pts.min(0), *pts.max(0)])
    return Face(box=box, score=1.0, landmarks=pts, image_size=tuple(image.shape[:2]), detector=detector)


class RealignedFace:
    """``crop:lpff-realigned``: the 2400^2 realigned image and its landmarks as (image, face)."""

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        crop = inputs["crop"]
        if crop.landmarks is None:
            raise InputError(f"{ctx.key}: the realigned crop carries no landmarks")
        return {"image": crop.image, "face": _face_from_points(crop.landmarks, crop.image, "lpff-realign")}


class ModelFace:
    """``crop:lpff-model-face``: the fitted model's 68 landmarks, mapped back to the image the
    Deep3D crop was cut from (LPFF's ``lm_5p_pred``), as a face for the EG3D/StyleGAN crops."""

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        recon = inputs["recon"]
        points = recon.crop.to_source(np.asarray(recon.landmarks, dtype=np.float64))
        image = inputs["image"]
        return {"face": _face_from_points(points, np.asarray(image), "model")}


class DensityStep:
    """``evaluate:lpff-density``: density of the face's camera in FFHQ, and whether LPFF keeps it.

    A filtered face (FFHQ-like, density >= threshold) goes to ``bad_re_align/{face}.png``, as in
    LPFF, and stops there: ``ItemFiltered`` skips its crops without counting as a failure.
    """

    def __init__(self, ffhq_labels: str | None = None, threshold: float = 0.4, ffhq_kde: str | None = None,
                 **_: Any) -> None:
        from fk_datasets.density_filter import DensityFilter

        if ffhq_kde:
            self.filter = DensityFilter.from_kde_pickle(Path(ffhq_kde), threshold)
        else:
            self.filter = DensityFilter.from_ffhq_labels(Path(ffhq_labels) if ffhq_labels else None, threshold)

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        from fk.errors import ItemFiltered

        label = inputs["label"]
        if label is None:
            raise InputError(f"{ctx.key}: no camera label to filter")
        record = self.filter.decide(np.asarray(label, dtype=np.float64))[0]
        record["face"] = ctx.key
        ctx.write_json(f"density/{ctx.key}.json", record)
        if not record["keep"]:
            realign = inputs.get("realign")
            if realign is not None:
                ctx.save_image(f"bad_re_align/{ctx.key}.png", realign.image, compress_level=1)
            why = (f"density {record['density']:.3f} >= {self.filter.threshold}" if record["density"] is not None
                   else "inside the approximate 0.4 contour (no kde.pkl or FFHQ labels given)")
            raise ItemFiltered(f"FFHQ-like pose: {why}",
                               details={"density": record["density"], "criterion": record.get("criterion")},
                               outputs={"record": record, "keep": False})
        return {"record": record, "keep": True}


class LpffLayout:
    """``export:lpff-layout``: write one kept face into LPFF's folder tree, and hand its label
    and record to the run-scope step (filtered faces stop at ``evaluate:lpff-density``)."""

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        key = ctx.key
        record = dict(inputs["density"])
        realign = inputs["realign"]
        recon = inputs["recon"]
        label = np.asarray(inputs["label"], dtype=np.float64).reshape(25)
        ctx.save_image(f"realign/{key}.png", realign.image, compress_level=1)
        coeffs = {k: np.asarray(v) for k, v in recon.coeffs.items()}
        coeffs["lm68"] = np.asarray(recon.landmarks)
        ctx.save_npy(f"epoch_20_000000/{key}.npy", np.array(coeffs, dtype=object), allow_pickle=True)
        ctx.save_npy(f"lm_5p_pred/{key}.npy", recon.crop.to_source(np.asarray(recon.landmarks, np.float64)))
        debug = (inputs.get("debug") or {}).get("png")
        if debug:
            ctx.write_bytes(f"debug/{key}.png", Path(ctx.run_path(debug)).read_bytes())
        for name in ("eg3d", "stylegan"):
            crop = inputs.get(name)
            if crop is not None:
                ctx.save_image(f"crop/{name}/{key}.png", crop.image)
        ctx.save_npy(f"camera_parameters/{key}.npy", label)
        return {"label": label, "record": record}


class CameraParameters:
    """``export:lpff-camera-parameters`` (run scope): ``camera_parameters.json`` of the kept
    faces not rejected in review, and ``density_filter.json`` with every face's decision."""

    def __init__(self, rejects: str | None = None, **_: Any) -> None:
        self.rejects = rejects

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        from fk_datasets.labels import camera_parameters_text, read_rejects

        labels = inputs.get("labels") or {}
        records = inputs.get("records") or {}
        rejects_path = Path(self.rejects) if self.rejects else ctx.run_path("review/rejects.json")
        rejected = read_rejects(rejects_path)
        kept = {k: np.asarray(v, dtype=np.float64) for k, v in sorted(labels.items())
                if v is not None and k not in rejected}
        path = ctx.write_text("camera_parameters/camera_parameters.json", camera_parameters_text(kept))
        summary = {"kept": sorted(kept), "rejected_in_review": sorted(rejected & set(labels)),
                   "filtered": sorted(k for k, r in records.items() if not r.get("keep")),
                   "faces": dict(sorted(records.items()))}
        ctx.write_json("density_filter.json", summary)
        return {"camera_parameters": str(Path(path).relative_to(ctx.run_dir)), "summary": summary}
