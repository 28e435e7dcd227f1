"""Renderer backend descriptors (import-light: probing imports nothing heavy until asked).

``priority`` decides ``fk.render.get_context("auto")``: the available backend with the
highest priority wins. Third-party backends plug in through the ``fk_renderer_backends`` hook;
their module exposes ``make_context(device=None)`` and nvdiffrast's ops (see ``fk.render.context``).
"""

from __future__ import annotations

from fk.components import RendererBackend


def probe_cpu() -> tuple[bool, str]:
    return True, "fk's own CPU rasteriser (always available)"


def probe_nvdiffrast() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("nvdiffrast") is None:
        return False, "nvdiffrast is not installed (it is not on PyPI; see its docs to build it with CUDA)"
    try:
        import torch
    except ImportError:
        return False, "torch is not importable"
    if not torch.cuda.is_available():
        return False, "nvdiffrast is installed but CUDA is not available"
    try:
        import nvdiffrast.torch  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken build must read as "unavailable", with the reason
        return False, f"nvdiffrast.torch fails to import: {type(exc).__name__}: {exc}"
    return True, "nvdiffrast imports and CUDA is available"


BACKENDS = (
    RendererBackend("nvdiffrast", "fk.render.nvdiffrast_backend", probe_nvdiffrast, priority=100,
                    summary="NVIDIA nvdiffrast (CUDA)"),
    RendererBackend("cpu", "fk.render.cpu", probe_cpu, priority=0, summary="fk's differentiable CPU rasteriser"),
)
