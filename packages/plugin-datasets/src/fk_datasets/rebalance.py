"""LPFF's duplication rule n(d) and its training list files (``lpff.md`` section 4.3).

Every list is a JSON array of archive names (``names.archive_name``); a name appears
once per copy, copies of one image are consecutive, and images follow ID order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fk.errors import InputError
from fk_datasets.names import archive_names

FFHQ_EG3D_COUNT = 139_914  # EG3D's FFHQ: 69,957 faces plus their mirrors
FFHQ_STYLEGAN_COUNT = 70_000

EG3D_LISTS = ("FFHQ", "LPFF", "FFHQ_rebalanced", "FFHQ_LPFF", "FFHQ_LPFF_rebalanced")
STYLEGAN_LISTS = ("FFHQ", "FFHQ_LPFF", "FFHQ_LPFF_rebalanced")


def copies_for_density(density) -> np.ndarray:
    """n(d) = min(max(round(0.24 / d), 1), 4), then 6 if d < 0.02, or 5 if 0.02 <= d < 0.03.

    Convention: d is the joint FFHQ+LPFF KDE density in 1/rad^2; ``round`` is half to
    even (Python's and numpy's). Returns int64 copies per image, shape of ``density``.
    """
    d = np.asarray(density, dtype=np.float64)
    if np.isnan(d).any() or (d < 0).any():
        raise InputError("densities must be non-negative numbers; got NaN or a negative value")
    with np.errstate(divide="ignore"):
        ratio = np.where(d > 0, 0.24 / np.where(d > 0, d, 1.0), np.inf)
    n = np.minimum(np.maximum(np.round(np.minimum(ratio, 1e6)), 1), 4).astype(np.int64)
    n = np.where(d < 0.03, 5, n)
    n = np.where(d < 0.02, 6, n)
    return n


def repeat_names(indices, copies) -> list[str]:
    """Archive names of ``indices``, each repeated ``copies`` times (consecutively)."""
    idx = np.asarray(indices, dtype=np.int64)
    reps = np.asarray(copies, dtype=np.int64)
    if idx.shape != reps.shape:
        raise ValueError(f"indices {idx.shape} and copies {reps.shape} differ in shape")
    return archive_names(np.repeat(idx, reps))


def ffhq_replicas_array(num_replicas: Mapping[str, int], ffhq_count: int) -> np.ndarray:
    """EG3D's ``num_replicas.json`` ({str(index): copies}) as an array over FFHQ indices."""
    missing = [str(i) for i in range(ffhq_count) if str(i) not in num_replicas]
    if missing:
        raise InputError(f"num_replicas.json has no entry for {len(missing)} FFHQ index(es), e.g. {missing[:3]}",
                         hint=f"It must map every index 0..{ffhq_count - 1} to a copy count.")
    return np.array([int(num_replicas[str(i)]) for i in range(ffhq_count)], dtype=np.int64)


def eg3d_lists(total: int, density, ffhq_count: int = FFHQ_EG3D_COUNT,
               ffhq_replicas=None) -> dict[str, list[str]]:
    """The EG3D list files, keyed by stem (FFHQ_rebalanced only when replicas are given).

    ``total``: labels in the merged FFHQ-LPFF EG3D set; ``density``: (total,) joint KDE
    densities in label order; ``ffhq_replicas``: (ffhq_count,) copies from num_replicas.json.
    """
    d = np.asarray(density, dtype=np.float64)
    if d.shape != (total,):
        raise InputError(f"expected {total} densities (one per label), got {d.shape}")
    if not 0 <= ffhq_count <= total:
        raise InputError(f"FFHQ count {ffhq_count} is outside 0..{total}")
    lists = {
        "FFHQ": archive_names(range(ffhq_count)),
        "LPFF": archive_names(range(ffhq_count, total)),
        "FFHQ_LPFF": archive_names(range(total)),
        "FFHQ_LPFF_rebalanced": repeat_names(np.arange(total), copies_for_density(d)),
    }
    if ffhq_replicas is not None:
        lists["FFHQ_rebalanced"] = repeat_names(np.arange(ffhq_count), np.asarray(ffhq_replicas))
    return {k: lists[k] for k in EG3D_LISTS if k in lists}


def stylegan_lists(eg3d_density, eg3d_ffhq_count: int = FFHQ_EG3D_COUNT,
                   stylegan_ffhq_count: int = FFHQ_STYLEGAN_COUNT,
                   stylegan_id_of_eg3d: Mapping[int, int] | None = None) -> dict[str, list[str]]:
    """The StyleGAN list files from the EG3D densities of the LPFF originals.

    LPFF image k (k-th face by name) is EG3D ID ``eg3d_ffhq_count + 2k`` (its mirror is
    +1) and StyleGAN ID ``stylegan_ffhq_count + k``; ``stylegan_id_of_eg3d`` overrides
    that arithmetic with the merge manifests' face-name mapping.
    """
    d = np.asarray(eg3d_density, dtype=np.float64)
    lpff_labels = d.shape[0] - eg3d_ffhq_count
    if lpff_labels < 0 or lpff_labels % 2:
        raise InputError(f"{d.shape[0]} EG3D densities do not hold {eg3d_ffhq_count} FFHQ labels "
                         "plus original/mirror pairs")
    originals = np.arange(eg3d_ffhq_count, d.shape[0], 2)
    if stylegan_id_of_eg3d is None:
        sg_ids = (originals - eg3d_ffhq_count) // 2 + stylegan_ffhq_count
    else:
        try:
            sg_ids = np.array([stylegan_id_of_eg3d[int(j)] for j in originals], dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"EG3D image {exc.args[0]} has no StyleGAN counterpart in the merge manifests",
                             hint="Merge the same LPFF faces into both datasets.") from None
    total = stylegan_ffhq_count + originals.size
    order = np.argsort(sg_ids, kind="stable")  # ID order, like every other list
    rebalanced = archive_names(range(stylegan_ffhq_count)) + repeat_names(
        sg_ids[order], copies_for_density(d[originals])[order])
    return {
        "FFHQ": archive_names(range(stylegan_ffhq_count)),
        "FFHQ_LPFF": archive_names(range(total)),
        "FFHQ_LPFF_rebalanced": rebalanced,
    }
