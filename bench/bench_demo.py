"""The demo and the batch, timed as a user sees them: whole `fk` processes, start-up and exit included.

Prints, in one run:

* `fk run recipes/demo.yaml`: wall (median of ``--runs``), CPU (user + sys), peak RSS, the time outside
  the run itself (interpreter start-up, imports, exit), the stage split from ``manifest.json`` and the
  fit's landmark error;
* the same recipe on ``--photos`` copies of the astronaut with ``--workers 1`` and ``--workers 2``:
  photos/s, the ratio, CPU and the largest single process's peak RSS;
* the machine's load average before and after, and the issue's "before" figures beside each row
  (issue 18, measured on this 2-core machine before the speed work; quiet machine).

Every figure comes from the operating system's accounting of the finished child (``os.wait4``), so CPU
seconds stay comparable when other jobs share the cores and wall seconds do not.

    python bench/bench_demo.py [--runs 3] [--photos 8] [--skip-batch] [--skip-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "demo.yaml"

# issue 18's table (quiet 2-core machine, before this work)
BEFORE = {
    "demo_wall": 7.5,  # s, whole process (5.9 s once the fit's Adam stopped importing torch._dynamo)
    "demo_rss": 619.0,  # MiB
    "stages": {"detect": 1.04, "crop": 0.05, "fit": 4.49, "export": 0.86},
    "shutdown": "0.8-1.0",
    "w1": 0.43, "w2": 0.66,  # photos/s on 8 photos
    "w1_rss": 758.0, "w2_rss": 1536.0,  # MiB (w2: both workers together)
    "landmark_rmse": 3.16,  # px, measured on main before this work (fit.iterations 30)
}


def fk_command() -> list[str]:
    exe = Path(sys.executable).with_name("fk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fk.cli.main"]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` to completion: wall, user+sys CPU and peak RSS (MiB, the largest single process)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024.0}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def spread(rows: list[dict[str, float]], key: str) -> str:
    vals = [r[key] for r in rows]
    return f"{statistics.median(vals):.2f} (min {min(vals):.2f}, max {max(vals):.2f})"


def landmark_rmse(manifest: dict) -> float | None:
    for item in manifest.get("items", {}).values():
        for msg in item.get("messages", []):
            m = re.search(r"landmark RMS ([0-9.]+) px", msg)
            if m:
                return float(m.group(1))
    return None


def demo(runs: int, tmp: Path) -> None:
    out = tmp / "demo"
    cmd = [*fk_command(), "run", str(RECIPE), "--out", str(out), "--overwrite", "-q"]
    timed(cmd)  # warm-up: numba's kernel cache, the OS file cache, $FK_HOME/cache/builtin
    rows, stages, outside = [], [], []
    for _ in range(runs):
        rows.append(timed(cmd))
        manifest = json.loads((out / "manifest.json").read_text())
        stages.append({k: v["seconds"] for k, v in manifest["timings"].items()})
        outside.append(rows[-1]["wall"] - manifest["seconds"])
    rmse = landmark_rmse(manifest)
    b = BEFORE
    print(f"\n## fk run recipes/demo.yaml, whole process, {runs} runs (median (min, max))")
    print("| figure | now | before (issue 18, quiet machine) |\n|---|---|---|")
    print(f"| wall s | {spread(rows, 'wall')} | {b['demo_wall']} (5.9 after the Adam change) |")
    print(f"| CPU s (user+sys) | {spread(rows, 'cpu')} | — |")
    print(f"| peak RSS MiB | {med(rows, 'rss'):.0f} | {b['demo_rss']:.0f} |")
    print(f"| outside the run (start-up, imports, exit) s | {statistics.median(outside):.2f} | "
          f"shutdown alone {b['shutdown']} |")
    for step in ("detect", "crop", "fit", "export", "page"):
        vals = [s.get(step, float("nan")) for s in stages]
        print(f"| stage {step} s | {statistics.median(vals):.2f} | {b['stages'].get(step, '—')} |")
    print(f"| landmark RMS px (fit.iterations 30) | {rmse} | {b['landmark_rmse']} |")


def batch(n: int, tmp: Path) -> None:
    from fk.testing import astronaut_path

    folder = tmp / "photos"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        shutil.copyfile(astronaut_path(), folder / f"astronaut_{i:02d}.png")
    res = {}
    for workers in (1, 2):
        out = tmp / f"batch{workers}"
        cmd = [*fk_command(), "run", str(RECIPE), "--out", str(out), "--overwrite", "-q",
               "--set", f"inputs.photos={folder}", "--workers", str(workers)]
        res[workers] = timed(cmd)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["succeeded"] == n, manifest["counts"]
    w1, w2 = n / res[1]["wall"], n / res[2]["wall"]
    b = BEFORE
    print(f"\n## {n} photos (copies of the astronaut), whole process, --workers 1 vs 2")
    print("| figure | now | before (issue 18) |\n|---|---|---|")
    print(f"| photos/s, --workers 1 | {w1:.3f} | {b['w1']} |")
    print(f"| photos/s, --workers 2 | {w2:.3f} | {b['w2']} |")
    print(f"| speed-up 1 -> 2 workers | {w2 / w1:.2f}x | {b['w2'] / b['w1']:.2f}x (target >= 1.8x) |")
    print(f"| CPU s (user+sys), 1 / 2 workers | {res[1]['cpu']:.1f} / {res[2]['cpu']:.1f} | — |")
    print(f"| largest process's peak RSS MiB, 1 / 2 workers | {res[1]['rss']:.0f} / {res[2]['rss']:.0f} | "
          f"{b['w1_rss']:.0f} / {b['w2_rss']:.0f} (both workers) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="timed demo runs (after one warm-up)")
    ap.add_argument("--photos", type=int, default=8, help="photos in the batch rows")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    print(f"# bench_demo: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load()} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="fk-bench-demo-") as tmp:
        if not args.skip_demo:
            demo(args.runs, Path(tmp))
        if not args.skip_batch:
            batch(args.photos, Path(tmp))
    print(f"\nload average at the end: {load()}; on a busy machine wall time is inflated, CPU time less")


if __name__ == "__main__":
    main()
