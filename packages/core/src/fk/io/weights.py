"""Loading torch weight files safely, with one honest line when a file is refused.

Every checkpoint fk reads goes through :func:`load_torch_weights`: ``torch.load`` with
``weights_only=True`` (tensors and plain containers; a file that would run pickled code
is refused, never executed). torch's own refusal text is long, is cut mid-word by
one-line displays, and advises ``weights_only=False``; fk says instead which file,
whether it holds code or is simply not a weight file, and what to put there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fk.errors import InputError


def weights_error(path: str | os.PathLike[str], what: str, fix: str, exc: BaseException) -> InputError:
    """The one-line refusal for ``path`` (``what``: e.g. "Deep3D checkpoint"; ``fix``: what to do)."""
    text = str(exc)
    if "Weights only load failed" in text or "Unsupported global" in text or "Unsupported operand" in text:
        why = "holds Python objects or code, not only tensors: fk refuses it (it never runs pickled code)"
    else:  # a cut zip (PytorchStreamReader), EOFError, "invalid load key"...: torch's text is no help
        why = "is truncated or not a torch file"
    return InputError(f"{Path(path)}: this {what} {why}", hint=fix)


def load_torch_weights(
    path: str | os.PathLike[str], what: str, fix: str, map_location: Any = "cpu", allow: Sequence[Any] = ()
) -> Any:
    """``torch.load(path, weights_only=True)``; a refused or unreadable file raises :func:`weights_error`.

    ``allow``: extra globals the restricted unpickler may rebuild (``torch.serialization.safe_globals``),
    e.g. numpy's array reconstruction for files upstream saved as dicts of numpy arrays; never code.
    """
    import torch

    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{Path(path)}: no such {what}", hint=fix) from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError (zip), EOFError...
        raise weights_error(path, what, fix, exc) from None
