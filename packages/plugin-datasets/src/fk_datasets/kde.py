"""A 2-D Gaussian KDE with Scott's bandwidth (scipy's ``gaussian_kde`` defaults), fast at scale.

LPFF fits ``scipy.stats.gaussian_kde`` on (theta, phi) in radians and evaluates it at
every sample: O(N*M) kernel sums, hours at 179k x 179k. Here the same estimator is
evaluated two ways:

- :meth:`ScottKDE.evaluate_exact`: the direct sum, chunked (bounded memory). Used for
  a few query points (the per-face density filter), so its decisions equal scipy's.
- :meth:`ScottKDE.evaluate_binned`: linear binning of the whitened samples onto a
  grid, a separable Gaussian convolution by FFT, then cubic interpolation at the
  queries. Tested against scipy's exact values (see ``BINNED_RTOL``).

Convention:
    - samples and queries are (N, 2) rows (theta, phi); units are the caller's
      (radians in LPFF), densities are per unit^2 (1/rad^2 in LPFF).
    - bandwidth: Scott's factor n^(-1/6); kernel covariance = factor^2 * the data
      covariance (unbiased, ddof=1), uniform weights: exactly scipy's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fk.errors import InputError

# Stated accuracy of evaluate_binned against the exact sum, relative to the KDE's
# peak value, at the default grid step (checked in tests/datasets on FFHQ-like data).
BINNED_RTOL = 1e-4
_CUTOFF = 8.0  # kernel truncated at 8 sigma: exp(-32) ~ 1e-14 of the peak
_EXACT_BUDGET = 4_000_000  # kernel evaluations per chunk of the direct sum


@dataclass(frozen=True)
class ScottKDE:
    """A fitted KDE. Build it with :meth:`fit`; ``samples`` is (N, 2) float64."""

    samples: np.ndarray
    kernel_cov: np.ndarray  # (2, 2)
    factor: float

    @classmethod
    def fit(cls, samples, name: str = "samples") -> ScottKDE:
        pts = np.asarray(samples, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise InputError(f"{name}: expected (N, 2) points (theta, phi), got shape {pts.shape}")
        n = pts.shape[0]
        if n < 3 or not np.isfinite(pts).all():
            raise InputError(f"{name}: a KDE needs at least 3 finite points, got {n}")
        factor = float(n) ** (-1.0 / 6.0)
        cov = np.atleast_2d(np.cov(pts, rowvar=False, ddof=1))
        kernel_cov = cov * factor**2
        if np.linalg.det(kernel_cov) <= 0:
            raise InputError(f"{name}: the points lie on a line (singular covariance); a 2-D KDE is undefined",
                             hint="Supply labels that vary in both theta and phi.")
        return cls(pts, kernel_cov, factor)

    @property
    def n(self) -> int:
        return self.samples.shape[0]

    # -- shared pieces ---------------------------------------------------------
    def _whitener(self) -> np.ndarray:
        """W with W @ kernel_cov @ W.T = I (inverse Cholesky factor)."""
        return np.linalg.inv(np.linalg.cholesky(self.kernel_cov))

    def _norm(self) -> float:
        return 1.0 / (self.n * 2.0 * np.pi * np.sqrt(np.linalg.det(self.kernel_cov)))

    def __call__(self, queries, method: str = "auto") -> np.ndarray:
        """Density at (M, 2) queries. ``auto``: exact for small jobs, binned for large ones."""
        q = _as_points(queries)
        if method == "auto":
            method = "exact" if q.shape[0] * self.n <= 2e8 else "binned"
        if method == "exact":
            return self.evaluate_exact(q)
        if method == "binned":
            return self.evaluate_binned(q)
        raise ValueError(f"method must be 'auto', 'exact' or 'binned', got {method!r}")

    # -- exact -----------------------------------------------------------------
    def evaluate_exact(self, queries) -> np.ndarray:
        """The direct kernel sum (scipy's value to rounding), in chunks of bounded memory."""
        q = _as_points(queries)
        w = self._whitener()
        zs = self.samples @ w.T
        zq = q @ w.T
        out = np.empty(q.shape[0])
        chunk = max(1, _EXACT_BUDGET // max(1, self.n))
        for start in range(0, q.shape[0], chunk):
            block = zq[start:start + chunk]
            dx = block[:, 0, None] - zs[None, :, 0]
            d2 = dx * dx
            dy = block[:, 1, None] - zs[None, :, 1]
            d2 += dy * dy
            d2 *= -0.5
            out[start:start + chunk] = np.exp(d2, out=d2).sum(1)
        return out * self._norm()

    # -- binned ----------------------------------------------------------------
    def evaluate_binned(self, queries, step: float = 0.05) -> np.ndarray:
        """Grid approximation of :meth:`evaluate_exact` (``step`` in kernel sigmas).

        Queries off the grid (farther than 8 sigma from every sample) are summed exactly.
        """
        from scipy import fft, ndimage

        q = _as_points(queries)
        w = self._whitener()
        zs = self.samples @ w.T
        zq = q @ w.T
        pad = _CUTOFF + 2 * step
        lo = zs.min(0) - pad
        shape = np.ceil((zs.max(0) + pad - lo) / step).astype(int) + 1
        if int(np.prod(shape)) > 60_000_000:
            raise InputError(f"KDE grid of {shape[0]}x{shape[1]} cells is too large for step {step}",
                             hint="Use a coarser step or evaluate_exact for this data.")
        # Linear binning: each sample's unit mass split over its 4 surrounding nodes.
        g = (zs - lo) / step
        i0 = np.floor(g).astype(np.int64)
        f = g - i0
        grid = np.zeros(int(np.prod(shape)))
        for dx, wx in ((0, 1 - f[:, 0]), (1, f[:, 0])):
            for dy, wy in ((0, 1 - f[:, 1]), (1, f[:, 1])):
                idx = (i0[:, 0] + dx) * shape[1] + (i0[:, 1] + dy)
                grid += np.bincount(idx, weights=wx * wy, minlength=grid.size)
        grid = grid.reshape(shape)
        # Linear binning spreads a sample with variance step^2 f(1-f) per axis, step^2/6
        # on average; the kernel gives that variance back so the sum is unbiased.
        sigma2 = 1.0 - step**2 / 6.0
        for axis in (0, 1):
            m = grid.shape[axis]
            taps = int(np.ceil(_CUTOFF / step))
            k = np.exp(-0.5 * (np.arange(-taps, taps + 1) * step) ** 2 / sigma2) / np.sqrt(sigma2)
            size = fft.next_fast_len(m + k.size - 1, real=True)
            kernel_spec = fft.rfft(k, size)
            kernel_spec = kernel_spec[:, None] if axis == 0 else kernel_spec[None, :]
            spec = fft.rfft(grid, size, axis=axis) * kernel_spec
            full = fft.irfft(spec, size, axis=axis)
            grid = np.take(full, np.arange(taps, taps + m), axis=axis)
        gq = (zq - lo) / step
        inside = np.all((gq >= 2) & (gq <= np.array(shape) - 3), axis=1)
        out = np.empty(q.shape[0])
        out[inside] = ndimage.map_coordinates(grid, gq[inside].T, order=3, mode="nearest")
        out[inside] *= self._norm()
        if (~inside).any():
            out[~inside] = self.evaluate_exact(q[~inside])
        return np.maximum(out, 0.0)


def _as_points(queries) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim == 1 and q.shape[0] == 2:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != 2:
        raise InputError(f"KDE queries: expected (M, 2) points (theta, phi), got shape {q.shape}")
    return q
