"""Deep3D's fixed camera, as every fk face model uses it: the torch face of ``fk.cameras.deep3d``.

The constants, the projection and the image-pixel rule live once, in :mod:`fk.cameras.deep3d`
(numpy or torch, dtype and device follow the input); this module gives them the names
``FaceModel`` uses and a torch ``camera_matrix``.

Convention:
- World frame (the model's frame after posing): x right, y up, z toward the viewer; units dm.
- Deep3D camera frame: the camera sits at (0, 0, CAMERA_DISTANCE) looking along -z, so a world
  point (x, y, z) has camera coordinates (x, y, CAMERA_DISTANCE - z): y stays up, depth is positive.
- Deep3D projection (``project``): u = FOCAL*x/z_c + CENTER, v = FOCAL*y/z_c + CENTER, with v
  growing *upward* (Deep3D's internal "y-up" pixels of the 224 crop).
- Image coordinates (``image_from_yup``), what fk exposes: x = u, y = (2*CENTER - 1) - v = 223 - v,
  Deep3D's own ``lm68`` convention (row = H - 1 - v), x right, y down, pixel centres at integers.
- The same mapping as a pinhole on OpenCV camera coordinates (x, -y, z_c) is
  K = [[FOCAL, 0, CENTER], [0, FOCAL, CENTER - 1], [0, 0, 1]] (``camera_matrix``, ``K_LANDMARKS``).
  Deep3D's own nvdiffrast renders sit half a pixel away from its landmarks: they match K with both
  principal point coordinates at CENTER - 0.5 (``camera_matrix(renderer=True)``, ``K_RENDER``).
"""

from __future__ import annotations

import torch

from fk.cameras.deep3d import (  # the one place they live
    CAMERA_DISTANCE,
    CENTER,
    FOCAL,
    IMAGE_SIZE,
    K_LANDMARKS,
    K_RENDER,
    to_camera,
)
from fk.cameras.deep3d import image_from_deep3d_pixels as image_from_yup
from fk.cameras.deep3d import opencv_from_deep3d_camera as opencv_from_camera
from fk.cameras.deep3d import project_deep3d as project

__all__ = ["CAMERA_DISTANCE", "CENTER", "FOCAL", "IMAGE_SIZE", "camera_matrix", "image_from_yup",
           "opencv_from_camera", "project", "to_camera"]


def camera_matrix(renderer: bool = False, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """(3, 3) pixel intrinsics of the Deep3D camera for OpenCV camera coordinates, as a tensor.

    ``renderer=False``: ``K_LANDMARKS``, consistent with ``image_from_yup(project(v))`` (cy = CENTER - 1).
    ``renderer=True``: ``K_RENDER``, where Deep3D's nvdiffrast renderer puts pixels (cx = cy = CENTER - 0.5).
    """
    return torch.as_tensor(K_RENDER if renderer else K_LANDMARKS, dtype=dtype, device=device)
