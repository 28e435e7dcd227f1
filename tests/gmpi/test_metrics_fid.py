"""FID and KID (fk.metrics.fid) against closed forms, torch-fidelity's formulas and an unbiasedness check."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from fk.metrics.fid import (
    FeatureStatistics,
    feature_statistics,
    fid,
    fid_from_statistics,
    kid,
    polynomial_mmd2_unbiased,
)


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


@pytest.mark.parametrize("trace_sqrt", ["scipy", "eigh"])
def test_fid_equals_the_closed_form_between_two_gaussians(trace_sqrt):
    # commuting covariances Q diag(a) Q^T and Q diag(b) Q^T: FID = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    d = 12
    rng = np.random.default_rng(1)
    q = _rotation(d, 2)
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1 = FeatureStatistics(mu1, q @ np.diag(a) @ q.T, 0)
    s2 = FeatureStatistics(mu2, q @ np.diag(b) @ q.T, 0)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid_from_statistics(s1, s2, trace_sqrt) == pytest.approx(expected, rel=1e-10)
    assert fid_from_statistics(s1, s1, trace_sqrt) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_samples_approaches_the_population_value():
    d, n = 4, 50_000
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)) * np.array([1.0, 2.0, 0.5, 1.0])
    y = rng.standard_normal((n, d)) * np.array([1.5, 2.0, 0.5, 0.5]) + np.array([0.3, 0, 0, -0.2])
    expected = 0.3**2 + 0.2**2 + (1.0 - 1.5) ** 2 + (1.0 - 0.5) ** 2
    assert fid(x, y) == pytest.approx(expected, abs=0.03)


def _torch_fidelity_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """torch-fidelity 0.3.0's fid_features_to_statistics + fid_statistics_to_metric, from its math."""
    mu1, mu2 = np.mean(f1, axis=0), np.mean(f2, axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_equals_torch_fidelitys_formula_on_the_same_features():
    rng = np.random.default_rng(4)
    # Inception-like: non-negative float32 features, correlated, two slightly different sets
    mix = rng.standard_normal((64, 64)) / 8
    f1 = np.abs(rng.standard_normal((600, 64)) @ mix).astype(np.float32)
    f2 = np.abs(rng.standard_normal((500, 64)) @ mix * 1.1 + 0.05).astype(np.float32)
    ours, ref = fid(f1, f2), _torch_fidelity_fid(f1, f2)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9)
    stats = feature_statistics(f1)
    assert stats.mu.dtype == np.float32  # np.mean keeps float32, as torch-fidelity's statistics
    np.testing.assert_allclose(stats.sigma, np.cov(f1, rowvar=False), rtol=1e-10, atol=1e-12)
    assert fid(f1, f2, "eigh") == pytest.approx(ref, rel=1e-6)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(5)
    f1, f2 = rng.random((5, 32)).astype(np.float32), rng.random((6, 32)).astype(np.float32)
    ref = _torch_fidelity_fid(f1, f2)
    assert np.isfinite(fid(f1, f2))
    assert fid(f1, f2) == pytest.approx(ref, rel=1e-6)
    assert fid(f1, f2, "eigh") == pytest.approx(ref, rel=1e-6)  # the cross-Gram SVD form


def _mmd2_population(sa: np.ndarray, pa: np.ndarray, sb: np.ndarray, pb: np.ndarray) -> float:
    """Exact MMD^2 of two discrete distributions (support points, probabilities), cubic kernel."""
    k = lambda x, y: (x @ y.T / x.shape[1] + 1.0) ** 3  # noqa: E731
    return float(pa @ k(sa, sa) @ pa + pb @ k(sb, sb) @ pb - 2 * pa @ k(sa, sb) @ pb)


def test_kid_estimator_is_unbiased_for_known_distributions():
    rng = np.random.default_rng(6)
    d, m, draws = 3, 20, 3000
    sa, sb = rng.standard_normal((4, d)), rng.standard_normal((4, d)) + 0.3
    pa, pb = np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.25)
    true = _mmd2_population(sa, pa, sb, pb)
    est, biased = [], []
    for _ in range(draws):
        x = sa[rng.choice(4, m, p=pa)]
        y = sb[rng.choice(4, m, p=pb)]
        est.append(polynomial_mmd2_unbiased(x, y))
        k = lambda u, v: (u @ v.T / d + 1.0) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    se = np.std(est) / np.sqrt(draws)
    assert abs(np.mean(est) - true) < 4 * se
    assert abs(np.mean(biased) - true) > 8 * se  # the V-statistic's bias is visible at this sample size


def test_kid_is_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((1500, 16)).astype(np.float32)
    b = rng.standard_normal((1500, 16)).astype(np.float32)
    c = (rng.standard_normal((1500, 16)) * 1.3 + 0.2).astype(np.float32)
    same = kid(a, b, subsets=20, subset_size=200)
    other = kid(a, c, subsets=20, subset_size=200)
    assert abs(same.mean) < 2 * same.std
    assert other.mean > 5 * other.std > 0


def test_kid_draws_the_subsets_of_torch_fidelity():
    rng = np.random.default_rng(8)
    f1 = rng.random((300, 24)).astype(np.float32)
    f2 = (rng.random((250, 24)) * 1.2).astype(np.float32)
    ours = kid(f1, f2, subsets=7, subset_size=100)
    state = np.random.RandomState(2020)
    ref = []
    for _ in range(7):
        x = f1[state.choice(300, 100, replace=False)]
        y = f2[state.choice(250, 100, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / 24 + 1) ** 3, (y @ y.T / 24 + 1) ** 3, (x @ y.T / 24 + 1) ** 3)
        m = 100
        ref.append(
            (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2
        )
    np.testing.assert_allclose(ours.values, ref, rtol=2e-4)
    assert ours.std == pytest.approx(np.std(ref), rel=1e-2)


def test_kid_refuses_subsets_larger_than_the_sets():
    f = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="subset size 1000"):
        kid(f, f)
