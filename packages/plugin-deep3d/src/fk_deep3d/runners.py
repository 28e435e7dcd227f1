"""Runners behind ``reconstruct:deep3d`` and ``fit:deep3d`` (the engine's runtime protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from fk.errors import FkError, InputError
from fk.types import Crop, Reconstruction

from fk_deep3d.choose import choose_model, resolve_checkpoint, resolve_device
from fk_deep3d.constants import CHECKPOINT_ASSET

# A fit whose model landmarks sit this far (RMS, crop pixels) from the detected ones failed.
MAX_LANDMARK_RMSE = 12.0


def _check_crop(crop: Any) -> Crop:
    if not isinstance(crop, Crop):
        raise InputError(f"deep3d expects a Crop from crop:deep3d, got {type(crop).__name__}",
                         hint="wire `crop: <crop step>.crop` with use: crop:deep3d")
    if np.asarray(crop.image).shape != (224, 224, 3):
        raise InputError(f"deep3d expects a 224×224 crop, got {np.asarray(crop.image).shape}",
                         hint="use crop:deep3d (size 224)")
    return crop


def rnet_coeffs(net, crop: Crop, device: torch.device, threads: int = 0) -> torch.Tensor:
    """(1, 257) R-Net prediction for a crop (RGB in [0, 1], NCHW) on ``threads`` torch threads (0: as set)."""
    from fk_deep3d.fit import torch_threads

    x = torch.as_tensor(np.array(crop.image), dtype=torch.float32, device=device).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad(), torch_threads(threads):
        return net(x).cpu()


def coeffs_for_model(model, rnet: torch.Tensor) -> torch.Tensor:
    """R-Net's 257 coefficients in ``model``'s layout: all of them for BFM-sized models, else pose and light."""
    from fk.nets.reconnet import split_coeffs

    parts = split_coeffs(rnet)
    if model.n_coeffs == 257:
        return rnet.to(model.dtype)
    keep = {k: parts[k].to(model.dtype) for k in ("angle", "gamma", "trans")}
    return model.join_coeffs(keep)


def reconstruction(model, coeffs: torch.Tensor, out: dict[str, torch.Tensor], crop: Crop,
                   extra: dict[str, Any]) -> Reconstruction:
    from fk.cameras.deep3d import eg3d_label_from_deep3d

    parts = {k: v[0].detach().cpu().double().numpy() for k, v in model.split_coeffs(coeffs).items()}
    uvs, uv_faces, _ = model.uv_layout()
    return Reconstruction(
        model=model.name, coeffs=parts,
        vertices=out["vertices_world"][0].detach().cpu().double().numpy(),
        triangles=model.triangles.cpu().numpy(),
        colors=out["colors"][0].detach().clamp(0, 1).cpu().double().numpy(),
        landmarks=out["landmarks_2d"][0].detach().cpu().double().numpy(),
        crop=crop, camera_label=eg3d_label_from_deep3d(parts["angle"], parts["trans"]),
        uvs=uvs, uv_faces=uv_faces,
        extra=extra,
    )


class _Base:
    def __init__(self, model: str = "auto", renderer: str = "auto", device: str = "cpu", iterations: int = 0,
                 checkpoint: str | None = None, threads: int = 1):
        self.threads = int(threads if threads is not None else 1)
        self.model_name = model or "auto"
        self.renderer = renderer or "auto"
        self.device_name = device
        self.iterations = int(iterations or 0)
        self.checkpoint = checkpoint
        self._model = None
        self._net = None
        self._fitters: dict[str, Any] = {}

    def warm(self) -> None:
        """Before the first item (the engine calls this once per process): the face model on the CPU,
        the fit's solvers, and the CPU renderer's compiled kernels (loaded from numba's cache, compiled
        into it on the very first run), so the first item costs what every other item costs."""
        import fk.geometry.pnp  # noqa: F401  (the pose from landmarks)
        import fk.render as dr
        import scipy.optimize  # noqa: F401  (the landmark stage's least squares)

        if (self.device_name or "cpu") == "cpu":
            self.model(torch.device("cpu"))
        glctx = dr.get_context(self.renderer)
        if getattr(glctx, "backend", None) == "cpu":  # one triangle, forward and backward, as the fit renders
            pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]],
                               requires_grad=True)
            tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
            rast, _ = dr.rasterize(glctx, pos, tri, (8, 8))
            colour, _ = dr.interpolate(pos[..., :3].contiguous(), rast, tri)
            colour.sum().backward()

    def model(self, device: torch.device):
        if self._model is None:
            self._model = choose_model(self.model_name).to(device)
        return self._model

    def net(self, path: Path, device: torch.device):
        if self._net is None:
            from fk.nets.reconnet import load_reconnet

            self._net = load_reconnet(path, device)
        return self._net

    def fitter(self, model, renderer: str, identity: Any = None):
        from fk_deep3d.fit import Fitter

        key = renderer
        if key not in self._fitters:
            self._fitters[key] = Fitter(model, iterations=self.iterations, renderer=renderer, identity=identity,
                                        threads=self.threads)
        return self._fitters[key]

    def _renderer(self, ctx) -> str:
        return ctx.options.get("renderer", "auto") if self.renderer == "auto" else self.renderer

    def _finish(self, model, result, crop: Crop, ctx, extra: dict[str, Any]) -> dict[str, Any]:
        limit = getattr(self, "max_rmse", MAX_LANDMARK_RMSE)  # 0: keep every finite fit (the caller flags)
        if not np.isfinite(result.landmark_rmse) or (limit > 0 and result.landmark_rmse > limit):
            raise FkError(f"{ctx.key}: the fit failed (landmark RMS {result.landmark_rmse:.1f} px > "
                          f"{limit:g})", hint="check the detection; profile faces beyond ~80° fail")
        extra = {**extra, "landmark_rmse": result.landmark_rmse, "seconds": result.seconds,
                 "history": result.history}
        ctx.log(f"{model.name}: landmark RMS {result.landmark_rmse:.2f} px, "
                + ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))
        return {"recon": reconstruction(model, result.coeffs, result.output, crop, extra)}


def reconstruct_preflight(params: dict[str, Any]) -> list[str]:
    """``reconstruct:deep3d``'s check before a run: the checkpoint is there, or the fallback is said once."""
    fallback = params.get("fallback") or "none"
    if params.get("checkpoint") or resolve_checkpoint(None, required=fallback == "none") is not None:
        return []
    return [f"{CHECKPOINT_ASSET} is absent: fk's fit:deep3d ({int(params.get('fit_iterations') or 0)} "
            "photometric iterations from the mean face) stands in for R-Net, labelled 'fit-fallback' in each "
            "reconstruction; these are not Deep3D's numbers (`fk doctor` says where the checkpoint goes)"]


class ReconstructRunner(_Base):
    """R-Net regression (needs the checkpoint); optional photometric refinement.

    ``fallback: fit`` runs fk's fit:deep3d instead when the checkpoint is absent. The fit needs 68
    landmarks in the crop; a crop cut from 5 points (Deep3D's ``detections/*.txt``) gets them from the
    registry's ``detect:dlib`` on the 224² crop, the face nearest the crop's centre.
    """

    def __init__(self, model: str = "auto", renderer: str = "auto", device: str = "cpu", iterations: int = 0,
                 checkpoint: str | None = None, threads: int = 1, fallback: str = "none",
                 fit_iterations: int = 40):
        super().__init__(model, renderer, device, iterations, checkpoint, threads)
        if fallback not in ("none", "fit"):
            raise InputError(f"reconstruct:deep3d: fallback must be 'none' or 'fit', got {fallback!r}")
        self.fallback = fallback
        self.fit_iterations = int(fit_iterations)
        self._fallback_fit: FitRunner | None = None
        self._landmarker: Any = None

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        crop = _check_crop(inputs["crop"])
        ckpt = resolve_checkpoint(self.checkpoint, required=self.fallback == "none")
        if ckpt is None:
            return self._fit_fallback(crop, ctx)
        device = resolve_device(self.device_name, ctx.options)
        net = self.net(ckpt, device)
        model = self.model(device)
        init = coeffs_for_model(model, rnet_coeffs(net, crop, device, self.threads)).to(device)
        extra = {"init": "rnet", "method": "regression"}
        if self.iterations > 0 and crop.landmarks is not None:
            result = self.fitter(model, self._renderer(ctx)).fit(crop.image, crop.landmarks, init)
            return self._finish(model, result, crop, ctx, {**extra, "method": "regression+fit"})
        with torch.no_grad():
            out = model(init)
        return {"recon": reconstruction(model, init, out, crop, extra)}

    def _fit_fallback(self, crop: Crop, ctx) -> dict[str, Any]:
        from dataclasses import replace

        if self._fallback_fit is None:
            self._fallback_fit = FitRunner(self.model_name, self.renderer, self.device_name, self.fit_iterations,
                                           init="mean", threads=self.threads)
        if np.shape(crop.landmarks) != (68, 2):
            crop = replace(crop, landmarks=self._landmarks_68(crop, ctx))
        recon = self._fallback_fit({"crop": crop}, ctx)["recon"]
        recon.extra = {**recon.extra, "method": "fit-fallback",
                       "fallback": f"{CHECKPOINT_ASSET} absent: fk's fit:deep3d, not R-Net"}
        return {"recon": recon}

    def _landmarks_68(self, crop: Crop, ctx) -> np.ndarray:
        """68 landmarks on the 224² crop from ``detect:dlib``: the face nearest the crop's 5 points (or centre)."""
        if self._landmarker is None:
            from fk.plugins import get_plugin_manager

            self._landmarker = get_plugin_manager().component("detect:dlib").load_factory()(upsample=1)
        faces = [f for f in self._landmarker({"image": np.asarray(crop.image)}, ctx)["faces"]
                 if f.landmarks is not None]
        if not faces:
            raise FkError(f"{ctx.key}: the fit fallback found no 68 landmarks in the 224² crop",
                          hint=f"put {CHECKPOINT_ASSET} in place (fk doctor) so R-Net runs from the 5 points")
        centre = (np.mean(crop.landmarks, axis=0) if crop.landmarks is not None
                  else np.array([111.5, 111.5]))
        return min((np.asarray(f.landmarks, np.float64) for f in faces),
                   key=lambda lm: float(np.linalg.norm(lm.mean(0) - centre)))


class FitRunner(_Base):
    """Analysis-by-synthesis; starts from R-Net when its checkpoint is present (``init: auto``)."""

    def __init__(self, model: str = "auto", renderer: str = "auto", device: str = "cpu", iterations: int = 40,
                 init: str = "auto", checkpoint: str | None = None, arcface: str | None = None, threads: int = 1,
                 max_rmse: float = MAX_LANDMARK_RMSE):
        super().__init__(model, renderer, device, iterations, checkpoint, threads)
        self.init = init or "auto"
        self.max_rmse = float(max_rmse)
        self.arcface = arcface

    def _identity(self, device: torch.device):
        from fk.nets.arcface import load_identity

        from fk_deep3d.constants import ARCFACE_ASSET

        return load_identity(self.arcface, device, asset=ARCFACE_ASSET)

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        crop = _check_crop(inputs["crop"])
        if crop.landmarks is None:
            raise InputError(f"{ctx.key}: fit:deep3d needs the crop's 68 landmarks",
                             hint="use detect:dlib (68 points) before crop:deep3d")
        device = resolve_device(self.device_name, ctx.options)
        model = self.model(device)
        init = None
        how = "landmarks"
        if self.init in ("auto", "rnet"):
            ckpt = resolve_checkpoint(self.checkpoint, required=self.init == "rnet")
            if ckpt is not None:
                net = self.net(ckpt, device)
                init = coeffs_for_model(model, rnet_coeffs(net, crop, device, self.threads)).to(device)
                how = "rnet"
        identity = self._identity(device)
        result = self.fitter(model, self._renderer(ctx), identity).fit(crop.image, crop.landmarks, init)
        return self._finish(model, result, crop, ctx, {"init": how, "method": "fit",
                                                       "identity_loss": identity is not None})
