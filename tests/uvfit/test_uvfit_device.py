"""The full path's ``device`` reaches every model, tensor and the renderer; CUDA without a GPU is refused.

This machine has no GPU, so placement is checked two ways: on the CPU (``auto`` resolves there) every
module parameter, buffer and loose tensor of the loaded networks is on the CPU and a stage runs; and
:meth:`Networks.to` is run to PyTorch's ``meta`` device (tensors with shapes but no data), where any tensor
it forgot stays behind on the CPU and is caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fk.errors import InputError
from scipy.io import savemat

ROOT = Path(__file__).resolve().parents[2]
DECODER = {"resolution": 16, "z_dim": 32, "w_dim": 32, "channel_base": 512, "channel_max": 32,
           "mapping_layers": 2}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from fk.models.hifi3dpp import load_hifi3dpp
    from fk.models.synthetic import hifi3dpp_info
    from fk.nets.reconnet import ReconNet
    from fk.testing.stylegan2 import write_stylegan2_pickle
    from fk_uvfit.full import FullFiles, reconnet_layout

    tmp = tmp_path_factory.mktemp("device")
    mat = tmp / "hifi3dpp_model_info.mat"
    savemat(str(mat), hifi3dpp_info(seed=5, grid=(16, 14)))
    torch.manual_seed(0)
    torch.save({"net_recon": ReconNet(reconnet_layout(load_hifi3dpp(mat))).state_dict()}, tmp / "rnet.pth")
    write_stylegan2_pickle(tmp / "texgan.pkl", **DECODER, with_discriminator=False)
    return FullFiles(tmp / "texgan.pkl", tmp / "rnet.pth", mat, None, None, None, None, None, wanted={})


def _placement(nets) -> dict[str, set[str]]:
    """Device type of every parameter/buffer of every module and every loose tensor, by name."""
    where = {}
    for name, module in nets.modules().items():
        for key, t in [*module.named_parameters(), *module.named_buffers()]:
            where[f"{name}.{key}"] = t.device.type
    for name, t in nets.tensors().items():
        where[name] = t.device.type
    return where


def test_every_module_tensor_and_the_renderer_follow_the_device(files):
    from fk.nets.arcface import IdentityFeatures, IResNet50
    from fk.nets.lpips import LPIPS
    from fk_uvfit import full as FU
    from fk_uvfit import losses as L

    nets = FU.load_networks(files, renderer="cpu", w_stat_samples=200, device="auto")
    assert nets.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if nets.device.type == "cpu":
        assert set(_placement(nets).values()) == {"cpu"}
    assert nets.render.ctx.device == nets.device
    # the optional loss networks move too
    nets.terms.identity = L.IdentityTerm(IdentityFeatures(IResNet50()))
    nets.terms.perceptual = LPIPS()
    nets.to("meta")
    where = _placement(nets)
    assert {"model.mean_shape", "texgan.synthesis.b4.const", "rnet.final_layers.0.weight", "w_avg",
            "render.proj", "arcface.net.fc.weight", "lpips.lin0.model.1.weight"} <= set(where)  # fmt: skip
    assert {k for k, v in where.items() if v != "meta"} == set()
    assert nets.model is nets.render.model  # one model: the renderer's
    assert nets.render.ctx.device == torch.device("meta")


def test_stage_one_and_two_run_on_the_resolved_device(files):
    """``device="auto"`` here: everything the stages return stays on the networks' device."""
    from fk_uvfit import full as FU
    from fk_uvfit import losses as L
    from fk_uvfit import stages as S

    nets = FU.load_networks(files, renderer="cpu", w_stat_samples=200, device="auto")
    ones = torch.ones(1, 1, 224, 224)
    with torch.no_grad():
        lm = nets.render(nets.model.zero_coeffs(), None)["lm"].cpu()
    data = S.Processed(img=torch.rand(1, 3, 224, 224), skin_mask=ones, parse_mask=ones, lm=lm)
    out = FU.fit_stages(nets, data, torch.zeros(1, 2, 3), {**L.STAGE2, "steps": 1}, {**L.STAGE3, "steps": 1})
    for t in (out[1][0], out[2].uv, out[2].latents_w, out[3].coeffs, out[3].latents_z):
        assert t.device == nets.device


def test_cuda_without_a_gpu_is_refused_in_one_line(files, tmp_path):
    from fk.devices import resolve_device
    from fk_uvfit.full import UVFitter

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="sees no CUDA GPU") as err:
        resolve_device("cuda")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not a torch device"):
        resolve_device("gpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InputError, match="cuda:1"):
        UVFitter(path="embedded", device="cuda:1")
    # the recipe refuses it before any item, with fk's exit code for "missing" (4), as other plugins do
    proc = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "recipe", "validate", str(ROOT / "recipes" / "uvfit.yaml"),
         "--set", "fit.device=cuda"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "FK_HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "device='cuda'" in ln]
    assert len(lines) == 1, proc.stderr
    assert "sees no CUDA GPU" in lines[0]
