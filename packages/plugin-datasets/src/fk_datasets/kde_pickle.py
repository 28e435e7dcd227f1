"""Read LPFF's ``kde.pkl`` (a pickled ``scipy.stats.gaussian_kde``) without running pickled code.

LPFF ships its FFHQ pose density as a pickle of scipy's ``gaussian_kde``. ``pickle.load``
would import and call whatever the file names; here a restricted unpickler admits only
the globals such a file needs: numpy's array, dtype and scalar reconstructors (numeric
dtypes only) and scipy's ``gaussian_kde`` class name, which is mapped to an inert record
that just keeps the pickled attributes. Anything else (``os.system``, ``builtins.eval``,
an object array, ...) is refused before it runs. The state is then checked and rebuilt
as a :class:`fk_datasets.kde.ScottKDE` from the pickled samples and kernel covariance
(not refitted), so densities equal scipy's to rounding.

Convention: scipy stores ``dataset`` as (d, n) = (2, N) rows (theta, phi) in radians
(LPFF's paper angles); ``covariance`` is the kernel covariance (factor^2 x data cov).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import InputError

from fk_datasets.kde import ScottKDE

_KDE_CLASSES = {("scipy.stats.kde", "gaussian_kde"), ("scipy.stats._kde", "gaussian_kde")}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float


class _PickledKde:
    """Stands in for ``gaussian_kde`` while unpickling: no methods, it only receives the state."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("gaussian_kde state is not a dict")
        self.state = state


def _safe_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"refused dtype {dt!s}: only numeric arrays are read")
    return dt


class _KdeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _KDE_CLASSES:
            return _PickledKde
        if module in _NUMPY_MODULES:
            if name == "_reconstruct":
                return _reconstruct
            if name == "ndarray":
                return np.ndarray
            if name == "dtype":
                return _safe_dtype
            if name == "scalar":
                return _safe_scalar
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: kde.pkl may only hold a gaussian_kde")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's array reconstructor, for plain ndarrays only (its state then comes by BUILD)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("refused an ndarray subclass")
    return np.ndarray.__new__(np.ndarray, shape, _safe_dtype(dtype))


def _safe_scalar(dtype: Any, data: bytes = b"") -> Any:
    dt = _safe_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dt)[0]


def load_kde_pickle(path: str | Path) -> ScottKDE:
    """LPFF's ``kde.pkl`` as a :class:`ScottKDE` (same samples and kernel covariance).

    Raises:
        InputError: the file is missing, is not a pickled 2-D ``gaussian_kde`` with uniform
            weights, or names anything else (nothing it names is ever run).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read the KDE pickle ({exc.strerror})",
                         hint="pass LPFF's data_processing/0_image_processing/kde.pkl") from None
    try:
        obj = _KdeUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{p}: not a safe scipy gaussian_kde pickle ({exc})",
                         hint="fk reads only pickled gaussian_kde objects of numeric arrays") from None
    if not isinstance(obj, _PickledKde):
        raise InputError(f"{p}: the pickle does not hold a gaussian_kde")
    return _rebuild(obj.state, str(p))


def _rebuild(state: dict, name: str) -> ScottKDE:
    def array(key: str) -> np.ndarray:
        value = state.get(key)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in _NUMERIC_KINDS:
            raise InputError(f"{name}: gaussian_kde state has no numeric '{key}' array")
        return value.astype(np.float64)

    dataset = array("dataset")
    if dataset.ndim != 2 or dataset.shape[0] != 2 or dataset.shape[1] < 3:
        raise InputError(f"{name}: expected a 2-D KDE over (theta, phi); dataset has shape {dataset.shape}")
    cov = array("covariance")
    if cov.shape != (2, 2) or not np.all(np.isfinite(cov)) or np.linalg.det(cov) <= 0:
        raise InputError(f"{name}: the KDE's covariance is not a positive-definite 2x2 matrix")
    n = dataset.shape[1]
    if "_weights" in state:
        weights = array("_weights")
        if weights.shape != (n,) or not np.allclose(weights, 1.0 / n, rtol=1e-9, atol=0):
            raise InputError(f"{name}: weighted KDEs are not supported (LPFF's is unweighted)")
    factor = float(state.get("factor", float(n) ** (-1.0 / 6.0)))
    return ScottKDE(np.ascontiguousarray(dataset.T), cov, factor)
