"""The synthetic CoRA subject (``fk eyeball synth``), written once per test session; ``one_thread``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two OpenMP threads cost ~10x the CPU per training step.

    Named, not autouse: only the training modules take it (``pytestmark = usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_subject(tmp_path_factory):
    """A 360x480, 12-frame synthetic subject; returns (root, truth). Tests copy it before writing into it."""
    from fk_eyeball.synth import write_subject

    root = tmp_path_factory.mktemp("eyeball") / "subject"
    write_subject(root, scale=0.5, n_frames=12, uv_size=1024)
    return root, json.loads((root / "truth" / "truth.json").read_text())


@pytest.fixture
def subject_copy(synthetic_subject, tmp_path):
    root, truth = synthetic_subject
    dst = tmp_path / "subject"
    shutil.copytree(root, dst)
    return dst, truth


@pytest.fixture(scope="session")
def small_subject(tmp_path_factory):
    """12 frames at 64x85 (CoRA's portrait aspect), the true eye masks in leye_mask/ and reye_mask/ (as
    render-eye-masks writes): the training tests' subject."""
    from fk_eyeball.synth import write_subject

    root = tmp_path_factory.mktemp("train") / "subject"
    truth = write_subject(root, scale=64 / 720, n_frames=12, uv_size=256)
    for eye in ("leye", "reye"):
        shutil.copytree(root / "truth" / f"{eye}_mask", root / f"{eye}_mask")
    return root, truth
