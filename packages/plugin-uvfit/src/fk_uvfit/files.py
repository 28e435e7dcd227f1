"""FFHQ-UV's per-photo files, written the way upstream writes them (ffhquv.md §3.3), with the fixes the
issue names: the material file is ``.mtl`` (upstream: ``stage3_mesh.mlt``) and ``usemtl`` binds it.

- ``stage3_mesh_{id,exp}.obj``: ``mtllib stage3_mesh.mtl``; ``v %f %f %f``; ``vt %f %f``;
  ``usemtl blinn1SG`` (added); ``f v/vt v/vt v/vt`` 1-based; no ``vn``, ``o`` or ``g`` (as upstream).
- ``stage3_mesh.mtl`` / ``eye_ball_tex.mtl``: upstream's five lines, no trailing newline.
- ``L_ball.obj`` / ``R_ball.obj``: ``mtllib eye_ball_tex.mtl``; ``v``; ``vt``; ``vn`` (one per vertex);
  ``usemtl`` (added); faces ``f v/vt/vn`` as quads and triangles.
"""

from __future__ import annotations

import numpy as np

MATERIAL = "blinn1SG"


def mtl_text(texture_name: str, material: str = MATERIAL) -> str:
    """Upstream's material: five lines, no trailing newline."""
    return (
        f"newmtl {material}\nKa 0.200000 0.200000 0.200000\nKd 1.000000 1.000000 1.000000\n"
        f"Ks 1.000000 1.000000 1.000000\nmap_Kd {texture_name}"
    )


def _rows(prefix: str, arr: np.ndarray) -> str:
    arr = np.asarray(arr, np.float64)
    if not len(arr):
        return ""
    fmt = prefix + " " + " ".join(["%f"] * arr.shape[1])
    return "\n".join(fmt % tuple(r) for r in arr.tolist()) + "\n"


def head_obj_text(
    vertices: np.ndarray,
    uvs: np.ndarray,
    faces: np.ndarray,
    uv_faces: np.ndarray,
    mtl_name: str = "stage3_mesh.mtl",
) -> str:
    """``stage3_mesh_{id,exp}.obj``: vertices (N, 3), uvs (T, 2) (v up), faces/uv_faces (F, 3) 0-based."""
    f1 = np.stack([np.asarray(faces) + 1, np.asarray(uv_faces) + 1], axis=2).reshape(-1, 6)
    body = "\n".join("f {}/{} {}/{} {}/{}".format(*r) for r in f1.tolist())
    return (
        f"mtllib {mtl_name}\n"
        + _rows("v", vertices)
        + _rows("vt", uvs)
        + f"usemtl {MATERIAL}\n"
        + body
        + "\n"
    )


def eyeball_obj_text(
    vertices: np.ndarray,
    uvs: np.ndarray,
    normals: np.ndarray,
    polygons: list[tuple[tuple[int, int], ...]],
    mtl_name: str = "eye_ball_tex.mtl",
) -> str:
    """``L_ball.obj``/``R_ball.obj``: ``polygons`` are lists of (vertex, uv) 0-based pairs (3 or 4 corners);
    the normal index is the vertex index, as upstream."""
    faces = "\n".join("f " + " ".join(f"{v + 1}/{t + 1}/{v + 1}" for v, t in poly) for poly in polygons)
    return (
        f"mtllib {mtl_name}\n"
        + _rows("v", vertices)
        + _rows("vt", uvs)
        + _rows("vn", normals)
        + f"usemtl {MATERIAL}\n"
        + faces
        + "\n"
    )


def coeffs_npz(
    coeffs: dict[str, np.ndarray], order: list[str], landmarks: np.ndarray
) -> dict[str, np.ndarray]:
    """``stage{N}_coeffs.npz`` (upstream: a torch pickle ``.pt``): ``coeffs`` (1, n) float32 in ``order``,
    ``lm68`` (1, 68, 2), and each block under its own name."""
    flat = np.concatenate([np.asarray(coeffs[k], np.float32).reshape(-1) for k in order])[None]
    out = {"coeffs": flat, "lm68": np.asarray(landmarks, np.float32).reshape(1, -1, 2)}
    out.update({k: np.asarray(coeffs[k], np.float32).reshape(1, -1) for k in order})
    return out


def vertex_colour_obj_text(vertices: np.ndarray, colours: np.ndarray, faces: np.ndarray) -> str:
    """``stage1_mesh_{id,exp}.obj`` as upstream writes it: ``v x y z r g b`` (albedo, 0-1, unclipped),
    then ``f a b c`` (1-based); no vt, no material."""
    rows = _rows("v", np.concatenate([np.asarray(vertices, np.float64), np.asarray(colours, np.float64)], 1))
    body = "\n".join("f {} {} {}".format(*r) for r in (np.asarray(faces) + 1).tolist())
    return rows + body + "\n"
