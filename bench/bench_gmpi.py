"""Benchmark fk_gmpi on CPU: the MPI renderer (ms per view, by plane count and resolution) and, with
``--train``, training iterations per second (``fk gmpi train``'s D + G step) at 64² and 256².

Work: render a random MPI (N planes of R² RGBA textures, FFHQ plane table) to one 12.6° view at R²,
float32, forward only and forward + backward (gradients to the MPI). Reference beside it: the
per-plane loop GMPI's ``MPI.old_forward`` describes (one ``grid_sample`` per plane, back-to-front
"over" compositing), written here from that description; fk's renderer does all planes in one
``grid_sample`` and front-to-back weights (GMPI's current ``forward``).

    .venv/bin/python bench/bench_gmpi.py [--quick] [--threads 1] [--train]

Training work (``--train``): GMPI's networks at FFHQ256's sizes (StyleGAN2 channel_base 16384, channel_max
512, 8 mapping layers, z/w 512; random weights, no pickle needed), GMPI's defaults otherwise (32 planes,
worst of 4 views, R1 every iteration, pose-conditioned D), per-process batch 8 (GMPI's per-GPU batch at 256²),
fk's demo head images; one D step + one G step timed after a warm-up, data loading and checkpoints excluded,
float32 (CPU). ``--quick``: batch 1 and 8 planes (a 2-core CPU takes minutes per GMPI-sized iteration).
GMPI's training time: the research note has no published figure (only "8x V100, 5,000 iterations"), so none
is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import time

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
    ap.add_argument("--train", action="store_true", help="training iterations/s at 64² and 256² instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    setup = cams.camera_setup("FFHQ")
    c2w = torch.from_numpy(cams.c2w_from_yaw_pitch([0.2], [0.05], setup)).float()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    if args.train:
        batch, planes = (1, 8) if args.quick else (8, 32)
        print(f"GMPI's 256² network sizes, {planes} planes, worst of 4 views, R1 every iteration")
        head = f"{'res':>5} {'batch':>5} | {'s/iteration':>11} {'iterations/s':>12} {'images/s':>9}"
        print(f"{head} | GMPI: no published time")
        for res in (64, 256):
            sec = train_iteration_seconds(res, batch, planes, repeats=1 if args.quick else 3)
            print(f"{res:>5} {batch:>5} | {sec:>11.2f} {1 / sec:>12.3f} {batch / sec:>9.2f} |")
        return
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


def train_iteration_seconds(res: int, batch: int, planes: int, repeats: int) -> float:
    """Median seconds of one ``fk gmpi train`` iteration (D + G step) at res², GMPI's 256² network sizes."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from fk.nets.stylegan2 import Discriminator, Generator
    from fk_gmpi.train import Trainer, TrainOptions
    from fk_gmpi.train_config import settings_from_raw
    from fk_gmpi.train_data import make_demo_dataset

    torch.manual_seed(0)
    sk = {"channel_base": 16384, "channel_max": 512, "num_fp16_res": 4 if res > 128 else 0,
          "conv_clamp": 256 if res > 128 else None}
    g = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                  mapping_kwargs={"num_layers": 8}, synthesis_kwargs=sk)
    d = Discriminator(c_dim=0, img_resolution=res, img_channels=3, **sk)
    with tempfile.TemporaryDirectory() as tmp:
        make_demo_dataset(Path(tmp), res, max(batch, 8), seed=0)
        raw = {"GMPI": {"TRAIN": {"sample_interval": 10**6, "model_save_interval": 10**6},
                        "MPI": {"n_gen_planes": planes}}}
        opts = TrainOptions(dataset="FFHQ256", data_root=Path(tmp), out=Path(tmp) / "out",
                            networks={"G_ema": g, "D": d}, batch_size=batch, demo=True, progress=False)
        trainer = Trainer(settings_from_raw(raw, "bench"), opts)
        items = [trainer.dataset[i % len(trainer.dataset)] for i in range(batch)]
        real, c = torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
        times = []
        for it in range(repeats + 1):  # the first iteration warms up
            t0 = time.perf_counter()
            trainer.step(it, real, c)
            times.append(time.perf_counter() - t0)
        return float(np.median(times[1:]))


if __name__ == "__main__":
    main()
