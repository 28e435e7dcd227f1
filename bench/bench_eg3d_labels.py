"""EG3D label throughput at LPFF scale (179,094 labels): fk.cameras.eg3d vs a per-label loop.

Run: .venv/bin/python bench/bench_eg3d_labels.py
The reference is a plain Python loop over labels (what per-file scripts do); the task's
budget for the vectorised path is well under a second for all labels.
"""

from __future__ import annotations

import time

import numpy as np

from fk.cameras import deep3d, eg3d

N = 179_094


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.6, np.pi - 0.6, N)
    phi = rng.uniform(1.0, 2.1, N)
    labels, t_make = timed(lambda: eg3d.label_from_lookat_hv(theta, phi))
    (_, _), t_inv = timed(lambda: eg3d.lookat_hv_from_label(labels))
    _, t_mirror = timed(lambda: eg3d.mirror_label(labels))
    _, t_paper = timed(lambda: eg3d.lpff_theta_phi_from_label(labels))
    angle, trans = rng.normal(scale=0.3, size=(N, 3)), rng.normal(scale=0.2, size=(N, 3))
    _, t_deep3d = timed(lambda: deep3d.eg3d_label_from_deep3d(angle, trans))
    m = 2000
    _, t_loop = timed(lambda: [deep3d.eg3d_label_from_deep3d(angle[i], trans[i]) for i in range(m)])
    print(f"{N:,} labels                      fk (vectorised)   per-label loop (extrapolated)")
    print(f"label_from_lookat_hv             {t_make:8.3f} s")
    print(f"lookat_hv_from_label             {t_inv:8.3f} s")
    print(f"lpff_theta_phi_from_label       {t_paper:8.3f} s")
    print(f"mirror_label                     {t_mirror:8.3f} s")
    print(f"eg3d_label_from_deep3d           {t_deep3d:8.3f} s        {t_loop / m * N:8.1f} s")


if __name__ == "__main__":
    main()
