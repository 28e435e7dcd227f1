"""Every recipe shipped in recipes/ validates against the installed first-party plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_bundled_recipe_validates(recipe):
    from fk.plugins import get_plugin_manager
    from fk.recipe import load_recipe

    plan = load_recipe(recipe, pm=get_plugin_manager(refresh=True))
    assert plan.steps


def test_dry_run_lists_items_and_runs_nothing(tmp_path):
    recipe = next(r for r in RECIPES if r.stem == "align")
    out = tmp_path / "never"
    res = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--dry-run", "--json",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert [s["id"] for s in info["steps"]] == ["detect", "ffhq", "deep3d", "eg3d"]
    assert info["items"][0].endswith("astronaut.png")
    assert not out.exists()


def test_builtin_inputs_resolve_and_unknown_ones_are_named(tmp_path, fk_home):
    from PIL import Image

    from fk.errors import RecipeError
    from fk.recipe import load_recipe, resolve_builtin

    x1, x2 = resolve_builtin("builtin:astronaut"), resolve_builtin("builtin:astronaut_x2")
    assert x2.is_relative_to(fk_home) and x2.name == "astronaut_x2.png"
    with Image.open(x1) as a, Image.open(x2) as b:
        assert b.size == (2 * a.width, 2 * a.height)
    first = x2.read_bytes()
    x2.unlink()
    assert resolve_builtin("builtin:astronaut_x2").read_bytes() == first  # deterministic
    recipe = tmp_path / "r.yaml"
    recipe.write_text("fk: 1\ninputs:\n  photos: {type: images, path: builtin:astronot}\n"
                      "steps:\n  - {id: detect, use: 'detect:dlib', in: {image: inputs.photos}}\n")
    with pytest.raises(RecipeError, match="builtin:astronaut_x2"):
        load_recipe(recipe)


@pytest.mark.slow
def test_lpff_recipe_default_input_does_real_work(tmp_path, fk_home):
    """The bundled LPFF recipe, as shipped: its 1024² astronaut passes LPFF's 512 px rule, gets a camera
    and a density decision (a frontal face is FFHQ-like, so it is filtered, not failed)."""
    recipe = next(r for r in RECIPES if r.stem == "lpff")
    out = tmp_path / "lpff"
    res = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--out", str(out), "-q",
                          "--set", "renderer=cpu"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads((out / "failures.json").read_text()) == []
    decisions = json.loads((out / "realign" / "density_filter.json").read_text())["faces"]
    assert len(decisions) == 1
    (key, decision), = decisions.items()
    assert key.startswith("astronaut_x2_") and decision["keep"] is False
