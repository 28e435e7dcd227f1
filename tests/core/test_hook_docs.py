"""Every hook spec is documented in docs/plugins.md with its exact argument list (datasette's idea)."""

from __future__ import annotations

import inspect
from pathlib import Path

from fk import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_every_hook_is_documented_with_its_arguments():
    text = DOC.read_text()
    specs = [name for name, fn in vars(hookspecs).items()
             if name.startswith("fk_") and callable(fn) and hasattr(fn, "fk_spec")]
    assert len(specs) == 14
    for name in specs:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"### {name}({args})" in text, f"docs/plugins.md lacks a '### {name}({args})' section"


def test_stage_hooks_cover_the_seven_stages():
    from fk.components import STAGES

    assert set(hookspecs.STAGE_HOOKS) == set(STAGES)
    assert all(hasattr(hookspecs, h) for h in hookspecs.STAGE_HOOKS.values())
