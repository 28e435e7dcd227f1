"""Per-frame eye masks from painted UV masks (CoRA's ``scripts/render_uv_eye_mask.py``, cora.md §11.1).

For every frame the UV-mapped Step-1 mesh is rasterised through the frame's camera (z-buffered, so lids
and the nose occlude), the UV coordinate of the visible surface is interpolated at each pixel centre, and
the binary UV masks are sampled there bilinearly (``grid_sample``, zero padding, ``align_corners=False``),
giving soft masks written as CoRA does (3 identical channels, ``floor(255 v + 0.5)``).

Differences from upstream, each a fix or a named option:
- upstream interpolates UVs affinely in screen space (pytorch3d's ``perspective_correct=False``);
  ``interpolation="screen"`` (the default) reproduces it, ``"perspective"`` is the perspective-correct option.
- the empty-pixel corner trap: upstream's empty pixels carry uv = (0, 0), which samples the UV mask's
  bottom-left corner (a white corner texel leaks 0.25 into every background pixel); fk writes 0 there.
- ``transforms_aligned.json`` works (upstream hard-codes ``transforms.json``); CPU or CUDA (upstream:
  ``cuda:0``); one frame at a time (upstream batches every frame on the GPU at once).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from fk.errors import InputError

EYES = ("leye", "reye")


def open_painted_png(path: Path, what: str, paint_hint: str):
    """A hand-painted label image, loaded: a PIL image, or one InputError naming the file when it is
    missing, unreadable or not a PNG (a lossy format changes the pure colours the tools look for)."""
    from PIL import Image

    if not path.is_file():
        raise InputError(f"{path}: {what} not found", hint=paint_hint)
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.load()
            loaded = im.copy()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})", hint="save it as an 8-bit PNG") from None
    if fmt != "PNG":
        raise InputError(f"{path}: {what} is {fmt}, not PNG (lossy formats change the pure colours)",
                         hint="save the painted image losslessly as PNG")
    return loaded


def decode_uv_mask(path: str | Path) -> np.ndarray:
    """(S, S) float32 {0, 1}: texels painted pure white (every channel 255, alpha too), as upstream decodes.

    Raises InputError naming the file when it is missing, not a PNG, or not square.
    """
    p = Path(path)
    im = open_painted_png(p, "label image", "paint the eye region pure white on the exported diffuse.png")
    if im.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64) / 65535.0
    else:
        arr = np.asarray(im, dtype=np.float64) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[0] != arr.shape[1]:
        raise InputError(
            f"{p}: UV label image is {arr.shape[1]}x{arr.shape[0]}, expected square",
            hint="paint on the square diffuse.png of the same export",
        )
    return (arr.mean(axis=-1) == 1.0).astype(np.float32)


def screen_and_perspective_uv(vertices_cam, faces, uvs, uv_faces, K, size, backend: str = "auto"):
    """Rasterise one frame; returns ``(uv_screen (H, W, 2), uv_perspective (H, W, 2), covered (H, W))`` tensors.

    ``vertices_cam (N, 3)`` in the OpenCV camera frame, ``K (3, 3)`` fk intrinsics, ``size (H, W)``. The
    rasteriser's perspective-correct barycentrics ``b`` give the perspective UVs; screen-affine barycentrics
    (pytorch3d's ``perspective_correct=False``) are ``b_i z_i / sum_j b_j z_j``. UV seams stay sharp because
    UVs are looked up per face corner (``uv_faces``). Near/far planes as upstream: min z / 2, max z * 2.
    """
    import torch

    import fk.render as dr
    from fk.render.mesh import projection_from_intrinsics

    dev = vertices_cam.device
    h, w = (int(x) for x in size)
    ctx = dr.get_context(backend)
    work = torch.device("cuda") if getattr(ctx, "backend", "cpu") == "nvdiffrast" else dev
    verts = vertices_cam.to(work)
    zs = verts[:, 2]
    near = float(zs.min().clamp_min(1e-6)) / 2
    far = float(zs.max()) * 2
    proj = projection_from_intrinsics(K.to(device=work, dtype=verts.dtype)[None], (h, w), near, far)[0]
    pos = torch.cat([verts, torch.ones_like(verts[:, :1])], -1) @ proj.T
    tri = torch.as_tensor(np.asarray(faces), dtype=torch.int32, device=work).contiguous()
    rast, _ = dr.rasterize(ctx, pos[None].float().contiguous() if work.type == "cuda" else pos[None].contiguous(),
                           tri, (h, w), grad_db=False)
    rast = torch.flip(rast[0], dims=[0]).to(dev)  # fk image layout: row 0 at the top
    tid = rast[..., 3].long() - 1
    covered = tid >= 0
    uv_screen = torch.zeros((h, w, 2), dtype=vertices_cam.dtype, device=dev)
    uv_persp = torch.zeros_like(uv_screen)
    t = tid[covered]
    b = torch.stack([rast[..., 0][covered], rast[..., 1][covered], 1 - rast[..., 0][covered] - rast[..., 1][covered]], -1)
    b = b.to(vertices_cam.dtype)
    f_idx = torch.as_tensor(np.asarray(faces), dtype=torch.long, device=dev)[t]  # (P, 3)
    uv_idx = torch.as_tensor(np.asarray(uv_faces), dtype=torch.long, device=dev)[t]
    corner_uv = torch.as_tensor(np.asarray(uvs), dtype=vertices_cam.dtype, device=dev)[uv_idx]  # (P, 3, 2)
    corner_z = vertices_cam[:, 2][f_idx]  # (P, 3)
    uv_persp[covered] = (b[..., None] * corner_uv).sum(1)
    bs = b * corner_z
    bs = bs / bs.sum(-1, keepdim=True).clamp_min(1e-30)
    uv_screen[covered] = (bs[..., None] * corner_uv).sum(1)
    return uv_screen, uv_persp, covered


def sample_uv_masks(uv_masks, uv, covered):
    """Bilinear lookup of ``uv_masks (C, S, S)`` at ``uv (H, W, 2)`` as upstream's ``grid_sample`` call;
    pixels not ``covered`` are 0 (fk; upstream samples uv = (0, 0) there). Returns (C, H, W)."""
    import torch
    import torch.nn.functional as F

    grid = torch.stack([2 * uv[..., 0] - 1, -(2 * uv[..., 1] - 1)], dim=-1)[None].to(uv_masks.dtype)
    out = F.grid_sample(uv_masks[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return out * covered[None].to(out.dtype)


def render_eye_masks(
    data_root: str | Path,
    mesh_uv: str | Path,
    meta: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    interpolation: str = "screen",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``leye_mask/`` and ``reye_mask/`` for every frame; returns a summary dict.

    Reads ``data_root/diffuse_leye_mask.png`` and ``diffuse_reye_mask.png`` and the cameras
    (``transforms.json`` or ``meta``); writes under ``out`` (default ``data_root``, as CoRA).
    """
    import torch
    from fk.io.image import save_image
    from fk.io.mesh import read_obj

    from fk_eyeball.dataset import load_subject
    from fk_eyeball.synth import mask_png

    if interpolation not in ("screen", "perspective"):
        raise InputError(f"interpolation must be screen or perspective, got {interpolation!r}")
    root = Path(data_root)
    subject = load_subject(root, meta)
    uv_masks = [decode_uv_mask(root / f"diffuse_{eye}_mask.png") for eye in EYES]
    if uv_masks[0].shape != uv_masks[1].shape:
        raise InputError(
            f"{root / 'diffuse_reye_mask.png'}: size {uv_masks[1].shape} differs from the left mask's "
            f"{uv_masks[0].shape}",
            hint="paint both on the same diffuse.png",
        )
    corner_white = [eye for eye, m in zip(EYES, uv_masks, strict=True) if m[-1, 0] > 0]
    mesh = read_obj(mesh_uv)
    if mesh.uvs is None:
        raise InputError(f"{mesh_uv}: the mesh has no UVs (vt)", hint="pass the UV-unwrapped mesh_uv.obj")
    dev = torch.device(device)
    dtype = torch.float32
    masks_t = torch.as_tensor(np.stack(uv_masks), dtype=dtype, device=dev)
    verts = torch.as_tensor(mesh.vertices, dtype=torch.float64, device=dev)
    K = torch.as_tensor(subject.K, dtype=dtype, device=dev)
    out_root = Path(out) if out is not None else root
    for eye in EYES:
        (out_root / f"{eye}_mask").mkdir(parents=True, exist_ok=True)
    areas = []
    for i, frame in enumerate(subject.frames):
        c2w = torch.as_tensor(frame.cam2world, dtype=torch.float64, device=dev)
        cam = (verts - c2w[:3, 3]) @ c2w[:3, :3]  # R^T (x - C): OpenCV camera coordinates
        screen, persp, covered = screen_and_perspective_uv(
            cam.to(dtype), mesh.faces, mesh.uvs, mesh.uv_faces, K, subject.size
        )
        uv = screen if interpolation == "screen" else persp
        soft = sample_uv_masks(masks_t, uv, covered).cpu().numpy()
        for eye, m in zip(EYES, soft, strict=True):
            save_image(out_root / f"{eye}_mask" / frame.name, mask_png(m))
        areas.append([float(m.sum()) for m in soft])
        if progress:
            progress(i + 1, len(subject.frames))
    return {
        "frames": len(subject.frames),
        "out": str(out_root),
        "meta": subject.meta_path.name,
        "corner_white": corner_white,
        "mean_area_px": np.mean(areas, axis=0).tolist() if areas else [0, 0],
        "missing": subject.warning(),
    }
