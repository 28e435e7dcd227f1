"""``fk gmpi eval``: GMPI's four metric families on a checkpoint (gmpi.md §4), ``metrics.json`` and a page.

Settings as GMPI's ``gmpi/eval/eval.sh``: EMA weights, 96 planes, ψ = 1, for image i
``torch.manual_seed(i)`` then z ~ N(0, I); cameras from the training prior (truncated Gaussian yaw and
pitch about the dataset's mean, ``fk.cameras.gmpi``; drawn by numpy's generator seeded (seed, i), so
the matrices follow GMPI's rules but the random angles are not GMPI's CUDA draws).

- **FID / KID** (``prepare_fake_data.py --task fid_kid`` + torch-fidelity): ``num_fake`` (50,000)
  renders, one view each, at the dataset resolution, to uint8 as GMPI (clip to [0, 1], x 255,
  truncated); real images: ``num_real`` (50,000; MetFaces 2,048 as GMPI caps it) of the dataset under
  ``--data-root`` (a StyleGAN2 ``dataset_tool`` zip or a folder of images), in a seeded shuffled
  order, read with Pillow's ``convert('RGB')`` as torch-fidelity reads PNGs; Inception features and
  the metrics from :mod:`fk.nets.inception` and :mod:`fk.metrics.fid`. Real features are cached per
  dataset under ``OUT/cache/``.
- **Identity** (``--task consistency``): ``num_pairs`` (1,024) latents, two random views each at full
  resolution; the cosine similarity of the two face embeddings. GMPI uses DeepFace's ArcFace (MTCNN
  box, eye-line rotation); fk uses ArcFace IResNet-50 on the 5-point template warp when its weights
  are present, else dlib's bundled ResNet face descriptor (``face_recognition_models``) — labelled
  in ``metrics.json``; an image without a detected face is embedded whole (DeepFace's
  ``enforce_detection=False``).
- **Depth and pose** (``--task geometry``): ``num_geometry`` (1,024) renders at 224² with their expected
  depth and [pitch, yaw]; 5 points (``detect:mtcnn``, else ``detect:dlib``), ``crop:deep3d``, then
  ``reconstruct:deep3d`` (R-Net) or ``fit:deep3d`` (fk's fit, labelled) from the registry; the 3DMM's
  depth and mask rendered in the crop (fk's rasteriser), GMPI's depth moved into the crop by
  nearest-neighbour resampling through the same alignment; :mod:`fk_gmpi.metrics` does the rest.
  Renders without a detected face are skipped and counted, as GMPI's fail list does.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fk import atomic
from fk.cameras import gmpi as cams
from fk.errors import FkError, InputError, UsageError

from fk_gmpi import media
from fk_gmpi import metrics as M
from fk_gmpi.checkpoint import LoadedGenerator
from fk_gmpi.generate import plane_input
from fk_gmpi.prepare import Progress

METRICS = ("fid", "kid", "identity", "depth", "pose")
DATASETS = ("FFHQ256", "FFHQ512", "FFHQ1024", "AFHQCat", "MetFaces")
GEOMETRY_SIZE = 224  # Deep3D's crop size: GMPI renders the geometry set at 224² (prepare_fake_data.py)
METFACES_REAL_CAP = 2048
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class EvalOptions:
    dataset: str
    out: Path
    data_root: Path | None = None
    metrics: tuple[str, ...] = METRICS
    num_fake: int = 50000
    num_real: int = 50000
    num_pairs: int = 1024
    num_geometry: int = 1024
    planes: int = 96
    truncation: float = 1.0
    seed: int = 123
    batch: int = 1  # latents per generator call (GMPI: 1); 96 planes of a 256² model hold ~1.6 GB per latent
    inception_batch: int = 16
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    fid_trace_sqrt: str = "scipy"
    inception: Path | None = None
    identity: str = "auto"  # auto (ArcFace when its weights are present), arcface, dlib
    arcface: Path | None = None
    device: str = "cpu"
    fit_iterations: int = 40
    deep3d_checkpoint: Path | None = None
    notes: list[str] = field(default_factory=list)


def gmpi_uint8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] renders -> uint8 as GMPI's prepare_fake_data.py: clip, x 255, truncate (not round)."""
    return (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def sample_view(setup: cams.CameraSetup, rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """(yaw, pitch, c2w (4, 4)) from GMPI's truncated-Gaussian camera prior."""
    _, pitches, yaws = cams.sample_camera_positions_sphere(
        1,
        setup.sphere_r,
        setup.h_mean,
        setup.h_stddev,
        setup.v_mean,
        setup.v_stddev,
        sample_method="truncated_gaussian",
        n_truncated_stds=setup.n_truncated_stds,
        rng=rng,
    )
    yaw, pitch = float(yaws[0, 0]), float(pitches[0, 0])
    return yaw, pitch, cams.c2w_from_yaw_pitch(np.array([yaw]), np.array([pitch]), setup)[0]


class Renderer:
    """The evaluation's generator: latent i -> MPI -> renders of given views (rgb, depth)."""

    def __init__(self, loaded: LoadedGenerator, n_planes: int, truncation: float, device: str, seed: int):
        from fk_gmpi.mpi import render_mpi

        self._render_mpi = render_mpi
        self.gen = loaded.generator.to(device)
        self.setup = loaded.config.camera_setup()
        self.planes, dhw = plane_input(loaded, n_planes)
        self.dhw = torch.from_numpy(dhw).float().to(device)
        self.truncation, self.device, self.seed = truncation, device, seed

    def rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, index])

    def mpis(self, indices: list[int]) -> torch.Tensor:
        """(B, N, 4, R, R): ``torch.manual_seed(i)`` then z ~ N(0, I) per image, as GMPI."""
        zs = []
        for i in indices:
            torch.manual_seed(i)
            zs.append(torch.randn(1, self.gen.z_dim))
        with torch.no_grad():
            return self.gen(
                torch.cat(zs).to(self.device),
                self.planes,
                truncation_psi=self.truncation,
                noise_mode="random",
            ).float()

    def render(self, mpis: torch.Tensor, c2w: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """MPIs (B, ...), cameras (B, V, 4, 4) -> rgb (B, V, S, S, 3) in [0, 1], z-depth (B, V, S, S)."""
        K = torch.from_numpy(cams.intrinsics(self.setup.fov_deg, size, size)).float().to(self.device)
        cam = torch.from_numpy(np.asarray(c2w)).float().to(self.device)
        with torch.no_grad():
            out = self._render_mpi(mpis, self.dhw, cam, K, (size, size))
        return out.rgb.permute(0, 1, 3, 4, 2).cpu().numpy(), out.depth[:, :, 0].cpu().numpy()


# ----------------------------------------------------------------------------------------------- real data


def real_image_list(data_root: Path) -> tuple[str, list[str]]:
    """("zip" | "folder", sorted image names) of a StyleGAN2 dataset zip or an image folder (recursive)."""
    from fk_gmpi.prepare import zip_image_names

    if data_root.is_file() and data_root.suffix.lower() == ".zip":
        return "zip", zip_image_names(data_root)
    if data_root.is_dir():
        names = sorted(
            p.relative_to(data_root).as_posix()
            for p in data_root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
        return "folder", names
    raise InputError(
        f"{data_root}: neither a dataset zip nor a folder",
        hint="--data-root: the StyleGAN2 dataset zip (e.g. ffhq256x256.zip) or a folder of images",
    )


def real_batches(data_root: Path, names: list[str], kind: str, size: int, batch: int, notes: list[str]):
    """Yield uint8 (B, size, size, 3) batches; an image at another size is resized (Lanczos), noted once."""
    from PIL import Image

    from fk_gmpi.prepare import read_zip_image

    zf = zipfile.ZipFile(data_root) if kind == "zip" else None
    resized = 0
    try:
        buf = []
        for name in names:
            try:
                img = (
                    read_zip_image(zf, name)
                    if zf
                    else np.asarray(Image.open(data_root / name).convert("RGB"))
                )
            except (OSError, ValueError) as exc:
                print(f"{data_root}/{name}: unreadable image skipped ({exc})", file=sys.stderr)
                continue
            if img.shape[:2] != (size, size):
                img = np.asarray(Image.fromarray(img).resize((size, size), Image.LANCZOS))
                resized += 1
            buf.append(img)
            if len(buf) == batch:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)
    finally:
        if zf:
            zf.close()
        if resized:
            notes.append(f"{resized} real image(s) not at {size}² were resized with Lanczos")


def real_features(opts: EvalOptions, net, size: int, cache_dir: Path) -> tuple[np.ndarray, dict]:
    """Inception features of the real set, cached under ``cache_dir`` per dataset, source and count."""
    from fk.nets.inception import inception_features

    if opts.data_root is None:
        raise UsageError(
            "FID/KID need the real images: --data-root DIR",
            hint="the StyleGAN2 dataset zip or image folder of --dataset (or --metrics identity,depth,pose)",
        )
    root = Path(opts.data_root)
    kind, names = real_image_list(root)
    if not names:
        raise InputError(f"{root}: no image found", hint="--data-root: the dataset zip or image folder")
    n = opts.num_real if opts.dataset != "MetFaces" else min(opts.num_real, METFACES_REAL_CAP)
    order = np.random.default_rng(opts.seed).permutation(len(names))[: min(n, len(names))]
    chosen = [names[i] for i in sorted(order)]
    key = hashlib.sha256(
        "\n".join([str(root.resolve()), str(size), *chosen, str(_weights_id(opts))]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"real_{opts.dataset}_n{len(chosen)}_{key}.npy"
    info = {"source": str(root), "images": len(chosen), "available": len(names), "cache": str(cache)}
    if cache.exists():
        info["cached"] = True
        return np.load(cache), info
    bar = Progress(-(-len(chosen) // opts.inception_batch), f"real features ({len(chosen)} images)")
    feats = []
    for f in inception_features(
        net,
        _progress(real_batches(root, chosen, kind, size, opts.inception_batch, opts.notes), bar),
        opts.device,
    ):
        feats.append(f)
    bar.close()
    arr = np.concatenate(feats) if feats else np.zeros((0, 2048), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_open(cache, "wb") as fh:
        np.save(fh, arr)
    info["cached"] = False
    return arr, info


def _weights_id(opts: EvalOptions) -> str:
    p = _inception_path(opts)
    st = p.stat() if p.exists() else None
    return f"{p}:{st.st_size}:{st.st_mtime_ns}" if st else str(p)


def _inception_path(opts: EvalOptions) -> Path:
    from fk.assets import require_asset
    from fk.nets.inception import INCEPTION_ASSET

    return Path(opts.inception) if opts.inception else require_asset(INCEPTION_ASSET)


def _progress(batches, bar: Progress):
    for b in batches:
        yield b
        bar.step()


# ----------------------------------------------------------------------------------------------- the metrics


def fid_kid(opts: EvalOptions, renderer: Renderer, out: Path) -> dict:
    from fk.metrics.fid import fid, kid
    from fk.nets.inception import load_fid_inception

    net = load_fid_inception(_inception_path(opts), opts.device)
    size = renderer.gen.img_resolution
    samples = out / "samples" / "fake"
    bar = Progress(-(-opts.num_fake // opts.batch), f"fake features ({opts.num_fake} renders)")
    feats, pending = [], []
    for start in range(0, opts.num_fake, opts.batch):
        idx = list(range(start, min(opts.num_fake, start + opts.batch)))
        c2w = np.stack([sample_view(renderer.setup, renderer.rng(i, 0))[2] for i in idx])[:, None]
        rgb, _ = renderer.render(renderer.mpis(idx), c2w, size)
        imgs = gmpi_uint8(rgb[:, 0])
        for i, img in zip(idx, imgs, strict=True):
            if i < 16:
                media.save_png(samples / f"{i:06d}.png", img)
        pending.extend(imgs)
        if len(pending) >= opts.inception_batch or idx[-1] == opts.num_fake - 1:
            feats.extend(_features(net, np.stack(pending), opts.device))
            pending = []
        bar.step()
    bar.close()
    fake = np.concatenate(feats)
    real, real_info = real_features(opts, net, size, out / "cache")
    _save_real_samples(opts, out, size)
    result: dict[str, Any] = {"real": real_info, "fake": {"images": int(len(fake))}}
    if len(real) < 2 or len(fake) < 2:
        raise InputError(f"FID/KID need at least 2 images per set (real {len(real)}, fake {len(fake)})")
    if "fid" in opts.metrics:
        dim = fake.shape[1]
        if min(len(fake), len(real)) <= dim and opts.fid_trace_sqrt == "scipy":
            opts.notes.append(
                f"FID from fewer images than the {dim} feature dimensions: singular covariances, for which "
                "scipy's sqrtm is slow and may fail (use more images, or --fid-trace-sqrt eigh)"
            )
        try:
            result["fid"] = fid(fake, real, opts.fid_trace_sqrt)
        except ValueError as exc:
            raise InputError(
                f"FID: {exc}", hint="use more images (> 2,048 each), or --fid-trace-sqrt eigh"
            ) from exc
        result["fid_trace_sqrt"] = opts.fid_trace_sqrt
    if "kid" in opts.metrics:
        m = min(opts.kid_subset_size, len(fake), len(real))
        if m < opts.kid_subset_size:
            opts.notes.append(f"KID subsets of {m} (fewer than {opts.kid_subset_size} images in a set)")
        r = kid(fake, real, subsets=opts.kid_subsets, subset_size=m)
        result["kid"] = {"mean": r.mean, "std": r.std, "subsets": r.subsets, "subset_size": r.subset_size}
    return result


def _features(net, imgs: np.ndarray, device: str):
    from fk.nets.inception import inception_features

    return inception_features(net, [imgs], device)


def _save_real_samples(opts: EvalOptions, out: Path, size: int) -> None:
    root = Path(opts.data_root)
    kind, names = real_image_list(root)
    count = min(16, opts.num_real if opts.dataset != "MetFaces" else min(opts.num_real, METFACES_REAL_CAP))
    order = np.random.default_rng(opts.seed).permutation(len(names))[:count]  # from the evaluated set
    for k, batch in enumerate(real_batches(root, [names[i] for i in sorted(order)], kind, size, 1, [])):
        media.save_png(out / "samples" / "real" / f"{k:06d}.png", batch[0])


class DlibDescriptor:
    """dlib's ResNet face descriptor (128-D) with its HOG detector and 5-point predictor, all bundled."""

    label = "dlib ResNet face descriptor (face_recognition_models), not GMPI's ArcFace"

    def __init__(self):
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        folders = list(spec.submodule_search_locations or []) if spec else []
        models = next((Path(f) / "models" for f in folders if (Path(f) / "models").is_dir()), None)
        if models is None:
            raise InputError(
                "face_recognition_models is not installed (dlib's bundled face models)",
                hint="pip install face_recognition_models",
            )
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._rect = dlib.rectangle

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        img = np.ascontiguousarray(image)
        faces = self.detector(img, 1)
        found = len(faces) > 0
        rect = (
            max(faces, key=lambda r: r.area())
            if found
            else self._rect(0, 0, img.shape[1] - 1, img.shape[0] - 1)
        )
        return np.asarray(self.net.compute_face_descriptor(img, self.shape(img, rect))), found


ARCFACE_ASSET = (
    "deep3d/arcface_r50.pth"  # the insightface backbone fk-plugin-deep3d declares; one file for both
)


class ArcFaceEmbedder:
    """ArcFace IResNet-50 (``fk.nets.arcface``) on the 5-point 112² template warp of the first face."""

    label = "ArcFace IResNet-50 (insightface r50) on the 5-point template warp; GMPI: DeepFace's ArcFace"

    def __init__(self, features, detect, device: str):
        self.features, self.detect, self.device = features, detect, device

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        from fk.nets.arcface import similarity_to_template, warp_112

        pts = self.detect(image)
        found = pts is not None
        if not found:  # the whole image stands for the face, as DeepFace with enforce_detection=False
            h, w = image.shape[:2]
            pts = np.array(
                [
                    [0.34 * w, 0.46 * h],
                    [0.66 * w, 0.46 * h],
                    [0.5 * w, 0.64 * h],
                    [0.37 * w, 0.82 * h],
                    [0.63 * w, 0.82 * h],
                ]
            )
        img = torch.from_numpy(image.astype(np.float32) / 255.0)[None].to(self.device)
        m = similarity_to_template(torch.as_tensor(pts, dtype=torch.float32, device=self.device)[None])
        with torch.no_grad():
            emb = self.features.net(warp_112(img, m) * 2.0 - 1.0)
        return emb[0].cpu().numpy().astype(np.float64), found


def load_arcface(device: str, path: Path | None = None):
    """Core's ArcFace features from ``path`` or the ``deep3d/arcface_r50.pth`` asset; None when absent."""
    from fk.nets.arcface import load_identity

    return load_identity(str(path) if path else None, device, asset=ARCFACE_ASSET)


def identity_embedder(opts: EvalOptions, detect) -> Any:
    """ArcFace when its weights are there (``auto``/``arcface``), else dlib's descriptor (``dlib``)."""
    if opts.identity in ("auto", "arcface"):
        features = load_arcface(opts.device, opts.arcface)
        if features is not None:
            return ArcFaceEmbedder(features, detect, opts.device)
        if opts.identity == "arcface":
            from fk.assets import asset_path
            from fk.errors import AssetMissingError

            raise AssetMissingError(
                f"--identity arcface: missing {asset_path(ARCFACE_ASSET)}",
                hint="copy insightface arcface_torch's ms1mv3_arcface_r50_fp16/backbone.pth there "
                "(or pass --arcface PATH)",
            )
    return DlibDescriptor()


def identity(opts: EvalOptions, renderer: Renderer, out: Path, detect) -> dict:
    embed = identity_embedder(opts, detect)
    size = renderer.gen.img_resolution
    scores, no_face = [], 0
    bar = Progress(-(-opts.num_pairs // opts.batch), f"identity ({opts.num_pairs} pairs)")
    for start in range(0, opts.num_pairs, opts.batch):
        idx = list(range(start, min(opts.num_pairs, start + opts.batch)))
        c2w = np.stack(
            [[sample_view(renderer.setup, renderer.rng(i, 1 + v))[2] for v in (0, 1)] for i in idx]
        )
        rgb, _ = renderer.render(renderer.mpis(idx), c2w, size)
        for i, views in zip(idx, gmpi_uint8(rgb), strict=True):
            (e0, f0), (e1, f1) = embed(views[0]), embed(views[1])
            no_face += (not f0) + (not f1)
            scores.append(M.cosine_similarity(e0, e1))
            if i < 8:
                media.save_png(out / "samples" / "identity" / f"{i:06d}.png", np.concatenate(list(views), 1))
        bar.step()
    bar.close()
    return {**M.summarize(scores), "embedding": embed.label, "views_without_face": no_face}


def geometry(opts: EvalOptions, renderer: Renderer, out: Path, comps) -> dict:
    """Depth error and pose error per render (GMPI's geometry task), through the registry's Deep3D steps."""
    from fk_gmpi.photo import face_depth
    from fk_gmpi.prepare import _ctx, detect_five, face_for_five_points

    depth_errs, angle_errs, skipped = [], [], []
    size = GEOMETRY_SIZE
    bar = Progress(opts.num_geometry, f"depth and pose ({opts.num_geometry} renders, {comps.coeffs_ref})")
    for start in range(0, opts.num_geometry, opts.batch):
        idx = list(range(start, min(opts.num_geometry, start + opts.batch)))
        views = [sample_view(renderer.setup, renderer.rng(i, 3)) for i in idx]
        rgb, depth = renderer.render(renderer.mpis(idx), np.stack([v[2] for v in views])[:, None], size)
        for k, i in enumerate(idx):
            yaw, pitch, _ = views[k]
            img = gmpi_uint8(rgb[k, 0])
            try:
                pts = detect_five(comps, img, out, f"{i:06d}")
                if pts is None:
                    raise InputError(f"render {i}: no face detected")
                ctx = _ctx(out, out / ".fk" / "scratch", f"{i:06d}")
                crop = comps.crop({"image": img, "face": face_for_five_points(pts, img.shape[:2])}, ctx)[
                    "crop"
                ]
                if comps.crop_landmarks is not None:
                    from dataclasses import replace

                    faces = comps.crop_landmarks({"image": crop.image}, ctx)["faces"]
                    crop = replace(crop, landmarks=np.asarray(faces[0].landmarks, dtype=np.float64))
                recon = comps.coeffs({"crop": crop}, ctx)["recon"]
            except (FkError, ValueError, IndexError, RuntimeError) as exc:  # one render never stops the set
                skipped.append(
                    {"image": i, "reason": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
                )
                bar.step()
                continue
            model_depth, mask, _ = face_depth(recon, crop.image.shape[0])
            aligned = warp_nearest(depth[k, 0], crop.crop_from_source, crop.image.shape[:2])
            depth_errs.append(M.depth_error(aligned, model_depth, mask))
            angle_errs.append(M.angle_error([pitch, yaw], np.asarray(recon.coeffs["angle"]).ravel()))
            if len(depth_errs) <= 8:
                near, far = renderer.setup.ray_start, renderer.setup.ray_end
                panel = np.concatenate(
                    [
                        crop.image,
                        media.depth_picture(np.where(aligned > 0, aligned, far), near, far),
                        media.depth_picture(
                            np.where(mask, model_depth, np.inf),
                            float(model_depth[mask].min()) if mask.any() else 0,
                            float(model_depth[mask].max()) if mask.any() else 1,
                        ),
                    ],
                    1,
                )
                media.save_png(out / "samples" / "geometry" / f"{i:06d}.png", panel)
            bar.step()
    bar.close()
    return {
        "depth": M.summarize(depth_errs),
        "pose": M.summarize(angle_errs),
        "coefficients": comps.coeffs_ref,
        "detector": comps.detector_ref,
        "skipped": skipped,
    }


def warp_nearest(image: np.ndarray, crop_from_source: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) map -> the crop's (h, w), nearest-neighbour sampling through the crop's map (0 outside)."""
    h, w = shape
    ys, xs = np.mgrid[:h, :w]
    pts = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3) @ np.linalg.inv(crop_from_source).T
    sx, sy = np.rint(pts[:, 0] / pts[:, 2]).astype(int), np.rint(pts[:, 1] / pts[:, 2]).astype(int)
    inside = (sx >= 0) & (sx < image.shape[1]) & (sy >= 0) & (sy < image.shape[0])
    out = np.zeros(h * w, dtype=np.float64)
    out[inside] = image[sy[inside], sx[inside]]
    return out.reshape(h, w)


# ----------------------------------------------------------------------------------------------- the command


def evaluate(loaded: LoadedGenerator, opts: EvalOptions) -> dict:
    """Run the requested metrics; write ``metrics.json`` and ``index.html`` under ``opts.out``.

    Gradients are off for the generator and the feature networks while it runs and restored after, so a
    caller (a test session, a notebook) keeps its grad mode; the fallback fit turns them on for itself.
    """
    with torch.no_grad():
        return _evaluate(loaded, opts)


def _evaluate(loaded: LoadedGenerator, opts: EvalOptions) -> dict:
    unknown = sorted(set(opts.metrics) - set(METRICS))
    if unknown:
        raise UsageError(f"--metrics: unknown {', '.join(unknown)}", hint=f"any of {', '.join(METRICS)}")
    out = Path(opts.out)
    if {"fid", "kid"} & set(opts.metrics):
        _inception_path(opts)  # exits 4 naming the file and where it goes, before any work
        if opts.data_root is None:
            raise UsageError(
                "FID/KID need the real images: --data-root DIR",
                hint="the dataset zip or image folder (or --metrics identity,depth,pose)",
            )
    if (
        "identity" in opts.metrics
        and opts.identity == "arcface"
        and load_arcface("cpu", opts.arcface) is None
    ):
        identity_embedder(opts, None)  # exits 4 naming the ArcFace file and where it goes
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    renderer = Renderer(loaded, opts.planes, opts.truncation, opts.device, opts.seed)
    result: dict[str, Any] = {
        "checkpoint": loaded.source,
        "dataset": opts.dataset,
        "variant": loaded.generator.variant,
        "settings": {
            "planes": opts.planes,
            "truncation_psi": opts.truncation,
            "seed": opts.seed,
            "num_fake": opts.num_fake,
            "num_real": opts.num_real,
            "num_pairs": opts.num_pairs,
            "num_geometry": opts.num_geometry,
            "weights": _weights_kind(loaded.source),
        },
        "notes": opts.notes,
    }
    opts.notes.extend(loaded.notes)
    if {"fid", "kid"} & set(opts.metrics):
        result.update(fid_kid(opts, renderer, out))
    comps = None
    if {"identity", "depth", "pose"} & set(opts.metrics):
        from fk_gmpi.prepare import load_components

        comps = load_components(
            opts.device,
            opts.fit_iterations,
            str(opts.deep3d_checkpoint) if opts.deep3d_checkpoint else None,
            "auto",
            coefficients={"depth", "pose"} & set(opts.metrics) != set(),
        )
        opts.notes.extend(n for n in comps.notes if n not in opts.notes)
    if "identity" in opts.metrics:
        result["identity"] = identity(opts, renderer, out, lambda img: _detect(comps, img, out))
    if {"depth", "pose"} & set(opts.metrics):
        geo = geometry(opts, renderer, out, comps)
        if "depth" in opts.metrics:
            result["depth"] = {**geo["depth"], "coefficients": geo["coefficients"]}
        if "pose" in opts.metrics:
            result["pose"] = {**geo["pose"], "unit": "rad^2", "coefficients": geo["coefficients"]}
        result["geometry"] = {"detector": geo["detector"], "skipped": geo["skipped"]}
    result["seconds"] = round(time.time() - t0, 1)
    import shutil

    shutil.rmtree(out / ".fk" / "scratch", ignore_errors=True)
    atomic.write_json(out / "metrics.json", result)
    write_page(out, result)
    return result


def _weights_kind(source: str) -> str:
    """ema (GMPI's evaluation), generator (raw weights: no ema.pth) or stylegan2-pickle (iteration 0)."""
    if "(ema.pth)" in source:
        return "ema"
    return "generator" if "(generator.pth)" in source else "stylegan2-pickle"


def _detect(comps, img: np.ndarray, out: Path):
    from fk_gmpi.prepare import detect_five

    return detect_five(comps, img, out, "identity")


def _fmt(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def write_page(out: Path, result: dict) -> Path:
    rows = []
    if "fid" in result:
        rows.append(f"FID {_fmt(result['fid'])}")
    if "kid" in result:
        rows.append(f"KID {_fmt(result['kid']['mean'])} ± {_fmt(result['kid']['std'])}")
    for key, label in (
        ("identity", "identity (cosine, higher is better)"),
        ("depth", "depth error"),
        ("pose", "pose error (rad²)"),
    ):
        if key in result:
            r = result[key]
            rows.append(f"{label} {_fmt(r['mean'])} ± {_fmt(r['std'])} over {r['count']}")
    sections = [{"title": "metrics", "text": "; ".join(rows) or "none", "images": []}]
    for folder, title in (
        ("fake", "generated (one random view each, FID/KID set)"),
        ("real", "real images"),
        ("identity", "identity pairs (two random views of one latent)"),
        ("geometry", "geometry: Deep3D crop | GMPI depth aligned | 3DMM depth"),
    ):
        files = sorted((out / "samples" / folder).glob("*.png"))
        if files:
            sections.append({"title": title, "images": [(f.stem, os.path.relpath(f, out)) for f in files]})
    note = " ".join(result.get("notes") or [])
    return media.write_page(
        out / "index.html", f"fk gmpi eval: {result['dataset']} ({result['variant']})", note, sections
    )
