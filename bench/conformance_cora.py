"""Conformance of fk-plugin-eyeball with CoRA's own Step-1 scripts (yxuhan/CoRA, read at commit bb44d1d).

    python bench/conformance_cora.py --cora /path/to/CoRA/checkout [--work /tmp/cora_conformance]

Creates a throw-away venv under --work (torch CPU, numpy, Pillow, tqdm), writes a small synthetic subject
with fk, and runs the upstream scripts there, unmodified, on it:

1. ``scripts/print_3d_eyeball_landmarks.py`` on the painted landmark image reduced to one pure-green
   pixel per landmark (upstream's semantics) and a ``coord.pkl`` -> its printed points vs ``fk eyeball
   uv-landmarks`` (expected: identical);
2. ``scripts/compute_3d_eyeball_landmark.py`` on a ``2d_eyeball_landmarks.pkl`` of projected synthetic
   landmarks (+1 px noise) -> its Adam result vs fk's closed form (expected: same minimum, Adam within
   its convergence) -- this also checks that fk's ``transforms.json`` cameras mean the same to upstream;
3. ``nerf_matrix_to_ngp`` and the UV-mask decode + ``grid_sample`` lookup of
   ``scripts/render_uv_eye_mask.py`` (extracted from its source; pytorch3d/CUDA are not installable here)
   on fk's rasterised UVs -> vs fk's masks (expected: identical).

torchvision (``ToTensor``, ``save_image``) and ``torch.utils.tensorboard`` are replaced by small stand-ins
written from their documented behaviour; nothing from upstream is copied into fk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
from _sidevenv import side_venv

STUBS = {
    "torchvision/__init__.py": "from . import transforms, utils\n",
    "torchvision/transforms.py": textwrap.dedent("""
        import numpy as np, torch
        class ToTensor:
            def __call__(self, pic):
                a = np.asarray(pic)
                if a.ndim == 2:
                    a = a[..., None]
                return torch.from_numpy(a.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
    """),
    "torchvision/utils.py": textwrap.dedent("""
        import numpy as np, torch
        from PIL import Image
        def save_image(t, path):
            t = t.detach()
            if t.dim() == 4:
                t = t[0]
            if t.shape[0] == 1:
                t = t.repeat(3, 1, 1)
            a = t.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
            Image.fromarray(a).save(path)
    """),
}

RUNNER = textwrap.dedent("""
    import runpy, sys, types
    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = object
    sys.modules["torch.utils.tensorboard"] = tb
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
""")


def venv(work: Path) -> Path:
    py = side_venv(work / "venv", ["torch==2.13.0", "numpy", "pillow", "tqdm"])
    for rel, text in STUBS.items():
        p = work / "stubs" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (work / "run_upstream.py").write_text(RUNNER)
    return py


def upstream(py: Path, work: Path, cora: Path, script: str, *args: str) -> str:
    env = {"PYTHONPATH": str(work / "stubs"), "PATH": "/usr/bin:/bin", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    res = subprocess.run([str(py), str(work / "run_upstream.py"), str(cora / script), *args], cwd=cora,
                         capture_output=True, text=True, env=env)  # fmt: skip
    if res.returncode:
        raise SystemExit(f"{script} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def main() -> None:
    import torch
    from fk_eyeball.synth import write_subject
    from fk_eyeball.uv_landmarks import uv_landmarks

    ap = argparse.ArgumentParser()
    ap.add_argument("--cora", type=Path, required=True, help="a checkout of github.com/yxuhan/CoRA")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cora_conformance"))
    a = ap.parse_args()
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    py = venv(work)
    root = work / "subject"
    if not (root / "truth" / "truth.json").exists():
        write_subject(root, scale=0.25, n_frames=12, uv_size=512)
    truth = json.loads((root / "truth" / "truth.json").read_text())
    coord = np.load(root / "coord.npy")
    torch.save(torch.from_numpy(coord), root / "coord.pkl")

    # 1. landmark picker: one pure-green pixel per landmark
    from PIL import Image

    img = np.asarray(Image.open(root / "diffuse_leye_landmark.png")).copy()
    green = (img == (0, 255, 0)).all(-1)
    from scipy import ndimage

    lab, n = ndimage.label(green, structure=np.ones((3, 3)))
    single = np.asarray(Image.open(root / "diffuse.png")).copy()
    for k in range(1, n + 1):
        rows, cols = np.nonzero(lab == k)
        single[int(np.rint(rows.mean())), int(np.rint(cols.mean()))] = (0, 255, 0)
    Image.fromarray(single).save(work / "single.png")
    out = upstream(py, work, a.cora, "scripts/print_3d_eyeball_landmarks.py", "--ldm_img_path", str(work / "single.png"),
                   "--coord_path", str(root / "coord.pkl"))  # fmt: skip
    up = np.array([json.loads(line) for line in out.strip().splitlines()])
    fk_pts, _ = uv_landmarks(work / "single.png", root / "coord.pkl")
    print(f"1. print_3d_eyeball_landmarks: {len(up)} points, max |upstream - fk| = {np.abs(up - fk_pts).max():.3g}")

    # 2. 3D landmarks: upstream's Adam on fk's cameras vs fk's closed form
    from fk.cameras import Pose, project
    from fk_eyeball.dataset import load_subject
    from fk_eyeball.triangulate import triangulate

    subject = load_subject(root)
    rng = np.random.default_rng(0)
    P = np.concatenate([np.asarray(truth["contour_landmarks"][e]) for e in ("leye", "reye")])
    info, pix = {}, []
    (root / "vis_landmarks").mkdir(exist_ok=True)
    for f in subject.frames:
        lm = np.zeros((68, 2), np.float32)
        lm[36:48] = project(P, subject.K, Pose.from_cam2world(f.cam2world)) + rng.normal(0, 1, (12, 2))
        info[f.name] = {"landmarks": lm, "scores": np.ones(68, np.float32)}
        pix.append(lm[36:48].astype(np.float64))
        (root / "vis_landmarks" / f.name).write_bytes(b"")
    torch.save(info, root / "2d_eyeball_landmarks.pkl")
    out = upstream(py, work, a.cora, "scripts/compute_3d_eyeball_landmark.py", "--data_root", str(root))
    nums = [float(x) for x in __import__("re").findall(r"-?\d+\.\d+(?:e-?\d+)?", out)]
    up3 = np.array(nums).reshape(12, 3)
    fk3 = triangulate(np.stack(pix), subject.K, subject.cam2world).points
    print(f"2. compute_3d_eyeball_landmark (Adam, 1000 steps): max |upstream - fk closed form| = "
          f"{np.abs(up3 - fk3).max():.3g} units; to truth: upstream {np.abs(up3 - P).max():.3g}, "
          f"fk {np.abs(fk3 - P).max():.3g} (1 unit = 100 mm)")

    # 3. nerf_matrix_to_ngp and the mask lookup of render_uv_eye_mask.py, extracted from its source
    src = (a.cora / "scripts/render_uv_eye_mask.py").read_text()
    check = work / "check_lookup.py"
    check.write_text(textwrap.dedent(f"""
        import ast, json, numpy as np, torch, torch.nn.functional as F
        src = open({str(a.cora / 'scripts/render_uv_eye_mask.py')!r}).read()
        tree = ast.parse(src)
        ns = {{"np": np, "torch": torch, "F": F}}
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "nerf_matrix_to_ngp")
        exec(compile(ast.Module([fn], []), "upstream", "exec"), ns)
        loop = next(n for n in tree.body if isinstance(n, ast.For) and "grid_sample" in ast.unparse(n))
        body = [s for s in loop.body if not (isinstance(s, ast.Expr) and "save_image" in ast.unparse(s))]
        decode = [n for n in tree.body if isinstance(n, ast.Assign) and "torch.mean" in ast.unparse(n)]
        d = np.load({str(work / 'lookup.npz')!r})
        ns["uv_left_eye_mask"] = torch.from_numpy(d["tex_l"]).permute(2, 0, 1).float() / 255.0
        ns["uv_right_eye_mask"] = torch.from_numpy(d["tex_r"]).permute(2, 0, 1).float() / 255.0
        ns["device"] = "cpu"
        exec(compile(ast.Module(decode, []), "upstream", "exec"), ns)
        ns["uv_img"] = torch.from_numpy(d["uv"]).permute(0, 3, 1, 2).float()
        ns["i"] = 0
        exec(compile(ast.Module(body, []), "upstream", "exec"), ns)
        pose = ns["nerf_matrix_to_ngp"](d["m"], scale=1.0)
        np.savez({str(work / 'lookup_out.npz')!r}, left=ns["left_eye_mask"].numpy(), right=ns["right_eye_mask"].numpy(), pose=pose)
    """))
    from fk.cameras.cora import opencv_cam2world_from_ngp
    from fk.io.mesh import read_obj
    from fk_eyeball.masks import decode_uv_mask, sample_uv_masks, screen_and_perspective_uv

    mesh = read_obj(root / "mesh_uv.obj")
    f0 = subject.frames[len(subject.frames) // 2]
    cam = (mesh.vertices - f0.cam2world[:3, 3]) @ f0.cam2world[:3, :3]
    uv, _, covered = screen_and_perspective_uv(torch.as_tensor(cam, dtype=torch.float32), mesh.faces, mesh.uvs,
                                               mesh.uv_faces, torch.as_tensor(subject.K, dtype=torch.float32),
                                               subject.size)  # fmt: skip
    m = np.asarray(json.loads((root / "transforms.json").read_text())["frames"][0]["transform_matrix"])
    np.savez(work / "lookup.npz", tex_l=np.asarray(Image.open(root / "diffuse_leye_mask.png")),
             tex_r=np.asarray(Image.open(root / "diffuse_reye_mask.png")), uv=uv[None].numpy(), m=m)  # fmt: skip
    subprocess.run([str(py), str(check)], check=True)
    res = np.load(work / "lookup_out.npz")
    masks = torch.from_numpy(np.stack([decode_uv_mask(root / f"diffuse_{e}_mask.png") for e in ("leye", "reye")]))
    ours = sample_uv_masks(masks, uv, covered).numpy()
    cov = covered.numpy()
    print(f"3. nerf_matrix_to_ngp: max |upstream - fk| = {np.abs(res['pose'] - opencv_cam2world_from_ngp(m)).max():.3g}; "
          f"mask lookup on covered pixels: max |upstream - fk| = "
          f"{max(np.abs(res['left'][0, 0] - ours[0])[cov].max(), np.abs(res['right'][0, 0] - ours[1])[cov].max()):.3g}; "
          f"upstream on empty pixels (corner texel {masks[0, -1, 0].item():.0f}): {res['left'][0, 0][~cov].max():.3g}")


if __name__ == "__main__":
    main()
