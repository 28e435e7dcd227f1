"""evaluate:lpff-density as a pipeline step: FFHQ-like faces are filtered (not failed) and audited."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fk.cameras.eg3d import label_from_lookat_hv
from fk.engine.context import ItemContext
from fk.errors import ItemFiltered
from fk.types import Crop
from fk_datasets.components import DensityStep


def _ctx(tmp_path, key):
    return ItemContext(key=key, source=None, step_id="density", run_dir=tmp_path, step_dir=tmp_path / "realign")


def _crop():
    return Crop(image=np.full((8, 8, 3), 90, np.uint8), crop_from_source=np.eye(3), landmarks=None, method="x")


def test_frontal_face_is_filtered_into_bad_re_align(tmp_path):
    step = DensityStep()  # no FFHQ labels: the documented approximation
    frontal = label_from_lookat_hv(np.pi / 2, np.pi / 2)
    with pytest.raises(ItemFiltered, match="FFHQ-like") as decision:
        step({"label": frontal, "realign": _crop()}, _ctx(tmp_path, "front_00"))
    assert decision.value.outputs["keep"] is False
    assert (tmp_path / "realign" / "bad_re_align" / "front_00.png").exists()
    record = json.loads((tmp_path / "realign" / "density" / "front_00.json").read_text())
    assert record["keep"] is False and "approximation" in record["note"].lower()


def test_profile_face_is_kept(tmp_path):
    step = DensityStep()
    profile = label_from_lookat_hv(np.pi / 2 + np.radians(60), np.pi / 2)  # 60 degrees of yaw
    out = step({"label": profile, "realign": _crop()}, _ctx(tmp_path, "side_00"))
    assert out["keep"] is True and out["record"]["keep"] is True
    assert not (tmp_path / "realign" / "bad_re_align").exists()


def test_kde_decision_with_ffhq_labels(tmp_path):
    rng = np.random.default_rng(0)
    theta = np.pi / 2 + rng.normal(0, 0.15, 4000)
    phi = np.pi / 2 + rng.normal(0, 0.1, 4000)
    labels = label_from_lookat_hv(theta, phi)
    dataset = {"labels": [[f"{i:05d}/img{i:08d}.png", lab.tolist()] for i, lab in enumerate(labels)]}
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(dataset))
    step = DensityStep(ffhq_labels=str(path))
    with pytest.raises(ItemFiltered, match="density"):
        step({"label": label_from_lookat_hv(np.pi / 2, np.pi / 2)}, _ctx(tmp_path, "f"))
    kept = step({"label": label_from_lookat_hv(np.pi / 2 + 1.0, np.pi / 2)}, _ctx(tmp_path, "s"))
    assert kept["record"]["density"] < 0.4
