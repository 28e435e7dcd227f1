"""The hooks a plugin may implement. Every one is optional.

A plugin is a module named by an entry point in the ``fk`` group::

    [project.entry-points.fk]
    mydetector = "my_package.fk_plugin"

and implements hooks with ``@fk.hookimpl``. The seven stage hooks *yield*
:class:`fk.components.Component` descriptors (conda's style): recipes then pick
exactly one component by ``stage:name``, so results never depend on the order in
which plugins were installed or registered. Keep the plugin module import-light:
no torch, dlib or model code at import time (put it behind the factory string).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fk.components import Asset, Component, ExecutorBackend, RendererBackend

hookspec = pluggy.HookspecMarker("fk")
hookimpl = pluggy.HookimplMarker("fk")


# --- the seven stages -------------------------------------------------------

@hookspec
def fk_detect() -> Iterable[Component]:
    """Yield face detectors (``stage="detect"``): image -> faces with boxes and 68 landmarks."""


@hookspec
def fk_crop() -> Iterable[Component]:
    """Yield croppers (``stage="crop"``): image + landmarks -> aligned crop + transform back."""


@hookspec
def fk_reconstruct() -> Iterable[Component]:
    """Yield feed-forward reconstructors (``stage="reconstruct"``), e.g. Deep3D's R-Net."""


@hookspec
def fk_fit() -> Iterable[Component]:
    """Yield optimisation-based fitters (``stage="fit"``), e.g. analysis-by-synthesis."""


@hookspec
def fk_render() -> Iterable[Component]:
    """Yield render steps (``stage="render"``): meshes/cameras -> images, overlays."""


@hookspec
def fk_evaluate() -> Iterable[Component]:
    """Yield evaluators and filters (``stage="evaluate"``): metrics, density filters."""


@hookspec
def fk_export() -> Iterable[Component]:
    """Yield exporters (``stage="export"``): OBJ/PLY/GLB, .mat, camera labels, zips, pages."""


# --- shared resources -------------------------------------------------------

@hookspec
def fk_assets() -> Iterable[Asset]:
    """Yield the model files this plugin needs and fk cannot download (``fk doctor`` lists them)."""


@hookspec
def fk_renderer_backends() -> Iterable[RendererBackend]:
    """Yield rasterisation backends with nvdiffrast's API (core yields ``cpu`` and ``nvdiffrast``)."""


@hookspec
def fk_executors() -> Iterable[ExecutorBackend]:
    """Yield executors for ``fk run --executor`` (core yields ``serial``, ``process``, ``dask`` and ``ray``)."""


@hookspec
def fk_cli(app: Any) -> None:
    """Add sub-commands to the ``fk`` typer app, e.g. ``app.add_typer(sub, name="deep3d")``.

    Import heavy modules inside the command functions, not here.
    """


# --- run lifecycle (1:N, for cross-cutting tools: timing, tracing, caches) --

@hookspec
def fk_before_step(step_id: str, component: Component, item_key: str) -> None:
    """Called before a step processes one item (or the whole run, for run-scope steps)."""


@hookspec
def fk_after_step(step_id: str, component: Component, item_key: str, seconds: float) -> None:
    """Called after a step processed one item successfully."""


@hookspec
def fk_on_step_error(step_id: str, component: Component, item_key: str, error: BaseException) -> None:
    """Called when a step raised for one item (the engine records the failure and goes on)."""


STAGE_HOOKS: dict[str, str] = {
    "detect": "fk_detect",
    "crop": "fk_crop",
    "reconstruct": "fk_reconstruct",
    "fit": "fk_fit",
    "render": "fk_render",
    "evaluate": "fk_evaluate",
    "export": "fk_export",
}
