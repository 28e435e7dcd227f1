"""The morphable face model interface every fk plugin uses (BFM09, HiFi3D++, the demo head).

Convention:
- Units dm; world frame x right, y up, z toward the viewer. BFM09 and HiFi3D++ loaders recentre the
  mean shape on its vertex centroid (Deep3D's ``recenter=True``); the demo head is built directly in
  that frame (its landmarks sit on Deep3D's standard points), not on its own centroid.
- Coefficients: one (B, n_coeffs) vector split in this order: id (n_id), exp (n_exp), tex (n_tex),
  angle (3, rad, R = Rz·Ry·Rx), gamma (27, SH), trans (3, dm). For BFM09 that is Deep3D's 257 layout.
- Shape S = mean + id_base @ id + exp_base @ exp, xyz interleaved per vertex (Deep3D's layout).
- Albedo T = (mean_albedo + albedo_base @ tex) / albedo_scale, RGB in [0, 1] (not clipped).
- Posed vertices v_world = R S + t; normals are computed on the unposed S and rotated by R.
- Camera, projection and image coordinates: ``fk.models.camera`` (Deep3D's f = 1015, c = 112,
  distance 10). ``landmarks_2d`` are image pixels of the 224 crop (x right, y down), Deep3D's
  ``lm68`` rule; ``landmarks_yup`` are Deep3D's internal y-up pixels.
- Triangle and index buffers are int64 and 0-based; ``.to(dtype)`` casts only the float buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fk.errors import ShapeError
from fk.models import camera as cam
from fk.models.lighting import illuminate
from fk.models.normals import area_weighted_normals, point_buf_normals
from fk.models.pose import pose_vertices, rotation_from_angles

N_ANGLE, N_GAMMA, N_TRANS = 3, 27, 3


def _as_tensor(x: Any, dtype: torch.dtype | None) -> torch.Tensor | None:
    if x is None:
        return None
    t = torch.as_tensor(x)
    return t.to(dtype) if dtype is not None else t



def centered_mean_shape(mean_shape: np.ndarray) -> np.ndarray:
    """Flat (3N,) mean shape moved so its vertex centroid is the origin, in float32 as Deep3D does."""
    v = np.asarray(mean_shape, dtype=np.float32).reshape([-1, 3])
    return (v - np.mean(v, axis=0, keepdims=True)).reshape([-1])


class FaceModel(torch.nn.Module):
    """A linear morphable face model with Deep3D's pose, camera and lighting.

    Args (all keyword; arrays or tensors):
        name: registry name ("bfm09", "hifi3dpp", "demo", ...).
        mean_shape: (N, 3) or (3N,) recentred mean shape, dm.
        id_base: (3N, n_id); exp_base: (3N, n_exp); rows xyz-interleaved per vertex.
        mean_albedo: (3N,) or (N, 3); albedo_base: (3N, n_tex); divided by ``albedo_scale``.
        triangles: (F, 3) 0-based vertex ids, counter-clockwise seen from outside.
        keypoints: (68,) 0-based vertex ids of the iBUG-68 landmarks.
        point_buf: (N, K) 0-based incident faces padded with F, or None (area-weighted normals).
        uvs: (T, 2) in [0, 1] (v up, OBJ convention), uv_faces: (F, 3) 0-based, or None.
        skin_mask: (N,) bool, or None. face_triangles: (F', 3) 0-based *global* vertex ids of the
        region used for photometric losses (BFM: ``tri_mask2`` gathered through ``frontmask2_idx``).
        front_vertices: (N',) 0-based vertex ids of that region, or None.
        dtype: float dtype of the float buffers (default float32).
    """

    def __init__(self, *, name: str, mean_shape: Any, id_base: Any, exp_base: Any, mean_albedo: Any,
                 albedo_base: Any, triangles: Any, keypoints: Any, albedo_scale: float = 1.0,
                 point_buf: Any = None, uvs: Any = None, uv_faces: Any = None, skin_mask: Any = None,
                 face_triangles: Any = None, front_vertices: Any = None, summary: str = "",
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.name = name
        self.summary = summary
        self.albedo_scale = float(albedo_scale)
        mean_shape = _as_tensor(mean_shape, dtype).reshape(-1)
        n3 = mean_shape.numel()
        if n3 % 3:
            raise ShapeError(f"mean_shape: expected 3N values, got {n3}")
        floats = {"mean_shape": mean_shape, "id_base": _as_tensor(id_base, dtype),
                  "exp_base": _as_tensor(exp_base, dtype),
                  "mean_albedo": _as_tensor(mean_albedo, dtype).reshape(-1),
                  "albedo_base": _as_tensor(albedo_base, dtype)}
        for key in ("id_base", "exp_base", "albedo_base"):
            t = floats[key]
            if t.ndim != 2 or t.shape[0] != n3:
                raise ShapeError(f"{key}: expected ({n3}, K), got {tuple(t.shape)}")
        if floats["mean_albedo"].numel() != n3:
            raise ShapeError(f"mean_albedo: expected {n3} values, got {floats['mean_albedo'].numel()}")
        for key, t in floats.items():
            self.register_buffer(key, t.contiguous())
        ints = {"triangles": triangles, "keypoints": keypoints, "point_buf": point_buf, "uv_faces": uv_faces,
                "face_triangles": face_triangles, "front_vertices": front_vertices}
        for key, value in ints.items():
            t = _as_tensor(value, torch.int64)
            self.register_buffer(key, None if t is None else t.contiguous())
        self.register_buffer("uvs", _as_tensor(uvs, dtype))
        self.register_buffer("skin_mask", None if skin_mask is None else _as_tensor(skin_mask, torch.bool).reshape(-1))
        n = n3 // 3
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise ShapeError(f"triangles: expected (F, 3), got {tuple(self.triangles.shape)}")
        if self.triangles.numel() and (self.triangles.min() < 0 or self.triangles.max() >= n):
            raise ShapeError(f"triangles: vertex ids must lie in [0, {n}), got [{int(self.triangles.min())}, "
                             f"{int(self.triangles.max())}]")
        self.keypoints = self.keypoints.reshape(-1)
        if self.keypoints.numel() != 68 or self.keypoints.min() < 0 or self.keypoints.max() >= n:
            raise ShapeError(f"keypoints: expected 68 vertex ids in [0, {n}), got {tuple(self.keypoints.shape)}")
        if self.point_buf is not None and (self.point_buf.ndim != 2 or self.point_buf.shape[0] != n):
            raise ShapeError(f"point_buf: expected ({n}, K), got {tuple(self.point_buf.shape)}")
        if (self.uvs is None) != (self.uv_faces is None):
            raise ShapeError("uvs and uv_faces: give both or neither")
        if self.uv_faces is not None and self.uv_faces.shape != self.triangles.shape:
            raise ShapeError(f"uv_faces: expected {tuple(self.triangles.shape)}, got {tuple(self.uv_faces.shape)}")

    # --- sizes -------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return self.mean_shape.numel() // 3

    @property
    def n_id(self) -> int:
        return self.id_base.shape[1]

    @property
    def n_exp(self) -> int:
        return self.exp_base.shape[1]

    @property
    def n_tex(self) -> int:
        return self.albedo_base.shape[1]

    @property
    def coeff_sizes(self) -> dict[str, int]:
        """Ordered sizes of the coefficient blocks: id, exp, tex, angle, gamma, trans."""
        return {"id": self.n_id, "exp": self.n_exp, "tex": self.n_tex,
                "angle": N_ANGLE, "gamma": N_GAMMA, "trans": N_TRANS}

    @property
    def n_coeffs(self) -> int:
        return sum(self.coeff_sizes.values())

    @property
    def dtype(self) -> torch.dtype:
        return self.mean_shape.dtype

    @property
    def device(self) -> torch.device:
        return self.mean_shape.device

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, n_vertices={self.n_vertices}, n_triangles={len(self.triangles)}, "
                f"n_id={self.n_id}, n_exp={self.n_exp}, n_tex={self.n_tex}")

    # --- coefficients ------------------------------------------------------
    def split_coeffs(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, n_coeffs) -> {"id", "exp", "tex", "angle", "gamma", "trans"}, views in that order."""
        if coeffs.ndim != 2 or coeffs.shape[1] != self.n_coeffs:
            raise ShapeError(f"coeffs: expected (B, {self.n_coeffs}) for model {self.name!r}, got {tuple(coeffs.shape)}")
        return dict(zip(self.coeff_sizes, torch.split(coeffs, list(self.coeff_sizes.values()), dim=1), strict=True))

    def join_coeffs(self, parts: dict[str, torch.Tensor], batch: int | None = None) -> torch.Tensor:
        """Inverse of ``split_coeffs``; missing blocks are zeros. Each given block is (B, size)."""
        given = next((v for v in parts.values() if v is not None), None)
        b = batch if batch is not None else (given.shape[0] if given is not None else 1)
        like = given if given is not None else self.mean_shape
        out = []
        for key, size in self.coeff_sizes.items():
            v = parts.get(key)
            if v is None:
                v = like.new_zeros(b, size)
            elif v.shape != (b, size):
                raise ShapeError(f"{key}: expected ({b}, {size}), got {tuple(v.shape)}")
            out.append(v)
        return torch.cat(out, dim=1)

    def zero_coeffs(self, batch: int = 1) -> torch.Tensor:
        """(batch, n_coeffs) zeros: mean face, frontal, at the origin, ambient light 0.8."""
        return self.mean_shape.new_zeros(batch, self.n_coeffs)

    # --- the parametric math ------------------------------------------------
    def shape(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """(B, n_id), (B, n_exp) -> (B, N, 3) unposed shape, dm."""
        flat = id_coeffs @ self.id_base.T + exp_coeffs @ self.exp_base.T + self.mean_shape
        return flat.reshape(flat.shape[0], -1, 3)

    def albedo(self, tex_coeffs: torch.Tensor) -> torch.Tensor:
        """(B, n_tex) -> (B, N, 3) RGB albedo in [0, 1] (unclipped)."""
        flat = (tex_coeffs @ self.albedo_base.T + self.mean_albedo) / self.albedo_scale
        return flat.reshape(flat.shape[0], -1, 3)

    def normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (B, N, 3) unit vertex normals (point_buf rule when present, else area-weighted)."""
        if self.point_buf is not None:
            return point_buf_normals(vertices, self.triangles, self.point_buf)
        return area_weighted_normals(vertices, self.triangles)

    def illuminate(self, albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """Deep3D SH lighting, see ``fk.models.lighting.illuminate``."""
        return illuminate(albedo, normals, gamma)

    @staticmethod
    def rotation(angles: torch.Tensor) -> torch.Tensor:
        """(B, 3) Euler angles -> (B, 3, 3) R = Rz·Ry·Rx for column vectors."""
        return rotation_from_angles(angles)

    def pose(self, vertices: torch.Tensor, angles: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """(B, N, 3), (B, 3), (B, 3) -> (B, N, 3) world vertices R v + t."""
        return pose_vertices(vertices, rotation_from_angles(angles), trans)

    @staticmethod
    def to_camera(vertices_world: torch.Tensor) -> torch.Tensor:
        return cam.to_camera(vertices_world)

    @staticmethod
    def project(vertices_cam: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) Deep3D camera coordinates -> (B, N, 2) Deep3D y-up pixels (u, v)."""
        return cam.project(vertices_cam)

    def landmarks(self, vertices_cam: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) camera vertices -> (B, 68, 2) image pixels of the crop (x right, y down)."""
        return cam.image_from_yup(cam.project(vertices_cam.index_select(1, self.keypoints)))

    def forward(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluate the model.

        Args:
            coeffs: (B, n_coeffs), same dtype and device as the model.
        Returns:
            dict with ``shape`` (B,N,3) unposed, ``vertices_world`` (B,N,3) posed, ``vertices_cam``
            (B,N,3) Deep3D camera frame, ``rotation`` (B,3,3), ``normals`` (B,N,3) rotated,
            ``albedo`` (B,N,3), ``colors`` (B,N,3) lit, ``landmarks_yup`` (B,68,2) Deep3D y-up pixels,
            ``landmarks_2d`` (B,68,2) image pixels (x right, y down) of the 224 crop.
        """
        c = self.split_coeffs(coeffs)
        shape = self.shape(c["id"], c["exp"])
        rotation = rotation_from_angles(c["angle"])
        vertices_world = pose_vertices(shape, rotation, c["trans"])
        vertices_cam = cam.to_camera(vertices_world)
        landmarks_yup = cam.project(vertices_cam.index_select(1, self.keypoints))
        albedo = self.albedo(c["tex"])
        normals = self.normals(shape) @ rotation.transpose(-1, -2).contiguous()
        colors = illuminate(albedo, normals, c["gamma"])
        return {"shape": shape, "vertices_world": vertices_world, "vertices_cam": vertices_cam,
                "rotation": rotation, "normals": normals, "albedo": albedo, "colors": colors,
                "landmarks_yup": landmarks_yup, "landmarks_2d": cam.image_from_yup(landmarks_yup)}

    # --- helpers for exporters -------------------------------------------------
    def mean_vertices(self) -> torch.Tensor:
        """(N, 3) the recentred mean shape."""
        return self.mean_shape.reshape(-1, 3)

    def uv_layout(self) -> tuple[np.ndarray, np.ndarray, str]:
        """``(uvs (T, 2), uv_faces (F, 3), how)``: the model's own UVs (``how = "model"``), or for a model
        without any (BFM09) a cylindrical unwrap of its mean shape (``"cylindrical"``, uv_faces = triangles)."""
        if self.uvs is not None:
            return self.uvs.cpu().double().numpy(), self.uv_faces.cpu().numpy(), "model"
        from fk.geometry.uv import cylindrical_uv

        return cylindrical_uv(self.mean_vertices().detach().cpu().double().numpy()), \
            self.triangles.cpu().numpy(), "cylindrical"

    def face_region_triangles(self) -> torch.Tensor:
        """(F', 3) global vertex ids of the photometric-loss region (all triangles when none is set)."""
        return self.triangles if self.face_triangles is None else self.face_triangles
