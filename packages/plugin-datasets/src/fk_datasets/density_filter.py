"""LPFF's density filter: keep a face only if its camera is rare in FFHQ (density < 0.4).

With FFHQ-EG3D labels (``dataset.json``, 139,914 labels with mirrors), the density is
the Scott-bandwidth Gaussian KDE of their (theta, phi) in radians, evaluated exactly, so
decisions equal scipy's ``gaussian_kde`` (LPFF's ``kde.pkl``).

Without them, a documented **approximation** is used: LPFF's 0.4 contour (``lpff.md``
section 1.6, measured on the shipped KDE) lies at |theta - 90 deg| = 33.5 deg at phi =
84.8 deg (the FFHQ mean), and at phi = 68.6 deg (looking down) and 100.3 deg (looking up)
at theta = 90 deg. The fallback keeps a face when it lies outside the ellipse through those
four points (upper and lower half-ellipses with their own phi semi-axis). Its manifest
entries say ``criterion: "fallback-ellipse"`` and carry no density.

Convention: LPFF's paper theta/phi (:func:`fk.cameras.eg3d.lpff_theta_phi_from_label`; radians,
phi < pi/2 looks down).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fk.cameras.eg3d import lpff_theta_phi_from_label

from fk_datasets.kde import ScottKDE
from fk_datasets.labels import read_dataset_labels

THRESHOLD = 0.4
FALLBACK_PHI_CENTER = np.radians(84.8)
FALLBACK_THETA_HALF_WIDTH = np.radians(33.5)
FALLBACK_PHI_DOWN = np.radians(84.8 - 68.6)  # toward smaller phi (camera above)
FALLBACK_PHI_UP = np.radians(100.3 - 84.8)  # toward larger phi (camera below)
KDE_CRITERION = "ffhq-kde"
FALLBACK_CRITERION = "fallback-ellipse"
FALLBACK_NOTE = ("approximation: no FFHQ-EG3D labels were given, so 'density < 0.4' is replaced by lying "
                 "outside the ellipse through LPFF's 0.4 contour (|yaw| 33.5 deg, 16.2 deg down, 15.5 deg up)")


def fallback_keep(theta, phi) -> np.ndarray:
    """True where (theta, phi) lies outside the fallback ellipse (the face is kept)."""
    dt = (np.asarray(theta, float) - np.pi / 2) / FALLBACK_THETA_HALF_WIDTH
    dphi = np.asarray(phi, float) - FALLBACK_PHI_CENTER
    dp = dphi / np.where(dphi < 0, FALLBACK_PHI_DOWN, FALLBACK_PHI_UP)
    return dt**2 + dp**2 > 1.0


@dataclass
class DensityFilter:
    """Decide per label. ``kde`` None means the fallback criterion."""

    kde: ScottKDE | None = None
    threshold: float = THRESHOLD
    source: str | None = None

    @classmethod
    def from_ffhq_labels(cls, path: Path | None, threshold: float = THRESHOLD) -> DensityFilter:
        if path is None:
            return cls(None, threshold)
        _, labels = read_dataset_labels(Path(path))
        theta, phi = lpff_theta_phi_from_label(np.atleast_2d(np.asarray(labels, dtype=np.float64)))
        return cls(ScottKDE.fit(np.stack([theta, phi], 1), name=str(path)), threshold, str(path))

    def decide(self, labels) -> list[dict]:
        """One record per label: theta, phi (radians), density (None for the fallback), keep, criterion."""
        theta, phi = lpff_theta_phi_from_label(np.atleast_2d(np.asarray(labels, dtype=np.float64)))
        if self.kde is None:
            keep = fallback_keep(theta, phi)
            return [{"theta": float(t), "phi": float(p), "density": None, "keep": bool(k),
                     "criterion": FALLBACK_CRITERION, "note": FALLBACK_NOTE}
                    for t, p, k in zip(theta, phi, keep, strict=True)]
        density = self.kde.evaluate_exact(np.stack([theta, phi], 1))
        return [{"theta": float(t), "phi": float(p), "density": float(d), "keep": bool(d < self.threshold),
                 "criterion": KDE_CRITERION, "threshold": self.threshold, "ffhq_labels": self.source}
                for t, p, d in zip(theta, phi, density, strict=True)]
