"""Multiplane images: plane geometry and the differentiable renderer (gmpi.md §2.1, §2.3).

Convention:
- An MPI is ``rgba`` (B, N, 4, Ht, Wt) in [0, 1] plus a plane table ``dhw`` (B or 1, N, 3) of
  (z, height, width) in the GMPI world (x right, y down, z forward, ``fk.cameras.gmpi``); plane 0
  is the **nearest**. Every plane is perpendicular to z and centred on the z axis; texel (j, k)
  of plane i sits at x = linspace(-1, 1, Wt)[k] w_i / 2, y = linspace(-1, 1, Ht)[j] h_i / 2
  (texel centres on the plane edges: ``grid_sample(align_corners=True)``).
- Cameras are OpenCV ``c2w`` (world_from_cam) (B, V, 4, 4) with fk intrinsics ``K`` (3, 3)
  (pixel centres at integers; ``fk.cameras.gmpi.intrinsics`` gives GMPI's FoV camera).
- Rendering: each pixel's unit ray d from the eye e meets plane i at t_i = (z_i - e_z) / d_z; the
  texture is sampled bilinearly at u = 2 P_x / w_i, v = 2 P_y / h_i with zeros outside the plane;
  the plane's depth is t_i (d . a), a the optical axis (z-depth, not ray length). Compositing is
  front-to-back "over": T_i = prod_{j<i} (1 - alpha_j + 1e-10), weight w_i = alpha_i T_i;
  colour = sum w_i c_i, depth = sum w_i d_i, accumulated alpha = sum w_i. A plane behind the eye
  (t_i <= 0) contributes nothing (GMPI asserts instead).

The whole stack and all views go through one ``grid_sample`` (views are stacked along the output
rows, so the textures are never copied per view); everything is differentiable with respect to
the MPI and the cameras, on CPU or CUDA, in the input's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from fk.cameras import gmpi as cams

ALPHA_EPS = 1e-10  # GMPI's 1 - alpha + 1e-10 in the transmittance product


@dataclass
class MpiRender:
    """(B, V, C, H, W) outputs of :func:`render_mpi`."""

    rgb: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor


def camera_rays(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W, 3) unit ray directions in the camera frame through fk pixel centres (x = j, y = i)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=K.dtype, device=K.device),
        torch.arange(width, dtype=K.dtype, device=K.device),
        indexing="ij",
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1)
    d = pix @ torch.linalg.inv(K).T
    return d / d.norm(dim=-1, keepdim=True)


def render_mpi(
    rgba: torch.Tensor,
    dhw: torch.Tensor,
    c2w: torch.Tensor,
    K: torch.Tensor,
    size: tuple[int, int],
    align_corners: bool = True,
) -> MpiRender:
    """Render MPIs to cameras.

    Args:
        rgba: (B, N, 4, Ht, Wt) colour and alpha in [0, 1], plane 0 nearest.
        dhw: (B, N, 3) or (N, 3): plane z, height, width (world units).
        c2w: (B, V, 4, 4) or (B, 4, 4) OpenCV world_from_cam.
        K: (3, 3) intrinsics (fk pixels).
        size: (H, W) of the rendered image.
        align_corners: GMPI's default True; False shrinks in-plane coordinates by 0.95 as GMPI does.
    Returns:
        :class:`MpiRender` with rgb (B, V, 3, H, W), depth and alpha (B, V, 1, H, W).
    """
    if rgba.ndim != 5 or rgba.shape[2] != 4:
        raise ValueError(f"rgba: expected (B, N, 4, Ht, Wt), got {tuple(rgba.shape)}")
    b, n, _, th, tw = rgba.shape
    if c2w.ndim == 3:
        c2w = c2w[:, None]
    if c2w.shape[0] != b or c2w.shape[-2:] != (4, 4):
        raise ValueError(f"c2w: expected ({b}, V, 4, 4), got {tuple(c2w.shape)}")
    if dhw.ndim == 2:
        dhw = dhw[None].expand(b, -1, -1)
    if dhw.shape[:2] != (b, n) or dhw.shape[2] != 3:
        raise ValueError(f"dhw: expected ({b}, {n}, 3), got {tuple(dhw.shape)}")
    h, w = size
    v = c2w.shape[1]
    dtype, device = rgba.dtype, rgba.device
    c2w = c2w.to(dtype=dtype, device=device)
    dhw = dhw.to(dtype=dtype, device=device)
    rays_cam = camera_rays(K.to(dtype=dtype, device=device), h, w)  # (H, W, 3)
    rot, eye = c2w[..., :3, :3], c2w[..., :3, 3]  # (B, V, 3, 3), (B, V, 3)
    rays = torch.einsum("bvij,hwj->bvhwi", rot, rays_cam)  # (B, V, H, W, 3)
    along_axis = rays_cam[..., 2]  # d . a = the camera-frame z of the unit ray

    # fronto-parallel planes: with r = d / d_z per pixel, the hit on plane i is e + (z_i - e_z) r, so u, v and
    # the depth are per-plane scalars times per-pixel maps (one multiply-add per sample)
    dz = rays[..., 2]
    rx, ry, ra = rays[..., 0] / dz, rays[..., 1] / dz, along_axis / dz  # (B, V, H, W)
    step = (dhw[..., 0][:, None, :] - eye[..., 2][:, :, None])[..., None, None]  # (B, V, N, 1, 1): z_i - e_z
    sx = (2 / dhw[..., 2])[:, None, :, None, None]
    sy = (2 / dhw[..., 1])[:, None, :, None, None]
    u = sx * eye[..., 0][:, :, None, None, None] + (sx * step) * rx[:, :, None]
    vv = sy * eye[..., 1][:, :, None, None, None] + (sy * step) * ry[:, :, None]
    if not align_corners:
        u = torch.where((u >= -1) & (u <= 1), u * 0.95, u)
        vv = torch.where((vv >= -1) & (vv <= 1), vv * 0.95, vv)
    grid = torch.stack([u, vv], -1)  # (B, V, N, H, W, 2)
    # one grid_sample over (B*N) textures, the V views stacked along the output rows
    grid = grid.transpose(1, 2).reshape(b * n, v * h, w, 2)
    sampled = F.grid_sample(
        rgba.reshape(b * n, 4, th, tw),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=align_corners,
    )
    sampled = sampled.reshape(b, n, 4, v, h, w).permute(0, 3, 1, 2, 4, 5)  # (B, V, N, 4, H, W)
    t_pos = step * (1 / dz)[:, :, None]  # ray parameter t_i, (B, V, N, H, W)
    colour = sampled[:, :, :, :3]
    alpha = torch.where(
        t_pos[:, :, :, None] > 0, sampled[:, :, :, 3:], torch.zeros((), dtype=dtype, device=device)
    )
    depth = (step * ra[:, :, None])[:, :, :, None]  # z-depth t_i (d . a), (B, V, N, 1, H, W)

    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + ALPHA_EPS], 2), 2)[
        :, :, :-1
    ]
    weights = alpha * trans
    return MpiRender(
        rgb=torch.einsum("bvnihw,bvnchw->bvchw", weights, colour),
        depth=(weights * depth).sum(2),
        alpha=weights.sum(2),
    )


def texel_xyz(dhw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 3) plane table -> (N, H, W, 3) world position of every texel centre (GMPI's texture grid)."""
    xs = torch.linspace(-1, 1, width, dtype=dhw.dtype, device=dhw.device)
    ys = torch.linspace(-1, 1, height, dtype=dhw.dtype, device=dhw.device)
    n = dhw.shape[0]
    x = (xs[None, None, :] * dhw[:, 2, None, None] / 2).expand(n, height, width)
    y = (ys[None, :, None] * dhw[:, 1, None, None] / 2).expand(n, height, width)
    z = dhw[:, 0, None, None].expand(n, height, width)
    return torch.stack([x, y, z], -1)


def _frustum_bounds_on_plane(c2w: np.ndarray, fov_deg: float, plane_z: float) -> np.ndarray:
    """(C, 4, 4) cameras -> (C, 4) min_x, max_x, min_y, max_y of the image-edge rays on z = plane_z."""
    f = cams.focal_from_fov(fov_deg, 4)
    edges = np.array([[x, y, 1.0] for y in (0.0, 4.0) for x in (0.0, 4.0)])  # GMPI's border rays, 4x4 camera
    edges[:, :2] = (edges[:, :2] - 2.0) / f
    d = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    rays = np.einsum("cij,kj->cki", c2w[:, :3, :3], d)
    eye = c2w[:, None, :3, 3]
    t = (plane_z - eye[..., 2]) / rays[..., 2]
    p = eye + t[..., None] * rays
    return np.stack([p[..., 0].min(1), p[..., 0].max(1), p[..., 1].min(1), p[..., 1].max(1)], -1)


MAX_PLANE_BOUND = 5.0  # GMPI's assertion (PR #13): larger planes mean the camera range is too wide for an MPI


def plane_dhw(
    setup: cams.CameraSetup,
    n_planes: int,
    method: str = "inverse",
    confined: bool = True,
    plane_zs: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 3) float32 plane table (z, height, width) as GMPI's ``compute_mpi_spatial_volume``.

    The last plane covers the union of the frusta of a 100 x 100 grid of (yaw, pitch) within
    mean ± n·sigma (and the mean camera), symmetric about z, times ``spatial_enlarge_factor``;
    the others share the frontal frustum's footprint on the last plane (``confined``) or scale
    it by z_i / z_last. Raises ValueError where a bound exceeds 5 world units (GMPI asserts).
    """
    zs = (
        cams.sample_plane_depths(setup.ray_start, setup.ray_end, n_planes, method)
        if plane_zs is None
        else np.asarray(plane_zs, dtype=np.float32)
    )
    zs = np.clip(zs, setup.ray_start, setup.ray_end)
    k = setup.n_truncated_stds
    yaws = np.linspace(setup.h_mean - k * setup.h_stddev, setup.h_mean + k * setup.h_stddev, 100)
    pitches = np.linspace(setup.v_mean - k * setup.v_stddev, setup.v_mean + k * setup.v_stddev, 100)
    gy, gp = np.meshgrid(yaws, pitches, indexing="ij")
    all_y = np.concatenate([gy.ravel(), [(yaws[0] + yaws[-1]) / 2]])
    all_p = np.concatenate([gp.ravel(), [(pitches[0] + pitches[-1]) / 2]])
    c2w = cams.c2w_from_yaw_pitch(all_y, all_p, setup)
    # GMPI works in float32 here (its rays and positions are FloatTensors)
    bounds = _frustum_bounds_on_plane(c2w.astype(np.float32).astype(np.float64), setup.fov_deg, float(zs[-1]))
    mid = bounds[-1]
    confined_h, confined_w = 2 * max(abs(mid[2]), abs(mid[3])), 2 * max(abs(mid[0]), abs(mid[1]))
    union = np.array([bounds[:, 0].min(), bounds[:, 1].max(), bounds[:, 2].min(), bounds[:, 3].max()])
    if np.abs(union).max() > MAX_PLANE_BOUND:
        raise ValueError(
            f"an MPI plane would reach {np.abs(union).max():.2f} world units (> {MAX_PLANE_BOUND}): "
            "the camera range is too wide for an MPI; reduce the yaw/pitch spread"
        )
    last_h = 2 * max(abs(union[2]), abs(union[3])) * setup.spatial_enlarge_factor
    last_w = 2 * max(abs(union[0]), abs(union[1])) * setup.spatial_enlarge_factor
    rows = []
    for z in zs[:-1]:
        scale = 1.0 if confined else float(z) / float(zs[-1])
        rows.append([z, confined_h * scale, confined_w * scale])
    rows.append([zs[-1], last_h, last_w])
    return np.asarray(rows, dtype=np.float32)


def normalized_plane_z(zs, near: float, far: float, xyz_range: str = "01") -> np.ndarray:
    """GMPI's normalised depth fed to the generator: (z - near) / (far - near), or 2x - 1 for "-11"."""
    nz = (np.asarray(zs, dtype=np.float32) - near) / (far - near)
    if xyz_range == "-11":
        return 2 * nz - 1
    if xyz_range != "01":
        raise ValueError(f"normalized_xyz_range must be '01' or '-11', got {xyz_range!r}")
    return nz


def depth_to_alpha(
    plane_z: torch.Tensor, depth: torch.Tensor, z_range: float = 1.0, n_bins: int = 256
) -> torch.Tensor:
    """GMPI's depth-to-alpha (variant 4, ``networks_vanilla_depth2alpha.py``): a steep soft step.

    Args:
        plane_z: (N,) normalised plane depths; depth: (B, 1, H, W) normalised depth map.
        z_range: 1 for the "01" range, 2 for "-11"; n_bins: ``depth2alpha_n_z_bins`` (Δ = z_range / n_bins).
    Returns:
        (B, N, H, W): (clamp(z_i - d, -Δ, Δ) + Δ) / (2Δ + 1e-8): 0 in front of the surface, 1 behind it.
    """
    delta = z_range / n_bins
    diff = (plane_z.reshape(1, -1, 1, 1).to(depth) - depth).clamp(-delta, delta)
    return (diff + delta) / (2 * delta + 1e-8)


def sample_planes_frustum(zs, K: np.ndarray, tex_h: int, tex_w: int) -> np.ndarray:
    """(N, 3) plane table whose textures exactly fill the frontal camera ``K`` (at the origin, looking +z).

    Texel (j, k) of a (tex_h, tex_w) texture is seen at pixel (j, k) shifted so the texture centre
    is the principal point: w_i = z_i (tex_w - 1) / fx, h_i = z_i (tex_h - 1) / fy (texel centres on
    the plane edges). A texture larger than the image pads it symmetrically.
    """
    z = np.asarray(zs, dtype=np.float64)
    return np.stack([z, z * (tex_h - 1) / K[1, 1], z * (tex_w - 1) / K[0, 0]], -1)
