"""Training: a few CPU steps on generated data lower the loss, write the released layout, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk_deep3d.train import MIRROR_68, FaceListDataset, TrainConfig, train, write_lists, write_sample


def _synthetic_dataset(root, n=4):
    """Demo-head renders at random poses, with their exact landmarks, in the prepared layout."""
    import fk.models
    from fk_deep3d.fit import Fitter

    model = fk.models.load_face_model("demo")
    fitter = Fitter(model, iterations=0, renderer="cpu")
    g = torch.Generator().manual_seed(0)
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


def test_mirror_permutation_is_an_involution_and_swaps_eyes():
    assert sorted(MIRROR_68) == list(range(68))
    assert np.array_equal(MIRROR_68[MIRROR_68], np.arange(68))
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[30] == 30 and MIRROR_68[0] == 16


def test_augmentation_moves_landmarks_with_the_image(tmp_path):
    _synthetic_dataset(tmp_path, n=1)
    plain = FaceListDataset(tmp_path, augment=False)[0]
    aug = FaceListDataset(tmp_path, augment=True, seed=3)
    sample = aug[0]
    # Landmark 30 (nose tip) is its own mirror: compare the pixel under it before and after.
    for s in (plain, sample):
        x, y = np.rint(s["landmarks"][30].numpy()).astype(int)
        assert s["image"][:, y, x].sum() > 0.5  # on the face, not the grey background
    assert plain["image"].shape == (3, 224, 224) and plain["mask"].shape == (224, 224)


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_and_resume(tmp_path):
    data = tmp_path / "data"
    _synthetic_dataset(data, n=1)
    # One sample, no augmentation: every step sees the same image, so the loss must fall.
    cfg = TrainConfig(data=data, out=tmp_path / "ckpt", model="demo", batch_size=1, lr=2e-5, max_steps=4,
                      renderer="cpu", augment=False)
    result = train(cfg)
    h = result["history"]
    assert result["steps"] == 4 and np.isfinite(h).all()
    assert h[-1] < h[0], h
    blob = torch.load(tmp_path / "ckpt" / "latest.pth", weights_only=True)
    assert {"net_recon", "opt_00", "sched_00", "epoch", "step"} <= set(blob)
    from fk_deep3d.rnet import load_reconnet

    load_reconnet(tmp_path / "ckpt" / "latest.pth")  # the released layout loads strictly
    cfg.max_steps = 5
    again = train(cfg)
    assert again["steps"] == 5 and len(again["history"]) == 1  # resumed at step 4
