"""detect:face-alignment offline (no download path can run) and LPFF's dlib -> 2D-FAN fallback."""

from __future__ import annotations

import numpy as np
import pytest
from fk.errors import AssetMissingError, NoFaceError
from fk.types import Face
from fk_align.dlib_detect import DlibDetector
from fk_align.fan_detect import FanDetector, LpffDetector, fan_on_shrunk, fan_weight_paths
from fk_align.plugin import FAN_FILES


def test_missing_weights_say_what_to_put_where(fk_home):
    with pytest.raises(AssetMissingError) as info:
        FanDetector()
    msg = str(info.value)
    assert str(fk_home / "assets" / "face_alignment") in msg
    assert FAN_FILES["2DFAN-4"] in msg
    assert FAN_FILES["s3fd"] in msg
    assert "\n" not in msg
    assert "https://" in info.value.hint


def test_weights_dir_and_asset_folder_are_searched(fk_home, tmp_path):
    own = tmp_path / "weights"
    own.mkdir()
    for name in FAN_FILES.values():
        (own / name).write_bytes(b"x")
    assert fan_weight_paths(own)["s3fd"] == own / FAN_FILES["s3fd"]
    assets = fk_home / "assets" / "face_alignment"
    assets.mkdir(parents=True)
    (assets / FAN_FILES["2DFAN-4"]).write_bytes(b"x")
    with pytest.raises(AssetMissingError, match=FAN_FILES["s3fd"]):
        fan_weight_paths()
    (assets / FAN_FILES["s3fd"]).write_bytes(b"x")
    assert fan_weight_paths()["2DFAN-4"] == assets / FAN_FILES["2DFAN-4"]


def test_fan_assets_are_declared_for_fk_doctor(fk_home):
    from fk.assets import asset_status

    status = {s["name"]: s for s in asset_status()}
    for name, key in (("face-alignment-2dfan4", "2DFAN-4"), ("face-alignment-s3fd", "s3fd")):
        assert status[name]["path"].endswith(f"face_alignment/{FAN_FILES[key]}")
        assert not status[name]["present"]


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory):
    """Randomly initialised 2DFAN-4 and S3FD weights in the real files' format (real ones: a download)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("face_alignment")
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    folder = tmp_path_factory.mktemp("fan_weights")
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), folder / FAN_FILES["2DFAN-4"])
    torch.save(s3fd().state_dict(), folder / FAN_FILES["s3fd"])
    return folder


@pytest.mark.filterwarnings("ignore:No faces were detected")
def test_loads_from_local_files_without_any_download(untrained_weights, monkeypatch):
    import face_alignment.utils
    import torch.hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    hub_before = torch.hub.get_dir()
    # an impossible threshold: the untrained S3FD reports nothing, so the run is quick and deterministic
    det = FanDetector(weights_dir=str(untrained_weights), min_score=1.01)
    model = det.model()
    assert model.face_alignment_net is not None
    assert torch.hub.get_dir() == hub_before
    with pytest.raises(NoFaceError, match="detect:face-alignment"):
        det.find_faces(np.zeros((96, 128, 3), np.uint8))


def test_fallback_runs_on_a_shrunk_copy_and_maps_back(astro2x_path):
    """The fallback's resize and mapping, with dlib standing in for 2D-FAN on the <= 600 px copy."""
    from fk.io import load_image

    big = load_image(astro2x_path)  # 1024^2
    seen: list[tuple[int, int]] = []

    def detect_small(rgb):
        seen.append(rgb.shape[:2])
        return DlibDetector().detect(rgb)

    faces = fan_on_shrunk(detect_small, big, max_side=600)
    assert seen == [(600, 600)]
    direct = DlibDetector().find_faces(big)[0]
    assert faces[0].image_size == (1024, 1024)
    # landmarks found at 600 px, mapped back, agree with dlib at full size to within the scale's precision
    assert np.abs(faces[0].landmarks - direct.landmarks).mean() < 3.0
    np.testing.assert_allclose(faces[0].box, direct.box, atol=20)  # dlib boxes snap to its pyramid scales


def test_fallback_is_skipped_for_small_photos(astro_rgb):
    calls = []
    fan_on_shrunk(lambda rgb: calls.append(rgb.shape) or [], astro_rgb, max_side=600)
    assert calls == [(512, 512, 3)]


def test_lpff_uses_dlib_first_and_never_builds_the_fallback(astro_path, fk_home):
    det = LpffDetector()
    faces = det.find_faces(astro_path)
    assert faces[0].detector == "lpff/dlib"
    assert det._fan is None
    assert det.fan_error is None


def test_lpff_falls_back_only_when_dlib_finds_nothing(fk_home, monkeypatch):
    det = LpffDetector()
    blank = np.full((700, 900, 3), 60, np.uint8)
    with pytest.raises(NoFaceError) as info:
        det.find_faces(blank)
    assert "face-alignment" in info.value.hint
    assert FAN_FILES["s3fd"] in info.value.hint

    # With a working fallback (a stand-in returning one known face on the shrunk copy) the face is used,
    # in the full image's pixels.
    class StandIn:
        def detect(self, rgb):
            h, w = rgb.shape[:2]
            lm = np.tile([[w / 2, h / 2]], (68, 1)) + np.linspace(-20, 20, 136).reshape(68, 2)
            return [
                Face(
                    box=np.array([w / 2 - 30, h / 2 - 30, w / 2 + 30, h / 2 + 30]),
                    score=0.9,
                    landmarks=lm,
                    image_size=(h, w),
                    detector="face-alignment",
                )
            ]

    det2 = LpffDetector()
    monkeypatch.setattr(det2, "fan", lambda: StandIn())
    face = det2.find_faces(blank)[0]
    assert face.detector == "lpff/face-alignment"
    assert face.image_size == (700, 900)
    np.testing.assert_allclose(face.landmarks.mean(0), [449.5, 349.5], atol=1.0)  # the image centre
    assert face.box[2] - face.box[0] == pytest.approx(60 * 900 / 600, rel=0.01)


def test_lpff_detector_says_once_that_its_fallback_is_off_and_failures_carry_the_hint(tmp_path, fk_home):
    """No FAN weights: the run starts with one notice, and a faceless photo's failure says why the
    fallback did not run, in failures.json and --json."""
    import json
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(photos / "wall.png")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"fk: 1\ninputs:\n  photos: {{type: images, path: {photos}}}\nsteps:\n"
                      "  - {id: detect, use: 'detect:lpff', in: {image: inputs.photos}}\n")
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch")}
    res = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--out", str(tmp_path / "o"),
                          "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 5, res.stderr
    summary = json.loads(res.stdout)
    (notice,) = summary["notices"]
    assert notice.startswith("detect (detect:lpff): the face-alignment fallback is off")
    assert str(fk_home / "assets" / "face_alignment") in notice
    (failure,) = json.loads((tmp_path / "o" / "failures.json").read_text())
    assert failure["hint"].startswith("dlib found none, and the face-alignment fallback could not run")
    assert summary["failures"][0]["hint"] == failure["hint"]
    res = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.stderr.count("fallback is off") == 1 and "what to do" in res.stdout
