"""The demo and the batch, timed as a user sees them: whole `fk` processes, start-up and exit included.

Prints, in one run:

* `fk run recipes/demo.yaml`: wall (median of ``--runs``), CPU (user + sys), peak RSS, the time outside
  the run itself (interpreter start-up, imports, exit), the run's time in no stage (the warm-up before
  item one), the stage split from ``manifest.json`` and the fit's landmark error;
* the floor: fresh processes that only import torch, scipy.optimize, fk.render (+ one cached numba call),
  start fk's CLI or load dlib's models (``--skip-floor`` skips them);
* the same recipe on ``--photos`` copies of the astronaut with ``--workers 1`` and ``--workers 2``:
  photos/s, the ratio, CPU and the largest single process's peak RSS;
* the machine's load average before and after, and the issue's "before" figures beside each row
  (issue 18, measured on this 2-core machine before the speed work; quiet machine).

Every figure comes from the operating system's accounting of the finished child (``os.wait4``), so CPU
seconds stay comparable when other jobs share the cores and wall seconds do not.

    python bench/bench_demo.py [--runs 3] [--photos 8] [--batch-runs 1] [--skip-batch] [--skip-demo]
                               [--skip-floor] [--served] [--before 3640cb5]

``--served`` adds a column: the same commands answered by a warm server (``fk serve start
recipes/demo.yaml``, started before and stopped after); the other columns always run in fresh processes
(``FK_NO_SERVER=1``).

``--before REF`` also runs fk's packages at that commit (``git archive`` into the temporary folder, put
first on ``PYTHONPATH``, same venv and libraries), interleaved with the current code, and prints the
ratios pair by pair: the reference measured in the same run.
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


def checkout(ref: str, dest: Path) -> dict[str, str]:
    """fk's packages at git ``ref`` under ``dest``, and the environment that runs them with this venv
    (their ``src`` folders first on ``PYTHONPATH``: same libraries, that commit's fk code)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "packages", "recipes"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    srcs = sorted(str(p) for p in (dest / "packages").glob("*/src"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*srcs, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def adopt_orphans() -> None:
    """Become the reaper of every process our children leave behind (Linux): the pool's workers are
    children of its fork server, which outlives `fk` by a moment; reaping them here is what puts their
    CPU and memory into the figures."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def busy_seconds() -> float:
    """CPU seconds every process on the machine has run so far (Linux /proc/stat; NaN elsewhere)."""
    try:
        fields = open("/proc/stat").readline().split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` to completion: wall (until `fk` exits), user+sys CPU of it and every process it started,
    and peak RSS (MiB, the largest single process)."""
    t0, busy0 = time.perf_counter(), busy_seconds()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
    while True:  # descendants `fk` left behind (the fork server and, through it, the pool's workers)
        try:
            _, _, orphan = os.wait4(-1, 0)
        except ChildProcessError:
            break
        cpu, rss = cpu + orphan.ru_utime + orphan.ru_stime, max(rss, orphan.ru_maxrss)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    # what the rest of the machine ran meanwhile (other users' jobs): cores it took from this run
    others = max(0.0, busy_seconds() - busy0 - cpu) / wall
    return {"wall": wall, "cpu": cpu, "rss": rss / 1024.0, "others": others}


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


def demo_runs(runs: int, out: Path, recipe: Path, env: dict[str, str] | None) -> dict[str, list]:
    cmd = [*fk_command(), "run", str(recipe), "--out", str(out), "--overwrite", "-q"]
    res: dict[str, list] = {"rows": [], "stages": [], "outside": [], "warm": [], "rmse": []}
    for _ in range(runs):
        res["rows"].append(timed(cmd, env))
        manifest = json.loads((out / "manifest.json").read_text())
        res["stages"].append({k: v["seconds"] for k, v in manifest["timings"].items()})
        res["outside"].append(res["rows"][-1]["wall"] - manifest["seconds"])
        # inside the run but in no stage: the engine's warm-up before item one (the steps' imports, models,
        # compiled kernels; the detector's load runs beside it in a helper process) and the run's own files
        res["warm"].append(manifest["seconds"] - sum(v["seconds"] for v in manifest["timings"].values()))
        res["rmse"].append(landmark_rmse(manifest))
    return res


def demo(runs: int, tmp: Path, series: dict[str, tuple[Path, dict[str, str]]]) -> None:
    """``series``: column name -> (recipe, environment) of the `fk` processes to time, interleaved."""
    for name, (recipe, env) in series.items():  # warm-up: numba's cache, the OS file cache, $FK_HOME/cache
        demo_runs(1, tmp / f"demo_{name}", recipe, env)
    res: dict[str, dict[str, list]] = {
        name: {"rows": [], "stages": [], "outside": [], "warm": [], "rmse": []} for name in series}
    for _ in range(runs):  # interleaved, so a change in the machine's load hits every column alike
        for name, (recipe, env) in series.items():
            for key, val in demo_runs(1, tmp / f"demo_{name}", recipe, env).items():
                res[name][key] += val
    b = BEFORE

    def cells(fn) -> str:
        return " | ".join(str(fn(r)) for r in res.values())

    print(f"\n## fk run recipes/demo.yaml, whole process, {runs} runs each (median (min, max)), "
          f"load average {load()}")
    print(f"| figure | {' | '.join(series)} | issue 18 (quiet machine) |\n|---|{'---|' * len(series)}---|")

    def rss(r) -> str:
        return f"{med(r['rows'], 'rss'):.0f}"

    def outside(r) -> str:
        return f"{statistics.median(r['outside']):.2f}"

    def warm(r) -> str:
        return f"{statistics.median(r['warm']):.2f}"

    print(f"| wall s | {cells(lambda r: spread(r['rows'], 'wall'))} | {b['demo_wall']} (5.9 after Adam); "
          "goal <= 2 |")
    cpu = cells(lambda r: spread(r["rows"], "cpu"))
    print(f"| CPU s (user+sys; served: the client process only) | {cpu} | — |")
    print(f"| peak RSS MiB (served: the client) | {cells(rss)} | {b['demo_rss']:.0f} |")
    print(f"| outside the run (start-up, imports, exit) s | {cells(outside)} | exit alone {b['shutdown']} |")
    print(f"| in the run, in no stage (warm-up before item one) s | {cells(warm)} | — |")
    for step in ("detect", "crop", "fit", "export", "page"):
        def stage(r, step=step) -> str:
            return f"{statistics.median(s.get(step, float('nan')) for s in r['stages']):.2f}"
        print(f"| stage {step} s | {cells(stage)} | {b['stages'].get(step, '—')} |")
    rmse = cells(lambda r: r["rmse"][-1])
    print(f"| landmark RMS px (fit.iterations 30) | {rmse} | {b['landmark_rmse']} |")
    names = list(series)
    for other in names[1:]:
        now, alt = res[names[0]]["rows"], res[other]["rows"]
        wall = statistics.median(o["wall"] / n["wall"] for o, n in zip(alt, now, strict=True))
        print(f"\n{other} / {names[0]}, pair by pair: wall {wall:.2f}x")


# What a demo process cannot go below on this machine: each row is a fresh process doing only that.
_RASTER = ("pos = torch.tensor([[[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]]])\n"
           "dr.rasterize(dr.get_context('cpu'), pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (8, 8))")
FLOOR = {
    "python": ("python -c pass", "pass"),
    "numpy": ("import numpy", "import numpy"),
    "torch": ("import torch", "import torch"),
    "scipy": ("import scipy.optimize (the fit's landmark stage)", "import scipy.optimize"),
    "render": ("import torch, fk.render", "import torch, fk.render as dr"),
    "numba": ("the same + one cached rasteriser call (numba's target context, kernels from the cache)",
              "import torch, fk.render as dr\n" + _RASTER),
    "cli": ("fk's CLI start: typer, plugins, the demo recipe planned",
            f"import fk.cli.main as m\nm._mount_extensions()\nfrom fk.recipe import load_recipe\n"
            f"load_recipe({str(RECIPE)!r}, [])"),
    "dlib": ("dlib's HOG detector + 68-point predictor load (the helper process's work)",
             "import dlib\nfrom fk_align.dlib_detect import dlib_model_path, PREDICTOR_68\n"
             "dlib.get_frontal_face_detector()\ndlib.shape_predictor(str(dlib_model_path(PREDICTOR_68)))"),
}


def floor(runs: int) -> None:
    """Fresh processes doing one thing each: the fixed costs under the demo's figure."""
    print(f"\n## Floor: fresh processes doing one thing each, median of {runs}, load average {load()}")
    print("| process | wall s | CPU s |\n|---|---|---|")
    cpu: dict[str, float] = {}
    for key, (name, code) in FLOOR.items():
        rows = [timed([sys.executable, "-c", code]) for _ in range(runs)]
        cpu[key] = med(rows, "cpu")
        print(f"| {name} | {med(rows, 'wall'):.2f} | {cpu[key]:.2f} |")
    fixed = cpu["numba"] + cpu["scipy"] - cpu["numpy"] + cpu["cli"] - cpu["python"]
    print(f"\nfixed cost of one demo process before any photo: start-up, torch, fk.render, numba's context, "
          f"scipy.optimize and fk's CLI ~ {fixed:.2f} CPU s (each library counted once; dlib's "
          f"{cpu['dlib']:.2f} s run beside it in the helper process)")


def batch_runs(n: int, folder: Path, out: Path, recipe: Path, env: dict[str, str]) -> dict[int, dict]:
    res = {}
    for workers in (1, 2):
        cmd = [*fk_command(), "run", str(recipe), "--out", str(out / f"w{workers}"), "--overwrite", "-q",
               "--set", f"inputs.photos={folder}", "--workers", str(workers)]
        res[workers] = timed(cmd, env)
        manifest = json.loads((out / f"w{workers}" / "manifest.json").read_text())
        assert manifest["counts"]["succeeded"] == n, manifest["counts"]
        # CPU inside the item steps (the records' per-step process CPU): what is left of the total is
        # paid per process (start-up, imports, model loads, exit), once per worker
        res[workers]["items_cpu"] = sum(t.get("cpu_seconds", float("nan"))
                                        for t in manifest["timings"].values() if t.get("count", 0) == n)
    return res


def medians(pairs: list[dict[int, dict]]) -> dict[int, dict]:
    """Per worker count, the median of each figure over repeated runs (peak RSS: the largest); the
    speed-up is the median of the pair-by-pair ratios (each pair ran back to back)."""
    out = {w: {k: statistics.median(p[w][k] for p in pairs) for k in ("wall", "cpu", "items_cpu", "others")}
           for w in (1, 2)}
    for w in (1, 2):
        out[w]["rss"] = max(p[w]["rss"] for p in pairs)
    out["ratios"] = [p[1]["wall"] / p[2]["wall"] for p in pairs]
    return out


def batch(n: int, tmp: Path, series: dict[str, tuple[Path, dict[str, str]]], repeats: int = 1) -> None:
    from fk.testing import astronaut_path

    folder = tmp / "photos"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        shutil.copyfile(astronaut_path(), folder / f"astronaut_{i:02d}.png")
    print(f"\nbatch starts: load average {load()}")
    pairs: dict[str, list] = {name: [] for name in series}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits every column alike
        for name, (recipe, env) in series.items():
            pairs[name].append(batch_runs(n, folder, tmp / f"batch_{name}", recipe, env))
    runs = {name: medians(p) for name, p in pairs.items()}
    b = BEFORE

    def cell(fn) -> str:
        return " | ".join(fn(r) for r in runs.values())

    def speed(workers: int):
        return lambda r: f"{n / r[workers]['wall']:.3f}"

    def ratio(r) -> str:
        each = ", ".join(f"{x:.2f}" for x in r["ratios"])
        return f"{statistics.median(r['ratios']):.2f}x" + (f" ({each})" if len(r["ratios"]) > 1 else "")

    def cpu(r) -> str:
        return f"{r[1]['cpu']:.1f} / {r[2]['cpu']:.1f}"

    def rss(r) -> str:
        return f"{r[1]['rss']:.0f} / {r[2]['rss']:.0f}"

    def others(r) -> str:
        return f"{r[1]['others']:.2f} / {r[2]['others']:.2f}"

    def per_item(r) -> str:
        return f"{r[1]['items_cpu'] / n:.2f} / {r[2]['items_cpu'] / n:.2f}"

    def outside(r) -> str:
        if r[1]["cpu"] < r[1]["items_cpu"]:  # served: the run's CPU is not this bench's to count
            return "—"
        return f"{r[1]['cpu'] - r[1]['items_cpu']:.1f} / {r[2]['cpu'] - r[2]['items_cpu']:.1f}"

    print(f"\n## {n} photos (copies of the astronaut), whole process, --workers 1 vs 2, "
          f"median of {repeats} pair(s); load average at the end {load()}")
    print(f"| figure | {' | '.join(series)} | issue 18 |\n|---|{'---|' * len(runs)}---|")
    print(f"| photos/s, --workers 1 | {cell(speed(1))} | {b['w1']} |")
    print(f"| photos/s, --workers 2 | {cell(speed(2))} | {b['w2']} |")
    print(f"| speed-up 1 -> 2 workers | {cell(ratio)} | {b['w2'] / b['w1']:.2f}x (target >= 1.8x) |")
    if "served" in runs:  # the server's forked runs are not this bench's children: no CPU or RSS of theirs
        print("\n(served: CPU and RSS below are the client's only; the run itself is the server's child)")
    print(f"| CPU s (user+sys), 1 / 2 workers | {cell(cpu)} | — |")
    print(f"| cores other processes used meanwhile (of {os.cpu_count()}), 1 / 2 workers | {cell(others)} "
          "| — |")
    print(f"| CPU s per photo inside the steps, 1 / 2 workers | {cell(per_item)} | — |")
    print(f"| CPU s outside the steps (start-up, imports, loads, exit; all processes) | {cell(outside)} "
          "| — |")
    print(f"| largest process's peak RSS MiB, 1 / 2 workers | {cell(rss)} | "
          f"{b['w1_rss']:.0f} / {b['w2_rss']:.0f} (both workers) |")


def start_server(env: dict[str, str]) -> None:
    """`fk serve start recipes/demo.yaml`: the served column's warm process (:func:`stop_server` stops it)."""
    cmd = [*fk_command(), "serve", "start", str(RECIPE)]
    started = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
    if started.returncode:
        raise SystemExit("bench_demo --served: no server started (the error above says why)")


def stop_server(env: dict[str, str]) -> None:
    subprocess.run([*fk_command(), "serve", "stop"], env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="timed demo runs (after one warm-up)")
    ap.add_argument("--photos", type=int, default=8, help="photos in the batch rows")
    ap.add_argument("--batch-runs", type=int, default=1, help="repeats of the 1- and 2-worker batch pair")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-floor", action="store_true", help="skip the fixed-cost rows (fresh processes)")
    ap.add_argument("--before", metavar="GIT_REF", default=None,
                    help="also time fk at this commit (e.g. 3640cb5, before issue 18's demo work)")
    ap.add_argument("--served", action="store_true",
                    help="also time `fk run` answered by a warm server (`fk serve start`, started here)")
    args = ap.parse_args()
    print(f"# bench_demo: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load()} (1, 5, 15 min)")
    # the "now" column is a fresh process every time, even when a server runs (the user's or ours)
    cold = {**os.environ, "FK_NO_SERVER": "1"}
    warm = {k: v for k, v in os.environ.items() if k != "FK_NO_SERVER"}
    with tempfile.TemporaryDirectory(prefix="fk-bench-demo-") as tmp:
        series: dict[str, tuple[Path, dict[str, str]]] = {"now": (RECIPE, cold)}
        if args.served:
            start_server(warm)
            series["served"] = (RECIPE, warm)
        adopt_orphans()  # after the server started: it must not become ours to wait for
        if args.before:
            (Path(tmp) / "before").mkdir()
            series[f"fk at {args.before}, same run"] = (Path(tmp) / "before" / "recipes" / "demo.yaml",
                                                        {**checkout(args.before, Path(tmp) / "before"),
                                                         "FK_NO_SERVER": "1"})
        try:
            if not args.skip_demo:
                demo(args.runs, Path(tmp), series)
            if not args.skip_floor:
                floor(max(3, args.runs))
            if not args.skip_batch:
                batch(args.photos, Path(tmp), series, args.batch_runs)
        finally:
            if args.served:
                stop_server(warm)
    print(f"\nload average at the end: {load()}; on a busy machine wall time is inflated, CPU time less")


if __name__ == "__main__":
    main()
