"""GMPI's shading augmentation (gmpi.md §2.4; ``gmpi/core/light_renderer.py``).

Applied to an MPI before rendering, in both the D and the G step, once training passes
``aug_with_lighting_start_iter``:

1. texture-space depth: the plane depths z_i composited with the MPI's alphas (front-to-back, the
   renderer's weights, no warping), blurred by a 9x9 Gaussian, sigma 0.3 ((9 - 1) / 2 - 1) + 0.8 = 1.7
   (torchvision's ``GaussianBlur``: reflect padding, kernel from exp(-x² / 2σ²) normalised);
2. a point cloud: the last plane's texel positions scaled by depth / z_last (+1e-8); normals are the sum of
   the four neighbour cross products, replicate-padded at the border, normalised (+1e-8);
3. a light on the camera sphere, yaw ~ TN(0, 0.2), pitch ~ TN(0.2, 0.05), truncated at 2 sigma, pointing
   at the sphere centre;
4. shading s = k_a + k_d max(0, -n · l); RGB <- clip(RGB s, 0, 1); alpha unchanged.

k_a and k_d ramp linearly from 0 to their maxima over ``n_grow_iters`` **calls** (the counter starts at
0, so the first shaded batch is black, as GMPI's). Light positions are drawn from the ``rng`` passed in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from fk.cameras import gmpi as cams

EPS = 1e-8
BLUR_KSIZE = 9
BLUR_SIGMA = 0.3 * ((BLUR_KSIZE - 1) * 0.5 - 1) + 0.8


def gaussian_blur(x: torch.Tensor, ksize: int = BLUR_KSIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(B, C, H, W) separable Gaussian blur with reflect padding (torchvision's ``gaussian_blur``)."""
    half = (ksize - 1) * 0.5
    t = torch.linspace(-half, half, ksize, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = ksize // 2
    y = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k.reshape(1, 1, 1, ksize).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(y, k.reshape(1, 1, ksize, 1).expand(c, 1, ksize, 1), groups=c)


def composite_plane_depth(alpha: torch.Tensor, plane_z: torch.Tensor) -> torch.Tensor:
    """(B, N, 1, H, W) alphas, (N,) plane z -> (B, 1, H, W) front-to-back composited depth."""
    shifted = torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1)
    weights = alpha * torch.cumprod(shifted, 1)[:, :-1]
    return (weights * plane_z.to(alpha).reshape(1, -1, 1, 1, 1)).sum(1)


def grid_normals(grid: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) positions -> unit normals (sum of four neighbour cross products, replicate border)."""
    c = grid[:, 1:-1, 1:-1]
    up, down, left, right = grid[:, :-2, 1:-1], grid[:, 2:, 1:-1], grid[:, 1:-1, :-2], grid[:, 1:-1, 2:]
    n = (
        torch.cross(up - c, left - c, dim=3)
        + torch.cross(left - c, down - c, dim=3)
        + torch.cross(down - c, right - c, dim=3)
        + torch.cross(right - c, up - c, dim=3)
    )
    n = F.pad(n.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate").permute(0, 2, 3, 1)
    return n / ((n**2).sum(3, keepdim=True) ** 0.5 + EPS)


class LightAugment:
    """Stateful shading augmentation: ``calls`` counts renders for the k_a/k_d ramp (saved on resume)."""

    def __init__(
        self,
        setup: cams.CameraSetup,
        ka_max: float = 0.9,
        kd_max: float = 0.1,
        n_grow_iters: int = 1000,
        yaw_std: float = 0.2,
        pitch_mean: float = 0.2,
        pitch_std: float = 0.05,
    ):
        self.setup = setup
        self.ka_max, self.kd_max, self.n_grow_iters = ka_max, kd_max, n_grow_iters
        self.yaw_std, self.pitch_mean, self.pitch_std = yaw_std, pitch_mean, pitch_std
        self.calls = -1  # GMPI's step: incremented before use, so the first call ramps from 0

    def light_directions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) unit directions from lights on the camera sphere towards its centre."""
        centre = np.array([0.0, 0.0, self.setup.sphere_center_z])
        c2w, _, _ = cams.gen_sphere_path(
            n,
            centre,
            self.setup.sphere_r,
            0.0,
            self.yaw_std,
            self.pitch_mean,
            self.pitch_std,
            sample_method="truncated_gaussian",
            n_truncated_stds=2,
            rng=rng,
        )
        d = centre[None] - c2w[:, :3, 3]
        return d / (np.linalg.norm(d, axis=-1, keepdims=True) + EPS)

    def __call__(
        self, mpi: torch.Tensor, dhw: torch.Tensor, texel_xyz: torch.Tensor, light_dirs: np.ndarray
    ) -> torch.Tensor:
        """Shade ``mpi`` (B, N, 4, H, W) with plane table ``dhw`` (N, 3) and texels (N, H, W, 3)."""
        self.calls += 1
        rgb, alpha = mpi[:, :, :3], mpi[:, :, 3:]
        depth = gaussian_blur(composite_plane_depth(alpha, dhw[:, 0]))[:, 0]  # (B, H, W)
        last = texel_xyz[-1:].to(mpi)
        grid = last * (depth.unsqueeze(-1) / (last[..., 2:] + EPS))
        normals = grid_normals(grid)
        light = torch.as_tensor(light_dirs, dtype=mpi.dtype, device=mpi.device)
        diffuse = (-(normals * light.view(-1, 1, 1, 3)).sum(3)).clamp(min=0)
        ratio = min(1.0, self.calls / self.n_grow_iters)
        shading = ratio * self.ka_max + diffuse[:, None, None] * (ratio * self.kd_max)
        return torch.cat([torch.clip(rgb * shading, 0.0, 1.0), alpha], 2)
