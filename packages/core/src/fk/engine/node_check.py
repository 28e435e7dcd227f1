"""Is this node (a cluster worker) able to run the plan? Checked once per worker process before its
first item, so a node without a plugin or a model file fails with one line naming the node and
the missing thing, instead of failing every item with an ImportError."""

from __future__ import annotations

from typing import Any

from fk.errors import MissingError

_ready: set[tuple[str, ...]] = set()


def node_problem(plan: Any) -> str | None:
    """The first thing this node lacks for ``plan``'s item steps, or None."""
    from fk.assets import asset_path
    from fk.plugins import get_plugin_manager

    assets = None
    for step in plan.item_steps:
        comp = step.component
        try:
            comp.load_factory()
        except ImportError as exc:
            dist = comp.distribution or "the plugin providing it"
            return (
                f"{comp.ref} cannot load: {dist} is not installed here "
                f"({type(exc).__name__}: {exc}); install the same fk packages on every node"
            )
        for name in comp.requires_assets:
            if assets is None:
                assets = {a.name: a for a in get_plugin_manager().assets()}
            asset = assets.get(name)
            if asset is None:
                return f"{comp.ref} needs the asset {name!r}, which no plugin installed here declares"
            path = asset_path(asset.path)
            if not path.exists():
                return (
                    f"{comp.ref} needs {path}, which is missing here: copy the same FK_HOME assets "
                    "to every node, or point FK_HOME at a shared folder"
                )
    return None


def ensure_node_ready(plan: Any) -> None:
    from fk.engine.executors.base import node_name

    digest = (plan.digest(), *(str(s.component.factory) for s in plan.item_steps))
    if digest in _ready:
        return
    problem = node_problem(plan)
    if problem:
        raise MissingError(f"node {node_name()}: {problem}")
    _ready.add(digest)
