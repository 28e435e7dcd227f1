"""BFM09 exactly as Deep3D uses it: the converter to ``BFM_model_front.mat`` and its loader.

Convention:
- Inputs (deep3d.md §1.1): ``01_MorphableModel.mat`` (shapeMU/PC/EV, texMU/PC/EV; µm and 0-255,
  xyz interleaved), ``Exp_Pca.bin`` (little-endian int32 exp_dim, float32 expMU[3M] (unused),
  float32 expPC[exp_dim, 3M], component-major), ``std_exp.txt`` (exp_dim floats),
  ``BFM_front_idx.mat`` (``idx``, 1-based into the M-vertex expression mesh),
  ``BFM_exp_idx.mat`` (``trimIndex``, 1-based into BFM09's V vertices), ``facemodel_info.mat``.
- Conversion (deep3d.md §1.2, same operations, order and dtypes as Deep3D's ``transferBFM09``, so
  the arrays are bit-identical): bases scaled by their per-component std (and by 1/1e5 for shape
  and expression: µm -> dm), truncated to 80 id / 64 exp / 80 tex, rows selected per vertex through
  the two 1-based index files; ``tri``, ``point_buf``, ``tri_mask2``, ``keypoints``,
  ``frontmask2_idx`` and ``skinmask`` copied unchanged (still 1-based).
- Loading: everything becomes 0-based int64; the mean shape is recentred on its vertex centroid
  (numpy float32, as Deep3D); ``point_buf``'s pad value F+1 becomes F (a zero normal);
  ``tri_mask2`` holds *local* indices into ``frontmask2_idx``, so the photometric region's
  triangles are ``frontmask2_idx[tri_mask2]`` in global vertex ids (Deep3D's PyTorch port uses
  ``tri_mask2`` as global ids, which is wrong for 42% of its rows; fk does the gather).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fk.errors import InputError

N_ID, N_EXP, N_TEX = 80, 64, 80
SOURCE_FILES = ("01_MorphableModel.mat", "Exp_Pca.bin", "std_exp.txt", "BFM_front_idx.mat",
                "BFM_exp_idx.mat", "facemodel_info.mat")
INFO_KEYS = ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
FRONT_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase") + INFO_KEYS
_WHERE = "see `fk models list` for where each BFM file comes from"


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    if not path.is_file():
        raise InputError(f"missing BFM file {path}", hint=_WHERE)
    try:
        data = loadmat(str(path))
    except Exception as e:  # scipy raises several types for truncated or foreign files
        raise InputError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})",
                         hint=f"replace it with the original file; {_WHERE}") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(f"{path}: missing variable(s) {', '.join(missing)}",
                         hint=f"this is not the expected file; {_WHERE}")
    return {k: data[k] for k in keys}


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}", hint=f"replace it with the original file; {_WHERE}")


def read_exp_pca(path: Path, n_vertices: int) -> np.ndarray:
    """Read ``Exp_Pca.bin`` -> expPC (3*n_vertices, exp_dim) float32, as Deep3D's ``LoadExpBasis``."""
    if not path.is_file():
        raise InputError(f"missing BFM file {path}", hint=_WHERE)
    raw = path.read_bytes()
    if len(raw) < 4:
        raise _fail(path, f"only {len(raw)} bytes, expected an int32 header")
    exp_dim = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    expected = 4 + 4 * 3 * n_vertices * (1 + exp_dim)
    if exp_dim <= 0 or len(raw) < expected:
        raise _fail(path, f"{len(raw)} bytes, expected {expected} for exp_dim={exp_dim} and "
                          f"{n_vertices} expression-mesh vertices (truncated or wrong file)")
    floats = np.frombuffer(raw, dtype="<f4", offset=4, count=3 * n_vertices * (1 + exp_dim))
    exp_pc = floats[3 * n_vertices:].astype(np.float32)  # expMU (first 3M floats) is read and dropped
    return np.transpose(np.reshape(exp_pc, [exp_dim, -1]))


def convert_bfm09(src: str | Path) -> dict[str, np.ndarray]:
    """Build the arrays of Deep3D's ``BFM_model_front.mat`` from the BFM09 originals in ``src``.

    Returns:
        dict with ``meanshape`` (1, 3N), ``meantex`` (1, 3N), ``idBase`` (3N, 80), ``exBase`` (3N, 64),
        ``texBase`` (3N, 80) and the six ``facemodel_info.mat`` arrays unchanged. Raises ``InputError``
        naming the first missing or malformed file.
    """
    src = Path(src)
    if not src.is_dir():
        raise InputError(f"BFM source folder {src} does not exist", hint=_WHERE)
    absent = [name for name in SOURCE_FILES if not (src / name).is_file()]
    if absent:
        raise InputError(f"missing BFM file(s) in {src}: {', '.join(absent)}", hint=_WHERE)
    bfm_path = src / "01_MorphableModel.mat"
    bfm = _loadmat(bfm_path, ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"))
    n3 = bfm["shapeMU"].size
    for key in ("shapePC", "texPC"):
        if bfm[key].ndim != 2 or bfm[key].shape[0] != n3:
            raise _fail(bfm_path, f"{key} has shape {bfm[key].shape}, expected ({n3}, K)")
    if bfm["texMU"].size != n3 or n3 % 3:
        raise _fail(bfm_path, f"shapeMU/texMU sizes {n3}/{bfm['texMU'].size} are not one 3V vector")
    for pc, ev, need in (("shapePC", "shapeEV", N_ID), ("texPC", "texEV", N_TEX)):
        if bfm[ev].size != bfm[pc].shape[1]:
            raise _fail(bfm_path, f"{ev} has {bfm[ev].size} values for {bfm[pc].shape[1]} components in {pc}")
        if bfm[pc].shape[1] < need:
            raise _fail(bfm_path, f"{pc} has {bfm[pc].shape[1]} components, Deep3D keeps {need}")
    n_bfm = n3 // 3

    exp_idx_path = src / "BFM_exp_idx.mat"
    trim = _loadmat(exp_idx_path, ("trimIndex",))["trimIndex"]
    front_idx_path = src / "BFM_front_idx.mat"
    idx = _loadmat(front_idx_path, ("idx",))["idx"]
    n_exp_mesh = trim.size
    for path, arr, top in ((exp_idx_path, trim, n_bfm), (front_idx_path, idx, n_exp_mesh)):
        if arr.size == 0 or arr.min() < 1 or arr.max() > top:
            raise _fail(path, f"indices must be 1-based in [1, {top}], got [{arr.min()}, {arr.max()}]")

    exp_pc = read_exp_pca(src / "Exp_Pca.bin", n_exp_mesh)
    std_path = src / "std_exp.txt"
    try:
        exp_ev = np.loadtxt(std_path)
    except ValueError as e:
        raise _fail(std_path, f"not a list of numbers ({e})") from None
    if exp_ev.size != exp_pc.shape[1]:
        raise _fail(std_path, f"{exp_ev.size} values for {exp_pc.shape[1]} expression components in Exp_Pca.bin")
    if exp_pc.shape[1] < N_EXP:
        raise _fail(src / "Exp_Pca.bin", f"{exp_pc.shape[1]} expression components, Deep3D keeps {N_EXP}")

    info = _loadmat(src / "facemodel_info.mat", INFO_KEYS)

    # Same operations, order and dtypes as Deep3D's transferBFM09 (bit-identical results).
    id_base = bfm["shapePC"] * np.reshape(bfm["shapeEV"], [1, -1])
    id_base = id_base / 1e5
    id_base = id_base[:, :N_ID]
    ex_base = exp_pc * np.reshape(exp_ev, [1, -1])
    ex_base = ex_base / 1e5
    ex_base = ex_base[:, :N_EXP]
    tex_base = bfm["texPC"] * np.reshape(bfm["texEV"], [1, -1])
    tex_base = tex_base[:, :N_TEX]

    index_exp = idx.astype(np.int32).reshape(-1) - 1  # into the expression mesh
    index_shape = (trim.astype(np.int32).reshape(-1) - 1)[index_exp]  # into BFM09's vertices

    def select(base: np.ndarray, rows: np.ndarray) -> np.ndarray:
        k = base.shape[1]
        return np.reshape(np.reshape(base, [-1, 3, k])[rows], [-1, k])

    meanshape = (np.reshape(bfm["shapeMU"], [-1, 3]) / 1e5)[index_shape]
    meantex = np.reshape(bfm["texMU"], [-1, 3])[index_shape]
    out = {
        "meanshape": np.reshape(meanshape, [1, -1]),
        "meantex": np.reshape(meantex, [1, -1]),
        "idBase": select(id_base, index_shape),
        "exBase": select(ex_base, index_exp),
        "texBase": select(tex_base, index_shape),
    }
    out.update(info)
    return out


def write_bfm_front(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays as ``BFM_model_front.mat`` (scipy savemat, as Deep3D), atomically."""
    from fk.atomic import write_bytes
    from fk.io.matfile import savemat_bytes

    return write_bytes(path, savemat_bytes({k: arrays[k] for k in FRONT_KEYS}))


def read_bfm_front(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check the arrays of a ``BFM_model_front.mat`` (as saved, 1-based)."""
    path = Path(path)
    data = _loadmat(path, FRONT_KEYS)
    n3 = data["meanshape"].size
    for key in ("idBase", "exBase", "texBase"):
        if data[key].ndim != 2 or data[key].shape[0] != n3:
            raise _fail(path, f"{key} has shape {data[key].shape}, expected ({n3}, K)")
    if data["meantex"].size != n3:
        raise _fail(path, f"meantex has {data['meantex'].size} values, expected {n3}")
    n = n3 // 3
    if data["keypoints"].size != 68:
        raise _fail(path, f"keypoints has {data['keypoints'].size} entries, expected 68")
    for key, top in (("tri", n), ("keypoints", n), ("frontmask2_idx", n),
                     ("tri_mask2", data["frontmask2_idx"].size), ("point_buf", len(data["tri"]) + 1)):
        arr = data[key]
        if arr.size and (arr.min() < 1 or arr.max() > top):
            raise _fail(path, f"{key} must hold 1-based indices in [1, {top}], got [{arr.min()}, {arr.max()}]")
    return data


def load_bfm09(path: str | Path, recenter: bool = True, dtype: Any = None):
    """Load ``BFM_model_front.mat`` as a :class:`fk.models.FaceModel` (Deep3D's ParametricFaceModel)."""
    import torch

    from fk.models.face_model import FaceModel, centered_mean_shape

    d = read_bfm_front(path)
    mean_shape = centered_mean_shape(d["meanshape"]) if recenter else d["meanshape"].astype(np.float32)
    front = d["frontmask2_idx"].astype(np.int64).reshape(-1) - 1
    local = d["tri_mask2"].astype(np.int64) - 1
    return FaceModel(
        name="bfm09", summary="BFM09 as Deep3D uses it", dtype=dtype or torch.float32,
        mean_shape=mean_shape,
        id_base=d["idBase"].astype(np.float32), exp_base=d["exBase"].astype(np.float32),
        mean_albedo=d["meantex"].astype(np.float32), albedo_base=d["texBase"].astype(np.float32),
        albedo_scale=255.0,
        triangles=d["tri"].astype(np.int64) - 1,
        point_buf=d["point_buf"].astype(np.int64) - 1,
        keypoints=d["keypoints"].astype(np.int64).reshape(-1) - 1,
        skin_mask=d["skinmask"].reshape(-1) > 0,
        front_vertices=front,
        face_triangles=front[local],
    )
