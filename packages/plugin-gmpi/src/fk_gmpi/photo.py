"""``export:gmpi-photo-mpi``: an MPI built from one photo and fk's face fit, rendered to novel views.

No StyleGAN2 weights: the photo's Deep3D crop (resampled from the source photo at ``size``) gives
the colour of every plane; the fitted face mesh, rendered by fk's rasteriser in the crop camera,
gives a depth map (background and hair sit on the far plane, the depth is smoothed across the face
outline), and GMPI's depth-to-alpha step turns it into per-plane alpha. Units: Deep3D's camera
distance 10 dm becomes GMPI's sphere radius 1, and the crop camera (focal 1015 px at 224, FoV
12.59°) is GMPI's FFHQ camera, so the frontal view gives the crop back. Planes are frustum-shaped
(each covers the padded crop seen from the frontal camera), plane 0 nearest, the last opaque.
Novel views come from the same renderer GMPI's generator uses (``fk_gmpi.mpi.render_mpi``).

What it is not: a generated face. Hidden surfaces are not invented (the MPI repeats the photo's
colour along each frontal ray), so strong yaw shows stretched cheeks and the hair on a flat card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fk.cameras import deep3d
from fk.cameras import gmpi as cams
from fk.errors import InputError
from fk.io import as_rgb
from fk.types import Reconstruction

from fk_gmpi import media
from fk_gmpi.mpi import depth_to_alpha, sample_planes_frustum
from fk_gmpi.views import render_views, trajectory

DEMO_NOTE = (
    "Demo without StyleGAN2 weights: an MPI built from the photo (colour) and fk's face fit (depth, "
    "alpha by GMPI's depth-to-alpha step), rendered by GMPI's MPI renderer. Not a GMPI generation."
)


def crop_from_source(
    photo: np.ndarray, crop_from_src: np.ndarray, base: int, size: int, pad: int = 0
) -> np.ndarray:
    """Resample the photo into the ``base``² crop scaled to ``size``² (centres kept), plus ``pad`` px a side.

    The margin comes from the photo itself (its border pixels repeat only beyond the photo's edge).
    """
    s = size / base
    scale = np.array([[s, 0.0, 0.5 * s - 0.5 + pad], [0.0, s, 0.5 * s - 0.5 + pad], [0.0, 0.0, 1.0]])
    size = size + 2 * pad
    src_from_out = np.linalg.inv(scale @ np.asarray(crop_from_src, dtype=np.float64))
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    pts = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3) @ src_from_out.T
    pts = pts[:, :2] / pts[:, 2:]
    h, w = photo.shape[:2]
    grid = torch.from_numpy(np.stack([(2 * pts[:, 0] + 1) / w - 1, (2 * pts[:, 1] + 1) / h - 1], -1))
    img = torch.from_numpy(photo.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    out = F.grid_sample(
        img, grid.reshape(1, size, size, 2), mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0].permute(1, 2, 0).numpy()


def crop_intrinsics(size: int, pad: int = 0) -> np.ndarray:
    """Deep3D's render camera for the crop scaled to ``size``² and padded by ``pad`` pixels a side."""
    s = size / deep3d.IMAGE_SIZE
    K = deep3d.K_RENDER.copy()
    K[:2, :2] *= s
    K[:2, 2] = (K[:2, 2] + 0.5) * s - 0.5 + pad
    return K


def face_depth(
    recon: Reconstruction, size: int, renderer: str = "auto", pad: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the fitted mesh's camera z in the padded crop: (depth in GMPI units (H, W), mask, K)."""
    from fk.render.mesh import render_mesh

    K = crop_intrinsics(size, pad)
    size = size + 2 * pad
    verts = deep3d.opencv_from_deep3d_camera(deep3d.to_camera(np.asarray(recon.vertices, dtype=np.float64)))
    out = render_mesh(
        torch.from_numpy(verts)[None].float(),
        recon.triangles,
        torch.from_numpy(K)[None].float(),
        (size, size),
        backend=renderer,
    )
    depth = out.depth[0].double().numpy() / deep3d.CAMERA_DISTANCE
    return depth, out.mask[0].numpy(), K


def mpi_from_photo(
    image: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    K: np.ndarray,
    n_planes: int = 32,
    pad: int = 64,
    background_gap: float = 0.03,
    n_bins: int = 256,
    smooth: float = 2.0,
):
    """Colour (H, W, 3) in [0, 1] + face depth -> (rgba (N, 4, H + 2 pad, W + 2 pad), dhw (N, 3), near, far).

    Background pixels (outside ``mask``) go to the far plane ``background_gap`` behind the farthest face
    point; the depth is Gaussian-smoothed (``smooth`` pixels) so the face outline ramps to it.
    """
    from scipy.ndimage import gaussian_filter

    if not mask.any():
        raise InputError("the face fit covers no pixel of the crop", hint="check the detection and the fit")
    near = float(depth[mask].min()) - 0.002
    far = float(depth[mask].max()) + background_gap
    full = np.where(mask, depth, far)
    if smooth > 0:
        full = np.minimum(gaussian_filter(full, smooth), far)
    zs = cams.sample_plane_depths(near, far, n_planes, "inverse").astype(np.float64)
    tex = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    dfull = np.pad(full, pad, mode="edge")
    nz = torch.from_numpy((zs - near) / (far - near))
    nd = torch.from_numpy((dfull - near) / (far - near))[None, None]
    alpha = depth_to_alpha(nz, nd, 1.0, n_bins)[0]  # (N, H', W')
    alpha[-1] = 1.0  # background plane opaque (GMPI's background_alpha_full)
    rgb = torch.from_numpy(tex).permute(2, 0, 1)[None].expand(n_planes, -1, -1, -1)
    rgba = torch.cat([rgb, alpha[:, None]], 1)
    dhw = sample_planes_frustum(zs, K, tex.shape[0], tex.shape[1])
    return rgba, torch.from_numpy(dhw), near, far


class PhotoMpi:
    """Runner of ``export:gmpi-photo-mpi``."""

    def __init__(
        self,
        planes: int = 32,
        size: int = 256,
        frames: int = 30,
        trajectory: str = "sphere",
        fps: int = 15,
        renderer: str = "auto",
    ):
        self.planes, self.size, self.frames, self.kind, self.fps = planes, size, frames, trajectory, fps
        self.renderer = renderer or "auto"

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        recon = inputs["recon"]
        if not isinstance(recon, Reconstruction):
            raise InputError(f"{ctx.key}: export:gmpi-photo-mpi needs a reconstruction (fit:deep3d's recon)")
        photo = as_rgb(inputs["image"])
        pad = self.size // 2  # novel views at ±0.5 rad yaw still land on the planes
        crop = recon.crop
        image = crop_from_source(photo, crop.crop_from_source, crop.image.shape[0], self.size, pad)
        depth, mask, K_tex = face_depth(recon, self.size, self.renderer, pad)
        rgba, dhw, near, far = mpi_from_photo(image, depth, mask, K_tex, self.planes, pad=0)
        K = crop_intrinsics(self.size)  # the views: the unpadded crop camera
        setup = cams.camera_setup("FFHQ")
        yaws, pitches = trajectory(self.kind, self.frames, setup)
        c2w = cams.c2w_from_yaw_pitch(yaws, pitches, setup)
        rgb, dep, acc = render_views(rgba.float(), dhw.float(), c2w, K, self.size)
        key = ctx.key
        files: dict[str, Any] = {"key": key, "near": near, "far": far, "planes": self.planes}
        frames = [media.to_uint8(f) for f in rgb]
        depth_frames = [media.depth_picture(d, near, far) for d in dep]
        for i, (f, d) in enumerate(zip(frames, depth_frames, strict=False)):
            ctx.save_image(f"{key}/frames/{i:03d}.png", f)
            ctx.save_image(f"{key}/depth/{i:03d}.png", d)
        video = media.write_video(ctx.path(f"{key}/video"), frames, self.fps)
        depth_video = media.write_video(ctx.path(f"{key}/depth_video"), depth_frames, self.fps)
        planes = rgba.permute(0, 2, 3, 1).numpy()
        alpha_sheet = media.plane_sheet(media.to_uint8(np.repeat(planes[..., 3:], 3, -1)))
        rgba_sheet = media.plane_sheet(media.to_uint8(planes), columns=8)
        ctx.save_image(f"{key}/planes_alpha.png", alpha_sheet)
        ctx.save_image(f"{key}/planes_rgba.png", rgba_sheet)
        for i in range(self.planes):
            ctx.save_image(f"{key}/planes/{i:02d}.png", media.to_uint8(planes[i]))
        inner = (slice(pad, pad + self.size), slice(pad, pad + self.size))
        ctx.save_image(f"{key}/input_crop.png", media.to_uint8(image[inner]))
        ctx.save_image(
            f"{key}/input_depth.png", media.depth_picture(np.where(mask, depth, far)[inner], near, far)
        )
        np.save(ctx.path(f"{key}/mpi_dhw.npy"), dhw.numpy())
        rel = lambda p: Path(os.path.relpath(p, ctx.run_dir)).as_posix()  # noqa: E731
        files.update(
            {
                "video": rel(video),
                "depth_video": rel(depth_video),
                "input": rel(ctx.path(f"{key}/input_crop.png")),
                "input_depth": rel(ctx.path(f"{key}/input_depth.png")),
                "planes_alpha": rel(ctx.path(f"{key}/planes_alpha.png")),
                "planes_rgba": rel(ctx.path(f"{key}/planes_rgba.png")),
                "frame0": rel(ctx.path(f"{key}/frames/000.png")),
                "coverage_min": float(acc.min()),
            }
        )
        return {"files": files}


class PhotoPage:
    """Runner of ``export:gmpi-page`` (run scope): one index.html over every item's files."""

    def __init__(self, title: str = "fk gmpi: MPI from a photo"):
        self.title = title

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        page = ctx.path("index.html")
        page_dir = page.parent

        def rel(p: str) -> str:
            return Path(os.path.relpath(Path(ctx.run_dir) / p, page_dir)).as_posix()

        sections = []
        for key, f in sorted((inputs.get("files") or {}).items()):
            if not f:
                continue
            sections.append(
                {
                    "title": key,
                    "text": f"{f['planes']} planes from z = {f['near']:.3f} to {f['far']:.3f} (GMPI units; "
                    f"camera sphere radius 1); lowest coverage of a pixel {f['coverage_min']:.3f}",
                    "videos": [("novel views", rel(f["video"])), ("expected depth", rel(f["depth_video"]))],
                    "images": [
                        ("input crop", rel(f["input"])),
                        ("fitted depth", rel(f["input_depth"])),
                        ("plane alphas (plane 0 = nearest)", rel(f["planes_alpha"])),
                    ],
                }
            )
        media.write_page(page, self.title, DEMO_NOTE, sections)
        return {"page": Path(os.path.relpath(page, ctx.run_dir)).as_posix()}
