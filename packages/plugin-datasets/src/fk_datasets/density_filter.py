"""LPFF's density filter: keep a face only if its camera is rare in FFHQ (density < 0.4).

With LPFF's own ``kde.pkl`` (``--set ffhq_kde=kde.pkl``, read safely by
:mod:`fk_datasets.kde_pickle`) the density is that KDE's, exactly as LPFF evaluates it.
With FFHQ-EG3D labels (``dataset.json``, 139,914 labels with mirrors), the density is
the Scott-bandwidth Gaussian KDE of their (theta, phi) in radians, evaluated exactly, so
decisions equal scipy's ``gaussian_kde`` fitted on them (the same model as ``kde.pkl``).

LPFF's query (``2_predict_camera_parameter.py``): its ``convert_cart_to_spherical`` returns
(pi - theta, phi mod 2 pi) of the paper angles, and that point is what it feeds the KDE. fk
queries the same point; the FFHQ-EG3D set holds every face and its mirror, so the density
is symmetric in theta up to rounding and the flip changes nothing beyond that.

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
KDE_PICKLE_CRITERION = "lpff-kde.pkl"
FALLBACK_CRITERION = "fallback-ellipse"
FALLBACK_NOTE = ("approximation: no FFHQ-EG3D labels were given, so 'density < 0.4' is replaced by lying "
                 "outside the ellipse through LPFF's 0.4 contour (|yaw| 33.5 deg, 16.2 deg down, 15.5 deg up)")


def fallback_keep(theta, phi) -> np.ndarray:
    """True where (theta, phi) lies outside the fallback ellipse (the face is kept)."""
    dt = (np.asarray(theta, float) - np.pi / 2) / FALLBACK_THETA_HALF_WIDTH
    dphi = np.asarray(phi, float) - FALLBACK_PHI_CENTER
    dp = dphi / np.where(dphi < 0, FALLBACK_PHI_DOWN, FALLBACK_PHI_UP)
    return dt**2 + dp**2 > 1.0


def lpff_kde_query(theta, phi) -> np.ndarray:
    """(M, 2) points where LPFF's stage 0 evaluates its KDE for paper angles (theta, phi):
    (pi - theta, phi mod 2 pi), as its ``convert_cart_to_spherical`` returns them."""
    return np.stack([np.pi - np.asarray(theta, float), np.mod(np.asarray(phi, float), 2 * np.pi)], 1)


@dataclass
class DensityFilter:
    """Decide per label. ``kde`` None means the fallback criterion."""

    kde: ScottKDE | None = None
    threshold: float = THRESHOLD
    source: str | None = None

    criterion: str = KDE_CRITERION

    @classmethod
    def from_kde_pickle(cls, path: Path, threshold: float = THRESHOLD) -> DensityFilter:
        """LPFF's ``kde.pkl`` (a pickled ``gaussian_kde``), read without running pickled code."""
        from fk_datasets.kde_pickle import load_kde_pickle

        return cls(load_kde_pickle(path), threshold, str(path), KDE_PICKLE_CRITERION)

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
        density = self.kde.evaluate_exact(lpff_kde_query(theta, phi))
        source_key = "ffhq_kde" if self.criterion == KDE_PICKLE_CRITERION else "ffhq_labels"
        return [{"theta": float(t), "phi": float(p), "density": float(d), "keep": bool(d < self.threshold),
                 "criterion": self.criterion, "threshold": self.threshold, source_key: self.source}
                for t, p, d in zip(theta, phi, density, strict=True)]
