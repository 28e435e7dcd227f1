"""MTCNN per 1024^2 photo on 1 and 2 threads: fk's detect:mtcnn (torch) beside the mtcnn package
(TensorFlow, in the side venv of bench/conformance_mtcnn.py).

    python bench/bench_mtcnn.py [--repeats 5] [--venv /tmp/fk-mtcnn-ref] [--no-reference]

Photo: scikit-image's astronaut upscaled (bicubic) to 1024^2. Figures are medians of ``--repeats``
full detections (pyramid, three nets, NMS), after one warm-up; the load average is printed because
the machine is shared (compare ratios, and rerun on an idle machine for absolute figures).
facenet-pytorch's MTCNN is not measured: it needs torchvision, which fk's environment excludes.
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--venv", default="/tmp/fk-mtcnn-ref")
    ap.add_argument("--no-reference", action="store_true", help="skip the TensorFlow package")
    args = ap.parse_args()

    import numpy as np
    import torch
    from fk.testing import astronaut_path
    from fk_align.mtcnn_detect import detect_mtcnn
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="fk-mtcnn-bench-"))
    photo = Image.open(astronaut_path()).convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    photo.save(work / "photo1024.png")
    rgb = np.asarray(photo)

    fk_times = {}
    previous = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        detect_mtcnn(rgb)
        fk_times[threads] = median_time(lambda: detect_mtcnn(rgb), args.repeats)
    torch.set_num_threads(previous)

    ref_times: dict[int, float] = {}
    if not args.no_reference:
        from conformance_mtcnn import ensure_venv, run_reference

        python = ensure_venv(Path(args.venv))
        os.environ["FK_BENCH_REPEATS"] = str(args.repeats)
        for threads in (1, 2):
            _, meta = run_reference(python, work, ["photo1024"], threads=threads)
            ref_times[threads] = meta["timings"]["photo1024"]

    load = os.getloadavg()[0]
    print(
        f"MTCNN, one 1024x1024 photo (astronaut upscaled), median of {args.repeats}; load average {load:.1f}"
    )
    print(f"  {'threads':>7}  {'fk (torch)':>11}  {'mtcnn (TF)':>11}  {'fk / mtcnn':>10}")
    for threads in (1, 2):
        ref = ref_times.get(threads)
        ratio = f"{fk_times[threads] / ref:10.2f}" if ref else f"{'-':>10}"
        ref_s = f"{ref:10.3f}s" if ref else f"{'-':>11}"
        print(f"  {threads:>7}  {fk_times[threads]:10.3f}s  {ref_s}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
