"""Benchmark fk.render's CPU backend against Mesa llvmpipe doing the same work, in the same run.

Work: rasterise a ~71k-triangle closed face-like mesh (a deformed lat-long sphere) with a depth
test and interpolate 3 colour channels, at 224^2, 512^2 and 1024^2, batch 1 and 8. The reference
is moderngl (EGL, llvmpipe): upload clip-space positions + colours, draw with the depth test into
a float32 RGBA framebuffer and read it back. Also fk's forward+backward time (gradients to
positions and colours), fk's ``antialias`` forward+backward on the rendered images beside
fk's rasterize+interpolate of the same size and batch (llvmpipe has no counterpart), and the
first-call time of the compiled kernels in a fresh process, with and without numba's cache.
Medians of several runs; the load average is printed beside each table (the machine may be
shared). Run bench/setup_render_bench.sh first for llvmpipe.

    .venv/bin/python bench/bench_render.py [--quick] [--sizes 224,512] [--threads 1] [--stat min]
        [--runs N] [--antialias-only] [--no-compile-times]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import fk.render as dr
import numpy as np
import torch


def face_like_mesh(rings: int = 120, segments: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Closed lat-long sphere (2 poles), squashed and bumped like a head: 2 * segments * (rings - 1) triangles."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    x, y, z = np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)
    nose = 0.25 * np.exp(-((x / 0.15) ** 2 + (y / 0.3) ** 2)) * (z > 0)
    verts = np.stack([0.8 * x, 1.1 * y, 0.9 * z + nose], -1).reshape(-1, 3)
    verts = np.concatenate([verts, [[0, 1.1, 0], [0, -1.1, 0]]])
    top, bottom = len(verts) - 2, len(verts) - 1
    idx = np.arange((rings - 1) * segments).reshape(rings - 1, segments)
    nxt = np.roll(idx, -1, axis=1)
    quads_a = np.stack([idx[:-1], nxt[:-1], idx[1:]], -1).reshape(-1, 3)
    quads_b = np.stack([nxt[:-1], nxt[1:], idx[1:]], -1).reshape(-1, 3)
    cap_top = np.stack([np.full(segments, top), nxt[0], idx[0]], -1)
    cap_bottom = np.stack([np.full(segments, bottom), idx[-1], nxt[-1]], -1)
    faces = np.concatenate([quads_a, quads_b, cap_top, cap_bottom]).astype(np.int32)
    return verts.astype(np.float32), faces


def clip_positions(verts: np.ndarray, batch: int) -> np.ndarray:
    """Batch of slightly rotated views, perspective camera at distance 4 looking at the head (w = depth)."""
    out = []
    for b in range(batch):
        a = 0.05 * b
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
        v = verts @ rot.T
        depth = 4.0 - v[:, 2]
        focal = 2.6
        near, far = 1.0, 10.0
        zc = (far + near) / (far - near) * depth - 2 * far * near / (far - near)
        out.append(np.stack([focal * v[:, 0], focal * v[:, 1], zc, depth], -1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


STAT = "median"


class Timing(float):
    """Wall milliseconds (the float) with the process's CPU milliseconds (all threads) as ``.cpu``, and
    the smallest wall time of the runs as ``.min``."""

    cpu: float
    min: float

    def __new__(cls, wall: float, cpu: float, fastest: float = float("nan")) -> Timing:
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        obj.min = fastest
        return obj

    def __str__(self) -> str:
        return f"{float(self):.1f} ms (CPU {self.cpu:.1f})"


def median_ms(fn, runs: int) -> Timing:
    """Wall and CPU time of ``fn`` (median or min of ``runs``). CPU time counts every thread of this
    process (numba's, torch's, llvmpipe's): on a shared machine it is inflated far less than wall time."""
    fn()  # warm-up (and numba compile on the very first call)
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    pick = min if STAT == "min" else statistics.median
    return Timing(1000 * pick(walls), 1000 * pick(cpus), 1000 * min(walls))


def fk_forward(ctx, pos, tri, colors, res):
    def run():
        with torch.no_grad():
            rast, _ = dr.rasterize(ctx, pos, tri, (res, res), grad_db=False)
            out, _ = dr.interpolate(colors, rast, tri)
        return out
    return run


def fk_forward_backward(ctx, pos, tri, colors, res):
    def run():
        p = pos.detach().requires_grad_(True)
        c = colors.detach().requires_grad_(True)
        rast, _ = dr.rasterize(ctx, p, tri, (res, res), grad_db=False)
        out, _ = dr.interpolate(c, rast, tri)
        out.sum().backward()
    return run


def fk_antialias(ctx, pos, tri, colors, res):
    """antialias alone (topology hash built once, as a fitting loop would) on rendered images, forward + backward."""
    with torch.no_grad():
        rast, _ = dr.rasterize(ctx, pos, tri, (res, res))
        image, _ = dr.interpolate(colors, rast, tri)
    topology = dr.antialias_construct_topology_hash(tri)

    def run():
        p = pos.detach().requires_grad_(True)
        c = image.detach().requires_grad_(True)
        dr.antialias(c, rast, p, tri, topology_hash=topology).sum().backward()
    return run


def llvmpipe_runner(pos: np.ndarray, faces: np.ndarray, colors: np.ndarray, res: int):
    import moderngl

    gl = moderngl.create_standalone_context(backend="egl")
    prog = gl.program(
        vertex_shader="""#version 330
        in vec4 in_pos; in vec3 in_col; out vec3 col;
        void main() { gl_Position = in_pos; col = in_col; }""",
        fragment_shader="""#version 330
        in vec3 col; out vec4 frag;
        void main() { frag = vec4(col, 1.0); }""")
    vbo_pos = gl.buffer(reserve=pos[0].nbytes)
    vbo_col = gl.buffer(colors.astype(np.float32).tobytes())
    ibo = gl.buffer(faces.astype(np.int32).tobytes())
    vao = gl.vertex_array(prog, [(vbo_pos, "4f", "in_pos"), (vbo_col, "3f", "in_col")], ibo, index_element_size=4)
    fbo = gl.framebuffer(color_attachments=[gl.texture((res, res), 4, dtype="f4")],
                         depth_attachment=gl.depth_renderbuffer((res, res)))
    gl.enable(moderngl.DEPTH_TEST)

    def run():
        images = []
        for b in range(pos.shape[0]):
            vbo_pos.write(pos[b].tobytes())
            fbo.use()
            fbo.clear(0, 0, 0, 0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            images.append(np.frombuffer(fbo.read(components=4, dtype="f4"), np.float32))
        return images

    return run, gl.info["GL_RENDERER"]


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


FIRST_CALL = """
import time, torch
t0 = time.perf_counter()
import fk.render as dr
pos = torch.tensor([[[-0.9, -0.8, 0.1, 1.1], [0.9, -0.7, 0.4, 1.2], [-0.2, 0.8, 0.2, 1.5]]], requires_grad=True)
tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
rast, _ = dr.rasterize(dr.get_context("cpu"), pos, tri, (64, 64))
col, _ = dr.interpolate(torch.rand(3, 3, requires_grad=True), rast, tri)
col.sum().backward(retain_graph=True)
t1 = time.perf_counter()
dr.antialias(col, rast, pos, tri).sum().backward()
print(t1 - t0, time.perf_counter() - t1)
"""


def first_call_seconds(cache_dir: str) -> tuple[float, float]:
    """Seconds to import fk.render and run the first rasterize + interpolate forward + backward, then the
    first antialias forward + backward, in a fresh process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True)
    raster, aa = out.stdout.strip().splitlines()[-1].split()
    return float(raster), float(aa)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--sizes", default="224,512,1024", help="comma-separated image sizes")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="min filters out other processes' load on a shared machine")
    parser.add_argument("--no-compile-times", action="store_true",
                        help="skip the fresh-process first-call timing")
    parser.add_argument("--runs", type=int, default=0, help="timed runs per figure (0: 7, or 3 when large)")
    parser.add_argument("--antialias-only", action="store_true",
                        help="only the antialias table (no llvmpipe, no forward+backward)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for fk (numba, torch) and llvmpipe (LP_NUM_THREADS); 0: the defaults")
    args = parser.parse_args()
    if args.threads > 0:
        import numba

        os.environ["LP_NUM_THREADS"] = str(args.threads)  # read when Mesa's driver loads, below
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    global STAT
    STAT = args.stat
    verts, faces = face_like_mesh()
    colors_np = (verts - verts.min(0)) / (verts.max(0) - verts.min(0))
    tri = torch.from_numpy(faces)
    colors = torch.from_numpy(colors_np.astype(np.float32))
    ctx = dr.get_context("cpu")
    print(f"mesh: {len(verts)} vertices, {len(faces)} triangles; torch threads {torch.get_num_threads()}")
    renderer_name = None
    rows = []
    def runs_for(res: int, batch: int) -> int:
        return args.runs or (3 if args.quick or res * res * batch > 2e6 else 7)

    for res in (int(x) for x in args.sizes.split(",")) if not args.antialias_only else ():
        for batch in (1, 8):
            runs = runs_for(res, batch)
            pos_np = clip_positions(verts, batch)
            pos = torch.from_numpy(pos_np)
            fwd = median_ms(fk_forward(ctx, pos, tri, colors, res), runs)
            fwd_bwd = median_ms(fk_forward_backward(ctx, pos, tri, colors, res), runs)
            try:
                run, renderer_name = llvmpipe_runner(pos_np, faces, colors_np, res)
                ref = median_ms(run, runs)
            except Exception as exc:  # noqa: BLE001 - the reference is optional
                ref = Timing(float("nan"), float("nan"))
                renderer_name = f"unavailable ({type(exc).__name__}: {exc})"
            with torch.no_grad():
                covered = int((dr.rasterize(ctx, pos, tri, (res, res))[0][..., 3] > 0).sum())
            rows.append((res, batch, fwd, ref, fwd / ref, fwd_bwd, covered / batch / res / res))
    load_raster = load()
    aa_rows = []
    for res in (int(x) for x in args.sizes.split(",")):
        for batch in (1, 8):
            runs = runs_for(res, batch)
            pos = torch.from_numpy(clip_positions(verts, batch))
            raster = median_ms(fk_forward(ctx, pos, tri, colors, res), runs)
            aa = median_ms(fk_antialias(ctx, pos, tri, colors, res), runs)
            aa_rows.append((res, batch, aa, raster))
    load_aa = load()
    if rows:
        print(f"reference: {renderer_name}; statistic: {STAT} wall time (CPU time of all threads); "
              f"{load_raster}")
        print("| size | batch | fk cpu rasterize+interpolate | llvmpipe | ratio wall (CPU) "
              "| fk forward+backward | coverage |")
        print("|---|---|---|---|---|---|---|")
        for res, batch, fwd, ref, ratio, fb, cov in rows:
            cpu_ratio = fwd.cpu / ref.cpu
            print(f"| {res}² | {batch} | {fwd} | {ref} | {ratio:.2f}× ({cpu_ratio:.2f}×) | {fb} "
                  f"| {cov:.0%} |")
        print()
    print(f"antialias (topology hash built once) beside rasterize+interpolate, same run; {STAT} wall time "
          f"(CPU of all threads) of {runs_for(1024, 8)}-{runs_for(224, 1)} runs, and the fastest run; "
          f"{load_raster} before, {load_aa} after")
    print("| size | batch | fk cpu antialias forward+backward | fk rasterize+interpolate "
          f"| ratio wall (CPU), {STAT} | ratio of the fastest runs | target |")
    print("|---|---|---|---|---|---|---|")
    for res, batch, ms, raster in aa_rows:
        print(f"| {res}² | {batch} | {ms} | {raster} | {ms / raster:.2f}× ({ms.cpu / raster.cpu:.2f}×) "
              f"| {ms.min / raster.min:.2f}× ({ms.min:.1f} / {raster.min:.1f} ms) | ≤ 2× |")
    if not args.no_compile_times:
        with tempfile.TemporaryDirectory() as empty:
            cold = first_call_seconds(empty)  # numba compiles every kernel into the empty cache
            warm = first_call_seconds(empty)  # and loads them from it
        print()
        print(f"first call in a fresh process, forward + backward at 64² (import fk.render + rasterize + "
              f"interpolate; then antialias): {cold[0]:.2f} s + {cold[1]:.2f} s compiling (empty numba "
              f"cache), {warm[0]:.2f} s + {warm[1]:.2f} s from the cache; {load()}")


if __name__ == "__main__":
    main()
