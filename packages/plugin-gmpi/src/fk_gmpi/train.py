"""``fk gmpi train``: GMPI's training loop (gmpi.md §2.4, §3; ``gmpi/train.py``, ``train_helpers.py``).

Per iteration ``it`` (0 … ``total_iters`` inclusive: GMPI stops once its step *exceeds* total_iters, so the
default 5001 runs 5,002 iterations):

1. numbered checkpoints when ``it % model_save_interval == 0`` (before the step, as GMPI);
2. **D step**: z ~ N(0, I), the MPI from G (no grad), shading augmentation once ``it > start_iter``, one
   random view per z from the sphere prior; loss softplus(-D(real, c_real)) + softplus(D(fake, c_fake))
   (means) + R1 = 0.5 · 10 · E‖∇_x D(real)‖² every iteration; global gradient norm clipped to 10; Adam;
3. **G step**: new z; worst of ``n_view_per_z_in_train`` (4) random views per z by the lowest D logit on
   the unshaded MPI; the MPI again (with grad), shaded, rendered at that view; softplus(-D) / batch_split;
   clip 10; Adam; EMA updates (decay 0.999 and 0.9999, torch_ema's warm-up min(decay, (1+n)/(10+n)));
4. at ``it % sample_interval == 0``: a sample grid (fixed z, three views, EMA weights) and the latest
   checkpoint in GMPI's layout plus ``fk_state.pth``.

GMPI's checkpoint files (``generator.pth``, ``discriminator.pth``, ``ema.pth``/``ema2.pth`` with the
positional shadow list in GMPI's parameter order, ``optimizer_G.pth``/``optimizer_D.pth``, ``config.pth``,
numbered ``*_{it}.pth`` copies) hold tensors and plain containers only (``fk_gmpi.checkpoint`` reads them
weights-only). ``fk_state.pth`` adds what resuming needs: the next iteration, the shading call counter and
the RNG states (``fk.training``). ``--resume`` continues from it with the same losses as an uninterrupted run.

Differences from GMPI, by design (docs: README "GMPI end to end"):
- randomness: every draw of an iteration (z, cameras, lights) comes from generators seeded by (SEED, it)
  and is made for the global batch, each process taking its slice; the generator's per-layer noise comes
  from torch's RNG seeded by (SEED, it, rank). GMPI seeds torch with the rank once. So a run resumes
  exactly, and N processes compute what one process computes on the same global batch (exactly with
  ``--noise-mode const``; with GMPI's random noise each process draws its own noise);
- data order: one permutation per epoch seeded by (SEED, epoch), the global batch split over processes;
- data parallelism: gradients are all-reduced (averaged) after each backward, which is what DDP does; DDP's
  hooks are not used because GMPI's R1 needs a double backward, which DDP does not support.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fk.cameras import gmpi as cams
from fk.errors import InputError

from fk_gmpi.train_config import EMA_DECAYS, TrainSettings

STATE_FILE = "fk_state.pth"
LOG_FILE = "train_log.jsonl"
SAMPLE_SEEDS = 8  # fixed latents in the sample grids
WORST_VIEW_CHUNK = {1024: 1, 512: 2}  # find_worst_view_per_z's mini-batches (4 at 256 and below)


@dataclass
class TrainOptions:
    """What the command line adds to the config."""

    dataset: str
    data_root: Path
    out: Path
    pickle: Path | None = None  # StyleGAN2-ADA snapshot to start from (default: the dataset's asset)
    resume: bool = False
    device: str = "cpu"
    total_iters: int | None = None
    batch_size: int | None = None  # per process
    sample_interval: int | None = None
    model_save_interval: int | None = None
    noise_mode: str = "random"
    workers: int = 0
    demo: bool = False
    progress: bool | None = None  # None: a rich bar on a terminal, plain lines otherwise
    networks: dict | None = None  # {"G_ema", "D"}: fk StyleGAN2 modules instead of a pickle (benchmarks)


class Ema:
    """torch_ema's ExponentialMovingAverage (use_num_updates): shadows in GMPI's parameter order."""

    def __init__(self, params: list[torch.Tensor], decay: float):
        self.decay, self.num_updates = decay, 0
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, params: list[torch.Tensor]) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow, params, strict=True):
            s.sub_((s - p) * (1.0 - decay))

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow_params": self.shadow,
            "collected_params": None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        self.shadow = [t.clone() for t in state["shadow_params"]]


def _seed(*parts: int) -> int:
    return int(np.random.default_rng([int(p) for p in parts]).integers(0, 2**62))


class _Iteration:
    """The random draws of one iteration, for the global batch, identical on every process."""

    def __init__(self, seed: int, it: int):
        self.seed, self.it, self.count = seed, it, 0

    def rng(self) -> np.random.Generator:
        self.count += 1
        return np.random.default_rng([self.seed, self.it, self.count])

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        self.count += 1
        g = torch.Generator().manual_seed(_seed(self.seed, self.it, self.count))
        return torch.randn(shape, generator=g)


def _flat_w2c(c2w: np.ndarray, dim: int) -> torch.Tensor:
    w2c = np.linalg.inv(c2w).astype(np.float32)
    return torch.from_numpy((w2c[:, :3, :3] if dim == 9 else w2c).reshape(len(w2c), -1).copy())


def _all_reduce_grads(params: list[torch.Tensor], world) -> None:
    """Average gradients over the processes in one flat buffer (what DDP's reducer computes)."""
    if not world.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


class IterationBatches(torch.utils.data.Sampler):
    """Index lists per iteration: permutations seeded by (seed, epoch), the global batch split by rank."""

    def __init__(self, n_items: int, batch: int, world, seed: int, start: int, stop: int):
        self.n, self.batch, self.world, self.seed = n_items, batch, world, seed
        self.start, self.stop = start, stop
        self.global_batch = batch * world.size
        self.per_epoch = n_items // self.global_batch
        if self.per_epoch == 0:
            raise InputError(
                f"the dataset has {n_items} image(s), fewer than the global batch {self.global_batch}",
                hint="add images or lower --batch-size",
            )

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        for it in range(self.start, self.stop):
            epoch, b = divmod(it, self.per_epoch)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            chunk = perm[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[self.world.rank * self.batch : (self.world.rank + 1) * self.batch].tolist()


def _save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _load(path: Path, what: str) -> Any:
    from fk.io.weights import load_torch_weights

    return load_torch_weights(path, what, f"delete {path.parent} to start over, or drop --resume")


class Trainer:
    """Builds the networks, data and state, and runs iterations (one process of a data-parallel run)."""

    def __init__(self, settings: TrainSettings, opts: TrainOptions):
        from fk.distributed import init_from_env
        from fk.nets.stylegan2 import read_stylegan2_pickle

        from fk_gmpi.checkpoint import generator_from_record
        from fk_gmpi.discriminator import GmpiDiscriminator, load_pretrained_discriminator
        from fk_gmpi.generator import PlaneInput, gmpi_order
        from fk_gmpi.lighting import LightAugment
        from fk_gmpi.mpi import normalized_plane_z, plane_dhw, texel_xyz
        from fk_gmpi.train_data import build_dataset

        self.s, self.o = settings, opts
        self.world = init_from_env(opts.device)
        cuda = opts.device.startswith("cuda")
        self.device = torch.device(
            f"cuda:{self.world.local_rank}" if cuda and self.world.distributed else opts.device
        )
        self.force_fp32 = self.device.type != "cuda"
        s = settings
        if opts.total_iters is not None:
            s.total_iters = opts.total_iters
        if opts.batch_size is not None:
            s.batch_size = opts.batch_size
        if opts.sample_interval is not None:
            s.sample_interval = opts.sample_interval
        if opts.model_save_interval is not None:
            s.model_save_interval = opts.model_save_interval
        s.noise_mode = opts.noise_mode
        s.workers = opts.workers
        if s.batch_size % s.batch_split:
            raise InputError(
                f"batch size {s.batch_size} does not split into {s.batch_split}",
                hint="use a multiple of the curriculum's batch_split",
            )
        if opts.pickle is None and opts.networks is None:
            raise InputError("no StyleGAN2 pickle to start from", hint="pass --pickle or install the asset")

        # networks: G and its EMA from G_ema, D from D (GMPI's require_all=False copies)
        data = opts.networks if opts.networks is not None else read_stylegan2_pickle(opts.pickle)
        if data.get("G_ema") is None or data.get("D") is None:
            raise InputError(
                f"{opts.pickle}: needs both G_ema and D networks",
                hint="pass a StyleGAN2-ADA training snapshot (network-snapshot-*.pkl)",
            )
        torch.manual_seed(s.seed)
        source = Path(opts.pickle).name if opts.pickle else "the given networks"
        self.G, notes = generator_from_record(data["G_ema"], s.cfg, None, s.seed, source)
        self.G = self.G.to(self.device).train().requires_grad_(True)
        self.resolution = self.G.img_resolution
        dk = dict(data["D"].init_kwargs)
        if dk.get("img_resolution") != self.resolution:
            raise InputError(
                f"{opts.pickle}: D is {dk.get('img_resolution')}², G is {self.resolution}²",
                hint="pass a consistent StyleGAN2-ADA snapshot",
            )
        self.D = GmpiDiscriminator(
            s.d_cond_dim,
            self.resolution,
            3,
            channel_base=dk.get("channel_base", 32768),
            channel_max=dk.get("channel_max", 512),
            num_fp16_res=dk.get("num_fp16_res", 0),
            conv_clamp=dk.get("conv_clamp"),
            cmap_dim=s.cmap_dim,
            mbstd_group_size=1,
            use_mbstd_in_D=s.use_mbstd,
        )
        n_d = load_pretrained_discriminator(self.D, data["D"].state_dict(), source)
        self.D = self.D.to(self.device).train().requires_grad_(True)
        notes.append(f"{n_d} discriminator tensors from D (b4.out broadcast to {s.cmap_dim} rows)")
        self.notes = notes
        pnames = dict(self.G.named_parameters())
        self.g_names = self.G.gmpi_parameter_names()
        self.g_params = [pnames[n] for n in self.g_names]
        self.d_params = list(self.D.parameters())  # GMPI's registration order (mapping before b4)
        self.ema = [Ema(self.g_params, d) for d in EMA_DECAYS]
        self.opt_g = torch.optim.Adam(self.g_params, lr=s.lr, betas=s.betas, weight_decay=0)
        self.opt_d = torch.optim.Adam(self.d_params, lr=s.lr, betas=s.betas, weight_decay=0)
        self._gmpi_order = gmpi_order

        # planes, camera, shading
        self.setup = s.setup
        method = s.cfg.mpi["distance_sample_method"]
        self.dhw = torch.from_numpy(
            plane_dhw(self.setup, s.cfg.n_planes, method, confined=bool(s.cfg.mpi["use_confined_volume"]))
        ).to(self.device)
        nz = normalized_plane_z(
            self.dhw[:, 0].cpu().numpy(),
            self.setup.ray_start,
            self.setup.ray_end,
            s.cfg.train["normalized_xyz_range"],
        )
        self.planes = PlaneInput(torch.from_numpy(nz).to(self.device))
        self.texels = texel_xyz(self.dhw, self.resolution, self.resolution)
        self.K = torch.from_numpy(
            cams.intrinsics(self.setup.fov_deg, self.resolution, self.resolution)
        ).float()
        self.light = LightAugment(self.setup, s.light_ka, s.light_kd, s.light_grow)
        self.dataset = build_dataset(
            "demo" if opts.demo else s.cfg.dataset,
            Path(opts.data_root),
            self.resolution,
            self.setup,
            s.d_cond_dim or 16,
            s.cfg.raw.get("DATASET"),
        )
        self.start = 0
        self.out = Path(opts.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.fixed_z = torch.randn(
            SAMPLE_SEEDS, self.G.z_dim, generator=torch.Generator().manual_seed(s.seed)
        )

    # -- pieces ----------------------------------------------------------------------------------------
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(
            z.to(self.device),
            self.planes,
            truncation_psi=self.s.truncation_psi,
            noise_mode=self.s.noise_mode,
            force_fp32=self.force_fp32,
        )

    def splits(self) -> list[tuple[int, int]]:
        """GMPI's batch_split: (start, end) of each part of the local batch, the first ones one larger."""
        n, k = self.s.batch_size, self.s.batch_split
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        edges = np.cumsum([0, *sizes])
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def shade(self, mpi: torch.Tensor, it: int, dirs: np.ndarray | None) -> torch.Tensor:
        """The shading augmentation (one renderer call, as GMPI's per batch split) once past start_iter."""
        if dirs is None:
            return mpi
        return self.light(mpi, self.dhw, self.texels, dirs)

    def light_dirs(self, it: int, draws: _Iteration) -> np.ndarray | None:
        """This process's light directions for one step (drawn for the global batch), or None unshaded."""
        if not (self.s.lighting and it > self.s.light_start):
            return None
        return self._local(self.light.light_directions(self.global_batch, draws.rng()))

    def cameras(self, n: int, rng: np.random.Generator, yaws=None, pitches=None) -> np.ndarray:
        st = self.setup
        c2w, y, p = cams.gen_sphere_path(
            n,
            (0.0, 0.0, st.sphere_center_z),
            st.sphere_r,
            st.h_mean,
            st.h_stddev,
            st.v_mean,
            st.v_stddev,
            given_yaws=yaws,
            given_pitches=pitches,
            sample_method=self.s.camera_sample_method,
            n_truncated_stds=st.n_truncated_stds,
            rng=rng,
        )
        return c2w, y, p

    def render(self, mpi: torch.Tensor, c2w: np.ndarray) -> torch.Tensor:
        """(B, N, 4, R, R) MPIs and (B, 4, 4) cameras -> (B, 3, R, R) images in [-1, 1]."""
        from fk_gmpi.mpi import render_mpi

        r = render_mpi(
            mpi,
            self.dhw,
            torch.from_numpy(c2w).to(mpi),
            self.K.to(mpi),
            (self.resolution, self.resolution),
            align_corners=bool(self.s.cfg.mpi["align_corners"]),
        )
        return r.rgb[:, 0] * 2 - 1

    @property
    def global_batch(self) -> int:
        return self.s.batch_size * self.world.size

    def _local(self, x):
        lo = self.world.rank * self.s.batch_size
        return x[lo : lo + self.s.batch_size]

    # -- one iteration ---------------------------------------------------------------------------------
    @torch.enable_grad()  # whatever the caller's grad mode (a process may have run an evaluation before)
    def step(self, it: int, real: torch.Tensor, c_real: torch.Tensor) -> dict[str, float]:
        from fk.distributed import global_mean

        s, dim = self.s, self.s.d_cond_dim
        torch.manual_seed(_seed(s.seed, it, 1_000_003 + self.world.rank))  # per-layer noise of this process
        draws = _Iteration(s.seed, it)
        real = real.to(self.device)
        c_real = c_real.to(self.device)

        # D step
        z = self._local(draws.normal((self.global_batch, self.G.z_dim)))
        c2w, _, _ = self.cameras(self.global_batch, draws.rng())
        c2w = self._local(c2w)
        dirs = self.light_dirs(it, draws)
        with torch.no_grad():
            fake = torch.cat(
                [
                    self.render(
                        self.shade(self.generate(z[a:b]), it, None if dirs is None else dirs[a:b]),
                        c2w[a:b, None],
                    )
                    for a, b in self.splits()
                ]
            )
        self.D.requires_grad_(True)
        real = real.detach().requires_grad_(True)
        r_pred = self.D(real, c_real if dim else None, force_fp32=self.force_fp32)
        if s.r1_lambda > 0:
            (grad,) = torch.autograd.grad(r_pred.sum(), real, create_graph=True)
            r1 = 0.5 * s.r1_lambda * grad.reshape(grad.shape[0], -1).norm(2, dim=1).pow(2).mean()
        else:
            r1 = torch.zeros((), device=self.device)
        g_pred = self.D(
            fake, _flat_w2c(c2w, dim).to(self.device) if dim else None, force_fp32=self.force_fp32
        )
        d_real = F.softplus(-r_pred).mean()
        d_fake = F.softplus(g_pred).mean()
        d_loss = d_real + d_fake + r1
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        _all_reduce_grads(self.d_params, self.world)
        torch.nn.utils.clip_grad_norm_(self.d_params, s.grad_clip)
        self.opt_d.step()

        # G step
        self.D.requires_grad_(False)
        z = self._local(draws.normal((self.global_batch, self.G.z_dim)))
        if s.worst_view:
            views = s.n_views
            _, yaws, pitches = self.cameras(self.global_batch * views, draws.rng())
            yaws, pitches = self._local(yaws.reshape(-1, views)), self._local(pitches.reshape(-1, views))
            chosen = np.zeros(s.batch_size, dtype=np.int64)
            mb = WORST_VIEW_CHUNK.get(self.resolution, 4)
            with torch.no_grad():
                for a in range(0, s.batch_size, mb):
                    b = min(s.batch_size, a + mb)
                    mpi = self.generate(z[a:b])  # unshaded, as GMPI's find_worst_view_per_z
                    cw, _, _ = self.cameras(
                        (b - a) * views, None, yaws[a:b].reshape(-1), pitches[a:b].reshape(-1)
                    )
                    imgs = self.render(mpi.repeat_interleave(views, 0), cw[:, None])
                    pred = self.D(
                        imgs, _flat_w2c(cw, dim).to(self.device) if dim else None, force_fp32=self.force_fp32
                    )
                    chosen[a:b] = pred.reshape(b - a, views).argmin(1).cpu().numpy()
            g_yaw = np.take_along_axis(yaws, chosen[:, None], 1)[:, 0]
            g_pitch = np.take_along_axis(pitches, chosen[:, None], 1)[:, 0]
            c2w_g, _, _ = self.cameras(s.batch_size, None, g_yaw, g_pitch)
        else:
            c2w_g, _, _ = self.cameras(self.global_batch, draws.rng())
            c2w_g = self._local(c2w_g)
        self.opt_g.zero_grad(set_to_none=True)
        dirs = self.light_dirs(it, draws)
        g_losses, g_preds = [], []
        for a, b in self.splits():
            mpi = self.shade(self.generate(z[a:b]), it, None if dirs is None else dirs[a:b])
            pred = self.D(
                self.render(mpi, c2w_g[a:b, None]),
                _flat_w2c(c2w_g[a:b], dim).to(self.device) if dim else None,
                force_fp32=self.force_fp32,
            )
            part = F.softplus(-pred).mean()
            (part / (s.batch_split + 1e-8)).backward()  # GMPI: the parts' gradients sum to the batch's
            g_losses.append(part.detach())
            g_preds.append(pred.detach())
        g_loss, g_pred = torch.stack(g_losses).mean(), torch.cat(g_preds)
        _all_reduce_grads(self.g_params, self.world)
        torch.nn.utils.clip_grad_norm_(self.g_params, s.grad_clip)
        self.opt_g.step()
        for e in self.ema:
            e.update(self.g_params)
        ratio = min(1.0, max(self.light.calls, 0) / self.light.n_grow_iters)
        shaded = s.lighting and it > s.light_start
        return {
            "step": it,
            "d_loss": float(global_mean(d_loss)),
            "d_real": float(global_mean(d_real)),
            "d_fake": float(global_mean(d_fake)),
            "r1": float(global_mean(r1)),
            "g_loss": float(global_mean(g_loss)),
            "real_logit": float(global_mean(r_pred.mean())),
            "fake_logit": float(global_mean(g_pred.mean())),
            "ka": ratio * s.light_ka if shaded else 0.0,
            "kd": ratio * s.light_kd if shaded else 0.0,
        }

    # -- files -----------------------------------------------------------------------------------------
    def _gmpi_config(self) -> dict:
        """config.pth's dict: the merged GMPI config plus what modify_curriculums adds (and latent sizes)."""
        import copy

        raw = copy.deepcopy(self.s.cfg.raw)
        sg = raw["GMPI"]["MODEL"]["STYLEGAN2"]
        sk = self.G.synthesis.init_kwargs
        fm = {256: 0.5, 512: 1.0, 1024: 1.0}.get(self.resolution, 1.0)
        sg["synthesis_kwargs"] = {
            "channel_base": int(round(sk.get("channel_base", 32768) / fm)),
            "channel_max": int(sk.get("channel_max", 512)),
        }
        sg["mapping_kwargs"] = {"num_layers": int(self.G.mapping.num_layers)}
        sg.update(
            max_out_dim=self.resolution, max_out_dim_D=self.resolution, z_dim=self.G.z_dim, w_dim=self.G.w_dim
        )
        sg["discriminator"]["mbstd_group_size"] = 1
        t = raw["GMPI"]["TRAIN"]
        t["curriculum"] = {"AFHQCat": "AFHQCat", "MetFaces": "MetFaces"}.get(self.s.cfg.dataset, "FFHQ")
        return raw

    def save(self, it: int, numbered: bool) -> None:
        """GMPI's files (latest, or the numbered ``*_{it}.pth`` copies); the latest adds fk_state.pth."""
        from fk.training import rng_states

        d = self.ckpt_dir
        d.mkdir(parents=True, exist_ok=True)
        suffix = f"_{it}" if numbered else ""
        gstate = self.G.state_dict()
        _save(
            {k: gstate[k].detach().cpu() for k in self._gmpi_order(list(gstate))},
            d / f"generator{suffix}.pth",
        )
        _save({k: v.detach().cpu() for k, v in self.D.state_dict().items()}, d / f"discriminator{suffix}.pth")
        for name, e in zip(("ema", "ema2"), self.ema, strict=True):
            st = e.state_dict()
            _save({**st, "shadow_params": [t.cpu() for t in st["shadow_params"]]}, d / f"{name}{suffix}.pth")
        _save(self.opt_g.state_dict(), d / f"optimizer_G{suffix}.pth")
        _save(self.opt_d.state_dict(), d / f"optimizer_D{suffix}.pth")
        if not numbered:
            _save(
                {
                    "iteration": it + 1,
                    "light_calls": self.light.calls,
                    "rng": rng_states(),
                    "world_size": self.world.size,
                    "batch_size": self.s.batch_size,
                },
                d / STATE_FILE,
            )

    def write_config(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        _save({"config": self._gmpi_config()}, self.ckpt_dir / "config.pth")

    def resume(self) -> bool:
        from fk.training import restore_rng_states

        state_file = self.ckpt_dir / STATE_FILE
        if not state_file.exists():
            return False
        st = _load(state_file, "fk training state")
        if (
            int(st.get("batch_size", self.s.batch_size)) != self.s.batch_size
            or int(st.get("world_size", self.world.size)) != self.world.size
        ):
            raise InputError(
                f"{state_file}: written by {st.get('world_size')} process(es) with batch "
                f"{st.get('batch_size')}, resumed with {self.world.size} x {self.s.batch_size}",
                hint="resume with the same --nproc_per_node and --batch-size",
            )
        d = self.ckpt_dir
        gstate = _load(d / "generator.pth", "GMPI generator checkpoint")
        self.G.load_state_dict(gstate)
        self.D.load_state_dict(_load(d / "discriminator.pth", "GMPI discriminator checkpoint"))
        for name, e in zip(("ema", "ema2"), self.ema, strict=True):
            e.load_state_dict(_load(d / f"{name}.pth", "GMPI EMA checkpoint"))
            e.shadow = [t.to(self.device) for t in e.shadow]
        self.opt_g.load_state_dict(_load(d / "optimizer_G.pth", "GMPI optimizer checkpoint"))
        self.opt_d.load_state_dict(_load(d / "optimizer_D.pth", "GMPI optimizer checkpoint"))
        self.light.calls = int(st["light_calls"])
        restore_rng_states(st["rng"])
        self.start = int(st["iteration"])
        return True

    @torch.no_grad()
    def sample_grid(self, it: int) -> Path:
        """Fixed z, EMA weights, three views (yaw -σ, 0, +σ) and the frontal depth: one PNG per call."""
        from fk_gmpi.media import depth_picture, save_png, to_uint8
        from fk_gmpi.mpi import render_mpi

        backup = [p.detach().clone() for p in self.g_params]
        for p, sh in zip(self.g_params, self.ema[0].shadow, strict=True):
            p.copy_(sh)
        self.G.eval()
        try:
            mpi = self.G(
                self.fixed_z.to(self.device), self.planes, noise_mode="const", force_fp32=self.force_fp32
            )
        finally:
            for p, b in zip(self.g_params, backup, strict=True):
                p.copy_(b)
            self.G.train()
        yaws = np.array([-self.setup.h_stddev, 0.0, self.setup.h_stddev])
        c2w, _, _ = self.cameras(3, None, yaws, np.zeros(3))
        c2w_all = torch.from_numpy(c2w).to(mpi)[None].expand(mpi.shape[0], -1, -1, -1)
        r = render_mpi(mpi, self.dhw, c2w_all, self.K.to(mpi), (self.resolution, self.resolution))
        rows = []
        for i in range(mpi.shape[0]):
            views = [to_uint8(r.rgb[i, v].permute(1, 2, 0).cpu().numpy()) for v in range(3)]
            depth = depth_picture(r.depth[i, 1, 0].cpu().numpy(), self.setup.ray_start, self.setup.ray_end)
            rows.append(np.concatenate([*views, depth], 1))
        return save_png(self.out / "samples" / f"{it:06d}.png", np.concatenate(rows, 0))


def _bar(total: int, start: int, enabled: bool | None):
    """A rich bar on a terminal; otherwise None (plain lines are printed by the caller)."""
    if not (enabled if enabled is not None else sys.stderr.isatty()):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("gmpi train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[losses]}"),
        transient=False,
    )
    bar.start()
    task = bar.add_task("train", total=total, completed=start, losses="")
    return bar, task


def _quiet(line: str) -> None:
    pass


def train(
    settings: TrainSettings, opts: TrainOptions, say=print, trainer: Trainer | None = None
) -> dict[str, Any]:
    """Train (or resume); returns {iterations, start, last, log, checkpoint, samples, notes}.

    ``trainer``: an already built :class:`Trainer` for these settings (the demo measures it before and after).
    """
    from fk.distributed import shutdown
    from fk.training import JsonlLog

    t = trainer if trainer is not None else Trainer(settings, opts)
    rank0 = t.world.rank == 0
    out = Path(opts.out)
    log = JsonlLog(out / LOG_FILE)
    resumed = opts.resume and t.resume()
    if opts.resume and not resumed and rank0:
        say(f"note: nothing to resume in {t.ckpt_dir} (no {STATE_FILE}): starting at iteration 0")
    if rank0:
        out.mkdir(parents=True, exist_ok=True)
        if resumed:
            log.truncate_after(t.start)
        elif log.path.exists():
            log.path.unlink()
        t.write_config()
    (say if rank0 else _quiet)(
        f"GMPI training on {settings.cfg.dataset if not opts.demo else 'the embedded demo'} at "
        f"{t.resolution}²: {len(t.dataset)} images, {t.world.size} process(es) x batch "
        f"{settings.batch_size}, "
        f"iterations {t.start}..{settings.total_iters}" + (" (resumed)" if resumed else "")
    )
    for note in t.notes:
        (say if rank0 else _quiet)(f"note: {note}")
    stop = settings.total_iters + 1
    sampler = IterationBatches(len(t.dataset), settings.batch_size, t.world, settings.seed, t.start, stop)
    loader = torch.utils.data.DataLoader(t.dataset, batch_sampler=sampler, num_workers=settings.workers)
    bar = _bar(stop, t.start, opts.progress) if rank0 else None
    every = max(1, (stop - t.start) // 20)
    last: dict[str, float] = {}
    samples: list[str] = []
    t0 = time.time()
    try:
        for it, (real, c_real) in zip(range(t.start, stop), loader, strict=False):
            if rank0 and it % settings.model_save_interval == 0:
                t.save(it, numbered=True)
            last = t.step(it, real, c_real)
            if rank0:
                log.write(last)
                if it % settings.sample_interval == 0 or it == stop - 1:
                    samples.append(str(t.sample_grid(it)))
                    t.save(it, numbered=False)
                text = f"D {last['d_loss']:.3f} G {last['g_loss']:.3f} R1 {last['r1']:.3f}"
                if bar is not None:
                    bar[0].update(bar[1], advance=1, losses=text)
                elif (it - t.start + 1) % every == 0 or it == stop - 1:
                    say(f"iteration {it}/{stop - 1}: {text} ({time.time() - t0:.0f}s)")
    finally:
        if bar is not None:
            bar[0].stop()
    shutdown()
    n = stop - t.start
    return {
        "rank": t.world.rank,
        "iterations": n,
        "start": t.start,
        "last": last,
        "log": str(log.path),
        "samples": samples,
        "checkpoint": str(t.ckpt_dir),
        "notes": t.notes,
        "seconds": time.time() - t0,
        "iterations_per_s": n / max(time.time() - t0, 1e-9),
        "resolution": t.resolution,
    }


def loss_plot(log_path: Path, out_png: Path) -> Path:
    """D/G losses, R1 and the mean real/fake logits against the iteration, from train_log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fk.training import JsonlLog

    recs = JsonlLog(log_path).read()
    steps = [r["step"] for r in recs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for key in ("d_loss", "g_loss", "r1"):
        axes[0].plot(steps, [r[key] for r in recs], label=key, lw=1)
    axes[0].set_xlabel("iteration")
    axes[0].legend()
    axes[0].set_title("losses")
    for key in ("real_logit", "fake_logit"):
        axes[1].plot(steps, [r[key] for r in recs], label=key, lw=1)
    axes[1].set_xlabel("iteration")
    axes[1].legend()
    axes[1].set_title("D logits (real vs fake)")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
