"""fk's built-in demo head: a procedurally generated face model that ships with fk.

It is **not** a statistical model: no scans, no PCA, no third-party data. It is a closed head
surface (a deformed ellipsoid with a nose, brow ridge, eye sockets, lips, chin and cheekbones made
of smooth bumps), a handful of hand-designed identity and expression deformation modes, a simple
skin albedo with darker lips and brows, an equirectangular UV layout, and the 68 iBUG landmarks as
surface vertices placed from adult anthropometric proportions. It exists so that every fk pipeline
runs without the gated BFM09/HiFi3D++ files; switch to BFM with ``model: bfm09`` once
``fk models list`` says it is ready.

Convention:
- Same frame and units as BFM09 after Deep3D's recentring: dm, x right, y up, z toward the
  viewer, the face centred on the origin so that at zero pose, at Deep3D's camera (distance 10,
  focal 1015, centre 112), the face fills the 224 crop the way ``align_img`` frames a real face:
  eye centres near (±0.31, 0.29, 0.13), nose tip near (0, -0.05, 0.55), mouth corners near
  (±0.25, -0.38, 0.22) (Deep3D's standard 5 points). It is *not* recentred on its own centroid
  (the full head's centroid lies behind the face).
- Coefficients: id (10) · exp (8) · tex (6) · angle 3 · gamma 27 · trans 3 = 57; one unit of a
  mode is roughly one "standard deviation" (a few mm or a few % of albedo).
- Deterministic: the same code gives bit-identical arrays; built at load time in well under a second.
"""

from __future__ import annotations

import functools

import numpy as np

N_LON = 120  # vertices per latitude ring
N_LAT = 80  # latitude rings (plus two poles)

# Anthropometric layout of the 68 iBUG landmarks, frontal (x, y) in dm, image-left = -x.
# Adult averages: interpupillary 63 mm, eye fissure 30 mm, intercanthal 32 mm, mouth 50 mm,
# alar width 35 mm, bizygomatic ~140 mm, nasion-menton ~118 mm, stomion-menton ~45 mm.
EYE_Y, MOUTH_Y, NOSE_TIP_Y, CHIN_Y, NASION_Y = 0.28, -0.38, -0.05, -0.83, 0.33


def _jaw() -> np.ndarray:
    """17 jaw-contour points from image-left (0) through the chin (8) to image-right (16)."""
    a, b, top, p = 0.70, 1.05, 0.22, 2.0  # superellipse: half-width, drop to menton, start height, squareness
    theta = np.linspace(-np.pi / 2, np.pi / 2, 17) * 0.97
    x = a * np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** (2 / p)
    y = top - b * np.abs(np.cos(theta)) ** (2 / p)
    return np.stack([x, y], axis=1)


def _mirror(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, 1.0])


def landmark_layout() -> np.ndarray:
    """(68, 2) frontal (x, y) targets of the iBUG-68 landmarks in dm (iBUG order, 0-based)."""
    brow_l = np.array([[-0.62, 0.43], [-0.52, 0.50], [-0.40, 0.53], [-0.28, 0.52], [-0.14, 0.49]])
    brow_r = _mirror(brow_l)[::-1]
    bridge = np.array([[0.0, NASION_Y], [0.0, 0.21], [0.0, 0.09], [0.0, NOSE_TIP_Y]])
    nose_base = np.array([[-0.15, -0.15], [-0.08, -0.18], [0.0, -0.20], [0.08, -0.18], [0.15, -0.15]])
    eye_l = np.array([[-0.46, EYE_Y], [-0.37, 0.325], [-0.25, 0.325], [-0.16, EYE_Y], [-0.25, 0.245], [-0.37, 0.245]])
    # right eye in iBUG order: inner corner 42, upper 43-44, outer corner 45, lower 46-47
    eye_r = np.array([[0.16, EYE_Y], [0.25, 0.325], [0.37, 0.325], [0.46, EYE_Y], [0.37, 0.245], [0.25, 0.245]])
    mouth_outer = np.array([[-0.25, MOUTH_Y], [-0.16, -0.325], [-0.06, -0.295], [0.0, -0.305], [0.06, -0.295],
                            [0.16, -0.325], [0.25, MOUTH_Y], [0.16, -0.445], [0.07, -0.475], [0.0, -0.48],
                            [-0.07, -0.475], [-0.16, -0.445]])
    mouth_inner = np.array([[-0.20, MOUTH_Y], [-0.07, -0.37], [0.0, -0.372], [0.07, -0.37], [0.20, MOUTH_Y],
                            [0.07, -0.39], [0.0, -0.392], [-0.07, -0.39]])
    pts = np.concatenate([_jaw(), brow_l, brow_r, bridge, nose_base, eye_l, eye_r, mouth_outer, mouth_inner])
    return pts


def _gauss(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _smoothstep(e0, e1, v):
    t = np.clip((v - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _pair(x, y, cx, cy, sx, sy):
    """A bump mirrored about x = 0."""
    return _gauss(x, y, cx, cy, sx, sy) + _gauss(x, y, -cx, cy, sx, sy)


def _grid():
    """Unit directions of a UV sphere, denser toward the front (+z), and its UV parameters."""
    s = np.arange(N_LON) / N_LON * 2 - 1  # longitude parameter in [-1, 1): -1 = back, 0 = front midline
    t = (np.arange(N_LAT) + 1) / (N_LAT + 1) * 2 - 1  # latitude parameter in (-1, 1), poles excluded
    phi = np.pi * (0.45 * s + 0.55 * s ** 3)
    beta = np.pi / 2 * (0.6 * t + 0.4 * t ** 3)
    bb, pp = np.meshgrid(beta, phi, indexing="ij")  # (N_LAT, N_LON)
    d = np.stack([np.cos(bb) * np.sin(pp), np.sin(bb), np.cos(bb) * np.cos(pp)], axis=-1).reshape(-1, 3)
    d = np.concatenate([np.array([[0.0, -1.0, 0.0]]), d, np.array([[0.0, 1.0, 0.0]])])  # south pole first
    return d, s, t


def _topology():
    """Triangles (outward, counter-clockwise) and UV triangles of the grid; UVs with a seam column."""
    n_ring = N_LAT * N_LON
    south, north = 0, n_ring + 1

    def vid(i, j):  # ring i, column j
        return 1 + i * N_LON + (j % N_LON)

    cols = N_LON + 1  # uv grid repeats column 0 at u = 1
    def uvid(i, j):
        return i * cols + j
    n_uv_grid = N_LAT * cols
    tris, uvt = [], []
    for i in range(N_LAT - 1):
        for j in range(N_LON):
            a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
            ua, ub, uc, ud = uvid(i, j), uvid(i, j + 1), uvid(i + 1, j), uvid(i + 1, j + 1)
            tris += [(a, b, c), (b, d, c)]
            uvt += [(ua, ub, uc), (ub, ud, uc)]
    for j in range(N_LON):  # pole caps: one pole uv per column
        tris.append((south, vid(0, j + 1), vid(0, j)))
        uvt.append((n_uv_grid + j, uvid(0, j + 1), uvid(0, j)))
        tris.append((north, vid(N_LAT - 1, j), vid(N_LAT - 1, j + 1)))
        uvt.append((n_uv_grid + N_LON + j, uvid(N_LAT - 1, j), uvid(N_LAT - 1, j + 1)))
    return np.array(tris, np.int64), np.array(uvt, np.int64)


def _uvs(s, t):
    # column j sits at u = j / N_LON; the seam column N_LON repeats column 0 at u = 1 (back of the head)
    us = np.arange(N_LON + 1) / N_LON
    vs = (t + 1) / 2
    uu, vv = np.meshgrid(us, vs)
    grid = np.stack([uu, vv], axis=-1).reshape(-1, 2)
    mid = (us[:-1] + us[1:]) / 2
    south = np.stack([mid, np.zeros(N_LON)], axis=1)
    north = np.stack([mid, np.ones(N_LON)], axis=1)
    return np.concatenate([grid, south, north])


def _base_head(d):
    """Head without facial features: an ellipsoid (cranium, neck) whose front is replaced by a
    face height field (mid-sagittal profile minus a lateral fall-off), and each vertex's front weight."""
    ax, ay, az, centre = 0.78, 1.35, 0.98, np.array([0.0, 0.05, -0.68])
    p = d * np.array([ax, ay, az]) + centre
    x, y = p[:, 0], p[:, 1]
    neck = 1 - 0.38 * _smoothstep(-0.75, -1.15, y)
    p[:, 0] *= neck * (1 - 0.12 * _smoothstep(0.1, -0.7, y))  # narrower jaw, then the neck
    p[:, 2] = (p[:, 2] - centre[2]) * neck + centre[2]
    x = p[:, 0]
    profile = np.interp(y, [-1.30, -1.00, -0.90, -0.82, -0.60, -0.38, -0.20, 0.10, 0.50, 0.85, 1.15, 1.40],
                        [-0.45, -0.42, -0.12, 0.12, 0.22, 0.29, 0.30, 0.30, 0.33, 0.27, 0.02, -0.60])
    lateral = np.interp(y, [-0.9, -0.4, 0.3, 1.0], [1.6, 1.0, 0.65, 0.8])
    face_z = profile - lateral * x ** 2 - 1.2 * x ** 4
    front = _smoothstep(0.15, 0.75, d[:, 2])
    p[:, 2] = front * face_z + (1 - front) * p[:, 2]
    return p, front


def _features(p, front):
    """Displacement along +z of the facial features (nose, sockets, brows, lips, chin, cheeks)."""
    x, y = p[:, 0], p[:, 1]
    nose_h = np.interp(y, [-0.22, -0.17, NOSE_TIP_Y, 0.08, 0.21, NASION_Y, 0.42],
                       [0.0, 0.10, 0.25, 0.17, 0.11, 0.05, 0.0])
    nose_w = np.interp(y, [-0.2, NOSE_TIP_Y, NASION_Y], [0.09, 0.075, 0.05])
    dz = nose_h * np.exp(-0.5 * (x / nose_w) ** 4)
    dz += 0.06 * _pair(x, y, 0.12, -0.14, 0.05, 0.04)  # alae
    dz -= 0.15 * _pair(x, y, 0.31, 0.29, 0.13, 0.085)  # eye sockets
    dz += 0.05 * _pair(x, y, 0.33, 0.29, 0.09, 0.045)  # eyeballs under the lids
    dz += 0.05 * _pair(x, y, 0.33, 0.47, 0.20, 0.06)  # brow ridge
    dz += 0.05 * _gauss(x, y, 0.0, -0.32, 0.15, 0.035)  # upper lip
    dz += 0.05 * _gauss(x, y, 0.0, -0.44, 0.13, 0.035)  # lower lip
    dz -= 0.025 * _gauss(x, y, 0.0, MOUTH_Y, 0.22, 0.012)  # mouth line
    dz += 0.04 * _gauss(x, y, 0.0, -0.70, 0.16, 0.08)  # chin
    dz += 0.035 * _pair(x, y, 0.47, 0.05, 0.12, 0.12)  # cheekbones
    return dz * front


def _identity_modes(p, front):
    x, y = p[:, 0], p[:, 1]
    modes = []
    def add(dx=0.0, dy=0.0, dz=0.0):
        m = np.zeros_like(p)
        m[:, 0], m[:, 1], m[:, 2] = dx, dy, dz
        modes.append(m)
    add(dx=0.04 * x / 0.77)  # head width
    add(dy=0.045 * np.minimum(y - 0.27, 0.0) / 1.13)  # face length below the eyes
    nose = np.interp(y, [-0.22, NOSE_TIP_Y, NASION_Y + 0.05], [0.0, 1.0, 0.0]) * np.exp(-0.5 * (x / 0.08) ** 2)
    add(dz=0.04 * nose * front)  # nose protrusion
    add(dx=0.02 * np.clip(x / 0.1, -1, 1) * _gauss(x, y, 0.0, -0.13, 0.12, 0.07) * front)  # nose width
    add(dx=0.04 * x * _smoothstep(-0.1, -0.7, y))  # jaw width
    add(dz=0.04 * _gauss(x, y, 0.0, -0.72, 0.2, 0.12) * front)  # chin protrusion
    add(dz=-0.03 * _pair(x, y, 0.31, 0.29, 0.12, 0.08) * front)  # eye depth
    add(dz=0.03 * _pair(x, y, 0.33, 0.47, 0.2, 0.06) * front)  # brow prominence
    add(dz=0.03 * _pair(x, y, 0.4, -0.15, 0.15, 0.15) * front)  # cheek fullness
    add(dz=-0.04 * _smoothstep(0.5, 1.2, y) * front)  # forehead slope
    return np.stack(modes, axis=-1)  # (N, 3, 10)


def _expression_modes(p, front):
    x, y = p[:, 0], p[:, 1]
    modes = []
    def add(dx=0.0, dy=0.0, dz=0.0):
        m = np.zeros_like(p)
        m[:, 0], m[:, 1], m[:, 2] = dx, dy, dz
        modes.append(m * front[:, None])
    below = _smoothstep(MOUTH_Y + 0.01, MOUTH_Y - 0.06, y) * np.exp(-0.5 * (x / 0.45) ** 2)
    add(dy=-0.08 * below, dz=-0.02 * below)  # jaw open
    corners = _pair(x, y, 0.25, MOUTH_Y, 0.07, 0.06)
    add(dx=0.03 * np.sign(x) * corners, dy=0.04 * corners)  # smile
    lips = _gauss(x, y, 0.0, MOUTH_Y, 0.2, 0.08)
    add(dx=-0.1 * x * lips, dz=0.04 * lips)  # pucker
    brows = _pair(x, y, 0.35, 0.5, 0.2, 0.08)
    add(dy=0.04 * brows)  # brows raise
    inner = _pair(x, y, 0.18, 0.48, 0.1, 0.06)
    add(dx=-0.02 * np.sign(x) * inner, dy=-0.03 * inner)  # frown
    lids = _pair(x, y, 0.31, 0.33, 0.1, 0.035)
    add(dy=-0.04 * lids)  # eyes close
    add(dx=0.04 * _gauss(x, y, 0.0, MOUTH_Y, 0.3, 0.1))  # mouth sideways
    add(dz=0.04 * _pair(x, y, 0.36, -0.3, 0.12, 0.12))  # cheek puff
    return np.stack(modes, axis=-1)  # (N, 3, 8)


def _albedo(p, front):
    x, y = p[:, 0], p[:, 1]
    skin = np.array([0.80, 0.60, 0.50])
    col = np.tile(skin, (len(p), 1))
    def paint(weight, colour):
        w = np.clip(weight, 0, 1)[:, None]
        col[:] = col * (1 - w) + np.asarray(colour) * w
    lips = np.clip(_gauss(x, y, 0.0, -0.32, 0.2, 0.03) + _gauss(x, y, 0.0, -0.44, 0.17, 0.035), 0, 1)
    paint(lips * front, [0.66, 0.36, 0.36])
    brow = np.clip(_pair(x, y, 0.38, 0.515, 0.15, 0.022), 0, 1)
    paint(0.85 * brow * front, [0.30, 0.22, 0.18])
    sclera = np.clip(_pair(x, y, 0.31, EYE_Y, 0.11, 0.03), 0, 1)
    paint(0.7 * sclera * front, [0.88, 0.86, 0.84])
    iris = np.clip(_pair(x, y, 0.31, EYE_Y, 0.03, 0.03), 0, 1)
    paint(iris * front, [0.25, 0.18, 0.14])
    hair = _smoothstep(0.75, 0.95, y + 0.6 * (1 - front))
    paint(hair, [0.22, 0.16, 0.12])
    mean = col
    n = len(p)
    modes = np.zeros((n, 3, 6))
    modes[:, :, 0] = 0.06  # brightness
    modes[:, :, 1] = np.array([0.04, -0.01, -0.01])  # redness
    modes[:, :, 2] = np.array([0.02, 0.01, -0.04])  # tan / yellowness
    modes[:, :, 3] = lips[:, None] * np.array([0.06, -0.03, -0.02])  # lip colour
    modes[:, :, 4] = -brow[:, None] * 0.08  # brow darkness
    modes[:, :, 5] = _pair(x, y, 0.4, -0.1, 0.12, 0.1)[:, None] * np.array([0.05, -0.01, -0.01]) * front[:, None]
    return mean, modes


def _pick_landmarks(vertices, d):
    """Nearest front-facing vertex (in frontal x, y) to each anthropometric landmark target."""
    targets = landmark_layout()
    candidates = np.flatnonzero(d[:, 2] > 0.05)
    xy = vertices[candidates, :2]
    dist = ((xy[None] - targets[:, None]) ** 2).sum(-1)
    return candidates[np.argmin(dist, axis=1)]


@functools.lru_cache(maxsize=1)
def demo_head_arrays() -> dict[str, np.ndarray]:
    """All arrays of the demo head (float64 numpy, 0-based indices); cached, read-only."""
    d, s, t = _grid()
    base, front = _base_head(d)
    vertices = base.copy()
    vertices[:, 2] += _features(base, front)
    tri, uv_tri = _topology()
    id_modes = _identity_modes(base, front)
    exp_modes = _expression_modes(base, front)
    albedo, tex_modes = _albedo(base, front)
    n = len(vertices)
    keypoints = _pick_landmarks(vertices, d)
    skin = (front > 0.5) & (base[:, 1] < 0.75) & (base[:, 1] > -0.9)
    face_region = (d[:, 2] > 0.35) & (base[:, 1] < 0.85) & (base[:, 1] > -0.95)
    face_tris = tri[face_region[tri].all(axis=1)]
    arrays = {
        "mean_shape": vertices.reshape(-1),
        "id_base": id_modes.reshape(3 * n, -1),
        "exp_base": exp_modes.reshape(3 * n, -1),
        "mean_albedo": albedo.reshape(-1),
        "albedo_base": tex_modes.reshape(3 * n, -1),
        "triangles": tri,
        "keypoints": keypoints,
        "uvs": _uvs(s, t),
        "uv_faces": uv_tri,
        "skin_mask": skin,
        "face_triangles": face_tris,
        "front_vertices": np.flatnonzero(face_region),
    }
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def build_demo_head(dtype=None):
    """The demo head as a :class:`fk.models.FaceModel` (float32 unless ``dtype`` is given)."""
    import torch

    from fk.models.face_model import FaceModel

    arrays = demo_head_arrays()
    return FaceModel(name="demo", summary="fk's built-in demo head (procedural, not statistical)",
                     albedo_scale=1.0, dtype=dtype or torch.float32,
                     **{k: np.array(v) for k, v in arrays.items()})


def load_demo_head(**kwargs):
    """Registry entry point for ``load_face_model("demo")``."""
    return build_demo_head(**kwargs)
