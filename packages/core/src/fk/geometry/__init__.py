"""Geometry core: shape checks, rotations, rigid/homogeneous transforms, point-set alignment, PnP.

Convention (every module here; see docs/conventions.md):
- column vectors: a rotation R maps x to R @ x; a rigid transform is x' = R x + t;
- frames are named in variables: ``cam_from_world`` maps world points to camera points;
- angles in radians; quaternions (w, x, y, z);
- torch functions keep the input's dtype and device; most also accept numpy arrays
  (converted through torch and back) where that is cheap.
"""

from fk.errors import ShapeError
from fk.geometry.shapes import check_shape

__all__ = ["ShapeError", "check_shape"]
