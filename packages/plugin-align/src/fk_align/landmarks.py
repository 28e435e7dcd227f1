"""The 68-point iBUG landmark layout, its 5-point reduction, and the seeds' landmark files.

Convention:
    Points are (x, y) image pixels, x right, y down, pixel centres at integers
    (``fk.types``). Indices are the 0-based iBUG 300-W order dlib and 2D-FAN use.
    The 5 points are ordered [left eye, right eye, nose tip, left mouth corner,
    right mouth corner] with "left" meaning image-left, which is MTCNN's order and
    the order Deep3DFaceRecon's ``extract_5p`` produces.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fk.errors import InputError
from fk.landmarks import five_from_68  # noqa: F401 - the one 68 -> 5 reduction, re-exported

# Index groups of the 68-point layout (0-based, image-left first).
JAW = tuple(range(0, 17))
BROW_LEFT = tuple(range(17, 22))
BROW_RIGHT = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_BASE = tuple(range(31, 36))
EYE_LEFT = tuple(range(36, 42))
EYE_RIGHT = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


def check_landmarks68(points: np.ndarray, name: str = "landmarks") -> np.ndarray:
    """Return ``points`` as a float64 (68, 2) array, or raise InputError naming ``name``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2):
        raise InputError(
            f"{name}: expected 68 (x, y) landmarks, got shape {pts.shape}",
            hint="pass the iBUG 68-point layout that dlib and 2D-FAN produce",
        )
    if not np.all(np.isfinite(pts)):
        raise InputError(f"{name}: landmarks contain NaN or inf")
    return pts


def flip_y(points: np.ndarray, height: int) -> np.ndarray:
    """Switch between image rows (y down) and Deep3D's y-up: y' = H - 1 - y (its own inverse).

    float32 points are flipped in float32, as Deep3D's ``read_data`` does; others in float64.
    """
    arr = np.asarray(points)
    pts = np.array(arr, dtype=np.float32 if arr.dtype == np.float32 else np.float64, copy=True)
    pts[..., 1] = height - 1 - pts[..., 1]
    return pts


def format_five_points(points5: np.ndarray, style: str = "fixed") -> str:
    """The text of a ``detections/*.txt`` file: 5 lines ``x y`` (what Deep3D's test.py and LPFF read).

    ``style="repr"`` writes Python's shortest round-trip repr of each float64, as LPFF's
    ``1_realign.py`` does (so the file is byte-identical to LPFF's and readers get the exact
    value); ``"fixed"`` writes 6 decimals.
    """
    pts = np.asarray(points5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise InputError(f"five-point file: expected (5, 2) points, got shape {pts.shape}")
    if style == "repr":
        return "".join(f"{float(x)!r} {float(y)!r}\n" for x, y in pts)
    return "".join(f"{x:.6f} {y:.6f}\n" for x, y in pts)


def write_five_points(path: str | os.PathLike[str], points5: np.ndarray) -> Path:
    """Write a ``detections/*.txt`` file (not atomic; inside a step use ``ctx.write_text``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(format_five_points(points5))
    return p


def read_five_points(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 5-row ``x y`` file (whitespace or tab separated, as MTCNN scripts write) as (5, 2)."""
    p = Path(path)
    try:
        rows = [line.split() for line in p.read_text().splitlines() if line.strip()]
        pts = np.array(rows, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{p}: not a five-point landmark file ({exc})", hint="expected 5 lines of 'x y' pixel coordinates"
        ) from exc
    if pts.shape != (5, 2):
        raise InputError(
            f"{p}: expected 5 lines of 'x y', got shape {pts.shape}",
            hint="expected 5 lines of 'x y' pixel coordinates",
        )
    return pts


def read_landmarks68(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 68x2 ``.npy`` (LPFF's ``lm_*`` folders) or a 68-line text file as (68, 2) float64."""
    p = Path(path)
    try:
        pts = np.load(p) if p.suffix == ".npy" else np.loadtxt(p)
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: unreadable landmark file ({exc})") from exc
    return check_landmarks68(pts, name=str(p))


def bounding_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of a point set."""
    pts = np.asarray(points, dtype=np.float64)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])
