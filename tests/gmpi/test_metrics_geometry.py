"""GMPI's identity, depth and pose metrics (fk_gmpi.metrics) on synthetic inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from fk.cameras import gmpi as cams
from fk_gmpi import metrics as M
from fk_gmpi.eval import gmpi_uint8, sample_view, warp_nearest


def _face_depth(h: int = 48, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[:h, :w]
    depth = 1.0 + 0.02 * ((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / 100 + 0.01 * np.sin(xs / 3.0)
    mask = ((xs - w / 2) / (w / 2.5)) ** 2 + ((ys - h / 2) / (h / 2.5)) ** 2 < 1
    return depth, mask


def test_depth_error_is_zero_for_affine_related_depths():
    depth, mask = _face_depth()
    for scale, offset in ((1.0, 0.0), (10.0, -3.0), (0.1, 0.9)):
        # zero up to the 1e-8 in GMPI's denominators (relative 1e-8 / std)
        assert M.depth_error(depth * scale + offset, depth, mask) == pytest.approx(0.0, abs=1e-9)


def test_depth_error_of_an_inverted_depth_is_four():
    # standardised vectors u and -u: mean (2u)^2 = 4 var(u) = 4 (population std, as GMPI's np.std)
    depth, mask = _face_depth()
    s = depth[mask].std()
    assert M.depth_error(2.0 - depth, depth, mask) == pytest.approx(4.0 * (s / (s + 1e-8)) ** 2, rel=1e-12)


def test_depth_error_uses_only_the_mask_and_positive_gmpi_depth():
    depth, mask = _face_depth()
    gmpi = depth.copy()
    gmpi[~mask] = 7.0  # anything outside the 3DMM mask is ignored
    hole = mask.copy()
    hole[:, : hole.shape[1] // 2] = False
    gmpi[mask & ~hole] = 0.0  # GMPI depth 0 (no MPI coverage) drops those pixels
    assert M.depth_error(gmpi, depth, mask) == pytest.approx(M.depth_error(depth, depth, hole), abs=1e-12)
    assert np.isnan(M.depth_error(np.zeros_like(depth), depth, mask))


def test_depth_error_matches_gmpis_formula_on_noise():
    rng = np.random.default_rng(0)
    depth, mask = _face_depth()
    noisy = depth + rng.normal(0, 0.01, depth.shape)
    a, b = depth[mask], noisy[mask]
    na, nb = (a - a.mean()) / (a.std() + 1e-8), (b - b.mean()) / (b.std() + 1e-8)
    assert M.depth_error(noisy, depth, mask) == pytest.approx(np.mean((na - nb) ** 2), rel=1e-12)


def test_angle_error_with_known_offsets():
    # target (pitch, -yaw, 0); prediction off by (0.1, -0.2, 0.3) -> (0.01 + 0.04 + 0.09) / 3
    pitch, yaw = 0.12, -0.25
    pred = np.array([pitch + 0.1, -yaw - 0.2, 0.3])
    assert M.angle_error([pitch, yaw], pred) == pytest.approx(0.14 / 3, rel=1e-12)
    assert M.angle_error([pitch, yaw], M.pose_target(pitch, yaw)) == 0.0
    # a prediction that forgot the yaw sign flip is wrong by (2 yaw)^2 / 3
    assert M.angle_error([pitch, yaw], [pitch, yaw, 0.0]) == pytest.approx((2 * yaw) ** 2 / 3)
    with pytest.raises(ValueError, match="3 values"):
        M.angle_error([0, 0], [0.0, 0.0])


def test_cosine_similarity_and_summary():
    a = np.array([1.0, 2.0, 0.0])
    assert M.cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert M.cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert M.cosine_similarity([1.0, 0.0], [1.0, 1.0]) == pytest.approx(np.sqrt(0.5))
    s = M.summarize([1.0, 3.0, float("nan"), None])
    assert s == {"mean": 2.0, "std": 1.0, "count": 2}
    assert M.summarize([]) == {"mean": None, "std": None, "count": 0}


def test_gmpi_uint8_truncates_like_gmpi():
    np.testing.assert_array_equal(gmpi_uint8(np.array([0.0, 0.999, 1.5, -1.0, 0.5])), [0, 254, 255, 0, 127])


def test_sampled_views_stay_inside_the_truncated_prior():
    setup = cams.camera_setup("FFHQ256")
    rng = np.random.default_rng(0)
    views = [sample_view(setup, rng) for _ in range(200)]
    yaws, pitches = np.array([v[0] for v in views]), np.array([v[1] for v in views])
    assert np.all(np.abs(yaws) <= 2 * setup.h_stddev + 1e-12)
    assert np.all(np.abs(pitches) <= 2 * setup.v_stddev + 1e-12)
    assert 0.6 * setup.h_stddev < yaws.std() < 1.1 * setup.h_stddev
    yaw, pitch, c2w = views[0]
    back_yaw, back_pitch = cams.yaw_pitch_from_w2c(np.linalg.inv(c2w)[None], (0, 0, setup.sphere_center_z))
    assert float(np.ravel(back_yaw)[0]) == pytest.approx(yaw, abs=1e-9)
    assert float(np.ravel(back_pitch)[0]) == pytest.approx(pitch, abs=1e-9)


def test_warp_nearest_follows_the_crop_map():
    img = np.arange(20 * 30, dtype=np.float64).reshape(20, 30)
    shift = np.array([[1.0, 0, -5], [0, 1, -3], [0, 0, 1]])  # crop pixel (x, y) = source (x + 5, y + 3)
    out = warp_nearest(img, shift, (10, 10))
    np.testing.assert_array_equal(out, img[3:13, 5:15])
    half = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])  # crop = source / 2: every other source pixel
    np.testing.assert_array_equal(warp_nearest(img, half, (10, 15)), img[::2, ::2])
    assert warp_nearest(img, shift, (40, 40))[30, 30] == 0.0  # outside the source


def test_geometry_measures_a_real_face_through_the_registry(tmp_path):
    """Depth and pose on the astronaut: detect -> crop:deep3d -> R-Net or fk's fit -> both metrics."""
    from pathlib import Path

    from fk_gmpi import eval as ev
    from fk_gmpi.prepare import load_components
    from PIL import Image
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()[10:250, 120:360]).resize((224, 224), Image.LANCZOS))
    ys, xs = np.mgrid[:224, :224]
    bump = 1.0 - 0.05 * np.exp(-((xs - 112) ** 2 + (ys - 100) ** 2) / (2 * 40.0**2))  # nearer in the middle

    class StillRenderer:  # stands in for the generator: every latent renders the astronaut and the bump
        setup = cams.camera_setup("FFHQ256")

        def rng(self, index, stream):
            return np.random.default_rng([7, stream, index])

        def mpis(self, idx):
            return idx

        def render(self, mpis, c2w, size):
            assert size == ev.GEOMETRY_SIZE
            b = len(mpis)
            return np.repeat(face[None, None] / 255.0, b, 0), np.repeat(bump[None, None], b, 0)

    opts = ev.EvalOptions(dataset="FFHQ256", out=tmp_path, num_geometry=1, fit_iterations=2)
    comps = load_components("cpu", 2, None, "auto", coefficients=True)
    geo = ev.geometry(opts, StillRenderer(), Path(tmp_path), comps)
    assert geo["skipped"] == []
    assert geo["depth"]["count"] == 1
    assert geo["pose"]["count"] == 1
    assert 0.0 <= geo["depth"]["mean"] < 4.0  # a smooth bump against a face: correlated, not perfect
    yaw, pitch, _ = ev.sample_view(StillRenderer.setup, StillRenderer().rng(0, 3))
    assert geo["pose"]["mean"] < (yaw**2 + pitch**2) / 3 + 0.05  # a near-frontal fit against the drawn view
    assert (tmp_path / "samples" / "geometry" / "000000.png").exists()
