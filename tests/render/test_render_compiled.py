"""The CPU backend's compiled kernels against its torch implementations (``impl="torch"``).

``interpolate`` (forward and hand-written backward), the rasteriser's barycentric backward and
``antialias`` (forward and backward) must give the torch reference's values and gradients: equal to
rounding in float64, close in float32 (the kernels work in float64 inside), on small random meshes and
on a closed mesh large enough for the parallel, per-thread-buffer path. ``gradcheck`` runs on the
compiled paths themselves in float64.
"""

from __future__ import annotations

import fk.render as dr
import numpy as np
import pytest
import torch
from fk.errors import ShapeError
from fk.render.cpu import zbuffer
from fk.render.cpu.antialias import antialias, construct_topology_hash
from fk.render.cpu.interpolate import interpolate
from fk.render.cpu.rasterize import rasterize

pytestmark = pytest.mark.skipif(not zbuffer.HAVE_NUMBA, reason="numba unavailable: only the torch path runs")

CTX = dr.get_context("cpu")


def quad(n_images: int = 2, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two triangles in perspective (different w per vertex), slightly different per image."""
    base = torch.tensor([[-0.9, -0.8, 0.1, 1.1], [1.9, -1.2, 0.4, 2.0], [-0.2, 1.3, 0.2, 1.5],
                         [0.5, 0.9, -0.3, 1.2]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    pos = torch.stack([base + 0.05 * i * torch.randn(base.shape, generator=gen, dtype=torch.float64)
                       for i in range(n_images)])
    return pos.to(dtype), torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)


def sphere(rings: int = 14, segments: int = 24, n_images: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed lat-long sphere in perspective (welded, so only its outline is a silhouette)."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    verts = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    verts = np.concatenate([verts, [[0, 1, 0], [0, -1, 0]]])
    top, bottom = len(verts) - 2, len(verts) - 1
    idx = np.arange((rings - 1) * segments).reshape(rings - 1, segments)
    nxt = np.roll(idx, -1, axis=1)
    faces = np.concatenate([
        np.stack([idx[:-1], nxt[:-1], idx[1:]], -1).reshape(-1, 3),
        np.stack([nxt[:-1], nxt[1:], idx[1:]], -1).reshape(-1, 3),
        np.stack([np.full(segments, top), nxt[0], idx[0]], -1),
        np.stack([np.full(segments, bottom), idx[-1], nxt[-1]], -1)])
    images = []
    for b in range(n_images):
        a = 0.3 * b
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        v = verts @ rot.T * np.array([0.8, 1.0, 0.9])
        depth = 3.0 - v[:, 2]
        images.append(np.stack([1.9 * v[:, 0], 1.9 * v[:, 1], 0.5 * depth - 1.0, depth], -1))
    return torch.tensor(np.stack(images)), torch.tensor(faces, dtype=torch.int32)


def grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], seed: int = 1) -> list[torch.Tensor | None]:
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return list(torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True))


def assert_same(a: list, b: list, **tol) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, **tol)


# -- interpolate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attr_shape", [(4, 3), (2, 4, 3), (1, 4, 3)])
@pytest.mark.parametrize("diff_attrs", [None, "all", [2, 0, 2]])
def test_interpolate_compiled_equals_torch(attr_shape, diff_attrs) -> None:
    pos, tri = quad()
    rast, db = dr.rasterize(CTX, pos, tri, (6, 8))
    attr = torch.randn(attr_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inputs = (attr.requires_grad_(), rast.detach().requires_grad_(), db.detach().requires_grad_())
    results = {}
    for impl in ("compiled", "torch"):
        out, da = interpolate(*inputs[:2], tri, rast_db=inputs[2], diff_attrs=diff_attrs, impl=impl)
        both = torch.cat([out, da], -1)
        results[impl] = [both.detach()] + grads(both, inputs)
    assert (results["torch"][0] != 0).any()
    assert_same(results["compiled"], results["torch"], atol=1e-12, rtol=1e-12)


def test_interpolate_compiled_gradcheck() -> None:
    pos, tri = quad()
    rast, db = dr.rasterize(CTX, pos, tri, (5, 7))
    attr = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def fn(a, uv, d):
        r = torch.cat([uv, rast[..., 2:]], -1)
        out, da = interpolate(a, r, tri, rast_db=d, diff_attrs="all", impl="compiled")
        return torch.cat([out, da], -1)

    assert torch.autograd.gradcheck(fn, (attr.requires_grad_(), rast[..., :2].clone().requires_grad_(),
                                         db.clone().requires_grad_()))


def test_interpolate_compiled_float32_and_mixed_dtypes() -> None:
    pos, tri = sphere()
    rast, db = dr.rasterize(CTX, pos.float(), tri, (130, 128))  # above SERIAL_BELOW: the parallel path
    attr = torch.rand(pos.shape[1], 3, generator=torch.Generator().manual_seed(2))
    for a in (attr, attr.double()):  # float32 everywhere; float64 attributes promote float32 rast
        outs = [interpolate(a, rast, tri, rast_db=db, diff_attrs=[1], impl=impl)
                for impl in ("compiled", "torch")]
        assert outs[0][0].dtype == outs[1][0].dtype == a.dtype
        torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=1e-5)


def test_interpolate_rejects_ids_beyond_tri() -> None:
    pos, tri = quad(1)
    rast, _ = dr.rasterize(CTX, pos, tri, (6, 8))
    with pytest.raises(ShapeError, match="outside tri's 1 triangles"):
        interpolate(torch.rand(4, 1, dtype=torch.float64), rast, tri[:1], impl="compiled")


# -- rasterize backward --------------------------------------------------------------------------
@pytest.mark.parametrize("grad_db", [False, True])
def test_rasterize_compiled_backward_equals_torch(grad_db: bool) -> None:
    for pos, tri, size in (quad() + ((6, 8),), sphere() + ((131, 129),)):
        results = {}
        for impl in ("compiled", "torch"):
            leaf = pos.clone().requires_grad_()
            rast, db = rasterize(CTX, leaf, tri, size, grad_db=grad_db, impl=impl)
            both = torch.cat([rast[..., :2], db], -1)
            results[impl] = [both.detach()] + grads(both, (leaf,))
        assert results["torch"][1].abs().max() > 0
        assert_same(results["compiled"], results["torch"], atol=1e-9, rtol=1e-9)


def test_rasterize_compiled_backward_float32_no_less_accurate_than_torch() -> None:
    """In float32 the kernel (float64 inside) must be at least as close to the float64 gradient as the torch
    replay (float32 arithmetic, ill-conditioned for sliver triangles' ``rast_db``)."""
    pos, tri = sphere()
    rast64, _ = rasterize(CTX, pos, tri, (96, 96))
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(rast64.shape[:3] + (6,), generator=gen, dtype=torch.float64)
    results = {}
    for impl, dtype in (("compiled", torch.float32), ("torch", torch.float32), ("torch", torch.float64)):
        leaf = pos.to(dtype).requires_grad_()
        rast, db = rasterize(CTX, leaf, tri, (96, 96), impl=impl)
        assert torch.equal(rast[..., 3], rast64[..., 3].to(dtype))
        loss = (torch.cat([rast[..., :2], db], -1) * weight.to(dtype)).sum()
        results[impl, dtype] = torch.autograd.grad(loss, leaf)[0].double()
    exact = results["torch", torch.float64]
    error_compiled = (results["compiled", torch.float32] - exact).abs().max()
    error_torch = (results["torch", torch.float32] - exact).abs().max()
    assert error_compiled <= error_torch
    assert error_compiled <= 1e-4 * exact.abs().max()


def test_one_image_in_bands_equals_the_torch_z_buffer() -> None:
    """A single image large enough for the parallel path is split into horizontal bands (each thread
    skips the triangles outside its band): ids and depths equal the torch z-buffer's exactly."""
    pos, tri = sphere(n_images=1)
    pos[0, :5, 3] = -0.2  # a few vertices behind the camera: their triangles span every band
    layout = (pos.numpy(), tri.long().numpy(), np.zeros(1, np.int64), np.zeros(1, np.int64),
              np.array([tri.shape[0]]))
    assert zbuffer._bands(1, 160) > 1 or zbuffer.numba.get_num_threads() == 1
    ids_nb, depth_nb = zbuffer.visibility_numba(*layout, 160, 150)
    ids_t, depth_t = zbuffer.visibility_torch(*(torch.from_numpy(x) for x in layout), 160, 150)
    assert (ids_nb > 0).sum() > 1000
    assert np.array_equal(ids_nb, ids_t.numpy()) and np.array_equal(depth_nb, depth_t.numpy())


def test_rasterize_compiled_gradcheck_with_db() -> None:
    pos, tri = quad()

    def fn(p):
        rast, db = rasterize(CTX, p, tri, (5, 7), impl="compiled")
        return torch.cat([rast[..., :2], db], -1)

    assert torch.autograd.gradcheck(fn, (pos.clone().requires_grad_(),))


# -- antialias -----------------------------------------------------------------------------------
def antialias_both(pos, tri, size, dtype, boost=1.0, range_mode=False):
    rast, _ = dr.rasterize(CTX, pos.to(dtype), tri, size)
    colors = torch.rand(pos.shape[-2], 3, generator=torch.Generator().manual_seed(4), dtype=dtype)
    image, _ = dr.interpolate(colors, rast, tri)
    if range_mode:  # one pos array shared by every image
        pos = pos[0]
    topology = construct_topology_hash(tri)
    results = {}
    for impl in ("compiled", "torch"):
        p, c = pos.to(dtype).clone().requires_grad_(), image.detach().clone().requires_grad_()
        out = antialias(c, rast, p, tri, topology_hash=topology, pos_gradient_boost=boost, impl=impl)
        results[impl] = [out.detach()] + grads(out, (c, p))
    return image, results


@pytest.mark.parametrize("range_mode", [False, True])
def test_antialias_compiled_equals_torch_float64(range_mode: bool) -> None:
    pos, tri = sphere()
    image, results = antialias_both(pos, tri, (131, 129), torch.float64, boost=1.7, range_mode=range_mode)
    assert int(((results["torch"][0] - image).abs().sum(-1) > 0).sum()) > 100  # the outline really blends
    assert results["torch"][2].abs().max() > 0
    assert_same(results["compiled"], results["torch"], atol=1e-11, rtol=1e-11)


@pytest.mark.parametrize(("seed", "behind"), [(0, [0, 1]), (1, [0, 1]), (2, [1])])
def test_antialias_compiled_equals_torch_on_a_soup_behind_the_camera(seed: int, behind: list[int]) -> None:
    """Random overlapping triangles, shared and unshared edges, two vertices behind the camera (``w < 0``:
    the compiled classifier then looks at every pair of that image; with ``behind == [1]`` only the
    second image of the batch has them, and it alone is looked at whole)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(2, 14, 2, generator=gen, dtype=torch.float64) * 2.4 - 1.2
    w = torch.rand(2, 14, 1, generator=gen, dtype=torch.float64) + 0.5
    w[behind, :2] = -0.3
    z = torch.rand(2, 14, 1, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    pos = torch.cat([xy * w.abs(), z * w.abs(), w], -1)
    tri = torch.randint(0, 14, (16, 3), generator=gen).int()
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
    image, results = antialias_both(pos, tri, (40, 44), torch.float64)
    assert int(((results["torch"][0] - image).abs().sum(-1) > 0).sum()) > 20
    assert_same(results["compiled"], results["torch"], atol=1e-11, rtol=1e-11)


def test_antialias_compiled_float32_close_to_torch() -> None:
    pos, tri = sphere()
    _, results = antialias_both(pos, tri, (64, 64), torch.float32)
    # the kernels place the crossing in float64, the torch path in float32
    scale = float(results["torch"][2].abs().max())
    assert_same(results["compiled"][:2], results["torch"][:2], atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(results["compiled"][2], results["torch"][2], atol=2e-4 * scale, rtol=1e-3)


def test_antialias_compiled_gradcheck_on_a_sphere() -> None:
    pos, tri = sphere(5, 7, n_images=1)  # no pixel pair near a decision boundary (which pixels blend)
    rast, _ = dr.rasterize(CTX, pos, tri, (9, 10))
    color = torch.rand(1, 9, 10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    topology = construct_topology_hash(tri)

    def fn(p, c):
        return antialias(c, rast, p, tri, topology_hash=topology, impl="compiled")

    assert (fn(pos, color) != color).any(-1).sum() >= 10
    assert torch.autograd.gradcheck(fn, (pos.clone().requires_grad_(), color.clone().requires_grad_()),
                                    eps=1e-7, atol=1e-6)


def test_impl_names_are_checked() -> None:
    pos, tri = quad(1)
    rast, _ = dr.rasterize(CTX, pos, tri, (4, 4))
    with pytest.raises(ValueError, match="impl must be"):
        interpolate(torch.rand(4, 1, dtype=torch.float64), rast, tri, impl="fast")
    with pytest.raises(ValueError, match="impl must be"):
        antialias(rast[..., :1], rast, pos, tri, impl="fast")
    with pytest.raises(ValueError, match="impl must be"):
        rasterize(CTX, pos, tri, (4, 4), impl="fast")
