"""Training: a few CPU steps on generated data lower the loss, write the released layout, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk_deep3d.train import MIRROR_68, FaceListDataset, TrainConfig, train


def test_mirror_permutation_is_an_involution_and_swaps_eyes():
    assert sorted(MIRROR_68) == list(range(68))
    assert np.array_equal(MIRROR_68[MIRROR_68], np.arange(68))
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[30] == 30 and MIRROR_68[0] == 16


def test_augmentation_moves_landmarks_with_the_image(tmp_path, make_dataset):
    make_dataset(tmp_path, n=1)
    plain = FaceListDataset(tmp_path, augment=False)[0]
    aug = FaceListDataset(tmp_path, augment=True, seed=3)
    sample = aug[0]
    # Landmark 30 (nose tip) is its own mirror: compare the pixel under it before and after.
    for s in (plain, sample):
        x, y = np.rint(s["landmarks"][30].numpy()).astype(int)
        assert s["image"][:, y, x].sum() > 0.5  # on the face, not the grey background
    assert plain["image"].shape == (3, 224, 224) and plain["mask"].shape == (224, 224)


def test_augmentation_depends_on_seed_epoch_and_index_only(tmp_path, make_dataset):
    """What process or worker reads a sample, and in what order, must not change it (DDP equals one process)."""
    make_dataset(tmp_path, n=2)
    a, b = FaceListDataset(tmp_path, seed=5), FaceListDataset(tmp_path, seed=5)
    b.set_epoch(1)
    later_first = b[1]["image"]
    b.set_epoch(0)
    b[0]  # noqa: B018 - reading another sample first must not matter
    assert torch.equal(a[1]["image"], b[1]["image"])
    a.set_epoch(1)
    assert torch.equal(a[1]["image"], later_first)
    assert not torch.equal(later_first, b[1]["image"])  # a new epoch draws a new augmentation


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_and_resume(tmp_path, make_dataset, fk_home):
    data = tmp_path / "data"
    make_dataset(data, n=1)
    # One sample, no augmentation: every step sees the same image, so the loss must fall.
    cfg = TrainConfig(data=data, out=tmp_path / "ckpt", model="demo", batch_size=1, lr=2e-5, max_steps=4,
                      renderer="cpu", augment=False)
    result = train(cfg)
    h = result["history"]
    assert result["steps"] == 4 and np.isfinite(h).all()
    assert h[-1] < h[0], h
    blob = torch.load(tmp_path / "ckpt" / "latest.pth", weights_only=True)
    assert {"net_recon", "opt_00", "sched_00", "epoch", "step"} <= set(blob)
    from fk.nets.reconnet import load_reconnet

    load_reconnet(tmp_path / "ckpt" / "latest.pth")  # the released layout loads strictly
    cfg.max_steps = 5
    again = train(cfg)
    assert again["steps"] == 5 and len(again["history"]) == 1  # resumed at step 4
