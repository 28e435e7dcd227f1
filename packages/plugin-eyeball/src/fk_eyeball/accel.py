"""Accelerator dispatch for ``fk eyeball train``: CoRA's tiny-cuda-nn and nerfacc 0.3.1, or fk's torch code.

``train.accelerator`` (fk key; ``--accelerator`` on the command line):

- ``auto`` (default): on CUDA, tiny-cuda-nn's networks when ``tinycudann`` imports and nerfacc's sampling
  when ``nerfacc`` imports with the 0.3.x API (``OccupancyGrid``, ``ray_marching``), each on its own;
  otherwise, and always on CPU, fk's torch versions;
- ``torch``: fk's torch hash grid, MLPs, occupancy grid and marcher everywhere;
- ``tcnn``: CoRA's stack, both libraries on CUDA, or a one-line error naming what is missing and how to
  install it.

The choice (:class:`Backend`) is logged, written into the run's ``config.yaml`` (``train.backend``) and every
checkpoint; a checkpoint is only resumed or loaded with the same networks/sampling, otherwise a clear error.

Adapters, configured as CoRA (cora.md §6.1-6.2):

- :class:`TcnnHashGrid`: ``tcnn.Encoding`` HashGrid, L levels × F features, ``log2_hashmap_size`` 14,
  base resolution 16, ``per_level_scale = (1024/16)^(1/(L-1))``, Smoothstep for the geometry grid; levels
  at or above ``active_levels`` multiplied by 0; half-precision output cast back to the input's dtype.
- :class:`TcnnMLP`: ``tcnn.Network`` FullyFusedMLP, ReLU, no output activation, 64 neurons, 2 hidden
  layers (no biases, as tiny-cuda-nn); :class:`TcnnSphericalHarmonics`: degree 4 on ``(d + 1)/2``.
- :class:`NerfaccSampler`: ``nerfacc.OccupancyGrid(roi_aabb=[-bound]*3 + [bound]*3, resolution)`` with
  ``every_n_step`` (threshold 0.01, EMA 0.95, warm-up 256, every 16) on ``σ·step``, and ``ray_marching``
  with the scene AABB, the grid, a ``sigma_fn`` (so nerfacc drops samples behind transmittance 1e-4),
  ``render_step_size`` and stratified offsets while training; world units throughout, as CoRA.
- :class:`TorchSampler`: fk's :class:`~fk_eyeball.sampling.OccupancyGrid` and marcher with the same
  interface and the same early stop.

Neither library can be installed on fk's CPU machines: the adapters are tested with small torch stand-ins
that have the libraries' call signatures; the real libraries have not been run by fk's tests.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from fk.errors import InputError

from fk_eyeball.sampling import OccupancyGrid, Samples, march, transmittance

ACCELERATORS = ("auto", "torch", "tcnn")
TCNN_INSTALL = 'pip install "git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch"'
NERFACC_INSTALL = "pip install nerfacc==0.3.1"  # CoRA's pin; 0.4+ removed OccupancyGrid/ray_marching
EARLY_STOP_EPS = 1e-4  # nerfacc 0.3.1's ray_marching default: samples behind this transmittance are dropped


@dataclass(frozen=True)
class Backend:
    networks: str = "torch"  # "torch" | "tcnn"
    sampling: str = "torch"  # "torch" | "nerfacc"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        nets = "tiny-cuda-nn" if self.networks == "tcnn" else "torch"
        samp = "nerfacc 0.3.1" if self.sampling == "nerfacc" else "torch"
        return f"networks: {nets}, occupancy grid + marching: {samp}"


def _import(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - an absent or broken build (missing CUDA libraries) counts as absent
        return None


def _nerfacc_api(module: Any) -> bool:
    return module is not None and hasattr(module, "OccupancyGrid") and hasattr(module, "ray_marching")


def resolve_backend(accelerator: str, device: str | torch.device) -> Backend:
    """The backend ``accelerator`` gives on ``device`` (see the module docstring); InputError when ``tcnn``
    cannot be honoured."""
    if accelerator not in ACCELERATORS:
        raise InputError(f"accelerator {accelerator!r} is not one of {', '.join(ACCELERATORS)}",
                         hint="set train.accelerator (or --accelerator) to auto, torch or tcnn")  # fmt: skip
    if accelerator == "torch":
        return Backend()
    cuda = torch.device(device).type == "cuda"
    if accelerator == "tcnn":
        if not cuda:
            raise InputError(f"accelerator tcnn needs a CUDA device, got {device}",
                             hint="pass --device cuda, or use --accelerator auto|torch")  # fmt: skip
        if _import("tinycudann") is None:
            raise InputError("accelerator tcnn: the tinycudann package is not importable",
                             hint=f"install tiny-cuda-nn's bindings: {TCNN_INSTALL}; "
                                  "or use --accelerator auto|torch")  # fmt: skip
        if not _nerfacc_api(_import("nerfacc")):
            raise InputError("accelerator tcnn: nerfacc 0.3.x (OccupancyGrid, ray_marching) is not "
                             "importable", hint=f"install it: {NERFACC_INSTALL}; "
                             "or use --accelerator auto|torch")  # fmt: skip
        return Backend("tcnn", "nerfacc")
    if not cuda:
        return Backend()
    nets = "tcnn" if _import("tinycudann") is not None else "torch"
    samp = "nerfacc" if _nerfacc_api(_import("nerfacc")) else "torch"
    return Backend(nets, samp)


def _tcnn() -> Any:
    module = _import("tinycudann")
    if module is None:
        raise InputError("this model was built with tiny-cuda-nn, and the tinycudann package is not "
                         "importable",
                         hint=f"install it on a CUDA machine: {TCNN_INSTALL}")  # fmt: skip
    return module


class TcnnHashGrid(torch.nn.Module):
    """tiny-cuda-nn's HashGrid with fk's :class:`~fk_eyeball.hashgrid.HashGrid` interface."""

    def __init__(self, n_levels: int, level_dim: int, log2_hashmap_size: int = 14, base_resolution: int = 16,
                 finest_resolution: int = 1024, smoothstep: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.n_levels, self.level_dim = int(n_levels), int(level_dim)
        per_level_scale = math.exp(math.log(finest_resolution / base_resolution) / max(self.n_levels - 1, 1))
        config = {"otype": "HashGrid", "n_levels": self.n_levels, "n_features_per_level": self.level_dim,
                  "log2_hashmap_size": int(log2_hashmap_size), "base_resolution": int(base_resolution),
                  "per_level_scale": per_level_scale}  # fmt: skip
        if smoothstep:
            config["interpolation"] = "Smoothstep"
        self.encoding = _tcnn().Encoding(n_input_dims=3, encoding_config=config)
        self.active_levels = self.n_levels

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.level_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoding(x).to(x.dtype)  # tiny-cuda-nn computes in half precision
        if self.active_levels < self.n_levels:
            keep = (torch.arange(self.n_levels, device=x.device) < self.active_levels).to(h.dtype)
            h = h * keep.repeat_interleave(self.level_dim)
        return h


class TcnnMLP(torch.nn.Module):
    """tiny-cuda-nn's FullyFusedMLP as CoRA configures it: 2 hidden layers of 64, ReLU, linear output."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        config = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                  "n_neurons": 64, "n_hidden_layers": 2}  # fmt: skip
        self.network = _tcnn().Network(n_input_dims=n_in, n_output_dims=n_out, network_config=config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).to(x.dtype)


class TcnnSphericalHarmonics(torch.nn.Module):
    """tiny-cuda-nn's SphericalHarmonics degree 4 (16 values) of unit directions, fed ``(d + 1)/2``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoding = _tcnn().Encoding(n_input_dims=3, encoding_config={"otype": "SphericalHarmonics",
                                                                          "degree": 4})  # fmt: skip

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return self.encoding((d + 1) / 2).to(d.dtype)


# ---------------------------------------------------------------- sampling (world units, as CoRA)
SigmaFn = Callable[[torch.Tensor], torch.Tensor]  # world points (N, 3) -> density (N,)


class TorchSampler(OccupancyGrid):
    """fk's occupancy grid (cells over the ``[-bound, bound]³`` cube) and marcher, nerfacc's interface."""

    def __init__(self, bound: float, resolution: int = 128) -> None:
        super().__init__(resolution)
        self.bound = float(bound)

    def update_every(self, step: int, occ_fn: SigmaFn, generator: torch.Generator | None = None,
                     **rules: Any) -> bool:  # fmt: skip
        """``occ_fn(world (N, 3)) -> σ·step (N,)``; the rules of nerfacc's ``every_n_step``."""
        b = self.bound
        return self.update(step, lambda x01: occ_fn(x01 * (2 * b) - b), generator=generator, **rules)

    def march_world(self, origins: torch.Tensor, dirs: torch.Tensor, step: float, stratified: bool,
                    sigma_fn: SigmaFn | None = None,
                    generator: torch.Generator | None = None) -> Samples:  # fmt: skip
        b = self.bound
        s = march((origins + b) / (2 * b), dirs, self, step / (2 * b), stratified, generator)
        s = Samples(s.ray_index, s.t_starts * (2 * b), s.t_ends * (2 * b), s.n_rays)
        return early_stop(s, origins, dirs, sigma_fn)


def early_stop(s: Samples, origins: torch.Tensor, dirs: torch.Tensor, sigma_fn: SigmaFn | None) -> Samples:
    """nerfacc 0.3.1's ``render_visibility``: drop samples whose transmittance before them is < 1e-4."""
    if sigma_fn is None or not len(s.ray_index):
        return s
    with torch.no_grad():
        mid = origins[s.ray_index] + dirs[s.ray_index] * ((s.t_starts + s.t_ends) / 2)[:, None]
        trans = transmittance(sigma_fn(mid) * (s.t_ends - s.t_starts), s.ray_index)
    keep = trans >= EARLY_STOP_EPS
    return Samples(s.ray_index[keep], s.t_starts[keep], s.t_ends[keep], s.n_rays)


class NerfaccSampler(torch.nn.Module):
    """nerfacc 0.3.1's ``OccupancyGrid`` + ``ray_marching`` over ``[-bound, bound]³`` (CoRA's trainer)."""

    def __init__(self, bound: float, resolution: int = 128) -> None:
        super().__init__()
        nerfacc = _import("nerfacc")
        if not _nerfacc_api(nerfacc):
            raise InputError("this run uses nerfacc's sampling, and nerfacc 0.3.x is not importable",
                             hint=f"install it: {NERFACC_INSTALL}")  # fmt: skip
        self._nerfacc = nerfacc
        b = float(bound)
        self.bound = b
        self.register_buffer(
            "aabb", torch.tensor([-b, -b, -b, b, b, b], dtype=torch.float32), persistent=False
        )
        self.grid = nerfacc.OccupancyGrid(roi_aabb=[-b, -b, -b, b, b, b], resolution=int(resolution))

    def update_every(self, step: int, occ_fn: SigmaFn, generator: torch.Generator | None = None,
                     threshold: float = 0.01, ema_decay: float = 0.95, warmup_steps: int = 256,
                     every_n: int = 16) -> bool:  # fmt: skip
        if step % every_n:
            return False
        self.grid.every_n_step(step=step, occ_eval_fn=lambda x: occ_fn(x.float())[:, None],
                               occ_thre=threshold, ema_decay=ema_decay, warmup_steps=warmup_steps,
                               n=every_n)  # fmt: skip
        return True

    def march_world(self, origins: torch.Tensor, dirs: torch.Tensor, step: float, stratified: bool,
                    sigma_fn: SigmaFn | None = None,
                    generator: torch.Generator | None = None) -> Samples:  # fmt: skip
        o, d = origins.float().contiguous(), dirs.float().contiguous()

        def nerfacc_sigma(
            t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor
        ) -> torch.Tensor:
            x = o[ray_indices] + d[ray_indices] * (t_starts + t_ends) / 2
            return sigma_fn(x)[:, None]

        with torch.no_grad():
            ri, t0, t1 = self._nerfacc.ray_marching(
                o, d, scene_aabb=self.aabb.to(o.device), grid=self.grid,
                sigma_fn=nerfacc_sigma if sigma_fn is not None else None, render_step_size=float(step),
                stratified=stratified, alpha_thre=0.0,
            )  # fmt: skip
        return Samples(ri.long(), t0.reshape(-1).to(origins.dtype), t1.reshape(-1).to(origins.dtype), len(o))


def make_sampler(backend: Backend, bound: float, resolution: int) -> torch.nn.Module:
    return (
        NerfaccSampler(bound, resolution)
        if backend.sampling == "nerfacc"
        else TorchSampler(bound, resolution)
    )


__all__ = [
    "ACCELERATORS", "Backend", "NerfaccSampler", "TcnnHashGrid", "TcnnMLP", "TcnnSphericalHarmonics",
    "TorchSampler", "early_stop", "make_sampler", "resolve_backend",
]  # fmt: skip
