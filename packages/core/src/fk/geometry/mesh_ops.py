"""Small triangle-mesh operations (numpy): ico-spheres, midpoint subdivision, connected components.

Convention: vertices ``(N, 3)`` float64, faces ``(F, 3)`` int64, 0-based, counter-clockwise seen from
outside (outward normals, as ``fk.io.mesh``). UV faces ``(F, 3)`` index a separate ``(T, 2)`` UV array
(seams allowed), and are subdivided with the same pattern as the faces.
"""

from __future__ import annotations

import numpy as np


def _edge_midpoints(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges ``(E, 2)`` and, per face, the index of each corner's opposite...

    Returns ``(edges, face_edges)`` where ``face_edges[f, k]`` is the edge (v_k, v_{k+1}) of face f.
    """
    pairs = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)  # (3F, 2)
    key = np.sort(pairs, axis=1)
    edges, inverse = np.unique(key[:, 0] * (n_vertices + 1) + key[:, 1], return_inverse=True)
    edge_pairs = np.stack([edges // (n_vertices + 1), edges % (n_vertices + 1)], axis=1)
    return edge_pairs, inverse.reshape(-1, 3)


def _split(faces: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """4 faces per face: corners a, b, c with midpoints ab, bc, ca (orientation kept)."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    ab, bc, ca = mid[:, 0], mid[:, 1], mid[:, 2]
    return np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1),
                     np.stack([ab, bc, ca], 1)], axis=1).reshape(-1, 3)  # fmt: skip


def subdivide_midpoint(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray | None = None,
    uv_faces: np.ndarray | None = None,
    levels: int = 1,
):
    """Split every triangle into 4 at its edge midpoints, ``levels`` times (no smoothing).

    Returns ``(vertices, faces)`` or, with UVs, ``(vertices, faces, uvs, uv_faces)``. Original vertices keep
    their indices; new ones are appended. Face ``f`` becomes faces ``4 f .. 4 f + 3``.
    """
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    t = None if uvs is None else np.asarray(uvs, np.float64)
    tf = None if uv_faces is None else np.asarray(uv_faces, np.int64)
    for _ in range(levels):
        edges, fe = _edge_midpoints(f, len(v))
        mid = fe + len(v)
        v = np.concatenate([v, v[edges].mean(axis=1)])
        if t is not None:
            uv_edges, uv_fe = _edge_midpoints(tf, len(t))
            uv_mid = uv_fe + len(t)
            t = np.concatenate([t, t[uv_edges].mean(axis=1)])
            tf = _split(tf, uv_mid)
        f = _split(f, mid)
    return (v, f) if t is None else (v, f, t, tf)


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """12 unit vertices, 20 outward faces."""
    g = (1 + 5**0.5) / 2
    v = np.array([[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0], [0, -1, g], [0, 1, g], [0, -1, -g], [0, 1, -g],
                  [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]], dtype=np.float64)  # fmt: skip
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)  # fmt: skip
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


def ico_sphere(level: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Unit ico-sphere: the icosahedron split ``level`` times, new vertices pushed onto the sphere.

    Level 3 has 642 vertices and 1280 faces (pytorch3d's ``ico_sphere(3)`` counts; the order differs).
    """
    v, f = icosahedron()
    for _ in range(level):
        v, f = subdivide_midpoint(v, f)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return v, f


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(F,) component label of each face (faces sharing a vertex are connected), labels 0..C-1."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, np.int64)
    rows = np.repeat(np.arange(len(f)), 3)
    graph = coo_matrix((np.ones(rows.size), (rows, f.reshape(-1) + len(f))), shape=(len(f) + n_vertices,) * 2)
    _, labels = connected_components(graph, directed=False)
    _, face_labels = np.unique(labels[: len(f)], return_inverse=True)
    return face_labels


def largest_component(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """The faces of the component with the most faces."""
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return f
    labels = face_components(f, n_vertices)
    return f[labels == np.bincount(labels).argmax()]


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop unreferenced vertices: ``(vertices, faces, kept_vertex_indices)``, order kept."""
    used = np.unique(np.asarray(faces, np.int64))
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices)[used], remap[faces], used
