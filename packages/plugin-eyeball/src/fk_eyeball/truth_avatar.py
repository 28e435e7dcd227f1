"""The synthetic subject's answer as an avatar: what a perfectly trained CoRA model would hold.

It has the trained model's interface (``head_sdf``, ``sdf``, ``materials``, ``eyeball_centres``,
``eyeball_radius``, ``bounds``, and ``cameras`` for the eyeball trimming), so the export runs on it
before any training and the relit preview can be checked against the truth rendered directly.

- Geometry: the head's signed distance is precomputed on a grid (exact within 2 cells of the surface,
  :func:`fk.geometry.mesh_distance.signed_distance_grid`) and read trilinearly; eyeballs are the
  analytic spheres; ``sdf = min(head, left eye, right eye)`` (CoRA's composition).
- Materials at a point: the head's vertex attributes at the closest surface point (albedo, smooth normal)
  or, where an eyeball wins the min, the eyeball's albedo with CoRA's fixed eye specular 0.2 and
  roughness 0.05 and the radial normal. The subject's frames are Lambert-shaded (synth.py); the head's
  **specular and roughness are this module's choice**, so that those maps carry something to check:
  skin ``s = 0.35``, ``r = 0.45``; hair ``s = 0`` (CoRA's hair prior) and ``r = 0.75``.

Eye order everywhere: row 0 is CoRA's ``leye`` (image left, world -x), row 1 ``reye``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from fk_eyeball import synth
from fk_eyeball.brdf import EYE_ROUGHNESS, EYE_SPECULAR

SKIN_SPECULAR, SKIN_ROUGHNESS = 0.35, 0.45
HAIR_SPECULAR, HAIR_ROUGHNESS = 0.0, 0.75
BOUNDS = ((-0.9, -1.45, -1.8), (0.9, 1.55, 0.7))  # dm, holds the whole demo head with a margin


class TruthAvatar:
    """The synthetic subject (:func:`fk_eyeball.synth.build_scene`) with the avatar interface.

    ``cell`` is the spacing of the precomputed head SDF grid (dm); the grid is built on first use.
    """

    def __init__(self, scene: synth.Scene | None = None, cell: float = 0.02, n_cameras: int = 24):
        self.scene = scene if scene is not None else synth.build_scene()
        self.cell = float(cell)
        self.bounds = BOUNDS
        s = self.scene
        self.eyeball_centres = np.stack([s.centers["leye"], s.centers["reye"]])
        self.eyeball_radius = float(s.radius)
        h, w = synth.FULL_SIZE
        self.cameras = (synth.phone_cameras(n_cameras), _intrinsics(synth.FULL_FOCAL, (h, w)), (h, w))
        self.specular_vertex = SKIN_SPECULAR * (1 - s.hair) + HAIR_SPECULAR * s.hair
        self.roughness_vertex = SKIN_ROUGHNESS * (1 - s.hair) + HAIR_ROUGHNESS * s.hair

    # ------------------------------------------------------------------ geometry
    @cached_property
    def _grid(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        from fk.geometry.mesh_distance import signed_distance_grid

        lo, hi = np.asarray(self.bounds[0]), np.asarray(self.bounds[1])
        res = int(np.ceil((hi - lo).max() / self.cell)) + 1
        values, _ = signed_distance_grid(self.scene.head_vertices, self.scene.faces, lo, hi, res)
        # grid_sample's (D, H, W) = (z, y, x) layout, once
        return torch.from_numpy(values).permute(2, 1, 0).contiguous()[None, None], lo, hi

    @cached_property
    def _distance(self):
        from fk.geometry.mesh_distance import MeshDistance

        return MeshDistance(self.scene.head_vertices, self.scene.faces)

    def head_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` world points (dm) -> ``(N,)`` signed distance to the head without eyeballs."""
        grid, lo, hi = self._grid
        p = torch.as_tensor(x).to(torch.float64).reshape(-1, 3)
        # grid_sample wants (x, y, z) -> (W, H, D) order and [-1, 1] node-aligned coordinates
        unit = (p - torch.from_numpy(lo)) / torch.from_numpy(hi - lo) * 2 - 1
        out = torch.nn.functional.grid_sample(
            grid,
            unit[None, None, None],
            align_corners=True,
            padding_mode="border",
        )[0, 0, 0, 0]
        return out.to(torch.as_tensor(x).dtype)

    def eye_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` sphere distances to the leye and reye eyeballs."""
        p = torch.as_tensor(x).reshape(-1, 1, 3)
        c = torch.as_tensor(self.eyeball_centres, dtype=p.dtype)
        return (p - c).norm(dim=-1) - self.eyeball_radius

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(self.head_sdf(x), self.eye_sdf(x).min(-1).values)

    # ------------------------------------------------------------------ materials
    def materials(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Linear albedo ``(N, 3)``, specular ``(N, 1)``, roughness ``(N, 1)``, unit normal ``(N, 3)``."""
        xt = torch.as_tensor(x)
        p = xt.detach().cpu().double().numpy().reshape(-1, 3)
        s = self.scene
        _, face, bary = self._distance.query(p)
        albedo = self._distance.interpolate(s.head_albedo, face, bary)
        spec = self._distance.interpolate(self.specular_vertex[:, None], face, bary)
        rough = self._distance.interpolate(self.roughness_vertex[:, None], face, bary)
        normal = self._distance.interpolate(self._distance.normals, face, bary)
        eye_d = self.eye_sdf(torch.from_numpy(p)).numpy()
        head_d = self.head_sdf(torch.from_numpy(p)).numpy()
        which = eye_d.argmin(1)
        on_eye = eye_d.min(1) < head_d  # CoRA: an eye point when the min is strictly below the face SDF
        radial = p - self.eyeball_centres[which]
        radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-12)
        albedo[on_eye] = synth.eyeball_albedo(radial[on_eye])
        spec[on_eye], rough[on_eye] = EYE_SPECULAR, EYE_ROUGHNESS
        normal[on_eye] = radial[on_eye]
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        out = {"albedo": albedo, "specular": spec, "roughness": rough, "normal": normal}
        return {k: torch.from_numpy(v).to(device=xt.device, dtype=xt.dtype) for k, v in out.items()}

    # ------------------------------------------------------------------ the truth as render-ready parts
    def surface_parts(self, sphere_level: int = 5) -> list[dict]:
        """The true surfaces with per-vertex materials: the head, then the leye and reye spheres.

        Each part: ``vertices (N, 3)``, ``faces (F, 3)``, ``albedo (N, 3)`` linear, ``specular (N, 1)``,
        ``roughness (N, 1)``, ``normal (N, 3)``.
        """
        from fk.geometry.mesh_ops import ico_sphere

        s = self.scene
        parts = [
            {
                "vertices": s.head_vertices, "faces": s.faces, "albedo": s.head_albedo,
                "specular": self.specular_vertex[:, None], "roughness": self.roughness_vertex[:, None],
                "normal": self._distance.normals,
            }
        ]  # fmt: skip
        sv, sf = ico_sphere(sphere_level)
        for c in self.eyeball_centres:
            n = len(sv)
            parts.append({
                "vertices": c + self.eyeball_radius * sv, "faces": sf, "albedo": synth.eyeball_albedo(sv),
                "specular": np.full((n, 1), EYE_SPECULAR), "roughness": np.full((n, 1), EYE_ROUGHNESS),
                "normal": sv,
            })  # fmt: skip
        return parts


def _intrinsics(focal: float, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return np.array([[focal, 0, w / 2 - 0.5], [0, focal, h / 2 - 0.5], [0, 0, 1.0]])
