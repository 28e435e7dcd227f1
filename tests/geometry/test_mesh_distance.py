"""fk.geometry.mesh_distance: closest points against brute force, signs, the SDF grid, surface Chamfer."""

from __future__ import annotations

import numpy as np
from fk.geometry.mesh_distance import (
    MeshDistance,
    chamfer_distance,
    closest_point_on_triangles,
    signed_distance_grid,
)
from fk.geometry.mesh_ops import ico_sphere


def _brute_force(p, tri, n=4000):
    """Closest point by dense barycentric sampling of every triangle (an upper bound within ~1/n)."""
    k = int(np.sqrt(2 * n))
    a, b = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    keep = a + b <= 1
    w = np.stack([1 - a[keep] - b[keep], a[keep], b[keep]], 1)
    pts = np.einsum("sk,fkd->fsd", w, tri).reshape(-1, 3)
    return np.linalg.norm(pts[None] - p[:, None], axis=-1).min(1)


def test_closest_points_match_brute_force_in_every_region():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(1, 3, 3))
    p = rng.normal(size=(400, 3)) * 2  # points facing vertices, edges and the face
    w = closest_point_on_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2])
    assert np.allclose(w.sum(1), 1)
    assert (w >= -1e-12).all()
    d = np.linalg.norm(w @ tri[0] - p, axis=1)
    ref = _brute_force(p, tri)
    assert (d <= ref + 1e-12).all()
    assert np.abs(d - ref).max() < 5e-3 * np.abs(tri).max()
    # a degenerate (zero-area) triangle still gives finite weights
    flat = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    assert np.isfinite(closest_point_on_triangles(p, flat[0], flat[1], flat[2])).all()


def test_signed_distance_and_grid_of_a_sphere():
    v, f = ico_sphere(4)  # radius 1, edges ~0.08
    md = MeshDistance(v, f)
    rng = np.random.default_rng(1)
    p = rng.uniform(-1.6, 1.6, size=(3000, 3))
    sd = md.signed_distance(p)
    r = np.linalg.norm(p, axis=1)
    far = np.abs(r - 1) > 0.01  # the polyhedron is within 0.005 of the unit sphere
    assert np.array_equal(sd[far] < 0, r[far] < 1)
    assert np.abs(sd - (r - 1)).max() < 0.01
    values, axes = signed_distance_grid(v, f, (-1.5,) * 3, (1.5,) * 3, 41)
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    exact = np.linalg.norm(g, axis=-1) - 1
    assert np.array_equal(values < 0, exact < 0)
    near = np.abs(exact) < 0.1
    assert np.abs(values - exact)[near].max() < 0.01  # the exact band
    # elsewhere an upper bound of the distance through the nearest exact node (the polyhedron's 0.005 aside)
    assert (np.abs(values[~near]) >= np.abs(exact[~near]) - 0.006).all()
    assert np.abs(values - exact).max() < 0.1  # about one cell (0.075)


def test_surface_chamfer():
    v, f = ico_sphere(3)
    a, b = chamfer_distance(v, f, v, f, samples=2000)
    assert a < 1e-12
    assert b < 1e-12
    a, b = chamfer_distance(v * 1.1, f, v, f, samples=2000)
    assert 0.09 < a < 0.1
    assert 0.09 < b < 0.1
