"""Plots of the (theta, phi) camera distribution before and after rebalancing (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fk import atomic


def plot_distribution(theta, phi, path: Path, weights=None, title: str = "", bins: int = 90) -> Path:
    """A 2-D histogram of (theta, phi) in degrees (copies as ``weights``), saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    th, ph = np.degrees(np.asarray(theta)), np.degrees(np.asarray(phi))
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    try:
        h = ax.hist2d(th, ph, bins=bins, range=[[0, 180], [30, 150]], weights=weights, cmin=1e-9,
                      norm=matplotlib.colors.LogNorm(), cmap="viridis")
        fig.colorbar(h[3], ax=ax, label="images" if weights is None else "images x copies")
        ax.set_xlabel("theta (deg, 90 = no yaw)")
        ax.set_ylabel("phi (deg, 90 = level, < 90 looks down)")
        ax.invert_yaxis()
        total = len(th) if weights is None else int(np.sum(weights))
        ax.set_title(f"{title} ({total:,} samples)")
        fig.tight_layout()
        return _save(fig, path)
    finally:
        plt.close(fig)


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic.write_bytes(path, buf.getvalue())
