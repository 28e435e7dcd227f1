"""fk.landmarks.five_from_68: the one 68 -> 5 reduction (Deep3D's extract_5p), numpy and torch."""

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.landmarks import five_from_68


def _deep3d_extract_5p(lm):
    """Deep3D's extract_5p restated from its 1-based indices: points 31, 37&40, 43&46, 49, 55,
    stacked as [nose, eyeL, eyeR, mouthL, mouthR] and reordered [1, 2, 0, 3, 4]."""
    idx = np.array([31, 37, 40, 43, 46, 49, 55]) - 1
    p = np.stack([lm[idx[0]], lm[idx[[1, 2]]].mean(0), lm[idx[[3, 4]]].mean(0), lm[idx[5]], lm[idx[6]]])
    return p[[1, 2, 0, 3, 4]]


def test_matches_deep3d_order_and_keeps_float32():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 500, (68, 2)).astype(np.float32)
    out = five_from_68(lm)
    assert out.dtype == np.float32  # Deep3D's np.mean keeps float32
    np.testing.assert_array_equal(out, _deep3d_extract_5p(lm))
    ints = rng.integers(0, 500, (68, 2))
    assert five_from_68(ints).dtype == np.float64
    np.testing.assert_array_equal(five_from_68(ints), _deep3d_extract_5p(ints.astype(np.float64)))


def test_torch_batches_keep_dtype_and_gradient():
    lm = torch.rand(3, 68, 2, dtype=torch.float64, requires_grad=True)
    out = five_from_68(lm)
    assert out.shape == (3, 5, 2)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert lm.grad[:, 36].sum().item() == pytest.approx(3.0)  # half of each eye centre's two coordinates
    np.testing.assert_allclose(out[1].detach().numpy(), five_from_68(lm[1].detach().numpy()))


def test_wrong_shape_names_the_problem():
    with pytest.raises(InputError, match="68, 2"):
        five_from_68(np.zeros((5, 2)))
