"""Photo -> UV projection (fk.render.uv_projection) on a photo rendered from a known texture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.geometry.rotations import euler_to_matrix
from fk.render.uv_projection import FILLED, MIRRORED, OUTSIDE, PHOTO, project_photo_to_uv, pull_push_fill

UV = 256
SIZE = 320


def _symmetric_texture(size: int = 256) -> np.ndarray:
    """A smooth, colourful texture that is mirror-symmetric about u = 0.5 (the demo head's midline)."""
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, 1 - c)
    a = np.abs(u - 0.5)
    rgb = np.stack(
        [
            0.5 + 0.4 * np.sin(14 * a + 3 * v),
            0.5 + 0.4 * np.cos(9 * v - 6 * a),
            0.5 + 0.3 * np.sin(20 * a * v + 2),
        ],
        -1,
    )
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _scene(yaw_deg: float):
    from fk.models.demo import demo_head_arrays
    from fk.render.mesh import render_mesh

    a = demo_head_arrays()
    canon = np.asarray(a["mean_shape"]).reshape(-1, 3)
    rot = euler_to_matrix(np.array([0.0, np.deg2rad(yaw_deg), 0.0]), "xyz")
    world = canon @ rot.T
    cam = np.stack([world[:, 0], -world[:, 1], 10.0 - world[:, 2]], 1)  # OpenCV frame, camera 10 dm away
    K = np.array([[1100.0, 0, SIZE / 2 - 0.5], [0, 1100.0, SIZE / 2 - 0.5], [0, 0, 1]])
    tex = _symmetric_texture()
    with torch.no_grad():
        out = render_mesh(
            torch.as_tensor(cam, dtype=torch.float32)[None],
            a["triangles"],
            torch.as_tensor(K, dtype=torch.float32),
            (SIZE, SIZE),
            uvs=torch.as_tensor(a["uvs"]),
            uv_faces=a["uv_faces"],
            texture=tex,
            backend="cpu",
        )
    photo = np.where(out.mask[0, ..., None].numpy(), out.rgb[0].numpy(), 0.0)
    photo = np.clip(np.rint(photo * 255), 0, 255).astype(np.uint8)
    return a, canon, cam, K, tex, photo


def _truth(tex: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(tex).resize((size, size), Image.BILINEAR)).astype(np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def turned():
    a, canon, cam, K, tex, photo = _scene(40.0)
    proj = project_photo_to_uv(
        photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, UV, symmetry_vertices=canon, backend="cpu"
    )
    return a, canon, cam, K, tex, photo, proj


def test_visible_texels_reproduce_the_texture_the_photo_was_rendered_from(turned):
    *_, tex, _photo, proj = turned
    truth = _truth(tex, UV)
    seen = (proj.source == PHOTO) & (proj.confidence >= 0.999)
    assert seen.mean() > 0.15, "a 40° view shows a good part of the head"
    assert _psnr(proj.texture[seen], truth[seen]) >= 25.0


def test_texels_seen_only_on_the_other_side_come_from_their_mirror(turned):
    a, canon, cam, K, tex, photo, proj = turned
    truth = _truth(tex, UV)
    mirrored = proj.source == MIRRORED
    assert proj.stats["mirrored"] > 0.03, "turned 40°, one cheek is hidden and mirrored from the other"
    assert _psnr(proj.texture[mirrored], truth[mirrored]) >= 20.0
    # without a symmetric shape those texels are only smoothly filled, and worse
    plain = project_photo_to_uv(photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, UV, backend="cpu")
    assert not (plain.source == MIRRORED).any()
    assert (plain.source[mirrored] == FILLED).mean() > 0.9
    assert (
        _psnr(plain.texture[mirrored], truth[mirrored]) < _psnr(proj.texture[mirrored], truth[mirrored]) - 2
    )


def test_sources_partition_the_layout_and_the_fill_leaves_no_black(turned):
    *_, proj = turned
    codes = set(np.unique(proj.source).tolist())
    assert codes <= {OUTSIDE, PHOTO, MIRRORED, FILLED}
    assert {PHOTO, FILLED} <= codes
    assert proj.texture.shape == (UV, UV, 3)
    assert proj.texture.dtype == np.uint8
    assert proj.texture.reshape(-1, 3).sum(1).min() > 30, "the smooth fill reaches every texel"
    assert abs(sum(proj.stats[k] for k in ("photo", "mirrored", "filled")) - 1.0) < 1e-9


def test_a_zero_mask_copies_nothing_from_the_photo(turned):
    a, canon, cam, K, tex, photo, _ = turned
    proj = project_photo_to_uv(
        photo,
        cam,
        a["triangles"],
        a["uvs"],
        a["uv_faces"],
        K,
        64,
        mask=np.zeros(photo.shape[:2]),
        backend="cpu",
    )
    assert not (proj.source == PHOTO).any()
    assert not (proj.source == MIRRORED).any()


def test_occluded_texels_are_not_taken_from_the_photo():
    """The back of the head faces away and sits behind the face: never photo texels."""
    a, canon, cam, K, tex, photo = _scene(0.0)
    proj = project_photo_to_uv(photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, 128, backend="cpu")
    # demo head: u = 0 / 1 is the back of the head (longitude +-180°)
    back = proj.source[:, np.r_[0:16, 112:128]]
    assert (back != PHOTO).all()


def test_pull_push_keeps_known_pixels_and_fills_holes_smoothly():
    rng = np.random.default_rng(0)
    img = np.full((37, 50, 3), 0.25)
    img[..., 1] = 0.75
    w = (rng.random((37, 50)) > 0.7).astype(float)
    out = pull_push_fill(img * w[..., None], w)
    np.testing.assert_allclose(out[w == 1], img[w == 1], atol=1e-12)
    np.testing.assert_allclose(out, img, atol=1e-9)  # a constant image is filled with that constant
    ramp = np.linspace(0, 1, 64)[None, :, None] * np.ones((64, 64, 1))
    w2 = np.zeros((64, 64))
    w2[:, :8], w2[:, -8:] = 1, 1
    filled = pull_push_fill(ramp * w2[..., None], w2)[..., 0]
    # every filled value is a weighted average of known ones; the gap's middle lies between the two bands
    assert filled.min() >= 0
    assert filled.max() <= 1
    assert 0.35 < filled[32, 32] < 0.65
    assert filled[32, 12] < filled[32, 32] < filled[32, 52]


def test_bad_inputs_name_the_argument():
    from fk.errors import ShapeError

    with pytest.raises(ShapeError, match="photo"):
        project_photo_to_uv(
            np.zeros((4, 4), np.uint8),
            np.zeros((3, 3)),
            [[0, 1, 2]],
            np.zeros((3, 2)),
            [[0, 1, 2]],
            np.eye(3),
            8,
        )
    with pytest.raises(ShapeError, match="K"):
        project_photo_to_uv(
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((3, 3)),
            [[0, 1, 2]],
            np.zeros((3, 2)),
            [[0, 1, 2]],
            np.eye(2),
            8,
        )


def test_faces_that_do_not_fit_the_vertices_or_the_uv_faces_are_refused(turned):
    """The kernel reads without bounds checks: bad indices are a clear error before it runs."""
    from fk.errors import ShapeError

    a, canon, cam, K, _tex, photo, _ = turned
    faces = np.array(a["triangles"])
    for bad, match in ((np.where(faces == faces.max(), len(cam), faces), "faces"), (faces[:-1], "uv_faces"),
                       (faces - faces.max() - 1, "faces")):
        with pytest.raises(ShapeError, match=match):
            project_photo_to_uv(photo, cam, bad, a["uvs"], a["uv_faces"], K, 16)
    nan_canon = canon.copy()
    nan_canon[5, 1] = np.nan
    with pytest.raises(ShapeError, match="symmetry_vertices: not all finite"):
        project_photo_to_uv(photo, cam, faces, a["uvs"], a["uv_faces"], K, 16, symmetry_vertices=nan_canon)


def test_a_layout_is_rasterised_once_and_later_projections_match(turned):
    """The texel map is a property of the UV layout: kept (read-only) for the next face, same results."""
    from fk.render import uv_projection

    a, canon, cam, K, _tex, photo, proj = turned
    first = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV, "cpu")
    again = uv_projection._layout_texels(np.array(a["uvs"]), np.array(a["uv_faces"]), UV, "cpu")
    assert all(x is y for x, y in zip(first, again, strict=True))
    assert not first[1].flags.writeable
    assert not first[2].flags.writeable
    second = project_photo_to_uv(
        photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, UV, symmetry_vertices=canon, backend="cpu"
    )
    np.testing.assert_array_equal(second.texture, proj.texture)
    np.testing.assert_array_equal(second.source, proj.source)
    other = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV // 2, "cpu")
    assert other[0] is not first[0]
    assert other[0].shape == (UV // 2, UV // 2)


def test_a_new_process_reads_the_layout_from_fk_home_and_rebuilds_a_bad_file(turned, tmp_path, monkeypatch):
    """$FK_HOME/cache/uv_layouts keeps the texel map for the next process: the same arrays come back, and a
    damaged or missing file is rebuilt (and rewritten), never trusted; an older version's file is removed."""
    from fk.render import uv_projection

    a, *_ = turned
    monkeypatch.setenv("FK_HOME", str(tmp_path))
    monkeypatch.setattr(uv_projection, "_TEXEL_MAPS", {})
    layouts = tmp_path / "cache" / "uv_layouts"
    built = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV // 4, "cpu")
    (cached,) = layouts.iterdir()
    assert sorted(f.name for f in cached.iterdir()) == ["bary.npy", "covered.npy", "triangle.npy"]
    monkeypatch.setattr(uv_projection, "_TEXEL_MAPS", {})  # as a new process
    calls = []
    real = __import__("fk.geometry.uv", fromlist=["texel_map"]).texel_map
    monkeypatch.setattr("fk.geometry.uv.texel_map", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    read = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV // 4, "cpu")
    assert calls == []
    for x, y in zip(built, read, strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    for damage in ("bad", "missing", "wrong shape"):
        bary = cached / "bary.npy"
        if damage == "bad":
            bary.write_bytes(b"not an npy")
        elif damage == "missing":
            bary.unlink()
        else:
            np.save(bary, np.zeros((3, 3)))
        monkeypatch.setattr(uv_projection, "_TEXEL_MAPS", {})
        rebuilt = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV // 4, "cpu")
        np.testing.assert_array_equal(rebuilt[2], built[2])
        np.testing.assert_array_equal(np.load(bary), built[2])  # rewritten
    assert len(calls) == 3
    old = cached.with_name(cached.name.replace("_v2", "_v1") + ".npz")
    old.write_bytes(b"PK")  # a version-1 file of the same layout goes when the entry is rewritten
    bary.unlink()
    monkeypatch.setattr(uv_projection, "_TEXEL_MAPS", {})
    uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV // 4, "cpu")
    assert not old.exists()


def _assert_same_projection(compiled, reference, max_level_share: float = 1e-5):
    """The compiled kernels against the numpy reference: same source codes and confidence; the texture
    equal but for a tiny share of texels one level apart (the fill's upsampling sums in another order
    than torch's)."""
    np.testing.assert_array_equal(compiled.source, reference.source)
    np.testing.assert_allclose(compiled.confidence, reference.confidence, rtol=0, atol=1e-6)
    diff = np.abs(compiled.texture.astype(np.int16) - reference.texture.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() <= max_level_share
    assert compiled.stats == reference.stats


@pytest.mark.parametrize("case", ["mirrored", "masked", "unfilled", "wide_photo_small_depth"])
def test_the_compiled_kernels_give_the_numpy_reference_projection(turned, case):
    a, canon, cam, K, _tex, photo, _ = turned
    kw: dict = {"symmetry_vertices": canon, "backend": "cpu"}
    if case == "masked":  # a soft photo-space mask over part of the face
        yy, xx = np.mgrid[0 : photo.shape[0], 0 : photo.shape[1]]
        kw["mask"] = np.clip(1.5 - np.hypot(xx - 150.0, yy - 170.0) / 60.0, 0.0, 1.0)
    if case == "unfilled":
        kw["fill"] = False
    if case == "wide_photo_small_depth":  # a non-square photo and a z-buffer smaller than the photo
        photo = np.concatenate([photo, photo[:, :80]], axis=1)
        kw["depth_max_side"] = 150
    args = (photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, UV)
    compiled = project_photo_to_uv(*args, impl="compiled", **kw)
    reference = project_photo_to_uv(*args, impl="numpy", **kw)
    assert (reference.source == PHOTO).mean() > 0.1
    if case == "masked":
        assert (reference.confidence[reference.source == PHOTO] < 0.999).any(), "the mask weighs texels"
    _assert_same_projection(compiled, reference)


def test_the_compiled_texel_samples_equal_the_numpy_steps_bit_for_bit(turned):
    """Steps 1-3 (points, normals, facing, projection, z-buffer test, mask, scipy's bilinear sample)."""
    from fk.io.mesh import vertex_normals
    from fk.render import uv_projection
    from fk.render.cpu.uv_texture import texel_samples

    a, canon, cam, K, _tex, photo, _ = turned
    faces = np.asarray(a["triangles"], np.int64)
    _covered, triangle, bary = uv_projection._layout_texels(a["uvs"], a["uv_faces"], UV, "cpu")
    per_vertex = np.concatenate([cam, vertex_normals(cam, faces), canon], 1)
    depth = uv_projection._depth_map(cam, faces, K, photo.shape[:2], "cpu")
    rng = np.random.default_rng(3)
    mask = rng.random(photo.shape[:2])
    for m in (None, mask):
        got = texel_samples(per_vertex, True, faces, triangle, bary, K, depth, 0.02, photo, m, 0.1, 0.25)
        ref = uv_projection._texel_samples_numpy(per_vertex, faces[triangle], bary, K, depth, 0.02, photo, m,
                                                 0.1, 0.25)
        for x, y in zip(got[:3], ref, strict=True):
            np.testing.assert_array_equal(x, y)
        assert (got[0] > 0).mean() > 0.2


@pytest.mark.parametrize("shape", [(37, 50, 3), (64, 64, 3), (1, 1, 2), (5, 128, 1)])
def test_the_compiled_pull_push_equals_the_numpy_one(shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.random(shape)
    w = rng.random(shape[:2]) * (rng.random(shape[:2]) > 0.6) * 1.3  # > 1 is clipped to 1
    compiled = pull_push_fill(img * w[..., None], w, impl="compiled")
    reference = pull_push_fill(img * w[..., None], w, impl="numpy")
    assert compiled.shape == shape
    np.testing.assert_allclose(compiled, reference, rtol=0, atol=1e-13)
    known = w >= 1
    np.testing.assert_array_equal(compiled[known], reference[known])


def test_an_unknown_impl_is_refused(turned):
    a, canon, cam, K, _tex, photo, _ = turned
    with pytest.raises(ValueError, match="impl"):
        project_photo_to_uv(photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, 16, impl="fast")
    with pytest.raises(ValueError, match="impl"):
        pull_push_fill(np.zeros((4, 4, 3)), np.zeros((4, 4)), impl="torch")


def test_the_mirror_candidates_keep_every_pair_closer_than_the_radius():
    """The compiled path prunes donors and mirrored queries with no partner in a neighbouring grid cell
    before the tree search: the nearest donor within the radius must be the one found among all texels."""
    from fk.render.cpu.uv_texture import _mirror_candidates
    from fk.render.uv_projection import _nearest_donors

    rng = np.random.default_rng(7)
    # a bumpy sheet, seen more on one side (x > 0) than the other, and a few stray points
    xy = rng.uniform(-1, 1, (20000, 2))
    canon = np.column_stack([xy, 0.1 * np.sin(3 * xy[:, 0]) * np.cos(2 * xy[:, 1])])
    canon[:50] += rng.normal(0, 2, (50, 3))
    weight = np.clip(0.5 + 0.8 * canon[:, 0] + rng.normal(0, 0.3, len(canon)), 0, 1)
    for radius in (0.01, 0.05, 0.3, 5.0):
        donors, donor_points, queries, query_points = _mirror_candidates(weight, canon, radius)
        all_donors, all_needs = np.flatnonzero(weight >= 0.5), np.flatnonzero(weight < 1.0)
        mirrored = canon[all_needs] * [-1.0, 1.0, 1.0]
        full = _nearest_donors(canon[all_donors], mirrored, radius)
        expected = {int(q): int(all_donors[n]) for q, n in zip(all_needs, full, strict=True) if n >= 0}
        pruned = _nearest_donors(donor_points, query_points, radius)
        got = {int(q): int(donors[n]) for q, n in zip(queries, pruned, strict=True) if n >= 0}
        assert got == expected
        assert len(expected) > 0
        np.testing.assert_array_equal(query_points, canon[queries] * [-1.0, 1.0, 1.0])
        if radius == 0.01:
            assert len(queries) < 0.8 * len(all_needs), "a small radius prunes queries"


def test_the_kernels_k_d_tree_answers_as_ckdtree():
    """nearest_within: each query's nearest point strictly closer than the radius, -1 where none is, as
    scipy's cKDTree with distance_upper_bound; on surface samples, clustered and repeated points."""
    from fk.render.cpu.uv_texture import nearest_within
    from fk.render.uv_projection import _nearest_donors

    rng = np.random.default_rng(11)
    uv = rng.uniform(-1, 1, (30000, 2))
    sheet = np.column_stack([uv, 0.2 * np.sin(4 * uv[:, 0])])
    clusters = rng.normal(0, 1e-4, (3000, 3)) + rng.integers(0, 3, (3000, 1)) * 0.5
    repeated = np.repeat(rng.uniform(-1, 1, (5, 3)), 100, axis=0)  # more equal points than a leaf holds
    for points in (sheet, clusters, np.concatenate([sheet[:1000], repeated])):
        queries = points[rng.integers(0, len(points), 4000)] + rng.normal(0, 0.02, (4000, 3))
        for radius in (0.005, 0.05, 10.0):
            got = nearest_within(points, queries, radius)
            expected = _nearest_donors(points, queries, radius)
            found = expected >= 0
            np.testing.assert_array_equal(got >= 0, found)
            # the same point, or (repeated points) one just as close
            d_got = np.linalg.norm(points[got[found]] - queries[found], axis=1)
            d_exp = np.linalg.norm(points[expected[found]] - queries[found], axis=1)
            np.testing.assert_array_equal(d_got, d_exp)
            if points is sheet:
                np.testing.assert_array_equal(got, expected)
    assert (nearest_within(np.zeros((0, 3)), queries, 1.0) == -1).all()
    one = np.zeros((1, 3))
    assert nearest_within(one, np.array([[1.0, 0, 0]]), 1.0)[0] == -1  # at the radius: outside, as cKDTree
    assert nearest_within(one, np.array([[1.0, 0, 0]]), np.nextafter(1.0, 2.0))[0] == 0


def test_warming_loads_the_one_kernel_every_projection_uses(turned):
    """`uv_texture.warm()` (the export step's warm-up, and a warm server's) loads the kernel version a real
    projection runs, read-only inputs (the layout cache's) or writable ones (a mask, a caller's arrays)."""
    from fk.render.cpu import uv_texture

    a, canon, cam, K, _tex, photo, _ = turned
    uv_texture.warm()
    loaded = list(uv_texture._project_kernel.signatures)
    yy, xx = np.mgrid[0 : photo.shape[0], 0 : photo.shape[1]]
    mask = np.clip(1.5 - np.hypot(xx - 150.0, yy - 170.0) / 60.0, 0.0, 1.0)
    for kw in ({}, {"mask": mask}, {"fill": False}):
        project_photo_to_uv(photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K, UV,
                            symmetry_vertices=canon, backend="cpu", impl="compiled", **kw)
    assert len(loaded) == 1
    assert list(uv_texture._project_kernel.signatures) == loaded
