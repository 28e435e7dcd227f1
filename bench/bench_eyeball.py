"""Eyeball benchmarks: eye masks per frame at 720x960, and landmark triangulation closed form vs Adam.

    python bench/bench_eyeball.py [--frames 100] [--size 720x960] [--views 100]

1. ``render-eye-masks`` work per frame on the synthetic subject's Step-1 mesh (307k faces): rasterise,
   interpolate UVs, sample both UV masks, write two PNGs; fk's CPU renderer beside the same rasterisation
   through moderngl/llvmpipe (EGL) when it is installed (``bench/setup_render_bench.sh``), a reference
   rasteriser only (no UV sampling or PNG writing in the reference column).
2. Triangulating 12 eye landmarks from ``--views`` views with 1 px noise: fk's closed form vs upstream's
   Adam (lr 0.1, 1000 steps from 0), time and final error in mm (synthetic units: dm).
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
from _timing import median_time  # noqa: E402


def bench_masks(frames: int, size: tuple[int, int]) -> None:
    import torch

    from fk.cameras import Intrinsics
    from fk_eyeball import synth
    from fk_eyeball.masks import render_eye_masks

    h, w = size
    tmp = Path(tempfile.mkdtemp(prefix="bench_eyeball_"))
    print(f"writing a {frames}-frame synthetic subject at {w}x{h} (not timed) ...", flush=True)
    root = tmp / "s"
    synth_scale = w / synth.FULL_SIZE[1]
    # cameras and Step-1 files only: render one frame's images, then list `frames` cameras
    synth.write_subject(root, scale=synth_scale, n_frames=2, uv_size=1024)
    scene = synth.build_scene()
    from fk_eyeball.dataset import load_subject, write_transforms

    s2 = load_subject(root)
    c2w = synth.phone_cameras(frames, seed=1)
    names = [f"{i + 1:05d}.png" for i in range(frames)]
    for n in names:
        (root / "image" / n).write_bytes((root / "image" / "00001.png").read_bytes())
    write_transforms(root / "transforms.json", s2.intrinsics, names, c2w)
    render_eye_masks(root, root / "mesh_uv.obj", out=tmp / "warm")  # numba compile, caches
    t0 = time.perf_counter()
    render_eye_masks(root, root / "mesh_uv.obj", out=tmp / "out")
    per = (time.perf_counter() - t0) / frames
    print(f"eye masks, fk CPU (torch threads {torch.get_num_threads()}): {per * 1000:.0f} ms/frame "
          f"({frames} frames at {w}x{h}, {len(scene.faces)} faces, load average {os.getloadavg()[0]:.1f})")
    try:
        import moderngl  # noqa: F401
    except ImportError:
        print("moderngl/llvmpipe reference: not installed (bench/setup_render_bench.sh installs it)")
        return
    from fk.render.mesh import projection_from_intrinsics

    f = scene.faces
    verts = scene.union_vertices
    K = torch.as_tensor(np.asarray(Intrinsics(s2.K[0, 0], s2.K[1, 1], s2.K[0, 2], s2.K[1, 2], w, h).matrix))[None]
    proj = projection_from_intrinsics(K.float(), (h, w), 0.05, 20.0)[0].numpy()
    try:
        run, renderer = _llvmpipe(f, np.zeros((len(verts), 3), np.float32), (h, w))
    except Exception as exc:  # noqa: BLE001 - a reference only
        print(f"moderngl/llvmpipe reference: unavailable ({exc})")
        return
    clip = []
    for m in c2w[:10]:
        cam = (verts - m[:3, 3]) @ m[:3, :3]
        clip.append((np.concatenate([cam, np.ones((len(cam), 1))], 1) @ proj.T).astype(np.float32))
    t = median_time(lambda: run(clip), 3) / len(clip)
    print(f"rasterise only, moderngl ({renderer}): {t * 1000:.0f} ms/frame")


def _llvmpipe(faces, colors, size):
    import moderngl

    h, w = size
    gl = moderngl.create_standalone_context(backend="egl")
    prog = gl.program(
        vertex_shader="#version 330\nin vec4 p; in vec3 c; out vec3 col; void main(){gl_Position=p; col=c;}",
        fragment_shader="#version 330\nin vec3 col; out vec4 o; void main(){o=vec4(col,1.0);}",
    )
    vbo = gl.buffer(reserve=len(colors) * 16)
    cbo = gl.buffer(colors.astype(np.float32).tobytes())
    ibo = gl.buffer(faces.astype(np.int32).tobytes())
    vao = gl.vertex_array(prog, [(vbo, "4f", "p"), (cbo, "3f", "c")], ibo, index_element_size=4)
    fbo = gl.framebuffer(color_attachments=[gl.texture((w, h), 4, dtype="f4")], depth_attachment=gl.depth_renderbuffer((w, h)))
    gl.enable(moderngl.DEPTH_TEST)

    def run(clips):
        for c in clips:
            vbo.write(c.tobytes())
            fbo.use()
            fbo.clear(0, 0, 0, 0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            fbo.read(components=4, dtype="f4")

    return run, gl.info["GL_RENDERER"]


def bench_triangulation(views: int) -> None:
    from fk.cameras import Intrinsics
    from fk_eyeball import synth
    from fk_eyeball.triangulate import adam_reference, intersect_rays, pixel_rays

    K = np.asarray(Intrinsics(synth.FULL_FOCAL, synth.FULL_FOCAL, 359.5, 479.5, 720, 960).matrix)
    c2w = synth.phone_cameras(views, seed=2)
    P = np.concatenate([synth.contour_landmarks(np.asarray(c)) for c in synth.EYE_CENTERS.values()])
    cam = np.einsum("vji,vlj->vli", c2w[:, :3, :3], P[None] - c2w[:, None, :3, 3])
    px = np.stack([K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2], K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]], -1)
    px += np.random.default_rng(0).normal(0, 1.0, px.shape)
    rays = [pixel_rays(px[:, j], K, c2w) for j in range(len(P))]
    closed = np.array([intersect_rays(o, d) for o, d in rays])
    t_closed = median_time(lambda: [intersect_rays(o, d) for o, d in rays], 5)
    t0 = time.perf_counter()
    adam = np.array([adam_reference(o, d) for o, d in rays])
    t_adam = time.perf_counter() - t0
    e_c = np.linalg.norm(closed - P, axis=1) * 100
    e_a = np.linalg.norm(adam - P, axis=1) * 100
    print(f"triangulation of 12 landmarks, {views} views, 1 px noise at 720x960:")
    print(f"  fk closed form      {t_closed * 1000:9.2f} ms   error mean {e_c.mean():.3f} mm, max {e_c.max():.3f} mm")
    print(f"  upstream Adam x1000 {t_adam * 1000:9.0f} ms   error mean {e_a.mean():.3f} mm, max {e_a.max():.3f} mm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="720x960", help="WxH")
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--skip-masks", action="store_true")
    a = ap.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    bench_triangulation(a.views)
    if not a.skip_masks:
        bench_masks(a.frames, (h, w))


if __name__ == "__main__":
    main()
