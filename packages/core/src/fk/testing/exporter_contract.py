"""The contract every exporter (``stage="export"``) keeps; subclass it in your tests.

    from fk.testing.exporter_contract import ExporterContract

    class TestMyExporter(ExporterContract):
        component = "export:my-format"
        params = {"formats": ["obj"]}            # optional ``with:`` values

        def make_inputs(self, tmp_path):          # a generated input for every input port
            return {"recon": make_recon()}

It runs the exporter once per test through its registered factory with a real
:class:`fk.engine.context.ItemContext`, and checks that every file it writes exists
and is non-empty, that no temporary or ``.part`` file is left behind, that every
file reloads with the reader its suffix calls for, that every declared output port
gets a value, and that file paths it returns point at files it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fk.engine.context import ItemContext

# Suffix -> a function that raises when the file does not reload.
def _reload_image(p: Path) -> None:
    from PIL import Image

    with Image.open(p) as im:
        im.load()


def _reload_json(p: Path) -> None:
    json.loads(p.read_text(encoding="utf-8"))


def _reload_npy(p: Path) -> None:
    import numpy as np

    np.load(p, allow_pickle=True)


def _reload_npz(p: Path) -> None:
    import numpy as np

    with np.load(p, allow_pickle=False) as z:
        list(z.items())


def _reload_mat(p: Path) -> None:
    from scipy.io import loadmat

    loadmat(p)


def _reload_mesh(p: Path) -> None:
    from fk.io import mesh

    m = mesh.load_mesh(p)
    if len(m.vertices) == 0:
        raise ValueError(f"{p}: mesh has no vertices")


def _reload_html(p: Path) -> None:
    from html.parser import HTMLParser

    text = p.read_text(encoding="utf-8")
    if "<html" not in text.lower():
        raise ValueError(f"{p}: no <html> element")
    HTMLParser().feed(text)


def _reload_text(p: Path) -> None:
    p.read_text(encoding="utf-8")


RELOADERS: dict[str, Any] = {
    ".png": _reload_image, ".jpg": _reload_image, ".jpeg": _reload_image,
    ".json": _reload_json, ".npy": _reload_npy, ".npz": _reload_npz, ".mat": _reload_mat,
    ".obj": _reload_mesh, ".ply": _reload_mesh, ".glb": _reload_mesh,
    ".html": _reload_html, ".txt": _reload_text, ".mtl": _reload_text,
}


def _returned_paths(value: Any) -> list[str]:
    """Strings that look like relative file paths inside an output value (dicts and lists walked)."""
    if isinstance(value, str):
        return [value] if Path(value).suffix else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _returned_paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _returned_paths(v)]
    return []


class ExporterContract:
    """Subclass with ``component`` (a ref) and ``make_inputs(tmp_path)``; optionally ``params``."""

    component: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    key: ClassVar[str] = "sample_00"

    def make_inputs(self, tmp_path: Path) -> dict[str, Any]:  # pragma: no cover - subclasses override
        raise NotImplementedError

    @pytest.fixture
    def exported(self, tmp_path: Path):
        from fk.plugins import get_plugin_manager

        comp = get_plugin_manager().component(self.component)
        if comp.stage != "export":
            raise AssertionError(f"{self.component} is a {comp.stage} component, not an exporter")
        params = {**comp.defaults(), **self.params}
        runner = comp.load_factory()(**params)
        run_dir = tmp_path / "run"
        ctx = ItemContext(key=self.key, source=None, step_id="export", run_dir=run_dir,
                          step_dir=run_dir / "export")
        inputs = self.make_inputs(tmp_path)
        result = runner(inputs, ctx)
        return comp, ctx, dict(result or {}), run_dir

    def test_declared_outputs_are_returned(self, exported):
        comp, _, result, _ = exported
        missing = [p.name for p in comp.outputs if p.name not in result]
        assert not missing, f"{comp.ref} returned no value for {missing}"

    def test_files_written_exist_and_are_not_empty(self, exported):
        _, ctx, _, run_dir = exported
        assert ctx.written, "the exporter wrote no file through ctx"
        for rec in ctx.written:
            p = run_dir / rec["path"]
            assert p.is_file(), f"{rec['path']} is recorded but missing"
            assert p.stat().st_size > 0, f"{rec['path']} is empty"

    def test_no_partial_files_left(self, exported):
        _, _, _, run_dir = exported
        leftovers = [p for p in run_dir.rglob("*") if p.is_file()
                     and (p.suffix == ".part" or p.name.startswith(".") or p.name.endswith(".tmp"))]
        assert not leftovers, f"temporary files left behind: {leftovers}"

    def test_files_reload(self, exported):
        _, ctx, _, run_dir = exported
        for rec in ctx.written:
            p = run_dir / rec["path"]
            reload = RELOADERS.get(p.suffix.lower())
            if reload is not None:
                reload(p)

    def test_returned_paths_point_at_written_files(self, exported):
        _, ctx, result, run_dir = exported
        written = {Path(rec["path"]).as_posix() for rec in ctx.written}
        for value in result.values():
            for rel in _returned_paths(value):
                assert Path(rel).as_posix() in written or (run_dir / rel).is_file(), \
                    f"returned path {rel} was not written"
