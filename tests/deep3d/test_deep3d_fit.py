"""fit:deep3d on synthetic truth: render the demo head at known coefficients, fit, recover them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fk.errors import FkError, InputError
from fk.types import Crop
from fk_deep3d.fit import Fitter, pose_from_landmarks


@pytest.fixture(scope="module")
def demo_model():
    import fk.models

    return fk.models.load_face_model("demo")


def _truth(model, angle, trans, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model.join_coeffs({
        "id": 0.4 * torch.randn(1, model.n_id, generator=g), "exp": 0.3 * torch.randn(1, model.n_exp, generator=g),
        "tex": 0.4 * torch.randn(1, model.n_tex, generator=g), "gamma": 0.1 * torch.randn(1, 27, generator=g),
        "angle": torch.tensor([angle]), "trans": torch.tensor([trans])})


def test_pose_from_landmarks_is_exact_on_the_mean_face(demo_model):
    kp = demo_model.mean_vertices()[demo_model.keypoints].double().numpy()
    truth = demo_model.join_coeffs({"angle": torch.tensor([[0.15, -0.5, 0.08]]),
                                    "trans": torch.tensor([[0.1, -0.05, 0.3]])})
    lm = demo_model(truth)["landmarks_2d"][0].double().numpy()
    angle, trans, rmse = pose_from_landmarks(kp, lm)
    np.testing.assert_allclose(angle, [0.15, -0.5, 0.08], atol=1e-4)
    np.testing.assert_allclose(trans, [0.1, -0.05, 0.3], atol=1e-4)
    assert rmse < 1e-3


@pytest.mark.parametrize("yaw", [-1.3, 1.3])
def test_pose_from_landmarks_handles_near_profile_noisy_landmarks(demo_model, yaw):
    """One PnP start (no multi-start over yaw) finds a 75° head turn from 1 px-noisy landmarks."""
    kp = demo_model.mean_vertices()[demo_model.keypoints].double().numpy()
    truth = np.array([-0.1, yaw, 0.05])
    coeffs = demo_model.join_coeffs({"angle": torch.tensor(truth[None], dtype=torch.float32),
                                     "trans": torch.tensor([[-0.2, 0.1, 0.4]])})
    lm = demo_model(coeffs)["landmarks_2d"][0].double().numpy()
    noisy = lm + np.random.default_rng(3).normal(0.0, 1.0, lm.shape)
    angle, trans, rmse = pose_from_landmarks(kp, noisy)
    assert np.rad2deg(np.abs(angle - truth)).max() < 3.0, np.rad2deg(angle)
    np.testing.assert_allclose(trans, [-0.2, 0.1, 0.4], atol=0.1)
    assert 0.5 < rmse < 2.0  # the noise, not a wrong (mirrored) pose


def test_synthetic_truth_recovers_pose_and_landmarks(demo_model):
    truth = _truth(demo_model, [0.12, 0.35, -0.06], [0.05, -0.1, 0.2])
    fitter = Fitter(demo_model, iterations=12, renderer="cpu")
    with torch.no_grad():
        out = demo_model(truth)
        photo = (fitter.render(out).rgb[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    # A plain background, so the skin mask and the render mask both matter.
    photo[photo.sum(-1) == 0] = (40, 90, 160)
    lm = out["landmarks_2d"][0].numpy()
    result = fitter.fit(photo, lm)
    got = demo_model.split_coeffs(result.coeffs)
    err_deg = np.rad2deg(np.abs(got["angle"][0].numpy() - np.array([0.12, 0.35, -0.06])))
    assert err_deg.max() < 2.0, err_deg
    assert result.landmark_rmse < 1.0
    # The photometric stage ran and lowered the colour term.
    color = [h["color"] for h in result.history if h.get("stage") == 3.0]
    assert len(color) == 2 and color[1] < color[0]
    assert result.seconds["render"] > 0


def test_bad_inputs_raise_one_line_errors(demo_model):
    fitter = Fitter(demo_model, iterations=0)
    with pytest.raises(InputError, match="224×224"):
        fitter.fit(np.zeros((100, 100, 3), np.uint8), np.zeros((68, 2)))
    with pytest.raises(InputError, match="68 finite landmarks"):
        fitter.fit(np.zeros((224, 224, 3), np.uint8), np.full((68, 2), np.nan))


def test_scrambled_landmarks_are_a_recorded_failure(tmp_path, fk_home):
    from fk.engine.context import ItemContext
    from fk_deep3d.runners import FitRunner

    rng = np.random.default_rng(0)
    crop = Crop(image=np.full((224, 224, 3), 128, np.uint8), crop_from_source=np.eye(3),
                landmarks=rng.uniform(0, 224, size=(68, 2)), method="deep3d")
    ctx = ItemContext(key="bad_00", source=None, step_id="fit", run_dir=tmp_path, step_dir=tmp_path / "fit")
    with pytest.raises(FkError, match="bad_00: the fit failed"):
        FitRunner(model="demo", iterations=0)({"crop": crop}, ctx)


def test_fit_runs_on_its_thread_count_and_restores_the_process_setting(demo_model):
    """``threads`` holds during the whole fit (seen from inside the loss) and is undone afterwards."""
    from threadpoolctl import threadpool_info

    seen: list[int] = []
    blas: list[int] = []

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    def identity(image, landmarks):  # a differentiable stand-in feature that records the thread count
        seen.append(torch.get_num_threads())
        blas.extend(blas_threads())
        return image.mean(dim=(1, 2)).repeat(1, 171)[:, :512]

    coeffs = _truth(demo_model, [0.0, 0.2, 0.0], [0.0, 0.0, 0.0])
    with torch.no_grad():
        out = demo_model(coeffs)
        photo = (Fitter(demo_model).render(out).rgb[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    lm = out["landmarks_2d"][0].numpy()
    before = torch.get_num_threads()
    blas_before = blas_threads()
    torch.set_num_threads(2)
    try:
        Fitter(demo_model, iterations=2, renderer="cpu", identity=identity, threads=1).fit(photo, lm)
        assert seen and set(seen) == {1}
        assert set(blas) == {1}  # numpy's and scipy's OpenBLAS too (the fit's small SVDs)
        assert torch.get_num_threads() == 2
        assert blas_threads() == blas_before
        seen.clear()
        Fitter(demo_model, iterations=2, renderer="cpu", identity=identity, threads=0).fit(photo, lm)
        assert seen and set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_warming_the_runner_loads_the_model_and_changes_no_result(tmp_path, demo_model):
    """``warm()`` (the engine calls it once per process) builds what every item needs; fits are unchanged."""
    from fk.engine.context import ItemContext
    from fk_deep3d.runners import FitRunner

    coeffs = _truth(demo_model, [0.05, -0.2, 0.0], [0.0, 0.05, 0.1], seed=4)
    with torch.no_grad():
        out = demo_model(coeffs)
        photo = (Fitter(demo_model).render(out).rgb[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    lm = out["landmarks_2d"][0].numpy()
    crop = Crop(image=photo, crop_from_source=np.eye(3), landmarks=lm, method="deep3d")
    ctx = ItemContext(key="w_00", source=None, step_id="fit", run_dir=tmp_path, step_dir=tmp_path / "fit")
    warmed = FitRunner(model="demo", iterations=3, renderer="cpu")
    warmed.warm()
    assert warmed._model is not None
    torch.manual_seed(0)
    a = warmed({"crop": crop}, ctx)["recon"]
    torch.manual_seed(0)
    b = FitRunner(model="demo", iterations=3, renderer="cpu")({"crop": crop}, ctx)["recon"]
    assert np.array_equal(a.vertices, b.vertices)
    assert a.extra["landmark_rmse"] == b.extra["landmark_rmse"]
