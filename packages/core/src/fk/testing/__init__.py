"""Test kit for fk and for third-party plugins (shipped with fk-core).

- ``isolated_plugin_manager(*plugins)``: a plugin manager with fk's built-ins and
  only the plugins you pass (no entry points), installed as the process-wide one
  for the duration of a ``with`` block (datasette's register/unregister recipe).
- Contracts to subclass: ``fk.testing.detector_contract.DetectorContract``,
  ``fk.testing.renderer_contract.RendererContract``,
  ``fk.testing.exporter_contract.ExporterContract``.
- pytest fixtures (``fk.testing.pytest_plugin``, auto-loaded): ``fk_pm``,
  ``astronaut_path``, ``fk_home``.
- For tests that drive real ``fk`` processes: ``wait_for(predicate, what)``, ``output_digests(out)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fk.plugins import FkPluginManager, get_plugin_manager, set_plugin_manager


@contextlib.contextmanager
def isolated_plugin_manager(*plugins: Any, entrypoints: bool = False) -> Iterator[FkPluginManager]:
    """Yield a fresh manager holding fk's built-ins plus ``plugins`` (modules or objects).

    Each plugin is registered under its ``__name__`` (or class name), distribution
    ``test``. With ``entrypoints=True`` the installed plugins are loaded too.
    """
    from fk import __version__, builtin
    from fk.plugins import _manager as previous

    pm = FkPluginManager()
    pm.register_plugin(builtin, "core", "fk-core", __version__, builtin=True)
    for plugin in plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        pm.register_plugin(plugin, name, "test", "0")
    if entrypoints:
        pm.load_entrypoints()
    set_plugin_manager(pm)
    try:
        yield pm
    finally:
        set_plugin_manager(previous)


def astronaut_path() -> Path:
    """scikit-image's astronaut.png (a real, public-domain face photo), without importing skimage."""
    from fk.recipe import resolve_builtin

    path = resolve_builtin("builtin:astronaut")
    if path is None or not path.exists():
        import pytest

        pytest.skip("scikit-image is not installed (pip install scikit-image) for astronaut.png")
    return path


def current_plugin_manager() -> FkPluginManager:
    return get_plugin_manager()


def wait_for(predicate: Any, what: str, limit: float = 60.0) -> None:
    """Poll ``predicate`` until true (not a timing assertion: the limit only stops a hung test)."""
    import time

    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def output_digests(out: Path) -> dict[str, str]:
    """sha256 of every file a run wrote in ``out``, its bookkeeping with timings (manifest, item records,
    lock) aside: two runs that computed the same thing give the same dict."""
    import hashlib

    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".fk" not in p.relative_to(out).parts and p.name != "manifest.json"
    }
