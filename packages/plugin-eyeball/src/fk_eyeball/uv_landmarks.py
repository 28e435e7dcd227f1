"""Eyeball landmarks painted in UV, lifted to 3D (CoRA's ``scripts/print_3d_eyeball_landmarks.py``, §11.2).

Upstream takes every pixel exactly (R, G, B) = (0, 255, 0) as one landmark (row-major scan order) and
prints ``coord[0][:, y, x]``. fk groups 8-connected pure-green pixels into blobs and takes each blob's
centroid (a single painted pixel gives upstream's answer), keeps upstream's order (by each blob's first
pixel in scan order), lifts the centroid by bilinear interpolation of the texel -> position map (the
nearest texel where a neighbour lies off the UV islands), and reports the count.

``coord.pkl`` (upstream's ``torch.save`` of a ``[1, 3, S, S]`` tensor) is read with torch's restricted
unpickler (``weights_only=True``): a file carrying code or arbitrary objects is refused, never run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from fk.errors import InputError

GREEN = (0, 255, 0)


def find_green_blobs(path: str | Path) -> np.ndarray:
    """(N, 2) blob centroids (row, col) in texel indices, upstream's order. Raises InputError naming the file."""
    from scipy import ndimage

    from fk_eyeball.masks import open_painted_png

    im = open_painted_png(Path(path), "landmark image", "paint the landmarks pure green on diffuse.png")
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    rgb = np.asarray(im)[..., :3]  # upstream keeps the first 3 channels, alpha ignored
    p = Path(path)
    green = (rgb[..., 0] == 0) & (rgb[..., 1] == 255) & (rgb[..., 2] == 0)
    labels, n = ndimage.label(green, structure=np.ones((3, 3), bool))
    if n == 0:
        raise InputError(
            f"{p}: no pure-green (0, 255, 0) landmark pixels",
            hint="paint each landmark exactly 0/255/0 in a lossless PNG",
        )
    index = np.arange(1, n + 1)
    centroids = np.asarray(ndimage.center_of_mass(green, labels, index), dtype=np.float64).reshape(-1, 2)
    first = np.asarray(ndimage.minimum(np.arange(green.size).reshape(green.shape), labels, index))
    return centroids[np.argsort(first, kind="stable")]


def load_coord(path: str | Path) -> np.ndarray:
    """(3, S, S) float32 texel -> position map from ``coord.npy`` or upstream's ``coord.pkl``/``.pt``.

    ``.npy`` is read with ``allow_pickle=False``; ``.pkl`` with ``torch.load(weights_only=True)``.
    Accepts ``[1, 3, S, S]`` or ``[3, S, S]``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: coord map not found", hint="pass the coord.pkl / coord.npy of the same export"
        )
    if p.suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise InputError(
                f"{p}: not a plain numeric .npy ({exc})", hint="save it with numpy.save"
            ) from None
    else:
        import torch
        from fk.io.weights import load_torch_weights

        obj = load_torch_weights(p, "coord map", "re-save it with torch.save(tensor) or numpy.save")
        if not isinstance(obj, torch.Tensor):
            raise InputError(f"{p}: holds a {type(obj).__name__}, expected a [1, 3, S, S] tensor")
        arr = obj.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 3 or arr.shape[1] != arr.shape[2]:
        raise InputError(f"{p}: coord map has shape {arr.shape}, expected [1, 3, S, S]")
    return arr.astype(np.float32)


def lift(coord: np.ndarray, rc: np.ndarray, source: str | Path = "") -> np.ndarray:
    """(N, 3) positions at texel coordinates ``rc (N, 2)`` (row, col): bilinear, nearest next to empty texels."""
    _, h, w = coord.shape
    out = []
    empty = ~np.any(coord != 0, axis=0)
    for r, c in np.asarray(rc, dtype=np.float64):
        r0, c0 = int(np.floor(r)), int(np.floor(c))
        fr, fc = r - r0, c - c0
        r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
        near = (int(np.rint(r)), int(np.rint(c)))
        if empty[near]:
            raise InputError(
                f"{source}: landmark at texel (row {near[0]}, col {near[1]}) lies off the UV islands (coord is 0)",
                hint="paint the landmarks on the same export's diffuse.png, at the coord map's resolution",
            )
        if empty[r0, c0] or empty[r0, c1] or empty[r1, c0] or empty[r1, c1]:
            out.append(coord[:, near[0], near[1]].astype(np.float64))
            continue
        v = (
            (1 - fr) * (1 - fc) * coord[:, r0, c0].astype(np.float64)
            + (1 - fr) * fc * coord[:, r0, c1]
            + fr * (1 - fc) * coord[:, r1, c0]
            + fr * fc * coord[:, r1, c1]
        )
        out.append(v)
    return np.asarray(out)


def uv_landmarks(ldm_img: str | Path, coord_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(points (N, 3), centroids (N, 2) row/col)`` of a painted landmark image through a coord map."""
    rc = find_green_blobs(ldm_img)
    coord = load_coord(coord_path)
    from PIL import Image

    with Image.open(ldm_img) as im:
        size = im.size
    if size != (coord.shape[2], coord.shape[1]):
        raise InputError(
            f"{ldm_img}: image is {size[0]}x{size[1]}, the coord map {coord_path} is {coord.shape[2]}x{coord.shape[1]}",
            hint="paint on the diffuse.png of the same export",
        )
    return lift(coord, rc, ldm_img), rc


def yaml_block(key: str, points: np.ndarray) -> str:
    """The config lines CoRA's users paste: ``data:`` then ``  <key>:`` and one ``- [x, y, z]`` per point."""
    rows = "\n".join(f"  - [{p[0]:.8g}, {p[1]:.8g}, {p[2]:.8g}]" for p in np.asarray(points))
    return f"data:\n  {key}:\n{rows}\n"


def write_config_key(path: str | Path, key: str, value, section: str = "data") -> None:
    """Set ``section.key`` in a YAML file, editing only those lines (comments and the rest kept verbatim).

    The value is written in flow style on one line; an existing entry (block or flow style) is replaced,
    otherwise the key is added at the end of ``section`` (created at the end when missing). The result is
    parsed again to check that nothing else changed.
    """
    import yaml

    p = Path(path)
    text = p.read_text() if p.is_file() else ""
    try:
        before = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(
            f"{p}: not valid YAML ({str(exc).splitlines()[0]})", hint="fix the config first"
        ) from None
    if not isinstance(before, dict) or not isinstance(before.get(section, {}), dict):
        raise InputError(f"{p}: '{section}' must be a mapping", hint="CoRA's configs have a data: section")
    flow = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6).strip()
    lines = text.splitlines()
    sec = next((i for i, ln in enumerate(lines) if re.match(rf"^{re.escape(section)}:\s*(#.*)?$", ln)), None)
    if sec is None:
        lines += [f"{section}:", f"  {key}: {flow}"]
    else:
        end = next((i for i in range(sec + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()
                    and not lines[i].lstrip().startswith("#")), len(lines))  # fmt: skip
        indent = next((len(ln) - len(ln.lstrip()) for ln in lines[sec + 1: end] if ln.strip()
                       and not ln.lstrip().startswith("#")), 2)  # fmt: skip
        pat = re.compile(rf"^ {{{indent}}}{re.escape(key)}:(\s|$)")
        at = next((i for i in range(sec + 1, end) if pat.match(lines[i])), None)
        new = " " * indent + f"{key}: {flow}"
        if at is None:  # append at the end of the section, before blank lines
            last = max((i for i in range(sec, end) if lines[i].strip()), default=sec)
            lines.insert(last + 1, new)
        else:
            stop = at + 1
            while stop < end and (not lines[stop].strip() or len(lines[stop]) - len(lines[stop].lstrip()) > indent
                                  or lines[stop].lstrip().startswith("- ") and
                                  len(lines[stop]) - len(lines[stop].lstrip()) == indent):  # fmt: skip
                stop += 1
            while stop > at + 1 and not lines[stop - 1].strip():
                stop -= 1  # keep blank lines that separate the next key
            lines[at:stop] = [new]
    out = "\n".join(lines) + "\n"
    after = yaml.safe_load(out)
    expect = dict(before)
    expect[section] = {**(before.get(section) or {}), key: _plain(value)}
    if after != expect:
        raise InputError(
            f"{p}: could not edit {section}.{key} without touching other keys", hint="edit it by hand"
        )
    from fk.atomic import write_text

    write_text(p, out)


def _plain(value):
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value
