"""Restricted unpickling: pickles that may only name globals from an explicit allow-list.

A pickle can call any importable function while loading (``GLOBAL`` + ``REDUCE``), so a model file in
pickle format is a program. :class:`RestrictedUnpickler` resolves every global through ``allowed``, a
``{(module, name): replacement}`` table, and raises :class:`UnsafePickleError` for anything else before
it is imported or called; persistent ids are refused unless a subclass handles them. The replacements
are fk's own functions (rebuild a tensor, a dict, a NumPy array), never the named originals, so loading
runs no code from the file or from the modules it names.

Used by the StyleGAN2-ADA ``.pkl`` loader (:mod:`fk.nets.stylegan2.persistence`) and by loaders of other
pickled weights (MTCNN's joblib files in fk-plugin-align).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from fk.errors import InputError

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "restricted_loads"]


class UnsafePickleError(InputError):
    """The pickle names a global (function or class) that fk does not admit; nothing was run."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from ``allowed``.

    Args:
        file: a binary stream positioned at a pickle.
        allowed: ``{(module, name): object}``; the object is returned in place of ``module.name``.
        source: the file's name, for error messages.
        what: what the file should hold, for error messages ("a StyleGAN2-ADA network pickle").
        persistent_load: handler for persistent ids (refused when None).
    """

    def __init__(
        self,
        file: BinaryIO,
        allowed: Mapping[tuple[str, str], Any],
        source: str | Path = "<bytes>",
        what: str = "this file",
        persistent_load: Callable[[Any], Any] | None = None,
    ):
        super().__init__(file)
        self._persistent = persistent_load
        self._allowed = allowed
        self._source = str(source)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to load: the pickle asks for {module}.{name}, which is not a "
                f"part of {self._what}; nothing from it was run",
                hint="use the original, unmodified file; fk never runs code stored in a pickle",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is not None:
            return self._persistent(pid)
        raise UnsafePickleError(f"{self._source}: refused to load: unexpected persistent id {pid!r:.80}")


def restricted_loads(
    data: bytes,
    allowed: Mapping[tuple[str, str], Any],
    source: str | Path = "<bytes>",
    what: str = "this file",
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (optionally with a persistent-id handler)."""
    return RestrictedUnpickler(
        io.BytesIO(data), allowed, source=source, what=what, persistent_load=persistent_load
    ).load()
