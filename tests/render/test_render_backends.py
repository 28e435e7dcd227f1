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


def test_every_op_runs_on_the_chosen_third_party_backend() -> None:
    """A plugin backend receives interpolate, texture and antialias too, not only rasterize: its outputs
    (and what is computed from them) carry the backend, whatever the tensors' device."""
    import fk.render.cpu as cpu
    from fk.render.mesh import render_mesh

    calls: list[str] = []
    module = types.ModuleType("fk_test_recording_backend")

    class RecordingContext:
        backend = "recording"

        def __init__(self, device=None):
            self.device = device

    def recorded(name, fn):
        def op(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return op

    module.make_context = lambda device=None: RecordingContext(device)
    module.rasterize = recorded("rasterize",
                                lambda glctx, *a, **k: cpu.rasterize(dr.RasterizeCpuContext(), *a, **k))
    for name in ("interpolate", "texture", "antialias", "antialias_construct_topology_hash"):
        setattr(module, name, recorded(name, getattr(cpu, name)))
    sys.modules[module.__name__] = module

    class Plugin:
        @hookimpl
        def fk_renderer_backends(self):
            yield RendererBackend("recording", module.__name__, lambda: (True, "test backend"), priority=-10)

    pos = torch.tensor([[[-0.8, -0.7, 0, 1], [0.7, -0.8, 0, 1], [0, 0.8, 0, 1]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    uvs = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])
    try:
        with isolated_plugin_manager(Plugin()):
            assert dr.get_context("auto").backend == "cpu"  # lower priority: chosen only by name
            ctx = dr.get_context("recording")
            rast, rast_db = dr.rasterize(ctx, pos, tri, (8, 8))
            color, _ = dr.interpolate(colors, rast, tri, rast_db=rast_db)
            uv, _ = dr.interpolate(uvs, rast, tri)
            texel = dr.texture(torch.rand(1, 4, 4, 3), uv, filter_mode="linear")
            shaded = dr.antialias(color * texel, rast, pos, tri)
            assert calls == ["rasterize", "interpolate", "interpolate", "texture", "antialias"]
            assert shaded.shape == (1, 8, 8, 3) and shaded.abs().sum() > 0
            # the same ops from a CPU context never reach the third-party backend
            calls.clear()
            cpu_rast, _ = dr.rasterize(dr.get_context("cpu"), pos, tri, (8, 8))
            assert torch.equal(dr.interpolate(colors, cpu_rast, tri)[0], color) and calls == []
            # render_mesh through the chosen context: every op it uses goes to that backend
            K = torch.tensor([[[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]]])
            verts = torch.tensor([[[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]])
            render_mesh(verts, tri, K, (32, 32), uvs=uvs, uv_faces=tri, texture=torch.rand(4, 4, 3),
                        context=ctx)
            assert calls == ["rasterize", "interpolate", "interpolate", "texture"]
    finally:
        del sys.modules[module.__name__]
