"""Benchmark fk_gmpi's MPI renderer on CPU: ms per view, scaling with plane count and resolution.

Work: render a random MPI (N planes of R² RGBA textures, FFHQ plane table) to one 12.6° view at R²,
float32, forward only and forward + backward (gradients to the MPI). Reference beside it: the
per-plane loop GMPI's ``MPI.old_forward`` describes (one ``grid_sample`` per plane, back-to-front
"over" compositing), written here from that description; fk's renderer does all planes in one
``grid_sample`` and front-to-back weights (GMPI's current ``forward``).

    .venv/bin/python bench/bench_gmpi.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from _timing import median_time
from fk.cameras import gmpi as cams
from fk_gmpi.mpi import camera_rays, plane_dhw, render_mpi


def per_plane_loop(rgba, dhw, c2w, K, size):
    """Back-to-front over-compositing, one grid_sample per plane (the GMPI ``old_forward`` structure)."""
    h, w = size
    rays = camera_rays(K, h, w) @ c2w[:3, :3].T
    eye = c2w[:3, 3]
    colour = torch.zeros(3, h, w)
    depth = torch.zeros(1, h, w)
    for i in reversed(range(rgba.shape[0])):
        z, ph, pw = dhw[i]
        t = (z - eye[2]) / rays[..., 2]
        grid = torch.stack([2 * (eye[0] + t * rays[..., 0]) / pw, 2 * (eye[1] + t * rays[..., 1]) / ph], -1)
        s = F.grid_sample(rgba[i : i + 1], grid[None], align_corners=True)[0]
        a = s[3:]
        colour = a * s[:3] + (1 - a) * colour
        depth = a * t[None] + (1 - a) * depth
    return colour, depth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    setup = cams.camera_setup("FFHQ")
    c2w = torch.from_numpy(cams.c2w_from_yaw_pitch([0.2], [0.05], setup)).float()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'planes':>6} {'res':>5} | {'fk fwd ms':>9} {'fk fwd+bwd ms':>13} | {'per-plane loop ms':>17}")
    configs = [(32, 256), (8, 256), (16, 256), (64, 256), (96, 256), (32, 128), (32, 512)]
    if args.quick:
        configs = configs[:2] + configs[5:6]
    for n, res in configs:
        fwd, both, ref = time_config(setup, c2w, n, res, repeats)
        print(f"{n:>6} {res:>5} | {fwd * 1e3:>9.1f} {both * 1e3:>13.1f} | {ref * 1e3:>17.1f}")


def time_config(setup, c2w, n: int, res: int, repeats: int) -> tuple[float, float, float]:
    """(fk forward, fk forward + backward, per-plane loop) seconds for n planes rendered at res²."""
    torch.manual_seed(0)
    dhw = torch.from_numpy(plane_dhw(setup, n))
    rgba = torch.rand(1, n, 4, res, res)
    rgba[:, -1, 3] = 1
    K = torch.from_numpy(cams.intrinsics(setup.fov_deg, res, res)).float()
    with torch.no_grad():
        fwd = median_time(lambda: render_mpi(rgba, dhw, c2w[None], K, (res, res)), repeats)
        ref = median_time(lambda: per_plane_loop(rgba[0], dhw, c2w[0], K, (res, res)), repeats)
    leaf = rgba.clone().requires_grad_(True)

    def fwd_bwd():
        out = render_mpi(leaf, dhw, c2w[None], K, (res, res))
        (out.rgb.sum() + out.depth.sum()).backward()

    return fwd, median_time(fwd_bwd, repeats), ref

if __name__ == "__main__":
    main()
