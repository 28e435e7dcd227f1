"""What a component sees while it processes one item: its key, options, and writers.

Every writer is atomic and records the file (path relative to the run folder, and
sha256) for the run manifest and for ``--resume``. Paths are relative to the step's
folder, which is ``<out>/<step id>`` unless the recipe gives the step a ``dir:``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fk import atomic
from fk.errors import FkError


class OutsideRunFolderError(FkError):
    """A write would land outside ``--out`` (a ``..`` path, an absolute path, or a symlink leaving it)."""


def confine(run_dir: Path, path: Path, what: str) -> Path:
    """``path`` with every symlink resolved, if it stays inside ``run_dir``; else an error naming it."""
    root = Path(run_dir).resolve()
    real = Path(path).resolve()
    if real != root and not real.is_relative_to(root):
        raise OutsideRunFolderError(f"{what} resolves to {real}, outside the run folder {root}; "
                                    "fk writes only inside --out",
                                    hint="Use a relative path without '..' and no symlink that leaves --out.")
    return real


@dataclass
class ItemContext:
    key: str  # the item's name: a photo's stem, or "{stem}_{NN}" for one face of it
    source: Path | None  # the input file the item came from
    step_id: str
    run_dir: Path
    step_dir: Path
    options: dict[str, Any] = field(default_factory=dict)  # recipe-wide params: device, renderer, seed...
    written: list[dict[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # Run-scope steps only: every item failure of the run so far ({item, step, error, ...}), so a
    # report or page can say which inputs gave nothing and why.
    failures: list[dict[str, Any]] = field(default_factory=list)

    # -- paths -----------------------------------------------------------------
    def path(self, relpath: str | os.PathLike[str]) -> Path:
        """Where ``relpath`` (relative to the step folder) lands; the folder is created."""
        return self._inside(self.step_dir / relpath, relpath)

    def run_path(self, relpath: str | os.PathLike[str]) -> Path:
        """A path relative to the run folder, for outputs that sit beside the step folders."""
        return self._inside(self.run_dir / relpath, relpath)

    def _inside(self, p: Path, asked: str | os.PathLike[str]) -> Path:
        """Refuse a path that leaves the run folder, by ``..``, an absolute path or a symlink."""
        confine(self.run_dir, p, f"{self.step_id}: {os.fspath(asked)!r}")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def _record(self, path: Path) -> Path:
        rel = os.path.relpath(path, self.run_dir)
        self.written.append({"path": rel, "sha256": atomic.sha256_file(path)})
        return path

    # -- writers (all atomic) --------------------------------------------------
    def write_bytes(self, relpath: str, data: bytes) -> Path:
        return self._record(atomic.write_bytes(self.path(relpath), data))

    def write_text(self, relpath: str, text: str) -> Path:
        return self._record(atomic.write_text(self.path(relpath), text))

    def write_json(self, relpath: str, obj: Any) -> Path:
        return self._record(atomic.write_json(self.path(relpath), obj))

    def save_npy(self, relpath: str, array: Any, allow_pickle: bool = False) -> Path:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=allow_pickle)
        return self.write_bytes(relpath, buf.getvalue())

    def save_image(self, relpath: str, image: Any, **save_kwargs: Any) -> Path:
        """Save an HxW, HxWx3 or HxWx4 array (uint8, or float in [0, 1]); format by suffix."""
        from fk.io import save_image

        return self._record(save_image(self.path(relpath), image, **save_kwargs))

    def write_with(self, relpath: str, writer: Callable[[Path], Any]) -> Path:
        """Let ``writer(tmp_path)`` write a file (e.g. a mesh), then move it into place atomically."""
        final = self.path(relpath)
        with atomic.atomic_path(final) as tmp:
            writer(tmp)
        return self._record(final)

    def write_mesh(self, relpath: str, mesh: Any) -> Path:
        """Write an ``fk.io.mesh.Mesh`` by suffix (.obj, .glb, .ply); a textured OBJ also writes its
        ``.mtl`` and texture PNG beside it (under names the OBJ refers to, so not through a temporary
        name). Every file is atomic and recorded; returns the mesh file's path."""
        from fk.io.mesh import obj_companion_files, save_mesh

        final = self.path(relpath)
        save_mesh(final, mesh)
        companions = obj_companion_files(final, mesh) if final.suffix.lower() == ".obj" else []
        for path in [*companions, final]:
            self._record(path)
        return final

    def log(self, message: str) -> None:
        """A note for the run log and manifest (shown with -v)."""
        self.messages.append(message)
