"""pytest fixtures every fk plugin's tests can use (registered via the pytest11 entry point)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Tests never run in a developer's warm server (``fk serve``): every ``fk`` they start runs itself.
    A test of the server itself removes this from its processes' environment."""
    import os

    from fk.serve import NO_SERVER_ENV

    os.environ.setdefault(NO_SERVER_ENV, "1")


@pytest.fixture
def fk_pm() -> Iterator[object]:
    """An isolated plugin manager with fk's built-ins only; register test plugins on it."""
    from fk.testing import isolated_plugin_manager

    with isolated_plugin_manager() as pm:
        yield pm


@pytest.fixture
def astronaut_path() -> Path:
    from fk.testing import astronaut_path as _path

    return _path()


@pytest.fixture
def fk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty FK_HOME, so tests never see the developer's real model files."""
    home = tmp_path / "fk_home"
    home.mkdir()
    monkeypatch.setenv("FK_HOME", str(home))
    return home
