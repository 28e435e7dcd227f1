"""The conformance suite every ``fk.render`` backend passes.

Subclass it in a test module and name the backend::

    from fk.testing.renderer_contract import RendererContract

    class TestMyBackend(RendererContract):
        backend = "cpu"            # a name get_context() accepts
        device = "cpu"             # where the backend wants its tensors
        supports_float64 = True    # float64 gradcheck; otherwise a float32 finite-difference check

The whole class skips when the backend is not available (its probe says why). Expected values are
computed by hand from nvdiffrast's documented conventions, never by the code under test: each test's
docstring says how.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

ERRORS = (ValueError, RuntimeError)  # fk raises ShapeError(ValueError); nvdiffrast's C++ checks RuntimeError


class RendererContract:
    backend: str = "cpu"
    device: str = "cpu"
    supports_float64: bool = True

    # -- helpers ---------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _require_backend(self) -> None:
        import fk.render as dr

        rows = {r["name"]: r for r in dr.describe_backends()}
        row = rows.get(self.backend)
        if row is None or not row["available"]:
            pytest.skip(f"renderer backend {self.backend!r} unavailable: {row['reason'] if row else 'unknown'}")

    @property
    def dr(self) -> Any:
        import fk.render as dr

        return dr

    def ctx(self) -> Any:
        return self.dr.get_context(self.backend, device=self.device)

    def t(self, values: Any, dtype: Any = None) -> Any:
        import torch

        return torch.as_tensor(values, dtype=dtype or torch.float32, device=self.device)

    def tri(self, values: Any) -> Any:
        import torch

        return torch.as_tensor(values, dtype=torch.int32, device=self.device)

    def flat_pos(self, xy: list[list[float]], z: float = 0.0) -> Any:
        """Clip positions ``(1, N, 4)`` with ``w = 1`` (so NDC = clip)."""
        return self.t([[[x, y, z, 1.0] for x, y in xy]])

    # Right-half, tall triangle: its mirror images in x or y cover different pixels.
    ASYM = [[0.5, -0.5], [0.9, -0.5], [0.5, 0.9]]

    # -- layout and conventions -------------------------------------------------
    def test_shapes_and_dtypes(self) -> None:
        import torch

        pos = self.t([[[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]]] * 2)
        rast, db = self.dr.rasterize(self.ctx(), pos, self.tri([[0, 1, 2]]), (6, 10))
        assert rast.shape == (2, 6, 10, 4) and db.shape == (2, 6, 10, 4)
        assert rast.dtype == torch.float32 and db.dtype == torch.float32
        ids = rast[..., 3]
        assert torch.equal(ids, ids.round())

    def test_ids_offset_by_one_and_empty_pixels_zero(self) -> None:
        """Triangle 1 of 2 (triangle 0 is off screen) must read id 2; uncovered pixels are (0, 0, 0, 0)."""
        import torch

        pos = self.flat_pos([[5, 5], [6, 5], [5, 6], [-0.5, -0.5], [0.5, -0.5], [0, 0.5]])
        rast, _ = self.dr.rasterize(self.ctx(), pos, self.tri([[0, 1, 2], [3, 4, 5]]), (8, 8))
        ids = rast[0, ..., 3]
        assert set(ids.unique().tolist()) == {0.0, 2.0}
        assert torch.all(rast[0][ids == 0] == 0)
        assert (ids == 2).sum() > 4

    def test_orientation_row_zero_is_bottom(self) -> None:
        """20x20 pixels, centre of (row r, col c) at NDC ((c + .5)/10 - 1, (r + .5)/10 - 1).

        Row 5 is y = -0.45: the triangle spans x in [0.5, 0.886] there, so cols 15..18; row 16 is
        y = 0.65: x in [0.5, 0.571], col 15 only. Barycentrics at (row 5, col 15) = point (0.55, -0.45):
        (0.05, 0.05) = v (0.4, 0) + w2 (0, 1.4), so v = 0.125, w2 = 1/28, u = 1 - v - w2.
        """
        import torch

        rast, _ = self.dr.rasterize(self.ctx(), self.flat_pos(self.ASYM), self.tri([[0, 1, 2]]), (20, 20))
        ids = rast[0, ..., 3].cpu()
        assert torch.all(ids[5, 15:19] == 1) and ids[5, 19] == 0 and ids[5, 14] == 0
        assert ids[16, 15] == 1 and ids[16, 16] == 0
        assert torch.all(ids[:, :15] == 0) and torch.all(ids[:5] == 0) and torch.all(ids[19] == 0)
        u, v = rast[0, 5, 15, 0].item(), rast[0, 5, 15, 1].item()
        assert u == pytest.approx(1 - 0.125 - 1 / 28, abs=1e-5) and v == pytest.approx(0.125, abs=1e-5)

    def test_no_backface_culling(self) -> None:
        """Reversing the winding (v0, v2, v1) covers the same pixels, with v and the third weight swapped."""
        import torch

        pos = self.flat_pos(self.ASYM)
        a, _ = self.dr.rasterize(self.ctx(), pos, self.tri([[0, 1, 2]]), (20, 20))
        b, _ = self.dr.rasterize(self.ctx(), pos, self.tri([[0, 2, 1]]), (20, 20))
        covered = a[..., 3] > 0
        assert torch.equal(covered, b[..., 3] > 0)
        assert torch.allclose(a[..., 0][covered], b[..., 0][covered], atol=1e-5)
        assert torch.allclose((1 - a[..., 0] - a[..., 1])[covered], b[..., 1][covered], atol=1e-5)

    def test_depth_test_keeps_smallest_z_over_w(self) -> None:
        """Two overlapping quads-worth triangles at z/w = 0.3 and -0.2 (w = 2): the -0.2 one wins in either order."""
        import torch

        near = [[-1.6, -1.6, -0.4, 2], [1.6, -1.6, -0.4, 2], [0, 1.6, -0.4, 2]]
        far = [[-0.8, -0.8, 0.3, 1], [0.8, -0.8, 0.3, 1], [0, 0.8, 0.3, 1]]
        for order in ([near, far], [far, near]):
            pos = self.t([order[0] + order[1]])
            rast, _ = self.dr.rasterize(self.ctx(), pos, self.tri([[0, 1, 2], [3, 4, 5]]), (16, 16))
            near_id = 1.0 if order[0] is near else 2.0
            centre = rast[0, 7, 7]
            assert centre[3].item() == near_id
            assert centre[2].item() == pytest.approx(-0.2, abs=1e-6)
            depths = rast[0, ..., 2][rast[0, ..., 3] == near_id]
            assert torch.allclose(depths, torch.full_like(depths, -0.2), atol=1e-6)

    def test_perspective_correct_barycentrics(self) -> None:
        """With varying w, interpolating clip (x, y, z, w) must reproduce the pixel centre: x/w = NDC x, and z/w."""
        import torch

        pos = self.t([[[-0.9, -0.9, 0.1, 1.0], [2.4, -2.4, 1.5, 3.0], [-1.0, 1.8, 0.8, 2.0]]])
        tri = self.tri([[0, 1, 2]])
        rast, _ = self.dr.rasterize(self.ctx(), pos, tri, (12, 16))
        out, _ = self.dr.interpolate(pos, rast, tri)
        covered = rast[0, ..., 3] > 0
        assert covered.sum() > 20
        rows, cols = torch.nonzero(covered, as_tuple=True)
        o = out[0][covered]
        ndc_x = (cols.to(o.dtype) + 0.5) / 8 - 1
        ndc_y = (rows.to(o.dtype) + 0.5) / 6 - 1
        assert torch.allclose(o[:, 0] / o[:, 3], ndc_x, atol=1e-5)
        assert torch.allclose(o[:, 1] / o[:, 3], ndc_y, atol=1e-5)
        assert torch.allclose(rast[0, ..., 2][covered], o[:, 2] / o[:, 3], atol=1e-5)

    def test_range_mode_equals_instanced_mode(self) -> None:
        """Two images: instanced pos (2, 4, 4) with one tri list == range mode over concatenated vertices."""
        import torch

        gen = torch.Generator().manual_seed(3)
        pos = torch.rand(2, 4, 4, generator=gen) * 1.6 - 0.8
        pos[..., 3] = 1.0
        pos[..., 2] = pos[..., 2] * 0.5
        pos = pos.to(self.device)
        tri = [[0, 1, 2], [1, 3, 2]]
        inst, inst_db = self.dr.rasterize(self.ctx(), pos, self.tri(tri), (10, 12))
        tri_range = self.tri(tri + [[a + 4, b + 4, c + 4] for a, b, c in tri])
        ranges = torch.tensor([[0, 2], [2, 2]], dtype=torch.int32)  # on the CPU, as nvdiffrast requires
        rng, rng_db = self.dr.rasterize(self.ctx(), pos.reshape(8, 4), tri_range, (10, 12), ranges=ranges)
        assert torch.allclose(inst[..., :3], rng[..., :3], atol=1e-6)
        expected_ids = inst[..., 3] + torch.tensor([0.0, 2.0], device=self.device)[:, None, None] * (inst[..., 3] > 0)
        assert torch.equal(rng[..., 3], expected_ids)  # range-mode ids index the whole tri array
        assert torch.allclose(inst_db, rng_db, atol=1e-5)

    # -- errors ------------------------------------------------------------------
    def test_bad_shapes_raise_nvdiffrast_messages(self) -> None:
        ctx, tri = self.ctx(), self.tri([[0, 1, 2]])
        pos = self.flat_pos(self.ASYM)
        with pytest.raises(ERRORS, match=re.escape("instance mode - pos must have shape [>0, >0, 4]")):
            self.dr.rasterize(ctx, pos[0], tri, (8, 8))
        with pytest.raises(ERRORS, match=re.escape("instance mode - pos must have shape [>0, >0, 4]")):
            self.dr.rasterize(ctx, pos[..., :3], tri, (8, 8))
        with pytest.raises(ERRORS, match=re.escape("tri must have shape [>0, 3]")):
            self.dr.rasterize(ctx, pos, tri[:, :2], (8, 8))
        with pytest.raises(ERRORS, match=re.escape("resolution must be [>0, >0]")):
            self.dr.rasterize(ctx, pos, tri, (0, 8))

    # -- gradients ---------------------------------------------------------------
    def _grad_check(self, fn: Any, *inputs: Any) -> None:
        import torch

        if self.supports_float64:
            args = [x.detach().double().requires_grad_(x.is_floating_point()) for x in inputs]
            assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-4)
            return
        # float32 backends: compare autograd with central differences along a random direction
        args = [x.detach().float().requires_grad_(True) for x in inputs]
        out = fn(*args)
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(out.shape, generator=gen).to(out.device)
        grads = torch.autograd.grad((out * weight).sum(), args)
        for i, (x, g) in enumerate(zip(args, grads, strict=True)):
            d = torch.randn(x.shape, generator=gen).to(x.device)
            eps = 1e-3
            plus = [a.detach() + (eps * d if j == i else 0) for j, a in enumerate(args)]
            minus = [a.detach() - (eps * d if j == i else 0) for j, a in enumerate(args)]
            numeric = ((fn(*plus) - fn(*minus)) * weight).sum() / (2 * eps)
            assert (g * d).sum().item() == pytest.approx(numeric.item(), rel=5e-2, abs=1e-3)

    def test_rasterize_gradients_through_barycentrics(self) -> None:
        """d(u, v, rast_db)/d(pos) on a small perspective mesh; visibility stays put for small steps."""
        pos = self.t([[[-0.9, -0.8, 0.1, 1.1], [1.9, -1.2, 0.4, 2.0], [-0.2, 1.3, 0.2, 1.5], [1.2, 1.1, 0.3, 1.3]]])
        tri = self.tri([[0, 1, 2], [1, 3, 2]])

        def fn(p: Any) -> Any:
            rast, db = self.dr.rasterize(self.ctx(), p, tri, (7, 9))
            return __import__("torch").cat([rast[..., :2], db], -1)

        self._grad_check(fn, pos)

    def test_grad_db_false_keeps_derivatives_but_stops_their_gradient(self) -> None:
        """nvdiffrast computes ``rast_db`` either way; ``grad_db=False`` only drops its gradient to ``pos``.

        Expected derivatives by hand: with ``w = 1`` the barycentrics are affine in the pixel, so for the
        triangle (-0.95, -0.9), (0.9, -0.95), (0, 0.95) at 10x16 pixels, ``du/dX`` etc. are the entries of the
        inverse of the 2x2 edge matrix in pixel units, the same at every covered pixel.
        """
        import torch

        corners = [[-0.95, -0.9], [0.9, -0.95], [0.0, 0.95]]
        pos = self.flat_pos(corners)
        tri = self.tri([[0, 1, 2]])
        px = torch.tensor([[(x + 1) * 8, (y + 1) * 5] for x, y in corners], dtype=torch.float64)
        # u = weight of vertex 0, v = weight of vertex 1: p = p2 + u (p0 - p2) + v (p1 - p2)
        edges = torch.stack([px[0] - px[2], px[1] - px[2]], 1)  # columns d(p)/du, d(p)/dv
        inv = torch.linalg.inv(edges)  # rows: (du/dX, du/dY), (dv/dX, dv/dY)
        expected = self.t(inv.reshape(-1).tolist())
        rast_on, db_on = self.dr.rasterize(self.ctx(), pos, tri, (10, 16), grad_db=True)
        rast_off, db_off = self.dr.rasterize(self.ctx(), pos, tri, (10, 16), grad_db=False)
        covered = rast_off[0, ..., 3] > 0
        assert covered.sum() > 20
        assert torch.equal(rast_on, rast_off) and torch.equal(db_on, db_off)
        n = int(covered.sum())
        assert torch.allclose(db_off[0][covered], expected.expand(n, 4), rtol=1e-4, atol=1e-6)

        gen = torch.Generator().manual_seed(4)
        weight_r = torch.randn(rast_on[..., :2].shape, generator=gen).to(self.device)
        weight_db = torch.randn(db_on.shape, generator=gen).to(self.device)

        def grad(grad_db: bool, with_db: bool) -> Any:
            leaf = self.t([[[x, y, 0.0, 1.0] for x, y in corners]])
            leaf = leaf * self.t([[[1.0, 1.0, 1.0, 1.0], [1.2, 1.2, 1.0, 1.2], [0.9, 0.9, 1.0, 0.9]]])
            leaf.requires_grad_(True)  # varying w: rast_db then depends on pos
            rast, db = self.dr.rasterize(self.ctx(), leaf, tri, (10, 16), grad_db=grad_db)
            loss = (rast[..., :2] * weight_r).sum() + ((db * weight_db).sum() if with_db else 0.0)
            (g,) = torch.autograd.grad(loss, [leaf])
            return g

        only_rast = grad(True, with_db=False)
        assert torch.allclose(grad(False, with_db=True), only_rast, atol=1e-6)  # the flag drops db's share
        assert not torch.allclose(grad(True, with_db=True), only_rast, atol=1e-4)  # which is really there

    def test_interpolate_with_diff_attrs(self) -> None:
        """attr = (NDC x, NDC y, 3) with w = 1: out equals the pixel centre, dA/dX = 2 / W, dA/dY = 2 / H."""
        import torch

        pos = self.flat_pos([[-0.95, -0.9], [0.9, -0.95], [0.0, 0.95]])
        tri = self.tri([[0, 1, 2]])
        rast, db = self.dr.rasterize(self.ctx(), pos, tri, (10, 16))
        attr = torch.cat([pos[0, :, :2], torch.full_like(pos[0, :, :1], 3.0)], 1)  # (V, 3), shared
        out, da = self.dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs=[0, 1])
        assert out.shape == (1, 10, 16, 3) and da.shape == (1, 10, 16, 4)
        covered = rast[0, ..., 3] > 0
        rows, cols = torch.nonzero(covered, as_tuple=True)
        assert torch.allclose(out[0][covered][:, 0], (cols.float().to(self.device) + 0.5) / 8 - 1, atol=1e-5)
        assert torch.allclose(out[0][covered][:, 1], (rows.float().to(self.device) + 0.5) / 5 - 1, atol=1e-5)
        assert torch.all(out[0][~covered] == 0) and torch.allclose(out[0][covered][:, 2], torch.full_like(out[0][covered][:, 2], 3.0))
        expected = self.t([2 / 16, 0.0, 0.0, 2 / 10])
        assert torch.allclose(da[0][covered], expected.expand(int(covered.sum()), 4), atol=1e-5)
        _, da_all = self.dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs="all")
        assert da_all.shape == (1, 10, 16, 6)
        _, none = self.dr.interpolate(attr, rast, tri)
        assert none.shape[-1] == 0

    def test_interpolate_gradients(self) -> None:
        import torch

        pos = self.t([[[-0.9, -0.8, 0.1, 1.1], [1.9, -1.2, 0.4, 2.0], [-0.2, 1.3, 0.2, 1.5]]])
        tri = self.tri([[0, 1, 2]])
        rast, db = self.dr.rasterize(self.ctx(), pos, tri, (6, 8))
        attr = torch.randn(1, 3, 2, generator=torch.Generator().manual_seed(1)).to(self.device)

        def fn(a: Any, uv: Any, d: Any) -> Any:  # ids and z/w are not differentiable inputs
            r = torch.cat([uv, rast[..., 2:].to(uv.dtype)], -1)
            out, da = self.dr.interpolate(a, r, tri, rast_db=d, diff_attrs="all")
            return torch.cat([out, da], -1)

        self._grad_check(fn, attr, rast[..., :2], db)

    # -- texture -------------------------------------------------------------------
    def _texture_case(self) -> tuple[Any, Any]:
        """A 2x3 texture with values 10 * row + col (row 0 at v = 0)."""
        tex = self.t([[[[0.0], [1.0], [2.0]], [[10.0], [11.0], [12.0]]]])
        return tex, (1, 2, 3)

    def _uv(self, points: list[list[float]]) -> Any:
        return self.t([[points]])  # (1, 1, N, 2)

    def test_texture_nearest_and_boundaries(self) -> None:
        """Texel (row i, col j) has its centre at ((j + .5) / 3, (i + .5) / 2)."""
        import torch

        tex, _ = self._texture_case()
        uv = self._uv([[0.5 / 3, 0.25], [2.5 / 3, 0.75], [1.2, 0.25], [-0.1, 0.75]])
        wrap = self.dr.texture(tex, uv, filter_mode="nearest", boundary_mode="wrap")[0, 0, :, 0]
        clamp = self.dr.texture(tex, uv, filter_mode="nearest", boundary_mode="clamp")[0, 0, :, 0]
        zero = self.dr.texture(tex, uv, filter_mode="nearest", boundary_mode="zero")[0, 0, :, 0]
        assert torch.allclose(wrap, self.t([0.0, 12.0, 0.0, 12.0]))
        assert torch.allclose(clamp, self.t([0.0, 12.0, 2.0, 10.0]))
        assert torch.allclose(zero, self.t([0.0, 12.0, 0.0, 0.0]))

    def test_texture_linear(self) -> None:
        """Half way between texel centres (row 0, cols 0 and 1) reads 0.5; at the middle of all four, 5.5."""
        import torch

        tex, _ = self._texture_case()
        uv = self._uv([[1.0 / 3, 0.25], [1.0 / 3, 0.5], [0.0, 0.25]])
        out = self.dr.texture(tex, uv, filter_mode="linear", boundary_mode="wrap")[0, 0, :, 0]
        # u = 0 lies half way between col 2 (wrapped) and col 0 of row 0: (2 + 0) / 2
        assert torch.allclose(out, self.t([0.5, 5.5, 1.0]), atol=1e-5)
        clamp = self.dr.texture(tex, uv, filter_mode="linear", boundary_mode="clamp")[0, 0, :, 0]
        assert torch.allclose(clamp[2], self.t(0.0), atol=1e-5)

    def test_texture_gradients(self) -> None:
        import torch

        gen = torch.Generator().manual_seed(2)
        tex = torch.rand(1, 4, 5, 2, generator=gen).to(self.device)
        uv = (torch.rand(1, 3, 3, 2, generator=gen) * 1.4 - 0.2).to(self.device)

        def fn(t: Any, u: Any) -> Any:
            return self.dr.texture(t, u, filter_mode="linear", boundary_mode="wrap")

        self._grad_check(fn, tex, uv)

    def test_antialias_keeps_shape(self) -> None:
        pos = self.flat_pos(self.ASYM)
        tri = self.tri([[0, 1, 2]])
        rast, _ = self.dr.rasterize(self.ctx(), pos, tri, (8, 8))
        color, _ = self.dr.interpolate(self.t([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), rast, tri)
        out = self.dr.antialias(color, rast, pos, tri)
        assert out.shape == color.shape and out.dtype == color.dtype

    # -- antialias -------------------------------------------------------------------
    # A 24x24 image; the triangle's corners in pixel units (x right, y up from the bottom-left
    # corner, pixel (row r, col c) spans [c, c+1] x [r, r+1]); NDC = 2 * px / 24 - 1.
    AA_TRIANGLE = [(4.3, 3.2), (20.6, 5.9), (7.1, 19.4)]
    AA_FG, AA_BG = (0.9, 0.3), (0.1, 0.7)

    def _aa_scene(self) -> tuple[Any, Any, Any, Any]:
        """Flat two-colour image of AA_TRIANGLE: (pos, tri, rast, color)."""
        pos = self.flat_pos([[x / 12 - 1, y / 12 - 1] for x, y in self.AA_TRIANGLE])
        tri = self.tri([[0, 1, 2]])
        rast, _ = self.dr.rasterize(self.ctx(), pos, tri, (24, 24))
        covered = (rast[..., 3:4] > 0).float()
        fg, bg = self.t(self.AA_FG), self.t(self.AA_BG)
        return pos, tri, rast, bg + covered * (fg - bg)

    @staticmethod
    def _inner(ids: Any) -> Any:
        """Pixels whose four neighbours carry their own id: no silhouette next to them."""
        same = ids == ids
        same[..., :, 1:] &= ids[..., :, 1:] == ids[..., :, :-1]
        same[..., :, :-1] &= ids[..., :, :-1] == ids[..., :, 1:]
        same[..., 1:, :] &= ids[..., 1:, :] == ids[..., :-1, :]
        same[..., :-1, :] &= ids[..., :-1, :] == ids[..., 1:, :]
        return same

    def test_antialias_leaves_interior_and_far_pixels_unchanged(self) -> None:
        import torch

        pos, tri, rast, color = self._aa_scene()
        noise = torch.rand(color.shape, generator=torch.Generator().manual_seed(5)).to(self.device)
        color = color + 0.05 * noise  # not flat: interior pixels must keep their own values exactly
        out = self.dr.antialias(color, rast, pos, tri)
        inner = self._inner(rast[..., 3])
        assert inner.sum() > 400
        assert torch.equal(out[inner], color[inner])

    def test_antialias_blends_silhouette_by_coverage(self) -> None:
        """Changed pixels border the silhouette and mix the two colours by one weight alpha in [0, 1];
        the alphas add up to the triangle's area in pixels (shoelace formula), within 2%."""
        import torch

        pos, tri, rast, color = self._aa_scene()
        out = self.dr.antialias(color, rast, pos, tri)
        changed = (out != color).any(-1)
        assert changed.sum() >= 30 and not changed[self._inner(rast[..., 3])].any()
        fg, bg = self.t(self.AA_FG), self.t(self.AA_BG)
        alpha = (out - bg) / (fg - bg)
        assert torch.allclose(alpha[..., 0], alpha[..., 1], atol=1e-4)
        assert alpha.min() >= -1e-5 and alpha.max() <= 1 + 1e-5
        x = [p[0] for p in self.AA_TRIANGLE]
        y = [p[1] for p in self.AA_TRIANGLE]
        area = 0.5 * abs(sum(x[i] * y[i - 1] - y[i] * x[i - 1] for i in range(3)))
        assert alpha[..., 0].sum().item() == pytest.approx(area, rel=0.02)

    def test_antialias_shared_edge_of_one_surface_not_blended(self) -> None:
        """A quad of two coplanar triangles coloured differently: pairs across the diagonal keep their colours."""
        import torch

        pos = self.flat_pos([[-0.8, -0.85], [0.75, -0.7], [-0.7, 0.8], [0.85, 0.7]])
        tri = self.tri([[0, 1, 2], [2, 1, 3]])
        rast, _ = self.dr.rasterize(self.ctx(), pos, tri, (16, 16))
        palette = self.t([[0.0, 0.5], [1.0, 0.2], [0.4, 0.9]])
        color = palette[rast[..., 3].long()]
        out = self.dr.antialias(color, rast, pos, tri)
        ids = rast[0, ..., 3]
        away = self._inner(ids > 0)  # pixels not next to the outline, which does blend
        rows, cols = torch.nonzero(away[:, :-1] & away[:, 1:] & (ids[:, :-1] != ids[:, 1:]), as_tuple=True)
        assert rows.numel() >= 8 and bool((ids[rows, cols] > 0).all())
        assert torch.equal(out[0, rows, cols], color[0, rows, cols])
        assert torch.equal(out[0, rows, cols + 1], color[0, rows, cols + 1])
        assert (out != color).any(-1).sum() >= 20  # while the outline blends

    def test_antialias_silhouette_gradient_matches_area_growth(self) -> None:
        """Scaling the triangle by s about its centroid grows its area as s^2, so d(sum alpha)/ds = 2 * area
        at s = 1. Within 10%: each pixel row or column an edge crosses counts whole, so near the corners
        the gradient over- or under-counts by about a pixel per edge (here 5%)."""
        import torch

        pos, tri, rast, color = self._aa_scene()
        fg, bg = self.t(self.AA_FG), self.t(self.AA_BG)
        leaf = pos.detach().clone().requires_grad_(True)
        alpha = (self.dr.antialias(color, rast, leaf, tri) - bg) / (fg - bg)
        (grad,) = torch.autograd.grad(alpha[..., 0].sum(), leaf)
        centroid = pos[0, :, :2].mean(0)
        d_pos = torch.zeros_like(pos)
        d_pos[0, :, :2] = pos[0, :, :2] - centroid
        slope = (grad * d_pos).sum().item()
        x = [p[0] for p in self.AA_TRIANGLE]
        y = [p[1] for p in self.AA_TRIANGLE]
        area = 0.5 * abs(sum(x[i] * y[i - 1] - y[i] * x[i - 1] for i in range(3)))
        assert slope == pytest.approx(2 * area, rel=0.10)
