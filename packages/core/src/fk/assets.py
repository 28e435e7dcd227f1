"""Where model files live, and which are present.

fk never downloads weights. Gated or licensed files (BFM09, Deep3D checkpoints,
HiFi3D++, StyleGAN2 pickles...) are declared by the plugins that need them
(``fk_assets`` hook) with the exact place they must go, under the asset root::

    $FK_HOME/assets/<asset path>      (FK_HOME defaults to ~/.fk)

``fk doctor`` and ``fk models list`` show what is missing and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fk.errors import AssetMissingError


def fk_home() -> Path:
    return Path(os.environ.get("FK_HOME") or Path.home() / ".fk").expanduser()


def asset_root() -> Path:
    return fk_home() / "assets"


def asset_path(relpath: str) -> Path:
    return asset_root() / relpath


def asset_status(pm: Any = None) -> list[dict[str, Any]]:
    from fk.plugins import get_plugin_manager

    pm = pm or get_plugin_manager()
    out = []
    for a in pm.assets():
        p = asset_path(a.path)
        out.append({"name": a.name, "path": str(p), "present": p.exists(), "summary": a.summary,
                    "instructions": a.instructions, "convert": a.convert, "plugin": a.plugin})
    return out


def require_asset(name: str, pm: Any = None) -> Path:
    """The path of a declared asset, or an error that says what to put where."""
    for st in asset_status(pm):
        if st["name"] == name:
            if st["present"]:
                return Path(st["path"])
            how = f" Or build it: {st['convert']}" if st["convert"] else ""
            raise AssetMissingError(f"missing model file {st['path']} ({st['summary']})",
                                    hint=f"{st['instructions']}{how}")
    raise AssetMissingError(f"no installed plugin declares the asset {name!r}", hint="fk doctor")
