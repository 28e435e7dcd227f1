"""fk-core's own plugin: registered through the same hooks as every other plugin.

It provides the two renderer backends behind ``fk.render`` and the face-model
assets of ``fk.models``. Nothing heavy is imported here.
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

    yield from ASSETS


@hookimpl
def fk_executors():
    from fk.engine.executors.backends import EXECUTORS

    yield from EXECUTORS
