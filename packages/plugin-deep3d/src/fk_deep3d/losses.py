"""Deep3D's training/fitting losses and default weights (deep3d.md §5).

Convention:
    - landmarks are (B, 68, 2) pixels of the 224 crop; the loss is invariant to the
      y-up/y-down choice as long as prediction and target share it
    - images are (B, H, W, 3) float in [0, 1]; masks (B, H, W) float in [0, 1]
    - albedo (B, N, 3) in [0, 1]; gamma (B, 27) ordered R block, G block, B block
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# 0-based indices with weight 20: nose bridge 28-30 and the inner mouth 60-67.
HEAVY_LANDMARKS: tuple[int, ...] = (28, 29, 30, *range(60, 68))


@dataclass(frozen=True)
class LossWeights:
    """Deep3D's defaults (``options/train_options.py``)."""

    feat: float = 0.2
    color: float = 1.92
    lm: float = 1.6e-3
    reg: float = 3e-4
    id: float = 1.0
    exp: float = 0.8
    tex: float = 1.7e-2
    gamma: float = 10.0
    reflc: float = 5.0


def landmark_weights(n: int = 68, like: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) weights: 20 for the nose bridge and inner mouth, 1 elsewhere."""
    w = torch.ones(n, dtype=like.dtype if like is not None else torch.float32,
                   device=like.device if like is not None else None)
    w[[i for i in HEAVY_LANDMARKS if i < n]] = 20.0
    return w


def landmark_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ_i w_i ‖p_i − g_i‖² / (B · 68), pixels². pred, target: (B, 68, 2)."""
    w = landmark_weights(pred.shape[1], pred)
    return (((pred - target) ** 2).sum(-1) * w).sum() / (pred.shape[0] * pred.shape[1])


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6,
                     normaliser: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_pixels √(ε + ‖I_pred − I_gt‖²) · m / max(Σ m, 1); images (B, H, W, 3), mask (B, H, W).

    ``normaliser`` replaces ``max(Σ m, 1)`` (training under DDP passes the global batch's share).
    """
    dist = torch.sqrt(eps + ((pred - target) ** 2).sum(-1))
    return (dist * mask).sum() / (torch.clamp(mask.sum(), min=1.0) if normaliser is None else normaliser)


def coefficient_loss(id: torch.Tensor, exp: torch.Tensor, tex: torch.Tensor,
                     weights: LossWeights = LossWeights()) -> torch.Tensor:
    """(w_id‖α‖² + w_exp‖β‖² + w_tex‖δ‖²) / B."""
    b = id.shape[0]
    return (weights.id * (id**2).sum() + weights.exp * (exp**2).sum() + weights.tex * (tex**2).sum()) / b


def reflectance_loss(albedo: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """Albedo variance over skin vertices: Σ ‖T − T̄_skin‖² / (B · Σ skin). albedo (B,N,3), skin (N,)."""
    m = skin.to(albedo.dtype)[None, :, None]
    mean = (albedo * m).sum(1, keepdim=True) / m.sum()
    return (((albedo - mean) * m) ** 2).sum() / (albedo.shape[0] * m.sum())


def identity_loss(feat_pred: torch.Tensor, feat_gt: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 − cos(f_pred, f_gt)."""
    return (1.0 - torch.nn.functional.cosine_similarity(feat_pred, feat_gt, dim=-1)).mean()
