"""The embedded uvfit path (no gated file) on the astronaut: `fk uvfit fit` = recipes/uvfit.yaml.

One run (module fixture) feeds every check: upstream's file names and formats, the projected texture
(a face a person recognises: skin where the face is, dark eyes, teeth), the GLB, the page and its
screenshot in headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fk.io import load_image

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_FILES = [
    "L_ball.obj",
    "R_ball.obj",
    "eye_ball_tex.mtl",
    "eye_ball_tex.png",
    "stage3_coeffs.npz",
    "stage3_mesh.mtl",
    "stage3_mesh_exp.obj",
    "stage3_mesh_id.obj",
    "stage3_uv.png",
    "stage3_vis.png",
]

pytestmark = pytest.mark.slow


def _fk(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fk.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uvfit")
    home = tmp / "fk_home"
    home.mkdir()
    env = {**os.environ, "FK_HOME": str(home)}  # no gated file: the demo head
    out = tmp / "out"
    proc = _fk(
        "uvfit",
        "fit",
        "builtin:astronaut",
        "--out",
        str(out),
        "--set",
        "fit.iterations=15",
        "--set",
        "renderer=cpu",
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, env


def test_writes_upstreams_files_per_face(run):
    out, _ = run
    assert json.loads((out / "failures.json").read_text()) == []
    item = out / "astronaut_00"
    names = {p.name for p in item.iterdir()}
    assert set(UPSTREAM_FILES) <= names
    assert {
        "astronaut_00.glb",
        "L_ball_exp.obj",
        "R_ball_exp.obj",
        "uvfit.json",
        "view_yaw-35.png",
        "view_yaw+0.png",
        "view_yaw+35.png",
    } <= names
    assert not (item / "stage3_mesh.mlt").exists()  # upstream's typo is fixed
    assert (out / "processed_data" / "astronaut_00.npz").is_file()  # step 1's safe file and vis strip
    assert (out / "processed_data_vis" / "astronaut_00.png").is_file()


def test_obj_and_mtl_follow_upstreams_format_with_usemtl(run):
    from fk.models.demo import demo_head_arrays

    item = run[0] / "astronaut_00"
    a = demo_head_arrays()
    mtl = (item / "stage3_mesh.mtl").read_text()
    assert mtl == (
        "newmtl blinn1SG\nKa 0.200000 0.200000 0.200000\nKd 1.000000 1.000000 1.000000\n"
        "Ks 1.000000 1.000000 1.000000\nmap_Kd stage3_uv.png"
    )
    for tag in ("id", "exp"):
        lines = (item / f"stage3_mesh_{tag}.obj").read_text().splitlines()
        assert lines[0] == "mtllib stage3_mesh.mtl"
        kinds = [ln.split(" ", 1)[0] for ln in lines]
        assert kinds.count("v") == len(a["mean_shape"]) // 3
        assert kinds.count("vt") == len(a["uvs"])
        assert kinds.count("f") == len(a["triangles"])
        assert "usemtl blinn1SG" in lines
        assert kinds.index("usemtl") < kinds.index("f")
        assert lines[kinds.index("f")].count("/") == 3  # f v/vt v/vt v/vt
    ident = np.load(item / "stage3_coeffs.npz")
    assert ident["coeffs"].shape == (1, 57)
    assert ident["lm68"].shape == (1, 68, 2)
    assert (item / "eye_ball_tex.mtl").read_text().endswith("map_Kd eye_ball_tex.png")


def test_obj_and_glb_open_in_trimesh_with_their_textures_bound(run):
    import trimesh

    item = run[0] / "astronaut_00"
    head = trimesh.load(item / "stage3_mesh_id.obj", process=False)
    uv_png = load_image(item / "stage3_uv.png")
    assert uv_png.shape == (1024, 1024, 3)
    assert head.visual.kind == "texture"
    assert head.visual.material.image.size == (1024, 1024)
    ball = trimesh.load(item / "L_ball.obj", process=False)
    assert ball.visual.kind == "texture"
    assert ball.visual.material.image is not None
    scene = trimesh.load(item / "astronaut_00.glb")
    assert sorted(scene.geometry) == ["L_ball", "R_ball", "head"]
    for geom in scene.geometry.values():
        assert geom.visual.kind == "texture"
        assert geom.visual.material.baseColorTexture is not None
    # the GLB's head texture is the UV PNG
    tex = np.asarray(scene.geometry["head"].visual.material.baseColorTexture.convert("RGB"))
    np.testing.assert_array_equal(tex, uv_png)


def test_the_texture_is_the_projected_photo_and_is_labelled(run):
    item = run[0] / "astronaut_00"
    info = json.loads((item / "uvfit.json").read_text())
    assert info["texture"] == "projected texture, no GAN"
    assert info["model"] == "demo"
    assert info["eyeballs"].startswith("procedural")
    assert info["coverage"]["photo"] > 0.2
    assert info["coverage"]["layout_coverage"] > 0.95
    manifest = json.loads((run[0] / "manifest.json").read_text())
    assert any(
        o["path"].endswith("astronaut_00/uvfit.json") for o in manifest["items"]["astronaut"]["outputs"]
    )
    note = next(m for m in manifest["items"]["astronaut"]["messages"] if "/uvfit:" in m)
    assert "projected texture, no GAN" in note
    assert "project " in note  # per-photo seconds by stage
    # the frontal render: a face a person recognises - skin in the cheeks, darker eyes, bright teeth
    front = load_image(item / "view_yaw+0.png").astype(float)
    lum = front.mean(-1)
    cheek = front[200:230, 120:150].mean((0, 1))
    assert cheek[0] > cheek[2] + 25, cheek  # warm skin
    assert 120 < cheek[0] < 250, cheek
    bg = np.abs(front - 237.0).sum(-1) < 3
    ys, xs = np.nonzero(~bg)
    assert 0.4 < (xs.max() - xs.min()) / 384 < 0.8  # a head, framed
    eyes = lum[140:175, 100:290]
    assert eyes.min() < 90, "the irises are dark"
    mouth = lum[230:290, 140:250]
    assert mouth.max() > 200, "the smile shows bright teeth"


def test_photo_texels_match_the_photo_where_the_fit_lands(run):
    """Re-project: the posed textured head rendered into the crop reproduces the crop's face."""
    item = run[0] / "astronaut_00"
    vis = load_image(item / "stage3_vis.png").astype(float)
    crop, render = vis[:, :224], vis[:, 224:448]
    centre = np.s_[70:170, 60:165]  # eyes to mouth
    err = np.abs(crop[centre] - render[centre]).mean()
    assert err < 12.0, err


def test_yaw_views_turn_the_head(run):
    item = run[0] / "astronaut_00"
    left, front, right = (load_image(item / f"view_yaw{y}.png").astype(float) for y in ("-35", "+0", "+35"))
    assert np.abs(left - front).mean() > 5
    assert np.abs(right - front).mean() > 5
    # mirror images of each other roughly (the face is nearly symmetric)
    assert np.abs(left[:, ::-1] - right).mean() < np.abs(left - right).mean()


def test_page_shows_the_label_the_views_and_links_that_exist(run):
    out = run[0]
    page = out / "index.html"
    text = page.read_text()
    assert "projected texture, no GAN" in text
    for name in ("view_yaw-35.png", "view_yaw+0.png", "view_yaw+35.png", "stage3_uv.png", "astronaut_00.glb"):
        assert f"astronaut_00/{name}" in text
    import re

    for src in re.findall(r"(?:src|href)='([^']+)'", text):
        assert (out / src).is_file(), src
    assert "http" not in text


def test_blender_hand_off_prints_the_exact_command_without_blender(run, tmp_path):
    out, env = run
    env = {**env, "PATH": str(tmp_path)}  # no blender here
    proc = _fk("uvfit", "blender", str(out) + "/", env=env)
    assert proc.returncode == 4, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    script = ROOT / "packages" / "plugin-uvfit" / "src" / "fk_uvfit" / "blender_script.py"
    assert line == f"blender --background --python {script} -- {(out / 'astronaut_00').resolve()}"


def test_blender_hand_off_runs_blender_with_an_absolute_folder(run, tmp_path):
    """A stand-in `blender` records its arguments and writes the .blend; a relative path with a trailing
    slash reaches it as an absolute folder without the slash."""
    out, env = run
    fake = tmp_path / "bin" / "blender"
    fake.parent.mkdir()
    log = tmp_path / "args.txt"
    fake.write_text(f'#!/bin/sh\necho "$@" > {log}\nd="$5"; touch "$d/$(basename "$d").blend"\n')
    fake.chmod(0o755)
    item = out / "astronaut_00"
    rel = os.path.relpath(item, tmp_path) + "/"
    proc = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "uvfit", "blender", rel],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "PATH": f"{fake.parent}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = log.read_text().split()
    assert args[:3] == [
        "--background",
        "--python",
        str(ROOT / "packages/plugin-uvfit/src/fk_uvfit/blender_script.py"),
    ]
    assert args[3:] == ["--", str(item.resolve())]
    assert (item / "astronaut_00.blend").exists()
    (item / "astronaut_00.blend").unlink()


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    return (browser, driver) if browser and driver else None


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="needs Chromium, chromedriver and selenium")
def test_page_in_headless_chromium(run, tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--window-size=1300,1000",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get((run[0] / "index.html").as_uri())
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script(
                "return [...document.images].length >= 7 && "
                "[...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        assert "projected texture, no GAN" in driver.page_source
        shot = tmp_path / "uvfit_page.png"
        assert driver.save_screenshot(str(shot))
        if os.environ.get("FK_SCREENSHOT_DIR"):
            Path(os.environ["FK_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(os.environ["FK_SCREENSHOT_DIR"]) / "uvfit_page.png")
        img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
        assert img.shape[0] > 500
        assert img.std() > 10
        skin = (img[..., 0] > img[..., 2] + 25) & (img[..., 0] > 120)
        assert skin.mean() > 0.02, "the textured head shows on the page"
    finally:
        driver.quit()


def test_bundled_recipe_and_the_plugin_copy_are_the_same():
    packaged = ROOT / "packages" / "plugin-uvfit" / "src" / "fk_uvfit" / "recipes" / "uvfit.yaml"
    assert packaged.read_text() == (ROOT / "recipes" / "uvfit.yaml").read_text()
