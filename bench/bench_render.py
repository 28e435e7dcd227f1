"""Benchmark fk.render's CPU backend against Mesa llvmpipe doing the same work.

Work: rasterise a ~71k-triangle closed face-like mesh (a deformed lat-long sphere) with a depth
test and interpolate 3 colour channels, at 224^2, 512^2 and 1024^2, batch 1 and 8. The reference
is moderngl (EGL, llvmpipe): upload clip-space positions + colours, draw with the depth test into
a float32 RGBA framebuffer and read it back. Also fk's forward+backward time (gradients to
positions and colours) and, on its own line, fk's ``antialias`` on the rendered image (batch 1;
llvmpipe has no counterpart). Medians of several runs; run bench/setup_render_bench.sh first for llvmpipe.

    .venv/bin/python bench/bench_render.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import fk.render as dr


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


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up (and numba compile on the very first call)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * (min(times) if STAT == "min" else statistics.median(times))


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
    """antialias alone (topology hash built once, as a fitting loop would) on a rendered image, forward + backward."""
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--sizes", default="224,512,1024", help="comma-separated image sizes")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="min filters out other processes' load on a shared machine")
    args = parser.parse_args()
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
    for res in (int(x) for x in args.sizes.split(",")):
        for batch in (1, 8):
            runs = 3 if args.quick or res * res * batch > 2e6 else 7
            pos_np = clip_positions(verts, batch)
            pos = torch.from_numpy(pos_np)
            fwd = median_ms(fk_forward(ctx, pos, tri, colors, res), runs)
            fwd_bwd = median_ms(fk_forward_backward(ctx, pos, tri, colors, res), runs)
            try:
                run, renderer_name = llvmpipe_runner(pos_np, faces, colors_np, res)
                ref = median_ms(run, runs)
            except Exception as exc:  # noqa: BLE001 - the reference is optional
                ref, renderer_name = float("nan"), f"unavailable ({type(exc).__name__}: {exc})"
            with torch.no_grad():
                covered = int((dr.rasterize(ctx, pos, tri, (res, res))[0][..., 3] > 0).sum())
            rows.append((res, batch, fwd, ref, fwd / ref, fwd_bwd, covered / batch / res / res))
    aa_rows = []
    for res in (int(x) for x in args.sizes.split(",")):
        pos = torch.from_numpy(clip_positions(verts, 1))
        aa_rows.append((res, median_ms(fk_antialias(ctx, pos, tri, colors, res), 3 if args.quick else 7)))
    print(f"reference: {renderer_name}; statistic: {STAT}")
    print("| size | batch | fk cpu rasterize+interpolate | llvmpipe | ratio | fk forward+backward | coverage |")
    print("|---|---|---|---|---|---|---|")
    for res, batch, fwd, ref, ratio, fb, cov in rows:
        print(f"| {res}² | {batch} | {fwd:.1f} ms | {ref:.1f} ms | {ratio:.2f}× | {fb:.1f} ms | {cov:.0%} |")
    print()
    print("| size | batch | fk cpu antialias forward+backward |")
    print("|---|---|---|")
    for res, ms in aa_rows:
        print(f"| {res}² | 1 | {ms:.1f} ms |")


if __name__ == "__main__":
    main()
