"""Deep3D's fixed camera, as every fk face model uses it.

Convention:
- World frame (the model's frame after posing): x right, y up, z toward the viewer; units dm.
- Deep3D camera frame: the camera sits at (0, 0, CAMERA_DISTANCE) looking along -z, so a world
  point (x, y, z) has camera coordinates (x, y, CAMERA_DISTANCE - z): y stays up, depth is positive.
- Deep3D projection (``project``): u = FOCAL*x/z_c + CENTER, v = FOCAL*y/z_c + CENTER, with v
  growing *upward* (Deep3D's internal "y-up" pixels of the 224 crop).
- Image coordinates (``image_from_yup``), what fk exposes: x = u, y = (2*CENTER - 1) - v = 223 - v,
  Deep3D's own ``lm68`` convention (row = H - 1 - v), x right, y down, pixel centres at integers.
- The same mapping as a pinhole on OpenCV camera coordinates (x, -y, z_c) is
  K = [[FOCAL, 0, CENTER], [0, FOCAL, CENTER - 1], [0, 0, 1]] (``camera_matrix``). Deep3D's own
  nvdiffrast renders sit half a pixel away from its landmarks: they match K with both principal
  point coordinates at CENTER - 0.5 (``camera_matrix(renderer=True)``).
"""

from __future__ import annotations

import torch

from fk.cameras.deep3d import CAMERA_DISTANCE, CENTER, FOCAL, IMAGE_SIZE  # the one place they live

__all__ = ["CAMERA_DISTANCE", "CENTER", "FOCAL", "IMAGE_SIZE", "camera_matrix", "image_from_yup",
           "opencv_from_camera", "project", "to_camera"]


def to_camera(vertices_world: torch.Tensor) -> torch.Tensor:
    """World -> Deep3D camera coordinates.

    Args:
        vertices_world: (*batch, N, 3) posed vertices, dm.
    Returns:
        (*batch, N, 3): (x, y, CAMERA_DISTANCE - z); a new tensor, the input is not modified.
    """
    xy = vertices_world[..., :2]
    z = CAMERA_DISTANCE - vertices_world[..., 2:3]
    return torch.cat([xy, z], dim=-1)


def project(vertices_cam: torch.Tensor) -> torch.Tensor:
    """Deep3D perspective projection to y-up pixels of the 224 crop.

    Args:
        vertices_cam: (*batch, N, 3) Deep3D camera coordinates (depth > 0).
    Returns:
        (*batch, N, 2): (u, v) = FOCAL * (x, y) / z_c + CENTER, v pointing up.
    Convention: no clamping; depth <= 0 gives inf/negative values, as in Deep3D.
    """
    return FOCAL * vertices_cam[..., :2] / vertices_cam[..., 2:3] + CENTER


def image_from_yup(points_yup: torch.Tensor) -> torch.Tensor:
    """Deep3D y-up pixels -> image pixels (x right, y down): (u, 223 - v), Deep3D's ``lm68`` rule.

    Its own inverse: applying it twice gives the input back.
    """
    flip = (2.0 * CENTER - 1.0) - points_yup[..., 1:2]
    return torch.cat([points_yup[..., :1], flip], dim=-1)


def opencv_from_camera(vertices_cam: torch.Tensor) -> torch.Tensor:
    """Deep3D camera coordinates (y up) -> OpenCV camera coordinates (x right, y down, z forward)."""
    return vertices_cam * vertices_cam.new_tensor([1.0, -1.0, 1.0])


def camera_matrix(renderer: bool = False, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """(3, 3) pixel intrinsics of the Deep3D camera for OpenCV camera coordinates.

    ``renderer=False``: consistent with ``image_from_yup(project(v))`` (landmarks; cy = CENTER - 1).
    ``renderer=True``: where Deep3D's nvdiffrast renderer puts pixels (cx = cy = CENTER - 0.5).
    """
    cx, cy = (CENTER - 0.5, CENTER - 0.5) if renderer else (CENTER, CENTER - 1.0)
    return torch.tensor([[FOCAL, 0.0, cx], [0.0, FOCAL, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
