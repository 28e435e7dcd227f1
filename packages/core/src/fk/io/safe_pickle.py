"""Restricted unpickling: pickles that may only name globals from an explicit allow-list.

A pickle can call any importable function while loading (``GLOBAL`` + ``REDUCE``), so a model file in
pickle format is a program. :class:`RestrictedUnpickler` resolves every global through ``allowed``, a
``{(module, name): replacement}`` table, and raises :class:`UnsafePickleError` for anything else before
it is imported or called; persistent ids are refused unless a subclass handles them. The replacements
are fk's own functions (rebuild a tensor, a dict, a NumPy array), never the named originals, so loading
runs no code from the file or from the modules it names.

Used by the StyleGAN2-ADA ``.pkl`` loader (:mod:`fk.nets.stylegan2.persistence`);
:func:`load_joblib_arrays` reads ``joblib.dump`` files of NumPy arrays (MTCNN's weights in
fk-plugin-align) the same way, admitting nothing but numeric arrays.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from fk.errors import InputError

__all__ = [
    "NumpyDType",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "load_joblib_arrays",
    "numpy_scalar",
    "restricted_loads",
]


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


# -- NumPy values inside pickles -----------------------------------------------------------------------


class NumpyDType:
    """A NumPy dtype named in a pickle (``numpy.dtype('f4', False, True)`` + its byte-order state),
    limited to fixed-size numbers."""

    CODES = frozenset("f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1".split())

    def __init__(self, code: str, align: Any = False, copy: Any = True):
        if code not in self.CODES:
            raise UnsafePickleError(f"refused NumPy dtype {code!r}: only fixed-size numbers are read")
        self.code = code
        self.byteorder = "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
            self.byteorder = state[1]

    def numpy(self) -> Any:
        import numpy as np

        return np.dtype(self.code if self.code in ("i1", "u1", "b1") else self.byteorder + self.code)


def numpy_scalar(dtype: NumpyDType, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)`` -> the Python number."""
    import numpy as np

    if not isinstance(dtype, NumpyDType) or not isinstance(data, bytes | bytearray):
        raise UnsafePickleError("refused a NumPy scalar that is not a fixed-size number")
    return np.frombuffer(data, dtype=dtype.numpy(), count=1)[0].item()


class _JoblibArray:
    """``joblib.numpy_pickle.NumpyArrayWrapper``: its state says shape/order/dtype, and the raw array
    bytes follow the BUILD opcode in the stream (after optional alignment padding)."""

    KEYS = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"})

    def read(self, state: Any, read: Callable[[int], bytes], source: str) -> Any:
        import numpy as np

        if not isinstance(state, dict) or not set(state) <= self.KEYS:
            raise UnsafePickleError(f"{source}: refused to load: unexpected joblib array state")
        if state.get("subclass") is not _NDARRAY or not isinstance(state.get("dtype"), NumpyDType):
            raise UnsafePickleError(
                f"{source}: refused to load: a joblib array that is not a numeric ndarray"
            )
        shape = tuple(int(s) for s in state["shape"])
        order = state.get("order", "C")
        dtype = state["dtype"].numpy()
        if "numpy_array_alignment_bytes" in state:
            pad = read(1)
            if len(pad) != 1:
                raise InputError(f"{source}: truncated joblib array")
            read(pad[0])
        count = int(np.prod(shape, dtype=np.int64))
        raw = read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise InputError(f"{source}: truncated joblib array (expected {count * dtype.itemsize} bytes)")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if order == "F" else "C").copy()


_NDARRAY = object()  # stands in for numpy.ndarray as joblib's "subclass" field


class _JoblibUnpickler(pickle._Unpickler):  # the Python unpickler: BUILD must read the array bytes
    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file)
        self._source = source
        self._allowed = {
            ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArray,
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): NumpyDType,
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to load: the pickle asks for {module}.{name}; only NumPy arrays "
                "are read from this file and nothing from it was run",
                hint="use the original, unmodified weight file",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused to load: unexpected persistent id")

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _JoblibArray):
            self.stack[-1] = inst.read(state, self.read, self._source)
        elif isinstance(inst, NumpyDType):
            inst.__setstate__(state)
        else:
            raise UnsafePickleError(f"{self._source}: refused to load: BUILD on {type(inst).__name__}")

    dispatch = pickle._Unpickler.dispatch.copy()
    dispatch[pickle.BUILD[0]] = load_build


def load_joblib_arrays(data: bytes, source: str | Path = "<bytes>") -> Any:
    """Read a ``joblib.dump`` pickle of NumPy arrays (in lists/dicts/tuples) without joblib and
    without running anything: only ``NumpyArrayWrapper``, ``numpy.ndarray`` and numeric
    ``numpy.dtype`` are admitted. Decompress first (e.g. ``lz4.frame.decompress``)."""
    try:
        return _JoblibUnpickler(io.BytesIO(data), str(source)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise InputError(f"{source}: not a readable joblib array file ({exc})") from exc
