"""The fast CPU rasteriser against the brute-force reference and against its torch fallback.

Outputs and gradients on small random meshes (perspective, overlaps, vertices behind the camera),
exact ties on shared edges and vertices, degenerate triangles, and crack-free coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fk.render as dr
from fk.render.cpu import zbuffer
from fk.render.cpu.rasterize import _layout
from fk.render.reference import rasterize_reference


def random_mesh(seed: int, n_images: int = 2, n_vertices: int = 12, n_triangles: int = 10,
                behind: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n_images, n_vertices, 2, generator=gen) * 2.4 - 1.2
    w = torch.rand(n_images, n_vertices, 1, generator=gen) + 0.5
    if behind:
        w[:, :2] = -0.3  # two vertices behind the camera: their triangles straddle w = 0
    z = torch.rand(n_images, n_vertices, 1, generator=gen) * 2.2 - 1.1  # some pixels clip at |z/w| > 1
    pos = torch.cat([xy * w.abs(), z * w.abs(), w], -1).double()
    tri = torch.randint(0, n_vertices, (n_triangles, 3), generator=gen).int()
    return pos, tri


def grid_mesh(n: int, step: float, offset: float, diagonal_flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat (n+1)^2-vertex grid, w = 1, vertex (i, j) at pixel-unit coords (offset + step j, offset + step i)."""
    verts, tris = [], []
    for i in range(n + 1):
        for j in range(n + 1):
            verts.append([offset + step * j, offset + step * i])
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            if diagonal_flip ^ ((i + j) % 2 == 1):
                tris += [[a, b, d], [a, d, c]]
            else:
                tris += [[a, b, c], [b, d, c]]
    return torch.tensor(verts, dtype=torch.float64), torch.tensor(tris, dtype=torch.int32)


def to_clip(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel-unit (x, y), y up from the bottom edge, to clip space with w = 1 (z = 0)."""
    ndc = pixels / size * 2 - 1
    return torch.cat([ndc, torch.zeros_like(ndc[:, :1]), torch.ones_like(ndc[:, :1])], 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("behind", [False, True])
def test_fast_matches_reference_outputs(seed: int, behind: bool) -> None:
    pos, tri = random_mesh(seed, behind=behind)
    fast, fast_db = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (9, 11))
    ref, ref_db = rasterize_reference(pos, tri, (9, 11))
    assert torch.equal(fast[..., 3], ref[..., 3])
    assert (fast[..., 3] > 0).sum() > 30
    torch.testing.assert_close(fast[..., :2], ref[..., :2], atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(fast[..., 2], ref[..., 2], atol=1e-7, rtol=0)  # reference stores float32 depth
    torch.testing.assert_close(fast_db, ref_db, atol=1e-5, rtol=1e-3)  # central differences


def test_fast_matches_reference_gradients() -> None:
    pos, tri = random_mesh(4, n_images=1, n_vertices=8, n_triangles=6)
    weight = torch.randn(1, 8, 10, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = []
    for fn in (lambda p: dr.rasterize(dr.RasterizeCpuContext(), p, tri, (8, 10))[0],
               lambda p: rasterize_reference(p, tri, (8, 10))[0]):
        p = pos.clone().requires_grad_(True)
        (fn(p)[..., :2] * weight).sum().backward()
        grads.append(p.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], atol=1e-8, rtol=1e-7)


def test_range_mode_matches_reference() -> None:
    pos, tri = random_mesh(5, n_images=1, n_vertices=10, n_triangles=8)
    ranges = torch.tensor([[0, 5], [3, 5]], dtype=torch.int32)
    fast, _ = dr.rasterize(dr.RasterizeCpuContext(), pos[0], tri, (8, 8), ranges=ranges)
    ref, _ = rasterize_reference(pos[0], tri, (8, 8), ranges=ranges)
    assert torch.equal(fast[..., 3], ref[..., 3])
    torch.testing.assert_close(fast[..., :2], ref[..., :2], atol=1e-9, rtol=1e-9)


def test_exact_ties_on_shared_edges_and_vertices_match_reference() -> None:
    """Grid vertices on pixel centres, diagonals through pixel centres: every tie case occurs."""
    verts, tri = grid_mesh(3, 2.0, 0.5)
    pos = to_clip(verts, 8)[None]
    fast, _ = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (8, 8))
    ref, _ = rasterize_reference(pos, tri, (8, 8))
    assert torch.equal(fast[..., 3], ref[..., 3])


@pytest.mark.parametrize(("step", "offset", "flip"), [(2.0, 0.5, False), (2.0, 0.5, True), (1.5, -0.25, False)])
def test_closed_surface_no_cracks_no_double_cover(step: float, offset: float, flip: bool) -> None:
    """Each triangle alone (range mode, one image per triangle): the coverage counts sum to exactly 1
    on every pixel centre inside the grid, and vertices/edges lie exactly on pixel centres.

    size 16 keeps the pixel -> NDC -> pixel arithmetic exact, so vertices sit *exactly* on centres;
    the edge rule is exact on shared edges in any case, and at shared vertices when arithmetic is exact.
    """
    n = 6
    verts, tri = grid_mesh(n, step, offset, flip)
    size = 16
    pos = to_clip(verts, size)
    ranges = torch.tensor([[t, 1] for t in range(tri.shape[0])], dtype=torch.int32)
    rast, _ = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (size, size), ranges=ranges)
    count = (rast[..., 3] > 0).sum(0)
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    inside_1d = (centres > offset) & (centres < offset + n * step)
    inside = inside_1d[:, None] & inside_1d[None, :]
    assert torch.all(count[inside] == 1)
    assert torch.all(count <= 1)
    # the edge rule decides the grid's boundary centres too; interior + owned boundary = total cover
    full, _ = dr.rasterize(dr.RasterizeCpuContext(), pos[None], tri, (size, size))
    assert torch.equal(full[0, ..., 3] > 0, count > 0)


def test_jittered_fan_no_cracks() -> None:
    """A fan of random triangles around a centre vertex covers each pixel centre in its hull exactly once."""
    gen = torch.Generator().manual_seed(7)
    n = 9
    angles = torch.sort(torch.rand(n, generator=gen, dtype=torch.float64) * 2 * torch.pi).values
    radius = 0.6 + 0.3 * torch.rand(n, generator=gen, dtype=torch.float64)
    rim = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1)
    xy = torch.cat([torch.zeros(1, 2, dtype=torch.float64), rim])
    pos = torch.cat([xy, torch.zeros(n + 1, 1, dtype=torch.float64), torch.ones(n + 1, 1, dtype=torch.float64)], 1)
    tri = torch.tensor([[0, 1 + k, 1 + (k + 1) % n] for k in range(n)], dtype=torch.int32)
    ranges = torch.tensor([[t, 1] for t in range(n)], dtype=torch.int32)
    rast, _ = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (40, 40), ranges=ranges)
    count = (rast[..., 3] > 0).sum(0)
    assert count.max() == 1
    assert count[20, 20] == 1  # the centre vertex region: owned once
    assert count.sum() > 300


def test_degenerate_triangles_are_skipped_and_gradients_finite() -> None:
    pos = torch.tensor([[[-0.8, -0.8, 0, 1], [0.8, -0.8, 0, 1], [0.0, 0.8, 0, 1], [0.4, 0.0, 0, 1]]],
                       dtype=torch.float64, requires_grad=True)
    tri = torch.tensor([[0, 0, 1], [0, 1, 1], [0, 3, 2], [0, 1, 2]], dtype=torch.int32)  # 0, 1: zero area
    tri_line = torch.tensor([[0, 1, 2], [0, 3, 3]], dtype=torch.int32)
    rast, db = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (12, 12))
    ids = set(rast[..., 3].unique().tolist())
    assert 1.0 not in ids and 2.0 not in ids and {3.0, 4.0} <= ids
    (rast[..., :2].sum() + db.sum()).backward()
    assert torch.isfinite(pos.grad).all()
    ref, _ = rasterize_reference(pos, tri, (12, 12))
    assert torch.equal(rast[..., 3], ref[..., 3])
    rast_line, _ = dr.rasterize(dr.RasterizeCpuContext(), pos, tri_line, (12, 12))
    assert 2.0 not in rast_line[..., 3].unique().tolist()


def test_overlapping_coplanar_tie_goes_to_lower_index() -> None:
    pos = torch.tensor([[[-0.8, -0.8, 0.2, 1], [0.8, -0.8, 0.2, 1], [0.0, 0.8, 0.2, 1]]])
    tri = torch.tensor([[0, 1, 2], [2, 0, 1], [1, 2, 0]], dtype=torch.int32)
    rast, _ = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (8, 8))
    assert set(rast[..., 3].unique().tolist()) == {0.0, 1.0}


@pytest.mark.skipif(not zbuffer.HAVE_NUMBA, reason="numba unavailable")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_torch_fallback_visibility_equals_numba(seed: int) -> None:
    pos, tri = random_mesh(seed, n_images=3, n_vertices=40, n_triangles=60, behind=seed % 2 == 1)
    ranges = torch.tensor([[0, 60], [10, 30], [0, 0]]) if seed == 2 else None
    pos3, pos_of_image, start, count = _layout(pos[0] if ranges is not None else pos, tri, ranges)
    ids_nb, depth_nb = zbuffer.visibility_numba(pos3.numpy(), tri.long().numpy(), pos_of_image.numpy(),
                                                start.numpy(), count.numpy(), 17, 23)
    ids_t, depth_t = zbuffer.visibility_torch(pos3, tri, pos_of_image, start, count, 17, 23, max_pairs=500)
    assert np.array_equal(ids_nb, ids_t.numpy())
    assert np.array_equal(depth_nb, depth_t.numpy())


@pytest.mark.skipif(not zbuffer.HAVE_NUMBA, reason="numba unavailable")
def test_torch_fallback_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    pos, tri = random_mesh(11)
    pos = pos.float()
    with_numba = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (10, 12))
    monkeypatch.setattr(zbuffer, "HAVE_NUMBA", False)
    without = dr.rasterize(dr.RasterizeCpuContext(), pos, tri, (10, 12))
    assert torch.equal(with_numba[0][..., 3], without[0][..., 3])
    torch.testing.assert_close(with_numba[0], without[0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(with_numba[1], without[1], atol=2e-4, rtol=1e-3)
