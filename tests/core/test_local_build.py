"""fk_local_build: every first-party plugin carries the same build backend, and a regular build
requires fk's own packages by path (never by an index name anyone could register)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2] / "packages"


def _backend(folder: Path):
    name = f"fk_local_build_{folder.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, folder / "fk_local_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_plugin_uses_the_same_backend_copy():
    plugins = sorted(p for p in PACKAGES.glob("plugin-*") if (p / "pyproject.toml").exists())
    texts = {p.name: (p / "fk_local_build.py").read_text() for p in plugins}
    assert len(set(texts.values())) == 1, "fk_local_build.py copies differ: copy plugin-align's to the others"
    for p in plugins:
        assert 'build-backend = "fk_local_build"' in (p / "pyproject.toml").read_text(), p.name


def test_fk_requirements_become_paths_and_others_stay():
    backend = _backend(PACKAGES / "plugin-datasets")
    metadata = ("Name: fk-plugin-datasets\nRequires-Dist: fk-core<0.2,>=0.1\nRequires-Dist: matplotlib>=3.7\n"
                'Requires-Dist: fk-plugin-align<0.2,>=0.1; extra == "pipeline"\n'
                "Requires-Dist: fk-plugin-nonexistent>=1\n")
    out = backend._by_path(metadata).splitlines()
    assert out[1] == f"Requires-Dist: fk-core @ {(PACKAGES / 'core').as_uri()}"
    assert out[2] == "Requires-Dist: matplotlib>=3.7"
    align = (PACKAGES / "plugin-align").as_uri()
    assert out[3] == f'Requires-Dist: fk-plugin-align @ {align} ; extra == "pipeline"'
    assert out[4] == "Requires-Dist: fk-plugin-nonexistent>=1"  # no such folder: left as it is
    from packaging.requirements import Requirement

    assert Requirement(out[3].removeprefix("Requires-Dist: ")).url == (PACKAGES / "plugin-align").as_uri()
