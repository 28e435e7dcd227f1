"""fk-plugin-eyeball's registrations (import-light: no torch or model code here).

CLI: ``fk eyeball inspect | synth | render-eye-masks | uv-landmarks | auto-eye-masks | landmarks-2d | landmarks-3d |
fit-spheres | export-eyeballs | demo`` (CoRA's Step-1 tools and the eyeball export, cora.md §10-12).
"""

from __future__ import annotations

from fk.components import Asset
from fk.hookspecs import hookimpl

BISENET_ASSET = "eyeball/79999_iter.pth"


@hookimpl
def fk_assets():
    yield Asset(
        name=BISENET_ASSET,
        path=BISENET_ASSET,
        summary="face-parsing.PyTorch BiSeNet (CelebAMask-HQ, 19 classes) for CoRA's AutoEyeMask (optional)",
        instructions="Download 79999_iter.pth from the links in github.com/zllrunning/face-parsing.PyTorch and copy "
        "it here. Without it `fk eyeball auto-eye-masks` uses the 68 dlib landmarks' eye contours.",
    )


@hookimpl
def fk_cli(app):
    from fk_eyeball.cli import app as eyeball_app

    app.add_typer(eyeball_app, name="eyeball")
