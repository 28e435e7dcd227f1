"""Cameras: pinhole intrinsics and poses in fk's one convention, plus EG3D and Deep3D at the edges.

Convention: fk's camera frame is **OpenCV** (x right, y down, z forward); points map
world -> camera as x_cam = R x_world + t (``cam_from_world``); pixel centres are at
integer (x, y). OpenGL, EG3D (normalised intrinsics, cam2world labels) and Deep3D
(y-up camera, y-up pixels) are converted only at the edges: ``fk.cameras.eg3d``,
``fk.cameras.deep3d``. See docs/conventions.md.

Nothing here imports torch: ``fk.cameras.eg3d`` and ``fk.cameras.deep3d`` are numpy only, and
the pinhole helpers take numpy arrays or torch tensors.
"""

from fk.cameras.pinhole import (
    Intrinsics,
    Pose,
    clip_from_cam,
    invert_pose_matrix,
    ndc_from_pixel,
    opencv_from_opengl_cam2world,
    opencv_from_opengl_points,
    opengl_from_opencv_cam2world,
    opengl_from_opencv_points,
    pixel_from_ndc,
    project,
    project_points,
    unproject,
)

__all__ = [
    "Intrinsics", "Pose", "clip_from_cam", "invert_pose_matrix", "ndc_from_pixel",
    "opencv_from_opengl_cam2world", "opencv_from_opengl_points", "opengl_from_opencv_cam2world",
    "opengl_from_opencv_points", "pixel_from_ndc", "project", "project_points", "unproject",
]  # fmt: skip
