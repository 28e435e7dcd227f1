"""CoRA benchmarks (issue 17): the relightable export's stages and ``fk eyeball train``'s throughput.

    python bench/bench_cora.py [--grid 256] [--uv-size 1024] [--sections export,train,mesh]
                               [--sizes 1024 2048 4096 8192] [--steps 5] [--device cpu|cuda]
                               [--mesh-resolution 256]

Training (``--sections train``): a synthetic subject (12 frames, 64x85) in a temporary folder, the
hybrid model with the synthetic config's network; iterations/s, rays/s and samples/s of
``Trainer.train_step`` per ``renderer.sample_batch_size`` after 3 warm-up steps. CoRA publishes no
training timing either (one RTX 3090 "is enough").

Mesh stage (``--sections mesh``, ``train.mesh_render``): on the same subject, seconds per volume iteration
(the synthetic config's 4096 samples) beside the one-off mesh extraction (``--mesh-resolution``³ marching
cubes, decimation, the visibility clip over 12 frames) and seconds per mesh-stage iteration (one whole frame
rasterised with fk's CPU renderer, materials queried at the covered pixels, shaded, L1 + hair + AlbedoMM
terms; LPIPS joins only when its weights are installed).

Export (``fk eyeball export``, cora.md §10.1) on the synthetic subject's truth avatar (the true head SDF,
read trilinearly from a precomputed grid, so the SDF queries cost little and the geometry is a real head):
head SDF on the ``grid³`` lattice, marching cubes (scikit-image), xatlas unwrap, texel rasterisation +
material bake at ``uv-size²``, the PNG/coord writes. The bake's material queries here are the truth's
(closest points on a 307k-face mesh); the same texels through an untrained ``HybridAvatar.materials``
(the network a checkpoint holds: hash grids + MLPs + an autograd normal) are timed beside it.

Reference: CoRA publishes no export timing (cora.md §14); its unwrap runs Blender 3.1 headless, which is
not installable here, so the table has no upstream column. Timings on a shared 2-core machine are noisy:
the load average is printed with them, and each stage's process CPU time beside its wall time (CPU time
counts both cores' work, so on an idle machine wall time lies between CPU/2 and CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_export(grid: int, uv_size: int) -> None:
    import torch
    from fk.geometry.uv import texel_map
    from fk_eyeball.avatar import AvatarSpec, HybridAvatar
    from fk_eyeball.export_avatar import bake, decimate, encode_maps, marching_cubes, sdf_grid, unwrap
    from fk_eyeball.truth_avatar import TruthAvatar

    print(f"export stages, {grid}^3 lattice, {uv_size}^2 maps (load average before: {_load()})", flush=True)
    truth = TruthAvatar()
    t = time.perf_counter()
    truth.head_sdf(torch.zeros(1, 3))  # builds the truth's SDF grid (not an export cost)
    print(f"  (truth SDF grid built in {time.perf_counter() - t:.1f} s, not counted)", flush=True)
    lo, hi = (np.asarray(b, np.float64) for b in truth.bounds)
    rows = []

    def stage(name: str, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        rows.append((name, time.perf_counter() - t0, time.process_time() - c0))
        print(
            f"  {name:<36} wall {rows[-1][1]:8.2f} s, CPU {rows[-1][2]:8.2f} s   (load {_load()})", flush=True
        )
        return out

    values, step = stage("head SDF on the lattice", lambda: sdf_grid(truth.head_sdf, lo, hi, grid))
    verts, faces = stage("marching cubes + largest component", lambda: marching_cubes(values, lo, step))
    print(f"  -> {len(verts)} vertices, {len(faces)} faces", flush=True)
    verts, faces = stage("quadric decimation (50%, as CoRA)", lambda: decimate(verts, faces, 0.5))
    uvs, uv_faces = stage("xatlas unwrap", lambda: unwrap(verts, faces, uv_size))
    maps = stage("rasterise texels + bake (truth)", lambda: bake(truth, verts, faces, uvs, uv_faces, uv_size))
    stage("encode + write 4 PNGs and coord.npy", lambda: _write(encode_maps(maps), maps))
    print(
        f"  {'total':<36} wall {sum(r[1] for r in rows):8.2f} s, CPU {sum(r[2] for r in rows):8.2f} s",
        flush=True,
    )

    covered = texel_map(uvs, uv_faces, uv_size).covered
    pts = torch.from_numpy(maps["coord"][covered]).float()
    bound = float(np.abs(np.concatenate([lo, hi])).max())
    net = HybridAvatar(AvatarSpec(bound=bound))
    n = min(len(pts), 1 << 18)
    t0, c0 = time.perf_counter(), time.process_time()
    for c in pts[:n].split(1 << 16):
        net.materials(c)
    per, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    print(
        f"  HybridAvatar.materials: {1e6 * per:.2f} us/texel wall ({1e6 * cpu:.2f} CPU) -> "
        f"{per * len(pts):.1f} s for the {len(pts)} covered texels (load {_load()})",
        flush=True,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for c in pts[:n].split(1 << 16):
            net.head_sdf(c)
    per, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    print(
        f"  HybridAvatar.head_sdf: {1e6 * per:.2f} us/point wall ({1e6 * cpu:.2f} CPU) -> "
        f"{per * grid**3:.1f} s for the {grid}^3 lattice (load {_load()})",
        flush=True,
    )


def _synthetic_subject(prefix: str, scale: float) -> tuple[Path, dict, dict]:
    """A fresh synthetic subject (12 frames) in a temporary folder, and its config with the painted eyeball
    landmarks filled in: the folder, the truth and the config dict."""
    import yaml
    from fk_eyeball.synth import write_subject

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    truth = write_subject(tmp / "subject", scale=scale, n_frames=12, uv_size=256)
    cfg = yaml.safe_load((tmp / "subject" / "config.yaml").read_text())
    cfg["data"]["left_eye_ldm"] = truth["painted_landmarks"]["leye"]
    cfg["data"]["right_eye_ldm"] = truth["painted_landmarks"]["reye"]
    return tmp, truth, cfg


def bench_train(
    sizes: list[int], steps: int, warmup: int, device: str, scale: float, threads: list[int]
) -> None:
    """``fk eyeball train`` throughput per ``renderer.sample_batch_size`` (hybrid, the synthetic config)."""
    import torch
    import yaml
    from fk_eyeball.train import Trainer

    tmp, truth, cfg = _synthetic_subject("bench_cora_train_", scale)
    h, w = truth["size"]
    print(f"training, hybrid, synthetic subject 12 frames {w}x{h}, device {device} "
          f"(load average before: {_load()})", flush=True)  # fmt: skip
    header = (f"  {'threads':>7} {'sample_batch_size':>17} {'it/s':>7} {'rays/s':>8} {'samples/s':>10} "
              f"{'rays/it':>8} {'CPU s/it':>8}")  # fmt: skip
    print(header, flush=True)
    for n_threads, size in [(t, s) for t in threads for s in sizes]:
        torch.set_num_threads(n_threads)
        cfg["renderer"]["sample_batch_size"] = size
        path = tmp / f"config_{size}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        trainer = Trainer(path, tmp / f"run_{size}", device=device, log=lambda m: None)
        for _ in range(warmup):
            trainer.train_step()
        rays = samples = 0
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            rec = trainer.train_step()
            rays += rec["num_rays"]
            samples += rec["n_samples"]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  {n_threads:>7} {size:>17} {steps / dt:>7.2f} {rays / dt:>8.0f} {samples / dt:>10.0f} "
              f"{rays / steps:>8.0f} {cpu / steps:>8.2f}   (load {_load()})", flush=True)  # fmt: skip


def bench_mesh_stage(steps: int, device: str, scale: float, threads: list[int], resolution: int) -> None:
    """The mesh stage (``train.mesh_render``): the one-off extraction, then seconds per material-refinement
    iteration (one whole frame rasterised, shaded, L1 + hair + AlbedoMM terms; LPIPS only with its
    weights), and a volume-stage iteration at the synthetic config's 4096 samples beside it."""
    import torch
    import yaml
    from fk_eyeball.train import Trainer

    tmp, truth, cfg = _synthetic_subject("bench_cora_mesh_", scale)
    cfg["train"].update(mesh_render=True, mesh_render_iter=3, mesh_render_resolution=resolution)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    h, w = truth["size"]
    print(f"mesh stage, synthetic subject 12 frames {w}x{h}, {resolution}^3 extraction, device {device} "
          f"(load average before: {_load()})", flush=True)  # fmt: skip
    print(f"  {'threads':>7} {'volume s/it':>11} {'(CPU)':>7} {'extract s':>9} {'(CPU)':>7} {'mesh s/it':>9} "
          f"{'(CPU)':>7} {'pixels/it':>9}", flush=True)  # fmt: skip
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        trainer = Trainer(path, tmp / f"run_{n_threads}", device=device, log=lambda m: None)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def timed(fn, n):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = [fn() for _ in range(n)]
            sync()
            return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n, out

        trainer.train_step()  # warm-up
        vol, vol_cpu, _ = timed(trainer.train_step, 3)  # steps 2-4: volumetric (switch after step 3)
        ext, ext_cpu, _ = timed(trainer._enter_mesh_stage, 1)
        trainer.mesh_step()  # warm-up
        mesh, mesh_cpu, recs = timed(trainer.mesh_step, steps)
        pixels = sum(r["pixels"] for r in recs) / len(recs)
        print(f"  {n_threads:>7} {vol:>11.3f} {vol_cpu:>7.3f} {ext:>9.2f} {ext_cpu:>7.2f} {mesh:>9.3f} "
              f"{mesh_cpu:>7.3f} {pixels:>9.0f}   (load {_load()})", flush=True)  # fmt: skip


def _write(pngs: dict, maps: dict) -> None:
    from fk.io.image import save_image

    tmp = Path(tempfile.mkdtemp(prefix="bench_cora_"))
    for name, img in pngs.items():
        save_image(tmp / f"{name}.png", img)
    np.save(tmp / "coord.npy", maps["coord"].astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=256, help="marching-cubes lattice per axis (CoRA: 256)")
    ap.add_argument("--uv-size", type=int, default=1024, help="map side (CoRA exports 4096)")
    ap.add_argument("--sections", default="export,train,mesh", help="comma-separated: export, train, mesh")
    ap.add_argument("--mesh-resolution", type=int, default=256,
                    help="mesh: train.mesh_render_resolution (CoRA: 256)")  # fmt: skip
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192],
                    help="train: renderer.sample_batch_size values")  # fmt: skip
    ap.add_argument("--steps", type=int, default=5, help="train: timed steps per size (after 3 warm-up)")
    ap.add_argument("--device", default="cpu", help="train: cpu or cuda")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="train: torch CPU thread counts")
    ap.add_argument("--scale", type=float, default=64 / 720, help="train: frame size / 720x960 (64x85)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if "export" in sections:
        bench_export(args.grid, args.uv_size)
    if "train" in sections:
        bench_train(args.sizes, args.steps, 3, args.device, args.scale, args.threads)
    if "mesh" in sections:
        bench_mesh_stage(args.steps, args.device, args.scale, args.threads, args.mesh_resolution)


if __name__ == "__main__":
    main()
