"""``fk gmpi train --demo``: GMPI's training loop on a tiny dataset that needs nothing gated.

A **demo and a test fixture, not a claim about FFHQ quality**: fk's procedural demo head rendered by fk's
renderer at known poses (FFHQ's yaw/pitch spread; 32² by default) in GMPI's FFHQ layout
(:func:`fk_gmpi.train_data.make_demo_dataset`), and a tiny random StyleGAN2-ADA snapshot
(``fk.testing.stylegan2``, written in NVIDIA's pickle format and read by fk's safe loader) as the starting
point. GMPI's config with a few values scaled to a few hundred iterations (:data:`DEMO_CONFIG`): 8 planes,
batch 4, shading from iteration 100 ramping over 400 calls, samples every 50, checkpoints every 100.

Writes, under ``--out``: ``demo_data/`` (the dataset and the starting pickle), ``checkpoints/`` (GMPI's
layout), ``samples/*.png``, ``train_log.jsonl``, ``losses.png``, ``signal.json`` (the measured learning
signal) and ``index.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

DEMO_RESOLUTION = 32
DEMO_IMAGES = 64
DEMO_ITERATIONS = 300
DEMO_CONFIG: dict[str, Any] = {
    "GMPI": {
        "TRAIN": {
            "total_iters": DEMO_ITERATIONS,
            "sample_interval": 50,
            "model_save_interval": 100,
            "aug_with_lighting_start_iter": 100,
            "aug_with_lighting_grow_n_iters": 400,
        },
        "MPI": {"n_gen_planes": 8},
        "MODEL": {"STYLEGAN2": {"gen_alpha_largest_res": 256}},
    }
}
DEMO_BATCH = 4
DEMO_NOTE = (
    "DEMO: fk's procedural demo head rendered at known poses, and a tiny random StyleGAN2 as the "
    "start; it shows that GMPI's training loop learns, not FFHQ quality"
)


def prepare_demo(
    root: Path, resolution: int = DEMO_RESOLUTION, n_images: int = DEMO_IMAGES, seed: int = 0
) -> tuple[Path, Path]:
    """The demo dataset and starting pickle under ``root`` (reused when already there); returns both paths."""
    from fk.testing.stylegan2 import write_stylegan2_pickle

    from fk_gmpi.train_data import make_demo_dataset

    root = Path(root)
    if not (root / f"ffhq{resolution}x{resolution}.zip").exists():
        make_demo_dataset(root, resolution, n_images, seed)
    pkl = root / f"tiny-stylegan2-{resolution}.pkl"
    if not pkl.exists():
        write_stylegan2_pickle(
            pkl,
            resolution=resolution,
            z_dim=32,
            w_dim=32,
            channel_base=1024,
            channel_max=32,
            mapping_layers=2,
            seed=seed,
        )
    return root, pkl


@torch.no_grad()
def mean_image_gap(trainer, n: int = 32, seed: int = 7) -> float:
    """MSE between the mean image of ``n`` EMA samples (prior views) and the mean real image ([-1, 1] units).

    The demo's real images are one head under small pose changes, so their mean is a blurred face on grey; a
    generator that learnt the data distribution has the same mean. Starting from a random StyleGAN2 the gap
    is large; it falls as G learns (measured in ``signal.json`` and by the tests).
    """
    from fk_gmpi.train import _Iteration

    reals = torch.stack([trainer.dataset[i][0] for i in range(len(trainer.dataset))])
    backup = [p.detach().clone() for p in trainer.g_params]
    for p, s in zip(trainer.g_params, trainer.ema[0].shadow, strict=True):
        p.copy_(s)
    trainer.G.eval()
    try:
        draws = _Iteration(seed, 0)
        z = draws.normal((n, trainer.G.z_dim))
        c2w, _, _ = trainer.cameras(n, draws.rng())
        mpi = trainer.G(z.to(trainer.device), trainer.planes, noise_mode="const", force_fp32=True)
        fakes = trainer.render(mpi, c2w[:, None]).cpu()
    finally:
        for p, b in zip(trainer.g_params, backup, strict=True):
            p.copy_(b)
        trainer.G.train()
    return float(((fakes.mean(0) - reals.mean(0)) ** 2).mean())


def demo_page(out: Path, summary: dict, signal: dict, preview: Path | None) -> Path:
    from fk_gmpi.media import write_page

    samples = sorted((out / "samples").glob("*.png"))
    rel = [(f"iteration {int(p.stem)}", str(p.relative_to(out))) for p in samples]
    sections = [
        {
            "title": "Losses",
            "images": [("D/G losses and R1; mean D logits on real and fake", "losses.png")],
            "text": f"{summary['iterations']} iterations at {summary['resolution']}² in "
            f"{summary['seconds']:.0f} s "
            f"({summary['iterations_per_s']:.2f} it/s, CPU).",
        },
        {
            "title": "Learning signal",
            "text": f"mean-image gap (MSE between the mean of 32 EMA samples and the mean real image): "
            f"{signal['mean_image_gap_start']:.4f} at the start -> {signal['mean_image_gap_end']:.4f} "
            f"after training.",
        },
        {
            "title": "Samples (EMA weights; fixed z; columns: yaw -σ, 0, +σ, frontal MPI depth)",
            "images": [rel[0], rel[-1]] if len(rel) > 1 else rel,
        },
    ]
    if preview is not None:
        sections.append(
            {
                "title": "Training images (demo head at known poses)",
                "images": [("first 16", str(preview.relative_to(out)))],
            }
        )
    return write_page(out / "index.html", "fk gmpi train --demo", DEMO_NOTE, sections)


def run_demo(
    out: Path, iterations: int | None = None, resume: bool = False, progress: bool | None = None, say=print
) -> dict[str, Any]:
    """Build the demo data (once), train, and write the plot, signal and page."""
    import json

    from fk_gmpi.media import save_png
    from fk_gmpi.train import Trainer, TrainOptions, loss_plot, train
    from fk_gmpi.train_config import settings_from_raw

    out = Path(out)
    data_root, pkl = prepare_demo(out / "demo_data")
    opts = TrainOptions(
        dataset="FFHQ256",
        data_root=data_root,
        out=out,
        pickle=pkl,
        resume=resume,
        total_iters=iterations,
        batch_size=DEMO_BATCH,
        demo=True,
        progress=progress,
    )
    settings = settings_from_raw(DEMO_CONFIG, "demo config")
    trainer = Trainer(settings, opts)
    start_gap = mean_image_gap(trainer)  # draws from its own generators: training's randomness is untouched
    summary = train(settings, opts, say=say, trainer=trainer)
    signal = {"mean_image_gap_start": start_gap, "mean_image_gap_end": mean_image_gap(trainer)}
    (out / "signal.json").write_text(json.dumps(signal, indent=2) + "\n")
    loss_plot(out / "train_log.jsonl", out / "losses.png")
    preview = None
    imgs = [
        ((trainer.dataset[i][0].permute(1, 2, 0).numpy() + 1) * 127.5)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
        for i in range(min(16, len(trainer.dataset)))
    ]
    if imgs:
        rows = [np.concatenate(imgs[r * 4 : r * 4 + 4], 1) for r in range(len(imgs) // 4)]
        preview = save_png(out / "demo_data_preview.png", np.concatenate(rows, 0))
    demo_page(out, summary, signal, preview)
    return {**summary, **signal, "page": str(out / "index.html")}
