"""The nvdiffrast backend passes the same conformance suite, and agrees with fk's CPU backend.

Skips (with the probe's reason) where nvdiffrast with CUDA is absent.
"""

from __future__ import annotations

import pytest
import torch

import fk.render as dr
from fk.render.backends import probe_nvdiffrast
from fk.testing.renderer_contract import RendererContract

AVAILABLE, REASON = probe_nvdiffrast()
pytestmark = pytest.mark.cuda


class TestNvdiffrastRendererContract(RendererContract):
    backend = "nvdiffrast"
    device = "cuda"
    supports_float64 = False  # nvdiffrast computes in float32 only


@pytest.mark.skipif(not AVAILABLE, reason=REASON)
def test_cpu_and_nvdiffrast_agree() -> None:
    """Ids equal away from triangle edges (both use pixel-centre sampling); barycentrics allclose."""
    gen = torch.Generator().manual_seed(0)
    n = 24
    grid = torch.stack(torch.meshgrid(torch.linspace(-0.9, 0.9, n), torch.linspace(-0.9, 0.9, n), indexing="ij"), -1)
    xy = grid.reshape(-1, 2) + 0.01 * torch.randn(n * n, 2, generator=gen)
    w = 1.0 + 0.5 * torch.rand(n * n, 1, generator=gen)
    z = 0.5 * torch.rand(n * n, 1, generator=gen)
    pos = torch.cat([xy * w, z * w, w], 1)[None].contiguous()
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([b, d, c], -1).reshape(-1, 3)]).int()
    res = (96, 128)
    cpu, cpu_db = dr.rasterize(dr.get_context("cpu"), pos, tri, res)
    gpu, gpu_db = dr.rasterize(dr.get_context("nvdiffrast"), pos.cuda(), tri.cuda(), res)
    gpu, gpu_db = gpu.cpu(), gpu_db.cpu()
    u, v = cpu[..., 0], cpu[..., 1]
    away = (cpu[..., 3] > 0) & (torch.minimum(torch.minimum(u, v), 1 - u - v) > 0.02)
    assert away.sum() > 0.5 * (cpu[..., 3] > 0).sum()
    assert torch.equal(cpu[..., 3][away], gpu[..., 3][away])
    torch.testing.assert_close(cpu[..., :3][away], gpu[..., :3][away], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(cpu_db[away], gpu_db[away], atol=1e-3, rtol=1e-2)
    attr = torch.rand(1, n * n, 3, generator=gen)
    out_cpu, _ = dr.interpolate(attr, cpu, tri)
    out_gpu, _ = dr.interpolate(attr.cuda(), gpu.cuda(), tri.cuda())
    torch.testing.assert_close(out_cpu[away], out_gpu.cpu()[away], atol=2e-4, rtol=1e-4)
