"""Typed descriptors that plugins yield from the registration hooks.

A plugin never hands fk a live object at registration time: it yields a
:class:`Component` whose ``factory`` is an import string, so listing components
(``fk components list``, recipe validation, ``fk run --dry-run``) imports no
torch, dlib or model code. The factory is imported only when a step runs.

Runtime protocol of a component::

    runner = factory(**params)                # once per process and step
    outputs = runner(inputs, ctx)             # once per item (or once per run)
    runner.close()                            # optional

``inputs`` maps the component's input port names to values, ``ctx`` is a
:class:`fk.engine.context.ItemContext` (atomic writers, item key, options), and
the returned mapping gives a value to every declared output port.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAGES: tuple[str, ...] = ("detect", "crop", "reconstruct", "fit", "render", "evaluate", "export")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PARAM_TYPES = ("str", "int", "float", "bool", "path", "list", "dict", "any")


@dataclass(frozen=True)
class Param:
    """One parameter a component accepts in a recipe's ``with:`` block."""

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    required: bool = False
    # What the value names, so a recipe is checked against this machine before any item runs:
    # "device" (a torch device: cuda must be usable), "face-model" (its model files must be present).
    # A "path" parameter with a value must name an existing file or folder.
    role: str = ""

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"Param {self.name!r}: type must be one of {PARAM_TYPES}, got {self.type!r}")

    def check(self, value: Any) -> str | None:
        """Return a problem description if ``value`` does not fit, else None."""
        ok = {
            "str": lambda v: isinstance(v, str),
            "path": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "list": lambda v: isinstance(v, list),
            "dict": lambda v: isinstance(v, dict),
            "any": lambda v: True,
        }[self.type]
        if value is None and not self.required:
            return None
        if not ok(value):
            return f"expects {self.type}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        return None


@dataclass(frozen=True)
class Port:
    """A named input or output of a component. ``kind`` is an artifact type name
    (``image``, ``face``, ``faces``, ``crop``, ``coeffs``, ``mesh``, ``camera``,
    ``label``, ``path``...); wiring is checked by name, and by kind when both
    sides declare one other than ``any``."""

    name: str
    kind: str = "any"
    help: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Component:
    """A named implementation of one stage, selectable in recipes as ``stage:name``.

    ``scope="item"`` components run once per item (photo, or face after a fan-out);
    ``scope="run"`` components run once after all items, and each of their inputs
    wired from an item step arrives as ``{item_key: value}`` of JSON-able values.
    ``fan_out`` names an output port whose value is a list: every element becomes
    a child item ``{key}_{NN}`` (LPFF's one-sample-per-face naming) for the steps after it.
    """

    stage: str
    name: str
    summary: str
    factory: str | Callable[..., Any]
    params: tuple[Param, ...] = ()
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    scope: str = "item"
    fan_out: str | None = None
    requires_assets: tuple[str, ...] = ()
    # Import string (or callable) of ``check(params) -> list[str]``, run once when a recipe is loaded,
    # before any item: it raises ``FkError`` for a parameter that cannot work here (a missing model file,
    # device, path), and returns notices for what will work less well (an optional fallback that is off).
    preflight: str | Callable[..., Any] | None = None
    devices: tuple[str, ...] = ("cpu",)
    aliases: tuple[str, ...] = ()
    # Filled in by the registry: which distribution provided it.
    plugin: str = field(default="", compare=False)
    distribution: str = field(default="", compare=False)
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"component {self.name!r}: stage must be one of {STAGES}, got {self.stage!r}")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"component name {self.name!r} must be lower-case letters, digits, '.', '_' or '-'")
        if self.scope not in ("item", "run"):
            raise ValueError(f"component {self.ref}: scope must be 'item' or 'run'")
        if self.fan_out is not None and self.fan_out not in {p.name for p in self.outputs}:
            raise ValueError(f"component {self.ref}: fan_out {self.fan_out!r} is not one of its outputs")

    @property
    def ref(self) -> str:
        return f"{self.stage}:{self.name}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def load_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        return import_string(self.factory)

    def load_preflight(self) -> Callable[..., Any] | None:
        if self.preflight is None or callable(self.preflight):
            return self.preflight
        return import_string(self.preflight)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "stage": self.stage,
            "name": self.name,
            "summary": self.summary,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "scope": self.scope,
            "fan_out": self.fan_out,
            "params": [
                {"name": p.name, "type": p.type, "default": p.default, "help": p.help,
                 "choices": list(p.choices) if p.choices else None, "required": p.required, "role": p.role}
                for p in self.params
            ],
            "inputs": [{"name": p.name, "kind": p.kind, "optional": p.optional, "help": p.help} for p in self.inputs],
            "outputs": [{"name": p.name, "kind": p.kind, "help": p.help} for p in self.outputs],
            "requires_assets": list(self.requires_assets),
            "devices": list(self.devices),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Asset:
    """A model file fk cannot download (gated or licensed), declared by the plugin that needs it.

    ``path`` is relative to the asset root (``$FK_HOME/assets``, default ``~/.fk/assets``);
    ``instructions`` say where to get it; ``convert`` names the fk command that builds it
    from other assets, if any.
    """

    name: str
    path: str
    summary: str
    instructions: str
    convert: str = ""
    sha256: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class RendererBackend:
    """A rasterisation backend with nvdiffrast's API (``fk.render`` dispatches to it).

    ``probe()`` returns ``(available, reason)`` without side effects; ``module`` is an
    import string of a module exposing ``rasterize``, ``interpolate``, ``texture``,
    ``antialias`` and a context class; ``priority`` decides ``auto`` (higher wins
    among available backends).
    """

    name: str
    module: str
    probe: Callable[[], tuple[bool, str]]
    priority: int = 0
    summary: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class ExecutorBackend:
    """Where a run's items execute (``fk run --executor NAME``): serial, process, dask, ray, or a
    third party's (a Slurm array...).

    ``factory`` is an import string of a class called with one
    :class:`fk.engine.executors.ExecutorSettings`; the instance implements
    ``map_unordered(fn, tasks)`` and ``shutdown()`` (see ``fk.engine.executors``).
    ``probe()`` returns ``(available, reason)`` without importing the engine it drives;
    ``install`` is the command that makes it available.
    """

    name: str
    factory: str
    probe: Callable[[], tuple[bool, str]]
    summary: str = ""
    install: str = ""
    plugin: str = field(default="", compare=False)


def import_string(spec: str) -> Any:
    """Import ``"package.module:attr"`` (or ``"package.module"``)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def outputs_of(component: Component, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a runner's result against the declared outputs (clear error for plugin authors)."""
    result = dict(result or {})
    missing = [p.name for p in component.outputs if p.name not in result]
    if missing:
        raise TypeError(f"{component.ref} returned no value for output(s) {', '.join(missing)}")
    return result
