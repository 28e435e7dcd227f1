"""Which torch device a step runs on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when usable, else CPU).

The recipe check (``fk.recipe.unusable_here`` on a ``role="device"`` parameter) already refuses a CUDA
device on a machine without one before any item runs; :func:`resolve_device` says the same thing, in one
line, to code that is called outside a recipe.
"""

from __future__ import annotations

from typing import Any

from fk.errors import InputError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def resolve_device(name: Any = None, options: dict[str, Any] | None = None):
    """A ``torch.device`` from ``name``, else the run's ``device`` option, else CPU; ``auto`` is CUDA when
    torch sees a GPU, else CPU. A device that cannot work here raises :class:`fk.errors.InputError`."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    name = name or (options or {}).get("device") or "cpu"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from fk.recipe import _device_problem

    problem = _device_problem(str(name))
    if problem:
        raise InputError(f"device {name!r}: {problem}", hint=f"use one of {DEVICE_CHOICES}")
    return torch.device(name)
