"""Training zips for EG3D and StyleGAN2-ADA loaders (their ``dataset_tool.py`` layout).

- Images in sorted source order; image ``idx`` is stored as ``{idx//1000:05d}/img{idx:08d}.png``,
  PNG without compression, RGB.
- ``dataset.json`` at the root: ``{"labels": [[archive_name, [25 floats]], ...]}`` (EG3D,
  every image must have a label, 512x512) or ``{"labels": null}`` (StyleGAN, native 1024x1024).
- List files (``FFHQ.json``...) at the root, as LPFF's modified dataset tools copy them.

The index (what goes where) is planned from names and labels only; writing streams one
image at a time into a temporary file that is renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fk import atomic
from fk.errors import FkError, InputError
from fk_datasets.names import archive_name, index_of_archive_name, index_of_ffhq_native_name

_SHOW = 5


@dataclass
class ZipPlan:
    kind: str  # "eg3d" | "stylegan"
    sources: list[str]  # source paths relative to the source root, sorted
    archive: list[str]  # archive name of each source
    labels: np.ndarray | None  # (N, 25) in archive order, EG3D only
    lists: dict[str, list[str]] = field(default_factory=dict)
    resolution: int | None = 512  # None: keep the native resolution (StyleGAN)

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.kind, self.resolution, self.sources, sorted(self.lists)]).encode())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels).tobytes())
        for k in sorted(self.lists):
            h.update(json.dumps(self.lists[k]).encode())
        return h.hexdigest()


def plan_zip(kind: str, sources: list[str], labels: dict[str, np.ndarray] | None = None,
             lists: dict[str, list[str]] | None = None, resolution: int | None = None) -> ZipPlan:
    """Index a zip: ``sources`` are relative image paths (sorted here), ``labels`` maps a source
    path to its (25,) label (EG3D only). Raises listing every unlabelled image, every list
    entry missing from the archive, and sources whose ID would change in the archive."""
    if kind not in ("eg3d", "stylegan"):
        raise InputError(f"zip kind must be eg3d or stylegan, got {kind!r}")
    srcs = sorted(sources)
    if len(set(srcs)) != len(srcs):
        raise InputError("the same image path is listed twice")
    archive = [archive_name(i) for i in range(len(srcs))]
    label_arr = None
    if kind == "eg3d":
        if labels is None:
            raise InputError("an EG3D zip needs dataset.json labels for every image")
        missing = [s for s in srcs if s not in labels]
        if missing:
            raise _problems(f"{len(missing)} image(s) have no label in dataset.json", missing,
                            "Every EG3D image needs a camera label; re-run the merge.")
        label_arr = np.array([labels[s] for s in srcs], dtype=np.float64).reshape(len(srcs), 25)
    lists = dict(lists or {})
    if lists:
        # Lists name archive IDs; they are only right if each source keeps its ID.
        index_of = index_of_archive_name if kind == "eg3d" else index_of_ffhq_native_name
        moved = [f"{s} -> {a}" for i, (s, a) in enumerate(zip(srcs, archive, strict=True)) if index_of(s) != i]
        if moved:
            raise _problems(f"{len(moved)} image(s) would change ID in the zip, so the list files would "
                            "point at the wrong images", moved, "Zip a folder written by `fk datasets merge`.")
        known = set(archive)
        for stem, names in lists.items():
            bad = sorted({n for n in names if n not in known})
            if bad:
                raise _problems(f"{stem}.json names {len(bad)} image(s) not in the zip", bad,
                                "Rebuild the lists for this dataset.")
    if resolution is None and kind == "eg3d":
        resolution = 512
    return ZipPlan(kind, srcs, archive, label_arr, lists, resolution)


def _problems(what: str, items: list[str], hint: str) -> InputError:
    shown = "; ".join(items[:_SHOW]) + (f"; ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return InputError(f"{what}: {shown}", hint=hint)


def _encode(path: Path, resolution: int | None, native: list[int | None], resize_filter: str) -> bytes:
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()
    except OSError as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    if im.mode == "RGBA":
        im = im.convert("RGB")
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    w, h = im.size
    if w != h:
        raise InputError(f"{path}: {w}x{h} is not square", hint="Training zips hold square images only.")
    if resolution is None:
        if native[0] is None:
            native[0] = w
        if w != native[0]:
            raise InputError(f"{path}: {w}x{h}, but the dataset's images are {native[0]}x{native[0]}",
                             hint="Every image of a StyleGAN zip must have the same resolution.")
        if w & (w - 1):
            raise InputError(f"{path}: {w}x{h} is not a power of two", hint="StyleGAN needs 2^k x 2^k images.")
    elif w != resolution:
        resample = {"lanczos": Image.LANCZOS, "box": Image.BOX}[resize_filter]
        im = im.resize((resolution, resolution), resample)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


def write_zip(plan: ZipPlan, source_root: Path, dest: Path, resize_filter: str = "lanczos") -> dict:
    """Write ``dest`` (streaming, atomic). A sidecar ``{dest}.fk.json`` records what was
    zipped; a re-run with the same plan skips, a different plan refuses to overwrite."""
    if resize_filter not in ("lanczos", "box"):
        raise InputError(f"resize filter must be lanczos or box, got {resize_filter!r}")
    dest = Path(dest)
    sidecar = dest.with_name(dest.name + ".fk.json")
    digest = plan.digest()
    if dest.exists():
        prior = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        if prior.get("digest") == digest:
            return {"images": len(plan.sources), "skipped": True, "dest": str(dest)}
        raise FkError(f"{dest} exists and was not built from this dataset",
                      hint="Choose another --dest, or move the old zip away first.")
    native: list[int | None] = [None]
    with atomic.atomic_open(dest, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        for src, name in zip(plan.sources, plan.archive, strict=True):
            zf.writestr(name, _encode(Path(source_root) / src, plan.resolution, native, resize_filter))
        with zf.open("dataset.json", "w") as out:
            if plan.labels is None:
                out.write(b'{"labels": null}')
            else:
                out.write(b'{"labels": [')
                for i, (name, lab) in enumerate(zip(plan.archive, plan.labels, strict=True)):
                    row = json.dumps([name, [float(v) for v in lab]])
                    out.write((("," if i else "") + row).encode())
                out.write(b"]}")
        for stem in sorted(plan.lists):
            zf.writestr(f"{stem}.json", json.dumps(plan.lists[stem], indent=1))
    atomic.write_json(sidecar, {"digest": digest, "kind": plan.kind, "images": len(plan.sources),
                                "lists": {k: len(v) for k, v in sorted(plan.lists.items())}})
    return {"images": len(plan.sources), "skipped": False, "dest": str(dest)}
