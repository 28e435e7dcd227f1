"""Recipe validation: every problem found before any work, each with file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from fk.errors import RecipeError
from fk.recipe import load_recipe


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def _problems(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as err:
        load_recipe(path, list(overrides))
    return err.value.problems


def test_valid_recipe_gives_an_ordered_plan(toy_pm, toy_recipe):
    plan = load_recipe(toy_recipe)
    assert [s.id for s in plan.steps] == ["tiles", "colour", "summary"]
    assert [s.scope for s in plan.steps] == ["item", "item", "run"]
    assert plan.steps[0].params == {"n": 2}


def test_malformed_yaml_names_line_and_column(toy_pm, tmp_path):
    path = _write(tmp_path, "fk: 1\nsteps:\n  - id: a\n    use: [unclosed\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:") and "malformed YAML" in problem
    line = int(problem.split(":")[1])
    assert line >= 4


def test_unknown_keys_and_components_are_located_with_suggestions(toy_pm, toy_recipe):
    text = toy_recipe.read_text().replace("description:", "descripton:").replace("crop:tiles", "crop:tilez")
    path = toy_recipe.with_name("bad.yaml")
    path.write_text(text)
    problems = _problems(path)
    assert any(p.startswith(f"{path}:3:1: descripton: unknown key; did you mean 'description'") for p in problems)
    tile = next(p for p in problems if "crop:tilez" in p)
    assert f"{path}:8:" in tile and "did you mean 'crop:tiles'" in tile


def test_first_party_component_says_which_package_to_install(toy_pm, toy_recipe):
    path = toy_recipe.with_name("fp.yaml")
    path.write_text(toy_recipe.read_text().replace("crop:tiles", "reconstruct:deep3d"))
    problems = _problems(path)
    assert any("fk-plugin-deep3d" in p and "pip install" in p for p in problems)


def test_wiring_errors(toy_pm, toy_recipe):
    text = toy_recipe.read_text().replace("{tile: tiles.tiles}", "{tile: tiles.nope, colour: inputs.photoz}")
    path = toy_recipe.with_name("w.yaml")
    path.write_text(text)
    problems = "\n".join(_problems(path))
    assert "step 'tiles' (crop:tiles) has no output 'nope'" in problems
    assert "evaluate:mean-colour has no input 'colour'" in problems


def test_cycles_are_reported(toy_pm, toy_recipe):
    text = toy_recipe.read_text().replace("{image: inputs.photos}", "{image: colour.mean}")
    path = toy_recipe.with_name("c.yaml")
    path.write_text(text)
    assert any("cycle" in p for p in _problems(path))


def test_wrong_parameter_type_and_unknown_parameter(toy_pm, toy_recipe):
    problems = _problems(toy_recipe, ["tiles.n=two", "tiles.size=3"])
    assert any("steps[0].with.n: expects int" in p for p in problems)
    assert any("has no parameter 'size'" in p for p in problems)


def test_missing_input_file_names_the_fix(toy_pm, toy_recipe, tmp_path):
    problems = _problems(toy_recipe, [f"inputs.photos={tmp_path / 'nowhere'}"])
    assert any("does not exist" in p and "--set inputs.photos=PATH" in p for p in problems)


def test_set_overrides_reach_params_and_inputs(toy_pm, toy_recipe, photo_dir):
    plan = load_recipe(toy_recipe, ["tiles.n=3", "renderer=cpu"])
    assert plan.steps[0].params["n"] == 3 and plan.params["renderer"] == "cpu"


def test_missing_required_asset_fails_validation(toy_pm, toy_recipe, fk_home):
    from fk.components import Asset, Component, Port
    from fk.hookspecs import hookimpl

    class NeedsWeights:
        __name__ = "needs"

        @hookimpl
        def fk_assets(self):
            yield Asset("toy-weights", "toy/weights.bin", "toy weights", "put toy weights there")

        @hookimpl
        def fk_fit(self):
            yield Component("fit", "heavy", "needs weights", dict, inputs=(Port("image", "image"),),
                            requires_assets=("toy-weights",))

    toy_pm.register_plugin(NeedsWeights(), "needs", "test", "0")
    path = toy_recipe.with_name("a.yaml")
    path.write_text(toy_recipe.read_text() + "  - {id: fit, use: 'fit:heavy', in: {image: inputs.photos}}\n")
    problems = _problems(path)
    assert any(str(fk_home / "assets" / "toy" / "weights.bin") in p and "put toy weights there" in p
               for p in problems)
    (fk_home / "assets" / "toy").mkdir(parents=True)
    (fk_home / "assets" / "toy" / "weights.bin").write_bytes(b"w")
    assert [s.id for s in load_recipe(path).steps][-1] == "fit"


def _checked_plugin(check):
    from fk.components import Component, Param, Port
    from fk.hookspecs import hookimpl

    class Checked:
        __name__ = "checked"

        @hookimpl
        def fk_evaluate(self):
            yield Component("evaluate", "checked", "has a preflight", lambda **kw: None,
                            params=(Param("weights", "str", "w.pth"),), inputs=(Port("image", "image"),),
                            outputs=(Port("mean", "json"),), preflight=check)

    return Checked()


_CHECKED_RECIPE = ("fk: 1\ninputs:\n  photos: {type: images, path: %s}\nsteps:\n"
                   "  - id: judge\n    use: evaluate:checked\n    in: {image: inputs.photos}\n"
                   "    with: {weights: other.pth}\n")


def test_preflight_notices_reach_the_plan_once_with_the_step_named(tmp_path, photo_dir):
    from fk.testing import isolated_plugin_manager

    calls = []

    def check(params):
        calls.append(params)
        return [f"fallback off: {params['weights']} is absent"]

    with isolated_plugin_manager(_checked_plugin(check)):
        plan = load_recipe(_write(tmp_path, _CHECKED_RECIPE % photo_dir))
    assert calls == [{"weights": "other.pth"}]  # the resolved parameters, once
    assert plan.notices == ["judge (evaluate:checked): fallback off: other.pth is absent"]
    assert plan.to_dict()["notices"] == plan.notices


def test_preflight_error_is_a_located_problem_with_exit_4_before_any_item(tmp_path, photo_dir):
    from fk.errors import AssetMissingError, ExitCode
    from fk.testing import isolated_plugin_manager

    def check(params):
        raise AssetMissingError(f"{params['weights']} is missing", hint="put it in ~/.fk/assets/x/")

    with isolated_plugin_manager(_checked_plugin(check)), pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, _CHECKED_RECIPE % photo_dir))
    assert err.value.exit_code == ExitCode.MISSING
    (problem,) = err.value.problems
    assert "r.yaml:6:" in problem and "other.pth is missing; put it in ~/.fk/assets/x/" in problem
