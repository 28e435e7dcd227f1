"""fk.cameras.gmpi: GMPI's MPI world, sphere sampling, trajectories and poses from Deep3D / EG3D."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk.cameras import eg3d
from fk.cameras import gmpi as g

FFHQ = g.camera_setup("FFHQ256")


def test_fov_is_deep3d_camera_and_focal():
    assert g.FFHQ_FOV_DEG == 12.6
    assert np.rad2deg(2 * np.arctan(112 / 1015)) == pytest.approx(12.6, abs=0.01)
    assert g.focal_from_fov(12.6, 256) / 256 == pytest.approx(4.529, abs=1e-3)
    k = g.intrinsics(12.6, 256, 256)
    assert k[0, 2] == k[1, 2] == 127.5  # GMPI's W/2 for rays through u + 0.5 = fk's centre 127.5
    d = g.pixel_rays(12.6, 256, 256)
    assert d.shape == (256, 256, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0)
    # the image edge (pixel 0's left border) is at half the FoV
    edge = np.arctan((0.0 - 128) / g.focal_from_fov(12.6, 256))
    assert np.rad2deg(-2 * edge) == pytest.approx(12.6)


def test_camera_setups_pin():
    assert g.camera_setup("FFHQ1024") == g.CAMERA_SETUPS["FFHQ"]
    s = g.camera_setup("metfaces")
    assert (s.h_stddev, s.v_stddev, s.ray_start, s.ray_end) == (0.339, 0.133, 0.95, 1.12)
    a = g.camera_setup("AFHQCat")
    assert (a.fov_deg, a.sphere_center_z, a.sphere_r, a.n_truncated_stds) == (13.39, 2.7, 2.7, 3)
    with pytest.raises(ValueError, match="unknown GMPI dataset"):
        g.camera_setup("CelebA")


def test_plane_depths_are_uniform_in_disparity_nearest_first():
    z = g.sample_plane_depths(0.95, 1.12, 32)
    assert z.dtype == np.float32
    assert z[0] == pytest.approx(0.95)
    assert z[-1] == pytest.approx(1.12)
    assert np.all(np.diff(z) > 0)
    np.testing.assert_allclose(
        np.diff(1 / z.astype(np.float64)), np.diff(1 / z.astype(np.float64))[0], rtol=1e-4
    )
    np.testing.assert_allclose(g.sample_plane_depths(1, 2, 3, "uniform"), [1, 1.5, 2])


def test_frontal_sphere_camera_is_the_identity_at_the_world_origin():
    c2w, yaws, pitches = g.gen_sphere_path(1, (0, 0, 1.0), 1.0, given_yaws=[0.0], given_pitches=[0.0])
    np.testing.assert_allclose(c2w[0], np.eye(4), atol=1e-12)
    # AFHQ's sphere: camera at z = 2.7 - 2.7 = 0 as well
    np.testing.assert_allclose(
        g.c2w_from_yaw_pitch(0.0, 0.0, g.camera_setup("AFHQCat"))[0], np.eye(4), atol=1e-12
    )


def test_sphere_world_position_formula_and_directions():
    y, p = 0.3, -0.2
    c2w = g.c2w_from_yaw_pitch([y], [p], FFHQ)[0]
    expected = (np.cos(p) * np.sin(y), -np.sin(p), 1.0 - np.cos(p) * np.cos(y))
    np.testing.assert_allclose(c2w[:3, 3], expected, atol=1e-12)
    # positive yaw -> camera at +x; positive pitch -> camera up (world -y)
    assert g.c2w_from_yaw_pitch([0.2], [0.0], FFHQ)[0, 0, 3] > 0
    assert g.c2w_from_yaw_pitch([0.0], [0.2], FFHQ)[0, 1, 3] < 0
    # looks at the MPI centre, never rolls (right axis stays horizontal), rotation orthonormal
    forward = c2w[:3, 2]
    np.testing.assert_allclose(np.cross(forward, np.array([0, 0, 1.0]) - c2w[:3, 3]), 0, atol=1e-12)
    assert abs(c2w[1, 0]) < 1e-12
    np.testing.assert_allclose(c2w[:3, :3].T @ c2w[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)


def test_yaw_pitch_round_trip():
    rng = np.random.default_rng(0)
    c2w, yaws, pitches = g.gen_sphere_path(
        50,
        (0, 0, 1.0),
        1.0,
        yaw_std=FFHQ.h_stddev,
        pitch_std=FFHQ.v_stddev,
        sample_method="truncated_gaussian",
        rng=rng,
    )
    assert np.all(np.abs(yaws) <= 2 * FFHQ.h_stddev)
    assert np.all(np.abs(pitches) <= 2 * FFHQ.v_stddev)
    y2, p2 = g.yaw_pitch_from_w2c(np.linalg.inv(c2w), (0, 0, 1.0))
    np.testing.assert_allclose(y2, yaws, atol=1e-10)
    np.testing.assert_allclose(p2, pitches, atol=1e-10)


def test_deterministic_sweep():
    pos, pitches, yaws = g.sample_camera_positions_sphere(5, 1.0, 0.0, 0.25, 0.1, 0.5, flag_rnd=False)
    np.testing.assert_allclose(yaws[:, 0], np.linspace(-0.5, 0.5, 5))
    np.testing.assert_allclose(pitches[:, 0], 0.1)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0)


def test_truncated_normal_stays_inside():
    rng = np.random.default_rng(1)
    x = g.truncated_normal((10000,), 0.0, 1.0, 0.5, rng)
    assert x.min() >= -0.5
    assert x.max() <= 0.5
    assert x.std() > 0.2


def test_deep3d_identity_pose_is_the_frontal_training_camera():
    w2c = g.w2c_from_deep3d_pose(np.zeros((1, 3)), np.zeros((1, 3)), 1.0, 1.0)
    # without normalisation the camera is Deep3D's 10 units away: centre at z = 1 - 10
    np.testing.assert_allclose(w2c[0, :3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(w2c[0])[:3, 3], [0, 0, -9.0], atol=1e-12)
    w2c = g.compute_w2c_mat_from_estimated_pose_ffhq(
        np.zeros((1, 3)), np.zeros((1, 3)), 1.0, 1.0, normalize_trans=True
    )
    np.testing.assert_allclose(w2c[0], np.eye(4), atol=1e-12)


@pytest.mark.parametrize(("yaw", "pitch"), [(0.3, 0.0), (-0.25, 0.0), (0.0, 0.2), (0.0, -0.15)])
def test_deep3d_angles_match_sphere_cameras(yaw, pitch):
    # GMPI's evaluation compares Deep3D's angle with (pitch, -yaw, 0) (gmpi.md §4.4): a face turned by
    # that angle, seen by Deep3D's fixed camera, is the MPI seen from the sphere camera (yaw, pitch).
    w2c = g.w2c_from_deep3d_pose(
        np.array([[pitch, -yaw, 0.0]]), np.zeros((1, 3)), 1.0, 1.0, normalize_trans=True
    )
    c2w = g.c2w_from_yaw_pitch([yaw], [pitch], FFHQ)
    np.testing.assert_allclose(np.linalg.inv(w2c), c2w, atol=1e-12)


def test_deep3d_trans_moves_the_direction_and_normalisation_keeps_rotation_and_radius():
    ang = np.array([[0.1, -0.2, 0.05]])
    tr = np.array([[0.3, -0.2, 0.5]])
    raw = g.w2c_from_deep3d_pose(ang, tr, 1.0, 1.0)
    snapped = g.w2c_from_deep3d_pose(ang, tr, 1.0, 1.0, normalize_trans=True)
    np.testing.assert_allclose(raw[:, :3, :3], snapped[:, :3, :3])
    c_raw = np.linalg.inv(raw[0])[:3, 3] - [0, 0, 1]
    c_new = np.linalg.inv(snapped[0])[:3, 3] - [0, 0, 1]
    assert np.linalg.norm(c_new) == pytest.approx(1.0)
    np.testing.assert_allclose(c_new, c_raw / np.linalg.norm(c_raw), atol=1e-12)
    # roll is kept (Deep3D's full rotation), unlike sampled cameras
    assert abs(np.linalg.inv(snapped[0])[1, 0]) > 1e-3


def test_afhq_eg3d_labels(tmp_path):
    frontal = eg3d.label_from_lookat_hv(np.pi / 2, np.pi / 2, radius=2.7, pivot=(0, 0, 0))
    yawed = eg3d.label_from_lookat_hv(np.pi / 2 + 0.2, np.pi / 2, radius=2.7, pivot=(0, 0, 0))
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": [["b.png", yawed.tolist()], ["a.png", frontal.tolist()]]})
    )
    cams = g.afhq_w2c_from_dataset_json(tmp_path / "dataset.json")
    assert list(cams) == ["a.png", "b.png"]
    np.testing.assert_allclose(cams["a.png"], np.eye(4), atol=1e-12)
    # EG3D theta > pi/2 puts the camera at EG3D +x, which is GMPI +x too (only y and z flip)
    c = np.linalg.inv(cams["b.png"])[:3, 3]
    assert c[0] > 0
    assert abs(c[1]) < 1e-12
    assert np.linalg.norm(c - [0, 0, 2.7]) == pytest.approx(2.7)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match="bad.json"):
        g.read_eg3d_dataset_json(tmp_path / "bad.json")
