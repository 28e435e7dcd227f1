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
