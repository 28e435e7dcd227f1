"""HiFi3D++ as FFHQ-UV uses it: ``hifi3dpp_model_info.mat`` and the 1024² unwrap table.

Convention:
- Same parametric math, camera and lighting as Deep3D (ffhquv.md §1.2); units ≈ dm, x to the
  subject's left (+), y up, z toward the camera; the mean shape is recentred on its vertex centroid.
- Fields (ffhquv.md §2.2): ``meanshape``/``meantex`` (1, 3N), ``idBase``/``exBase``/``texBase``
  (3N, K) xyz-interleaved, ``head_tri``/``head_tri_vt`` (full head, 1-based), ``tri``/``tri_vt``
  (face region, 1-based), ``vt_list`` (T, 2) OBJ vt in [0, 1], ``vtx_vt`` (N, 2) per-vertex UV in
  0-512 px, ``point_buf`` (N, 8) 1-based incident *head* triangles with 0 as padding, ``keypoints``
  (68, 1) 1-based, ``skinmask`` (N,).
- The FaceModel's ``triangles`` are the full-head ``head_tri`` (normals and saved meshes use them),
  ``face_triangles`` the face-region ``tri`` (FFHQ-UV's loss render), ``uvs``/``uv_faces`` are
  ``vt_list``/``head_tri_vt``; everything 0-based. ``point_buf`` padding becomes F (zero normal).
- ``unwrap_1024_info.mat``: ``uv_idx_v_idx`` (1024, 1024, 3) 0-based vertex ids of the triangle under
  each texel and ``uv_idx_bw`` (1024, 1024, 3) its barycentric weights (FFHQ-UV indexes vertices with
  it directly); texels outside ``unwrap_1024_info_mask.png`` are invalid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fk.errors import InputError

MODEL_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase", "tri", "head_tri", "head_tri_vt",
              "vt_list", "point_buf", "keypoints")
OPTIONAL_KEYS = ("tri_vt", "vtx_vt", "vt_vtx_idx", "skinmask")
_WHERE = "see `fk models list` for where the HiFi3D++ files come from"


def _loadmat(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    if not path.is_file():
        raise InputError(f"missing HiFi3D++ file {path}", hint=_WHERE)
    try:
        return loadmat(str(path))
    except Exception as e:
        raise InputError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})",
                         hint=f"replace it with the original file; {_WHERE}") from None


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}", hint=f"replace it with the original file; {_WHERE}")


def read_hifi3dpp_info(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check ``hifi3dpp_model_info.mat``; returns its arrays as stored (1-based)."""
    path = Path(path)
    data = _loadmat(path)
    missing = [k for k in MODEL_KEYS if k not in data]
    if missing:
        raise _fail(path, f"missing variable(s) {', '.join(missing)}")
    n3 = data["meanshape"].size
    for key in ("idBase", "exBase", "texBase"):
        if data[key].ndim != 2 or data[key].shape[0] != n3:
            raise _fail(path, f"{key} has shape {data[key].shape}, expected ({n3}, K)")
    n = n3 // 3
    n_head = len(data["head_tri"])
    checks = (("tri", 1, n), ("head_tri", 1, n), ("keypoints", 1, n), ("point_buf", 0, n_head),
              ("head_tri_vt", 1, len(data["vt_list"])))
    for key, low, top in checks:
        arr = data[key]
        if arr.size and (arr.min() < low or arr.max() > top):
            raise _fail(path, f"{key} must hold indices in [{low}, {top}], got [{arr.min()}, {arr.max()}]")
    if data["keypoints"].size != 68:
        raise _fail(path, f"keypoints has {data['keypoints'].size} entries, expected 68")
    if data["head_tri_vt"].shape != data["head_tri"].shape:
        raise _fail(path, f"head_tri_vt {data['head_tri_vt'].shape} does not match head_tri {data['head_tri'].shape}")
    return {k: data[k] for k in MODEL_KEYS + OPTIONAL_KEYS if k in data}


def load_hifi3dpp(path: str | Path, recenter: bool = True, dtype: Any = None):
    """Load ``hifi3dpp_model_info.mat`` as a :class:`fk.models.FaceModel`."""
    import torch

    from fk.models.face_model import FaceModel, centered_mean_shape

    d = read_hifi3dpp_info(path)
    mean_shape = centered_mean_shape(d["meanshape"]) if recenter else d["meanshape"].astype(np.float32)
    head = d["head_tri"].astype(np.int64) - 1
    point_buf = d["point_buf"].astype(np.int64) - 1
    point_buf[point_buf < 0] = len(head)  # 0 padding -> the appended zero normal
    skin = d.get("skinmask")
    return FaceModel(
        name="hifi3dpp", summary="HiFi3D++ (FFHQ-UV)", dtype=dtype or torch.float32,
        mean_shape=mean_shape,
        id_base=d["idBase"].astype(np.float32), exp_base=d["exBase"].astype(np.float32),
        mean_albedo=d["meantex"].astype(np.float32), albedo_base=d["texBase"].astype(np.float32),
        albedo_scale=255.0,
        triangles=head, point_buf=point_buf,
        keypoints=d["keypoints"].astype(np.int64).reshape(-1) - 1,
        uvs=d["vt_list"].astype(np.float32), uv_faces=d["head_tri_vt"].astype(np.int64) - 1,
        face_triangles=d["tri"].astype(np.int64) - 1,
        skin_mask=None if skin is None else skin.reshape(-1) > 0,
    )


def load_unwrap_info(path: str | Path, mask_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read ``unwrap_1024_info.mat`` (and optionally its mask PNG).

    Returns:
        ``vertex_ids`` (S, S, 3) int64 0-based, ``barycentrics`` (S, S, 3) float32 and, with a mask,
        ``valid`` (S, S) bool (texels whose mask value is above one half).
    """
    path = Path(path)
    data = _loadmat(path)
    for key in ("uv_idx_v_idx", "uv_idx_bw"):
        if key not in data:
            raise _fail(path, f"missing variable {key}")
        if data[key].ndim != 3 or data[key].shape[2] != 3:
            raise _fail(path, f"{key} has shape {data[key].shape}, expected (S, S, 3)")
    out = {"vertex_ids": data["uv_idx_v_idx"].astype(np.int64), "barycentrics": data["uv_idx_bw"].astype(np.float32)}
    if mask_path is not None:
        from fk.io import load_image

        mask = load_image(mask_path)
        if mask.shape[:2] != out["vertex_ids"].shape[:2]:
            raise InputError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, the unwrap table is "
                             f"{out['vertex_ids'].shape[1]}x{out['vertex_ids'].shape[0]}", hint=_WHERE)
        out["valid"] = mask[..., 0] > 127
    return out


def unwrap_to_uv(vertex_values: np.ndarray, unwrap: dict[str, np.ndarray]) -> np.ndarray:
    """Per-vertex values (N, C) -> (S, S, C) UV map by the unwrap table's barycentric blend (invalid texels 0)."""
    vals = np.asarray(vertex_values)
    out = (vals[unwrap["vertex_ids"]] * unwrap["barycentrics"][..., None]).sum(axis=2)
    if "valid" in unwrap:
        out = out * unwrap["valid"][..., None]
    return out
