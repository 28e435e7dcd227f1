"""Photo -> UV texture (`fk.render.uv_projection.project_photo_to_uv`): the compiled kernel beside the numpy
reference (`impl="numpy"`: numpy, scipy's map_coordinates and cKDTree, torch's upsampling), on the demo head
seen at 30° in a 512² photo rendered from a known texture, unwrapped into a 1024² map with the mirrored
fill (the demo export's settings).

Prints, with the load average: CPU (process time) and wall medians of warm calls per impl, the first call
in a fresh process (imports done; the layout cache and numba's kernel cache loaded by that call), and how
far the compiled texture, source codes and confidence are from the reference's.

    python bench/bench_uv_projection.py [--repeats 5] [--uv-size 1024] [--skip-fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SCENE = """
import numpy as np, torch
from fk.geometry.rotations import euler_to_matrix
from fk.models.demo import demo_head_arrays
from fk.render.mesh import render_mesh

def scene(size=512):
    a = demo_head_arrays()
    canon = np.asarray(a["mean_shape"]).reshape(-1, 3)
    world = canon @ euler_to_matrix(np.array([0.0, np.deg2rad(30.0), 0.0]), "xyz").T
    cam = np.stack([world[:, 0], -world[:, 1], 10.0 - world[:, 2]], 1)
    K = np.array([[1700.0, 0, size / 2 - 0.5], [0, 1700.0, size / 2 - 0.5], [0, 0, 1]])
    c = (np.arange(256) + 0.5) / 256
    u, v = np.meshgrid(c, 1 - c)
    tex = np.stack([0.5 + 0.4 * np.sin(14 * abs(u - 0.5) + 3 * v), 0.5 + 0.4 * np.cos(9 * v),
                    0.5 + 0.3 * np.sin(20 * u * v)], -1)
    with torch.no_grad():
        out = render_mesh(torch.as_tensor(cam, dtype=torch.float32)[None], a["triangles"],
                          torch.as_tensor(K, dtype=torch.float32), (size, size),
                          uvs=torch.tensor(np.array(a["uvs"])), uv_faces=a["uv_faces"],
                          texture=np.clip(np.rint(tex * 255), 0, 255).astype(np.uint8), backend="cpu")
    photo = np.where(out.mask[0, ..., None].numpy(), out.rgb[0].numpy(), 0.3)
    photo = np.clip(np.rint(photo * 255), 0, 255).astype(np.uint8)
    return (photo, cam, a["triangles"], a["uvs"], a["uv_faces"], K), canon
"""

FRESH = SCENE + """
import json, sys, time
from fk.render.uv_projection import project_photo_to_uv
args, canon = scene()
t0, w0 = time.process_time(), time.perf_counter()
project_photo_to_uv(*args, int(sys.argv[1]), symmetry_vertices=canon, backend="cpu", impl=sys.argv[2])
print(json.dumps({"cpu": time.process_time() - t0, "wall": time.perf_counter() - w0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--uv-size", type=int, default=1024)
    parser.add_argument("--skip-fresh", action="store_true")
    opts = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    namespace: dict = {}
    exec(SCENE, namespace)  # noqa: S102 - the scene is this file's own code, shared with the fresh process
    from fk.render.uv_projection import project_photo_to_uv

    args, canon = namespace["scene"]()
    results, times = {}, {}
    for impl in ("numpy", "compiled"):
        results[impl] = project_photo_to_uv(*args, opts.uv_size, symmetry_vertices=canon, backend="cpu",
                                            impl=impl)  # warm: layout map, kernel cache
        cpu, wall = [], []
        for _ in range(opts.repeats):
            t0, w0 = time.process_time(), time.perf_counter()
            project_photo_to_uv(*args, opts.uv_size, symmetry_vertices=canon, backend="cpu", impl=impl)
            cpu.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
        times[impl] = (statistics.median(cpu), statistics.median(wall))
    fresh = {}
    if not opts.skip_fresh:
        for impl in ("numpy", "compiled"):
            runs = []
            for _ in range(3):
                done = subprocess.run([sys.executable, "-c", FRESH, str(opts.uv_size), impl], check=True,
                                      capture_output=True, text=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            fresh[impl] = tuple(statistics.median(r[k] for r in runs) for k in ("cpu", "wall"))
    ref, got = results["numpy"], results["compiled"]
    diff = np.abs(got.texture.astype(np.int16) - ref.texture.astype(np.int16))
    print(f"\nproject_photo_to_uv, {opts.uv_size}² map from a 512² photo, median of {opts.repeats} warm calls"
          " (CPU s / wall s):\n")
    print("| | numpy (reference) | compiled | ratio (CPU) |")
    print("|---|---|---|---|")
    n, c = times["numpy"], times["compiled"]
    print(f"| warm call | {n[0]:.3f} / {n[1]:.3f} | {c[0]:.3f} / {c[1]:.3f} | {n[0] / c[0]:.1f}x |")
    if fresh:
        n, c = fresh["numpy"], fresh["compiled"]
        print(f"| first call in a fresh process (median of 3) | {n[0]:.3f} / {n[1]:.3f} "
              f"| {c[0]:.3f} / {c[1]:.3f} | {n[0] / c[0]:.1f}x |")
    print(f"\ntexture: max |compiled - numpy| {int(diff.max())} level(s), {int((diff > 0).sum())} of "
          f"{diff.size} values differ; source codes equal: {np.array_equal(got.source, ref.source)}; "
          f"confidence max difference {float(np.abs(got.confidence - ref.confidence).max()):.2g}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
