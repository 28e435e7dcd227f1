"""ArcFace in core: weight loading, the 112² template warp, unit features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.nets.arcface import (
    ARCFACE_TEMPLATE,
    IResNet50,
    five_points,
    load_identity,
    similarity_to_template,
    warp_112,
)


def _landmarks_on(points5: np.ndarray) -> torch.Tensor:
    """68 landmarks whose five Deep3D points (eye centres, nose tip, mouth corners) are ``points5``."""
    lm = np.zeros((1, 68, 2))
    lm[0, 36] = lm[0, 39] = points5[0]
    lm[0, 42] = lm[0, 45] = points5[1]
    lm[0, 30], lm[0, 48], lm[0, 54] = points5[2], points5[3], points5[4]
    return torch.tensor(lm)


def test_similarity_recovers_a_known_scale_and_shift():
    src = ARCFACE_TEMPLATE * 2.0 + np.array([10.0, -4.0])  # the template, twice as large and moved
    m = similarity_to_template(torch.tensor(src)[None])[0]
    expected = torch.tensor([[0.5, 0.0, -5.0], [0.0, 0.5, 2.0]], dtype=m.dtype)
    assert torch.allclose(m, expected, atol=1e-9)


def test_warp_is_the_identity_when_landmarks_sit_on_the_template():
    rng = np.random.default_rng(0)
    image = torch.tensor(rng.random((1, 112, 112, 3)))
    m = similarity_to_template(five_points(_landmarks_on(ARCFACE_TEMPLATE)))
    warped = warp_112(image, m)
    assert torch.allclose(warped.permute(0, 2, 3, 1), image, atol=1e-9)


def test_generated_weights_load_and_give_unit_features(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "arcface_r50.pth"
    torch.save(IResNet50().state_dict(), path)
    features = load_identity(path)
    image = torch.rand(2, 224, 224, 3)
    lm = _landmarks_on(ARCFACE_TEMPLATE * 2.0).float().expand(2, 68, 2)
    with torch.no_grad():
        f = features(image, lm)
    assert f.shape == (2, 512) and torch.allclose(f.norm(dim=-1), torch.ones(2), atol=1e-5)
    cosine = f @ f.T
    assert cosine[0, 0].item() == pytest.approx(1.0, abs=1e-6)
    assert cosine[0, 1].item() < 1.0 - 1e-4  # two random images are not the same identity


def test_absent_weights_skip_the_term_but_a_named_bad_file_is_an_error(tmp_path, fk_home):
    # nothing under $FK_HOME: the caller runs without its identity term
    assert load_identity(None, asset="deep3d/arcface_r50.pth") is None
    assert load_identity(None) is None  # no path and no asset named
    with pytest.raises(InputError, match="not found"):
        load_identity(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(InputError, match=r"wrong\.pth: not an ArcFace IResNet-50"):
        load_identity(wrong)
