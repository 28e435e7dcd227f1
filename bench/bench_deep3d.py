"""Deep3D on this CPU: R-Net inference, fitting per image (BFM-size mesh and the demo head),
and the renderer's share of the fitting time.

    python bench/bench_deep3d.py [--repeats 3] [--iterations 30] [--threads 1 2] [--contend]

Each figure is given per torch thread count (``fit:deep3d``'s ``threads`` parameter). On a
shared machine run it when ``uptime`` shows a load near 0: with another process busy on the
cores, 2 threads collapse (OpenMP workers spin-wait on each other) and R-Net takes seconds;
``--contend`` reproduces that on purpose with one competing torch process (matmuls, all cores).

Reference column: the figures Deep3D's own setup gets are GPU-only (nvdiffrast has no CPU
path), so the side-by-side reference here is the per-step rasterisation cost from
/work/shared/notes/performance.md (71k triangles at 224²: llvmpipe 18 ms, numba z-buffer 4.2 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from _timing import median_time


def bfm_sized_model():
    """A FaceModel with BFM09's sizes (35,721 vertices, 70,688 triangles, 80/64/80): a curved grid."""
    from fk.models import FaceModel

    n = 189
    x, y = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-1.0, 0.8, n))
    z = 0.5 - 0.5 * x**2 - 0.2 * (y + 0.1) ** 2
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    rng = np.random.default_rng(0)
    nv = len(verts)
    return FaceModel(name="bfm-sized", mean_shape=verts - verts.mean(0),
                     id_base=rng.normal(0, 2e-3, (3 * nv, 80)), exp_base=rng.normal(0, 2e-3, (3 * nv, 64)),
                     mean_albedo=np.tile([0.8, 0.6, 0.5], nv), albedo_base=rng.normal(0, 0.01, (3 * nv, 80)),
                     triangles=tris, keypoints=rng.choice(nv, 68, replace=False), skin_mask=np.ones(nv, bool))



def bench_rnet(repeats: int, threads: int) -> float:
    from fk_deep3d.fit import torch_threads
    from fk.nets.reconnet import ReconNet

    net = ReconNet().eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad(), torch_threads(threads):
        net(x)
        return median_time(lambda: net(x), max(5, repeats))


def bench_fit(model, iterations: int, repeats: int, threads: int) -> dict[str, float]:
    from fk_deep3d.fit import Fitter, torch_threads

    fitter = Fitter(model, iterations=iterations, renderer="cpu", threads=threads)
    truth = model.join_coeffs({"angle": torch.tensor([[0.1, 0.3, 0.0]]), "trans": torch.tensor([[0.0, 0.0, 0.1]])})
    with torch.no_grad():
        out = model(truth)
        photo = (fitter.render(out).rgb[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    lm = out["landmarks_2d"][0].numpy()
    fitter.fit(photo, lm)  # warm-up (numba compile, allocator)
    runs = [fitter.fit(photo, lm) for _ in range(repeats)]
    total = statistics.median(sum(v for k, v in r.seconds.items() if k != "render") for r in runs)
    photometric = statistics.median(r.seconds["photometric"] for r in runs)
    # The renderer's own cost per step, forward and backward, on the same mesh.
    # The model's own forward is left out: only rasterise, interpolate and their backward.
    def render_step():
        verts = out["vertices_world"].detach().requires_grad_(True)
        cols = out["colors"].detach().requires_grad_(True)
        r = fitter.render({"vertices_world": verts, "colors": cols})
        r.rgb.sum().backward()

    with torch_threads(threads):
        render_step()
        render = median_time(render_step, max(3, repeats))
    return {"total": total, "photometric": photometric, "render_step": render,
            "render_share": render * iterations / max(photometric, 1e-9), "rmse": runs[-1].landmark_rmse}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to compare")
    ap.add_argument("--contend", action="store_true", help="run beside a busy competing torch process")
    args = ap.parse_args()
    import subprocess
    import sys

    rival = None
    if args.contend:
        busy = "import torch\na = torch.rand(600, 600)\nwhile True:\n    a @ a"
        rival = subprocess.Popen([sys.executable, "-c", busy])
        time.sleep(2.0)
    try:
        report(args)
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def report(args) -> None:
    import os

    import fk.models

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)"
          + (", beside a competing process" if args.contend else ""))
    for threads in args.threads:
        print(f"R-Net (ResNet-50) inference, 1×224², {threads} thread(s): "
              f"{bench_rnet(args.repeats, threads) * 1000:.0f} ms per image")
    print()
    print(f"{'model':<12}{'verts':>8}{'tris':>8}{'thr':>5}{'iters':>7}{'fit s':>8}{'photo s':>9}"
          f"{'render/step ms':>16}{'render share':>14}{'lm rmse px':>12}")
    for model in (fk.models.load_face_model("demo"), bfm_sized_model()):
        for threads in args.threads:
            r = bench_fit(model, args.iterations, args.repeats, threads)
            print(f"{model.name:<12}{model.n_vertices:>8}{len(model.triangles):>8}{threads:>5}{args.iterations:>7}"
                  f"{r['total']:>8.2f}{r['photometric']:>9.2f}{r['render_step'] * 1000:>16.0f}"
                  f"{r['render_share'] * 100:>13.0f}%{r['rmse']:>12.2f}")
    print("\nreference: a ResNet-50 forward at 224² is ~4 GFLOP, 0.1-0.3 s expected on a 2-core CPU; "
          "rasterisation (performance.md, 71k triangles at 224², one view): llvmpipe 18 ms, "
          "numba z-buffer 4.2 ms, torch barycentric gather+interp 42 ms, its backward 8.5 ms")


if __name__ == "__main__":
    main()
