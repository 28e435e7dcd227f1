"""R-Net training with Deep3D's losses (deep3d.md §3.5, §4-5), and its data preparation.

Dataset layout (what ``fk deep3d prepare`` writes, Deep3D's own):
    <data>/images/<name>.png        224² aligned crops
    <data>/mask/<name>.png          skin attention mask, 3 channels, round(255·P(skin))
    <data>/landmarks/<name>.txt     68 rows "x y", **y-up** (y = 223 − row), as Deep3D stores them
    <data>/datalist/{train,val}/{images,masks,landmarks}.txt

Checkpoints: ``<out>/epoch_<N>.pth`` and ``<out>/latest.pth`` in the released layout
(``net_recon``, ``opt_00``, ``sched_00``, plus ``epoch`` and ``step``); training resumes
from ``latest.pth``. Several GPUs: ``torchrun --nproc_per_node=N -m fk_deep3d train DATA --out DIR``
(DDP with SyncBatchNorm; rank 0 writes checkpoints).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fk.errors import InputError

# iBUG-68 horizontal mirror permutation (deep3d.md §3.5).
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65])


# --------------------------------------------------------------------------- preparation
def write_sample(root: Path, name: str, crop: np.ndarray, landmarks_ydown: np.ndarray) -> None:
    """One prepared sample: crop PNG, skin mask PNG, y-up landmark txt."""
    from fk.io import save_image

    from fk_deep3d.skin import skin_mask_uint8

    save_image(root / "images" / f"{name}.png", crop)
    mask = skin_mask_uint8(crop)
    save_image(root / "mask" / f"{name}.png", np.repeat(mask[..., None], 3, axis=2))
    lm = np.asarray(landmarks_ydown, np.float64).copy()
    lm[:, 1] = crop.shape[0] - 1 - lm[:, 1]
    (root / "landmarks").mkdir(parents=True, exist_ok=True)
    np.savetxt(root / "landmarks" / f"{name}.txt", lm, fmt="%.6f")


def write_lists(root: Path, names: list[str], val_fraction: float, seed: int = 0) -> dict[str, int]:
    names = sorted(names)
    rng = random.Random(seed)
    val = set(rng.sample(names, int(round(len(names) * val_fraction)))) if len(names) > 1 else set()
    counts = {}
    for split in ("train", "val"):
        chosen = [n for n in names if (n in val) == (split == "val")]
        d = root / "datalist" / split
        d.mkdir(parents=True, exist_ok=True)
        for kind, folder, ext in (("images", "images", ".png"), ("masks", "mask", ".png"),
                                  ("landmarks", "landmarks", ".txt")):
            (d / f"{kind}.txt").write_text("".join(f"{(root / folder / (n + ext)).resolve()}\n" for n in chosen))
        counts[split] = len(chosen)
    return counts


def prepare_dataset(images: Path, out: Path, val_fraction: float = 0.05, upsample: int = 1) -> dict[str, int]:
    """Detect (dlib, 68 points), align (Deep3D's align_img), mask and list every photo under ``images``."""
    from fk.io import load_image
    from fk.recipe import IMAGE_SUFFIXES
    from fk_align.deep3d_align import align_img
    from fk_align.dlib_detect import DlibDetector

    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise InputError(f"{images}: not a folder of photos", hint="fk deep3d prepare PHOTO_DIR --out DATA_DIR")
    detector = DlibDetector(upsample=upsample)
    names, skipped = [], 0
    for path in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            photo = load_image(path)
            faces = detector.detect(photo)
        except Exception:  # noqa: BLE001 - unreadable photos are counted, the batch goes on
            skipped += 1
            continue
        if not faces:
            skipped += 1
            continue
        for i, face in enumerate(faces):
            a = align_img(photo, face.landmarks)
            name = f"{path.stem}_{i:02d}"
            write_sample(out, name, a.image, a.landmarks)
            names.append(name)
    counts = write_lists(out, names, val_fraction)
    return {**counts, "skipped": skipped}


# --------------------------------------------------------------------------- data
class FaceListDataset(torch.utils.data.Dataset):
    """Deep3D's flist dataset with its ``shift_scale_rot_flip`` augmentation.

    Yields dict(image (3,224,224) float [0,1], mask (224,224) float, landmarks (68,2) y-down pixels).
    Sample ``i``'s augmentation in epoch ``e`` depends on ``(seed, e, i)`` only, not on which process
    or worker loads it or in what order, so runs of 1 and N processes see the same data.
    """

    def __init__(self, root: Path, split: str = "train", augment: bool = True, shift: float = 10.0,
                 scale_delta: float = 0.1, rot_deg: float = 10.0, seed: int = 0):
        lists = Path(root) / "datalist" / split
        try:
            self.images = (lists / "images.txt").read_text().split()
            self.masks = (lists / "masks.txt").read_text().split()
            self.landmarks = (lists / "landmarks.txt").read_text().split()
        except FileNotFoundError as exc:
            raise InputError(f"{exc.filename}: missing list file", hint="run `fk deep3d prepare` first") from None
        if not self.images or not (len(self.images) == len(self.masks) == len(self.landmarks)):
            raise InputError(f"{lists}: empty or inconsistent list files", hint="rerun `fk deep3d prepare`")
        self.augment, self.shift, self.scale_delta, self.rot = augment, shift, scale_delta, rot_deg
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def _affine(self, size: int, index: int) -> tuple[np.ndarray, bool]:
        """A = C·S·R·Sh·F·C⁻¹ about the image centre (3×3, image pixels, y down)."""
        r = np.random.default_rng([self.seed, self.epoch, index])
        c = size // 2
        flip = bool(r.uniform() < 0.5)
        sx, sy = r.integers(-self.shift, self.shift + 1, size=2)
        s = r.uniform(1 - self.scale_delta, 1 + self.scale_delta)
        a = np.deg2rad(r.uniform(-self.rot, self.rot))
        C = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
        S = np.diag([s, s, 1.0])
        R = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
        Sh = np.array([[1, 0, sx], [0, 1, sy], [0, 0, 1.0]])
        F = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
        return C @ S @ R @ Sh @ F @ np.linalg.inv(C), flip

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from PIL import Image

        img = Image.open(self.images[i]).convert("RGB")
        mask = Image.open(self.masks[i]).convert("L")
        lm = np.loadtxt(self.landmarks[i]).reshape(68, 2)
        h = img.size[1]
        lm[:, 1] = h - 1 - lm[:, 1]  # stored y-up -> image rows
        if self.augment:
            A, flip = self._affine(img.size[0], i)
            inv = np.linalg.inv(A)[:2].reshape(-1)
            img = img.transform(img.size, Image.AFFINE, tuple(inv), resample=Image.BICUBIC)
            mask = mask.transform(mask.size, Image.AFFINE, tuple(inv), resample=Image.BICUBIC)
            lm = (np.c_[lm, np.ones(68)] @ A.T)[:, :2]
            if flip:
                lm = lm[MIRROR_68]
        return {"image": torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1),
                "mask": torch.from_numpy(np.asarray(mask, np.float32) / 255.0),
                "landmarks": torch.from_numpy(lm.astype(np.float32))}


# --------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    data: Path
    out: Path = Path("checkpoints/deep3d")
    model: str = "auto"
    epochs: int = 20
    batch_size: int = 32  # global: each of N processes takes batch_size / N, as Deep3D
    lr: float = 1e-4
    lr_step: int = 10
    lr_gamma: float = 0.2
    max_steps: int = 0
    resume: bool = True
    device: str = "cpu"
    renderer: str = "auto"
    init: Path | None = None  # a whole R-Net checkpoint to start from
    init_path: str | Path | None = "auto"  # ImageNet ResNet-50: auto (the asset when present), a path, or none
    arcface: str | Path | None = None  # ArcFace r50 weights; None: the deep3d/arcface_r50.pth asset when present
    augment: bool = True
    workers: int = 0
    seed: int = 0


def model_coeffs_from_rnet(model, out257: torch.Tensor) -> torch.Tensor:
    """R-Net's 257 outputs in ``model``'s layout: the first n_id/n_exp/n_tex of each head."""
    from fk.nets.reconnet import split_coeffs

    p = split_coeffs(out257)
    return model.join_coeffs({"id": p["id"][:, :model.n_id], "exp": p["exp"][:, :model.n_exp],
                              "tex": p["tex"][:, :model.n_tex], "angle": p["angle"], "gamma": p["gamma"],
                              "trans": p["trans"]})


def deep3d_loss(model, coeffs: torch.Tensor, batch: dict[str, torch.Tensor], renderer: str,
                w=None, identity=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Deep3D's training objective for a batch (``FaceReconModel.compute_losses``, deep3d.md §5).

    ``identity`` (an :class:`fk.nets.arcface.IdentityFeatures`) adds the ``feat`` term, weight 0.2: ArcFace
    features of the rendered face (the render alone, black around it, as Deep3D's ``pred_face``) warped to
    the 112² template by a similarity fitted on the *predicted* landmarks, against the photo's features
    warped by its own landmarks. Without it the term is omitted.

    The photometric term is Σ dist·mask / Σ mask over the batch; under DDP the denominator is the sum over
    every process's batch, so the mean over processes equals the loss of the global batch.
    """
    from fk.cameras.deep3d import IMAGE_SIZE, K_LANDMARKS, opencv_from_deep3d_camera
    from fk.distributed import all_reduce_sum
    from fk.render.mesh import render_mesh

    from fk.models.lighting import gamma_loss
    from fk_deep3d import losses as L

    w = w or L.LossWeights()
    out = model(coeffs)
    parts = model.split_coeffs(coeffs)
    v = opencv_from_deep3d_camera(out["vertices_cam"])
    K = torch.as_tensor(K_LANDMARKS, dtype=v.dtype, device=v.device)  # the fit's camera: renders meet landmarks

    def render(triangles):
        return render_mesh(v, triangles, K, (IMAGE_SIZE, IMAGE_SIZE), vertex_colors=out["colors"], backend=renderer)

    region = model.face_region_triangles()
    front = render(region)
    target = batch["image"].permute(0, 2, 3, 1)
    mask = front.mask.to(v.dtype).detach() * batch["mask"]
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    mask_total = torch.clamp(all_reduce_sum(mask.sum().detach()), min=1.0) / world
    skin = model.skin_mask if model.skin_mask is not None else torch.ones(
        model.n_vertices, dtype=torch.bool, device=v.device)
    terms = {"color": w.color * L.photometric_loss(front.rgb, target, mask, normaliser=mask_total),
             "lm": w.lm * L.landmark_loss(out["landmarks_2d"], batch["landmarks"]),
             "reg": w.reg * L.coefficient_loss(parts["id"], parts["exp"], parts["tex"], w),
             "gamma": w.gamma * gamma_loss(parts["gamma"]),
             "reflc": w.reflc * L.reflectance_loss(out["albedo"], skin)}
    if identity is not None:
        whole = front if region is model.triangles else render(model.triangles)
        pred_face = whole.rgb * whole.mask[..., None].to(v.dtype)
        with torch.no_grad():
            feat_gt = identity(target, batch["landmarks"].to(v.dtype))
        terms["feat"] = w.feat * L.identity_loss(identity(pred_face, out["landmarks_2d"]), feat_gt)
    total = sum(terms.values())
    return total, {k: float(t.detach()) for k, t in terms.items()}


def resolve_init_path(init_path: str | Path | None) -> Path | None:
    """The ImageNet ResNet-50 to start from: ``auto`` = the asset when present, ``none`` = random init."""
    from fk.assets import asset_path

    from fk_deep3d.constants import IMAGENET_RESNET50_ASSET

    if init_path is None or str(init_path).lower() == "none" or str(init_path) == "":
        return None
    if str(init_path).lower() == "auto":
        p = asset_path(IMAGENET_RESNET50_ASSET)
        return p if p.is_file() else None
    return Path(init_path).expanduser()


def _build_net(cfg: TrainConfig, device: torch.device):
    """R-Net from ``cfg.init`` (a whole checkpoint), else ImageNet backbone + zero heads, else random."""
    from fk.nets.reconnet import ReconNet, load_reconnet
    from fk.nets.resnet import load_imagenet_backbone

    if cfg.init:
        return load_reconnet(cfg.init, device), f"R-Net checkpoint {cfg.init}"
    net = ReconNet()
    imagenet = resolve_init_path(cfg.init_path)
    if imagenet is not None:
        load_imagenet_backbone(net.backbone, imagenet)
        return net.to(device), f"ImageNet ResNet-50 {imagenet}"
    return net.to(device), "random backbone (no ImageNet weights; see `fk doctor`)"


def train(cfg: TrainConfig, progress=None) -> dict[str, Any]:
    """Train (or resume) R-Net; returns {steps, first_loss, last_loss, last_terms, checkpoint, history, init}.

    Under ``torchrun`` (DDP) each process takes ``batch_size / WORLD_SIZE`` samples of each global batch;
    BatchNorm uses global-batch statistics, so the run computes what one process computes on the whole
    batch. Losses in ``history`` are global-batch losses; rank 0 writes checkpoints and ``train_log.jsonl``.
    ``progress(line)`` receives a line per logged step (rank 0).
    """
    import json

    from fk.distributed import global_mean, init_from_env, shutdown, sync_batchnorm
    from fk.nets.arcface import load_identity
    from fk.nets.reconnet import save_reconnet

    from fk_deep3d.choose import choose_model
    from fk_deep3d.constants import ARCFACE_ASSET

    world = init_from_env(cfg.device)
    if cfg.batch_size % world.size:
        raise InputError(f"batch size {cfg.batch_size} does not split over {world.size} processes",
                         hint=f"use a multiple of {world.size} (the batch size is the global batch)")
    device = torch.device(f"cuda:{world.local_rank}" if cfg.device.startswith("cuda") and world.distributed
                          else cfg.device)
    torch.manual_seed(cfg.seed)  # every process builds the same net (DDP also broadcasts rank 0's)
    model = choose_model(cfg.model).to(device)
    net, init_from = _build_net(cfg, device)
    identity = load_identity(cfg.arcface, device, asset=ARCFACE_ASSET)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    out = Path(cfg.out)
    start_epoch, step = 0, 0
    latest = out / "latest.pth"
    if cfg.resume and latest.exists():
        from fk.io.weights import load_torch_weights

        blob = load_torch_weights(latest, "training checkpoint",
                                  f"delete {latest} to start over, or pass --no-resume", map_location=device)
        net.load_state_dict(blob["net_recon"])
        opt.load_state_dict(blob["opt_00"])
        sched.load_state_dict(blob["sched_00"])
        start_epoch, step = int(blob.get("epoch", 0)), int(blob.get("step", 0))
        init_from = f"resumed {latest}"
    module = net
    if world.distributed:
        net = sync_batchnorm(net, device)
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[world.local_rank]
                                                        if device.type == "cuda" else None)
        module = net.module
    data = FaceListDataset(cfg.data, "train", augment=cfg.augment, seed=cfg.seed)
    # One permutation per epoch for any number of processes: process r takes every N-th index from r,
    # so a global batch holds the same samples whether 1 or N processes read it.
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=world.size, rank=world.rank, shuffle=True,
                                                  seed=cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size // world.size, sampler=sampler,
                                         num_workers=cfg.workers, drop_last=len(data) >= cfg.batch_size)
    history: list[float] = []
    last_terms: dict[str, float] = {}
    ckpt = latest
    stop = False
    log = out / "train_log.jsonl"
    if world.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if progress:
            progress(f"R-Net from {init_from}; identity term {'on' if identity is not None else 'off'}; "
                     f"{len(data)} images, {world.size} process(es), global batch {cfg.batch_size}")

    def save(epoch: int, name: str) -> Path:
        return save_reconnet(out / name, module, opt_00=opt.state_dict(), sched_00=sched.state_dict(),
                             epoch=epoch, step=step)

    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        data.set_epoch(epoch)
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            coeffs = model_coeffs_from_rnet(model, net(batch["image"]))
            loss, terms = deep3d_loss(model, coeffs, batch, cfg.renderer, identity=identity)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            terms = {k: float(global_mean(torch.tensor(v))) for k, v in terms.items()}
            history.append(float(global_mean(loss)))
            last_terms = terms
            if world.rank == 0:
                with log.open("a") as f:
                    f.write(json.dumps({"epoch": epoch, "step": step, "loss": history[-1], **terms}) + "\n")
                if progress and (step == 1 or step % 50 == 0):
                    progress(f"epoch {epoch + 1}/{cfg.epochs} step {step}: loss {history[-1]:.4f} "
                             + " ".join(f"{k} {v:.4f}" for k, v in terms.items()))
            if cfg.max_steps and step >= cfg.max_steps:
                stop = True
                break
        if stop:
            if world.rank == 0:
                ckpt = save(epoch, "latest.pth")
            break
        sched.step()
        if world.rank == 0:
            save(epoch + 1, f"epoch_{epoch + 1}.pth")
            ckpt = save(epoch + 1, "latest.pth")
    shutdown()
    return {"steps": step, "first_loss": history[0] if history else float("nan"),
            "last_loss": history[-1] if history else float("nan"), "last_terms": last_terms,
            "checkpoint": str(ckpt), "history": history, "init": init_from}
