"""CoRA's subject folder (cora.md §2-3): cameras from ``transforms.json`` and the per-frame images.

Layout: ``image/``, ``mask/``, ``hair_mask/``, ``leye_mask/``, ``reye_mask/``, ``specular_bfm/`` hold one
PNG per frame, looked up by the **basename** of ``frames[i].file_path``; ``transforms.json`` (instant-ngp
matrices, converted with CoRA's ``nerf_matrix_to_ngp(scale=1)``) or ``transforms_aligned.json`` (OpenCV
cam2worlds, kept as they are); ``config.yaml``. Frames are sorted by ``file_path`` as CoRA's loader does.

CoRA substitutes zeros for a missing per-frame file without a word; fk raises for a missing ``image/``
file (the frame cannot be used) and lists every other missing file in :attr:`Subject.missing`, which
the commands print as one warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fk.cameras import Intrinsics, Pose
from fk.cameras.cora import intrinsics_from_transforms, opencv_cam2world_from_ngp
from fk.errors import InputError

PER_FRAME_FOLDERS = ("image", "mask", "hair_mask", "leye_mask", "reye_mask", "specular_bfm")
META_NAMES = ("transforms.json", "transforms_aligned.json")


@dataclass
class Frame:
    """One frame: ``name`` is the basename CoRA looks up in every per-frame folder."""

    name: str
    file_path: str
    cam2world: np.ndarray  # (4, 4) OpenCV cam2world, float64


@dataclass
class Subject:
    """A CoRA subject folder with its cameras (OpenCV, fk pixel centres)."""

    root: Path
    meta_path: Path
    intrinsics: Intrinsics
    frames: list[Frame]
    missing: dict[str, list[str]] = field(default_factory=dict)  # folder -> missing basenames

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        return self.intrinsics.height, self.intrinsics.width

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name
        return np.asarray(self.intrinsics.matrix, dtype=np.float64)

    @property
    def cam2world(self) -> np.ndarray:
        """(F, 4, 4) OpenCV cam2world of every frame."""
        return np.stack([f.cam2world for f in self.frames])

    @property
    def poses(self) -> Pose:
        """Batched ``cam_from_world`` of every frame."""
        return Pose.from_cam2world(self.cam2world)

    def path(self, folder: str, frame: Frame | int) -> Path:
        f = self.frames[frame] if isinstance(frame, int) else frame
        return self.root / folder / f.name

    def load(self, folder: str, frame: Frame | int, required: bool = False) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1] of one per-frame PNG; zeros when absent (CoRA) unless ``required``."""
        p = self.path(folder, frame)
        if not p.is_file():
            if required:
                raise InputError(
                    f"{p}: missing", hint=f"every frame of {self.meta_path.name} needs {folder}/<name>"
                )
            return np.zeros((*self.size, 3), np.float32)
        return read_frame_image(p, self.size)

    def warning(self) -> str | None:
        """One line naming the missing per-frame files that CoRA would silently replace by zeros."""
        parts = []
        for folder, names in self.missing.items():
            shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
            parts.append(f"{folder}/: {len(names)} missing ({shown})")
        return ("zeros substituted as CoRA does for " + "; ".join(parts)) if parts else None


def read_frame_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]; a clear error naming the file when unreadable or of the wrong size."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})", hint="write it as an 8-bit PNG") from None
    if arr.shape[:2] != tuple(size):
        raise InputError(
            f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, the cameras say {size[1]}x{size[0]}",
            hint="resize it to the size in transforms.json (w, h)",
        )
    return arr


def find_meta(root: Path, meta: str | Path | None = None) -> Path:
    """``meta`` (a name in ``root`` or a path), else transforms.json, else transforms_aligned.json."""
    if meta is not None:
        p = Path(meta)
        p = p if p.is_absolute() or p.exists() else root / p
        if not p.is_file():
            raise InputError(
                f"{p}: camera file not found", hint="pass --meta transforms.json or transforms_aligned.json"
            )
        return p
    for name in META_NAMES:
        if (root / name).is_file():
            return root / name
    raise InputError(
        f"{root}: no transforms.json or transforms_aligned.json",
        hint="write the cameras with agi2nerf (CoRA) or `fk eyeball synth`",
    )


def load_subject(root: str | Path, meta: str | Path | None = None, check_sizes: bool = False) -> Subject:
    """Read a subject folder's cameras and check its per-frame files.

    Args:
        root: the subject folder.
        meta: camera file (default: ``transforms.json``, else ``transforms_aligned.json``). A file whose
            name contains ``aligned`` holds OpenCV cam2worlds (CoRA skips the conversion for it).
        check_sizes: also open every per-frame PNG and check its size (slow for big subjects).
    Raises:
        InputError naming the file: unreadable JSON, a frame without ``file_path``/``transform_matrix``,
        an ``image/`` file missing for a listed frame, an image of the wrong size.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"{root}: not a folder", hint="pass the subject folder (image/, transforms.json, ...)"
        )
    meta_path = find_meta(root, meta)
    try:
        doc = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: cannot read camera JSON ({exc})", hint="re-export it") from None
    try:
        intrinsics = intrinsics_from_transforms(doc)
    except KeyError as exc:
        raise InputError(
            f"{meta_path}: {exc.args[0]}", hint="one shared intrinsic: fl_x, fl_y, cx, cy, w, h"
        ) from None
    raw = doc.get("frames")
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{meta_path}: no frames", hint="transforms.json needs a non-empty 'frames' list")
    aligned = "aligned" in meta_path.name
    frames = []
    for i, fr in enumerate(raw):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise InputError(
                f"{meta_path}: frame {i} lacks file_path or transform_matrix", hint="every frame needs both"
            )
        m = np.asarray(fr["transform_matrix"], dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise InputError(
                f"{meta_path}: frame {i} ({fr['file_path']}): transform_matrix is not a finite 4x4"
            )
        c2w = m if aligned else opencv_cam2world_from_ngp(m)
        frames.append(Frame(Path(str(fr["file_path"])).name, str(fr["file_path"]), c2w))
    frames.sort(key=lambda f: f.file_path)
    names = [f.name for f in frames]
    no_image = [n for n in names if not (root / "image" / n).is_file()]
    if no_image:
        shown = ", ".join(no_image[:5]) + (f" (+{len(no_image) - 5} more)" if len(no_image) > 5 else "")
        raise InputError(
            f"{meta_path}: {len(no_image)} listed frame(s) have no image/ file: {shown}",
            hint="remove those frames from the JSON or restore the images",
        )
    missing = {}
    for folder in PER_FRAME_FOLDERS[1:]:
        absent = [n for n in names if not (root / folder / n).is_file()]
        if absent:
            missing[folder] = absent
    subject = Subject(root, meta_path, intrinsics, frames, missing)
    if check_sizes:
        for folder in PER_FRAME_FOLDERS:
            for f in frames:
                if (root / folder / f.name).is_file():
                    read_frame_image(root / folder / f.name, subject.size)
    return subject


def write_transforms(
    path: str | Path,
    intrinsics: Intrinsics,
    names: list[str],
    cam2world: np.ndarray,
    aligned: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``transforms.json`` (instant-ngp matrices) or, with ``aligned``, ``transforms_aligned.json``
    (OpenCV cam2worlds) for frames ``image/<name>``."""
    from fk.atomic import write_text
    from fk.cameras.cora import ngp_from_opencv_cam2world, transforms_intrinsics

    doc: dict[str, Any] = {**transforms_intrinsics(intrinsics), "aabb_scale": 16, **(extra or {})}
    doc["frames"] = [
        {
            "file_path": f"image/{n}",
            "sharpness": 0.0,
            "transform_matrix": (c if aligned else ngp_from_opencv_cam2world(c)).tolist(),
        }
        for n, c in zip(names, np.asarray(cam2world, dtype=np.float64), strict=True)
    ]
    return write_text(path, json.dumps(doc, indent=2))
