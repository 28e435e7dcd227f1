"""Renderer backend descriptors (import-light: probing imports nothing heavy until asked)."""

from __future__ import annotations

from fk.components import RendererBackend


def _probe_cpu() -> tuple[bool, str]:
    return True, "fk's own CPU rasteriser (always available)"


def _probe_nvdiffrast() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("nvdiffrast") is None:
        return False, "nvdiffrast is not installed (it is not on PyPI; see its docs to build it with CUDA)"
    try:
        import torch
    except ImportError:
        return False, "torch is not importable"
    if not torch.cuda.is_available():
        return False, "nvdiffrast is installed but CUDA is not available"
    return True, "nvdiffrast imports and CUDA is available"


BACKENDS = (
    RendererBackend("nvdiffrast", "fk.render.nvdiffrast_backend", _probe_nvdiffrast, priority=100,
                    summary="NVIDIA nvdiffrast (CUDA)"),
    RendererBackend("cpu", "fk.render.cpu", _probe_cpu, priority=0, summary="fk's differentiable CPU rasteriser"),
)
