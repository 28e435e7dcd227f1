"""Atomic file writes: a killed run never leaves a half-written file behind.

Every writer goes to a temporary file in the destination folder, flushes and
fsyncs it, then ``os.replace``-s it over the target (atomic on POSIX and on
Windows for the same volume). Readers see the old file or the new one, never a mix.
The file gets the mode ``open()`` would give it (0666 minus the umask), not
``mkstemp``'s private 0600, so a web server or a colleague can read run folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()
# Temporary siblings are ".<name>.<8 random chars>.part[<suffix>]": a process killed (kill -9,
# power loss) between creating and renaming one leaves it behind, never a half-written target.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.[^./]*)?$")


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(root: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files a killed writer left under ``root`` (call only while no writer runs)."""
    removed = []
    for folder, _, files in os.walk(root):
        for name in files:
            if is_temp_name(name):
                path = Path(folder) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def current_umask() -> int:
    """The process umask (Python < 3.13 can only read it by setting it, so swap it back under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _publish(tmp: str, target: Path) -> None:
    """Give ``tmp`` open()'s default mode, then move it over ``target`` (replacing a symlink there,
    never following it)."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, target)


def _name_target(exc: OSError, tmp: str | None, target: Path) -> OSError:
    """Errors name the file the user asked for, not our hidden temporary sibling."""
    if exc.filename in (None, tmp):
        exc.filename = str(target)
    return exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """A temporary sibling path of ``path`` for a writer that wants a file name (meshes, torch.save);
    moved into place with the umask applied when the block succeeds. It ends in ``path``'s suffix
    (or ``suffix``), for writers that pick the format by it."""
    target = Path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        ext = target.suffix if suffix is None else suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{ext}", dir=target.parent)
        os.close(fd)
        yield Path(tmp)
        _publish(tmp, target)
    except OSError as exc:
        raise _name_target(exc, tmp, target) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it into place on success."""
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    target = Path(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, target)
    except OSError as exc:
        raise _name_target(exc, tmp, target) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(to_jsonable(obj), indent=indent) + "\n")


def to_jsonable(obj: Any) -> Any:
    """numpy/torch scalars and arrays, paths and tuples to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor, without importing torch
        obj = obj.detach().cpu().numpy()
    if hasattr(obj, "tolist"):  # numpy array or scalar
        return obj.tolist()
    return obj


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
