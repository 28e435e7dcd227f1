"""StyleGAN2 synthesis at 256^2 on CPU: fk.nets.stylegan2 beside NVIDIA's stylegan2-ada-pytorch with its
reference ops, on the same weights and the same W+ latent.

    python bench/bench_stylegan2.py --repo PATH [--repeats 5] [--res 256] [--venv /tmp/fk-sg2-ref]

``PATH`` as in bench/conformance_stylegan2.py (a checkout or bare git dir of NVlabs/stylegan2-ada-pytorch;
the side venv is shared with it). NVIDIA's side builds and pickles a random paper256 generator
(z/w 512, channel_base 16384, 4 FP16 resolutions, conv_clamp 256) and times ``G.synthesis(ws,
noise_mode='const', force_fp32=True)`` on 1 and 2 threads; fk loads that pickle and times the same call.
float32 on both sides: their default FP16 blocks take minutes per image on CPU (either implementation).
Medians of ``--repeats`` after one warm-up; the load average is printed (the machine is shared).
"""

from __future__ import annotations

import argparse
import os

# as `fk` does at start-up: idle OpenMP threads sleep instead of spinning on a shared CPU
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys
import tempfile
from pathlib import Path

from _timing import median_time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--venv", default="/tmp/fk-sg2-ref")
    args = ap.parse_args()
    args.seeds = "0"

    import numpy as np
    import torch
    from conformance_stylegan2 import run_reference
    from fk.nets.stylegan2 import load_stylegan2_pickle

    work = Path(tempfile.mkdtemp(prefix="fk-sg2-bench-"))
    ref, meta = run_reference(args, work, bench={"threads": [1, 2], "repeats": args.repeats})
    G = load_stylegan2_pickle(work / "network.pkl")["G_ema"]  # noqa: N806
    ws = torch.from_numpy(ref["ws_0"])
    fk_times = {}
    previous = torch.get_num_threads()
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const", force_fp32=True)
        diff = float(np.abs(img.numpy() - ref["fp32_0"]).max())
        for threads in (1, 2):
            torch.set_num_threads(threads)
            G.synthesis(ws, noise_mode="const", force_fp32=True)
            fk_times[threads] = median_time(
                lambda: G.synthesis(ws, noise_mode="const", force_fp32=True), args.repeats
            )
    torch.set_num_threads(previous)
    load = os.getloadavg()[0]
    print(
        f"StyleGAN2 synthesis {args.res}x{args.res}, batch 1, float32, noise const; median of "
        f"{args.repeats}; load average {load:.1f}; images agree to {diff:.2g}"
    )
    print(f"  {'threads':>7}  {'fk':>9}  {'NVIDIA ref ops':>14}  {'fk / NVIDIA':>11}")
    for threads in (1, 2):
        theirs = meta["timings"][f"fp32_{threads}"]
        print(
            f"  {threads:>7}  {fk_times[threads]:8.3f}s  {theirs:13.3f}s  {fk_times[threads] / theirs:11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
