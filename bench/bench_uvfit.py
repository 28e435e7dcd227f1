"""uvfit on this CPU: per-photo time by stage of the embedded path (`recipes/uvfit.yaml` on the astronaut).

    python bench/bench_uvfit.py [--repeats 2] [--uv-size 1024]

Prints each step's wall time from the run manifest (detect, crop, fit, uvfit export) and the export's
own split (projection, meshes, eyeballs, GLB, views) from ``uvfit.json``, medians over ``--repeats``
runs, beside the goal of the issue (<= 30 s per photo on the 2-core reference CPU). Upstream publishes
no per-image time (ffhquv.md §7: "not found"); its fit is CUDA-only. The load average is printed: on a
shared machine run it when ``uptime`` shows a load near 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

GOAL_S = 30.0


def one_run(uv_size: int) -> dict[str, float]:
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "uvfit.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["FK_HOME"] = str(home)  # the embedded path: no gated file
        plan = load_recipe(recipe, [f"uvfit.uv_size={uv_size}", "renderer=cpu"])
        t0 = time.perf_counter()
        summary = run_plan(plan, RunOptions(Path(tmp) / "out", progress=False))
        total = time.perf_counter() - t0
        assert summary.succeeded == 1, summary.failures
        manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text())
        info = json.loads((Path(tmp) / "out" / "astronaut_00" / "uvfit.json").read_text())
    out = {f"step {k}": v["seconds"] for k, v in manifest["timings"].items()}
    out.update({f"  uvfit: {k}": v for k, v in info["seconds"].items() if not k.startswith("fit_")})
    out.update({f"  fit: {k[4:]}": v for k, v in info["seconds"].items() if k.startswith("fit_")})
    out["total (engine, 1 photo)"] = total
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--uv-size", type=int, default=1024)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}  (cores: {os.cpu_count()})")
    one_run(args.uv_size)  # warm-up: imports, numba compilation, dlib models
    runs = [one_run(args.uv_size) for _ in range(args.repeats)]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(
        f"{f'embedded uvfit, astronaut, uv {args.uv_size}²':<44}{'fk (s, median)':>16}{'reference':>26}"
    )
    for key in runs[0]:
        value = statistics.median(r[key] for r in runs)
        ref = f"goal <= {GOAL_S:.0f} s / photo" if key.startswith("total") else ""
        print(f"{key:<44}{value:>16.2f}{ref:>26}")


if __name__ == "__main__":
    main()
