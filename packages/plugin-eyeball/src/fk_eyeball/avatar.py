"""CoRA's hybrid avatar (cora.md §1.1, §6-8): a neural head SDF, two analytic eyeball spheres, materials.

Convention:
- World points ``x`` (the units of ``transforms.json``) map to the networks' cube by
  ``x01 = (x + bound)/(2·bound)``; the networks, the eyeball spheres and the SDFs live in x01 units
  (as in CoRA). :meth:`HybridAvatar.head_sdf` and :meth:`HybridAvatar.sdf` return **world** units
  (x01 SDF × 2·bound).
- Head: hash grid (smoothstep) + MLP ``[2·x01 - 1, hash] -> 64 -> 64 -> geo_feat_dim``, Softplus(β=100),
  weight-normalised, geometric (sphere) initialisation of radius 0.5 in the ``2·x01 - 1`` cube; output
  channel 0 is the SDF, the whole vector is the feature for the radiance head.
- Eyeballs (``hybrid``): ``||x01 - c01|| - r01`` with one learnable ``c01`` per eye (``leye`` = CoRA's left,
  the image-left eye; then ``reye``), one shared radius ``r_world = sigmoid(p)·(max - min) + min``; the
  scene SDF is ``min(head, leye, reye)``; where an eye wins, specular = 0.2 and roughness = 0.05.
- Materials: a second hash grid (linear) + ReLU MLP -> sigmoid 5: albedo (3, linear), specular s,
  roughness ``r·min_roughness + (1 - r)·max_roughness``. Shading normals are the normalised gradient of
  the composite SDF.
- Density: VolSDF's Laplace CDF, ``σ = Ψ_β(-sdf)/β``, ``β = |β_p| + 1e-4`` (x01 units).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fk_eyeball.brdf import EYE_ROUGHNESS, EYE_SPECULAR, sh_basis
from fk_eyeball.hashgrid import HashGrid

EYES = ("leye", "reye")


def sh16(d: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit directions -> (N, 16) real SH up to l = 3: the radiance head's direction encoding
    (tiny-cuda-nn's SphericalHarmonics degree 4 in CoRA; an auxiliary colour, never exported)."""
    x, y, z = d.unbind(-1)
    l3 = [
        0.5900435899 * y * (3 * x * x - y * y),
        2.8906114426 * x * y * z,
        0.4570457995 * y * (5 * z * z - 1),
        0.3731763326 * z * (5 * z * z - 3),
        0.4570457995 * x * (5 * z * z - 1),
        1.4453057213 * z * (x * x - y * y),
        0.5900435899 * x * (x * x - 3 * y * y),
    ]
    return torch.cat([sh_basis(d), torch.stack(l3, dim=-1)], dim=-1)


@dataclass
class AvatarSpec:
    """Everything that shapes the networks (saved in every checkpoint; config keys in the comments)."""

    bound: float  # data.bound
    num_levels: int = 16  # network.num_levels
    level_dim: int = 2  # network.level_dim
    geo_feat_dim: int = 16  # network.geo_feat_dim
    log2_hashmap_size: int = 14
    min_roughness: float = 0.1  # brdf.min_roughness
    max_roughness: float = 0.9  # brdf.max_roughness
    hybrid: bool = True
    eye_centers: list = field(default_factory=lambda: [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # world / bound
    eyeball_min_size: float = 0.01  # data.eyeball_min_size (world)
    eyeball_max_size: float = 0.02  # data.eyeball_max_size (world)
    fix_eyeball_center: bool = False  # data.fix_eyeball_center (freezes centres and radius)
    n_views: int = 500  # rows of the per-view SH occlusion table (CoRA: 500)
    sh_scale: float = 0.1  # data.sh_scale
    sh_beta: float = 10.0  # data.beta
    networks: str = "torch"  # fk: "torch" (fk's hash grid + MLPs) or "tcnn" (tiny-cuda-nn's, see accel.py)

    @classmethod
    def from_dict(cls, d: dict) -> AvatarSpec:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _grid(spec: AvatarSpec, smoothstep: bool) -> torch.nn.Module:
    if spec.networks == "tcnn":
        from fk_eyeball.accel import TcnnHashGrid

        return TcnnHashGrid(spec.num_levels, spec.level_dim, spec.log2_hashmap_size, smoothstep=smoothstep)
    return HashGrid(spec.num_levels, spec.level_dim, spec.log2_hashmap_size, smoothstep=smoothstep)


def _mlp(dims: list[int], act: torch.nn.Module, networks: str = "torch") -> torch.nn.Module:
    if networks == "tcnn":  # CoRA's material and radiance MLPs: FullyFusedMLP 2 x 64, ReLU
        from fk_eyeball.accel import TcnnMLP

        return TcnnMLP(dims[0], dims[-1])
    layers: list[torch.nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act)
    return torch.nn.Sequential(*layers)


class GeometryNet(torch.nn.Module):
    """``x01 -> (sdf01, feature)``: CoRA's VolumeSDF with the IGR sphere initialisation."""

    def __init__(self, spec: AvatarSpec) -> None:
        super().__init__()
        self.grid = _grid(spec, smoothstep=True)
        dims = [3 + self.grid.out_dim, 64, 64, spec.geo_feat_dim]  # CoRA's VanillaMLP: torch with either
        linears = []
        for i in range(3):
            lin = torch.nn.Linear(dims[i], dims[i + 1])
            with torch.no_grad():
                if i == 2:
                    lin.weight.normal_(math.sqrt(math.pi) / math.sqrt(dims[i]), 1e-4)
                    lin.bias.fill_(-0.5)
                else:
                    lin.weight.normal_(0.0, math.sqrt(2) / math.sqrt(dims[i + 1]))
                    lin.bias.zero_()
                    if i == 0:
                        lin.weight[:, 3:] = 0.0
            linears.append(torch.nn.utils.parametrizations.weight_norm(lin))
        self.layers = torch.nn.ModuleList(linears)
        self.act = torch.nn.Softplus(beta=100)

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([2 * x01 - 1, self.grid(x01)], dim=-1)
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h[:, 0], h


class MaterialNet(torch.nn.Module):
    """``x01 -> (albedo (N, 3), specular (N, 1), roughness (N, 1))``: CoRA's VolumeMaterial."""

    def __init__(self, spec: AvatarSpec) -> None:
        super().__init__()
        self.grid = _grid(spec, smoothstep=False)
        self.mlp = _mlp([3 + self.grid.out_dim, 64, 64, 5], torch.nn.ReLU(), spec.networks)
        self.min_roughness, self.max_roughness = spec.min_roughness, spec.max_roughness

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = torch.sigmoid(self.mlp(torch.cat([2 * x01 - 1, self.grid(x01)], dim=-1)))
        r = out[:, 4:5]
        return out[:, :3], out[:, 3:4], r * self.min_roughness + (1 - r) * self.max_roughness


class RadianceHead(torch.nn.Module):
    """NeuS-style auxiliary colour ``[feature, dir, SH(dir), normal] -> sigmoid RGB`` (never exported)."""

    def __init__(self, spec: AvatarSpec) -> None:
        super().__init__()
        self.mlp = _mlp([spec.geo_feat_dim + 3 + 16 + 3, 64, 64, 3], torch.nn.ReLU(), spec.networks)
        if spec.networks == "tcnn":
            from fk_eyeball.accel import TcnnSphericalHarmonics

            self.sh = TcnnSphericalHarmonics()
        else:
            self.sh = sh16

    def forward(self, feature: torch.Tensor, dirs: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(torch.cat([feature, dirs, self.sh(dirs), normal], dim=-1)))


class HybridAvatar(torch.nn.Module):
    """The head SDF, the two eyeball spheres (when ``spec.hybrid``), materials, SH lighting and β."""

    def __init__(self, spec: AvatarSpec) -> None:
        super().__init__()
        self.spec = spec
        self.bound = float(spec.bound)
        self.geometry = GeometryNet(spec)
        self.material = MaterialNet(spec)
        self.radiance = RadianceHead(spec)
        self.beta_p = torch.nn.Parameter(torch.tensor(0.1))
        self.light_scale = torch.nn.Parameter(torch.tensor(1.0))
        self.sh_env = torch.nn.Parameter(torch.zeros(3, 9))
        self.sh_occlusion = torch.nn.Parameter(torch.zeros(spec.n_views, 9))
        centres = torch.tensor(spec.eye_centers, dtype=torch.float32).reshape(2, 3)
        self.eye_c01 = torch.nn.Parameter((centres + 1) / 2, requires_grad=not spec.fix_eyeball_center)
        self.eye_radius_p = torch.nn.Parameter(torch.tensor(0.0), requires_grad=not spec.fix_eyeball_center)

    # ---- coordinates and geometry (x01 units unless the name says world) ----
    def to01(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.bound) / (2 * self.bound)

    @property
    def beta(self) -> torch.Tensor:
        return self.beta_p.abs() + 1e-4

    @property
    def eye_radius01(self) -> torch.Tensor:
        lo, hi = self.spec.eyeball_min_size, self.spec.eyeball_max_size
        return (torch.sigmoid(self.eye_radius_p) * (hi - lo) + lo) / (2 * self.bound)

    def eye_sdf01(self, x01: torch.Tensor) -> torch.Tensor:
        """(N, 2) signed distances to the leye and reye spheres (x01 units)."""
        return (x01[:, None, :] - self.eye_c01[None]).norm(dim=-1) - self.eye_radius01

    def sdf01(self, x01: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head SDF, feature and (hybrid) eye SDFs and the composite ``sdf`` (all x01 units)."""
        face, feature = self.geometry(x01)
        out = {"face": face, "feature": feature, "sdf": face}
        if self.spec.hybrid:
            eyes = self.eye_sdf01(x01)
            out["leye"], out["reye"] = eyes[:, 0], eyes[:, 1]
            out["sdf"] = torch.minimum(face, eyes.min(dim=1).values)
        return out

    def density(self, sdf01: torch.Tensor) -> torch.Tensor:
        """VolSDF: ``σ = Ψ_β(-s)/β`` with the Laplace CDF ``Ψ_β``."""
        beta = self.beta
        s = -sdf01
        psi = torch.where(
            s <= 0, 0.5 * torch.exp(s.clamp(max=0) / beta), 1 - 0.5 * torch.exp(-s.clamp(min=0) / beta)
        )
        return psi / beta

    def material01(self, x01: torch.Tensor, eye: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        albedo, specular, roughness = self.material(x01)
        if eye is not None:
            e = eye[:, None]
            specular = torch.where(e, torch.full_like(specular, EYE_SPECULAR), specular)
            roughness = torch.where(e, torch.full_like(roughness, EYE_ROUGHNESS), roughness)
        return {"albedo": albedo, "specular": specular, "roughness": roughness}

    # ---- the interface the exporter uses (world units) ----
    def head_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) signed distance of the head alone, world units."""
        return self.geometry(self.to01(x))[0] * (2 * self.bound)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) signed distance of the scene (head, and the eyeballs when hybrid), world units."""
        return self.sdf01(self.to01(x))["sdf"] * (2 * self.bound)

    def materials(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Albedo (N, 3) linear, specular (N, 1), roughness (N, 1), unit shading normal (N, 3) at world ``x``.

        Eye points (an eyeball's SDF below the head's) get CoRA's fixed specular 0.2 and roughness 0.05.
        Outputs are detached.
        """
        with torch.enable_grad():
            x01 = self.to01(x.detach()).requires_grad_(True)
            s = self.sdf01(x01)
            (grad,) = torch.autograd.grad(s["sdf"].sum(), x01)
        eye = (s["sdf"] < s["face"]) if self.spec.hybrid else None
        with torch.no_grad():
            m = self.material01(x01.detach(), eye)
        m = {k: v.detach() for k, v in m.items()}
        m["normal"] = torch.nn.functional.normalize(grad.detach(), dim=-1)
        return m

    @property
    def eyeball_centres(self) -> torch.Tensor | None:
        """(2, 3) world centres (leye = image-left, reye), or None without eyeballs."""
        if not self.spec.hybrid:
            return None
        return ((2 * self.eye_c01 - 1) * self.bound).detach()

    @property
    def eyeball_radius(self) -> torch.Tensor | None:
        """Shared world radius of the spheres (without CoRA's ``+β`` of the volsdf export), or None."""
        if not self.spec.hybrid:
            return None
        return (self.eye_radius01 * 2 * self.bound).detach()

    @property
    def bounds(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        b = self.bound
        return (-b, -b, -b), (b, b, b)

    def set_level(self, level: int) -> None:
        """Coarse-to-fine: the geometry grid's levels >= ``level`` output zeros (CoRA's
        ``VolumeSDF.update_level``; the material grid always uses every level, as upstream)."""
        self.geometry.grid.active_levels = int(level)


def load_avatar(ckpt_path: str | Path, map_location: str = "cpu") -> HybridAvatar:
    """The :class:`HybridAvatar` of an ``fk eyeball train`` checkpoint (weights only; code is refused)."""
    from fk.errors import InputError
    from fk.io.weights import load_torch_weights

    fix = "pass a checkpoint written by `fk eyeball train` (latest.pth or iter_XXXXX.pth)"
    ckpt = load_torch_weights(ckpt_path, "avatar checkpoint", fix, map_location=map_location)
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "radiance_field" not in ckpt:
        raise InputError(
            f"{Path(ckpt_path)}: not an fk eyeball train checkpoint (no spec/radiance_field)", hint=fix
        )
    avatar = HybridAvatar(AvatarSpec.from_dict(ckpt["spec"]))
    avatar.load_state_dict(ckpt["radiance_field"])
    avatar.set_level(int(ckpt.get("level", avatar.spec.num_levels)))
    return avatar.eval()


def spec_dict(spec: AvatarSpec) -> dict:
    return asdict(spec)
