"""Registry, asset declarations, `fk models list` and `fk models convert-bfm`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scipy.io import loadmat
from typer.testing import CliRunner

import fk.models
from fk.cli.models import app
from fk.errors import AssetMissingError, UsageError
from fk.models.assets import ASSETS
from fk.models.synthetic import write_bfm09_sources, write_hifi3dpp_info


def test_package_import_does_not_import_torch():
    code = "import fk.models, fk.models.assets, fk.cli.models, sys; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_available_models_reports_missing_files_and_readiness(fk_home):
    models = {m["name"]: m for m in fk.models.available_models()}
    assert models["demo"]["ready"] and models["demo"]["missing"] == []
    assert not models["bfm09"]["ready"]
    root = fk_home / "assets"
    assert str(root / "bfm" / "BFM_model_front.mat") in models["bfm09"]["missing"]
    assert str(root / "bfm" / "01_MorphableModel.mat") in models["bfm09"]["missing"]
    assert all(d["instructions"] for d in models["bfm09"]["missing_details"])
    (root / "hifi3dpp").mkdir(parents=True)
    write_hifi3dpp_info(root / "hifi3dpp" / "hifi3dpp_model_info.mat")
    models = {m["name"]: m for m in fk.models.available_models()}
    assert models["hifi3dpp"]["ready"] and models["hifi3dpp"]["path"].endswith("hifi3dpp_model_info.mat")
    assert fk.models.load_face_model("hifi3dpp").name == "hifi3dpp"


def test_load_face_model_errors(fk_home):
    with pytest.raises(AssetMissingError, match=r"BFM_model_front\.mat") as info:
        fk.models.load_face_model("bfm09")
    assert "convert-bfm" in info.value.hint
    with pytest.raises(UsageError, match="unknown face model"):
        fk.models.load_face_model("flame")


def test_assets_live_under_bfm_and_hifi3dpp_with_instructions():
    paths = {a.path for a in ASSETS}
    assert {"bfm/01_MorphableModel.mat", "bfm/Exp_Pca.bin", "bfm/BFM_model_front.mat",
            "hifi3dpp/hifi3dpp_model_info.mat"} <= paths
    assert all(a.instructions for a in ASSETS)
    assert len({a.name for a in ASSETS}) == len(ASSETS)


def test_cli_list_json(fk_home):
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [m["name"] for m in doc["models"]] == ["demo", "bfm09", "hifi3dpp"]
    assert doc["asset_root"] == str(fk_home / "assets")


def test_cli_convert_bfm_then_load(fk_home, tmp_path):
    src = tmp_path / "src"
    write_bfm09_sources(src)
    out = fk_home / "assets" / "bfm" / "BFM_model_front.mat"
    result = CliRunner().invoke(app, ["convert-bfm", "--src", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "80 vertices" in result.stdout
    assert loadmat(str(out))["idBase"].shape == (240, 80)
    model = fk.models.load_face_model("bfm09")
    assert model.n_coeffs == 257 and model.n_vertices == 80
    assert {m["name"]: m["ready"] for m in fk.models.available_models()}["bfm09"]
    again = CliRunner().invoke(app, ["convert-bfm", "--src", str(src), "--out", str(out)])
    assert isinstance(again.exception, UsageError)  # refuses to overwrite without --overwrite
    assert CliRunner().invoke(app, ["convert-bfm", "--src", str(src), "--out", str(out), "--overwrite"]).exit_code == 0


def test_fk_main_convert_bfm_names_missing_file(fk_home, tmp_path, capsys):
    from fk.cli.main import main

    src = tmp_path / "src"
    write_bfm09_sources(src)
    (src / "Exp_Pca.bin").unlink()
    assert main(["models", "convert-bfm", "--src", str(src), "--out", str(tmp_path / "o.mat")]) != 0
    assert not (tmp_path / "o.mat").exists()
    assert "Exp_Pca.bin" in capsys.readouterr().err
