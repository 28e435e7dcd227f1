"""Issue 11, honest errors: --json always one document, missing plugins and assets named with a
command that works pasted, plugin conflicts and broken hooks shown without stopping fk,
hostile YAML bounded, checkpoints refused in one line, a full disk reported as a path."""

from __future__ import annotations

import errno
import json
import shlex
from pathlib import Path

import pytest

from fk.cli.main import main
from fk.components import Component, Port
from fk.errors import ExitCode, RecipeError
from fk.hookspecs import hookimpl
from fk.recipe import load_recipe
from fk.testing import isolated_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def _json_run(capsys, *argv: str) -> tuple[int, dict]:
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)  # exactly one document, or json.loads raises


# -- 8. --json errors are one JSON document -----------------------------------------------------------
def test_json_errors_are_exactly_one_document(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fk: 1\nsteps: [\n")
    rc, doc = _json_run(capsys, "recipe", "validate", str(bad))
    assert rc == ExitCode.INVALID_RECIPE
    assert doc["ok"] is False and doc["error"]["exit_code"] == 3
    assert doc["error"]["message"].startswith(f"{bad}:3:1: malformed YAML")
    rc, doc = _json_run(capsys, "run", str(tmp_path / "nope.yaml"))
    assert rc == 3 and "no such recipe file" in doc["error"]["message"]
    rc, doc = _json_run(capsys, "components", "list", "--kind", "nope")
    assert rc == ExitCode.USAGE and doc["error"]["type"] == "UsageError"
    rc, doc = _json_run(capsys, "run", str(bad), "--workers", "0")  # click's own usage error
    assert rc == 2 and doc["ok"] is False


# -- 10/11. missing first-party plugins -----------------------------------------------------------------
def _first_party_modules():
    import importlib

    found = {}
    for dist, module in (
        ("fk-plugin-align", "fk_align.plugin"),
        ("fk-plugin-deep3d", "fk_deep3d.plugin"),
        ("fk-plugin-datasets", "fk_datasets.plugin"),
        ("fk-plugin-gmpi", "fk_gmpi.plugin"),
        ("fk-plugin-uvfit", "fk_uvfit.plugin"),
        ("fk-plugin-eyeball", "fk_eyeball.plugin"),
    ):
        try:
            found[dist] = importlib.import_module(module)
        except ImportError:
            pytest.skip(f"{dist} is not installed")
    return found


def test_first_party_hint_table_matches_every_first_party_plugins_real_components_and_commands():
    import typer
    from fk.plugins import FIRST_PARTY, FIRST_PARTY_COMMANDS

    modules = _first_party_modules()
    assert set(FIRST_PARTY) == set(modules)
    commands = {}
    for dist, module in modules.items():
        with isolated_plugin_manager(module) as pm:
            real = {ref for ref, comp in pm.components.items() if comp.plugin != "core"}
        assert set(FIRST_PARTY[dist]) == real, f"fk/plugins.py FIRST_PARTY[{dist!r}] = {tuple(sorted(real))}"
        app = typer.Typer()
        if hasattr(module, "fk_cli"):
            module.fk_cli(app)
        commands.update({group.name: dist for group in app.registered_groups})
    assert FIRST_PARTY_COMMANDS == commands


def test_a_recipe_needing_an_absent_first_party_plugin_names_it_and_nothing_else(tmp_path):
    deep3d = _first_party_modules()["fk-plugin-deep3d"]
    with isolated_plugin_manager(deep3d), pytest.raises(RecipeError) as err:  # align is "not installed"
        load_recipe(ROOT / "recipes" / "demo.yaml")
    text = str(err.value)
    assert err.value.exit_code == ExitCode.MISSING
    assert "provided by fk-plugin-align, which is not installed" in text
    assert "did you mean" not in text and "no step" not in text
    hint = next(p for p in err.value.problems if "fk-plugin-align" in p).split("; ", 1)[1]
    assert shlex.split(hint.split("  ")[0]) == ["pip", "install", "./packages/plugin-align"]


def test_fk_datasets_without_the_plugin_says_which_plugin_and_how():
    import os
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "fk.cli.main", "datasets", "review", "x"],
        capture_output=True,
        text=True,
        env={**os.environ, "FK_DISABLE_PLUGINS": "datasets"},
        timeout=120,
    )
    assert res.returncode == ExitCode.MISSING
    assert "`fk datasets` is provided by fk-plugin-datasets" in res.stderr
    assert "pip install ./packages/plugin-datasets" in res.stderr


def test_required_plugin_hints_paste_into_a_shell(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "fk: 1\nrequires: ['fk-example-nothing>=0.1', 'fk-plugin-gmpi>=9']\n"
        "inputs: {photos: {type: images, path: .}}\nsteps: []\n"
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    lines = err.value.problems
    third_party = next(p for p in lines if "fk-example-nothing" in p)
    command = third_party[third_party.index("(pip install") + 1 : -1]
    assert shlex.split(command) == ["pip", "install", "fk-example-nothing>=0.1"]


# -- 6. parameters that cannot work here are caught before any item --------------------------------------
def test_device_model_and_path_params_that_cannot_work_fail_validation_with_exit_4(
    tmp_path, monkeypatch, fk_home
):
    import torch

    _first_party_modules()
    demo = ROOT / "recipes" / "demo.yaml"
    with pytest.raises(RecipeError) as err:
        load_recipe(demo, ["fit.model=bfm09"])
    assert err.value.exit_code == ExitCode.MISSING
    assert "model='bfm09': face model 'bfm09' needs" in str(err.value) and "BFM_model_front.mat" in str(
        err.value
    )
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="device='cuda'.*sees no CUDA GPU") as err:
            load_recipe(demo, ["device=cuda"])
        assert err.value.exit_code == ExitCode.MISSING and len(err.value.problems) == 1
    with pytest.raises(RecipeError, match=r"ffhq_labels='/nonexistent/dataset.json'.*does not exist") as err:
        load_recipe(ROOT / "recipes" / "lpff.yaml", ["ffhq_labels=/nonexistent/dataset.json"])
    assert err.value.exit_code == ExitCode.MISSING


# -- 14/15. conflicts and broken CLI hooks -------------------------------------------------------------
def _plugin(name: str, comp: str, cli_fails: bool = False):
    class P:
        __name__ = name

        @hookimpl
        def fk_detect(self):
            yield Component(
                "detect",
                comp,
                "x",
                lambda **k: None,
                inputs=(Port("image", "image"),),
                outputs=(Port("faces", "faces"),),
            )

        if cli_fails:

            @hookimpl
            def fk_cli(self, app):
                raise RuntimeError("cli exploded")

    return P()


def test_a_conflict_is_shown_by_plugins_list_and_doctor_which_still_run(capsys):
    with isolated_plugin_manager(_plugin("pa", "same"), _plugin("pb", "same"), _plugin("pc", "fine")):
        rc, rows = _json_run(capsys, "plugins", "list")
        assert rc == 0
        assert {r["name"]: r.get("conflicts") for r in rows}["pa"] == {"detect:same": ["test"]}
        rc, report = _json_run(capsys, "doctor")
        assert rc == 0 and report["conflicts"] == [{"component": "detect:same", "distributions": ["test"]}]
        rc, comps = _json_run(capsys, "components", "list")
        assert rc == 0 and "detect:fine" in {c["ref"] for c in comps}


def test_a_plugin_whose_cli_hook_fails_is_listed_once(capsys):
    with isolated_plugin_manager(_plugin("clumsy", "clumsy", cli_fails=True)):
        rc, rows = _json_run(capsys, "plugins", "list")
    mine = [r for r in rows if r["name"] == "clumsy"]
    assert rc == 0 and len(mine) == 1
    assert mine[0]["status"] == "broken" and "fk_cli: RuntimeError: cli exploded" in mine[0]["error"]
    assert mine[0]["provides"] == {"detect": ["clumsy"]}


# -- 16. hostile YAML ---------------------------------------------------------------------------------------
def _validate(tmp_path: Path, text: str) -> RecipeError:
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    return err.value


def test_a_billion_laughs_recipe_is_refused(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    err = _validate(tmp_path, "fk: 1\nparams:\n" + "\n".join("  " + ln for ln in lines) + "\n")
    assert "more than 100000 values once YAML aliases are expanded" in str(err)


def test_deep_nesting_and_huge_recipes_are_refused(tmp_path):
    err = _validate(tmp_path, "fk: 1\nparams: {x: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert "nested more than 64 levels deep" in str(err)
    err = _validate(tmp_path, "fk: 1\n# " + "x" * (2 << 20) + "\n")
    assert "too large for a recipe" in str(err)


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch pwned']",
        "!!python/name:os.system",
        "!custom 3",
        "!!binary aGVsbG8=",
    ],
)
def test_unknown_yaml_tags_are_refused_with_their_place(tmp_path, tag):
    err = _validate(tmp_path, f"fk: 1\nname: x\nparams:\n  device: {tag}\n")
    assert f"{tmp_path / 'hostile.yaml'}:4:11: YAML tag" in str(err) and "is not allowed" in str(err)
    assert not (tmp_path / "pwned").exists()


# -- 12. checkpoints -----------------------------------------------------------------------------------------
def test_a_checkpoint_holding_code_is_refused_in_one_line_naming_the_file(tmp_path):
    import os

    import torch
    from fk.errors import InputError
    from fk.io.weights import load_torch_weights

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "model.pth"
    torch.save({"state": Evil()}, path)
    with pytest.raises(InputError) as err:
        load_torch_weights(path, "test checkpoint", "use the released file")
    text = f"{err.value}\n{err.value.hint}"
    assert str(err.value).startswith(f"{path}: this test checkpoint holds Python objects or code")
    assert "\n" not in str(err.value) and "weights_only" not in text and not marker.exists()
    path.write_bytes(torch.save.__doc__.encode()[:100])
    with pytest.raises(InputError, match="model.pth: this test checkpoint is truncated or not a torch file"):
        load_torch_weights(path, "test checkpoint", "use the released file")


# -- 9. a full disk while writing run records -------------------------------------------------------------
def test_a_full_disk_is_one_line_naming_the_path(toy_pm, toy_recipe, tmp_path, capsys, monkeypatch):
    from fk import atomic

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    rc = main(["run", str(toy_recipe), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert rc == ExitCode.STEP_FAILED
    assert f"cannot write {tmp_path / 'run'}" in err and "No space left on device" in err
    assert "internal error" not in err and "disk is full" in err
