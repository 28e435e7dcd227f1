"""fk's CPU ``antialias``: analytic silhouette blending and its gradients.

Expected values come from exact polygon/pixel-square areas computed here (Sutherland-Hodgman
clipping), from hand-built topologies and from finite differences, never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fk.render as dr
from fk.errors import ShapeError

CTX = dr.get_context("cpu")


def clip_pos(points_px, height, width, z=0.0, w=1.0, dtype=torch.float64):
    """Pixel-coordinate points (x right, y up, pixel (row r, col c) spans [c, c+1] x [r, r+1]) -> clip (1, N, 4)."""
    return torch.tensor(
        [[[(2 * x / width - 1) * w, (2 * y / height - 1) * w, z * w, w] for x, y in points_px]], dtype=dtype
    )


def polygon_pixel_area(poly, col, row):
    """Exact area of the convex polygon ``poly`` inside pixel square [col, col+1] x [row, row+1]."""

    def clip(points, inside, cut):
        out = []
        for i in range(len(points)):
            a, b = points[i - 1], points[i]
            if inside(b):
                if not inside(a):
                    out.append(cut(a, b))
                out.append(b)
            elif inside(a):
                out.append(cut(a, b))
        return out

    def at_x(x0):
        return lambda a, b: (x0, a[1] + (b[1] - a[1]) * (x0 - a[0]) / (b[0] - a[0]))

    def at_y(y0):
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y0 - a[1]) / (b[1] - a[1]), y0)

    pts = list(poly)
    for inside, cut in (
        (lambda p: p[0] >= col, at_x(col)),
        (lambda p: p[0] <= col + 1, at_x(col + 1)),
        (lambda p: p[1] >= row, at_y(row)),
        (lambda p: p[1] <= row + 1, at_y(row + 1)),
    ):
        pts = clip(pts, inside, cut)
        if len(pts) < 3:
            return 0.0
    x, y = np.array(pts).T
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def segment_hits_square(a, b, col, row):
    """Liang-Barsky: does segment a-b meet the pixel square [col, col+1] x [row, row+1]?"""
    t0, t1 = 0.0, 1.0
    d = (b[0] - a[0], b[1] - a[1])
    for p, q in ((-d[0], a[0] - col), (d[0], col + 1 - a[0]), (-d[1], a[1] - row), (d[1], row + 1 - a[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    return t0 <= t1


def edge_stays_in_one_pixel(poly, col, row):
    """True when exactly one polygon edge meets the pixel and, across the pixel, stays inside its
    column (steep edge) or row (flat edge): there the 1-D crossing equals the area exactly."""
    edges = [
        (poly[i - 1], poly[i])
        for i in range(len(poly))
        if segment_hits_square(poly[i - 1], poly[i], col, row)
    ]
    if len(edges) != 1:
        return False
    (x0, y0), (x1, y1) = edges[0]
    if abs(y1 - y0) >= abs(x1 - x0):
        xs = [x0 + (x1 - x0) * (y - y0) / (y1 - y0) for y in (row, row + 1)]
        return all(col < x < col + 1 for x in xs)
    ys = [y0 + (y1 - y0) * (x - x0) / (x1 - x0) for x in (col, col + 1)]
    return all(row < y < row + 1 for y in ys)


def flat_colours(rast, fg, bg):
    """Colour ``fg`` where the triangle id is set, ``bg`` elsewhere: (1, H, W, C) float64."""
    covered = (rast[..., 3:4] > 0).double()
    fg, bg = torch.tensor(fg, dtype=torch.float64), torch.tensor(bg, dtype=torch.float64)
    return bg + covered * (fg - bg)


def unchanged_mask(ids):
    """Pixels whose four neighbours all carry the same id (no pair of theirs can blend)."""
    same = torch.ones_like(ids, dtype=torch.bool)
    same[..., :, 1:] &= ids[..., :, 1:] == ids[..., :, :-1]
    same[..., :, :-1] &= ids[..., :, :-1] == ids[..., :, 1:]
    same[..., 1:, :] &= ids[..., 1:, :] == ids[..., :-1, :]
    same[..., :-1, :] &= ids[..., :-1, :] == ids[..., 1:, :]
    return same


TRIANGLE = [(3.3, 2.2), (12.6, 2.9), (4.1, 13.4)]  # near-vertical left edge, near-horizontal bottom edge


def test_coverage_equals_exact_area_where_the_edge_stays_in_one_pixel() -> None:
    height = width = 16
    pos = clip_pos(TRIANGLE, height, width)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
    fg, bg = (0.9, 0.2), (0.1, 0.6)
    color = flat_colours(rast, fg, bg)
    out = dr.antialias(color, rast, pos, tri)
    checked = 0
    for row in range(height):
        for col in range(width):
            area = polygon_pixel_area(TRIANGLE, col, row)
            if 0 < area < 1 and edge_stays_in_one_pixel(TRIANGLE, col, row):
                expected = torch.tensor(bg) + area * (torch.tensor(fg) - torch.tensor(bg))
                assert torch.allclose(out[0, row, col], expected.double(), atol=1e-9), (row, col, area)
                checked += 1
    assert checked >= 15  # both the left edge (horizontal pairs) and the bottom edge (vertical pairs)
    # total coverage of an antialiased triangle is close to its area (corners are approximate)
    alpha = (out[0, ..., 0] - bg[0]) / (fg[0] - bg[0])
    x, y = np.array(TRIANGLE).T
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert alpha.sum().item() == pytest.approx(area, rel=0.01)
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_interior_and_far_pixels_unchanged() -> None:
    height = width = 16
    pos = clip_pos(TRIANGLE, height, width)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
    color = torch.rand(1, height, width, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = dr.antialias(color, rast, pos, tri)
    keep = unchanged_mask(rast[..., 3])
    assert keep.sum() > 150 and torch.equal(out[keep], color[keep])
    assert (out != color).any(-1).sum() >= 20  # the silhouette changed


def quad(points_px, height, width, tri, colours):
    pos = clip_pos(points_px, height, width)
    rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
    ids = rast[..., 3].long()
    palette = torch.tensor(colours, dtype=torch.float64)  # row 0 = background
    return pos, rast, palette[ids]


def test_shared_edge_of_a_flat_surface_is_not_blended() -> None:
    """Two triangles of one plane, coloured differently: the diagonal stays sharp, the outline blends."""
    height = width = 12
    points = [(1.7, 1.4), (10.3, 1.9), (1.9, 10.6), (10.2, 10.1)]
    tri = torch.tensor([[0, 1, 2], [2, 1, 3]], dtype=torch.int32)
    pos, rast, color = quad(points, height, width, tri, [[0.0], [1.0], [0.5]])
    out = dr.antialias(color, rast, pos, tri)
    ids = rast[0, ..., 3]
    changed = (out != color)[0, ..., 0]
    # horizontal pairs across the diagonal: both pixels covered, by different triangles
    away = unchanged_mask(ids > 0)  # not next to the outline, which does blend
    rows, cols = torch.nonzero(away[:, :-1] & away[:, 1:] & (ids[:, :-1] != ids[:, 1:]), as_tuple=True)
    assert rows.numel() >= 5 and bool((ids[rows, cols] > 0).all())
    assert not changed[rows, cols].any() and not changed[rows, cols + 1].any()
    assert changed.sum() >= 16  # the outline did blend


def test_unwelded_or_folded_edge_is_a_silhouette() -> None:
    """The same diagonal blends when the triangles do not share vertex indices (nvdiffrast finds
    silhouettes by topology), and when the second triangle is folded back over the first."""
    height = width = 12
    points = [(1.7, 1.4), (10.3, 1.9), (1.9, 10.6), (10.2, 10.1)]
    welded = torch.tensor([[0, 1, 2], [2, 1, 3]], dtype=torch.int32)
    pos, rast, color = quad(points, height, width, welded, [[0.0], [1.0], [0.5]])
    sharp = dr.antialias(color, rast, pos, welded)
    # unwelded: vertices 4, 5 duplicate 2, 1
    pos_u = torch.cat([pos, pos[:, [2, 1]]], 1)
    unwelded = torch.tensor([[0, 1, 2], [4, 5, 3]], dtype=torch.int32)
    seam = dr.antialias(color, rast, pos_u, unwelded)
    ids = rast[0, ..., 3]
    beside_diagonal = (ids[:, :-1] > 0) & (ids[:, 1:] > 0) & (ids[:, :-1] != ids[:, 1:])
    rows, cols = torch.nonzero(beside_diagonal, as_tuple=True)
    pair_changed = (seam[0, rows, cols] != sharp[0, rows, cols]) | (
        seam[0, rows, cols + 1] != sharp[0, rows, cols + 1]
    )
    assert pair_changed.float().mean() > 0.5
    # folded: vertex 3 mirrored across the shared edge and pushed behind triangle 0
    folded_pts = points[:3] + [(4.0, 4.0)]
    pos_f = clip_pos(folded_pts, height, width)
    pos_f[0, 3, 2] = 0.5
    rast_f, _ = dr.rasterize(CTX, pos_f, welded, (height, width))
    palette = torch.tensor([[0.0], [1.0], [0.5]], dtype=torch.float64)
    color_f = palette[rast_f[..., 3].long()]
    out_f = dr.antialias(color_f, rast_f, pos_f, welded)
    assert (rast_f[0, ..., 3] == 2).sum() == 0  # triangle 1 is entirely hidden: only edges vs background
    # the diagonal is now triangle 0's silhouette against the background
    n_diag = 0
    for row in range(height):
        for col in range(width):
            a = polygon_pixel_area(points[:3], col, row)
            if 0 < a < 1 and edge_stays_in_one_pixel(points[:3], col, row):
                assert out_f[0, row, col, 0].item() == pytest.approx(a, abs=1e-9)
                n_diag += 1
    assert n_diag >= 8


def test_occluder_edges_blend_with_the_surface_behind() -> None:
    height = width = 16
    back = [(-2.0, -2.0), (30.0, -2.0), (-2.0, 30.0)]
    front = [(5.2, 4.3), (11.7, 4.9), (6.1, 12.6)]
    pos = clip_pos(back + front, height, width)
    pos[0, :3, 2] = 0.5  # back plane further away
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
    palette = torch.tensor([[0.0], [0.2], [1.0]], dtype=torch.float64)
    color = palette[rast[..., 3].long()]
    out = dr.antialias(color, rast, pos, tri)
    for row in range(height):
        for col in range(width):
            a = polygon_pixel_area(front, col, row)
            if 0 < a < 1 and edge_stays_in_one_pixel(front, col, row):
                assert out[0, row, col, 0].item() == pytest.approx(0.2 + 0.8 * a, abs=1e-9)
    keep = unchanged_mask(rast[..., 3])
    assert torch.equal(out[keep], color[keep])


def small_scene():
    pos = torch.tensor(
        [[[-0.71, -0.62, 0.1, 1.0], [0.63, -0.48, 0.2, 1.1], [-0.35, 0.77, 0.3, 0.9], [0.9, 0.8, 0.6, 1.2]]],
        dtype=torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
    return pos, tri


def test_gradcheck_pos_and_color() -> None:
    pos, tri = small_scene()
    height, width = 6, 7
    rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
    color = torch.rand(1, height, width, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    topology = dr.antialias_construct_topology_hash(tri)

    def fn(p, c):
        return dr.antialias(c, rast, p, tri, topology_hash=topology)

    assert (fn(pos, color) != color).any(-1).sum() >= 10
    assert torch.autograd.gradcheck(
        fn, (pos.clone().requires_grad_(), color.clone().requires_grad_()), eps=1e-6, atol=1e-6
    )


def test_moving_a_silhouette_vertex_changes_the_image_as_the_gradient_predicts() -> None:
    """Full pipeline (rasterize + interpolate + antialias) against central differences of a loss.

    Channel 0 is constant over the triangle, so its pos gradient can only come from antialias
    (silhouette gradients); channel 1 varies and adds the barycentric gradients of rasterize.
    """
    height, width = 20, 24
    pos = clip_pos([(3.3, 2.2), (19.6, 4.9), (6.1, 17.4)], height, width)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    vcol = torch.tensor([[0.7, 0.2], [0.7, 0.9], [0.7, 0.5]], dtype=torch.float64)
    weight = torch.rand(1, height, width, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def loss(p):
        rast, _ = dr.rasterize(CTX, p, tri, (height, width))
        img, _ = dr.interpolate(vcol, rast, tri)
        return (dr.antialias(img, rast, p, tri) * weight).sum()

    leaf = pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(leaf), leaf)
    direction = torch.zeros_like(pos)
    direction[0, 1, :2] = torch.tensor([0.8, -0.6])  # move vertex 1 (two silhouette edges)
    eps = 1e-5  # small enough that no pixel centre changes sides
    numeric = (loss(pos + eps * direction) - loss(pos - eps * direction)) / (2 * eps)
    assert (grad * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-6)
    weight[..., 1] = 0  # the flat channel alone: a pure silhouette gradient
    leaf = pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(leaf), leaf)
    numeric = (loss(pos + eps * direction) - loss(pos - eps * direction)) / (2 * eps)
    assert (grad * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-6)
    assert abs(numeric.item()) > 0.1


def test_translating_changes_coverage_as_predicted() -> None:
    """A white triangle moved 0.2 px right: each pixel's alpha changes by about gradient * step."""
    height = width = 16
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)

    def alpha(shift):
        pts = [(x + shift, y) for x, y in TRIANGLE]
        p = clip_pos(pts, height, width).requires_grad_()
        rast, _ = dr.rasterize(CTX, p, tri, (height, width))
        return dr.antialias((rast[..., 3:4] > 0).double(), rast, p, tri), p

    base, p = alpha(0.0)
    # d(alpha of one left-edge pixel)/d(shift): moving right uncovers it at 1 px per px
    row, col = 8, 3
    assert 0 < base[0, row, col, 0] < 1
    (g,) = torch.autograd.grad(base[0, row, col, 0], p)
    d_shift = (g[0, :, 0] * 2 / width).sum().item()  # x_ndc = 2 x_px / W - 1
    assert d_shift == pytest.approx(-1.0, rel=1e-6)
    moved, _ = alpha(0.2)
    assert (moved[0, row, col, 0] - base[0, row, col, 0]).item() == pytest.approx(0.2 * d_shift, abs=1e-9)


def test_pos_gradient_boost_scales_only_pos_gradients() -> None:
    pos, tri = small_scene()
    rast, _ = dr.rasterize(CTX, pos, tri, (6, 7))
    color = torch.rand(1, 6, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = []
    for boost in (1.0, 2.5):
        p, c = pos.clone().requires_grad_(), color.clone().requires_grad_()
        out = dr.antialias(c, rast, p, tri, pos_gradient_boost=boost)
        grads.append((out.detach(), *torch.autograd.grad((out * color).sum(), (p, c))))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.allclose(grads[1][1], 2.5 * grads[0][1]) and grads[0][1].abs().sum() > 0
    assert torch.allclose(grads[1][2], grads[0][2])


def test_range_mode_and_batches_match_single_images() -> None:
    pos, tri = small_scene()
    shifted = pos.clone()
    shifted[..., 0] += 0.13
    both = torch.cat([pos, shifted])
    rast, _ = dr.rasterize(CTX, both, tri, (9, 10))
    color = torch.rand(2, 9, 10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    batched = dr.antialias(color, rast, both, tri)
    for i in range(2):
        single = dr.antialias(color[i : i + 1], rast[i : i + 1], both[i : i + 1], tri)
        assert torch.equal(batched[i : i + 1], single)
    # range mode: pos (V, 4), one image's triangles per range; ids index the whole tri
    tri_range = torch.cat([tri, tri + 4])
    ranges = torch.tensor([[0, 2], [2, 2]], dtype=torch.int32)
    rast_r, _ = dr.rasterize(CTX, both.reshape(8, 4), tri_range, (9, 10), ranges=ranges)
    assert torch.equal(dr.antialias(color, rast_r, both.reshape(8, 4), tri_range), batched)


def test_float32_matches_float64() -> None:
    height = width = 16
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    outs = []
    for dtype in (torch.float32, torch.float64):
        pos = clip_pos(TRIANGLE, height, width, dtype=dtype)
        rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
        outs.append(dr.antialias((rast[..., 3:4] > 0).to(dtype), rast, pos, tri))
    assert outs[0].dtype == torch.float32
    assert torch.allclose(outs[0].double(), outs[1], atol=1e-5)


def test_topology_hash_maps_edges_to_triangles() -> None:
    """Slot 3 f + k is triangle f's edge opposite its vertex k."""
    from fk.render.cpu.antialias import construct_topology_hash

    # quad (0,1,2),(2,1,3): edge {1,2} is slot 0 of tri 0 and slot 2 of tri 1 (opposite vertex 3)
    topo = construct_topology_hash(torch.tensor([[0, 1, 2], [2, 1, 3]]))
    mates = {s: topo.mates[topo.offsets[s] : topo.offsets[s + 1]].tolist() for s in range(6)}
    assert mates == {0: [5], 1: [], 2: [], 3: [], 4: [], 5: [0]}
    # three triangles on edge {0,1} (non-manifold): each sees the other two
    fan = construct_topology_hash(torch.tensor([[0, 1, 2], [1, 0, 3], [4, 0, 1]]))
    slots = {0: 2, 1: 5, 2: 6}  # edge {0,1} is opposite vertex 2 / 3 / 4
    for f, s in slots.items():
        got = sorted(fan.mates[fan.offsets[s] : fan.offsets[s + 1]].tolist())
        assert got == sorted(v for g, v in slots.items() if g != f)


def test_bad_inputs_raise() -> None:
    pos, tri = small_scene()
    rast, _ = dr.rasterize(CTX, pos, tri, (6, 7))
    color = torch.zeros(1, 6, 7, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="same minibatch size and spatial"):
        dr.antialias(color[:, :5], rast, pos, tri)
    with pytest.raises(ShapeError, match="tri must have shape"):
        dr.antialias(color, rast, pos, tri[:, :2])
    with pytest.raises(ShapeError, match="topology_hash"):
        dr.antialias(color, rast, pos, tri, topology_hash=dr.antialias_construct_topology_hash(tri[:1]))


def test_silhouette_found_through_sliver_triangles() -> None:
    """The triangle split so that sub-pixel slivers own its left edge: the visible triangle at the
    outline is not the edge's owner, yet the image equals the unsplit triangle's (flat colour)."""
    height = width = 16
    p0, p1, p2 = (np.array(p) for p in TRIANGLE)
    m0, m2 = p0 + 0.01 * (p1 - p0), p2 + 0.01 * (p1 - p2)  # on edges p0-p1 and p2-p1
    split_pts = [tuple(p) for p in (p0, p1, p2, m0, m2)]
    split_tri = torch.tensor([[0, 3, 2], [3, 4, 2], [3, 1, 4]], dtype=torch.int32)  # slivers first
    images = []
    for pts, tri in ((TRIANGLE, torch.tensor([[0, 1, 2]], dtype=torch.int32)), (split_pts, split_tri)):
        pos = clip_pos(pts, height, width)
        rast, _ = dr.rasterize(CTX, pos, tri, (height, width))
        images.append(dr.antialias(flat_colours(rast, (1.0,), (0.0,)), rast, pos, tri))
        ids = rast[0, ..., 3]
    assert (ids == 1).sum() + (ids == 2).sum() <= 2  # the slivers hardly cover a pixel centre
    assert torch.allclose(images[0], images[1], atol=1e-9)
