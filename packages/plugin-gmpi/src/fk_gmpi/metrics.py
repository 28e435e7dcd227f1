"""GMPI's identity, depth and pose metrics as small pure functions (gmpi.md §4.2-4.4).

Each follows GMPI's ``gmpi/eval`` scripts:

- identity (``compute_consistency.py``): 1 - cosine distance of two face embeddings = their cosine
  similarity; per pair, then mean and std over pairs (higher is better).
- depth (``compute_geometry.py:compute_depth_err``): valid pixels = the 3DMM's face mask AND the GMPI
  depth (aligned into the Deep3D crop) > 1e-8; each depth vector over those pixels is standardised,
  (d - mean) / (std + 1e-8) with numpy's population std; the error is the mean squared difference.
- pose (``compute_geometry.py:compute_angle_err``): target (pitch, -yaw, 0) from the render angles
  [pitch, yaw] (GMPI's +y down world against Deep3D's +y up, so yaw flips sign; roll is never
  sampled); the error is the mean over the three components of the squared difference, radians².
- aggregation: mean and population std (``np.std``) over the images that were measured.
"""

from __future__ import annotations

import numpy as np

DEPTH_EPS = 1e-8


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embeddings (1 - DeepFace's cosine distance)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different sizes: {a.shape} and {b.shape}")
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def standardize(values: np.ndarray) -> np.ndarray:
    """(v - mean) / (std + 1e-8), population std (GMPI's ``normalize_vec``)."""
    v = np.asarray(values, dtype=np.float64)
    return (v - v.mean()) / (v.std() + DEPTH_EPS)


def depth_error(gmpi_depth: np.ndarray, model_depth: np.ndarray, model_mask: np.ndarray) -> float:
    """GMPI's depth error between its aligned expected depth and the 3DMM's rendered depth (H, W each).

    Returns NaN when no pixel is valid (GMPI would average an empty array into NaN as well).
    """
    gmpi_depth = np.asarray(gmpi_depth, dtype=np.float64)
    model_depth = np.asarray(model_depth, dtype=np.float64)
    valid = (np.asarray(model_mask) > 0) & (gmpi_depth >= DEPTH_EPS)
    if gmpi_depth.shape != model_depth.shape or valid.shape != gmpi_depth.shape:
        raise ValueError(
            f"depth maps and mask differ in shape: {gmpi_depth.shape}, {model_depth.shape}, {valid.shape}"
        )
    if not valid.any():
        return float("nan")
    return float(np.mean(np.square(standardize(model_depth[valid]) - standardize(gmpi_depth[valid]))))


def pose_target(pitch: float, yaw: float) -> np.ndarray:
    """Deep3D's (angle_x, angle_y, angle_z) for a GMPI render at (pitch, yaw): (pitch, -yaw, 0)."""
    return np.array([pitch, -yaw, 0.0])


def angle_error(render_angles: np.ndarray, predicted_angles: np.ndarray) -> float:
    """Mean over the three angles of (predicted - target)², radians²; ``render_angles`` = [pitch, yaw]."""
    pitch, yaw = np.asarray(render_angles, dtype=np.float64).ravel()[:2]
    pred = np.asarray(predicted_angles, dtype=np.float64).ravel()
    if pred.shape != (3,):
        raise ValueError(f"predicted angles: expected 3 values (Deep3D's angle), got {pred.shape}")
    return float(np.mean(np.square(pred - pose_target(pitch, yaw))))


def summarize(values) -> dict:
    """{"mean", "std", "count"} over the finite values (``np.std``: population), None when there are none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "count": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "count": int(v.size)}
