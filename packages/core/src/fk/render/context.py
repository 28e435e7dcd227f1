"""Render contexts and backend choice (import-light: no torch until a backend is used).

A context names the backend that ``fk.render.rasterize`` dispatches to. ``get_context``
picks among the :class:`fk.components.RendererBackend` descriptors that plugins yield
from ``fk_renderer_backends`` (core yields ``cpu`` and ``nvdiffrast``): ``auto`` takes
the available one with the highest priority. A backend module exposes
``make_context(device=None)`` plus nvdiffrast's ops (``rasterize``, ``interpolate``,
``texture``, ``antialias``, ``texture_construct_mip``, ``antialias_construct_topology_hash``).
"""

from __future__ import annotations

import importlib
from typing import Any

from fk.errors import MissingError

CPU_MODULE = "fk.render.cpu"
NVDIFFRAST_MODULE = "fk.render.nvdiffrast_backend"


class RenderContext:
    """Base of fk's contexts: ``backend`` names the backend, ``device`` where its tensors live."""

    backend: str = ""

    def __init__(self, device: Any = None):
        self.device = device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, device={self.device!r})"


class RasterizeCpuContext(RenderContext):
    """fk's CPU rasteriser (numba kernels, forward and backward; torch without numba). Always available."""

    backend = "cpu"

    def __init__(self, device: Any = None):
        super().__init__("cpu" if device is None else device)


class RasterizeCudaContext(RenderContext):
    """nvdiffrast's CUDA context, when nvdiffrast imports with CUDA.

    Raises :class:`fk.errors.MissingError` otherwise (fk does not silently swap in the CPU
    backend for code that asked for CUDA); use ``fk.render.get_context("auto")`` to fall back.
    """

    backend = "nvdiffrast"

    def __init__(self, device: Any = None):
        super().__init__(device)
        module = _module_of_backend("nvdiffrast")
        self.native = module.make_native_context(device=device)


class RasterizeGLContext(RasterizeCudaContext):
    """nvdiffrast >= 0.4 keeps this name as an alias of the CUDA context; so does fk."""

    def __init__(self, output_db: bool = True, mode: str = "automatic", device: Any = None):
        self.output_db = output_db
        self.mode = mode
        super().__init__(device=device)


def _backends() -> list[Any]:
    from fk.plugins import get_plugin_manager

    return get_plugin_manager().renderer_backends()


def _module_of_backend(name: str) -> Any:
    for b in _backends():
        if b.name == name:
            ok, reason = b.probe()
            if not ok:
                raise MissingError(f"renderer backend '{name}' is not available: {reason}",
                                   hint=_fix_hint(name))
            return importlib.import_module(b.module)
    raise MissingError(f"unknown renderer backend '{name}'",
                       hint="known backends: " + ", ".join(b.name for b in _backends()) + " (fk doctor lists them)")


def _fix_hint(name: str) -> str:
    if name == "nvdiffrast":
        return ("install nvdiffrast with CUDA (pip install git+https://github.com/NVlabs/nvdiffrast "
                "--no-build-isolation) on a GPU machine, or use renderer=cpu / renderer=auto")
    return "use renderer=auto or renderer=cpu (fk doctor lists the backends)"


def describe_backends() -> list[dict[str, Any]]:
    """One row per known backend: ``{name, available, reason, chosen, priority, plugin}`` (for ``fk doctor``)."""
    rows = []
    chosen_seen = False
    for b in _backends():  # already sorted by priority, highest first
        try:
            ok, reason = b.probe()
        except Exception as exc:  # noqa: BLE001 - a broken probe must not break fk doctor
            ok, reason = False, f"probe failed: {type(exc).__name__}: {exc}"
        chosen = ok and not chosen_seen
        chosen_seen = chosen_seen or chosen
        rows.append({"name": b.name, "available": bool(ok), "reason": reason, "chosen": chosen,
                     "priority": b.priority, "plugin": b.plugin})
    return rows


def get_context(backend: str = "auto", device: Any = None) -> Any:
    """A context for ``backend`` (``auto``, ``cpu``, ``nvdiffrast`` or a plugin's backend name).

    ``auto`` picks the available backend with the highest priority. A named backend that is
    not available raises :class:`fk.errors.MissingError` saying why and how to fix it.
    """
    name = (backend or "auto").lower()
    if name == "auto":
        for row in describe_backends():
            if row["chosen"]:
                name = row["name"]
                break
        else:
            raise MissingError("no renderer backend is available", hint="fk doctor lists the backends and why")
    if name == "cpu":
        return RasterizeCpuContext(device=device)
    if name == "nvdiffrast":
        return RasterizeCudaContext(device=device)
    return _module_of_backend(name).make_context(device=device)


def backend_module_for(glctx: Any) -> Any:
    """The backend module that runs ``rasterize`` for ``glctx`` (fk context or a native nvdiffrast one)."""
    if isinstance(glctx, RasterizeCpuContext):
        return importlib.import_module(CPU_MODULE)
    if isinstance(glctx, RasterizeCudaContext):
        return importlib.import_module(NVDIFFRAST_MODULE)
    if type(glctx).__module__.startswith("nvdiffrast"):
        return importlib.import_module(NVDIFFRAST_MODULE)
    name = getattr(glctx, "backend", None)
    if isinstance(name, str) and name:
        return _module_of_backend(name)
    raise TypeError(f"glctx must be a context from fk.render.get_context(), got {type(glctx).__name__}")


def tensor_backend_module(tensor: Any) -> Any:
    """Where an op goes when none of its tensors came from a context: by device. CUDA tensors go to
    nvdiffrast when it is available, all others to fk's torch implementation."""
    if getattr(tensor, "is_cuda", False):
        from fk.render.backends import probe_nvdiffrast

        if probe_nvdiffrast()[0]:
            return importlib.import_module(NVDIFFRAST_MODULE)
    return importlib.import_module(CPU_MODULE)


# Which backend module produced a tensor: rasterize's outputs remember their context's backend, and
# interpolate/texture/antialias pass it on, so nvdiffrast's context-free ops (which take ``rast`` or
# ``uv`` but no context) run on the backend the caller chose, not on one guessed from the device.
_producers: Any = None


def _producer_map() -> Any:
    global _producers
    if _producers is None:
        from torch.utils.weak import WeakIdKeyDictionary  # by identity, dropped with the tensor

        _producers = WeakIdKeyDictionary()
    return _producers


def remember_backend(module: Any, *tensors: Any) -> None:
    """Record ``module`` as the backend that produced ``tensors`` (non-tensors are skipped)."""
    producers = _producer_map()
    for t in tensors:
        if t is not None and hasattr(t, "is_cuda"):
            producers[t] = module


def backend_module_of(op: str, *tensors: Any) -> Any:
    """The backend module for ``op``: the one that produced the first of ``tensors`` made by a backend
    (through a context's ``rasterize``), else :func:`tensor_backend_module` of the first tensor."""
    producers = _producer_map()
    module = next((producers[t] for t in tensors if t is not None and t in producers), None)
    if module is None:
        module = tensor_backend_module(next((t for t in tensors if t is not None), None))
    if not hasattr(module, op):
        raise MissingError(f"renderer backend module {module.__name__} has no {op}()",
                           hint="a backend module implements rasterize, interpolate, texture and antialias")
    return module
