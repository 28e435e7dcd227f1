"""Which face model, device and R-Net checkpoint a deep3d step or training run uses.

Shared by the runners (``reconstruct:deep3d``, ``fit:deep3d``) and ``fk deep3d train``,
so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fk.errors import FkError
from fk_deep3d.constants import CHECKPOINT_ASSET


def choose_model(name: str):
    """``auto``: BFM09 when its converted file is present, else fk's demo head."""
    import fk.models

    if name == "auto":
        ready = {m["name"]: m["ready"] for m in fk.models.available_models()}
        name = "bfm09" if ready.get("bfm09") else "demo"
    return fk.models.load_face_model(name)


def resolve_checkpoint(path: str | None, required: bool) -> Path | None:
    """The R-Net checkpoint: an explicit path, else the deep3d/epoch_20.pth asset (or None)."""
    if path:
        return Path(path).expanduser()
    from fk.assets import asset_path, require_asset

    if required:
        return require_asset(CHECKPOINT_ASSET)
    p = asset_path(CHECKPOINT_ASSET)
    return p if p.exists() else None


def resolve_device(device: str | None, ctx_options: dict[str, Any] | None = None):
    """A ``torch.device`` from the step's parameter, else the run's ``device`` option, else CPU."""
    import torch

    name = device or (ctx_options or {}).get("device") or "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FkError(f"device {name!r} requested but CUDA is not available", hint="use device: cpu")
    return torch.device(name)
