"""Conformance of fk.metrics.ssim with kornia's ``kornia.metrics.ssim`` (CoRA's validation SSIM, window 3).

    python bench/conformance_ssim.py [--venv /tmp/fk-kornia-venv]

Creates (once) a throw-away venv with torch 2.13.0 (CPU) and kornia, runs kornia's own function there on
random image pairs (float64; window sizes 3, 5, 7 and 11; sizes down to 5 px) and compares the per-pixel
maps with fk's. kornia is never imported by fk or its tests. Expected: equal to rounding (max |diff| < 1e-12).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from _sidevenv import side_venv

REFERENCE = textwrap.dedent("""
    import sys
    import numpy as np, torch, kornia
    d = np.load(sys.argv[1])
    out = {}
    for key in sorted(k for k in d.files if k.startswith("a_")):
        name = key[2:]
        a, b = torch.from_numpy(d["a_" + name]), torch.from_numpy(d["b_" + name])
        out[name] = kornia.metrics.ssim(a, b, window_size=int(d["w_" + name])).numpy()
    np.savez(sys.argv[2], kornia_version=np.array(kornia.__version__), **out)
""")


def main() -> None:
    import torch
    from fk.metrics.ssim import ssim_map

    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", type=Path, default=Path("/tmp/fk-kornia-venv"))
    a = ap.parse_args()
    py = side_venv(a.venv, ["torch==2.13.0", "kornia", "numpy"])
    rng = np.random.default_rng(0)
    cases = {"w3": (3, (2, 3, 40, 31)), "w5": (5, (1, 3, 17, 23)), "w7": (7, (1, 1, 20, 20)),
             "w11": (11, (1, 3, 64, 48)), "w3_tiny": (3, (1, 3, 5, 6))}  # fmt: skip
    data = {}
    for name, (w, shape) in cases.items():
        img = rng.random(shape)
        data[f"a_{name}"] = img
        data[f"b_{name}"] = np.clip(img + 0.2 * rng.normal(size=shape), 0, 1)
        data[f"w_{name}"] = np.array(w)
    work = a.venv / "work"
    work.mkdir(exist_ok=True)
    np.savez(work / "in.npz", **data)
    (work / "reference.py").write_text(REFERENCE)
    args = [str(work / name) for name in ("reference.py", "in.npz", "out.npz")]
    subprocess.run([str(py), *args], check=True)
    ref = np.load(work / "out.npz")
    print(f"kornia {ref['kornia_version']} vs fk.metrics.ssim (float64, per-pixel maps)")
    worst = 0.0
    for name, (w, shape) in cases.items():
        ours = ssim_map(torch.from_numpy(data[f"a_{name}"]), torch.from_numpy(data[f"b_{name}"]), w).numpy()
        diff = float(np.abs(ours - ref[name]).max())
        worst = max(worst, diff)
        means = f"mean SSIM {ours.mean():.6f} vs {ref[name].mean():.6f}"
        print(f"  window {w:>2}, {shape}: max |diff| {diff:.2e}, {means}")
    print("PASS" if worst < 1e-12 else "FAIL", f"(worst {worst:.2e})")
    sys.exit(0 if worst < 1e-12 else 1)


if __name__ == "__main__":
    main()
