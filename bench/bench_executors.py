"""Executors side by side, and the engine's own memory at 100k items.

1. Throughput (items/s) of ``recipes/align.yaml`` on 32 photos with serial, process x2,
   dask x2 (LocalCluster) and ray x2 (local Ray): wall time including each executor's start,
   and the rate once started.
2. Peak memory of the engine on a no-op recipe (``export:copy`` of a 1-pixel PNG) at 1k, 10k
   and 100k items, in a fresh process each: the RSS the run added, beside what holding every
   item's record in memory (the engine before records streamed) measures for the same run.

    .venv/bin/python bench/bench_executors.py [--photos 32] [--noop-items 1000,10000,100000]
                                               [--skip-align] [--skip-noop]

On a shared machine the throughput figures are contended (the load average is printed):
compare executors within one run of this script, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int) -> Path:
    from fk.testing import astronaut_path
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    astro = Image.open(astronaut_path()).convert("RGB")
    for i in range(n):  # alternate mirrored copies so that not every item is the same file
        (ImageOps.mirror(astro) if i % 2 else astro).save(folder / f"photo{i:03d}.png")
    return folder


def align_throughput(photos: Path, work: Path) -> list[tuple[str, float, float, int]]:
    from fk.engine.executors import ExecutorSettings, make_executor
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

    rows = []
    n = len(list(photos.iterdir()))
    for name, workers in (("serial", 1), ("process", 2), ("dask", 2), ("ray", 2)):
        plan = load_recipe(ROOT / "recipes" / "align.yaml", [f"inputs.photos={photos}"])
        t0 = time.perf_counter()
        try:
            ex = make_executor(name, ExecutorSettings(workers=workers))
        except Exception as exc:  # noqa: BLE001 - a missing extra is reported, the others still run
            print(f"  {name}: skipped ({exc})")
            continue
        t1 = time.perf_counter()
        try:
            summary = run_plan(plan, RunOptions(work / name, progress=False), executor=ex)
        finally:
            ex.shutdown()
        t2 = time.perf_counter()
        rows.append((f"{name} x{workers}", n / (t2 - t0), n / (t2 - t1), summary.succeeded))
    return rows


NOOP_CHILD = r"""
import json, os, resource, sys, time, tracemalloc
from pathlib import Path
n, work = int(sys.argv[1]), Path(sys.argv[2])
from PIL import Image
src = work / "files"
src.mkdir(parents=True)
for i in range(n):  # hard links to a few 1-pixel PNGs (a file takes at most ~65k links)
    pixel = work / f"pixel{i // 50000}.png"
    if i % 50000 == 0:
        Image.new("RGB", (1, 1), (7, 8, 9)).save(pixel)
    os.link(pixel, src / f"p{i:06d}.png")
recipe = work / "noop.yaml"
recipe.write_text(f"fk: 1\nname: noop\ninputs:\n  files: {{type: files, path: {src}}}\n"
                  "steps:\n  - {id: copy, use: export:copy, in: {file: inputs.files}}\n")
from fk.engine.runner import RunOptions, run_plan
from fk.recipe import load_recipe
plan = load_recipe(recipe)
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
before = rss_kib()
t0 = time.perf_counter()
summary = run_plan(plan, RunOptions(work / "out", progress=False))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
# reference: every record held in memory at once, as the engine did before records streamed
tracemalloc.start()
held = {p.stem: json.loads(p.read_text()) for p in (work / "out" / ".fk" / "items").glob("*.json")}
held_bytes = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(json.dumps({"items": n, "ok": summary.succeeded, "seconds": seconds, "rss_before_kib": before,
                  "peak_kib": peak, "held_records_bytes": held_bytes}))
"""


def noop_memory(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="fk-noop-") as tmp:
        res = subprocess.run([sys.executable, "-c", NOOP_CHILD, str(n), tmp], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=32)
    ap.add_argument("--noop-items", default="1000,10000,100000")
    ap.add_argument("--skip-align", action="store_true")
    ap.add_argument("--skip-noop", action="store_true")
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        "(a shared machine: figures are contended)"
    )
    if not args.skip_align:
        with tempfile.TemporaryDirectory(prefix="fk-bench-exec-") as tmp:
            photos = make_photos(Path(tmp) / "photos", args.photos)
            rows = align_throughput(photos, Path(tmp))
        print(f"\nalign recipe on {args.photos} photos (items/s; higher is better)")
        print(f"  {'executor':<12} {'with start-up':>14} {'once started':>13} {'faces ok':>9}")
        for name, total, started, ok in rows:
            print(f"  {name:<12} {total:>14.2f} {started:>13.2f} {ok:>9d}")
        print(f"  load average after: {os.getloadavg()[0]:.1f}")
    if not args.skip_noop:
        print(
            "\nengine memory on a no-op recipe (export:copy of a 1-pixel PNG), serial, one process per size"
        )
        print(
            f"  {'items':>8} {'s':>8} {'items/s':>8} {'RSS added (MiB)':>16} {'all records held (MiB)':>23}"
        )
        for n in (int(x) for x in args.noop_items.split(",")):
            r = noop_memory(n)
            added = (r["peak_kib"] - r["rss_before_kib"]) / 1024
            print(
                f"  {n:>8} {r['seconds']:>8.1f} {n / r['seconds']:>8.0f} {added:>16.1f} "
                f"{r['held_records_bytes'] / 2**20:>23.1f}",
                flush=True,
            )
        print(
            "  RSS added: peak RSS of the run minus RSS before it (the engine streams records to disk);\n"
            "  all records held: tracemalloc of loading every record at once, the engine's cost before."
        )


if __name__ == "__main__":
    main()
