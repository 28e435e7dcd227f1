"""fk.render.mesh: OpenCV-frame meshes with pixel intrinsics, in image layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from fk.errors import ShapeError
from fk.render.mesh import lambert_shade, overlay, projection_from_intrinsics, render_mesh

K_ASYM = torch.tensor([[[40.0, 0.0, 5.3], [0.0, 35.0, 3.8], [0.0, 0.0, 1.0]]], dtype=torch.float64)


def test_projection_lands_on_the_sampled_pixel_centre() -> None:
    """A point projected with K to (u, v) has NDC at the centre of column u and of bottom-up row H - 1 - v."""
    gen = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.rand(20, 2, generator=gen, dtype=torch.float64) - 0.5,
                     torch.rand(20, 1, generator=gen, dtype=torch.float64) * 3 + 1], 1)
    K = torch.tensor([[[300.0, 2.0, 61.0], [0.0, 280.0, 47.5], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    height, width = 96, 128
    uvw = pts @ K[0].T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    clip = torch.cat([pts, torch.ones(20, 1, dtype=torch.float64)], 1) @ projection_from_intrinsics(
        K, (height, width), 0.5, 10.0)[0].T
    ndc = clip[:, :3] / clip[:, 3:]
    torch.testing.assert_close((ndc[:, 0] + 1) * width / 2 - 0.5, u)
    torch.testing.assert_close((ndc[:, 1] + 1) * height / 2 - 0.5, height - 1 - v)
    z = pts[:, 2]
    torch.testing.assert_close(ndc[:, 2], (10.5 / 9.5) - 2 * 10 * 0.5 / (9.5 * z))


def test_small_triangle_lands_where_K_says_row_zero_on_top() -> None:
    """A tiny triangle around the point that K maps to (col 7, row 2) of a 10x12 image covers exactly that pixel."""
    z = 2.0
    target = torch.tensor([7.0, 2.0], dtype=torch.float64)
    centre = torch.stack([(target[0] - 5.3) / 40.0 * z, (target[1] - 3.8) / 35.0 * z, torch.tensor(z)])
    d = 0.2 / 40 * z  # 0.2 px
    verts = torch.stack([centre + torch.tensor([-d, -d, 0]), centre + torch.tensor([d, -d, 0]),
                         centre + torch.tensor([0, d, 0])])[None]
    out = render_mesh(verts, [[0, 1, 2]], K_ASYM, (10, 12))
    assert out.mask.shape == (1, 10, 12) and out.mask.dtype == torch.bool
    assert torch.nonzero(out.mask[0]).tolist() == [[2, 7]]
    assert out.triangle_id[0, 2, 7] == 0 and out.triangle_id.dtype == torch.int64
    assert torch.all(out.triangle_id[0][~out.mask[0]] == -1)
    assert out.depth[0, 2, 7].item() == pytest.approx(z, rel=1e-9)
    assert torch.all(out.depth[0][~out.mask[0]] == 0)


def test_sphere_silhouette_matches_analytic_circle() -> None:
    """A sphere of radius r at distance d on the optical axis projects to a circle of radius f r / sqrt(d^2 - r^2)."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    d, f, size = 5.0, 60.0, 64
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)[None] + torch.tensor([0.0, 0.0, d])
    K = torch.tensor([[[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]]])
    out = render_mesh(verts, sphere.faces, K, (size, size), vertex_colors=torch.ones_like(verts))
    radius = f * 1.0 / np.sqrt(d * d - 1.0)
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2)
    mask = out.mask[0].numpy()
    assert mask[dist < radius - 0.6].all()  # the icosphere's chords cut in by < 0.2 px here
    assert not mask[dist > radius + 0.1].any()
    assert torch.all(out.rgb[0][out.mask[0]] == 1) and torch.all(out.rgb[0][~out.mask[0]] == 0)
    front = out.depth[0, size // 2, size // 2].item()
    assert front == pytest.approx(d - 1.0, abs=2e-3)


def test_cube_face_depth_and_ids() -> None:
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    verts = torch.tensor(box.vertices, dtype=torch.float64)[None] + torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64)
    K = torch.tensor([[[50.0, 0, 15.5], [0, 50.0, 15.5], [0, 0, 1]]], dtype=torch.float64)
    out = render_mesh(verts, box.faces, K, (32, 32))
    half = 50 * 0.5 / 3.5  # the front face (z = 3.5) spans +-7.14 px around the centre
    assert out.mask[0, 16, 16] and out.mask[0, int(15.5 + half - 0.5), 16] and not out.mask[0, int(15.5 + half + 1.5), 16]
    front = box.faces[out.triangle_id[0, 16, 16].item()]
    assert np.allclose(box.vertices[front][:, 2], -0.5)
    assert out.depth[0, 16, 16].item() == pytest.approx(3.5, abs=1e-9)


def test_texture_orientation_obj_convention() -> None:
    """A quad filling the view with OBJ uvs: the texture image's top row shows at the top of the render."""
    z = 1.0
    verts = torch.tensor([[[-1, -1, z], [1, -1, z], [1, 1, z], [-1, 1, z]]], dtype=torch.float32)  # y down
    uvs = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=torch.float32)  # top of the image is v = 1
    faces = [[0, 1, 2], [0, 2, 3]]
    texture = np.zeros((4, 4, 3), np.uint8)
    texture[:2, :, 0] = 255  # top half red
    texture[2:, :, 2] = 255  # bottom half blue
    texture[:, :2, 1] = 255  # left half green
    K = torch.tensor([[[4.0, 0, 3.5], [0, 4.0, 3.5], [0, 0, 1]]])
    out = render_mesh(verts, faces, K, (8, 8), uvs=uvs, uv_faces=faces, texture=texture)
    rgb = out.rgb[0]
    # border pixels blend across the wrapped edge; (1, 1) and (6, 6) read single-colour texel pairs
    assert rgb[1, 1, 0] > 0.99 and rgb[1, 1, 2] < 0.01 and rgb[6, 6, 2] > 0.99 and rgb[6, 6, 0] < 0.01
    assert rgb[1, 1, 1] > 0.99 and rgb[1, 6, 1] < 0.01


def test_render_mesh_gradients_float64() -> None:
    verts = torch.tensor([[[-0.5, -0.4, 2.0], [0.6, -0.3, 2.5], [0.0, 0.5, 1.8], [0.7, 0.6, 2.2]]],
                         dtype=torch.float64, requires_grad=True)
    colors = torch.rand(1, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    K = torch.tensor([[[6.0, 0, 3.5], [0, 6.0, 2.5], [0, 0, 1]]], dtype=torch.float64)

    def fn(v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return render_mesh(v, [[0, 1, 2], [1, 3, 2]], K, (6, 8), vertex_colors=c, backend="cpu").rgb

    assert torch.autograd.gradcheck(fn, (verts, colors), eps=1e-6, atol=1e-6)
    fn(verts, colors).sum().backward()
    assert verts.grad.abs().sum() > 0 and colors.grad.abs().sum() > 0


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ShapeError, match="vertices"):
        render_mesh(torch.zeros(3, 3), [[0, 1, 2]], torch.eye(3)[None], (4, 4))
    with pytest.raises(ShapeError, match="K"):
        projection_from_intrinsics(torch.eye(4)[None], (4, 4))


def test_overlay_blends_only_under_mask() -> None:
    photo = np.full((2, 3, 3), 100, np.uint8)
    rgb = np.zeros((2, 3, 3))
    rgb[..., 1] = 1.0
    mask = np.array([[True, False, False], [False, False, True]])
    out = overlay(photo, torch.as_tensor(rgb)[None], torch.as_tensor(mask)[None], alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [50, 178, 50] and out[0, 1].tolist() == [100, 100, 100]
    with pytest.raises(ShapeError, match="photo"):
        overlay(photo.astype(np.float32), rgb, mask)


def test_lambert_shade_facing_light_keeps_albedo() -> None:
    verts = torch.tensor([[[0.0, 0, 1], [1, 0, 1], [0, 1, 1]]])
    albedo = torch.full((1, 3, 3), 0.8)
    shaded = lambert_shade(verts, [[0, 1, 2]], albedo)
    torch.testing.assert_close(shaded, albedo)
    side = lambert_shade(verts, [[0, 1, 2]], albedo, light_dir=(1.0, 0.0, 0.0), ambient=0.25)
    torch.testing.assert_close(side, albedo * 0.25)
