"""FID and KID on feature arrays, computed as torch-fidelity (v0.3.0, the backend GMPI's evaluation calls).

FID (TTUR's formula, which torch-fidelity and pytorch-fid keep):

    FID = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))

with mu the feature mean (``np.mean`` in the features' dtype) and S ``np.cov(rowvar=False)`` (float64,
unbiased). The square root is ``scipy.linalg.sqrtm`` of the product; when it is not finite, 1e-6 is
added to both diagonals and it is taken again; a complex result keeps its real part (and is refused when
its diagonal's imaginary part exceeds 1e-3). ``trace_sqrt="eigh"`` is fk's faster option (named, never the
default): tr sqrtm(S1 S2) = sum sqrt(eig(A)) with A = S1^½ S2 S1^½ symmetric, exact in exact arithmetic
(S1 S2 is similar to A), two symmetric eigendecompositions instead of a Schur decomposition; from
features with fewer rows than dimensions, :func:`fid` takes the nuclear norm of the centred cross-Gram
matrix instead (:func:`trace_sqrt_from_features`), where scipy's sqrtm of the singular product is slow.

KID (Bińkowski et al.'s unbiased MMD², torch-fidelity's defaults): ``subsets`` = 100 subsets of
``subset_size`` = 1000 rows drawn without replacement from each set by ``np.random.RandomState(2020)``
(set 1's rows then set 2's, per subset), polynomial kernel k(x, y) = (xᵀy / d + 1)³, and

    MMD² = (sum K_xx - tr K_xx + sum K_yy - tr K_yy) / (m (m - 1)) - 2 sum K_xy / m²

reported as mean and (population) std over the subsets. The kernels are float32 matrix products as in
torch-fidelity, raised to the power in place; fk sums them in float64 (torch-fidelity in float32), a
difference far below the subset noise (bench/bench_fid.py: 5e-8 on a KID of 0.024).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FID_EPS = 1e-6
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean (D,) and covariance (D, D) of a feature set, and how many rows made them."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


def feature_statistics(features: np.ndarray) -> FeatureStatistics:
    """(N, D) features -> ``np.mean`` (in their dtype) and ``np.cov`` (float64), as torch-fidelity."""
    f = np.asarray(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected (N >= 2, D), got {f.shape}")
    return FeatureStatistics(mu=np.mean(f, axis=0), sigma=np.cov(f, rowvar=False), count=int(f.shape[0]))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "scipy") -> float:
    """tr sqrtm(S1 S2): ``scipy`` (the standard implementations' sqrtm, with the eps retry) or ``eigh``."""
    if method == "eigh":
        w1, v1 = np.linalg.eigh(sigma1)
        root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
        w = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
        return float(np.sqrt(np.clip(w, 0, None)).sum())
    if method != "scipy":
        raise ValueError(f"trace_sqrt: 'scipy' or 'eigh', got {method!r}")
    import warnings

    import scipy.linalg

    with warnings.catch_warnings():  # torch-fidelity passes disp=False: no console warning, same numbers
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * FID_EPS
            covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(np.trace(covmean))


def fid_from_statistics(s1: FeatureStatistics, s2: FeatureStatistics, trace_sqrt: str = "scipy") -> float:
    """Fréchet distance between two Gaussians fitted to features (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(s1.mu), np.atleast_1d(s2.mu)
    sigma1, sigma2 = np.atleast_2d(s1.sigma), np.atleast_2d(s2.sigma)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID: statistics of different sizes ({mu1.shape} vs {mu2.shape})")
    diff = mu1 - mu2
    tr = trace_sqrt_product(sigma1, sigma2, trace_sqrt)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr)


def trace_sqrt_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """tr sqrtm(S1 S2) from the features: the nuclear norm of A Bᵀ / sqrt((n1 - 1)(n2 - 1)).

    With A, B the centred features, S1 = AᵀA / (n1 - 1) and S2 = BᵀB / (n2 - 1); the non-zero eigenvalues
    of S1 S2 are those of (A Bᵀ)(A Bᵀ)ᵀ / ((n1 - 1)(n2 - 1)), so the trace of the square root is the sum
    of the singular values of A Bᵀ (an n1 x n2 SVD: the cheap form when there are fewer images than
    feature dimensions).
    """
    a = np.asarray(features1, dtype=np.float64)
    b = np.asarray(features2, dtype=np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    sv = np.linalg.svd(a @ b.T, compute_uv=False)
    return float(sv.sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))


def fid(features1: np.ndarray, features2: np.ndarray, trace_sqrt: str = "scipy") -> float:
    """FID of two (N, D) feature sets; ``trace_sqrt="eigh"`` uses the cheaper exact form (module docstring).

    With ``eigh`` and fewer images than dimensions in a set, the trace comes from
    :func:`trace_sqrt_from_features` (an SVD of the n1 x n2 cross-Gram matrix) instead of D x D eigensystems.
    """
    s1, s2 = feature_statistics(features1), feature_statistics(features2)
    if trace_sqrt == "eigh" and min(s1.count, s2.count) <= s1.mu.shape[0]:
        diff = np.atleast_1d(s1.mu) - np.atleast_1d(s2.mu)
        tr = trace_sqrt_from_features(features1, features2)
        return float(diff.dot(diff) + np.trace(s1.sigma) + np.trace(s2.sigma) - 2 * tr)
    return fid_from_statistics(s1, s2, trace_sqrt)


def polynomial_mmd2_unbiased(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> float:
    """Unbiased MMD² of two equal-size samples (m, D) under k(a, b) = (gamma aᵀb + coef0)^degree.

    Kernels are numpy matrix products in the samples' dtype (float32 for Inception features, as
    torch-fidelity), raised to the power in place; the sums are float64.
    """
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"MMD²: needs two samples of the same size >= 2, got {x.shape} and {y.shape}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def kernel_sums(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        k = a @ b.T
        k *= gamma
        k += coef0
        np.power(k, degree, out=k)
        return float(k.sum(dtype=np.float64)), float(np.trace(k, dtype=np.float64))

    sxx, dxx = kernel_sums(x, x)
    syy, dyy = kernel_sums(y, y)
    sxy, _ = kernel_sums(x, y)
    return (sxx - dxx + syy - dyy) / (m * (m - 1)) - 2 * sxy / (m * m)


@dataclass(frozen=True)
class KidResult:
    mean: float
    std: float
    subsets: int
    subset_size: int
    values: np.ndarray


def kid(
    features1: np.ndarray,
    features2: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = KID_SEED,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> KidResult:
    """Kernel Inception distance: unbiased polynomial MMD² averaged over random subsets (module docstring)."""
    f1, f2 = np.asarray(features1), np.asarray(features2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID: expected (N, D) and (M, D) features, got {f1.shape} and {f2.shape}")
    if min(len(f1), len(f2)) < subset_size:
        raise ValueError(
            f"KID: subset size {subset_size} needs at least that many samples in each set "
            f"(got {len(f1)} and {len(f2)})"
        )
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for i in range(subsets):
        a = f1[rng.choice(len(f1), subset_size, replace=False)]
        b = f2[rng.choice(len(f2), subset_size, replace=False)]
        values[i] = polynomial_mmd2_unbiased(a, b, degree, gamma, coef0)
    return KidResult(float(values.mean()), float(values.std()), subsets, subset_size, values)
