"""Per-process costs the engine and CLI pay once: numba's kernel cache location and a fast, complete exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(extra)
    return env


def test_numba_cache_defaults_to_fk_home_and_an_explicit_setting_wins(tmp_path):
    code = "import fk, os; print(os.environ['NUMBA_CACHE_DIR'])"
    got = _python(code, _env(FK_HOME=str(tmp_path)))
    assert got.returncode == 0, got.stderr
    assert Path(got.stdout.strip()) == tmp_path / "cache" / "numba"
    got = _python(code, _env(FK_HOME=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "mine")))
    assert Path(got.stdout.strip()) == tmp_path / "mine"


def test_openmp_threads_sleep_when_idle_unless_the_user_says_otherwise():
    """Two OpenMP runtimes (torch's, numba's) spinning in one process starve each other on few cores:
    `import fk` asks both to let idle threads sleep, before either loads; an explicit policy wins."""
    code = ("import fk, os, torch, numba\n"
            "print(os.environ['OMP_WAIT_POLICY'], 'torch' in __import__('sys').modules)")
    env = {k: v for k, v in _env().items() if k != "OMP_WAIT_POLICY"}
    got = _python(code, env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["PASSIVE", "True"]
    got = _python(code, {**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert got.stdout.split() == ["ACTIVE", "True"]


@pytest.mark.slow
def test_the_rasteriser_kernels_are_compiled_once_into_fk_home(tmp_path):
    """A fresh FK_HOME gets the compiled kernels (.nbi/.nbc); a second process loads them."""
    code = (
        "import torch, fk.render as dr\n"
        "pos = torch.tensor([[[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]]])\n"
        "tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)\n"
        "rast, _ = dr.rasterize(dr.get_context('cpu'), pos, tri, (8, 8))\n"
        "print(int((rast[..., 3] > 0).sum()))\n"
    )
    env = _env(FK_HOME=str(tmp_path))
    first = _python(code, env)
    assert first.returncode == 0, first.stderr
    assert int(first.stdout) > 0
    cached = sorted(p.name for p in (tmp_path / "cache" / "numba").rglob("*.nbi"))
    assert any("zbuffer" in name for name in cached), cached
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "numba").rglob("*.nbc")}
    second = _python(code, env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # loaded, not compiled and written again


def test_fk_exit_still_runs_every_exit_handler_and_flushes(tmp_path):
    """The exit skips the final garbage collection's walk, not the exit handlers or buffered output."""
    marker = tmp_path / "atexit.txt"
    code = (
        "import atexit, sys\n"
        "from fk.cli.main import entry\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "sys.argv = ['fk', 'version']\n"
        "entry()\n"
    )
    got = _python(code, _env())
    assert got.returncode == 0, got.stderr
    assert "buffered, no newline" in got.stdout
    assert "fk" in got.stdout.lower()
    assert marker.read_text() == "ran"


def test_planning_a_run_imports_no_heavy_library():
    """Recipes are planned from every plugin's registrations: those stay import-light, so `fk run` starts
    loading the first step's models (dlib's, in the background) while the fit's torch is still importing."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
    heavy = ("torch", "numba", "scipy", "dlib", "trimesh", "cv2")
    code = (
        "import sys\n"
        "from fk.recipe import load_recipe\n"
        f"load_recipe({str(recipe)!r}, [])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    got = _python(code, _env())
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "[]"
