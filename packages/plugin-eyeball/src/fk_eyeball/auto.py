"""CoRA's automatic Step-1 path without its unavailable weights (cora.md §12).

- Eye masks (``compute_eye_mask.py`` uses BiSeNet + ``79999_iter.pth``): fk fills the eye-contour polygons
  of the 68 landmarks (36-41 -> ``leye_mask``, 42-47 -> ``reye_mask``: CoRA's ``leye`` is the image-left
  eye), dilated by ``dilate_px``, anti-aliased by 4x supersampling. Landmarks come from the registry's
  ``detect:dlib`` (bundled), or any ``detect:*`` component that gives 68 points. With the BiSeNet weights
  present, upstream's labels are used instead: class 5 (``r_eye``) -> ``leye_mask``, 4 (``l_eye``) ->
  ``reye_mask`` (its left/right swap), with core's :mod:`fk.nets.bisenet`.
- 2D landmarks (``compute_2d_eyeball_landmark.py``: RetinaFace + FAN on a hand-written frame list): fk picks
  near-frontal frames from the camera poses and runs the 68-point detector; results go to
  ``2d_eyeball_landmarks.json`` (``{name: {"landmarks": [[x, y] * 68], "scores": [68]}}``, fk pixels) and
  overlays to ``vis_landmarks/<name>``. Upstream's ``2d_eyeball_landmarks.pkl`` is read safely.
- 3D landmarks (``compute_3d_eyeball_landmark.py``): views are the frames with a ``vis_landmarks/`` file
  (deleting an overlay drops the view, as upstream), closed-form weighted triangulation with outlier
  rejection (:mod:`fk_eyeball.triangulate`), per-landmark reprojection error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fk.errors import InputError

EYE_INDICES = {"leye": list(range(36, 42)), "reye": list(range(42, 48))}
LANDMARKS_JSON = "2d_eyeball_landmarks.json"
LANDMARKS_PKL = "2d_eyeball_landmarks.pkl"
LEYE_LABEL, REYE_LABEL = 5, 4  # upstream: leye = (label == 5) "r_eye", reye = (label == 4) "l_eye"


class Detector:
    """A ``detect:*`` component from fk's registry, called through the component protocol."""

    def __init__(self, ref: str = "detect:dlib", **params) -> None:
        from fk.plugins import get_plugin_manager

        comp = get_plugin_manager().component(ref)
        self.ref = ref
        self.runner = comp.load_factory()(**{**comp.defaults(), **params})

    def landmarks(self, rgb: np.ndarray, name: str, work_dir: Path) -> tuple[np.ndarray, float] | None:
        """(68, 2) landmarks and score of the largest face, or None."""
        from fk.engine.context import ItemContext
        from fk.errors import NoFaceError

        ctx = ItemContext(
            key=Path(name).stem, source=None, step_id="detect", run_dir=work_dir, step_dir=work_dir
        )
        try:
            faces = self.runner({"image": np.ascontiguousarray(rgb)}, ctx)["faces"]
        except NoFaceError:
            return None
        faces = [f for f in faces if f.landmarks is not None and len(f.landmarks) == 68]
        if not faces:
            return None
        best = min(faces, key=lambda f: f.index)
        return np.asarray(best.landmarks, np.float64), float(best.score)


def polygon_mask(
    points: np.ndarray, size: tuple[int, int], dilate_px: float = 2.0, supersample: int = 4
) -> np.ndarray:
    """(H, W) float32 soft mask of a filled polygon (fk pixel centres), grown by ``dilate_px`` pixels."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    h, w = size
    s = supersample
    pts = np.asarray(points, np.float64)
    img = Image.new("L", (w * s, h * s), 0)
    # fk pixel (x, y) centre -> supersampled canvas coordinate (x + 0.5) s - 0.5
    ImageDraw.Draw(img).polygon([tuple(p) for p in (pts + 0.5) * s - 0.5], fill=255)
    big = np.asarray(img) > 0
    if dilate_px > 0:
        r = int(np.ceil(dilate_px * s))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        big = ndimage.binary_dilation(big, structure=(xx**2 + yy**2) <= (dilate_px * s) ** 2)
    return big.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)


def frontal_frames(cam2world: np.ndarray, max_angle_deg: float = 25.0, min_frames: int = 5) -> np.ndarray:
    """Indices of near-frontal frames: optical axes within ``max_angle_deg`` of the mean axis, at least
    ``min_frames`` (the closest ones). A capture sweeps around the front, so the mean axis faces the face."""
    axes = np.asarray(cam2world)[:, :3, 2]
    mean = axes.mean(0)
    mean /= np.linalg.norm(mean)
    ang = np.degrees(np.arccos(np.clip(axes @ mean, -1, 1)))
    order = np.argsort(ang, kind="stable")
    keep = order[ang[order] <= max_angle_deg]
    if len(keep) < min_frames:
        keep = order[:min_frames]
    return np.sort(keep)


def draw_landmarks(rgb: np.ndarray, landmarks: np.ndarray, highlight=(36, 48)) -> np.ndarray:
    """An overlay: every landmark a small dot, the eye contours (36-47) in green with their polygons."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb))
    d = ImageDraw.Draw(img)
    for eye in EYE_INDICES.values():
        d.polygon([tuple(landmarks[i]) for i in eye], outline=(0, 255, 0))
    for i, (x, y) in enumerate(landmarks):
        col = (0, 255, 0) if highlight[0] <= i < highlight[1] else (255, 64, 64)
        d.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=col)
    return np.asarray(img)


def auto_eye_masks(
    data_root: str | Path,
    meta: str | None = None,
    out: str | Path | None = None,
    dilate_px: float = 2.0,
    detector: str = "detect:dlib",
    method: str = "auto",
    weights: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``leye_mask/``/``reye_mask/`` for every frame.

    ``method``: ``landmarks`` (68-point eye contours), ``bisenet`` (upstream's model; needs the
    ``eyeball/79999_iter.pth`` asset or ``weights``), ``auto`` (bisenet when the weights are present).
    Frames without a face get no file (listed in the summary; CoRA then loads zeros).
    """
    from fk.io.image import save_image
    from fk_eyeball.dataset import load_subject
    from fk_eyeball.synth import mask_png

    if method not in ("auto", "bisenet", "landmarks"):
        raise InputError(f"method must be auto, bisenet or landmarks, got {method!r}")
    subject = load_subject(data_root, meta)
    out_root = Path(out) if out is not None else Path(data_root)
    weights_path = Path(weights) if weights else _bisenet_asset()
    have_weights = weights_path is not None and weights_path.is_file()
    if method == "bisenet" and not have_weights:
        from fk.errors import AssetMissingError

        raise AssetMissingError(f"BiSeNet weights not found ({weights_path or 'eyeball/79999_iter.pth'})",
                                hint="see `fk doctor`; or use --method landmarks")  # fmt: skip
    if method in ("bisenet", "auto") and have_weights:
        from fk.nets import bisenet

        net = bisenet.load_bisenet(weights_path).to(device)
        for i, frame in enumerate(subject.frames):
            rgb = np.floor(subject.load("image", frame, required=True) * 255 + 0.5).astype(np.uint8)
            for eye, m in zip(("leye", "reye"), eye_masks(net, rgb, device), strict=True):
                save_image(out_root / f"{eye}_mask" / frame.name, mask_png(m))
            if progress:
                progress(i + 1, len(subject.frames))
        return {"frames": len(subject.frames), "no_face": [], "out": str(out_root), "detector": "bisenet"}
    det = Detector(detector)
    no_face = []
    for i, frame in enumerate(subject.frames):
        rgb = np.floor(subject.load("image", frame, required=True) * 255 + 0.5).astype(np.uint8)
        found = det.landmarks(rgb, frame.name, out_root)
        if found is None:
            no_face.append(frame.name)
        else:
            lm, _ = found
            for eye, idx in EYE_INDICES.items():
                save_image(
                    out_root / f"{eye}_mask" / frame.name,
                    mask_png(polygon_mask(lm[idx], subject.size, dilate_px)),
                )
        if progress:
            progress(i + 1, len(subject.frames))
    return {"frames": len(subject.frames), "no_face": no_face, "out": str(out_root), "detector": detector}


def eye_masks(net, rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(leye, reye) float32 (H, W) soft masks of a frame by BiSeNet, CoRA's ``compute_eye_mask.py`` steps.

    Zero-pad the portrait frame left and right (``(H - W) // 2`` on the left) as upstream (fk also pads a
    landscape frame top and bottom, and a square one not at all: upstream's crop breaks there), resize to
    512² (torchvision's tensor ``Resize``: bilinear with antialiasing), ImageNet-normalise, argmax; the
    binary maps are resized back bilinearly (soft edges) and the padding cropped.
    """
    import torch
    import torch.nn.functional as F
    from fk.nets.bisenet import INPUT_SIZE, normalise

    h, w = rgb.shape[:2]
    side = max(h, w)
    left = (side - w) // 2
    top = (side - h) // 2
    x = torch.as_tensor(np.ascontiguousarray(rgb), dtype=torch.float32, device=device).permute(2, 0, 1)
    x = F.pad(x / 255.0, (left, side - w - left, top, side - h - top))
    x = F.interpolate(x[None], size=(INPUT_SIZE,) * 2, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        label = net(normalise(x)).argmax(1)
    binary = torch.stack([(label == LEYE_LABEL), (label == REYE_LABEL)], 1).float()
    soft = F.interpolate(binary, size=(side, side), mode="bilinear", align_corners=False, antialias=True)[0]
    soft = soft[:, top : top + h, left : left + w]
    return soft[0].cpu().numpy(), soft[1].cpu().numpy()


def _bisenet_asset() -> Path | None:
    try:
        from fk.assets import asset_path
    except ImportError:
        return None
    try:
        return Path(asset_path("eyeball/79999_iter.pth"))
    except Exception:  # noqa: BLE001 - no asset root configured
        return None


def detect_2d_landmarks(
    data_root: str | Path,
    meta: str | None = None,
    frames: list[str] | None = None,
    max_angle_deg: float = 25.0,
    detector: str = "detect:dlib",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """68 landmarks on near-frontal frames (or ``frames``) -> ``2d_eyeball_landmarks.json`` + ``vis_landmarks/``."""
    from fk.atomic import write_json
    from fk.io.image import save_image

    from fk_eyeball.dataset import load_subject

    root = Path(data_root)
    subject = load_subject(root, meta)
    if frames:
        names = {f.name for f in subject.frames}
        unknown = [n for n in frames if n not in names]
        if unknown:
            raise InputError(f"{subject.meta_path}: frames not listed: {', '.join(unknown)}")
        chosen = [i for i, f in enumerate(subject.frames) if f.name in set(frames)]
    else:
        chosen = list(frontal_frames(subject.cam2world, max_angle_deg))
    det = Detector(detector)
    info, no_face = {}, []
    for k, i in enumerate(chosen):
        frame = subject.frames[i]
        rgb = np.floor(subject.load("image", frame, required=True) * 255 + 0.5).astype(np.uint8)
        found = det.landmarks(rgb, frame.name, root)
        if found is None:
            no_face.append(frame.name)
        else:
            lm, score = found
            info[frame.name] = {"landmarks": lm.tolist(), "scores": [1.0] * 68, "detector": detector,
                                "face_score": score}  # fmt: skip
            save_image(root / "vis_landmarks" / frame.name, draw_landmarks(rgb, lm))
        if progress:
            progress(k + 1, len(chosen))
    write_json(root / LANDMARKS_JSON, info)
    return {"frames": [subject.frames[i].name for i in chosen], "found": sorted(info), "no_face": no_face}


def load_2d_landmarks(data_root: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {"landmarks": (68, 2), "scores": (68,)}}`` from fk's JSON or upstream's ``.pkl`` (read safely)."""
    root = Path(data_root)
    js, pk = root / LANDMARKS_JSON, root / LANDMARKS_PKL
    if js.is_file():
        try:
            raw = json.loads(js.read_text())
        except ValueError as exc:
            raise InputError(f"{js}: not valid JSON ({exc})") from None
    elif pk.is_file():
        raw = _load_upstream_pkl(pk)
    else:
        raise InputError(
            f"{root}: no {LANDMARKS_JSON} or {LANDMARKS_PKL}", hint="run `fk eyeball landmarks-2d` first"
        )
    out = {}
    for name, v in raw.items():
        lm = np.asarray(v["landmarks"], np.float64)
        if lm.shape != (68, 2):
            raise InputError(
                f"{js if js.is_file() else pk}: {name}: landmarks have shape {lm.shape}, expected (68, 2)"
            )
        out[name] = {
            "landmarks": lm,
            "scores": np.asarray(v.get("scores", np.ones(68)), np.float64).reshape(68),
        }
    return out


def _load_upstream_pkl(path: Path) -> dict:
    """Upstream's ``torch.save`` dict of numpy arrays / tensors, through torch's restricted unpickler with only
    numpy's array-rebuilding functions allowed (no code can run)."""
    from fk.io.weights import load_torch_weights

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / 1
    safe = [np.ndarray, np.dtype, core.multiarray._reconstruct]
    safe += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32")]
    obj = load_torch_weights(
        path, "landmark pickle", "rerun `fk eyeball landmarks-2d` for a JSON", allow=safe
    )
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a dict of frames, got {type(obj).__name__}")
    return {k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in obj.items()}


def triangulate_eye_landmarks(data_root: str | Path, meta: str | None = None) -> dict:
    """3D positions of landmarks 36-47 over the views with a ``vis_landmarks/`` file; per-landmark errors."""
    from fk_eyeball.dataset import load_subject
    from fk_eyeball.triangulate import triangulate

    root = Path(data_root)
    subject = load_subject(root, meta)
    lms = load_2d_landmarks(root)
    vis = root / "vis_landmarks"
    views = [f for f in subject.frames if f.name in lms and (vis / f.name).is_file()]
    if len(views) < 2:
        raise InputError(f"{root}: {len(views)} view(s) with landmarks and a vis_landmarks/ overlay; need 2",
                         hint="run `fk eyeball landmarks-2d` (deleting an overlay drops that view)")  # fmt: skip
    idx = EYE_INDICES["leye"] + EYE_INDICES["reye"]
    px = np.stack([lms[f.name]["landmarks"][idx] for f in views])
    sc = np.stack([lms[f.name]["scores"][idx] for f in views])
    t = triangulate(px, subject.K, np.stack([f.cam2world for f in views]), sc)
    return {"views": [f.name for f in views], "leye": t.points[:6], "reye": t.points[6:], "rms_px": t.rms_px,
            "inliers": t.inliers.sum(0)}  # fmt: skip
