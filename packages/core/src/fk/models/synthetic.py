"""Miniature model files in the exact original layouts, for tests (fk's and plugins').

Nothing here is real model data: arrays are generated from a seed. ``write_bfm09_sources`` writes the
six BFM09 inputs of ``fk models convert-bfm`` (1-based indices, Exp_Pca.bin with its int32 header),
``write_bfm_front`` a converted ``BFM_model_front.mat``, ``write_hifi3dpp_info`` a
``hifi3dpp_model_info.mat`` with FFHQ-UV's fields. The front mesh is a smooth face-sized grid in
Deep3D's frame (dm, z toward the viewer) so that it projects inside the 224 crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID = (10, 8)  # columns x rows of the front mesh: 80 vertices, 126 triangles


def grid_mesh(cols: int = GRID[0], rows: int = GRID[1]) -> tuple[np.ndarray, np.ndarray]:
    """(cols*rows, 3) face-sized surface in dm and (F, 3) 0-based counter-clockwise triangles."""
    x, y = np.meshgrid(np.linspace(-0.6, 0.6, cols), np.linspace(-0.8, 0.6, rows))
    z = 0.35 - 0.4 * x ** 2 - 0.15 * (y + 0.1) ** 2
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    tris = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            tris += [(a, b, e), (a, e, d)]  # counter-clockwise seen from +z
    return verts, np.array(tris, np.int64)


def point_buf_1based(tris: np.ndarray, n_vertices: int, width: int = 8) -> np.ndarray:
    """Deep3D's point_buf: (N, width) 1-based incident faces, padded with F + 1."""
    buf = np.full((n_vertices, width), len(tris) + 1, dtype=np.int64)
    count = np.zeros(n_vertices, np.int64)
    for f, row in enumerate(tris):
        for v in row:
            if count[v] < width:
                buf[v, count[v]] = f + 1
                count[v] += 1
    return buf


def facemodel_info(seed: int = 0) -> dict[str, np.ndarray]:
    """``facemodel_info.mat`` arrays for the grid mesh: float32, 1-based, Deep3D's shapes.

    ``frontmask2_idx`` is a non-identity subset, so using ``tri_mask2`` as global ids is visibly wrong.
    """
    rng = np.random.default_rng(seed)
    verts, tris = grid_mesh()
    n = len(verts)
    front = np.sort(rng.choice(n, size=n - 14, replace=False))[::-1].copy()  # reversed: not the identity
    local = {v: i for i, v in enumerate(front)}
    tri_front = np.array([[local[v] for v in t] for t in tris if all(v in local for v in t)], np.int64)
    keypoints = rng.choice(n, size=68, replace=False)
    skin = np.zeros(n)
    skin[rng.choice(n, size=n // 3, replace=False)] = 1
    f32 = np.float32
    return {"tri": (tris + 1).astype(f32), "point_buf": point_buf_1based(tris, n).astype(f32),
            "keypoints": (keypoints + 1).astype(f32)[None, :], "frontmask2": np.isin(np.arange(n), front)[None].astype(f32),
            "frontmask2_idx": (front + 1).astype(f32)[:, None], "tri_mask2": (tri_front + 1).astype(f32),
            "skinmask": skin.astype(f32)[None, :]}


def write_bfm09_sources(folder: str | Path, n_bfm: int = 130, n_exp_mesh: int = 100, n_shape_pc: int = 83,
                        n_exp_pc: int = 67, seed: int = 0) -> dict[str, np.ndarray]:
    """Write miniature ``01_MorphableModel.mat``, ``Exp_Pca.bin``, ``std_exp.txt``, ``BFM_front_idx.mat``,
    ``BFM_exp_idx.mat`` and ``facemodel_info.mat`` into ``folder``; return the raw arrays written.

    Layouts as the originals: float32 PCA arrays (3V x K, xyz interleaved, µm), EV as (K, 1),
    ``trimIndex`` uint16 (M, 1) 1-based, ``idx`` float32 (N, 1) 1-based, Exp_Pca.bin = int32 exp_dim +
    float32 expMU[3M] + float32 expPC[exp_dim, 3M].
    """
    from scipy.io import savemat

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    verts, _ = grid_mesh()
    n_front = len(verts)
    trim = rng.choice(n_bfm, size=n_exp_mesh, replace=False) + 1  # expression mesh -> BFM09, 1-based
    idx = rng.choice(n_exp_mesh, size=n_front, replace=False) + 1  # front -> expression mesh, 1-based
    bfm_of_front = trim[idx - 1] - 1
    shape_mu = rng.normal(0, 1e4, size=(n_bfm, 3))
    shape_mu[bfm_of_front] = verts * 1e5 + 123.0  # µm, off-centre so recentring matters
    f32 = np.float32
    raw = {
        "shapeMU": shape_mu.reshape(-1, 1).astype(f32),
        "shapePC": rng.normal(0, 1, size=(3 * n_bfm, n_shape_pc)).astype(f32),
        "shapeEV": np.sort(rng.uniform(1e2, 5e4, size=n_shape_pc))[::-1].reshape(-1, 1).astype(f32),
        "texMU": rng.uniform(60, 200, size=(3 * n_bfm, 1)).astype(f32),
        "texPC": rng.normal(0, 1, size=(3 * n_bfm, n_shape_pc)).astype(f32),
        "texEV": np.sort(rng.uniform(1, 40, size=n_shape_pc))[::-1].reshape(-1, 1).astype(f32),
    }
    savemat(folder / "01_MorphableModel.mat", {**raw, "segbin": np.zeros((4, n_bfm), np.uint8)})
    exp_mu = rng.normal(0, 1, size=3 * n_exp_mesh).astype(f32)
    exp_pc_stored = rng.normal(0, 1e-2, size=(n_exp_pc, 3 * n_exp_mesh)).astype(f32)  # component-major
    with open(folder / "Exp_Pca.bin", "wb") as fh:
        fh.write(np.array([n_exp_pc], "<i4").tobytes())
        fh.write(exp_mu.astype("<f4").tobytes())
        fh.write(exp_pc_stored.astype("<f4").tobytes())
    std_exp = np.sort(rng.uniform(200.0, 4.5e5, size=n_exp_pc))[::-1]
    np.savetxt(folder / "std_exp.txt", std_exp, fmt="%.6f")
    savemat(folder / "BFM_front_idx.mat", {"idx": idx.reshape(-1, 1).astype(f32)})
    savemat(folder / "BFM_exp_idx.mat", {"trimIndex": trim.reshape(-1, 1).astype(np.uint16)})
    info = facemodel_info(seed)
    savemat(folder / "facemodel_info.mat", info)
    raw.update({"expMU": exp_mu, "expPC_stored": exp_pc_stored,
                "std_exp": np.loadtxt(folder / "std_exp.txt"), "idx": idx, "trimIndex": trim, **info})
    return raw


def write_bfm_front(path: str | Path, seed: int = 0) -> Path:
    """A converted miniature ``BFM_model_front.mat`` (80 vertices; 80 id / 64 exp / 80 tex)."""
    import tempfile

    from fk.models.bfm import convert_bfm09, write_bfm_front as write

    with tempfile.TemporaryDirectory() as tmp:
        write_bfm09_sources(tmp, seed=seed)
        return write(path, convert_bfm09(tmp))


def hifi3dpp_info(seed: int = 0, n_id: int = 7, n_exp: int = 5, n_tex: int = 6,
                  grid: tuple[int, int] = GRID) -> dict[str, np.ndarray]:
    """Arrays of a miniature ``hifi3dpp_model_info.mat`` with FFHQ-UV's fields (ffhquv.md §2.2).

    The grid mesh (``grid`` = columns x rows) is the whole "head"; its lower-left half is the face region
    ``tri``. UVs: one vt per vertex plus one duplicated seam column, ``vtx_vt`` in 0-512 px, ``vt_list`` in
    [0, 1].
    """
    rng = np.random.default_rng(seed)
    cols, rows = grid
    verts, tris = grid_mesh(cols, rows)
    n = len(verts)
    uv = np.stack([(verts[:, 0] + 0.6) / 1.2, (verts[:, 1] + 0.8) / 1.4], -1)
    seam = np.arange(0, n, cols)  # first column gets a second vt
    vt_list = np.concatenate([uv, uv[seam] + np.array([0.0, 0.001])])
    vt_vtx = np.concatenate([np.arange(n), seam])
    tri_vt = tris.copy()
    first_tri = [f for f, t in enumerate(tris) if any(v in set(seam) for v in t)][::2]
    for f in first_tri:  # these triangles use the duplicated seam vt
        tri_vt[f] = [n + int(np.flatnonzero(seam == v)[0]) if v in set(seam) else v for v in tris[f]]
    face = tris[: len(tris) // 2]
    texel = np.floor(uv * 512)
    d = {
        "meanshape": (verts.reshape(1, -1) + 0.2).astype(np.float32),
        "meantex": rng.uniform(60, 200, size=(1, 3 * n)).astype(np.float32),
        "idBase": rng.normal(0, 1e-2, size=(3 * n, n_id)).astype(np.float32),
        "exBase": rng.normal(0, 1e-2, size=(3 * n, n_exp)).astype(np.float32),
        "texBase": rng.normal(0, 5, size=(3 * n, n_tex)).astype(np.float32),
        "vtx_vt": (uv * 512).astype(np.float32),
        "vt_list": vt_list.astype(np.float32),
        "vt_vtx_idx": (vt_vtx + 1).reshape(-1, 1).astype(np.float64),
        "tri": (face + 1).astype(np.float64), "tri_vt": (tri_vt[: len(face)] + 1).astype(np.float64),
        "head_tri": (tris + 1).astype(np.float64), "head_tri_vt": (tri_vt + 1).astype(np.float64),
        "point_buf": np.where(point_buf_1based(tris, n) == len(tris) + 1, 0, point_buf_1based(tris, n)).astype(np.float64),
        "keypoints": (rng.choice(n, size=68, replace=False) + 1).reshape(-1, 1).astype(np.float64),
        "skinmask": (rng.uniform(size=n) > 0.5).astype(np.float64),
        # read by upstream's loader, used by nothing in fitting: each vertex's integer texel (row, col) on
        # the 512² grid and its flat index (the real uv_idx has 82,810 rows whose meaning is not documented)
        "uv_idx": texel.astype(np.float64),
        "vtx_uv_idx": (texel[:, 0] * 512 + texel[:, 1]).reshape(-1, 1).astype(np.float64),
    }
    return d


def write_hifi3dpp_info(path: str | Path, seed: int = 0) -> dict[str, np.ndarray]:
    from scipy.io import savemat

    d = hifi3dpp_info(seed)
    savemat(str(path), d)
    return d
