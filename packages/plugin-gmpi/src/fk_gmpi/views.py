"""Camera trajectories for GMPI videos, and rendering an MPI along one into frames and depth pictures."""

from __future__ import annotations

import numpy as np
import torch
from fk.cameras import gmpi as cams

TRAJECTORIES = ("yaw", "pitch", "sphere")


def trajectory(
    kind: str, frames: int, setup: cams.CameraSetup, yaw_range: float = 0.5, pitch_range: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """(yaws, pitches), each (frames,), radians about the setup's mean pose.

    ``yaw``: GMPI's ``render_video.py`` horizontal sweep, yaw from +0.5 to -0.5 (pitch at the mean);
    ``pitch``: its vertical sweep, +0.3 to -0.3; ``sphere``: fk's closed loop yaw = 0.5 cos t,
    pitch = 0.3 sin t · 0.5 (an ellipse inside both sweeps, so the video loops without a jump).
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if kind == "yaw":
        return np.linspace(yaw_range, -yaw_range, frames) + setup.h_mean, np.full(frames, setup.v_mean)
    if kind == "pitch":
        return np.full(frames, setup.h_mean), np.linspace(pitch_range, -pitch_range, frames) + setup.v_mean
    if kind == "sphere":
        t = np.linspace(0.0, 2 * np.pi, frames, endpoint=False)
        return yaw_range * np.cos(t) + setup.h_mean, 0.5 * pitch_range * np.sin(t) + setup.v_mean
    raise ValueError(f"unknown trajectory {kind!r}: one of {', '.join(TRAJECTORIES)}")


def render_views(
    rgba: torch.Tensor, dhw: torch.Tensor, c2w: np.ndarray, K: np.ndarray, size: int, chunk: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One MPI (N, 4, H, W) to every camera in ``c2w`` (V, 4, 4): (rgb (V, S, S, 3), depth, alpha)."""
    from fk_gmpi.mpi import render_mpi

    rgbs, depths, alphas = [], [], []
    cam = torch.as_tensor(c2w, dtype=rgba.dtype, device=rgba.device)
    k = torch.as_tensor(K, dtype=rgba.dtype, device=rgba.device)
    with torch.no_grad():
        for start in range(0, cam.shape[0], chunk):
            out = render_mpi(rgba[None], dhw, cam[None, start : start + chunk], k, (size, size))
            rgbs.append(out.rgb[0].permute(0, 2, 3, 1).cpu().numpy())
            depths.append(out.depth[0, :, 0].cpu().numpy())
            alphas.append(out.alpha[0, :, 0].cpu().numpy())
    return np.concatenate(rgbs), np.concatenate(depths), np.concatenate(alphas)
