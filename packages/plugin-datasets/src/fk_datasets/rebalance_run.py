"""The rebalancing step on merged datasets (LPFF's ``2_dataset_rebalance``), end to end.

From the merged FFHQ-LPFF EG3D ``dataset.json``: theta/phi per label, the joint KDE
density at every label, the EG3D list files (plus ``FFHQ_rebalanced`` from EG3D's
``num_replicas.json`` when given) and the StyleGAN list files, and the before/after plots.
Files (names as LPFF's): ``files/camera_thetas.npy``, ``files/camera_phis.npy``,
``files/density_FFHQ_LPFF.npy`` and ``imgs/*.png`` under ``work_dir``; ``{list}.json`` in
each dataset folder (where the zip step picks them up).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from fk import atomic
from fk.cameras.eg3d import lpff_theta_phi_from_label
from fk.errors import InputError

from fk_datasets.kde import ScottKDE
from fk_datasets.labels import read_dataset_labels, write_list
from fk_datasets.rebalance import (
    FFHQ_EG3D_COUNT,
    FFHQ_STYLEGAN_COUNT,
    copies_for_density,
    eg3d_lists,
    ffhq_replicas_array,
    stylegan_lists,
)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic.write_bytes(path, buf.getvalue())


def compute_lists(labels: np.ndarray, ffhq_count: int = FFHQ_EG3D_COUNT,
                  stylegan_ffhq_count: int = FFHQ_STYLEGAN_COUNT, num_replicas: dict | None = None,
                  stylegan_id_of_eg3d: dict[int, int] | None = None) -> dict:
    """Labels (N, 25) in EG3D ID order -> angles, densities and every list (pure, no I/O)."""
    theta, phi = lpff_theta_phi_from_label(np.atleast_2d(np.asarray(labels, dtype=np.float64)))
    kde = ScottKDE.fit(np.stack([theta, phi], axis=1), name="FFHQ+LPFF (theta, phi)")
    density = kde(np.stack([theta, phi], axis=1))
    replicas = ffhq_replicas_array(num_replicas, ffhq_count) if num_replicas is not None else None
    return {
        "theta": theta, "phi": phi, "density": density, "kde_factor": kde.factor,
        "copies": copies_for_density(density),
        "eg3d": eg3d_lists(len(theta), density, ffhq_count, replicas),
        "stylegan": stylegan_lists(density, ffhq_count, stylegan_ffhq_count, stylegan_id_of_eg3d),
    }


def rebalance(eg3d_dir: Path, stylegan_dir: Path | None, work_dir: Path, num_replicas: Path | None = None,
              ffhq_count: int | None = None, plots: bool = True) -> dict:
    """Run the whole step; returns list lengths and file paths (also written as ``work_dir/rebalance.json``)."""
    eg3d_dir, work_dir = Path(eg3d_dir), Path(work_dir)
    names, labels = read_dataset_labels(eg3d_dir / "dataset.json")
    merge = _read_manifest(eg3d_dir)
    f_eg3d = ffhq_count if ffhq_count is not None else merge.get("ffhq_count", FFHQ_EG3D_COUNT)
    sg_map = None
    f_sg = FFHQ_STYLEGAN_COUNT
    if stylegan_dir is not None:
        sg = _read_manifest(Path(stylegan_dir))
        f_sg = sg.get("ffhq_count", FFHQ_STYLEGAN_COUNT)
        if merge.get("faces") and sg.get("faces"):
            if set(merge["faces"]) != set(sg["faces"]):
                diff = sorted(set(merge["faces"]) ^ set(sg["faces"]))
                raise InputError(f"the EG3D and StyleGAN merges hold different LPFF faces, e.g. {diff[:3]}",
                                 hint="Merge the same (reviewed) faces into both datasets.")
            sg_map = {merge["faces"][face]: sg["faces"][face] for face in merge["faces"]}
    replicas = None
    if num_replicas is not None:
        try:
            replicas = json.loads(Path(num_replicas).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{num_replicas}: cannot read num_replicas.json ({exc})") from None
    res = compute_lists(labels, f_eg3d, f_sg, replicas, sg_map)
    files = work_dir / "files"
    _save_npy(files / "camera_thetas.npy", res["theta"])
    _save_npy(files / "camera_phis.npy", res["phi"])
    _save_npy(files / "density_FFHQ_LPFF.npy", res["density"])
    for stem, lst in res["eg3d"].items():
        write_list(eg3d_dir / f"{stem}.json", lst)
    if stylegan_dir is not None:
        for stem, lst in res["stylegan"].items():
            write_list(Path(stylegan_dir) / f"{stem}.json", lst)
    if plots:
        from fk_datasets.plots import plot_distribution

        plot_distribution(res["theta"], res["phi"], work_dir / "imgs" / "ffhq-lpff.png", title="FFHQ+LPFF")
        plot_distribution(res["theta"], res["phi"], work_dir / "imgs" / "ffhq-lpff-rebalanced.png",
                          weights=res["copies"], title="FFHQ+LPFF rebalanced")
    summary = {"labels": len(names), "ffhq_count": f_eg3d, "kde_factor": res["kde_factor"],
               "eg3d_lists": {k: len(v) for k, v in res["eg3d"].items()},
               "stylegan_lists": {k: len(v) for k, v in res["stylegan"].items()} if stylegan_dir else {},
               "copies_histogram": {int(c): int((res["copies"] == c).sum()) for c in np.unique(res["copies"])}}
    atomic.write_json(work_dir / "rebalance.json", summary)
    return summary


def _read_manifest(folder: Path) -> dict:
    path = Path(folder) / "lpff_merge.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
