"""Merging LPFF faces into FFHQ-EG3D (with mirrors and labels) and FFHQ-StyleGAN (no labels).

A merge is planned first (names, IDs and labels only: cheap at 179k images, and fully
validated), then executed one file at a time (streaming; every file is written to a
temporary name and renamed, and files already in place are skipped on a re-run).

ID rules (``lpff.md`` sections 3.1-3.3), with inputs sorted by name so the result never
depends on the file system's listing order:

- EG3D: FFHQ label k keeps ID k (label order, originals even, mirrors odd); the i-th
  LPFF face (by name) gets ID ``F + 2i`` and its mirror ``F + 2i + 1`` (F = FFHQ count);
  files are ``{ID//1000:05d}/img{ID:08d}.png``; ``dataset.json`` lists every label.
- StyleGAN: FFHQ keeps IDs 0..F-1 in its native layout ``{(ID//1000)*1000:05d}/{ID:05d}.png``;
  the i-th LPFF face gets ID ``F + i`` (F = 70,000 unless given); no labels, no mirrors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fk import atomic
from fk.cameras.eg3d import mirror_label
from fk.errors import FkError, InputError

from fk_datasets.labels import write_dataset_labels
from fk_datasets.names import archive_name, ffhq_native_name, index_of_archive_name, index_of_ffhq_native_name
from fk_datasets.rebalance import FFHQ_STYLEGAN_COUNT

MANIFEST = "lpff_merge.json"
_SHOW = 5  # problems named in one error message


@dataclass
class MergePlan:
    """What a merge writes. ``names[i]`` is image i's path under the output folder."""

    kind: str  # "eg3d" | "stylegan"
    ffhq_count: int
    names: list[str]
    sources: list[Path | None]  # None: the FFHQ image is not copied (labels-only plan)
    mirrored: np.ndarray  # (N,) bool: write the horizontal mirror of the source
    labels: np.ndarray | None  # (N, 25) for EG3D
    faces: dict[str, int] = field(default_factory=dict)  # LPFF face -> ID (the original's)
    image_size: int = 512

    @property
    def total(self) -> int:
        return len(self.names)

    def manifest(self) -> dict:
        return {"kind": self.kind, "ffhq_count": self.ffhq_count, "total": self.total,
                "lpff_count": len(self.faces), "image_size": self.image_size, "faces": self.faces}


def _problems(what: str, items: list[str], hint: str) -> InputError:
    shown = "; ".join(items[:_SHOW]) + (f"; ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return InputError(f"{what}: {shown}", hint=hint)


def check_ffhq_eg3d_order(names: list[str], source: str = "FFHQ dataset.json") -> None:
    """Label k must be image ID k: either already named ``archive_name(k)``, or EG3D's
    ``X.png`` at even k followed by ``X_mirror.png`` at k + 1."""
    if len(names) % 2:
        raise InputError(f"{source}: {len(names)} labels is odd; FFHQ-EG3D holds original/mirror pairs")
    for k in range(0, len(names), 2):
        a, b = names[k], names[k + 1]
        if index_of_archive_name(a) == k and index_of_archive_name(b) == k + 1:
            continue
        stem, dot, ext = a.rpartition(".")
        if dot and not stem.endswith("_mirror") and b == f"{stem}_mirror.{ext}":
            continue
        raise InputError(f"{source}: labels {k} and {k + 1} ({a!r}, {b!r}) are not an original followed by "
                         f"its mirror, nor named {archive_name(k)!r}, {archive_name(k + 1)!r}",
                         hint="Use FFHQ-EG3D labels in their original order (LPFF's dataset-ffhq.json).")


def plan_eg3d_merge(ffhq_names: list[str], ffhq_labels, lpff_faces: list[str], camera_parameters: dict,
                    ffhq_root: Path | None = None, crops_root: Path | None = None,
                    image_size: int = 512) -> MergePlan:
    """Plan FFHQ-EG3D + LPFF. ``lpff_faces`` are face names (sorted here); their labels come
    from ``camera_parameters``; sources are ``crops_root/{face}.png``."""
    ffhq_labels = np.asarray(ffhq_labels, dtype=np.float64).reshape(len(ffhq_names), 25)
    check_ffhq_eg3d_order(ffhq_names)
    faces = sorted(lpff_faces)
    dupes = sorted({f for f in faces if faces.count(f) > 1}) if len(set(faces)) != len(faces) else []
    if dupes:
        raise _problems("duplicate LPFF face names", dupes, "Each face must appear once.")
    missing = [f for f in faces if f not in camera_parameters]
    if missing:
        raise _problems(f"{len(missing)} LPFF face(s) have no label in camera_parameters.json", missing,
                        "Re-run the camera step for them, or reject them in review.")
    f = len(ffhq_names)
    lpff = np.array([camera_parameters[x] for x in faces], dtype=np.float64).reshape(-1, 25)
    labels = np.empty((f + 2 * len(faces), 25))
    labels[:f] = ffhq_labels
    labels[f::2] = lpff
    labels[f + 1::2] = mirror_label(lpff) if len(faces) else lpff
    names = [archive_name(i) for i in range(labels.shape[0])]
    sources: list[Path | None] = [ffhq_root / n if ffhq_root else None for n in ffhq_names]
    for x in faces:
        src = crops_root / f"{x}.png" if crops_root else None
        sources += [src, src]
    mirrored = np.zeros(len(names), dtype=bool)
    mirrored[f + 1::2] = True
    return MergePlan("eg3d", f, names, sources, mirrored, labels,
                     {x: f + 2 * i for i, x in enumerate(faces)}, image_size)


def plan_stylegan_merge(ffhq_names: list[str] | None, lpff_faces: list[str], crops_root: Path | None = None,
                        ffhq_root: Path | None = None, ffhq_count: int = FFHQ_STYLEGAN_COUNT,
                        image_size: int = 1024) -> MergePlan:
    """Plan FFHQ-StyleGAN + LPFF. ``ffhq_names`` (relative paths found under ``ffhq_root``)
    must be exactly ``ffhq_native_name(0..F-1)``; ``None`` takes F = ``ffhq_count`` without copying."""
    if ffhq_names is not None:
        ids = sorted((index_of_ffhq_native_name(n), n) for n in ffhq_names if index_of_ffhq_native_name(n) is not None)
        odd = sorted(n for n in ffhq_names if index_of_ffhq_native_name(n) is None)
        if odd:
            raise _problems(f"{len(odd)} file(s) in the FFHQ folder are not named like 00000/00012.png", odd,
                            "The FFHQ StyleGAN folder must hold FFHQ's images1024x1024 layout only.")
        gaps = [ffhq_native_name(i) for i, (j, _) in enumerate(ids) if i != j][:1]
        if gaps:
            raise _problems("FFHQ IDs are not contiguous from 0, first missing", gaps,
                            "Restore the missing FFHQ images, or omit --ffhq and pass --ffhq-count.")
        ffhq_count = len(ids)
    faces = sorted(lpff_faces)
    if len(set(faces)) != len(faces):
        raise _problems("duplicate LPFF face names", sorted({f for f in faces if faces.count(f) > 1}),
                        "Each face must appear once.")
    names = ([ffhq_native_name(i) for i in range(ffhq_count)] if ffhq_names is not None else []) + \
        [ffhq_native_name(ffhq_count + i) for i in range(len(faces))]
    sources: list[Path | None] = ([ffhq_root / n if ffhq_root else None for n in
                                   (ffhq_native_name(i) for i in range(ffhq_count))]
                                  if ffhq_names is not None else [])
    sources += [crops_root / f"{x}.png" if crops_root else None for x in faces]
    return MergePlan("stylegan", ffhq_count, names, sources, np.zeros(len(names), bool), None,
                     {x: ffhq_count + i for i, x in enumerate(faces)}, image_size)


# ----------------------------------------------------------------------------- execution
def image_problem(path: Path, size: int) -> str | None:
    """Why ``path`` cannot go into the dataset (missing, unreadable, not square, wrong size), or None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as exc:
        return f"{path} is not a readable image ({exc})"
    if w != h:
        return f"{path} is {w}x{h}, not square"
    if w != size:
        return f"{path} is {w}x{h}, expected {size}x{size}"
    return None


def execute_merge(plan: MergePlan, out_dir: Path, link: str = "hardlink", check_ffhq: bool = True) -> dict:
    """Write the planned dataset under ``out_dir``; returns counts. Nothing is deleted.

    ``link``: how unchanged images get there: ``hardlink`` (falls back to a copy across
    file systems), ``symlink`` or ``copy``. Mirrors are re-encoded (PNG, no compression).
    """
    if link not in ("hardlink", "symlink", "copy"):
        raise InputError(f"link must be hardlink, symlink or copy, got {link!r}")
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST
    wanted = plan.manifest()
    if manifest_path.is_file():
        done = json.loads(manifest_path.read_text())
        if done == wanted:
            return {"written": 0, "skipped": plan.total, "total": plan.total, "already_done": True}
        raise FkError(f"{out_dir} already holds a different merge ({manifest_path})",
                      hint="Choose an empty --out folder for a different set of faces.")
    problems = []
    for i, (src, mirrored) in enumerate(zip(plan.sources, plan.mirrored, strict=True)):
        if src is None or (i < plan.ffhq_count and not check_ffhq) or mirrored:
            continue
        problem = image_problem(src, plan.image_size)
        if problem:
            problems.append(problem)
    if problems:
        raise _problems(f"{len(problems)} image(s) cannot be merged", problems,
                        f"{plan.kind} images must be square PNGs of {plan.image_size}x{plan.image_size}.")
    written = skipped = 0
    for name, src, mirrored in zip(plan.names, plan.sources, plan.mirrored, strict=True):
        if src is None:
            continue
        dst = out_dir / name
        if dst.exists():
            skipped += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if mirrored:
            _write_mirror(src, dst)
        else:
            _place(src, dst, link)
        written += 1
    if plan.labels is not None:
        write_dataset_labels(out_dir / "dataset.json", plan.names, plan.labels)
    atomic.write_json(out_dir / "lpff_faces.json", plan.faces)
    atomic.write_json(manifest_path, wanted)
    return {"written": written, "skipped": skipped, "total": plan.total, "already_done": False}


def _write_mirror(src: Path, dst: Path) -> None:
    from PIL import Image, ImageOps

    with Image.open(src) as im:
        mirrored = ImageOps.mirror(im.convert("RGB"))
    with atomic.atomic_open(dst, "wb") as fh:
        mirrored.save(fh, format="PNG", compress_level=0)


def _place(src: Path, dst: Path, link: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        if link == "symlink":
            os.symlink(os.path.abspath(src), tmp)
        elif link == "hardlink":
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def list_images(root: Path, suffixes: tuple[str, ...] = (".png",)) -> list[str]:
    """Relative POSIX paths of the images under ``root``, sorted (hidden files skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if not fn.startswith(".") and fn.lower().endswith(suffixes):
                out.append(Path(dirpath, fn).relative_to(root).as_posix())
    return sorted(out)
