"""The upstream half of ``conformance_uvfit_model.py``: runs csbhr/FFHQ-UV's own RGB_Fitting functions.

Run only by ``conformance_uvfit_model.py``, inside its throw-away venv, as
``python conformance_uvfit_model_upstream.py PHASE UPSTREAM_RGB_FITTING WORK_DIR``; never imported by fk.
Upstream's source is put on sys.path of this process only. Inputs and outputs are .npz files in WORK_DIR.

nvdiffrast is not installed (it needs CUDA): a stand-in ``nvdiffrast.torch`` module is put in front of
upstream's renderer. In phase ``a`` its ``rasterize`` records the clip-space vertices upstream computes;
in phase ``b`` it returns the raster that fk's rasteriser made from exactly those vertices, and its
``interpolate`` applies nvdiffrast's barycentric rule; everything after the raster (mask, y convention,
the nearest-texel UV lookup, shading) is upstream's own code.
"""

from __future__ import annotations

import functools
import sys
import types
from pathlib import Path

import numpy as np
import torch


def _stand_in_nvdiffrast(work: Path, phase: str) -> None:
    mod = types.ModuleType("nvdiffrast.torch")
    calls: list[dict] = []

    class RasterizeCudaContext:  # noqa: D401 - a placeholder context
        def __init__(self, device=None):
            self.device = device

    def rasterize(ctx, pos, tri, resolution, ranges=None):
        calls.append({"pos": pos.detach().numpy().copy(), "tri": tri.numpy().copy()})
        if phase == "a":
            return torch.zeros(pos.shape[0], *resolution, 4), None
        rast = np.load(work / "fk_rast.npz")["rast"]
        return torch.as_tensor(rast), None

    def interpolate(attr, rast, tri):
        ids = rast[..., 3].long()
        corner = tri.long()[(ids - 1).clamp(min=0)]  # (B, H, W, 3)
        a = attr if attr.ndim == 3 else attr[None]
        gather = torch.stack([a[b][corner[b]] for b in range(rast.shape[0])])  # (B, H, W, 3, C)
        u, v = rast[..., 0:1], rast[..., 1:2]
        out = u * gather[..., 0, :] + v * gather[..., 1, :] + (1 - u - v) * gather[..., 2, :]
        return out * (ids > 0)[..., None].to(out.dtype), None

    mod.RasterizeCudaContext, mod.rasterize, mod.interpolate = RasterizeCudaContext, rasterize, interpolate
    mod.calls = calls
    pkg = types.ModuleType("nvdiffrast")
    pkg.torch = mod
    sys.modules["nvdiffrast"], sys.modules["nvdiffrast.torch"] = pkg, mod


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x))


def phase_a(work: Path) -> dict[str, np.ndarray]:
    """Face model, lighting, projection, losses, schedules, the sphere step, the cropface630 blends."""
    from model import losses as UL
    from model.hifi3dpp import ParametricFaceModel
    from model.optimizers import SphericalOptimizer
    from model.renderer_nvdiffrast import MeshRenderer
    from utils import mesh_utils
    from utils.data_utils import np2tensor, read_img, tensor2np

    inp = dict(np.load(work / "inputs.npz"))
    out: dict[str, np.ndarray] = {}
    fm = ParametricFaceModel(str(work / "hifi3dpp_model_info.mat"), str(work / "unwrap_1024_info.mat"),
                             device="cpu")  # fmt: skip
    coeffs = _t(inp["coeffs"])
    d = fm.split_coeff(coeffs)
    vertex, texture, shading, color, lm = fm.compute_for_render(d)
    id_v, exp_v, alb = fm.compute_for_mesh(d)
    out.update(vertex_cam=vertex, albedo=texture, shading=shading, color=color, landmarks=lm, shape_id=id_v,
               shape_exp=exp_v, rotation=fm.compute_rotation(d["angle"]),
               normals=fm.compute_norm(exp_v))  # fmt: skip
    out["unwrap_uv"] = mesh_utils.unwrap_vertex_to_uv(
        texture[0].numpy(), fm.unwrap_uv_idx_v_idx.numpy(), fm.unwrap_uv_idx_bw.numpy()
    )

    # losses on the same tensors fk gets
    img_a, img_b, mask = _t(inp["img_a"]), _t(inp["img_b"]), _t(inp["mask"])
    out["photo_loss"] = UL.photo_loss(img_a, img_b, mask)
    out["landmark_loss"] = UL.landmark_loss(_t(inp["lm_pred"]), _t(inp["lm_gt"]))
    out["geocross"] = UL.latents_geocross_loss(_t(inp["ws"]))
    reg_id, reg_exp, reg_tex, reg_gamma = UL.coeffs_reg_loss(d)
    out.update(reg_id=reg_id, reg_exp=reg_exp, reg_gamma=reg_gamma)
    out["identity_loss"] = UL.perceptual_loss(_t(inp["feat_a"]), _t(inp["feat_b"]))

    # learning-rate ramps, read from each fitter's own update_learning_rate and param groups
    from model import uvtex_spherical_fixshape_fitter as F2
    from model import uvtex_wspace_shape_joint_fitter as F3

    s2 = {"initial_lr": 0.1, "lr_rampdown_length": 0.25, "total_step": 100}
    s3 = {"initial_lr": 0.01, "lr_rampdown_length": 0.4, "total_step": 200, "tex_lr_scale": 0.05}
    out["lr_stage2"] = _lr_track(F2.Fitter, fm, inp, s2)
    out["lr_stage3"] = _lr_track(F3.Fitter, fm, inp, s3, z0=True)

    # the spherical step: one Adam step of upstream's optimizer on a fixed gradient
    z = _t(inp["z0"]).clone().requires_grad_(True)
    opt = SphericalOptimizer([z], torch.optim.Adam, betas=(0.9, 0.999), lr=0.1)
    z.grad = _t(inp["z_grad"])
    opt.step()
    out["sphere_step"] = z.detach()

    # the renderer up to the raster: record the clip-space vertices (phase b renders with fk's raster)
    fov = 2 * np.arctan(112.0 / 1015.0) * 180 / np.pi
    renderer = MeshRenderer(fov=fov, znear=5.0, zfar=15.0, rasterize_size=224)
    renderer.ctx = sys.modules["nvdiffrast.torch"].RasterizeCudaContext()  # its CUDA-index print needs a GPU
    feat = torch.cat([fm.vtx_vt[None], shading], 2)
    renderer(vertex.clone(), fm.face_buf, feat=feat, uv_map=_t(inp["uv_map"]))
    calls = sys.modules["nvdiffrast.torch"].calls
    out["clip_pos"] = calls[-1]["pos"]

    # cropface630: upstream's synth_uv_map (paste + differentiable blend + resize) on a given GAN output
    import network.texgan_cropface630resize1024 as TC

    TC.np2tensor = functools.partial(np2tensor, device="cpu")  # upstream's default device is 'cuda'
    topo = work / "topo"
    fake = types.SimpleNamespace()
    face = _t(inp["face"])
    fake.G = types.SimpleNamespace(synthesis=lambda w, noise_mode: face * 2 - 1,
                                   mapping=types.SimpleNamespace(num_ws=18))  # fmt: skip
    fake.hair_mask = read_img(str(topo / "hair_mask.png"), resize=(1664, 1664), dst_range=1.0)
    fake.blend_mask = read_img(str(topo / "minor_valid_whole_mask.png"), resize=(1664, 1664), dst_range=1.0)
    fake.base_uv = read_img(str(topo / "template_base_uv.png"), resize=(1664, 1664))
    fake.base_uv_tensor = np2tensor(fake.base_uv, device="cpu")
    fake.output_uv_size = 1024
    w = torch.zeros(1, 18, 512)
    out["cropface_fit_map"] = TC.TextureGAN.synth_uv_map(fake, w)
    out["cropface_no_blend"] = TC.TextureGAN.synth_uv_map(fake, w, is_blend=False)
    # the saving blend (ours_fit_model_cropface630resize1024.infer_render) on that map
    template = read_img(str(topo / "template_base_uv.png"), resize=(1024, 1024))
    hair = read_img(str(topo / "hair_mask.png"), resize=(1024, 1024), dst_range=1.0)
    major = read_img(str(topo / "major_valid_whole_mask.png"), resize=(1024, 1024), dst_range=1.0)
    saved = mesh_utils.blend_uv_with_template(tensor2np(out["cropface_fit_map"][:1]), template, hair, major)
    out["cropface_saved"] = saved
    out["match_color"] = mesh_utils.match_color_in_yuv(inp["mc_src"], inp["mc_dst"], inp["mc_mask"])
    out["pyramid_blend"] = mesh_utils.laplacian_pyramid_blend(inp["mc_src"], inp["mc_dst"], inp["pb_mask"])
    return out


def _lr_track(fitter_cls, fm, inp, kwargs, z0: bool = False) -> np.ndarray:
    """Every group's learning rate at every step, from upstream's own ``Fitter`` (its __init__ builds the
    groups; a stand-in recognition net, texture GAN and logger carry no numbers into it)."""

    class Recog(torch.nn.Module):
        def forward(self, img, m):
            return torch.zeros(img.shape[0], 512)

    tex_gan = types.SimpleNamespace(get_init_z_latents=lambda: torch.zeros(1, 18, 512, requires_grad=True),
                                    map_z_to_w=lambda z: z * 1.0)  # fmt: skip
    ones = torch.ones(1, 1, 224, 224)
    data = {"img": torch.zeros(1, 3, 224, 224), "skin_mask": ones, "parse_mask": ones,
            "lm": torch.zeros(1, 68, 2), "M": torch.zeros(1, 2, 3)}  # fmt: skip
    init_z = torch.zeros(1, 18, 512) if z0 else None
    fitter = fitter_cls(facemodel=fm, tex_gan=tex_gan, renderer=None, net_recog=Recog(), net_vgg=Recog(),
                        logger=None, input_data=data, init_coeffs=_t(inp["coeffs"]).clone(),
                        init_latents_z=init_z, **kwargs)  # fmt: skip
    opt = getattr(fitter.optimizer, "opt", fitter.optimizer)
    track = []
    for step in range(kwargs["total_step"]):
        fitter.now_step = step
        fitter.update_learning_rate()
        track.append([g["lr"] for g in opt.param_groups])
    return np.asarray(track)


def phase_b(work: Path) -> dict[str, np.ndarray]:
    """Upstream's MeshRenderer after the raster (fk's raster of upstream's own clip-space vertices)."""
    from model.hifi3dpp import ParametricFaceModel
    from model.renderer_nvdiffrast import MeshRenderer

    inp = dict(np.load(work / "inputs.npz"))
    fm = ParametricFaceModel(str(work / "hifi3dpp_model_info.mat"), str(work / "unwrap_1024_info.mat"),
                             device="cpu")  # fmt: skip
    d = fm.split_coeff(_t(inp["coeffs"]))
    vertex, _, shading, _, _ = fm.compute_for_render(d)
    fov = 2 * np.arctan(112.0 / 1015.0) * 180 / np.pi
    renderer = MeshRenderer(fov=fov, znear=5.0, zfar=15.0, rasterize_size=224)
    renderer.ctx = sys.modules["nvdiffrast.torch"].RasterizeCudaContext()  # its CUDA-index print needs a GPU
    feat = torch.cat([fm.vtx_vt[None], shading], 2)
    mask, _, image = renderer(vertex, fm.face_buf, feat=feat, uv_map=_t(inp["uv_map"]))
    return {"render_mask": mask, "render_image": image}


def main() -> None:
    phase, upstream, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    sys.path.insert(0, str(upstream))  # upstream's RGB_Fitting, in this process only
    _stand_in_nvdiffrast(work, phase)
    torch.set_num_threads(1)
    result = phase_a(work) if phase == "a" else phase_b(work)
    arrays = {k: v.detach().numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in result.items()}
    np.savez(work / f"upstream_{phase}.npz", **arrays)


if __name__ == "__main__":
    main()
