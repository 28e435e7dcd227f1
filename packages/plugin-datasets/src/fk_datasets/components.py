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


def _face_from_points(points: np.ndarray, image: np.ndarray, detector: str, keep_dtype: bool = False) -> Face:
    pts = np.asarray(points) if keep_dtype else np.asarray(points, dtype=np.float64)
    box = np.array([*pts.min(0), *pts.max(0)], dtype=np.float64)
    return Face(box=box, score=1.0, landmarks=pts, image_size=tuple(image.shape[:2]), detector=detector)


class RealignedFace:
    """``crop:lpff-realigned``: the 2400^2 realigned image and its landmarks as (image, face, face5).

    ``face5`` holds the 5 points as LPFF's ``2_predict_camera_parameter.py`` gets them: the
    ``detections/*.txt`` values read back as float32 (``np.loadtxt(...).astype(np.float32)``),
    which is what its Deep3D 224 crop is cut from.
    """

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        from fk.landmarks import five_from_68

        crop = inputs["crop"]
        if crop.landmarks is None:
            raise InputError(f"{ctx.key}: the realigned crop carries no landmarks")
        five = np.asarray(five_from_68(np.asarray(crop.landmarks, np.float64)), dtype=np.float32)
        return {"image": crop.image, "face": _face_from_points(crop.landmarks, crop.image, "lpff-realign"),
                "face5": _face_from_points(five, crop.image, "lpff-realign/detections", keep_dtype=True)}


LM_MAPS = ("lpff", "exact")


def model_landmarks_in_source(recon: Any, lm_map: str = "lpff") -> np.ndarray:
    """The model's 68 landmarks in the image its Deep3D crop was cut from (LPFF's ``lm_5p_pred``).

    ``lpff``: LPFF's approximate ``inverse_transformation`` (:func:`fk.cameras.deep3d.lpff_lm_5p_pred`),
    what LPFF's later crops are cut from; ``exact``: the crop's exact pixel map (an fk option).
    """
    from fk.cameras.deep3d import lpff_lm_5p_pred

    lm = np.asarray(recon.landmarks, dtype=np.float64)
    if lm_map == "exact":
        return recon.crop.to_source(lm)
    trans = (recon.crop.params or {}).get("trans_params")
    if trans is None:
        raise InputError("lm_map: lpff needs the Deep3D crop's trans_params (crop:deep3d)")
    size = int((recon.crop.params or {}).get("target_size", 224))
    return lpff_lm_5p_pred(lm, np.asarray(trans, np.float64), size)


class ModelFace:
    """``crop:lpff-model-face``: the fitted model's 68 landmarks, mapped back to the image the
    Deep3D crop was cut from (LPFF's ``lm_5p_pred``), as a face for the EG3D/StyleGAN crops."""

    def __init__(self, lm_map: str = "lpff", **_: Any) -> None:
        if lm_map not in LM_MAPS:
            raise InputError(f"crop:lpff-model-face: lm_map must be one of {LM_MAPS}, got {lm_map!r}")
        self.lm_map = lm_map

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        points = model_landmarks_in_source(inputs["recon"], self.lm_map)
        image = inputs["image"]
        return {"face": _face_from_points(points, np.asarray(image), "model")}


CAMERA_SOURCES = ("rnet", "fit-fallback")


class LpffCamera:
    """``reconstruct:lpff-camera``: LPFF's camera, R-Net's regression unchanged (``reconstruct:deep3d``)
    when its checkpoint is present; otherwise the named fallback ``fit:deep3d``, labelled as such.

    A fallback fit whose landmark RMS is above ``flag_rmse`` is kept and flagged for review
    (``{face}.json`` in the step's folder, ``realign/camera/`` in the lpff recipe), never
    dropped: large poses are what LPFF exists for.
    """

    def __init__(self, checkpoint: str | None = None, fallback: str = "fit", fit_iterations: int = 20,
                 flag_rmse: float = 12.0, model: str = "auto", renderer: str = "auto", device: str = "cpu",
                 threads: int = 1, **_: Any) -> None:
        if fallback not in ("fit", "none"):
            raise InputError(f"reconstruct:lpff-camera: fallback must be 'fit' or 'none', got {fallback!r}")
        self.checkpoint, self.fallback = checkpoint, fallback
        self.fit_iterations, self.flag_rmse = int(fit_iterations), float(flag_rmse)
        self.common = {"model": model, "renderer": renderer, "device": device, "threads": threads}
        self._runner: Any = None
        self.source = ""

    def _checkpoint(self) -> str | None:
        if self.checkpoint:
            return self.checkpoint
        from fk.assets import asset_path

        path = asset_path("deep3d/epoch_20.pth")
        return str(path) if path.exists() else None

    def runner(self) -> Any:
        if self._runner is None:
            from fk.plugins import get_plugin_manager

            pm = get_plugin_manager()
            ckpt = self._checkpoint()
            if ckpt is not None:
                self.source = "rnet"
                factory = pm.component("reconstruct:deep3d").load_factory()
                self._runner = factory(checkpoint=ckpt, iterations=0, **self.common)
            elif self.fallback == "fit":
                self.source = "fit-fallback"
                factory = pm.component("fit:deep3d").load_factory()
                self._runner = factory(iterations=self.fit_iterations, init="mean", max_rmse=0.0,
                                       **self.common)
            else:
                from fk.assets import require_asset

                require_asset("deep3d/epoch_20.pth")
        return self._runner

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        runner = self.runner()
        crop = inputs["crop"]
        face = inputs.get("face")
        if self.source == "fit-fallback" and face is not None and np.shape(crop.landmarks) != (68, 2):
            # the fit needs 68 points in the crop; R-Net needs none (the crop is cut from 5)
            from dataclasses import replace

            crop = replace(crop, landmarks=crop.to_crop(np.asarray(face.landmarks, np.float64)))
        recon = runner({**inputs, "crop": crop}, ctx)["recon"]
        rmse = recon.extra.get("landmark_rmse") if isinstance(recon.extra, dict) else None
        record = {"face": ctx.key, "source": self.source,
                  "landmark_rmse": None if rmse is None else float(rmse), "flag": None}
        if self.source == "fit-fallback":
            record["note"] = ("fk's fit:deep3d, not LPFF's camera: deep3d/epoch_20.pth is missing, so "
                              "R-Net's regression could not run (fk doctor says where it goes)")
            if rmse is None or not np.isfinite(rmse) or rmse > self.flag_rmse:
                record["flag"] = f"poor camera fit: landmark RMS {rmse:.1f} px > {self.flag_rmse:g}"
                ctx.log(f"{ctx.key}: {record['flag']} (kept, flagged for review)")
        recon.extra = {**(recon.extra or {}), "camera_source": self.source}
        ctx.write_json(f"{ctx.key}.json", record)
        return {"recon": recon}


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

    def __init__(self, lm_map: str = "lpff", **_: Any) -> None:
        if lm_map not in LM_MAPS:
            raise InputError(f"export:lpff-layout: lm_map must be one of {LM_MAPS}, got {lm_map!r}")
        self.lm_map = lm_map

    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        key = ctx.key
        record = dict(inputs["density"])
        realign = inputs["realign"]
        recon = inputs["recon"]
        label = np.asarray(inputs["label"], dtype=np.float64).reshape(25)
        ctx.save_image(f"realign/{key}.png", realign.image, compress_level=1)
        from fk.io.coeffs import lpff_coeff_npy

        ctx.write_bytes(f"epoch_20_000000/{key}.npy", lpff_coeff_npy(recon.coeffs, recon.landmarks))
        ctx.save_npy(f"lm_5p_pred/{key}.npy", model_landmarks_in_source(recon, self.lm_map))
        record["camera"] = (recon.extra or {}).get("camera_source", "unknown")
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
        cameras = inputs.get("cameras") or {}
        sources = {k: (cameras.get(k) or {}).get("camera", "unknown") for k in kept}
        ctx.write_json("camera_parameters/metadata.json", {
            "camera_source": sources,
            "note": {"rnet": "Deep3D R-Net's regression, unchanged, as LPFF",
                     "fit-fallback": "fk's fit:deep3d (no deep3d/epoch_20.pth): not LPFF's camera"},
        })
        summary = {"kept": sorted(kept), "rejected_in_review": sorted(rejected & set(labels)),
                   "camera_source": dict(sorted(sources.items())),
                   "filtered": sorted(k for k, r in records.items() if not r.get("keep")),
                   "faces": dict(sorted(records.items()))}
        ctx.write_json("density_filter.json", summary)
        return {"camera_parameters": str(Path(path).relative_to(ctx.run_dir)), "summary": summary}
