# ruff: noqa: E501  (GMPI's calls in the child script are kept on one line each)
"""Conformance of fk's GMPI pieces with apple/ml-gmpi's own functions, run side by side.

What is compared (same inputs, GMPI's code in a throw-away venv, fk's here):
  cameras    gen_sphere_path, compute_w2c_mat_from_estimated_pose_ffhq / _afhq (normalize_trans),
             compute_pitch_yaw_from_w2c_mat            vs fk.cameras.gmpi
  planes     MPIRenderer(...).static_mpi_plane_dhws (FFHQ, AFHQCat; 32 planes, confined)
                                                       vs fk_gmpi.mpi.plane_dhw
  renderer   MPIRenderer.render of a random 32-plane MPI at 64² to 3 views (colour, depth)
                                                       vs fk_gmpi.mpi.render_mpi
  generator  GMPI's Generator for each of the four variants (tiny: 16², 4 planes, random init), its
             state_dict loaded by name (strict) into fk's GmpiGenerator, noise_mode='const'
                                                       vs fk_gmpi.generator.GmpiGenerator

Usage (GMPI's source from a checkout; nothing of it is imported by fk or its tests):
    git clone https://github.com/apple/ml-gmpi /tmp/ml-gmpi      # or any checkout of 60c991f
    .venv/bin/python bench/conformance_gmpi.py --gmpi-src /tmp/ml-gmpi [--venv /tmp/gmpi_ref]
The venv is created on first use (torch==2.13.0 CPU, numpy, scipy, tqdm, lazy, pillow, pyyaml, yacs, requests, dill);
GMPI's tensorboard import is stubbed (unused here).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch
from _sidevenv import side_venv

VARIANTS = {
    "vanilla": ("none", "none"),
    "depth": ("normalize_add_z", "modulated_lrelu"),
    "learnable": ("normalize_add_z", "learnable_param"),
    "depth2alpha": ("depth2alpha", "modulated_lrelu"),
}
YAWS = [0.0, 0.35, -0.5]
PITCHES = [0.0, -0.2, 0.15]
ANGLES = [[0.1, -0.2, 0.05], [-0.05, 0.3, -0.02], [0.0, 0.0, 0.0]]
TRANS = [[0.3, -0.2, 0.5], [0.0, 0.1, -0.3], [0.0, 0.0, 0.0]]

CHILD = r"""
import sys, types, json
import numpy as np, torch
tb = types.ModuleType("torch.utils.tensorboard"); tb.SummaryWriter = object
sys.modules["torch.utils.tensorboard"] = tb
sys.path.insert(0, SRC)
from gmpi.utils import cam_utils
from gmpi.core.mpi_renderer import MPIRenderer
out = {}
yaws = torch.tensor(YAWS, dtype=torch.float32).reshape(-1, 1)
pitches = torch.tensor(PITCHES, dtype=torch.float32).reshape(-1, 1)
c2w, _, _ = cam_utils.gen_sphere_path(len(YAWS), np.array([0, 0, 1.0]), 1.0, given_yaws=yaws, given_pitches=pitches)
out["c2w_ffhq"] = np.asarray(c2w)
out["w2c_deep3d"] = cam_utils.compute_w2c_mat_from_estimated_pose_ffhq(
    torch.tensor(ANGLES), torch.tensor(TRANS), 1.0, 1.0, normalize_trans=True).numpy()
out["w2c_deep3d_raw"] = cam_utils.compute_w2c_mat_from_estimated_pose_ffhq(
    torch.tensor(ANGLES), torch.tensor(TRANS), 1.0, 1.0, normalize_trans=False).numpy()
eg3d = torch.tensor(np.load(EG3D_C2W), dtype=torch.float32)
out["w2c_afhq"] = cam_utils.compute_w2c_mat_from_estimated_pose_afhq(eg3d, 2.7, 2.7, normalize_trans=True).numpy()
y, p = cam_utils.compute_pitch_yaw_from_w2c_mat(torch.inverse(torch.tensor(c2w).float()), torch.FloatTensor([0, 0, 1.0]))
out["yaw_back"], out["pitch_back"] = y.numpy(), p.numpy()

def renderer(setup, n):
    return MPIRenderer(n_mpi_planes=n, plane_min_d=setup[0], plane_max_d=setup[1], plan_spatial_enlarge_factor=1.001,
        plane_distances_sample_method="inverse", cam_fov=setup[2], sphere_center_z=setup[3], sphere_r=setup[4],
        horizontal_mean=0.0, horizontal_std=setup[5], vertical_mean=0.0, vertical_std=setup[6],
        cam_pose_n_truncated_stds=setup[7], cam_sample_method="truncated_gaussian", use_confined_volume=True,
        use_normalized_xyz=True, normalized_xyz_range="01")
ffhq = renderer((0.95, 1.12, 12.6, 1.0, 1.0, 0.289, 0.127, 2), 32)
out["dhw_ffhq"] = ffhq.static_mpi_plane_dhws.numpy()
out["dhw_afhq"] = renderer((2.55, 2.8, 13.39, 2.7, 2.7, 0.19, 0.15, 3), 32).static_mpi_plane_dhws.numpy()
torch.manual_seed(0)
rgba = torch.rand(1, 32, 4, 48, 48)
rgba[:, -1, 3] = 1.0
out["mpi_rgba"] = rgba.numpy()
cols, deps = [], []
ffhq.set_cam(12.6, 64, 64)
for yy, pp in zip(YAWS, PITCHES):
    c, d, _, _ = ffhq.render(rgba, 64, 64, horizontal_mean=yy, horizontal_std=0.0, vertical_mean=pp, vertical_std=0.0,
                             random_pose=False, given_yaws=torch.tensor([[yy]]), given_pitches=torch.tensor([[pp]]),
                             assert_not_out_of_last_plane=False)
    cols.append(((c + 1) / 2).numpy()); deps.append(d.numpy())
out["render_rgb"], out["render_depth"] = np.concatenate(cols), np.concatenate(deps)

small = renderer((0.95, 1.12, 12.6, 1.0, 1.0, 0.289, 0.127, 2), 4)
_, nxyz = small.get_xyz(16, 16, ret_single_res=False, only_z=False)
interp = small.get_xyz_interpolate_ws(32, 4)  # the learnable network always has 32 tokens
for name, (cond, embed) in VARIANTS.items():
    if cond == "depth2alpha":
        from gmpi.models.networks.networks_vanilla_depth2alpha import Generator
    elif cond == "none":
        from gmpi.models.networks.networks_vanilla import Generator
    elif embed == "learnable_param":
        from gmpi.models.networks.networks_pos_enc_learnable_param import Generator
    else:
        from gmpi.models.networks.networks_cond_on_pos_enc import Generator
    torch.manual_seed(1)
    G = Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, n_planes=4, plane_channels=4, pos_enc_multires=0,
                  torgba_cond_on_pos_enc=cond, torgba_cond_on_pos_enc_embed_func=embed, torgba_sep_background=True,
                  build_background_from_rgb=True, build_background_from_rgb_ratio=0.05,
                  cond_on_pos_enc_only_alpha=True, gen_alpha_largest_res=8, background_alpha_full=True,
                  G_final_img_act="tanh", depth2alpha_z_range=1.0, depth2alpha_n_z_bins=256,
                  mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 512, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None}).eval()
    with torch.no_grad():
        for p in G.parameters():  # make the freshly initialised plane layers non-trivial
            p.add_(0.1 * torch.randn_like(p))
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        img = G(z, torch.empty(2, 0), nxyz, False, 4, z_interpolation_ws=interp, truncation_psi=0.8,
                noise_mode="const")
    torch.save({"state": G.state_dict(), "params": [n for n, _ in G.named_parameters()]}, OUT_DIR + f"/G_{name}.pt")
    out[f"gen_{name}"] = img.numpy()
    out[f"gen_{name}_z"] = z.numpy()
np.savez(OUT_DIR + "/gmpi.npz", **out)
print("gmpi side done")
"""


GMPI_PACKAGES = ["torch==2.13.0", "numpy", "scipy", "tqdm", "lazy", "pillow", "pyyaml", "yacs", "requests", "dill"]


def report(name: str, fk_value, ref_value) -> float:
    err = float(np.max(np.abs(np.asarray(fk_value, np.float64) - np.asarray(ref_value, np.float64))))
    print(f"{name:<44} max |fk - GMPI| = {err:.3g}")
    return err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gmpi-src", type=Path, required=True, help="a checkout of apple/ml-gmpi")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/gmpi_ref"))
    args = ap.parse_args()
    from fk.cameras import eg3d
    from fk.cameras import gmpi as cams
    from fk_gmpi.generator import GmpiGenerator, PlaneInput, interpolation_weights
    from fk_gmpi.mpi import plane_dhw, render_mpi

    py = side_venv(args.venv, GMPI_PACKAGES)
    work = Path(tempfile.mkdtemp(prefix="gmpi_conf_"))
    eg3d_c2w = eg3d.lookat_cam2world(
        np.array([np.pi / 2, np.pi / 2 + 0.2, np.pi / 2 - 0.15]),
        np.array([np.pi / 2, np.pi / 2 - 0.1, np.pi / 2 + 0.1]),
        radius=2.7,
        pivot=(0, 0, 0),
    )
    np.save(work / "eg3d.npy", eg3d_c2w)
    header = (
        f"SRC = {str(args.gmpi_src)!r}\nOUT_DIR = {str(work)!r}\nEG3D_C2W = {str(work / 'eg3d.npy')!r}\n"
        f"YAWS = {YAWS!r}\nPITCHES = {PITCHES!r}\nANGLES = {ANGLES!r}\nTRANS = {TRANS!r}\n"
        f"VARIANTS = {VARIANTS!r}\n"
    )
    (work / "child.py").write_text(header + textwrap.dedent(CHILD))
    subprocess.run([str(py), str(work / "child.py")], check=True, cwd=work)
    ref = np.load(work / "gmpi.npz")

    setup = cams.camera_setup("FFHQ")
    worst = {}
    worst["c2w"] = report(
        "gen_sphere_path c2w (FFHQ)", cams.c2w_from_yaw_pitch(YAWS, PITCHES, setup), ref["c2w_ffhq"]
    )
    worst["w2c"] = report(
        "w2c from Deep3D pose (normalize_trans)",
        cams.w2c_from_deep3d_pose(ANGLES, TRANS, 1.0, 1.0, True),
        ref["w2c_deep3d"],
    )
    report(
        "w2c from Deep3D pose (raw)",
        cams.w2c_from_deep3d_pose(ANGLES, TRANS, 1.0, 1.0, False),
        ref["w2c_deep3d_raw"],
    )
    report(
        "w2c from EG3D c2w (AFHQCat)", cams.w2c_from_eg3d_cam2world(eg3d_c2w, 2.7, 2.7, True), ref["w2c_afhq"]
    )
    y, p = cams.yaw_pitch_from_w2c(np.linalg.inv(ref["c2w_ffhq"]), (0, 0, 1.0))
    report("yaw/pitch from w2c", np.concatenate([y, p]), np.concatenate([ref["yaw_back"], ref["pitch_back"]]))
    dhw = plane_dhw(setup, 32)
    worst["planes"] = report("plane table FFHQ (z, h, w)", dhw, ref["dhw_ffhq"])
    report("plane table AFHQCat (z, h, w)", plane_dhw(cams.camera_setup("AFHQCat"), 32), ref["dhw_afhq"])
    rgba = torch.from_numpy(ref["mpi_rgba"])
    c2w = torch.from_numpy(cams.c2w_from_yaw_pitch(YAWS, PITCHES, setup)).float()
    K = torch.from_numpy(cams.intrinsics(12.6, 64, 64)).float()
    out = render_mpi(rgba, torch.from_numpy(ref["dhw_ffhq"]), c2w[None], K, (64, 64))
    worst["render"] = report("render colour (3 views, 64², 32 planes)", out.rgb[0].numpy(), ref["render_rgb"])
    report("render depth", out.depth[0].numpy(), ref["render_depth"])
    nz = torch.linspace(0, 1, 4)  # placeholder, replaced below by GMPI's own normalised depths
    zs = cams.sample_plane_depths(0.95, 1.12, 4)
    nz = torch.from_numpy((zs - np.float32(0.95)) / np.float32(1.12 - 0.95))
    for name, (cond, embed) in VARIANTS.items():
        saved = torch.load(work / f"G_{name}.pt", weights_only=True)
        gen = GmpiGenerator(
            z_dim=32,
            w_dim=32,
            img_resolution=16,
            n_planes=4,
            torgba_cond_on_pos_enc=cond,
            torgba_cond_on_pos_enc_embed_func=embed,
            gen_alpha_largest_res=8,
            mapping_kwargs={"num_layers": 2},
            synthesis_kwargs={"channel_base": 512, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None},
        ).eval()
        gen.load_state_dict(saved["state"], strict=True)
        assert gen.gmpi_parameter_names() == saved["params"], f"{name}: parameter order differs"
        interp = interpolation_weights(0.95, 1.12, 32, 4) if name == "learnable" else None
        with torch.no_grad():
            mine = gen(
                torch.from_numpy(ref[f"gen_{name}_z"]),
                PlaneInput(nz, interp),
                truncation_psi=0.8,
                noise_mode="const",
            )
        worst[name] = report(f"generator {name} (B=2, 4 planes, 16²)", mine.numpy(), ref[f"gen_{name}"])
    print("names and parameter order: identical to GMPI's for all four variants (strict load)")
    print(f"worst: {max(worst.values()):.3g}")


if __name__ == "__main__":
    main()
