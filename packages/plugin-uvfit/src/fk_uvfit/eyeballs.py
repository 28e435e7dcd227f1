"""Eyeballs for a fitted head.

Without FFHQ-UV's template eyeballs (gated ``topo_assets``) fk builds a **procedural eyeball**: a UV
sphere of 24 rings x 32 segments (770 vertices, 736 quads + 64 triangles: the same counts as
upstream's template), its front pole along +z, an azimuthal UV layout (pupil at the centre of the
map) and a generated iris texture. It is placed behind each eye's six contour landmarks:
radius 0.42 x the eye's corner-to-corner width (a 30 mm eye gives a 12.6 mm radius), the front of
the ball ``gap`` behind the mean depth of the contour. Labelled ``procedural`` wherever it is used.

Frames: the head's model frame (x = subject's left, y up, z toward the viewer). ``L_ball`` is the
subject's left eye: iBUG landmarks 42-47 (image right); ``R_ball`` uses 36-41.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RINGS, SEGMENTS = 24, 32
LEFT_EYE = tuple(range(42, 48))  # subject's left (image right) in iBUG-68 order
RIGHT_EYE = tuple(range(36, 42))


@dataclass
class Eyeball:
    """One eyeball mesh: ``vertices (770, 3)``, ``uvs (T, 2)``, ``normals (770, 3)`` outward,
    ``polygons`` [(vertex, uv) corners] quads and triangles, ``centre (3,)``, ``radius``."""

    vertices: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray
    polygons: list[tuple[tuple[int, int], ...]]
    centre: np.ndarray
    radius: float
    method: str = "procedural"

    def triangles(self) -> tuple[np.ndarray, np.ndarray]:
        """(faces, uv_faces), each (F, 3): quads split (0, 1, 2), (0, 2, 3) as upstream's normal code does."""
        f, t = [], []
        for poly in self.polygons:
            for k in range(1, len(poly) - 1):
                corners = (poly[0], poly[k], poly[k + 1])
                f.append([c[0] for c in corners])
                t.append([c[1] for c in corners])
        return np.asarray(f, np.int64), np.asarray(t, np.int64)


def unit_sphere() -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, int], ...]]]:
    """(directions (770, 3), uvs (801, 2), polygons) of the procedural eyeball, front pole on +z."""
    theta = np.pi * np.arange(1, RINGS + 1) / (RINGS + 1)
    phi = 2 * np.pi * np.arange(SEGMENTS) / SEGMENTS
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    radius_uv = 0.5 * tt / np.pi
    ring_uv = np.stack([0.5 + radius_uv * np.cos(pp), 0.5 + radius_uv * np.sin(pp)], -1).reshape(-1, 2)
    mid = phi + np.pi / SEGMENTS
    back_uv = np.stack([0.5 + 0.5 * np.cos(mid), 0.5 + 0.5 * np.sin(mid)], -1)
    uvs = np.concatenate([[[0.5, 0.5]], ring_uv, back_uv])
    front, back = 0, 1 + RINGS * SEGMENTS

    def vid(i: int, j: int) -> int:
        return 1 + i * SEGMENTS + j % SEGMENTS

    polys: list[tuple[tuple[int, int], ...]] = []
    for j in range(SEGMENTS):  # front cap, counter-clockwise seen from outside (+z)
        polys.append(((front, 0), (vid(0, j), vid(0, j)), (vid(0, j + 1), vid(0, j + 1))))
    for i in range(RINGS - 1):
        for j in range(SEGMENTS):
            a, b, c, d = vid(i, j), vid(i + 1, j), vid(i + 1, j + 1), vid(i, j + 1)
            polys.append(((a, a), (b, b), (c, c), (d, d)))
    for j in range(SEGMENTS):
        a, b = vid(RINGS - 1, j + 1), vid(RINGS - 1, j)
        polys.append(((back, 1 + RINGS * SEGMENTS + j), (a, a), (b, b)))
    return dirs, uvs, polys


def iris_texture(
    size: int = 1024, iris_rgb: tuple[float, float, float] = (0.36, 0.23, 0.13), seed: int = 0
) -> np.ndarray:
    """The generated eyeball texture (size², uint8): pupil, a streaked iris with a dark limbal ring,
    and sclera that reddens toward the back; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, 1.0 - c)  # image layout: row 0 is v = 1
    du, dv = u - 0.5, v - 0.5
    theta = np.hypot(du, dv) * 2 * np.pi  # polar angle from the front pole (radians)
    ang = np.arctan2(dv, du)
    iris_t, pupil_t = np.deg2rad(30.0), np.deg2rad(10.0)
    streaks = sum(
        rng.uniform(0.03, 0.08) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)) for k in (23, 37, 61, 89)
    )
    sclera = np.array([0.93, 0.90, 0.87])[None, None] * np.ones((size, size, 1))
    back = np.clip((theta - np.deg2rad(60)) / np.deg2rad(120), 0, 1)[..., None]
    sclera = sclera * (1 - 0.25 * back) + np.array([0.85, 0.45, 0.42]) * 0.25 * back
    radial = np.clip((theta - pupil_t) / (iris_t - pupil_t), 0, 1)
    iris = np.asarray(iris_rgb)[None, None] * (
        0.75 + 0.5 * radial[..., None] * (1 - radial[..., None]) * 2 + streaks[..., None]
    )
    limbus = np.exp(-0.5 * ((theta - iris_t) / np.deg2rad(1.5)) ** 2)[..., None]
    iris = iris * (1 - 0.6 * limbus)
    img = np.where((theta < iris_t)[..., None], iris, sclera)
    edge = np.clip((theta - iris_t) / np.deg2rad(1.0), 0, 1)[..., None]  # soft iris/sclera boundary
    img = np.where((theta >= iris_t)[..., None], edge * sclera + (1 - edge) * iris * 0.4, img)
    img = np.where((theta < pupil_t)[..., None], np.array([0.03, 0.03, 0.035]), img)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def place_procedural(
    head_vertices: np.ndarray, keypoints: np.ndarray, eye: tuple[int, ...], gap: float = 0.01
) -> Eyeball:
    """A procedural eyeball behind the eye whose six iBUG landmark ids are ``eye`` (LEFT_EYE or RIGHT_EYE).

    ``head_vertices (N, 3)`` in the model frame, ``keypoints (68,)`` the model's landmark vertex ids.
    """
    pts = np.asarray(head_vertices, np.float64)[np.asarray(keypoints)[list(eye)]]
    width = float(np.linalg.norm(pts[0] - pts[3]))  # corner to corner
    radius = 0.42 * width
    centre = pts.mean(0)
    centre[2] = pts[:, 2].mean() - gap - radius
    dirs, uvs, polys = unit_sphere()
    return Eyeball(
        vertices=centre + radius * dirs,
        uvs=uvs,
        normals=dirs.copy(),
        polygons=polys,
        centre=centre,
        radius=radius,
    )


# --------------------------------------------------------------------------- FFHQ-UV's template fit (§4)
# Vertex ids (0-based) on HiFi3D++'s 20,481-vertex head and on the 770-vertex template eyeballs.
HIFI3DPP_VERTICES = 20481
EYE_HALF = np.r_[0:129, 243:531]  # the template's front half
CONTOUR = {
    "L": (
        7196,
        7635,
        7223,
        1250,
        7199,
        1352,
        1883,
        8472,
        8483,
        8466,
        8502,
        8567,
        8477,
        16946,
        16950,
        8492,
        8489,
        8495,
        8491,
    ),
    "R": (
        3790,
        12773,
        12357,
        3897,
        12382,
        3795,
        4428,
        13576,
        13586,
        13570,
        13602,
        13659,
        13579,
        13584,
        13573,
        13593,
        13590,
        13597,
        13594,
    ),
}
EYE_BAG = {"L": (8536, 8560, 1883, 8517, 8523), "R": (13640, 13663, 4428, 13618, 13625)}
BALL_ANCHORS = {"L": (755, 152, 442, 160, 176), "R": (755, 136, 458, 160, 208)}


def read_template(path) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, int], ...]]]:
    """A template eyeball OBJ (``eyeLeft_mesh_move.obj``): (vertices (770, 3) float32, uvs float32, polygons
    of (vertex, uv) 0-based corners, quads and triangles kept). ``vn`` and groups are ignored, as upstream."""
    from pathlib import Path

    from fk.errors import InputError

    v, vt, polys = [], [], []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "v":
            v.append([float(x) for x in tok[1:4]])
        elif tok[0] == "vt":
            vt.append([float(x) for x in tok[1:3]])
        elif tok[0] == "f":
            corners = [c.split("/") for c in tok[1:]]
            polys.append(tuple((int(c[0]) - 1, int(c[1]) - 1 if len(c) > 1 and c[1] else 0) for c in corners))
    if len(v) <= max(max(BALL_ANCHORS["L"]), max(BALL_ANCHORS["R"]), int(EYE_HALF[-1])) or not polys:
        raise InputError(
            f"{path}: not FFHQ-UV's template eyeball ({len(v)} vertices, {len(polys)} faces)",
            hint="copy eyeLeft_mesh_move.obj / eyeRight_mesh_move.obj from FFHQ-UV's "
            "Mesh_Add_EyeBall/eye_ball_assets/",
        )
    return np.asarray(v, np.float32), np.asarray(vt, np.float32), polys


def similarity_fit(source: np.ndarray, target: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Upstream's anchor fit: rotation from the SVD of Tᵀ S (no reflection check), scale = L1 norm ratio
    Σ|T̃| / Σ|R S̃|, translation = mean(T − s R S); returns ``points`` moved by it (float32 like upstream)."""
    src, dst = np.asarray(source, np.float32), np.asarray(target, np.float32)
    s_c, t_c = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(t_c.T @ s_c)
    rot = u @ vt
    scale = np.abs(t_c).sum() / np.abs(rot @ s_c.T).sum()
    trans = (dst - scale * (rot @ src.T).T).mean(0)
    return ((scale * rot) @ np.asarray(points, np.float32).T).T + trans


def refine_depth_height(contour: np.ndarray, ball: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Upstream's iterative refinement: walk the eye contour back (z −0.0005, and y −0.0002 while it sits
    above the ball) until its 3-nearest-neighbour distance to the ball's front half stops improving by
    0.001, grows, or the contour dips 0.0025 behind the ball; then shift the ball by what was walked."""
    from scipy.spatial import cKDTree

    half = ball[EYE_HALF]
    tree = cKDTree(half)
    eye = np.array(contour, np.float32)
    last, count, i, d_min = 10.0, 0, 0, 0.0
    for i in range(iterations):  # noqa: B007 - the stopping step is used after the loop
        dist, idx = tree.query(eye, k=3, p=2)
        dis = float(np.sum(dist.astype(np.float32)))
        res = eye - half[idx[:, 0]]
        height = float(np.sum(res[:6, 1]))
        d_min = float(np.min(res[:6, 2]))
        if (last - dis) < 0.001 or dis > last or d_min < -0.0025:
            break
        eye[:, 2] -= 0.0005
        last = dis
        if height > 0.0001:
            eye[:, 1] -= 0.0002
            count += 1
    out = np.array(ball, np.float32)
    out[:, 2] += 0.0005 * (i + 2)
    out[:, 1] += 0.0002 * count - d_min * 1.5
    return out


def polygon_normals(vertices: np.ndarray, polygons) -> np.ndarray:
    """Upstream's eyeball normals: face normals (v2 − v3) × (v1 − v3) of the triangulated polygons (quads
    split (0, 1, 2), (0, 2, 3)) summed per vertex, normalised, times −1 (outward for the templates)."""
    tris = []
    for poly in polygons:
        ids = [c[0] for c in poly]
        tris.append(ids[:3])
        if len(ids) == 4:
            tris.append([ids[0], ids[2], ids[3]])
    tri = np.asarray(tris)
    v = np.asarray(vertices, np.float32)
    face = np.cross(v[tri[:, 1]] - v[tri[:, 2]], v[tri[:, 0]] - v[tri[:, 2]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, tri[:, k], face)
    return -acc / np.linalg.norm(acc, axis=1, keepdims=True)


def fit_template(head_vertices: np.ndarray, template_path, side: str) -> Eyeball:
    """FFHQ-UV's eyeball for ``side`` ("L" or "R") of a HiFi3D++ head (N = 20,481 vertices, model frame)."""
    from fk.errors import InputError

    head = np.asarray(head_vertices, np.float32)
    if len(head) <= max(max(CONTOUR[side]), max(EYE_BAG[side])):
        raise InputError(
            f"the template eyeball fit needs a HiFi3D++ head (20,481 vertices), got {len(head)}",
            hint="use model: hifi3dpp, or let fk build procedural eyeballs",
        )
    verts, uvs, polys = read_template(template_path)
    placed = similarity_fit(verts[list(BALL_ANCHORS[side])], head[list(EYE_BAG[side])], verts)
    placed = refine_depth_height(head[list(CONTOUR[side])], placed)
    centre = placed[EYE_HALF].mean(0)
    return Eyeball(
        vertices=placed.astype(np.float64),
        uvs=uvs.astype(np.float64),
        normals=polygon_normals(placed, polys).astype(np.float64),
        polygons=polys,
        centre=centre,
        radius=float(np.linalg.norm(placed - placed.mean(0), axis=1).mean()),
        method="template",
    )
