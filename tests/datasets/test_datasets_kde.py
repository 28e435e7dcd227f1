import numpy as np
import pytest
from scipy.stats import gaussian_kde

from fk.errors import InputError
from fk_datasets.kde import BINNED_RTOL, ScottKDE

from .conftest import ffhq_like_angles


def test_scott_factor_of_lpff_kde():
    # LPFF's kde.pkl: 139,914 samples, factor 139914^(-1/6) = 0.138789
    pts = np.random.default_rng(0).normal(size=(139_914, 2))
    assert ScottKDE.fit(pts).factor == pytest.approx(0.138789, abs=1e-6)


def test_exact_matches_scipy(rng):
    theta, phi = ffhq_like_angles(rng, 500)
    pts = np.stack([theta, phi], 1)
    ours = ScottKDE.fit(pts)
    ref = gaussian_kde(pts.T)
    np.testing.assert_allclose(ours.kernel_cov, ref.covariance, rtol=1e-12, atol=1e-18)
    q = np.concatenate([pts[:50], rng.uniform([0.3, 0.8], [2.8, 2.2], (50, 2))])
    np.testing.assert_allclose(ours.evaluate_exact(q), ref(q.T), rtol=1e-10, atol=1e-300)


def test_binned_matches_scipy_within_stated_tolerance(rng):
    theta, phi = ffhq_like_angles(rng, 20_000)
    pts = np.stack([theta, phi], 1)
    ours = ScottKDE.fit(pts)
    ref = gaussian_kde(pts.T)
    q = np.concatenate([pts[rng.choice(len(pts), 400, replace=False)],
                        rng.uniform([0.0, 0.5], [np.pi, 2.6], (200, 2)),
                        [[-1.0, 5.0]]])  # far off the grid: summed exactly
    exact = ref(q.T)
    binned = ours.evaluate_binned(q)
    assert np.abs(binned - exact).max() <= BINNED_RTOL * exact.max()
    strong = exact > 1e-2 * exact.max()
    assert (np.abs(binned - exact)[strong] / exact[strong]).max() < 1e-3


def test_auto_picks_binned_for_big_jobs(rng):
    theta, phi = ffhq_like_angles(rng, 8_000)
    pts = np.stack([theta, phi], 1)
    kde = ScottKDE.fit(pts)
    np.testing.assert_array_equal(kde(pts[:10]), kde.evaluate_exact(pts[:10]))
    big = np.repeat(pts, 2, axis=0)  # 32,000 x 16,000 > 2e8 kernel evaluations
    np.testing.assert_array_equal(kde(big), kde.evaluate_binned(big))


def test_degenerate_samples_raise():
    with pytest.raises(InputError, match="line"):
        ScottKDE.fit(np.stack([np.linspace(0, 1, 10), np.full(10, 1.5)], 1))
    with pytest.raises(InputError, match="at least 3"):
        ScottKDE.fit(np.zeros((2, 2)))
