"""Backend choice: import-light module, get_context, describe_backends, plugin backends, clear errors."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

import fk.render as dr
from fk.components import RendererBackend
from fk.errors import MissingError
from fk.hookspecs import hookimpl
from fk.render.backends import probe_nvdiffrast
from fk.testing import isolated_plugin_manager


def test_import_fk_render_imports_no_torch() -> None:
    code = "import sys, fk.render, fk.render.backends; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cpu_context_and_auto() -> None:
    ctx = dr.get_context("cpu")
    assert isinstance(ctx, dr.RasterizeCpuContext) and ctx.backend == "cpu"
    rows = dr.describe_backends()
    assert [r["name"] for r in rows][:2] == ["nvdiffrast", "cpu"]  # priority order
    assert sum(r["chosen"] for r in rows) == 1
    chosen = next(r for r in rows if r["chosen"])
    assert dr.get_context("auto").backend == chosen["name"]
    assert all(set(r) >= {"name", "available", "reason", "chosen"} for r in rows)


@pytest.mark.skipif(probe_nvdiffrast()[0], reason="nvdiffrast with CUDA is available here")
def test_unavailable_nvdiffrast_raises_missing_with_fix() -> None:
    with pytest.raises(MissingError, match="renderer backend 'nvdiffrast' is not available") as info:
        dr.get_context("nvdiffrast")
    assert "renderer=cpu" in info.value.hint
    with pytest.raises(MissingError):
        dr.RasterizeCudaContext()
    with pytest.raises(MissingError):
        dr.RasterizeGLContext()
    assert dr.get_context("auto").backend == "cpu"


def test_unknown_backend_names_known_ones() -> None:
    with pytest.raises(MissingError, match="unknown renderer backend 'vulkan'") as info:
        dr.get_context("vulkan")
    assert "cpu" in info.value.hint


def test_third_party_backend_plugs_in_through_the_hook() -> None:
    """A plugin yields a higher-priority backend whose module wraps the CPU ops and counts calls."""
    calls: list[str] = []
    module = types.ModuleType("fk_test_fake_backend")

    class FakeContext:
        backend = "fake"

        def __init__(self, device=None):
            self.device = device

    def rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
        calls.append("rasterize")
        return dr.rasterize(dr.RasterizeCpuContext(), pos, tri, resolution, ranges=ranges, grad_db=grad_db)

    module.make_context = lambda device=None: FakeContext(device)
    module.rasterize = rasterize
    sys.modules[module.__name__] = module

    class Plugin:
        @hookimpl
        def fk_renderer_backends(self):
            yield RendererBackend("fake", module.__name__, lambda: (True, "test backend"), priority=1000)

    try:
        with isolated_plugin_manager(Plugin()):
            rows = dr.describe_backends()
            assert rows[0]["name"] == "fake" and rows[0]["chosen"]
            ctx = dr.get_context("auto")
            assert isinstance(ctx, FakeContext)
            pos = torch.tensor([[[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]]])
            rast, _ = dr.rasterize(ctx, pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (4, 4))
            assert calls == ["rasterize"] and rast[..., 3].max() == 1
    finally:
        del sys.modules[module.__name__]


def test_cpu_only_features_raise_clearly() -> None:
    tex = torch.rand(1, 4, 4, 3)
    uv = torch.rand(1, 2, 2, 2)
    with pytest.raises(NotImplementedError, match="mipmaps"):
        dr.texture(tex, uv, filter_mode="linear-mipmap-linear")
    with pytest.raises(NotImplementedError, match="cube"):
        dr.texture(tex, uv, boundary_mode="cube")
    with pytest.raises(NotImplementedError):
        dr.texture_construct_mip(tex)
