# ruff: noqa: E501  (GMPI's calls in the child script are kept on one line each)
"""Conformance of ``fk gmpi train``'s pieces with apple/ml-gmpi's own code, run side by side.

What is compared (same inputs, GMPI's code in a throw-away venv, fk's here):
  discriminator  networks_cond_on_pos_enc.Discriminator (c_dim 16, cmap 16, mbstd group 1; 16², random
                 init), its state_dict loaded by name (strict) into fk_gmpi.discriminator.GmpiDiscriminator:
                 key order and D(x, flat w2c)
  D from pickle  GMPI's misc.copy_params_and_buffers(unconditional D -> conditional D, require_all=False)
                 vs fk_gmpi.discriminator.load_pretrained_discriminator (b4.out broadcast)
  shading        gmpi.core.light_renderer.LightRenderer.render on a random 8-plane MPI (FFHQ planes, 32²),
                 calls 0, 1, 3 and 6 of a 4-call ramp; the light positions GMPI draws are recorded and
                 given to fk_gmpi.lighting.LightAugment
  EMA            torch_ema.ExponentialMovingAverage (0.3, GMPI's) decay 0.999, 6 updates vs fk_gmpi.train.Ema

Usage (GMPI's source from a checkout; nothing of it is imported by fk or its tests):
    git clone https://github.com/apple/ml-gmpi /tmp/ml-gmpi      # or any checkout of 60c991f
    .venv/bin/python bench/conformance_gmpi_train.py --gmpi-src /tmp/ml-gmpi [--venv /tmp/gmpi_train_ref]
The venv is created on first use (torch==2.13.0 CPU, torchvision 0.28.0 for GMPI's GaussianBlur, torch_ema
0.3, numpy, scipy, tqdm, lazy, pillow, pyyaml, yacs, requests, dill); GMPI's tensorboard import is stubbed, and
torchvision's compiled ops (unused; built for CUDA torch) are skipped at import.
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

CHILD = r"""
import sys, types
import numpy as np, torch
tb = types.ModuleType("torch.utils.tensorboard"); tb.SummaryWriter = object
sys.modules["torch.utils.tensorboard"] = tb
sys.path.insert(0, SRC)
sys.path.insert(0, SRC + "/gmpi/models")  # GMPI's networks import torch_utils / dnnlib from there
# PyPI's torchvision is built against CUDA torch: its compiled ops do not load beside the CPU wheel, and its
# fake-op registrations then fail at import. GMPI needs only transforms.GaussianBlur (pure Python): skip them.
import torch.library as _tl
_register_fake = _tl.register_fake
_tl.register_fake = lambda *a, **k: (lambda f: f)
import torchvision
_tl.register_fake = _register_fake
from gmpi.models.networks.networks_cond_on_pos_enc import Discriminator
import gmpi.models.torch_utils.misc as misc
from gmpi.core.mpi_renderer import MPIRenderer
import gmpi.core.light_renderer as lr
from torch_ema import ExponentialMovingAverage
out = {}
torch.manual_seed(0)
D = Discriminator(16, 16, 3, channel_base=512, channel_max=32, cmap_dim=16, epilogue_kwargs={"mbstd_group_size": 1})
with torch.no_grad():
    for p in D.parameters():
        p.add_(0.05 * torch.randn_like(p))  # non-zero biases too
x = torch.randn(3, 3, 16, 16); c = torch.randn(3, 16)
with torch.no_grad():
    out["d_score"] = D(x, 1.0, c)[0].numpy()
out["d_x"], out["d_c"] = x.numpy(), c.numpy()
torch.save({"state": D.state_dict(), "keys": list(D.state_dict())}, OUT_DIR + "/D.pt")
D0 = Discriminator(0, 16, 3, channel_base=512, channel_max=32, epilogue_kwargs={"mbstd_group_size": 1})
with torch.no_grad():
    for p in D0.parameters():
        p.add_(0.05 * torch.randn_like(p))
D16 = Discriminator(16, 16, 3, channel_base=512, channel_max=32, cmap_dim=16, epilogue_kwargs={"mbstd_group_size": 1})
D16.requires_grad_(False)  # as gmpi/train.py before its copy
misc.copy_params_and_buffers(D0, D16, require_all=False)
torch.save({"src": D0.state_dict(), "dst": D16.state_dict()}, OUT_DIR + "/D_copy.pt")

R = MPIRenderer(n_mpi_planes=8, plane_min_d=0.95, plane_max_d=1.12, plan_spatial_enlarge_factor=1.001,
    plane_distances_sample_method="inverse", cam_fov=12.6, sphere_center_z=1.0, sphere_r=1.0,
    horizontal_mean=0.0, horizontal_std=0.289, vertical_mean=0.0, vertical_std=0.127,
    cam_pose_n_truncated_stds=2, cam_sample_method="truncated_gaussian", use_confined_volume=True,
    use_normalized_xyz=True, normalized_xyz_range="01")
xyz, _ = R.get_xyz(32, 32, ret_single_res=False)
tex = xyz[32]
dhw = R.static_mpi_plane_dhws
out["dhw"], out["tex"] = dhw.numpy(), tex.numpy()
recorded = []
orig = lr.gen_sphere_path
def recording(*a, **k):
    res = orig(*a, **k)
    recorded.append(np.asarray(res[0])[:, :3, 3])
    return res
lr.gen_sphere_path = recording
light = lr.LightRenderer(sphere_center_z=1.0, sphere_r=1.0, ka_max=0.9, kd_max=0.1, n_grow_iters=4)
torch.manual_seed(1); np.random.seed(1)
mpi = torch.rand(2, 8, 4, 32, 32)
mpi[:, -1, 3] = 1.0
out["mpi"] = mpi.numpy()
for call in range(7):
    shaded = light.render(mpi, dhw, tex)
    if call in (0, 1, 3, 6):
        out[f"shaded_{call}"] = shaded.numpy()
        out[f"light_pos_{call}"] = recorded[-1]

p = [torch.zeros(4, 3), torch.ones(5)]
ema = ExponentialMovingAverage(p, decay=0.999)
for k in range(6):
    with torch.no_grad():
        p[0].add_(float(k + 1)); p[1].mul_(1.5)
    ema.update(p)
out["ema"] = np.concatenate([s.reshape(-1).numpy() for s in ema.shadow_params])
out["ema_keys"] = np.array(sorted(ema.state_dict()))
out["ema_num_updates"] = np.array(ema.state_dict()["num_updates"])
np.savez(OUT_DIR + "/gmpi.npz", **out)
print("gmpi side done")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gmpi-src", type=Path, required=True, help="a checkout of apple/ml-gmpi")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/gmpi_train_ref"))
    args = ap.parse_args()
    from conformance_gmpi import GMPI_PACKAGES, report
    from fk_gmpi.discriminator import GmpiDiscriminator, load_pretrained_discriminator
    from fk_gmpi.lighting import LightAugment
    from fk_gmpi.train import Ema

    # conformance_gmpi.py's packages plus torchvision (GMPI's blur) and torch_ema (GMPI's EMA)
    py = side_venv(args.venv, [*GMPI_PACKAGES, "torchvision==0.28.0", "torch_ema==0.3"])
    work = Path(tempfile.mkdtemp(prefix="gmpi_train_conf_"))
    (work / "child.py").write_text(f"SRC = {str(args.gmpi_src)!r}\nOUT_DIR = {str(work)!r}\n" + textwrap.dedent(CHILD))
    subprocess.run([str(py), str(work / "child.py")], check=True, cwd=work)
    ref = np.load(work / "gmpi.npz")
    worst = {}

    saved = torch.load(work / "D.pt", weights_only=True)
    d = GmpiDiscriminator(16, 16, 3, channel_base=512, channel_max=32, cmap_dim=16, mbstd_group_size=1).eval()
    d.load_state_dict(saved["state"], strict=True)
    same_order = [k for k in d.state_dict()] == saved["keys"]
    print(f"discriminator state_dict keys and order identical to GMPI's: {same_order}")
    with torch.no_grad():
        score = d(torch.from_numpy(ref["d_x"]), torch.from_numpy(ref["d_c"]))
    worst["D"] = report("D(x, flat w2c), 3 images 16²", score.numpy(), ref["d_score"])

    copy = torch.load(work / "D_copy.pt", weights_only=True)
    mine = GmpiDiscriminator(16, 16, 3, channel_base=512, channel_max=32, cmap_dim=16, mbstd_group_size=1)
    load_pretrained_discriminator(mine, copy["src"], "D0")
    st = mine.state_dict()
    errs = [float((st[k] - v).abs().max()) for k, v in copy["dst"].items() if not k.startswith("mapping.")]
    worst["D copy"] = report("D from unconditional D (all but the random mapping)", max(errs), 0.0)

    light = LightAugment(__import__("fk.cameras.gmpi", fromlist=["camera_setup"]).camera_setup("FFHQ256"),
                         0.9, 0.1, 4)
    mpi = torch.from_numpy(ref["mpi"])
    dhw = torch.from_numpy(ref["dhw"])
    tex = torch.from_numpy(ref["tex"])
    for call in range(7):
        key = f"light_pos_{call}"
        pos = ref[key] if key in ref else np.array([[0.0, 0.0, 0.0]] * 2)
        dirs = np.array([0.0, 0.0, 1.0]) - pos
        dirs = dirs / (np.linalg.norm(dirs, axis=-1, keepdims=True) + 1e-8)
        shaded = light(mpi, dhw, tex, dirs)
        if f"shaded_{call}" in ref:
            worst[f"shade{call}"] = report(f"shading call {call} (ramp {min(1, call / 4):.2f})", shaded.numpy(),
                                           ref[f"shaded_{call}"])

    p = [torch.zeros(4, 3), torch.ones(5)]
    ema = Ema(p, 0.999)
    for k in range(6):
        p[0].add_(float(k + 1))
        p[1].mul_(1.5)
        ema.update(p)
    worst["ema"] = report("EMA shadows after 6 updates", np.concatenate([s.reshape(-1).numpy() for s in ema.shadow]),
                          ref["ema"])
    print(f"EMA state keys: fk {sorted(ema.state_dict())} / torch_ema {[str(k) for k in ref['ema_keys']]}; "
          f"num_updates {ema.num_updates} / {int(ref['ema_num_updates'])}")
    print(f"worst: {max(worst.values()):.3g}")


if __name__ == "__main__":
    main()
