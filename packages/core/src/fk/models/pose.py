"""Deep3D's head pose: Euler angles composed as Rz·Ry·Rx, applied to column vectors.

Convention:
- ``angles`` = (x, y, z) in radians; R = Rz(z) @ Ry(y) @ Rx(x) (extrinsic X, then Y, then Z about the
  fixed world axes). Deep3D's ``compute_rotation`` returns R transposed because it multiplies row
  vectors; fk returns R itself and poses with v_world = R v + t.
- Rx = [[1,0,0],[0,c,-s],[0,s,c]], Ry = [[c,0,s],[0,1,0],[-s,0,c]], Rz = [[c,-s,0],[s,c,0],[0,0,1]]:
  +angle about +z maps x̂ to ŷ.
"""

from __future__ import annotations

import torch

from fk.geometry.rotations import euler_to_matrix


def rotation_from_angles(angles: torch.Tensor) -> torch.Tensor:
    """(*batch, 3) Euler angles (rad) -> (*batch, 3, 3) rotation R = Rz·Ry·Rx (column vectors)."""
    return euler_to_matrix(angles, "xyz")


def pose_vertices(vertices: torch.Tensor, rotation: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """v_world = R v + t.

    Args:
        vertices: (B, N, 3); rotation: (B, 3, 3); trans: (B, 3).
    Returns:
        (B, N, 3).
    """
    # a contiguous R^T: torch's threaded bmm is very slow on a transposed 3x3 view on small CPUs
    return vertices @ rotation.transpose(-1, -2).contiguous() + trans[..., None, :]
