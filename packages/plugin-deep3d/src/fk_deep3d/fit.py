"""Analysis-by-synthesis fitting of a face model to one 224² Deep3D crop.

This is **fk's own method**: Deep3DFaceRecon has no per-image fitting (it regresses coefficients
with R-Net and stops). fk borrows Deep3D's crop, camera, face model and loss terms, and adds the
optimisation below; its results are not Deep3D's outputs. Three stages, each cheap enough for a 2-core CPU:

1. **pose from landmarks**: ``fk.geometry.pnp.solve_pnp`` puts the mean face's 68
   keypoints onto the detected landmarks (linear start, then Levenberg-Marquardt);
2. **landmark stage**: trust-region least squares (scipy) on pose + identity + expression
   with the weighted landmark loss and the coefficient prior, evaluating only the 68
   keypoint vertices;
3. **photometric stage**: Adam on every coefficient through the differentiable renderer,
   with Deep3D's losses: skin-masked photometric term (mask = skin posterior × rendered
   face region), landmarks (weight 20 on nose bridge and inner mouth), coefficient,
   gamma and reflectance regularisers, and ArcFace identity when weights are given.

Convention: landmarks are (68, 2) pixels of the crop, x right, y down, pixel centres at
integers (``fk.cameras.deep3d``, Deep3D's ``lm68`` rule); the crop is (224, 224, 3) uint8 RGB.
Renders go through ``fk.render.mesh.render_mesh`` with ``K_LANDMARKS`` (principal point
(112, 111)), the pinhole of the landmark projection, so renders and landmarks agree; Deep3D's
own nvdiffrast render sits half a pixel away (``K_RENDER``, deep3d.md §8.2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fk.cameras.deep3d import CAMERA_DISTANCE, IMAGE_SIZE, K_LANDMARKS, opencv_from_deep3d_camera, to_camera
from fk.cameras.pinhole import project_points
from fk.errors import FkError, InputError
from fk.optim import Adam
from fk.geometry.rotations import euler_to_matrix, matrix_to_euler
from fk.models.lighting import gamma_loss
from fk_deep3d import losses as L

# Intra-op torch threads for the fit. The photometric loop is hundreds of small ops per step;
# on the 2-core reference CPU one thread is as fast as two when idle (demo head: 0.65 s vs
# 0.65-0.84 s per 30 steps) and 2-15x faster when another process competes for the cores
# (OpenMP's spinning workers: 1.4 s vs 2.4-23 s). bench/bench_deep3d.py measures both.
DEFAULT_THREADS = 1


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads and as many numba threads (the CPU
    renderer's z-buffer) and BLAS threads (numpy's and scipy's OpenBLAS), then restore the process
    settings.

    Pinning numba too makes the fit give the same bytes whether it is the first item of a process
    or not (a resumed run): with numba's default threads the first fit in a process differed in the
    last bits from run to run (docs/reliability.md). BLAS: the fit's small SVDs and QRs (PnP, the
    landmark stage) took 34-47 ms each on two OpenBLAS threads on a busy 2-core machine, 0.4 ms on
    one (bench/bench_demo.py). ``threads <= 0`` leaves the process settings alone (e.g. what
    ``OMP_NUM_THREADS`` or the engine chose).
    """
    if threads <= 0:
        yield
        return
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS now, so the cap below reaches it)
    from threadpoolctl import threadpool_limits

    try:
        import numba
    except ImportError:  # the renderer falls back to torch then
        numba = None
    before = torch.get_num_threads()
    numba_before = numba.get_num_threads() if numba is not None else None
    torch.set_num_threads(int(threads))  # even when equal: it also sets MKL's and OpenMP's counts
    if numba is not None:
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=int(threads), user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
        if numba is not None:
            numba.set_num_threads(numba_before)


# Deep3D world -> OpenCV camera is x_cv = FLIP * x_world + (0, 0, CAMERA_DISTANCE).
_FLIP = np.array([1.0, -1.0, -1.0])


@dataclass
class FitResult:
    coeffs: torch.Tensor  # (1, n_coeffs)
    output: dict[str, torch.Tensor]  # the model's forward at coeffs
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    landmark_rmse: float = float("nan")  # pixels, between model and detected landmarks


def image_points(points_world: np.ndarray) -> np.ndarray:
    """Deep3D world (*batch, N, 3) -> (*batch, N, 2) image pixels of the 224 crop (x right, y down)."""
    return project_points(opencv_from_deep3d_camera(to_camera(points_world)), K_LANDMARKS)


def pose_from_landmarks(keypoints3d: np.ndarray,
                        landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Deep3D (angle, trans) that project ``keypoints3d`` (68, 3) onto ``landmarks`` (68, 2).

    PnP (``fk.geometry.pnp.solve_pnp``) through ``K_LANDMARKS`` gives the OpenCV pose
    (R_cv, t_cv); Deep3D's pose follows from x_cv = F (M v + t) + (0, 0, 10), F = diag(1, -1, -1):
    M = F R_cv, t = F (t_cv - (0, 0, 10)). One start is enough: on 60 demo-head faces with random
    identity and expression, yaw up to ±80° and 2 px landmark noise, PnP's worst angle error was
    5° against 11° for the former least squares started from three yaws, and never a worse fit.
    Returns (angle (3,), trans (3,), RMS pixel error).
    """
    from fk.geometry.pnp import solve_pnp

    target = np.asarray(landmarks, np.float64)
    keypoints3d = np.asarray(keypoints3d, np.float64)
    try:
        rot_cv, t_cv = solve_pnp(keypoints3d, target, K_LANDMARKS)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise FkError(f"pose from landmarks failed ({exc})",
                      hint="check the landmarks of this face") from None
    rot = _FLIP[:, None] * rot_cv
    trans = _FLIP * (t_cv - np.array([0.0, 0.0, CAMERA_DISTANCE]))
    if not (np.all(np.isfinite(rot)) and np.all(np.isfinite(trans))):
        raise FkError("pose from landmarks did not converge", hint="check the landmarks of this face")
    angle = matrix_to_euler(rot, "xyz")  # canonical angles (|yaw| <= 90°)
    rmse = float(np.sqrt(((image_points(keypoints3d @ rot.T + trans) - target) ** 2).sum(1).mean()))
    return angle, trans, rmse


class Fitter:
    """Fits one face model to crops; reuse one instance for many crops.

    Args:
        model: an ``fk.models.FaceModel``.
        iterations: photometric Adam steps (0 skips the renderer entirely).
        landmark_iterations: L-BFGS steps of the landmark stage.
        renderer: ``fk.render`` backend name.
        weights: Deep3D's loss weights.
        identity: optional callable (B,H,W,3) image in [0,1] + (B,68,2) landmarks -> (B,512) features.
        threads: torch intra-op threads while fitting (``DEFAULT_THREADS`` = 1, see there why);
            0 keeps the process setting. More pays only for big models on an idle many-core machine.
    """

    def __init__(self, model, iterations: int = 40, landmark_iterations: int = 30, renderer: str = "auto",
                 weights: L.LossWeights = L.LossWeights(), identity: Any = None, lr: float = 0.01,
                 threads: int = DEFAULT_THREADS):
        self.model = model
        self.iterations = int(iterations)
        self.landmark_iterations = int(landmark_iterations)
        self.renderer = renderer
        self.w = weights
        self.identity = identity
        self.lr = lr
        self.threads = int(threads)
        dtype, dev = model.dtype, model.device
        kp = model.keypoints
        rows = (3 * kp[:, None] + torch.arange(3, device=dev)).reshape(-1)
        self._kp_mean = model.mean_shape[rows].reshape(68, 3)
        self._kp_id = model.id_base[rows]
        self._kp_exp = model.exp_base[rows]
        self._K = torch.as_tensor(K_LANDMARKS, dtype=dtype, device=dev)
        self._faces = model.face_region_triangles()
        self._skin_vertices = model.skin_mask if model.skin_mask is not None else None

    # -- helpers ------------------------------------------------------------
    def render(self, out: dict[str, torch.Tensor]):
        """The model output ``out`` (``vertices_world``, ``colors``) rendered into the crop: ``Rendered``."""
        from fk.render.mesh import render_mesh

        v = opencv_from_deep3d_camera(to_camera(out["vertices_world"]))
        return render_mesh(v, self._faces, self._K, (IMAGE_SIZE, IMAGE_SIZE), vertex_colors=out["colors"],
                           backend=self.renderer)

    def _landmark_stage(self, parts: dict[str, torch.Tensor], lm: np.ndarray) -> dict[str, np.ndarray]:
        """Minimise w_lm·landmark + w_reg·(w_id‖id‖² + w_exp‖exp‖²) over pose, id, exp (Deep3D's weights)."""
        from scipy.optimize import least_squares

        w = self.w
        mean = self._kp_mean.detach().cpu().double().numpy()
        id_b = self._kp_id.detach().cpu().double().numpy().reshape(68, 3, -1)
        exp_b = self._kp_exp.detach().cpu().double().numpy().reshape(68, 3, -1)
        n_id, n_exp = id_b.shape[2], exp_b.shape[2]
        lm_scale = np.sqrt(w.lm * L.landmark_weights(68).numpy().astype(np.float64) / 68)[:, None]
        reg_scale = np.sqrt(w.reg * np.concatenate([np.full(n_id, w.id), np.full(n_exp, w.exp)]))

        def unpack(x):
            return x[:3], x[3:6], x[6:6 + n_id], x[6 + n_id:]

        def residual(x):
            angle, trans, id_, exp = unpack(x)
            pts = mean + id_b @ id_ + exp_b @ exp
            world = pts @ euler_to_matrix(angle, "xyz").T + trans
            return np.concatenate([((image_points(world) - lm) * lm_scale).ravel(),
                                   reg_scale * np.concatenate([id_, exp])])

        x0 = np.concatenate([parts[k].detach()[0].cpu().double().numpy() for k in ("angle", "trans", "id", "exp")])
        sol = least_squares(residual, x0, method="trf", max_nfev=self.landmark_iterations * 10, x_scale="jac")
        angle, trans, id_, exp = unpack(sol.x)
        return {"angle": angle, "trans": trans, "id": id_, "exp": exp}

    # -- the fit --------------------------------------------------------------
    def fit(self, image: np.ndarray, landmarks: np.ndarray, init: torch.Tensor | None = None) -> FitResult:
        """Fit to a (224, 224, 3) uint8 crop with its (68, 2) landmarks; ``init`` (1, n_coeffs) optional.

        Gradients are on inside whatever the caller's grad mode (e.g. an evaluation under ``no_grad``).
        """
        with torch_threads(self.threads), torch.enable_grad():
            return self._fit(image, landmarks, init)

    def _fit(self, image: np.ndarray, landmarks: np.ndarray, init: torch.Tensor | None) -> FitResult:
        from fk_deep3d.skin import skin_probability

        model, w = self.model, self.w
        image = np.asarray(image)
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise InputError(f"fit:deep3d expects a 224×224 RGB crop, got {image.shape}",
                             hint="use crop:deep3d before fit:deep3d")
        lm = np.asarray(landmarks, np.float64)
        if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
            raise InputError(f"fit:deep3d needs 68 finite landmarks in the crop, got {lm.shape}",
                             hint="use a 68-point detector (detect:dlib) before crop:deep3d")
        dtype, dev = model.dtype, model.device
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if init is None:
            angle, trans, _ = pose_from_landmarks(self._kp_mean.detach().cpu().double().numpy(), lm)
            init = model.join_coeffs({"angle": torch.as_tensor(angle, dtype=dtype, device=dev)[None],
                                      "trans": torch.as_tensor(trans, dtype=dtype, device=dev)[None]})
        timings["pose"] = time.perf_counter() - t0
        parts = {k: v.detach().clone().requires_grad_(True) for k, v in model.split_coeffs(init.to(dtype)).items()}
        target_lm = torch.as_tensor(lm, dtype=dtype, device=dev)[None]
        history: list[dict[str, float]] = []

        # Stage 2: landmarks + coefficient prior on the 68 keypoint vertices (scipy LM, float64).
        t0 = time.perf_counter()
        if self.landmark_iterations > 0:
            solved = self._landmark_stage(parts, lm)
            with torch.no_grad():
                for k, v in solved.items():
                    parts[k].copy_(torch.as_tensor(v, dtype=dtype, device=dev)[None])
        timings["landmarks"] = time.perf_counter() - t0

        # Stage 3: photometric, through the renderer.
        t0 = time.perf_counter()
        render_seconds = 0.0
        if self.iterations > 0:
            target = torch.as_tensor(np.array(image), dtype=dtype, device=dev)[None] / 255.0
            skin = torch.as_tensor(skin_probability(image), dtype=dtype, device=dev)[None]
            feat_gt = None
            if self.identity is not None:
                with torch.no_grad():
                    feat_gt = self.identity(target, target_lm)
            # Gamma and albedo start far from the photo; give them larger steps than the geometry.
            opt = Adam([
                {"params": [parts["id"], parts["exp"]], "lr": self.lr},
                {"params": [parts["tex"], parts["gamma"]], "lr": 3 * self.lr},
                {"params": [parts["angle"]], "lr": 0.1 * self.lr},
                {"params": [parts["trans"]], "lr": 0.1 * self.lr},
            ])
            skin_v = self._skin_vertices
            for it in range(self.iterations):
                opt.zero_grad()
                coeffs = model.join_coeffs(parts)
                out = model(coeffs)
                tr = time.perf_counter()
                rendered = self.render(out)
                render_seconds += time.perf_counter() - tr
                mask = rendered.mask.to(dtype) * skin
                terms = {
                    "color": w.color * L.photometric_loss(rendered.rgb, target, mask),
                    "lm": w.lm * L.landmark_loss(out["landmarks_2d"], target_lm),
                    "reg": w.reg * L.coefficient_loss(parts["id"], parts["exp"], parts["tex"], w),
                    "gamma": w.gamma * gamma_loss(parts["gamma"]),
                    "reflc": w.reflc * L.reflectance_loss(
                        out["albedo"], skin_v if skin_v is not None else torch.ones(out["albedo"].shape[1],
                                                                                     dtype=torch.bool, device=dev)),
                }
                if feat_gt is not None:
                    terms["feat"] = w.feat * L.identity_loss(self.identity(rendered.rgb * mask[..., None]
                                                                           + target * (1 - mask[..., None]),
                                                                           out["landmarks_2d"]), feat_gt)
                loss = sum(terms.values())
                if not torch.isfinite(loss):
                    raise FkError(f"fit diverged at photometric step {it} (loss {float(loss)})",
                                  hint="check the crop and its landmarks; try iterations: 0")
                loss.backward()
                opt.step()
                if it == 0 or it == self.iterations - 1:
                    history.append({"stage": 3.0, "step": float(it), **{k: float(v.detach()) for k, v in terms.items()}})
        timings["photometric"] = time.perf_counter() - t0
        timings["render"] = render_seconds

        with torch.no_grad():
            coeffs = model.join_coeffs({k: v.detach() for k, v in parts.items()})
            out = model(coeffs)
            rmse = float(((out["landmarks_2d"][0] - target_lm[0]) ** 2).sum(-1).mean().sqrt())
        return FitResult(coeffs=coeffs, output=out, history=history, seconds=timings, landmark_rmse=rmse)
