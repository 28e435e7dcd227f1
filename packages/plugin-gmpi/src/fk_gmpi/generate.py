"""``fk gmpi generate``: MPIs from a GMPI checkpoint (or a StyleGAN2 pickle), rendered along a camera path.

Per seed, as GMPI's ``render_video.py``: ``torch.manual_seed(seed)``, z ~ N(0, I) (1 x z_dim), the MPI
from the generator (``noise_mode='random'`` by default, as GMPI), then one view per frame through the
MPI renderer with the dataset's FoV and sphere; depth pictures are (d - near) / (far - near) clipped.
Writes ``seed0000/frames/NNN.png``, ``depth/NNN.png``, ``video.mp4`` (GIF without imageio-ffmpeg),
``depth_video.mp4``, ``planes/NN.png`` (RGBA), ``planes_alpha.png`` and ``planes_rgb.png`` sheets, and
``index.html`` over all seeds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fk import atomic
from fk.cameras import gmpi as cams

from fk_gmpi import media
from fk_gmpi.checkpoint import LoadedGenerator
from fk_gmpi.generator import PlaneInput, interpolation_weights
from fk_gmpi.mpi import normalized_plane_z, plane_dhw
from fk_gmpi.views import render_views, trajectory


def parse_seeds(text: str) -> list[int]:
    """'0-7' -> [0..7]; '1,5,9-10' -> [1, 5, 9, 10] (StyleGAN2's range syntax)."""
    import re

    out: list[int] = []
    try:
        for part in str(text).split(","):
            m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
            if m:
                out.extend(range(int(m.group(1)), int(m.group(2)) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError as exc:
        from fk.errors import UsageError

        raise UsageError(
            f"--seeds {text!r}: not a list of integers or ranges", hint="e.g. 0-7 or 1,5,9-10"
        ) from exc
    return out


def plane_input(loaded: LoadedGenerator, n_planes: int) -> tuple[PlaneInput, np.ndarray]:
    """Plane depths (normalised for the generator) and GMPI's plane table for ``n_planes`` planes."""
    cfg = loaded.config
    setup = cfg.camera_setup()
    method = cfg.mpi["distance_sample_method"]
    dhw = plane_dhw(setup, n_planes, method, confined=bool(cfg.mpi["use_confined_volume"]))
    nz = torch.from_numpy(
        normalized_plane_z(dhw[:, 0], setup.ray_start, setup.ray_end, cfg.train["normalized_xyz_range"])
    )
    interp = None
    if loaded.generator.variant == "learnable":
        from fk_gmpi.generator import LEARNABLE_TOKENS

        interp = interpolation_weights(setup.ray_start, setup.ray_end, LEARNABLE_TOKENS, n_planes, method)
    return PlaneInput(nz, interp), dhw


@dataclass
class GenerateOptions:
    seeds: list[int]
    truncation: float = 1.0
    trajectory: str = "yaw"
    frames: int = 60
    planes: int | None = None
    size: int | None = None
    fps: int = 15
    noise_mode: str = "random"
    device: str = "cpu"


def generate(loaded: LoadedGenerator, out: Path, opts: GenerateOptions) -> dict:
    gen = loaded.generator.to(opts.device)
    cfg = loaded.config
    setup = cfg.camera_setup()
    n_planes = opts.planes or cfg.n_planes
    planes, dhw = plane_input(loaded, n_planes)
    size = opts.size or gen.img_resolution
    K = cams.intrinsics(setup.fov_deg, size, size)
    yaws, pitches = trajectory(opts.trajectory, opts.frames, setup)
    c2w = cams.c2w_from_yaw_pitch(yaws, pitches, setup)
    dhw_t = torch.from_numpy(dhw).to(opts.device)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    summary = {
        "checkpoint": loaded.source,
        "dataset": cfg.dataset,
        "variant": gen.variant,
        "planes": n_planes,
        "truncation": opts.truncation,
        "trajectory": opts.trajectory,
        "frames": opts.frames,
        "notes": loaded.notes,
        "seeds": {},
    }
    for k, seed in enumerate(opts.seeds):
        torch.manual_seed(seed)
        z = torch.randn(1, gen.z_dim, device=opts.device)
        with torch.no_grad():
            mpi = gen(z, planes, truncation_psi=opts.truncation, noise_mode=opts.noise_mode)[
                0
            ]  # (N, 4, R, R)
        rgb, depth, acc = render_views(mpi.float(), dhw_t.float(), c2w, K, size)
        folder = out / f"seed{seed:04d}"
        frames = [media.to_uint8(f) for f in rgb]
        depths = [media.depth_picture(d, setup.ray_start, setup.ray_end) for d in depth]
        for i, (f, d) in enumerate(zip(frames, depths, strict=False)):
            media.save_png(folder / "frames" / f"{i:03d}.png", f)
            media.save_png(folder / "depth" / f"{i:03d}.png", d)
        video = media.write_video(folder / "video", frames, opts.fps)
        depth_video = media.write_video(folder / "depth_video", depths, opts.fps)
        planes_np = mpi.permute(0, 2, 3, 1).cpu().numpy()
        for i in range(planes_np.shape[0]):
            media.save_png(folder / "planes" / f"{i:02d}.png", media.to_uint8(planes_np[i]))
        media.save_png(
            folder / "planes_alpha.png",
            media.plane_sheet(media.to_uint8(np.repeat(planes_np[..., 3:], 3, -1))),
        )
        media.save_png(folder / "planes_rgb.png", media.plane_sheet(media.to_uint8(planes_np[..., :3])))
        np.save(folder / "mpi_dhw.npy", dhw)
        rel = lambda p: Path(os.path.relpath(p, out)).as_posix()  # noqa: E731
        summary["seeds"][str(seed)] = {
            "video": rel(video),
            "depth_video": rel(depth_video),
            "coverage_min": float(acc.min()),
        }
        sections.append(
            {
                "title": f"seed {seed}",
                "videos": [("views", rel(video)), ("expected depth", rel(depth_video))],
                "images": [
                    ("first frame", rel(folder / "frames" / "000.png")),
                    ("plane alphas (0 = nearest)", rel(folder / "planes_alpha.png")),
                ],
            }
        )
        print(f"seed {seed}: {k + 1}/{len(opts.seeds)} -> {folder}", file=sys.stderr, flush=True)
    note = " ".join(loaded.notes)
    media.write_page(out / "index.html", f"fk gmpi generate: {cfg.dataset} ({gen.variant})", note, sections)
    atomic.write_json(out / "generate.json", summary)
    return summary
