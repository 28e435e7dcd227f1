"""Pinhole cameras in fk's one convention: intrinsics, poses, projection, axis and NDC conversions.

Convention:
- camera frame **OpenCV**: x right, y down, z forward (points in front have z > 0);
- pose = ``cam_from_world`` (R, t): x_cam = R x_world + t (column vectors);
  ``world_from_cam`` is its inverse, the "cam2world" of EG3D/NeRF code;
- pixels (x, y): x to the right, y down, the centre of pixel (row i, column j) at
  x = j, y = i; the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5];
- K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels (no skew);
- NDC (OpenGL style): x_ndc = (2x + 1)/W - 1 (left edge -1, right edge +1),
  y_ndc = 1 - (2y + 1)/H (**up**: top edge +1, bottom edge -1);
- OpenGL camera frame: x right, y up, looking down -z; it differs from OpenCV's by
  diag(1, -1, -1) on the camera axes.
- numpy or torch: results keep the input's type, dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fk.geometry.shapes import check_shape
from fk.geometry.transforms import apply_rigid, invert_rigid, to_matrix


def _xp(x: Any) -> Any:
    if isinstance(x, (np.ndarray, float, int, np.floating)):
        return np
    import torch

    return torch


def _stack(xs: list[Any], axis: int) -> Any:
    xp = _xp(xs[0])
    if xp is np:
        arrays = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xs])
        return np.stack(arrays, axis=axis)
    xs = xp.broadcast_tensors(*xs)
    return xp.stack(xs, dim=axis)


@dataclass(frozen=True)
class Intrinsics:
    """Pixel intrinsics and the image size they belong to.

    fx, fy, cx, cy: floats, or arrays/tensors of one batch shape (*batch); width,
    height: the image size in pixels. See the module docstring for the pixel convention.
    """

    fx: Any
    fy: Any
    cx: Any
    cy: Any
    width: int
    height: int

    @property
    def matrix(self) -> Any:
        """(*batch, 3, 3) K."""
        zero = self.fx * 0
        one = zero + 1
        rows = [self.fx, zero, self.cx, zero, self.fy, self.cy, zero, zero, one]
        flat = _stack(rows, -1)
        return flat.reshape(*flat.shape[:-1], 3, 3)

    @classmethod
    def from_matrix(cls, K: Any, width: int, height: int) -> Intrinsics:
        """(*batch, 3, 3) K -> Intrinsics (skew is ignored)."""
        check_shape(K, "*batch 3 3", name="K")
        return cls(K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], int(width), int(height))

    def normalized(self) -> Any:
        """(*batch, 3, 3) EG3D-style normalised intrinsics: fx/W, fy/H, (cx + 0.5)/W, (cy + 0.5)/H.

        Convention: normalised image coordinates run from 0 at the left/top *edge* to 1
        at the right/bottom edge, so pixel x = j (a centre) is (j + 0.5)/W there.
        """
        w, h = float(self.width), float(self.height)
        return Intrinsics(self.fx / w, self.fy / h, (self.cx + 0.5) / w, (self.cy + 0.5) / h, 1, 1).matrix

    @classmethod
    def from_normalized(cls, K_normalized: Any, width: int, height: int) -> Intrinsics:
        """Inverse of :meth:`normalized` for an image of ``width`` x ``height`` pixels."""
        check_shape(K_normalized, "*batch 3 3", name="K_normalized")
        k = K_normalized
        w, h = float(width), float(height)
        return cls(k[..., 0, 0] * w, k[..., 1, 1] * h, k[..., 0, 2] * w - 0.5, k[..., 1, 2] * h - 0.5,
                   int(width), int(height))  # fmt: skip

    def resized(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to ``width`` x ``height`` (pixel edges kept aligned)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                          int(width), int(height))  # fmt: skip


@dataclass(frozen=True)
class Pose:
    """A camera pose as ``cam_from_world``: rotation (*batch, 3, 3), translation (*batch, 3).

    x_cam = rotation @ x_world + translation (OpenCV camera frame).
    """

    rotation: Any
    translation: Any

    def __post_init__(self) -> None:
        check_shape(self.rotation, "*batch 3 3", name="rotation")
        check_shape(self.translation, "*batch 3", name="translation")

    @property
    def cam_from_world(self) -> Any:
        """(*batch, 4, 4) world -> camera (a.k.a. world2cam, extrinsics)."""
        return to_matrix(self.rotation, self.translation)

    @property
    def world_from_cam(self) -> Any:
        """(*batch, 4, 4) camera -> world (a.k.a. cam2world): columns are the camera axes and centre."""
        return to_matrix(*invert_rigid(self.rotation, self.translation))

    @property
    def center(self) -> Any:
        """(*batch, 3) camera centre in world coordinates, -Rᵀ t."""
        return invert_rigid(self.rotation, self.translation)[1]

    @classmethod
    def from_cam2world(cls, cam2world: Any) -> Pose:
        """(*batch, 4, 4) OpenCV cam2world -> Pose."""
        check_shape(cam2world, "*batch 4 4", name="cam2world")
        r, t = invert_rigid(cam2world[..., :3, :3], cam2world[..., :3, 3])
        return cls(r, t)

    def inverse(self) -> Pose:
        """The pose of the world in the camera (R, t) -> (Rᵀ, -Rᵀ t)."""
        return Pose(*invert_rigid(self.rotation, self.translation))

    def apply(self, points_world: Any) -> Any:
        """(*batch, N, 3) world points -> camera points."""
        return apply_rigid(self.rotation, self.translation, points_world)


_GL_FLIP = (1.0, -1.0, -1.0)


def opencv_from_opengl_points(points: Any) -> Any:
    """(*batch, 3) OpenGL camera coordinates -> OpenCV (y and z negated). Its own inverse."""
    check_shape(points, "*batch 3", name="points")
    return points * _flip_like(points)


opengl_from_opencv_points = opencv_from_opengl_points


def _flip_like(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.asarray(_GL_FLIP, dtype=x.dtype)
    return x.new_tensor(_GL_FLIP)


def opencv_from_opengl_cam2world(cam2world: Any) -> Any:
    """(*batch, 4, 4) OpenGL cam2world -> OpenCV cam2world: negate the camera's y and z axis columns.

    Its own inverse (``opengl_from_opencv_cam2world`` is the same function).
    """
    check_shape(cam2world, "*batch 4 4", name="cam2world")
    rot = cam2world[..., :3, :3] * _flip_like(cam2world[..., 0, :3])  # scales columns: camera axes
    return to_matrix(rot, cam2world[..., :3, 3])


opengl_from_opencv_cam2world = opencv_from_opengl_cam2world


def invert_pose_matrix(matrix: Any) -> Any:
    """(*batch, 4, 4) rigid cam2world <-> world2cam (Rᵀ, -Rᵀ t)."""
    check_shape(matrix, "*batch 4 4", name="matrix")
    return to_matrix(*invert_rigid(matrix[..., :3, :3], matrix[..., :3, 3]))


def project_points(points_cam: Any, K: Any) -> Any:
    """(*batch, N, 3) OpenCV camera points, (*batch, 3, 3) K -> (*batch, N, 2) pixels (x, y).

    Convention: divides by z with no clamping; callers mask z <= 0 themselves.
    """
    check_shape(points_cam, "*batch 3", name="points_cam")
    check_shape(K, "*batch 3 3", name="K")
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    fx, fy = K[..., 0, 0][..., None], K[..., 1, 1][..., None]
    cx, cy = K[..., 0, 2][..., None], K[..., 1, 2][..., None]
    skew = K[..., 0, 1][..., None]
    return _stack([fx * xy[..., 0] + skew * xy[..., 1] + cx, fy * xy[..., 1] + cy], -1)


def project(points_world: Any, K: Any, cam_from_world: Pose | tuple[Any, Any]) -> Any:
    """(*batch, N, 3) world points -> (*batch, N, 2) pixels through a pose and K."""
    pose = cam_from_world if isinstance(cam_from_world, Pose) else Pose(*cam_from_world)
    return project_points(pose.apply(points_world), K)


def unproject(pixels: Any, depth: Any, K: Any) -> Any:
    """(*batch, N, 2) pixels and (*batch, N) depths z -> (*batch, N, 3) OpenCV camera points."""
    check_shape(pixels, "*batch 2", name="pixels")
    fx, fy = K[..., 0, 0][..., None], K[..., 1, 1][..., None]
    cx, cy = K[..., 0, 2][..., None], K[..., 1, 2][..., None]
    skew = K[..., 0, 1][..., None]
    yn = (pixels[..., 1] - cy) / fy
    xn = (pixels[..., 0] - cx - skew * yn) / fx
    return _stack([xn * depth, yn * depth, depth + 0 * xn], -1)


def ndc_from_pixel(pixels: Any, width: int, height: int) -> Any:
    """(*batch, 2) pixels -> (*batch, 2) NDC: ((2x + 1)/W - 1, 1 - (2y + 1)/H), y up."""
    check_shape(pixels, "*batch 2", name="pixels")
    return _stack([(2 * pixels[..., 0] + 1) / width - 1, 1 - (2 * pixels[..., 1] + 1) / height], -1)


def pixel_from_ndc(ndc: Any, width: int, height: int) -> Any:
    """Inverse of :func:`ndc_from_pixel`."""
    check_shape(ndc, "*batch 2", name="ndc")
    return _stack([((ndc[..., 0] + 1) * width - 1) / 2, ((1 - ndc[..., 1]) * height - 1) / 2], -1)


def clip_from_cam(K: Any, width: int, height: int, near: float, far: float) -> Any:
    """(*batch, 4, 4) matrix taking homogeneous **OpenCV** camera points to OpenGL clip space.

    Convention: clip / w gives :func:`ndc_from_pixel` of the projected pixel in x and y
    (y up), and z_ndc = -1 at depth ``near``, +1 at ``far``; w = depth. A rasteriser
    whose image row 0 is at y_ndc = -1 (nvdiffrast) must flip its output vertically
    to get fk's row-0-at-top layout.
    """
    check_shape(K, "*batch 3 3", name="K")
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    zero = fx * 0
    one = zero + 1
    a = (far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    rows = [
        2 * fx / width, zero, (2 * cx + 1) / width - 1, zero,
        zero, -2 * fy / height, 1 - (2 * cy + 1) / height, zero,
        zero, zero, one * a, one * b,
        zero, zero, one, zero,
    ]  # fmt: skip
    flat = _stack(rows, -1)
    return flat.reshape(*flat.shape[:-1], 4, 4)
