"""LPFF's kde.pkl read safely: a generated gaussian_kde pickle gives scipy's densities; bad ones run nothing."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from fk.errors import InputError
from fk_datasets.components import DensityStep
from fk_datasets.density_filter import DensityFilter, lpff_kde_query
from fk_datasets.kde_pickle import load_kde_pickle
from scipy.stats import gaussian_kde

from .conftest import lookat_label


def _ffhq_like(rng, n=400):
    theta = np.pi / 2 + rng.normal(0, 0.25, n)
    phi = np.radians(84.8) + rng.normal(0, 0.08, n)
    return np.stack([theta, phi])


def _lpff_style_pickle(kde: gaussian_kde) -> bytes:
    """The structure of LPFF's kde.pkl: an old scipy's gaussian_kde (module scipy.stats.kde, no cho_cov)."""
    return _dump_state({k: v for k, v in kde.__dict__.items() if k != "cho_cov"})


def _dump_state(state: dict) -> bytes:
    class gaussian_kde:  # noqa: N801 - pickled under scipy's module and class name
        pass

    gaussian_kde.__module__ = "scipy.stats.kde"
    gaussian_kde.__qualname__ = "gaussian_kde"
    obj = gaussian_kde.__new__(gaussian_kde)
    obj.__dict__.update(state)
    import sys
    import types

    fake = types.ModuleType("scipy.stats.kde")
    fake.gaussian_kde = gaussian_kde
    saved = sys.modules.get("scipy.stats.kde")
    sys.modules["scipy.stats.kde"] = fake
    try:
        return pickle.dumps(obj, protocol=4)
    finally:
        if saved is not None:
            sys.modules["scipy.stats.kde"] = saved
        else:
            del sys.modules["scipy.stats.kde"]


def test_generated_kde_pickle_gives_scipys_densities(tmp_path, rng):
    kde = gaussian_kde(_ffhq_like(rng))
    path = tmp_path / "kde.pkl"
    path.write_bytes(_lpff_style_pickle(kde))
    assert b"scipy.stats.kde" in path.read_bytes()
    loaded = load_kde_pickle(path)
    assert loaded.n == 400
    queries = np.stack([np.pi / 2 + rng.normal(0, 0.4, 50), np.radians(84.8) + rng.normal(0, 0.1, 50)], 1)
    np.testing.assert_allclose(loaded.evaluate_exact(queries), kde(queries.T), rtol=1e-10, atol=1e-14)
    # today's scipy pickles (scipy.stats._kde) load the same way
    path.write_bytes(pickle.dumps(kde))
    np.testing.assert_allclose(load_kde_pickle(path).evaluate_exact(queries), kde(queries.T), rtol=1e-10)


def test_density_step_with_kde_pickle_queries_like_lpff(tmp_path, rng):
    kde = gaussian_kde(_ffhq_like(rng))
    path = tmp_path / "kde.pkl"
    path.write_bytes(_lpff_style_pickle(kde))
    flt = DensityFilter.from_kde_pickle(path)
    theta, phi = np.pi / 2 - 0.3, np.pi / 2 - 0.05
    rec = flt.decide(lookat_label(theta, phi))[0]
    # LPFF evaluates at (pi - theta, phi) of the paper angles
    assert rec["density"] == pytest.approx(float(kde(lpff_kde_query([theta], [phi]).T)[0]), rel=1e-10)
    assert rec["criterion"] == "lpff-kde.pkl"
    assert rec["ffhq_kde"] == str(path)
    step = DensityStep(ffhq_kde=str(path))
    assert step.filter.criterion == "lpff-kde.pkl"


class _Boom:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    boom = _Boom()
    boom.marker = marker
    path = tmp_path / "kde.pkl"
    path.write_bytes(pickle.dumps(boom))
    with pytest.raises(InputError, match="refused"):
        load_kde_pickle(path)
    assert not marker.exists()
    # a gaussian_kde whose state smuggles a callable in an object array is refused too
    evil = _dump_state({"dataset": np.array([boom, 1, 2], dtype=object), "covariance": np.eye(2)})
    path.write_bytes(evil)
    with pytest.raises(InputError):
        load_kde_pickle(path)
    assert not marker.exists()


def test_not_a_kde_is_a_clear_error(tmp_path):
    path = tmp_path / "kde.pkl"
    path.write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(InputError, match="gaussian_kde"):
        load_kde_pickle(path)
    with pytest.raises(InputError, match="cannot read"):
        load_kde_pickle(tmp_path / "missing.pkl")
