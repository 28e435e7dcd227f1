"""Time and peak memory of the LPFF rebalancing step at FFHQ scale (179,094 labels).

Prints theta/phi + joint KDE at every label + every list file + the zip index, beside
the reference (scipy.stats.gaussian_kde evaluated exactly, as LPFF does, timed on a
subset and extrapolated linearly in the number of queries). Labels only: no images.

    .venv/bin/python bench/bench_datasets.py [--queries-for-scipy 1000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np


def synthetic_labels(rng, ffhq_pairs=69_957, lpff_faces=19_590):
    from fk.cameras.eg3d import mirror_label as mirror_labels

    def labels(theta, phi):
        c = 2.7 * np.stack([np.cos(theta), np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi)], -1)
        out = np.zeros((len(theta), 25))
        out[:, [3, 7, 11]] = c
        out[:, [0, 5, 10, 15]] = 1.0
        out[:, 16:] = [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]
        return out

    th = np.pi / 2 + np.clip(rng.standard_t(6, ffhq_pairs) * 0.22, -1.2, 1.2)
    ph = 1.48 + rng.normal(0, 0.12, ffhq_pairs)
    ffhq = labels(th, ph)
    lp = labels(np.pi / 2 + rng.choice([-1, 1], lpff_faces) * rng.uniform(0.5, 1.3, lpff_faces),
                rng.uniform(1.0, 2.0, lpff_faces))
    out = np.empty((2 * ffhq_pairs + 2 * lpff_faces, 25))
    out[0:2 * ffhq_pairs:2], out[1:2 * ffhq_pairs:2] = ffhq, mirror_labels(ffhq)
    out[2 * ffhq_pairs::2], out[2 * ffhq_pairs + 1::2] = lp, mirror_labels(lp)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries-for-scipy", type=int, default=1000)
    args = ap.parse_args()
    from scipy.stats import gaussian_kde

    from fk.cameras.eg3d import lpff_theta_phi_from_label as theta_phi_from_labels
    from fk_datasets.names import archive_name
    from fk_datasets.rebalance_run import compute_lists
    from fk_datasets.zips import plan_zip

    rng = np.random.default_rng(0)
    labels = synthetic_labels(rng)
    n = labels.shape[0]
    names = [archive_name(i) for i in range(n)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Timed pass: tracemalloc off (it slows every allocation several-fold). Memory: a second pass.
    t0 = time.perf_counter()
    res = compute_lists(labels, 139_914)
    t1 = time.perf_counter()
    index = plan_zip("eg3d", names, dict(zip(names, labels, strict=True)), res["eg3d"])
    t2 = time.perf_counter()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    compute_lists(labels, 139_914)
    plan_zip("eg3d", names, dict(zip(names, labels, strict=True)), res["eg3d"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    theta, phi = theta_phi_from_labels(labels)
    ref = gaussian_kde(np.stack([theta, phi]))
    q = rng.choice(n, args.queries_for_scipy, replace=False)
    t3 = time.perf_counter()
    exact = ref(np.stack([theta[q], phi[q]]))
    t4 = time.perf_counter()
    scipy_total = (t4 - t3) * n / len(q)
    err = np.abs(res["density"][q] - exact)

    print(f"labels: {n:,} (139,914 FFHQ + {n - 139_914:,} LPFF), lists: "
          + ", ".join(f"{k} {len(v):,}" for k, v in res["eg3d"].items()))
    load = " / ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    print(f"load average {load} (1/5/15 min); times are from the untraced pass")
    print(f"{'step':<44}{'fk':>12}{'reference':>26}")
    print(f"{'theta/phi + KDE at all labels + lists':<44}{t1 - t0:>10.2f} s"
          f"{scipy_total:>16.0f} s (scipy exact, extrapolated from {len(q)} queries)")
    print(f"{'zip index (names, labels, list checks)':<44}{t2 - t1:>10.2f} s")
    print(f"{'peak Python allocations (tracemalloc pass)':<44}{peak / 2**20:>8.0f} MiB")
    print(f"{'process max RSS before -> after':<44}{rss0:>8.0f} -> {rss1:.0f} MiB")
    print(f"KDE max |binned - scipy| / peak density on {len(q)} labels: {err.max() / exact.max():.2e} "
          f"(stated tolerance 1e-4); max relative error {np.max(err / exact):.2e}")
    copies_differ = np.sum(np.round(0.24 / res['density'][q]) != np.round(0.24 / exact))
    print(f"labels whose round(0.24/d) differs from scipy's: {copies_differ} of {len(q)}")
    assert index.archive[-1] == names[-1]


if __name__ == "__main__":
    main()
