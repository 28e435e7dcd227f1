"""Conformance: fk's FFHQ-UV fitting pieces against csbhr/FFHQ-UV's own RGB_Fitting functions, run as is.

    python bench/conformance_uvfit_model.py --upstream PATH [--venv /tmp/fk-uvfit-conformance-venv]

PATH: a checkout of csbhr/FFHQ-UV or a bare git directory of it (e.g. what ``fetch github:csbhr/FFHQ-UV``
gives; the needed folders are taken out with ``git archive``). Creates a throw-away venv under /tmp (CPU
torch 2.13.0, numpy 1.26.4, scipy 1.13.1, OpenCV 4.10.0.84, scikit-image 0.24.0, Pillow 10.4.0) and runs
``conformance_uvfit_model_upstream.py`` there with upstream's ``RGB_Fitting`` on sys.path of that process
only; fk never imports it. Both sides get the same generated inputs:

- a miniature ``hifi3dpp_model_info.mat`` (``fk.models.synthetic.hifi3dpp_info``, every field upstream's
  loader reads) and an ``unwrap_1024_info.mat`` made from its UV layout; random coefficients, images,
  masks, landmarks, latents;
- generated ``template_base_uv.png``, ``minor/major_valid_whole_mask.png``, ``hair_mask.png`` and a 1024²
  GAN output for the cropface630 blends.

Compared (max |fk − upstream| per function): shape (id, exp), albedo, rotation, vertex normals, SH shading,
lit colour, camera-space vertices, landmarks (projection), the stage-1 UV unwrap, the photometric,
landmark (20× weights), geocross, coefficient and gamma regularisers and identity losses, both stages'
learning-rate ramps (from upstream's own ``Fitter`` objects), one step of the spherical optimiser, the
UV-textured render (upstream's renderer after the raster: nvdiffrast needs CUDA, so the raster of
upstream's own clip-space vertices is made by fk's rasteriser and handed to it; the rasteriser itself is
compared with nvdiffrast by ``bench/bench_render.py`` and tests/render), the nearest-texel lookup inside it,
the cropface630 paste + differentiable blend + resize, the saving blend, YUV colour matching and the
Laplacian-pyramid blend; and the eyeball similarity fit + depth/height refinement through
``bench/conformance_uvfit_eyeballs.py`` on upstream's example head. Results: docs/fidelity.md (uvfit).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _sidevenv import side_venv, source_tree

HERE = Path(__file__).resolve().parent
PINS = ["torch==2.13.0", "numpy==1.26.4", "scipy==1.13.1", "opencv-python-headless==4.10.0.84",
        "scikit-image==0.24.0", "Pillow==10.4.0", "requests==2.32.3"]  # fmt: skip
FOLDERS = ["RGB_Fitting", "Mesh_Add_EyeBall", "examples/mesh_add_eyeball_examples"]


def write_topo(folder: Path, side: int = 256) -> None:
    """Generated topo_assets PNGs, upstream's names: colour-ramp template, nested disc masks, hair band."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    template = np.stack([150 + 60 * xx, 110 + 40 * yy, 90 + 30 * xx * yy], -1).astype(np.uint8)

    def disc(r: float) -> np.ndarray:
        return ((((yy - 0.55) ** 2 + (xx - 0.5) ** 2) < r**2) * 255).astype(np.uint8)

    hair = np.zeros((side, side), np.uint8)
    hair[: side // 5] = 255
    for name, img in (("template_base_uv", template), ("minor_valid_whole_mask", disc(0.36)),
                      ("major_valid_whole_mask", disc(0.25)), ("hair_mask", hair)):  # fmt: skip
        Image.fromarray(img).convert("RGB").save(folder / f"{name}.png")


def smooth_noise(rng, shape: tuple[int, ...], size: int) -> np.ndarray:
    """Values in [0, 1]: coarse noise bilinearly enlarged (a GAN-like smooth map)."""
    import torch

    coarse = torch.as_tensor(rng.uniform(0, 1, (*shape[:2], 16, 16)), dtype=torch.float32)
    big = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return big.numpy()


def make_inputs(work: Path, seed: int = 0) -> dict[str, np.ndarray]:
    from fk.models.hifi3dpp import load_hifi3dpp
    from fk.models.synthetic import hifi3dpp_info
    from fk_uvfit.full import FullFiles, unwrap_table
    from scipy.io import savemat

    info = hifi3dpp_info(seed=seed, n_id=12, n_exp=9, n_tex=10, grid=(40, 36))
    n = info["vtx_vt"].shape[0]
    savemat(str(work / "hifi3dpp_model_info.mat"), info)
    model = load_hifi3dpp(work / "hifi3dpp_model_info.mat")
    files = FullFiles(None, None, work / "hifi3dpp_model_info.mat", None, None, None, None, None, wanted={})
    table, _ = unwrap_table(model, files)
    bary = table["barycentrics"] * table["valid"][..., None]
    savemat(str(work / "unwrap_1024_info.mat"),
            {"uv_idx_v_idx": table["vertex_ids"].astype(np.float64), "uv_idx_bw": bary.astype(np.float64)})
    write_topo(work / "topo")
    rng = np.random.default_rng(seed)
    parts = {"id": rng.normal(0, 1.0, model.n_id), "exp": rng.normal(0, 1.0, model.n_exp),
             "tex": rng.normal(0, 1.0, model.n_tex), "angle": rng.uniform(-0.3, 0.3, 3),
             "gamma": rng.normal(0, 0.15, 27), "trans": np.array([0.05, -0.1, 0.4])}  # fmt: skip
    coeffs = np.concatenate([parts[k] for k in ("id", "exp", "tex", "angle", "gamma", "trans")])[None]
    inp = {
        "coeffs": coeffs.astype(np.float32),
        "img_a": rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32),
        "img_b": rng.uniform(0, 1, (1, 3, 224, 224)).astype(np.float32),
        "mask": (rng.uniform(0, 1, (1, 1, 224, 224)) > 0.4).astype(np.float32),
        "lm_pred": rng.uniform(0, 224, (1, 68, 2)).astype(np.float32),
        "lm_gt": rng.uniform(0, 224, (1, 68, 2)).astype(np.float32),
        "ws": rng.normal(0, 1, (1, 18, 512)).astype(np.float32),
        "feat_a": _unit(rng.normal(0, 1, (2, 512))).astype(np.float32),
        "feat_b": _unit(rng.normal(0, 1, (2, 512))).astype(np.float32),
        "z0": np.random.RandomState(123).randn(1, 18, 512).astype(np.float32),
        "z_grad": rng.normal(0, 1, (1, 18, 512)).astype(np.float32),
        "uv_map": smooth_noise(rng, (1, 3), 256),
        "face": smooth_noise(rng, (1, 3), 1024),
        "mc_src": rng.uniform(0, 255, (120, 100, 3)).astype(np.float32),
        "mc_dst": (smooth_noise(rng, (1, 3), 120)[0].transpose(1, 2, 0)[:, :100] * 255).astype(np.float32),
        "mc_mask": np.repeat((rng.uniform(0, 1, (120, 100, 1)) > 0.3), 3, -1).astype(np.float32),
        "pb_mask": np.repeat(np.clip(np.linspace(-0.5, 1.5, 100), 0, 1)[None, :, None], 120, 0).repeat(3, -1),
    }
    inp["pb_mask"] = inp["pb_mask"].astype(np.float32)
    assert n == model.n_vertices
    np.savez(work / "inputs.npz", **inp)
    return inp


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def run_upstream(py: Path, phase: str, src: Path, work: Path) -> dict[str, np.ndarray]:
    worker = HERE / "conformance_uvfit_model_upstream.py"
    subprocess.run([str(py), str(worker), phase, str(src / "RGB_Fitting"), str(work)], check=True,
                   cwd=str(src / "RGB_Fitting"))  # fmt: skip
    return dict(np.load(work / f"upstream_{phase}.npz"))


def fk_side(work: Path, inp: dict[str, np.ndarray], up: dict[str, np.ndarray]) -> tuple[list, dict]:
    import fk.render as dr
    import torch
    from fk.models.hifi3dpp import load_hifi3dpp, read_hifi3dpp_info, unwrap_to_uv
    from fk.models.lighting import gamma_loss
    from fk_uvfit import losses as L
    from fk_uvfit import stages as S
    from fk_uvfit.full import FullFiles, unwrap_table

    torch.set_num_threads(1)
    rows: list[tuple[str, float, float, str]] = []

    def cmp(name: str, ours, theirs, note: str = "") -> None:
        a = np.asarray(ours.detach().numpy() if hasattr(ours, "detach") else ours, np.float64)
        b = np.asarray(theirs, np.float64)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        rows.append((name, float(np.abs(a - b).max()), float(np.abs(b).max()), note))

    mat = work / "hifi3dpp_model_info.mat"
    model = load_hifi3dpp(mat)
    coeffs = torch.as_tensor(inp["coeffs"])
    parts = model.split_coeffs(coeffs)
    with torch.no_grad():
        out = model(coeffs)
        cmp("shape, neutral (id)", model.shape(parts["id"], torch.zeros_like(parts["exp"])), up["shape_id"])
        cmp("shape, with expression", out["shape"], up["shape_exp"])
        cmp("albedo (T̄ + B_tex·δ)/255", out["albedo"], up["albedo"])
        cmp("rotation (stored transposed upstream)", out["rotation"].transpose(-1, -2), up["rotation"])
        cmp("vertex normals (point_buf rule)", model.normals(out["shape"]), up["normals"])
        shading = model.illuminate(torch.ones_like(out["albedo"]), out["normals"], parts["gamma"])
        cmp("SH shading (27 gamma + 0.8 DC)", shading, up["shading"])
        cmp("lit colour", out["colors"], up["color"])
        cmp("camera-space vertices (z = 10 − z)", out["vertices_cam"], up["vertex_cam"])
        cmp("landmarks (pinhole f 1015, c 112, y up)", out["landmarks_yup"], up["landmarks"], "pixels")
        table, _ = unwrap_table(model, FullFiles(None, None, mat, None, None, None, None, None, wanted={}))
        cmp("stage-1 UV unwrap (unwrap_1024_info)", unwrap_to_uv(out["albedo"][0].double().numpy(), table),
            up["unwrap_uv"])  # fmt: skip

        t = {k: torch.as_tensor(v) for k, v in inp.items()}
        cmp("photometric loss (masked L1)", L.color_loss(t["img_a"], t["img_b"], t["mask"]), up["photo_loss"])
        cmp("landmark loss (20× on 28-30, 60-67)", L.landmark_loss(t["lm_pred"], t["lm_gt"]),
            up["landmark_loss"], "upstream: float64 weights")  # fmt: skip
        cmp("geocross (18 × 512 W+)", L.geocross(t["ws"]), up["geocross"])
        cmp("‖α‖² / B", L.coeff_l2(parts["id"]), up["reg_id"])
        cmp("‖β‖² / B", L.coeff_l2(parts["exp"]), up["reg_exp"])
        cmp("gamma (monochrome light)", gamma_loss(parts["gamma"]), up["reg_gamma"])
        cmp("identity (1 − cos)", L.identity_loss(t["feat_a"], t["feat_b"]), up["identity_loss"])

    s2 = [[L.STAGE2["initial_lr"] * L.lr_factor(i, 100, 0.25)] for i in range(100)]
    cmp("stage-2 learning rate, 100 steps", np.asarray(s2), up["lr_stage2"])
    rates = L.stage3_learning_rates(L.STAGE3)
    order = ("latent", "id", "exp", "angle", "gamma", "trans")
    s3 = [[rates[k] * L.lr_factor(i, 200, 0.4) for k in order] for i in range(200)]
    cmp("stage-3 learning rates, 6 groups × 200 steps", np.asarray(s3), up["lr_stage3"])

    z = torch.as_tensor(inp["z0"]).clone().requires_grad_(True)
    norms = z.detach().norm(dim=-1, keepdim=True)
    opt = torch.optim.Adam([z], lr=0.1, betas=(0.9, 0.999))
    z.grad = torch.as_tensor(inp["z_grad"])
    opt.step()
    with torch.no_grad():
        z.copy_(L.project_to_sphere(z, norms))
    cmp("spherical Adam step (norms kept)", z, up["sphere_step"], "upstream adds 1e-9 under each sqrt")

    # the render: fk's own, and upstream's on fk's raster of upstream's clip-space vertices
    info = read_hifi3dpp_info(mat)
    render = S.UVRenderer(model, info["vtx_vt"], renderer="cpu")
    clip = torch.as_tensor(up["clip_pos"])
    tri = model.face_region_triangles().to(torch.int32).contiguous()
    rast, _ = dr.rasterize(dr.get_context("cpu"), clip.contiguous(), tri, (224, 224))
    np.savez(work / "fk_rast.npz", rast=rast.numpy())
    with torch.no_grad():
        mine = render(coeffs, torch.as_tensor(inp["uv_map"]))
    from fk.cameras.deep3d import opencv_from_deep3d_camera

    cv = opencv_from_deep3d_camera(out["vertices_cam"])
    pos = torch.cat([cv, torch.ones_like(cv[..., :1])], -1) @ render.proj.T
    ndc_fk, ndc_up = (p[..., :3] / p[..., 3:] for p in (pos, clip))
    ndc_fk = ndc_fk * torch.tensor([1.0, -1.0, 1.0])  # fk rasterises y up and flips rows after
    cmp("clip space → NDC (fov 12.59°, near 5, far 15)", ndc_fk, ndc_up)
    return rows, mine


def cropface_rows(work: Path, inp: dict[str, np.ndarray], up: dict[str, np.ndarray]) -> list:
    import torch
    from fk_uvfit import cropface as C

    topo = {k: work / "topo" / v for k, v in C.TOPO_FILES.items()}
    dec = C.CropFaceDecoder(torch.nn.Identity(), topo)
    face = torch.as_tensor(inp["face"])
    rows = []

    def cmp(name, ours, theirs, note=""):
        a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        rows.append((name, float(np.abs(a - b).max()), float(np.abs(b).max()), note))

    with torch.no_grad():
        fit_map = dec.blend(dec.paste(face))
    cmp("cropface630 paste + minor blend + resize (fit map)", fit_map.numpy(), up["cropface_fit_map"],
        "[0, 1]")  # fmt: skip
    cmp("cropface630 no-blend output", face.numpy(), up["cropface_no_blend"], "[0, 1]")
    same_in = torch.as_tensor(up["cropface_fit_map"])
    saved = dec.for_saving(same_in)[0].permute(1, 2, 0).double().numpy() * 255
    cmp("cropface630 saving blend (pyramid, major mask), same input", saved, up["cropface_saved"], "0-255")
    chain = dec.for_saving(fit_map)[0].permute(1, 2, 0).double().numpy() * 255
    cmp("cropface630 fit map → saved map, end to end", chain, up["cropface_saved"], "0-255")
    mc = C.match_color_yuv(inp["mc_src"], inp["mc_dst"], inp["mc_mask"][..., 0] > 0.5)
    cmp("YUV colour match", mc, up["match_color"], "0-255")
    cmp("Laplacian-pyramid blend (5 levels)", C.pyramid_blend(inp["mc_src"], inp["mc_dst"], inp["pb_mask"]),
        up["pyramid_blend"], "0-255")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=Path, required=True, help="checkout or bare git dir of csbhr/FFHQ-UV")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "fk-uvfit-conformance-venv")
    ap.add_argument("--keep", type=Path, default=None, help="keep the work folder here")
    args = ap.parse_args()
    py = side_venv(args.venv, PINS)
    with tempfile.TemporaryDirectory(prefix="fk-uvfit-conf-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = source_tree(args.upstream.resolve(), FOLDERS, Path(tmp) / "upstream")
        inp = make_inputs(work)
        up = run_upstream(py, "a", src, work)
        rows, mine = fk_side(work, inp, up)
        up.update(run_upstream(py, "b", src, work))
        mask_fk, mask_up = mine["mask"].numpy(), up["render_mask"]
        rows.append(("render mask (face-region triangles)", float(np.abs(mask_fk - mask_up).max()), 1.0,
                     f"{int((mask_fk != mask_up).sum())} of {mask_up.size} pixels differ"))  # fmt: skip
        both = (mask_fk * mask_up) > 0
        img_fk, img_up = mine["image"].numpy(), up["render_image"]
        diff = float(np.abs((img_fk - img_up) * both).max())
        rows.append(("UV-textured render, nearest texel × shading", diff, float(np.abs(img_up).max()),
                     f"on the {int(both.sum())} pixels both cover"))  # fmt: skip
        rows += cropface_rows(work, inp, up)
        width = max(len(r[0]) for r in rows)
        print(f"{'function':<{width}}  max |fk - upstream|  max |upstream|  note")
        for name, diff, scale, note in rows:
            print(f"{name:<{width}}  {diff:18.3e}  {scale:14.3e}  {note}")
        eyes = HERE / "conformance_uvfit_eyeballs.py"
        print("\neyeball similarity fit + depth/height refinement (upstream's example head):", flush=True)
        cmd = [sys.executable, str(eyes), "--upstream", str(src)]  # its own side venv (numpy, scipy)
        subprocess.run(cmd, check=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
