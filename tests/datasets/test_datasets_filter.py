import json

import numpy as np
from scipy.stats import gaussian_kde

from fk_datasets.density_filter import FALLBACK_CRITERION, DensityFilter, fallback_keep

from .conftest import ffhq_like_angles, lookat_label


def test_kde_filter_decisions_equal_scipy(tmp_path, rng):
    theta, phi = ffhq_like_angles(rng, 3000)
    labels = lookat_label(theta, phi)
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": [[f"{i:05d}.png", lab.tolist()] for i, lab in enumerate(labels)]}))
    flt = DensityFilter.from_ffhq_labels(path)
    yaw = np.radians(np.arange(-60, 61, 3.0))
    pitch = np.radians(np.arange(-30, 31, 3.0))
    yy, pp = np.meshgrid(yaw, pitch)
    q_theta, q_phi = np.pi / 2 - yy.ravel(), 1.48 + pp.ravel()
    records = flt.decide(lookat_label(q_theta, q_phi))
    ref = gaussian_kde(np.stack([theta, phi]))(np.stack([q_theta, q_phi]))
    np.testing.assert_allclose([r["density"] for r in records], ref, rtol=1e-9)
    assert [r["keep"] for r in records] == list(ref < 0.4)
    assert any(r["keep"] for r in records) and not all(r["keep"] for r in records)
    frontal = flt.decide(lookat_label(np.pi / 2, 1.48))[0]
    assert not frontal["keep"] and frontal["density"] > 1.0


def test_fallback_ellipse_matches_the_documented_contour():
    d = np.radians
    # on the axes, just inside / just outside the four quoted contour points
    assert not fallback_keep(d(90 + 33), d(84.8)) and fallback_keep(d(90 + 34), d(84.8))
    assert not fallback_keep(d(90 - 33), d(84.8)) and fallback_keep(d(90 - 34), d(84.8))
    assert not fallback_keep(d(90), d(69.0)) and fallback_keep(d(90), d(68.2))  # looking down: 68.6
    assert not fallback_keep(d(90), d(100.0)) and fallback_keep(d(90), d(100.6))  # looking up: 100.3
    # off the axes it is an ellipse, not a box: 30 deg yaw and 10 deg down is kept
    assert fallback_keep(d(90 + 30), d(74.8))


def test_fallback_decisions_from_labels_at_known_yaw_pitch(rng):
    flt = DensityFilter.from_ffhq_labels(None)
    yaw = rng.uniform(-60, 60, 200)
    pitch = rng.uniform(-35, 35, 200)  # degrees, positive = camera below (chin shows)
    records = flt.decide(lookat_label(np.radians(90 - yaw), np.radians(84.8 + pitch)))
    half = np.where(pitch < 0, 84.8 - 68.6, 100.3 - 84.8)
    expect = (yaw / 33.5) ** 2 + (pitch / half) ** 2 > 1
    assert [r["keep"] for r in records] == list(expect)
    assert all(r["criterion"] == FALLBACK_CRITERION and r["density"] is None and "approximation" in r["note"]
               for r in records)
