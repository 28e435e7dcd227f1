"""Reading and writing the label files of EG3D/LPFF datasets, with errors that name the file.

- ``dataset.json``: ``{"labels": [[relpath, [25 floats]], ...]}`` (EG3D) or ``{"labels": null}``.
- ``camera_parameters.json``: ``{face_name: [25 floats]}`` (LPFF, indent 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fk import atomic
from fk.cameras.eg3d import LABEL_SIZE
from fk.errors import InputError


def _load_json(path: Path, what: str):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found", hint=f"Pass the path of an existing {what}.")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def read_dataset_labels(path: Path) -> tuple[list[str], np.ndarray]:
    """An EG3D ``dataset.json`` -> (names in label order, (N, 25) float64 labels)."""
    doc = _load_json(path, "EG3D dataset.json")
    entries = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: expected {{\"labels\": [[name, [25 floats]], ...]}} with at least one label")
    names: list[str] = []
    labels = np.empty((len(entries), LABEL_SIZE))
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise InputError(f"{path}: label #{i} is not [name, [25 floats]]")
        vec = np.asarray(entry[1], dtype=np.float64).ravel()
        if vec.size != LABEL_SIZE or not np.isfinite(vec).all():
            raise InputError(f"{path}: label of {entry[0]!r} has {vec.size} values (or non-finite ones), "
                             f"expected {LABEL_SIZE} finite floats")
        names.append(entry[0])
        labels[i] = vec
    dupes = _duplicates(names)
    if dupes:
        raise InputError(f"{path}: {len(dupes)} image name(s) appear twice, e.g. {dupes[:3]}",
                         hint="Every image needs exactly one label.")
    return names, labels


def read_camera_parameters(path: Path) -> dict[str, np.ndarray]:
    """LPFF's ``camera_parameters.json`` -> {face: (25,) float64}."""
    doc = _load_json(path, "camera_parameters.json")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected {{face_name: [25 floats]}}")
    out = {}
    for face, vec in doc.items():
        arr = np.asarray(vec, dtype=np.float64).ravel()
        if arr.size != LABEL_SIZE or not np.isfinite(arr).all():
            raise InputError(f"{path}: the label of {face!r} has {arr.size} values (or non-finite ones), "
                             f"expected {LABEL_SIZE} finite floats")
        out[face] = arr
    return out


def write_dataset_labels(path: Path, names: list[str], labels: np.ndarray | None) -> Path:
    """Write ``dataset.json`` atomically (``labels=None`` writes ``{"labels": null}``)."""
    if labels is None:
        return atomic.write_text(path, json.dumps({"labels": None}) + "\n")
    rows = [[n, [float(v) for v in lab]] for n, lab in zip(names, np.asarray(labels), strict=True)]
    return atomic.write_text(path, json.dumps({"labels": rows}) + "\n")


def camera_parameters_text(labels: dict[str, np.ndarray]) -> str:
    """LPFF's ``camera_parameters.json`` content (sorted by face, indent 4)."""
    doc = {face: [float(v) for v in np.asarray(labels[face]).ravel()] for face in sorted(labels)}
    return json.dumps(doc, indent=4) + "\n"


def write_camera_parameters(path: Path, labels: dict[str, np.ndarray]) -> Path:
    return atomic.write_text(path, camera_parameters_text(labels))


def write_list(path: Path, names: list[str]) -> Path:
    """A list file: a JSON array of archive names, indent 1 like LPFF's."""
    return atomic.write_text(path, json.dumps(names, indent=1) + "\n")


def read_rejects(path: Path | None) -> set[str]:
    """Face names rejected in review (``rejects.json``: a JSON list); a missing file rejects none."""
    if path is None or not Path(path).is_file():
        return set()
    doc = _load_json(Path(path), "reject list")
    faces = doc.get("rejected") if isinstance(doc, dict) else doc
    if not isinstance(faces, list) or not all(isinstance(f, str) for f in faces):
        raise InputError(f"{path}: expected a JSON list of face names (or {{\"rejected\": [...]}})")
    return set(faces)


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    dupes = []
    for n in names:
        if n in seen:
            dupes.append(n)
        seen.add(n)
    return dupes
