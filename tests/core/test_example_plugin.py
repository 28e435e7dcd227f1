"""A third-party plugin, installed from examples/, shows up and works in recipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fk-example-dlib5"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """Install the example plugin into a private folder (not the test venv itself)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    return target


def fk(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "fk.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_example_plugin_appears_in_components_list(example_site):
    res = fk(example_site, "components", "list", "--kind", "detect", "--json")
    assert res.returncode == 0, res.stderr
    haar = next(c for c in json.loads(res.stdout) if c["ref"] == "detect:dlib5")
    assert haar["distribution"] == "fk-example-dlib5" and haar["fan_out"] == "faces"


def test_example_detector_finds_the_astronaut_in_a_recipe(example_site, tmp_path, astronaut_path):
    out = tmp_path / "out"
    res = fk(example_site, "run", str(EXAMPLE / "dlib5.yaml"), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["succeeded"] == 1
    face = json.loads((out / "detect" / "astronaut_00.json").read_text())
    x0, y0, x1, y1 = face["box"]
    points = np.array(face["points5"], float)  # dlib order: right eye (2), left eye (2), nose base
    assert ((points[:, 0] > x0 - 5) & (points[:, 0] < x1 + 5) & (points[:, 1] > y0 - 5) & (points[:, 1] < y1 + 5)).all()
    eyes, nose = points[:4], points[4]
    assert (eyes[:, 1] < nose[1]).all(), "eye corners sit above the nose"
    assert eyes[:2, 0].mean() < nose[0] < eyes[2:, 0].mean() or eyes[2:, 0].mean() < nose[0] < eyes[:2, 0].mean()


def test_two_workers_give_the_same_outputs_as_one(example_site, tmp_path, astronaut_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    img = Image.open(astronaut_path).convert("RGB")
    img.save(photos / "one.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "two.png")
    (photos / "three.jpg").write_bytes(b"truncated")
    results = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        res = fk(example_site, "run", str(EXAMPLE / "dlib5.yaml"), "--set", f"inputs.photos={photos}",
                 "--out", str(out), "--workers", workers, "--json")
        assert res.returncode == 5, res.stderr  # finished, with one failed item
        results[workers] = {p.name: p.read_bytes() for p in sorted((out / "detect").glob("*.json"))}
        failures = json.loads((out / "failures.json").read_text())
        assert [f["item"] for f in failures] == ["three"]
    assert results["1"] == results["2"] and len(results["1"]) >= 2
