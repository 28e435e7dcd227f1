"""The hybrid avatar's pieces: hash grid, CoRA's shading, the SDF/material interface, safe loading."""

from __future__ import annotations

import pickle

import pytest
import torch
from fk.errors import InputError
from fk_eyeball.avatar import EYE_ROUGHNESS, EYE_SPECULAR, AvatarSpec, HybridAvatar, load_avatar
from fk_eyeball.hashgrid import HashGrid

BOUND = 1.5
CENTRES = [[-0.31, 0.29, 0.028], [0.31, 0.29, 0.028]]  # world (dm)


def _avatar(hybrid=True, centres=CENTRES, **kw):
    torch.manual_seed(0)
    spec = AvatarSpec(bound=BOUND, num_levels=4, level_dim=2, log2_hashmap_size=12, hybrid=hybrid,
                      eye_centers=[[c / BOUND for c in e] for e in centres], eyeball_min_size=0.08,
                      eyeball_max_size=0.16, n_views=4, **kw)  # fmt: skip
    return HybridAvatar(spec)


def test_hash_grid_gradients_match_finite_differences():
    torch.manual_seed(0)
    grid = HashGrid(3, 2, 10, base_resolution=4, finest_resolution=32, smoothstep=True).double()
    assert grid.dense.tolist() == [True, False, False]  # 5³ cells fit the table densely, 13³ and 33³ hash
    with torch.no_grad():
        grid.params.normal_()
    x = torch.rand(40, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(grid, (x,))
    assert torch.autograd.gradgradcheck(grid, (x,))  # the eikonal loss differentiates the gradient


def test_hash_grid_coarse_to_fine_zeroes_upper_levels():
    torch.manual_seed(0)
    grid = HashGrid(4, 2, 10)
    with torch.no_grad():
        grid.params.normal_()
    x = torch.rand(10, 3)
    full = grid(x)
    grid.active_levels = 2
    part = grid(x)
    assert torch.equal(part[:, :4], full[:, :4])
    assert not part[:, 4:].any()
    assert full[:, 4:].abs().sum() > 0


def test_scene_sdf_is_the_min_of_head_and_eyeballs_in_world_units():
    avatar = _avatar()
    c = torch.tensor(CENTRES[0])
    radius = avatar.eyeball_radius
    assert radius.item() == pytest.approx(0.12)  # midpoint of [0.08, 0.16]
    torch.testing.assert_close(avatar.eyeball_centres, torch.tensor(CENTRES))
    x = c + torch.tensor([[0.0, 0.0, 0.05], [0.0, 0.2, 0.0], [1.0, 1.0, 1.0]])
    eye = (x - c).norm(dim=1) - radius
    right = (x - torch.tensor(CENTRES[1])).norm(dim=1) - radius
    expect = torch.minimum(avatar.head_sdf(x), torch.minimum(eye, right))
    torch.testing.assert_close(avatar.sdf(x), expect)
    lo, hi = avatar.bounds
    assert lo == (-BOUND,) * 3
    assert hi == (BOUND,) * 3


def test_eye_points_get_fixed_specular_and_radial_normals():
    centres = [[-0.31, 0.29, 1.2], [0.31, 0.29, 1.2]]  # outside the head's initial sphere
    avatar = _avatar(centres=centres)
    c = torch.tensor(centres[1])
    d = torch.nn.functional.normalize(torch.tensor([[0.2, 0.1, 1.0], [-0.3, 0.2, 0.9]]), dim=-1)
    x = c + d * avatar.eyeball_radius
    assert (avatar.sdf(x) < avatar.head_sdf(x)).all()
    m = avatar.materials(x)
    assert m["albedo"].shape == (2, 3)
    assert m["specular"].shape == (2, 1)
    assert m["roughness"].shape == (2, 1)
    torch.testing.assert_close(m["specular"], torch.full((2, 1), EYE_SPECULAR))
    torch.testing.assert_close(m["roughness"], torch.full((2, 1), EYE_ROUGHNESS))
    torch.testing.assert_close(m["normal"], d, atol=1e-5, rtol=0)
    far = torch.tensor([[0.0, -0.6, 0.0]])  # a head point: learned values, roughness in the brdf range
    mh = avatar.materials(far)
    assert 0.1 <= mh["roughness"].item() <= 0.9
    assert mh["specular"].item() != EYE_SPECULAR
    assert torch.allclose(mh["normal"].norm(dim=1), torch.ones(1))


def test_without_hybrid_there_are_no_eyeballs():
    avatar = _avatar(hybrid=False)
    x = torch.tensor(CENTRES)
    assert avatar.eyeball_centres is None
    assert avatar.eyeball_radius is None
    torch.testing.assert_close(avatar.sdf(x), avatar.head_sdf(x))


def test_load_avatar_round_trip_and_refusals(tmp_path):
    from dataclasses import asdict

    avatar = _avatar()
    with torch.no_grad():
        avatar.eye_c01.add_(0.01)
    path = tmp_path / "latest.pth"
    torch.save({"spec": asdict(avatar.spec), "radiance_field": avatar.state_dict(), "level": 4}, path)
    loaded = load_avatar(path)
    x = torch.rand(20, 3) - 0.5
    torch.testing.assert_close(loaded.sdf(x), avatar.sdf(x))
    torch.testing.assert_close(loaded.eyeball_centres, avatar.eyeball_centres)

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"spec": Boom()}, protocol=2))
    with pytest.raises(InputError, match="evil.pth"):
        load_avatar(evil)
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not an fk eyeball train checkpoint"):
        load_avatar(other)


def test_coarse_to_fine_masks_the_geometry_grid_only():
    avatar = _avatar()
    avatar.set_level(2)
    assert avatar.geometry.grid.active_levels == 2
    assert avatar.material.grid.active_levels == avatar.spec.num_levels  # CoRA: VolumeMaterial has no mask
