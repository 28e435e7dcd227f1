"""Deep3D losses against plain-loop references and their defining properties."""

from __future__ import annotations

import math

import torch

from fk.models.lighting import gamma_loss
from fk_deep3d import losses


def test_landmark_loss_weights_and_normalisation():
    pred = torch.zeros(2, 68, 2, dtype=torch.float64)
    target = torch.zeros_like(pred)
    target[0, 5, 0] = 1.0  # weight 1
    assert math.isclose(losses.landmark_loss(pred, target).item(), 1.0 / (2 * 68))
    target[0, 5, 0] = 0.0
    target[1, 62, 1] = 2.0  # inner mouth, weight 20
    assert math.isclose(losses.landmark_loss(pred, target).item(), 20 * 4.0 / (2 * 68))
    w = losses.landmark_weights(68)
    assert w.sum().item() == 57 + 11 * 20 and w[27] == 1 and w[28] == 20 and w[31] == 1


def test_photometric_loss_matches_loop():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 4, 5, 3, generator=g), torch.rand(1, 4, 5, 3, generator=g)
    m = (torch.rand(1, 4, 5, generator=g) > 0.4).float()
    total = sum(math.sqrt(1e-6 + sum((a[0, i, j, c] - b[0, i, j, c]).item() ** 2 for c in range(3)))
                for i in range(4) for j in range(5) if m[0, i, j] > 0)
    assert math.isclose(losses.photometric_loss(a, b, m).item(), total / m.sum().item(), rel_tol=1e-5)
    # An empty mask gives 0, not NaN.
    assert losses.photometric_loss(a, b, torch.zeros_like(m)).item() == 0.0


def test_gamma_loss_zero_for_grey_light_and_reflectance_zero_for_uniform_skin():
    grey = torch.arange(9.0).repeat(3)[None]
    assert gamma_loss(grey).item() == 0.0
    coloured = grey.clone()
    coloured[0, 0] += 3.0  # red DC only: deviations (2, -1, -1) on one of 27 entries
    assert math.isclose(gamma_loss(coloured).item(), (4 + 1 + 1) / 27, rel_tol=1e-6)
    albedo = torch.full((1, 6, 3), 0.5)
    skin = torch.tensor([1, 1, 1, 0, 0, 0])
    albedo[0, 4] = 0.9  # a non-skin vertex does not count
    assert losses.reflectance_loss(albedo, skin).item() == 0.0
    albedo[0, 0, 0] = 0.8
    mean = (0.8 + 0.5 + 0.5) / 3
    want = ((0.8 - mean) ** 2 + 2 * (0.5 - mean) ** 2) / 3
    assert math.isclose(losses.reflectance_loss(albedo, skin).item(), want, rel_tol=1e-5)


def test_coefficient_loss_weights():
    w = losses.LossWeights()
    out = losses.coefficient_loss(torch.ones(1, 80), torch.ones(1, 64), torch.ones(1, 80), w)
    assert math.isclose(out.item(), 80 * 1.0 + 64 * 0.8 + 80 * 1.7e-2, rel_tol=1e-6)
