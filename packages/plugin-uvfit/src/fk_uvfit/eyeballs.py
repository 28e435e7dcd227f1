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
