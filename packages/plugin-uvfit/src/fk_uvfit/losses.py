"""FFHQ-UV's stage 2-3 objective pieces and schedule (ffhquv.md §1.4-1.6), with upstream's defaults.

Every weight, learning rate and step count is a field of :data:`STAGE2` / :data:`STAGE3` (recipe
parameters of the fitting stages, upstream's values by default). Tensor shapes: renders and photos
``(B, 3, H, W)`` in [0, 1], masks ``(B, 1, H, W)``, landmarks ``(B, 68, 2)`` pixels, ws ``(B, L, C)``.
"""

from __future__ import annotations

import math

import torch

from fk_uvfit.schedules import STAGE2, STAGE3  # noqa: F401  (re-exported; the plugin reads them torch-free)

SEED = 123


def lr_factor(step: int, total: int, rampdown: float) -> float:
    """Cosine ramp-down, no warm-up: ½ − ½ cos(π · min(1, (1 − step/total) / rampdown))."""
    t = step / total
    ramp = min(1.0, (1.0 - t) / rampdown)
    return 0.5 - 0.5 * math.cos(ramp * math.pi)


def stage3_learning_rates(cfg: dict = STAGE3) -> dict[str, float]:
    """Stage 3's learning rates: W+ and gamma at lr·tex_scale, id/exp at lr, angle/trans at lr·pose_scale."""
    tex = 1.0 if cfg["loose_tex"] else cfg["tex_lr_scale"]
    lr = cfg["initial_lr"]
    return {
        "latent": lr * tex,
        "id": lr,
        "exp": lr,
        "angle": lr * cfg["pose_lr_scale"],
        "trans": lr * cfg["pose_lr_scale"],
        "gamma": lr * tex,
    }


def project_to_sphere(z: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Stage 2's spherical step: each (B, L, C) latent vector back to its initial L2 norm (B, L, 1)."""
    return z / z.norm(dim=-1, keepdim=True) * norms


def geocross(ws: torch.Tensor) -> torch.Tensor:
    """PULSE's geodesic cross loss: Σ_b mean_ij(512 · D_ij²) / 8, D_ij = 2 atan2(A, B) with
    A = sqrt(|x_i − x_j|² + 1e-9), B = sqrt(|x_i + x_j|² + 1e-9) (upstream's epsilon)."""
    a, b = ws[:, :, None], ws[:, None, :]
    d = 2 * torch.atan2(((a - b) ** 2).sum(-1).add(1e-9).sqrt(), ((a + b) ** 2).sum(-1).add(1e-9).sqrt())
    return ((512 * d**2).mean(dim=(1, 2)) / 8).sum()


def landmark_weights(n: int = 68) -> torch.Tensor:
    """Weight 20 on the nose bridge (0-based 28-30) and inner lips (60-67) for 68 points; all ones for 86."""
    w = torch.ones(n)
    if n == 68:
        w[28:31] = 20
        w[60:68] = 20
    return w


def landmark_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k |p_k − g_k|² / (B·K), in pixels."""
    w = landmark_weights(pred.shape[1]).to(pred)
    return (((pred - target) ** 2).sum(-1) * w).sum() / (pred.shape[0] * pred.shape[1])


def color_loss(render: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1: Σ |(R − I)·m| over 3 channels / max(Σ m, 1) over one channel."""
    return ((render - photo) * mask).abs().sum() / mask.sum().clamp_min(1.0)


def coeff_l2(x: torch.Tensor) -> torch.Tensor:
    """FFHQ-UV's ‖α‖², ‖β‖²: the sum of squares divided by the batch size."""
    return (x**2).sum() / x.shape[0]


def identity_loss(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FFHQ-UV's ``perceptual_loss``: Σ_b (1 − cos(f_b, g_b)) / B on L2-normalised (B, 512) features."""
    return (1 - (feat * target).sum(-1)).sum() / feat.shape[0]


class IdentityTerm:
    """FFHQ-UV's recognition wrapper on core's ArcFace (``fk.nets.arcface``): a (B, 3, H, W) image in [0, 1]
    warped by a (B, 2, 3) matrix to 112² (bilinear, align-corners, as kornia's ``warp_affine``), scaled to
    2x − 1, embedded and L2-normalised."""

    def __init__(self, features):
        self.features = features  # fk.nets.arcface.IdentityFeatures

    def embed(self, image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        from fk.nets.arcface import warp_112

        face = warp_112(image.permute(0, 2, 3, 1), matrix.to(image.dtype)) * 2.0 - 1.0
        return torch.nn.functional.normalize(self.features.net(face), dim=-1)

    @staticmethod
    def matrix_from_landmarks(lm_yup: torch.Tensor, image_size: int) -> torch.Tensor:
        """Upstream's ``estimate_norm_torch``: 68 y-up landmarks -> top-down -> 5 points -> similarity."""
        from fk.landmarks import five_from_68
        from fk.nets.arcface import similarity_to_template

        top_down = torch.stack([lm_yup[..., 0], image_size - 1 - lm_yup[..., 1]], -1)
        return similarity_to_template(five_from_68(top_down))
