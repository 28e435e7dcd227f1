"""Shared fixtures for the deep3d tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def synthetic_dataset(root, n=4, seed=0):
    """Demo-head renders at random poses, with their exact landmarks, in `fk deep3d prepare`'s layout."""
    import fk.models
    from fk_deep3d.fit import Fitter
    from fk_deep3d.train import write_lists, write_sample

    model = fk.models.load_face_model("demo")
    fitter = Fitter(model, iterations=0, renderer="cpu")
    g = torch.Generator().manual_seed(seed)
    names = []
    for i in range(n):
        coeffs = model.join_coeffs({"angle": (torch.rand(1, 3, generator=g) - 0.5) * 0.6,
                                    "trans": (torch.rand(1, 3, generator=g) - 0.5) * 0.2,
                                    "tex": torch.randn(1, model.n_tex, generator=g) * 0.3})
        with torch.no_grad():
            out = model(coeffs)
            img = fitter.render(out).rgb[0].clamp(0, 1).numpy()
        img = (np.where(img.sum(-1, keepdims=True) > 0, img, 0.3) * 255).astype(np.uint8)
        write_sample(root, f"f{i}", img, out["landmarks_2d"][0].numpy())
        names.append(f"f{i}")
    write_lists(root, names, val_fraction=0.0)
    return model


@pytest.fixture
def make_dataset():
    """``make_dataset(root, n=4)`` writes ``n`` synthetic training samples under ``root``."""
    return synthetic_dataset
