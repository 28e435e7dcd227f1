"""reconstruct:lpff-camera: R-Net's regression unchanged when epoch_20.pth is there; otherwise fk's fit,
labelled as the fallback; a poor fallback fit is kept and flagged, never dropped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fk.engine.context import ItemContext
from fk.plugins import get_plugin_manager
from fk_datasets.components import LpffCamera


@pytest.fixture(scope="module")
def astronaut_crop():
    from fk.testing import astronaut_path
    from fk_align.crops import Deep3DCrop
    from fk_align.dlib_detect import DlibDetector
    from PIL import Image

    face = DlibDetector(min_score=0.3).find_faces(astronaut_path())[0]
    rgb = np.asarray(Image.open(astronaut_path()).convert("RGB"))
    return Deep3DCrop(save=False).crop(rgb, face.landmarks)


def _ctx(tmp_path, key="astronaut_01"):
    return ItemContext(key=key, source=None, step_id="camera", run_dir=tmp_path, step_dir=tmp_path / "camera")


def test_with_the_checkpoint_the_camera_is_rnets_regression_unchanged(tmp_path, astronaut_crop):
    from fk.nets.reconnet import ReconNet

    torch.manual_seed(0)
    net = ReconNet()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
    ckpt = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": net.state_dict(), "epoch": 20}, ckpt)
    step = LpffCamera(checkpoint=str(ckpt), model="demo", renderer="cpu")
    recon = step({"crop": astronaut_crop}, _ctx(tmp_path))["recon"]
    direct = get_plugin_manager().component("reconstruct:deep3d").load_factory()(
        checkpoint=str(ckpt), model="demo", renderer="cpu", iterations=0)
    expected = direct({"crop": astronaut_crop}, _ctx(tmp_path / "direct"))["recon"]
    for key in ("angle", "trans"):
        np.testing.assert_array_equal(recon.coeffs[key], expected.coeffs[key])
    assert recon.extra["camera_source"] == "rnet"
    assert recon.extra["method"] == "regression", "no fit refines LPFF's camera"
    record = json.loads((tmp_path / "camera" / "astronaut_01.json").read_text())
    assert record["source"] == "rnet"
    assert record["flag"] is None


def test_without_it_the_fit_is_the_labelled_fallback_and_a_poor_fit_is_flagged(tmp_path, astronaut_crop,
                                                                               monkeypatch):
    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))  # no assets: no epoch_20.pth
    step = LpffCamera(model="demo", renderer="cpu", fit_iterations=2, flag_rmse=0.01)
    recon = step({"crop": astronaut_crop}, _ctx(tmp_path))["recon"]
    assert recon.extra["camera_source"] == "fit-fallback"
    record = json.loads((tmp_path / "camera" / "astronaut_01.json").read_text())
    assert record["source"] == "fit-fallback"
    assert "not LPFF's camera" in record["note"]
    assert record["landmark_rmse"] > 0.01
    assert record["flag"].startswith("poor camera fit"), "kept and flagged, not dropped"
    with pytest.raises(Exception, match="epoch_20"):
        LpffCamera(fallback="none").runner()
