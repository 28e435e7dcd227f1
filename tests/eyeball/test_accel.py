"""`train.accelerator`: the dispatch between fk's torch code and tiny-cuda-nn / nerfacc 0.3.1.

Neither library installs here (no CUDA), so the adapters run against small torch stand-ins injected into
``sys.modules`` with the libraries' call signatures: ``tinycudann.Encoding(n_input_dims, encoding_config)``
and ``tinycudann.Network(n_input_dims, n_output_dims, network_config)`` (half-precision outputs, one flat
``params``), ``nerfacc.OccupancyGrid(roi_aabb, resolution)`` with ``every_n_step`` and
``nerfacc.ray_marching(rays_o, rays_d, scene_aabb=, grid=, sigma_fn=, render_step_size=, stratified=,
alpha_thre=)`` returning int32 ray indices and (N, 1) intervals. The stand-ins check what they are given.
"""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
import torch
import yaml
from fk.errors import InputError

TCNN_HASH_KEYS = {"otype", "n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution",
                  "per_level_scale"}  # fmt: skip


def _fake_tcnn() -> types.ModuleType:
    from fk_eyeball.avatar import sh16
    from fk_eyeball.hashgrid import HashGrid

    class Encoding(torch.nn.Module):
        def __init__(self, n_input_dims, encoding_config, seed=1337, dtype=None):
            super().__init__()
            assert n_input_dims == 3
            cfg = dict(encoding_config)
            if cfg["otype"] == "HashGrid":
                assert TCNN_HASH_KEYS <= set(cfg) <= TCNN_HASH_KEYS | {"interpolation"}
                levels = cfg["n_levels"]
                finest = cfg["base_resolution"] * cfg["per_level_scale"] ** (levels - 1)
                self.impl = HashGrid(levels, cfg["n_features_per_level"], cfg["log2_hashmap_size"],
                                     cfg["base_resolution"], round(finest),
                                     smoothstep=cfg.get("interpolation") == "Smoothstep")  # fmt: skip
                self.params = self.impl.params  # tiny-cuda-nn: one flat parameter tensor per module
                self.n_output_dims = self.impl.out_dim
            else:
                assert cfg == {"otype": "SphericalHarmonics", "degree": 4}
                self.impl = lambda x: sh16(2 * x - 1)  # tiny-cuda-nn maps [0, 1] inputs to [-1, 1]
                self.n_output_dims = 16

        def forward(self, x):
            assert x.dtype == torch.float32
            assert x.shape[1] == 3
            return self.impl(x).half()

    class Network(torch.nn.Module):
        def __init__(self, n_input_dims, n_output_dims, network_config, seed=1337):
            super().__init__()
            assert network_config == {"otype": "FullyFusedMLP", "activation": "ReLU",
                                      "output_activation": "None", "n_neurons": 64,
                                      "n_hidden_layers": 2}  # fmt: skip
            self.n_input_dims, self.n_output_dims = n_input_dims, n_output_dims
            g = torch.Generator().manual_seed(seed)
            shapes = [(64, n_input_dims), (64, 64), (n_output_dims, 64)]
            self.params = torch.nn.Parameter(
                torch.cat([torch.randn(s, generator=g).reshape(-1) * 0.1 for s in shapes])
            )
            self.shapes = shapes

        def forward(self, x):
            assert x.dtype == torch.float32
            assert x.shape[1] == self.n_input_dims
            h, at = x, 0
            for i, (o, n) in enumerate(self.shapes):  # no biases, as FullyFusedMLP
                w = self.params[at : at + o * n].reshape(o, n)
                at += o * n
                h = h @ w.T
                if i < 2:
                    h = torch.relu(h)
            return h.half()

    module = types.ModuleType("tinycudann")
    module.Encoding, module.Network = Encoding, Network
    return module


def _fake_nerfacc() -> types.ModuleType:
    class OccupancyGrid(torch.nn.Module):
        def __init__(self, roi_aabb, resolution=128, contraction_type=None):
            super().__init__()
            self.register_buffer("_roi_aabb", torch.tensor(roi_aabb, dtype=torch.float32))
            r = int(resolution)
            self.register_buffer("resolution", torch.tensor([r, r, r], dtype=torch.int32))
            self.register_buffer("occs", torch.zeros(r**3))
            self.register_buffer("_binary", torch.zeros(r, r, r, dtype=torch.bool))
            ijk = torch.stack(torch.meshgrid(*[torch.arange(r)] * 3, indexing="ij"), -1).reshape(-1, 3)
            self.register_buffer("grid_coords", ijk)

        @property
        def binary(self):
            return self._binary

        def every_n_step(self, step, occ_eval_fn, occ_thre=1e-2, ema_decay=0.95, warmup_steps=256, n=16):
            if step % n:
                return
            r = int(self.resolution[0])
            idx = torch.arange(r**3) if step < warmup_steps else torch.randint(r**3, (r**3 // 4,))
            x01 = (self.grid_coords[idx] + torch.rand(len(idx), 3)) / r
            lo, hi = self._roi_aabb[:3], self._roi_aabb[3:]
            occ = occ_eval_fn(lo + x01 * (hi - lo))
            assert occ.shape == (len(idx), 1)
            self.occs[idx] = torch.maximum(self.occs[idx] * ema_decay, occ[:, 0])
            self._binary = (self.occs > self.occs.mean().clamp(max=occ_thre)).reshape(r, r, r)

    def ray_marching(rays_o, rays_d, t_min=None, t_max=None, scene_aabb=None, grid=None, sigma_fn=None,
                     alpha_fn=None, early_stop_eps=1e-4, alpha_thre=0.0, near_plane=None, far_plane=None,
                     render_step_size=1e-3, stratified=False, cone_angle=0.0):  # fmt: skip
        assert rays_o.dtype == rays_d.dtype == torch.float32
        assert scene_aabb.shape == (6,)
        lo, hi = scene_aabb[:3], scene_aabb[3:]
        inv = 1 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
        t0, t1 = (lo - rays_o) * inv, (hi - rays_o) * inv
        near = torch.minimum(t0, t1).amax(-1).clamp_min(0)
        far = torch.maximum(t0, t1).amin(-1)
        if stratified:
            near = near + torch.rand_like(near) * render_step_size
        k = int(math.ceil(float((far - near).clamp_min(0).max()) / render_step_size))
        ts = near[:, None] + torch.arange(k)[None] * render_step_size
        te = ts + render_step_size
        mid = rays_o[:, None] + rays_d[:, None] * ((ts + te) / 2)[..., None]
        r = grid.binary.shape[0]
        cell = ((mid - lo) / (hi - lo) * r).long().clamp(0, r - 1)
        keep = (te <= far[:, None]) & grid.binary[cell[..., 0], cell[..., 1], cell[..., 2]]
        ray, kk = torch.nonzero(keep, as_tuple=True)
        ray_indices, t_starts, t_ends = ray.int(), ts[ray, kk][:, None], te[ray, kk][:, None]
        if sigma_fn is not None:
            sigmas = sigma_fn(t_starts, t_ends, ray_indices.long())
            assert sigmas.shape == t_starts.shape
            alphas = 1 - torch.exp(-sigmas * (t_ends - t_starts))[:, 0]
            trans = torch.ones_like(alphas)
            for i in range(1, len(alphas)):  # transmittance before each sample, per ray
                same = ray_indices[i] == ray_indices[i - 1]
                trans[i] = trans[i - 1] * (1 - alphas[i - 1]) if same else 1.0
            vis = trans >= early_stop_eps
            ray_indices, t_starts, t_ends = ray_indices[vis], t_starts[vis], t_ends[vis]
        return ray_indices, t_starts, t_ends

    module = types.ModuleType("nerfacc")
    module.OccupancyGrid, module.ray_marching = OccupancyGrid, ray_marching
    return module


@pytest.fixture
def no_libraries(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinycudann", None)  # None in sys.modules: the import fails
    monkeypatch.setitem(sys.modules, "nerfacc", None)


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinycudann", _fake_tcnn())
    monkeypatch.setitem(sys.modules, "nerfacc", _fake_nerfacc())


def test_auto_picks_torch_without_the_libraries_and_on_cpu(no_libraries, monkeypatch):
    from fk_eyeball.accel import Backend, resolve_backend

    assert resolve_backend("auto", "cuda") == Backend("torch", "torch")
    assert resolve_backend("auto", "cpu") == Backend("torch", "torch")
    assert resolve_backend("torch", "cuda") == Backend("torch", "torch")
    monkeypatch.setitem(sys.modules, "tinycudann", _fake_tcnn())
    monkeypatch.setitem(sys.modules, "nerfacc", _fake_nerfacc())
    assert resolve_backend("auto", "cpu") == Backend("torch", "torch")  # both run on CUDA only
    assert resolve_backend("auto", "cuda") == Backend("tcnn", "nerfacc")
    new_api = types.ModuleType("nerfacc")  # nerfacc >= 0.5: no OccupancyGrid / ray_marching
    monkeypatch.setitem(sys.modules, "nerfacc", new_api)
    assert resolve_backend("auto", "cuda") == Backend("tcnn", "torch")
    assert resolve_backend("torch", "cuda") == Backend("torch", "torch")


def test_tcnn_requested_without_what_it_needs_is_a_one_line_error(no_libraries, monkeypatch):
    from fk_eyeball.accel import resolve_backend

    with pytest.raises(InputError, match="tinycudann package is not importable") as err:
        resolve_backend("tcnn", "cuda")
    assert "pip install" in err.value.hint
    assert "tiny-cuda-nn" in err.value.hint
    monkeypatch.setitem(sys.modules, "tinycudann", _fake_tcnn())
    with pytest.raises(InputError, match="nerfacc 0.3.x") as err:
        resolve_backend("tcnn", "cuda")
    assert "pip install nerfacc==0.3.1" in err.value.hint
    with pytest.raises(InputError, match="needs a CUDA device"):
        resolve_backend("tcnn", "cpu")
    with pytest.raises(InputError, match="'fast'"):
        resolve_backend("fast", "cpu")


def test_cli_refuses_tcnn_on_cpu_in_one_line(small_subject, tmp_path, capsys, no_libraries):
    from fk.cli.main import main

    root, _ = small_subject
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    cfg["data"]["meta_path"] = str(root / "transforms.json")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(
        ["eyeball", "train", "--config", str(path), "--out", str(tmp_path / "out"), "--accelerator", "tcnn"]
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert "accelerator tcnn needs a CUDA device" in err
    assert "Traceback" not in err
    cfg["train"]["accelerator"] = "fast"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["eyeball", "train", "--config", str(path), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert str(path) in err
    assert "train.accelerator is 'fast'" in err


def test_tcnn_adapters_give_float32_outputs_and_gradients(fakes):
    from fk_eyeball.accel import TcnnHashGrid
    from fk_eyeball.avatar import AvatarSpec, HybridAvatar

    torch.manual_seed(0)
    spec = AvatarSpec(bound=1.5, num_levels=4, level_dim=2, log2_hashmap_size=12, networks="tcnn",
                      eye_centers=[[-0.2, 0.2, 0.1], [0.2, 0.2, 0.1]], n_views=3)  # fmt: skip
    avatar = HybridAvatar(spec)
    assert isinstance(avatar.geometry.grid, TcnnHashGrid)
    assert avatar.geometry.grid.encoding.impl.smoothstep  # CoRA: Smoothstep for the geometry grid only
    assert not avatar.material.grid.encoding.impl.smoothstep
    with torch.no_grad():  # past the sphere initialisation, which ignores the hash features
        avatar.geometry.grid.encoding.params.normal_()
        for p in avatar.geometry.layers.parameters():
            p.normal_(0, 0.3)
    x01 = torch.rand(50, 3, requires_grad=True)
    s = avatar.sdf01(x01)
    assert s["sdf"].dtype == torch.float32
    assert s["sdf"].shape == (50,)
    assert s["feature"].shape == (50, spec.geo_feat_dim)
    (grad,) = torch.autograd.grad(s["sdf"].sum(), x01, create_graph=True)
    ((grad.norm(dim=-1) - 1) ** 2).mean().backward()  # the eikonal loss: a second derivative
    assert avatar.geometry.grid.encoding.params.grad.abs().sum() > 0
    m = avatar.material01(x01.detach())
    assert m["albedo"].shape == (50, 3)
    assert m["albedo"].dtype == torch.float32
    assert m["specular"].shape == m["roughness"].shape == (50, 1)
    assert ((m["roughness"] >= 0.1) & (m["roughness"] <= 0.9)).all()
    d = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    rgb = avatar.radiance(s["feature"].detach(), d, d)
    assert rgb.shape == (50, 3)
    assert rgb.dtype == torch.float32
    avatar.set_level(2)
    h = avatar.geometry.grid(x01.detach())
    assert not h[:, 4:].any()
    assert h[:, :4].abs().sum() > 0
    names = {n for n, _ in avatar.named_parameters()}
    assert {"geometry.grid.encoding.params", "material.grid.encoding.params", "material.mlp.network.params",
            "radiance.mlp.network.params"} <= names  # fmt: skip


def test_nerfacc_and_torch_samplers_agree_on_the_same_grid(fakes):
    from fk_eyeball.accel import NerfaccSampler, TorchSampler

    bound, res = 1.5, 8
    torch_s, nerf_s = TorchSampler(bound, res), NerfaccSampler(bound, res)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centre = ((ijk + 0.5) / res) * 2 * bound - bound
    occupied = centre.norm(dim=-1) < 1.0
    torch_s.binary.copy_(occupied)  # flat index (i·R + j)·R + k, as the fake's [i, j, k]
    nerf_s.grid._binary = occupied.reshape(res, res, res)
    torch.manual_seed(0)
    origins = torch.tensor([[0.0, 0.0, 3.0]]).expand(20, 3).contiguous()
    dirs = torch.nn.functional.normalize(torch.randn(20, 3) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)

    def sigma(x):  # a solid ball of radius 0.6: early stop inside it
        return torch.where(x.norm(dim=-1) < 0.6, torch.full_like(x[:, 0], 40.0), torch.zeros_like(x[:, 0]))

    step = 2 * bound * math.sqrt(3) / 64
    for fn in (None, sigma):
        a = torch_s.march_world(origins, dirs, step, stratified=False, sigma_fn=fn)
        b = nerf_s.march_world(origins, dirs, step, stratified=False, sigma_fn=fn)
        assert b.ray_index.dtype == torch.int64
        assert b.t_starts.shape == b.t_ends.shape == b.ray_index.shape
        assert torch.equal(a.ray_index, b.ray_index)
        torch.testing.assert_close(a.t_starts, b.t_starts, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            a.t_ends - a.t_starts, torch.full_like(a.t_starts, step), atol=1e-5, rtol=0
        )
        if fn is None:
            full = len(a.ray_index)
    assert len(a.ray_index) < full  # samples behind transmittance 1e-4 are gone
    x = torch.rand(30, 3) * 2 - 1
    nerf_s.update_every(0, lambda p: sigma(p) * step, warmup_steps=256, every_n=16)
    assert nerf_s.grid.binary.any()
    assert not nerf_s.update_every(3, lambda p: sigma(p) * step)  # only every 16th step
    assert x.shape == (30, 3)


def _config(root, tmp_path, **train):
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    cfg["data"]["meta_path"] = str(root / "transforms.json")
    cfg["renderer"].update(sample_batch_size=512, grid_resolution=16)
    cfg["train"].update({"val_freq": 1000, **train})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_training_through_the_adapters_records_the_backend_and_refuses_a_mismatch(
    small_subject, tmp_path, fakes, monkeypatch
):
    import fk_eyeball.accel as accel
    from fk_eyeball.avatar import load_avatar
    from fk_eyeball.train import Trainer

    real = accel.resolve_backend
    monkeypatch.setattr(
        accel, "resolve_backend", lambda a, d: accel.Backend("tcnn", "nerfacc")
    )  # CUDA stand-in
    root, _ = small_subject
    cfg = _config(root, tmp_path, max_steps=4)
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    lines = []
    Trainer(cfg, straight, log=lines.append).run()
    assert any("tiny-cuda-nn" in m and "nerfacc 0.3.1" in m for m in lines)
    t = Trainer(cfg, parts, log=lambda m: None)
    t.cfg["train"]["max_steps"] = 2
    t.run()
    Trainer(cfg, parts, resume=True, log=lambda m: None).run()
    rows = [json.loads(x) for x in (straight / "losses.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert (parts / "losses.jsonl").read_text() == (straight / "losses.jsonl").read_text()
    written = yaml.safe_load((straight / "config.yaml").read_text())
    assert written["train"]["backend"] == {"networks": "tcnn", "sampling": "nerfacc"}
    ckpt = torch.load(straight / "latest.pth", weights_only=True)
    assert ckpt["backend"] == {"networks": "tcnn", "sampling": "nerfacc"}
    assert ckpt["spec"]["networks"] == "tcnn"
    assert load_avatar(straight / "latest.pth").spec.networks == "tcnn"

    monkeypatch.setattr(accel, "resolve_backend", real)
    with pytest.raises(InputError, match="written with networks: tiny-cuda-nn") as err:
        Trainer(cfg, straight, resume=True, log=lambda m: None)  # CPU: the torch backend
    assert "--accelerator" in err.value.hint
    monkeypatch.setitem(sys.modules, "tinycudann", None)
    with pytest.raises(InputError, match="built with tiny-cuda-nn") as err:
        load_avatar(straight / "latest.pth")
    assert "pip install" in err.value.hint
