"""FFHQ-UV's nearest-texel UV lookup (first coordinate = row, truncated, 512-px units), bilinear option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.render.uv_sampling import sample_uv_texture


def _texture(size=8):
    t = torch.arange(size * size * 3, dtype=torch.float32).reshape(1, size, size, 3)
    return t


def test_nearest_reads_row_from_the_first_coordinate_and_truncates():
    tex = _texture(8)  # 8 texels over 512 px: 64 px per texel
    coords = torch.tensor([[[[0.0, 0.0], [63.9, 0.0], [64.0, 0.0], [0.0, 64.0], [130.0, 200.0]]]])
    out = sample_uv_texture(tex, coords)
    want = [tex[0, 0, 0], tex[0, 0, 0], tex[0, 1, 0], tex[0, 0, 1], tex[0, 2, 3]]
    for k, w in enumerate(want):
        torch.testing.assert_close(out[0, 0, k], w)


def test_nearest_matches_upstreams_flat_index_rule_everywhere_below_the_edge():
    rng = np.random.default_rng(0)
    size = 16
    tex = torch.as_tensor(rng.random((2, size, size, 3)), dtype=torch.float32)
    coords = torch.as_tensor(rng.uniform(0, 511.99, (2, 5, 7, 2)), dtype=torch.float32)
    out = sample_uv_texture(tex, coords)
    c = (coords * size / 512).clamp(0, size).int()  # upstream: rescale, clamp, int(), c0 * W + c1
    flat = tex.reshape(2, -1, 3)
    want = torch.stack([flat[b, (c[b, ..., 0] * size + c[b, ..., 1]).reshape(-1)] for b in range(2)])
    torch.testing.assert_close(out.reshape(2, -1, 3), want)
    edge = sample_uv_texture(tex, torch.full((2, 1, 1, 2), 512.0))  # upstream indexes past the map here
    torch.testing.assert_close(edge[:, 0, 0], tex[:, -1, -1])


def test_bilinear_interpolates_between_texel_centres_and_has_coordinate_gradients():
    tex = _texture(8)
    centre = torch.tensor([[[[32.0, 32.0], [32.0, 64.0]]]], requires_grad=True)  # texel (0,0) centre; between
    out = sample_uv_texture(tex, centre, mode="bilinear")
    torch.testing.assert_close(out[0, 0, 0], tex[0, 0, 0])
    torch.testing.assert_close(out[0, 0, 1], (tex[0, 0, 0] + tex[0, 0, 1]) / 2)
    out.sum().backward()
    assert centre.grad.abs().sum() > 0
    with pytest.raises(Exception, match="mode"):
        sample_uv_texture(tex, centre.detach(), mode="cubic")
