"""fk.geometry.check_shape: patterns, bound names, and messages that name the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk import ShapeError
from fk.geometry import check_shape


def test_message_names_argument_pattern_and_shape():
    with pytest.raises(ShapeError, match=r"^R: expected \(\*batch, 3, 3\), got \(4, 3\)$"):
        check_shape(np.zeros((4, 3)), "*batch 3 3", name="R")


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


def test_variadic_and_named_dims_bind():
    dims = check_shape(torch.zeros(2, 5, 68, 3), "*batch N 3", name="points")
    assert dims == {"batch": (2, 5), "N": 68}
    check_shape(np.zeros((2, 5, 68, 2)), "*batch N 2", name="pixels", dims=dims)
    with pytest.raises(ShapeError, match=r"pixels: expected \(\*batch, N, 2\), got \(2, 5, 67, 2\) \(N was 68\)"):
        check_shape(np.zeros((2, 5, 67, 2)), "*batch N 2", name="pixels", dims=dims)
    with pytest.raises(ShapeError, match=r"\(batch was \(2, 5\)\)"):
        check_shape(np.zeros((3, 68, 2)), "*batch N 2", name="pixels", dims=dims)


def test_empty_variadic_and_fixed_patterns():
    assert check_shape(np.zeros((3, 3)), "*batch 3 3") == {"batch": ()}
    check_shape(np.zeros((7, 3)), "_ 3")
    with pytest.raises(ShapeError):
        check_shape(np.zeros((7, 3, 1)), "N 3")
    with pytest.raises(ShapeError):
        check_shape(np.zeros(3), "*batch 3 3")
    with pytest.raises(ShapeError):
        check_shape(np.zeros((2, 3)), "N N")  # a repeated name must repeat its size
    assert check_shape(np.zeros((3, 3)), "N N") == {"N": 3}
