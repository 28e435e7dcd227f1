"""The artifact types that flow between components (numpy only, no torch).

Port kinds used in component descriptors, and the value each carries:

=============  ================================================================
``image``      a photo: a ``pathlib.Path`` or an HxWx3 uint8 RGB array
               (``fk.io.as_rgb`` turns either into the array)
``faces``      ``list[Face]`` from a detector (fan-out port: one child item per face)
``face``       one :class:`Face`
``crop``       one :class:`Crop`
``recon``      one :class:`Reconstruction`
``mesh``       ``fk.io.mesh.Mesh``
``label``      an EG3D camera label: float array of 25 (see ``fk.cameras.eg3d``)
``path``       a file or folder path
``json``       any JSON-able value
=============  ================================================================

Conventions: image points are (x, y) in pixels, x to the right and y down,
following OpenCV and dlib: the centre of pixel (row i, column j) is x = j, y = i.
The 68 landmarks follow the iBUG 300-W order (0-based indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Face:
    """One detected face in a source image.

    box: (x0, y0, x1, y1) in source pixels; score: detector confidence (larger is
    surer; scales differ between detectors); landmarks: (68, 2) float (x, y) in
    source pixels, iBUG order, or None when the detector gives boxes only;
    keypoints: (5, 2) float (x, y) from detectors that find 5 points themselves
    (MTCNN): left eye, right eye, nose, mouth left, mouth right (image left/right).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None
    image_size: tuple[int, int]  # (height, width) of the source image
    source: Path | None = None
    detector: str = ""
    index: int = 0  # position in the detector's output order (0-based)
    # The face's name within its photo: a fanned-out child item is keyed ``{photo}_{key_suffix}``
    # (LPFF: "01", "02", ... in dlib's order). Empty: the engine numbers children "00", "01", ...
    key_suffix: str = ""
    keypoints: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": np.asarray(self.box, dtype=float).tolist(),
            "score": float(self.score),
            "landmarks": None if self.landmarks is None else np.asarray(self.landmarks, float).tolist(),
            "image_size": list(self.image_size),
            "source": str(self.source) if self.source else None,
            "detector": self.detector,
            "index": self.index,
            "key_suffix": self.key_suffix,
            "keypoints": None if self.keypoints is None else np.asarray(self.keypoints, float).tolist(),
        }


@dataclass
class Crop:
    """An aligned crop and the exact map back to the source image.

    ``crop_from_source`` is a 3x3 matrix M (affine, or projective for quad crops)
    taking homogeneous source pixel coordinates to crop pixel coordinates;
    ``source_from_crop`` is its inverse. ``landmarks`` are the face's 68 points in
    crop pixels. ``params`` keeps method-specific numbers (e.g. Deep3D's trans_params).
    """

    image: np.ndarray  # HxWx3 uint8
    crop_from_source: np.ndarray  # (3, 3)
    landmarks: np.ndarray | None
    method: str
    face: Face | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def source_from_crop(self) -> np.ndarray:
        return np.linalg.inv(self.crop_from_source)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        return apply_homography(self.crop_from_source, points)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        return apply_homography(self.source_from_crop, points)


@dataclass
class Reconstruction:
    """A fitted or regressed face: model coefficients, pose, and the posed mesh.

    ``coeffs`` maps names (Deep3D's ``id``, ``exp``, ``tex``, ``angle``, ``gamma``,
    ``trans``) to float arrays; ``vertices`` (N, 3) are posed in the model's world
    frame; ``colors`` (N, 3) lit vertex colours in [0, 1]; ``landmarks`` (68, 2) are
    the model's projected landmarks in crop pixels; ``camera_label`` is the EG3D label.
    """

    model: str
    coeffs: dict[str, np.ndarray]
    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None
    landmarks: np.ndarray
    crop: Crop
    camera_label: np.ndarray | None = None
    uvs: np.ndarray | None = None  # (T, 2) the model's UV layout (OBJ convention, v up) ...
    uv_faces: np.ndarray | None = None  # (F, 3) ... and its UV triangles
    extra: dict[str, Any] = field(default_factory=dict)


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 matrix to (..., 2) points, dividing by the homogeneous coordinate."""
    pts = np.asarray(points, dtype=np.float64)
    homog = np.concatenate([pts, np.ones((*pts.shape[:-1], 1))], axis=-1) @ np.asarray(matrix, np.float64).T
    return homog[..., :2] / homog[..., 2:3]
