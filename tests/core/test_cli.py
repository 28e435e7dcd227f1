"""The fk command line as users run it: a subprocess, exit codes, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FK = [sys.executable, "-m", "fk.cli.main"]


def fk(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*FK, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300)


def test_help_starts_without_importing_torch():
    code = ("import sys; from fk.cli import main as m; rc = m.main(['--help']); "
            "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules)); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "fk run" in res.stdout and "TORCH=False" in res.stderr


def test_version_and_plugins_json():
    res = fk("plugins", "list", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    core = next(r for r in rows if r["name"] == "core")
    assert core["distribution"] == "fk-core" and core["status"] == "ok"
    assert fk("version").stdout.startswith("fk ")


def test_zero_plugins_still_works():
    res = fk("plugins", "list", "--json", env={"FK_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert res.returncode == 0, res.stderr
    assert [r["name"] for r in json.loads(res.stdout)] == ["core"]
    res = fk("components", "list", "--json", env={"FK_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert res.returncode == 0 and [c["ref"] for c in json.loads(res.stdout)] == ["export:copy"]  # core's own


def test_components_list_rejects_an_unknown_kind_with_usage_code():
    res = fk("components", "list", "--kind", "detekt")
    assert res.returncode == 2
    assert "not a stage" in res.stderr and "detect" in res.stderr


def test_invalid_recipe_exit_code_and_one_line_per_problem(tmp_path):
    missing = fk("recipe", "validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 3 and "no such recipe file" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("fk: 1\nsteps:\n  - {id: d, use: 'detect:nothing-like-this', in: {image: inputs.x}}\n")
    res = fk("run", str(bad))
    assert res.returncode == 3
    assert f"{bad}:3:" in res.stderr and "Traceback" not in res.stderr


def test_malformed_yaml_is_one_line(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("fk: 1\nsteps: [\n")
    res = fk("recipe", "validate", str(bad))
    assert res.returncode == 3 and "malformed YAML" in res.stderr and "Traceback" not in res.stderr


def test_doctor_json_reports_renderer_choice_and_assets():
    res = fk("doctor", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["renderer"]["auto"] == "cpu"  # no CUDA on this machine
    nv = next(b for b in report["renderer"]["backends"] if b["name"] == "nvdiffrast")
    assert not nv["available"] and nv["reason"]
    assert report["torch"]["version"].startswith("2.")
    assert all({"name", "path", "present", "instructions"} <= set(a) for a in report["assets"])


def test_shared_network_weights_are_listed_without_the_plugins_that_use_them():
    """LPIPS serves FFHQ-UV's stage 2 and CoRA's mesh stage: core declares it, so the eyeball plugin finds it
    with uvfit absent."""
    res = fk("doctor", "--json", env={"FK_DISABLE_PLUGINS": "uvfit,eyeball"})
    assert res.returncode == 0, res.stderr
    lpips = {a["name"]: a for a in json.loads(res.stdout)["assets"] if a["name"].startswith("lpips-")}
    assert set(lpips) == {"lpips-vgg16", "lpips-vgg-lin"}
    assert lpips["lpips-vgg16"]["path"].endswith("lpips/vgg16-397923af.pth")


@pytest.mark.parametrize("args", [["run"], ["recipe", "validate"]])
def test_missing_arguments_are_usage_errors(args):
    assert fk(*args).returncode == 2


def test_unusable_renderer_backend_is_a_missing_exit_code(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("fk: 1\nparams: {renderer: nvdiffrast}\ninputs:\n  photos: {type: images, path: builtin:astronaut}\n"
                      "steps: []\n")
    res = fk("recipe", "validate", str(recipe))
    assert res.returncode == 3  # an empty step list is a recipe mistake, reported with the rest
    recipe.write_text(recipe.read_text().replace("steps: []", "steps:\n  - {id: x, use: 'detect:not-installed-anywhere', in: {}}"))
    res = fk("recipe", "validate", str(recipe), "--set", "x.enabled=false")
    assert "renderer 'nvdiffrast' is not usable here" in res.stderr


def test_component_of_an_uninstalled_first_party_plugin_exits_missing(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("fk: 1\ninputs:\n  photos: {type: images, path: builtin:astronaut}\n"
                      "steps:\n  - {id: d, use: 'detect:dlib', in: {image: inputs.photos}}\n")
    res = fk("recipe", "validate", str(recipe), env={"FK_DISABLE_PLUGINS": "align"})
    assert res.returncode == 4, res.stderr
    assert "fk-plugin-align" in res.stderr and "pip install" in res.stderr


def test_plugins_list_and_readme_agree_on_what_is_not_implemented_yet():
    """Each plugin's one-line description is listed; a seed the README marks as partly built has a
    plugin whose description says what is not implemented yet, and a complete one does not."""
    import re

    rows = {r["name"]: r for r in json.loads(fk("plugins", "list", "--json").stdout)}
    assert all(r["summary"] for r in rows.values() if r["status"] == "ok")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = {m.group(1).strip(): m.group(2).strip()
             for m in re.finditer(r"^\| ([^|]+) \| [^|]+ \| ([^|]+) \|$", readme, flags=re.M)}
    seeds = {"LPFF data processing": "datasets", "GMPI": "gmpi", "FFHQ-UV RGB fitting": "uvfit", "CoRA": "eyeball"}
    for seed, plugin in seeds.items():
        missing = table[seed] not in ("—", "-")
        assert ("not implemented yet" in rows[plugin]["summary"]) == missing, (seed, rows[plugin]["summary"])
