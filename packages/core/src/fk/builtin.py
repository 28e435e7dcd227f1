"""fk-core's own plugin: registered through the same hooks as every other plugin.

It provides the two renderer backends behind ``fk.render``, the face-model
assets of ``fk.models`` and the shared networks' weights (``fk.nets``), the executors of ``fk run --executor`` and ``export:copy``
(the smallest real component, for measuring the engine). Nothing heavy is imported here.
"""

from __future__ import annotations

from fk.hookspecs import hookimpl


@hookimpl
def fk_renderer_backends():
    from fk.render.backends import BACKENDS

    yield from BACKENDS


@hookimpl
def fk_assets():
    from fk.models.assets import ASSETS
    from fk.nets import ASSETS as NET_ASSETS

    yield from ASSETS
    yield from NET_ASSETS


@hookimpl
def fk_executors():
    from fk.engine.executors.backends import EXECUTORS

    yield from EXECUTORS


@hookimpl
def fk_export():
    from fk.components import Component, Port

    yield Component("export", "copy", "copy each item's input file into the step folder, unchanged",
                    "fk.engine.copy_component:CopyInput", inputs=(Port("file", "path"),),
                    outputs=(Port("copy", "path"),))
