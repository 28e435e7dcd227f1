"""Plugin discovery and the component registry.

Discovery follows conda: entry points in the ``fk`` group are loaded one by one,
and a plugin that fails to import is recorded in ``broken`` instead of crashing
the CLI. Built-in components register through the very same hooks as third-party
ones (``fk.builtin`` is just the first plugin). Environment switches:

``FK_DISABLE_PLUGINS=a,b``  block these plugin names
``FK_PLUGINS=a,b``          load only these entry-point plugins (allow list)
``FK_DISABLE_PLUGIN_AUTOLOAD=1``  load no entry points (built-ins only)
``FK_TRACE_PLUGINS=1``      print every hook call to stderr
"""

from __future__ import annotations

import difflib
import os
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import importlib_metadata
import pluggy

from fk import hookspecs
from fk.components import STAGES, Asset, Component, ExecutorBackend, RendererBackend
from fk.errors import MissingError, PluginError

ENTRY_POINT_GROUP = "fk"

# First-party plugins: lets a recipe that names e.g. ``reconstruct:deep3d`` say which
# distribution to install when that plugin is absent (nerfstudio's external methods).
# tests/core/test_first_party_table.py checks this table against every first-party
# plugin's real components (aliases included) and CLI groups, so it cannot go stale.
FIRST_PARTY: dict[str, tuple[str, ...]] = {
    "fk-plugin-align": ("detect:dlib", "detect:dlib-cnn", "detect:face-alignment", "detect:lpff",
                        "detect:mtcnn", "detect:five-points", "crop:ffhq", "crop:lpff-realign", "crop:deep3d",
                        "crop:eg3d"),
    "fk-plugin-deep3d": ("reconstruct:deep3d", "fit:deep3d", "export:deep3d", "export:demo-page"),
    "fk-plugin-datasets": ("crop:lpff-model-face", "crop:lpff-realigned", "evaluate:lpff-density",
                           "export:lpff-camera-parameters", "export:lpff-layout", "reconstruct:lpff-camera"),
    "fk-plugin-gmpi": ("export:gmpi-page", "export:gmpi-photo-mpi"),
    "fk-plugin-uvfit": ("crop:uvfit-preprocess", "export:uvfit", "export:uvfit-page", "fit:uvfit"),
    "fk-plugin-eyeball": (),
}
# `fk <group>` sub-commands that first-party plugins add (fk_cli): "not installed", not "No such command".
FIRST_PARTY_COMMANDS: dict[str, str] = {"deep3d": "fk-plugin-deep3d", "datasets": "fk-plugin-datasets",
                                         "gmpi": "fk-plugin-gmpi", "uvfit": "fk-plugin-uvfit",
                                         "eyeball": "fk-plugin-eyeball"}


def install_hint(dist: str) -> str:
    """How to install a first-party plugin: from the checkout (the fk packages are not on a package
    index, and a name there could belong to anyone). Pastes into a shell as is."""
    return f"pip install ./packages/{dist.removeprefix('fk-')}   (run in a checkout of the fk repository)"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r}) while loading"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str
    provides: dict[str, list[str]] = field(default_factory=dict)
    builtin: bool = False


@dataclass
class BrokenPlugin:
    name: str
    distribution: str
    version: str
    error: str


class FkPluginManager(pluggy.PluginManager):
    """pluggy's manager with conda-style forgiving loading and a typed registry."""

    def __init__(self) -> None:
        super().__init__("fk")
        self.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self.conflicts: dict[str, list[str]] = {}  # component ref -> the distributions that both provide it
        self._info: dict[str, PluginInfo] = {}
        if os.environ.get("FK_TRACE_PLUGINS"):
            self.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
            self.enable_tracing()

    # -- loading -------------------------------------------------------------
    def register_plugin(self, module: Any, name: str, distribution: str = "fk-core", version: str = "",
                        builtin: bool = False) -> None:
        try:
            self.register(module, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a hook signature error, a duplicate name, sys.exit...
            self._add_broken(BrokenPlugin(name, distribution, version, _error_text(exc)))
            return
        self._info[name] = PluginInfo(name, distribution, version, getattr(module, "__name__", str(module)),
                                      builtin=builtin)
        self.__dict__.pop("components", None)

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        if os.environ.get("FK_DISABLE_PLUGIN_AUTOLOAD"):
            return
        allow = _env_list("FK_PLUGINS")
        blocked = _env_list("FK_DISABLE_PLUGINS")
        seen: set[str] = set()
        for ep in sorted(importlib_metadata.entry_points(group=group), key=lambda e: e.name):
            if ep.name in seen or self.has_plugin(ep.name):
                continue
            seen.add(ep.name)
            if ep.name in blocked or (allow and ep.name not in allow):
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else ""
            try:
                module = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - isolate any plugin failure, sys.exit() included
                self._add_broken(BrokenPlugin(ep.name, dist, version, _error_text(exc)))
                continue
            self.register_plugin(module, ep.name, dist, version)

    # -- registry ------------------------------------------------------------
    def _collect(self, hook_name: str, plugin_name: str) -> list[Any]:
        """One plugin's answers to one hook; any failure (sys.exit() too) is raised as PluginError."""
        caller = self.subset_hook_caller(hook_name, remove_plugins=[
            p for n, p in self.list_name_plugin() if n != plugin_name])
        items: list[Any] = []
        try:
            for result in caller():
                if result is not None:
                    items.extend(list(result))
        except (KeyboardInterrupt, PluginError):
            raise
        except BaseException as exc:  # noqa: BLE001
            raise PluginError(f"{hook_name}: {_error_text(exc)}") from exc
        return items

    @cached_property
    def components(self) -> dict[str, Component]:
        """Every component by ``stage:name`` (aliases included), provider filled in.

        Two plugins offering the same name is a conflict that names both distributions:
        fk never lets install order decide. The name is left out (``conflicts`` lists it, and a
        step that uses it fails with both names); every other component stays usable.
        """
        found: dict[str, Component] = {}
        origin: dict[str, str] = {}
        conflicts: dict[str, set[str]] = defaultdict(set)
        for name, info in sorted(self._info.items()):
            per_stage: dict[str, list[str]] = {}
            for stage in STAGES:
                hook = hookspecs.STAGE_HOOKS[stage]
                try:
                    yielded = self._collect(hook, name)
                except PluginError as exc:
                    self._mark_broken(info, exc.__cause__ or exc)
                    break
                for comp in yielded:
                    if not isinstance(comp, Component) or comp.stage != stage:
                        self._mark_broken(info, PluginError(
                            f"{hook} yielded {comp!r}, not a Component with stage={stage!r}"))
                        continue
                    comp = replace(comp, plugin=name, distribution=info.distribution, version=info.version)
                    per_stage.setdefault(stage, []).append(comp.name)
                    for key in (comp.ref, *(f"{stage}:{a}" for a in comp.aliases)):
                        if key in found:
                            conflicts[key].update({origin[key], info.distribution})
                        found[key] = comp
                        origin[key] = info.distribution
            info.provides = {s: sorted(v) for s, v in per_stage.items()}
        self.conflicts = {k: sorted(v) for k, v in sorted(conflicts.items())}
        for key in self.conflicts:
            found.pop(key, None)
        return dict(sorted(found.items()))

    def conflict_error(self, ref: str) -> PluginError:
        both = " and ".join(self.conflicts[ref])
        return PluginError(f"'{ref}' is provided by {both}: fk will not pick one",
                           hint="Uninstall one of them, or block one with FK_DISABLE_PLUGINS=<plugin name>.")

    def add_cli_commands(self, app: Any) -> None:
        """Let each plugin add sub-commands; one that raises is reported as broken, not fatal."""
        for name in sorted(self._info):
            try:
                caller = self.subset_hook_caller("fk_cli", remove_plugins=[
                    p for n, p in self.list_name_plugin() if n != name])
                caller(app=app)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001
                self._mark_broken(self._info[name], exc, where="fk_cli")

    def _mark_broken(self, info: PluginInfo, exc: BaseException, where: str = "") -> None:
        text = _error_text(exc)
        self._add_broken(BrokenPlugin(info.name, info.distribution, info.version,
                                      f"{where}: {text}" if where else text))

    def _add_broken(self, entry: BrokenPlugin) -> None:
        """One entry per plugin and error, however often the failing hook is called."""
        if all((b.name, b.error) != (entry.name, entry.error) for b in self.broken):
            self.broken.append(entry)

    def plugins(self) -> list[PluginInfo]:
        self.components  # noqa: B018 - fills PluginInfo.provides
        return [self._info[n] for n in sorted(self._info)]

    def component(self, ref: str) -> Component:
        comps = self.components
        if ref in comps:
            return comps[ref]
        if ref in self.conflicts:
            raise self.conflict_error(ref)
        raise MissingError(*unknown_component_message(ref, comps))

    def assets(self) -> list[Asset]:
        out: dict[str, Asset] = {}
        for name in sorted(self._info):
            try:
                for a in self._collect("fk_assets", name):
                    out.setdefault(a.name, replace(a, plugin=name))
            except PluginError as exc:
                self._mark_broken(self._info[name], exc.__cause__ or exc, where="fk_assets")
        return [out[k] for k in sorted(out)]

    def renderer_backends(self) -> list[RendererBackend]:
        out: list[RendererBackend] = []
        for name in sorted(self._info):
            try:
                out.extend(replace(b, plugin=name) for b in self._collect("fk_renderer_backends", name))
            except PluginError as exc:
                self._mark_broken(self._info[name], exc.__cause__ or exc, where="fk_renderer_backends")
        return sorted(out, key=lambda b: (-b.priority, b.name))

    def executors(self) -> list[ExecutorBackend]:
        """Every executor by name; the first plugin (in name order, core first) to yield a name keeps it."""
        out: dict[str, ExecutorBackend] = {}
        for name in ["core", *sorted(n for n in self._info if n != "core")]:
            if name not in self._info:
                continue
            try:
                for e in self._collect("fk_executors", name):
                    out.setdefault(e.name, replace(e, plugin=name))
            except Exception as exc:  # noqa: BLE001
                self._mark_broken(self._info[name], exc)
        return list(out.values())


def unknown_component_message(ref: str, comps: dict[str, Component]) -> tuple[str, str]:
    stage, _, name = ref.partition(":")
    for dist, refs in FIRST_PARTY.items():
        if ref in refs:
            return (f"component '{ref}' is provided by {dist}, which is not installed (or failed to load: "
                    "fk plugins list)", install_hint(dist))
    if stage not in STAGES:
        return (f"'{ref}' is not a component reference: use <stage>:<name>, stage one of {', '.join(STAGES)}",
                "fk components list")
    same_stage = [k for k in comps if k.startswith(stage + ":")]
    close = difflib.get_close_matches(ref, same_stage or list(comps), n=3, cutoff=0.5)
    msg = f"unknown component '{ref}'"
    if close:
        msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    choices = ", ".join(same_stage) or "none installed"
    return msg, f"installed {stage} components: {choices}  (fk components list --kind {stage})"


def _env_list(name: str) -> set[str]:
    return {s.strip() for s in os.environ.get(name, "").split(",") if s.strip()}


_manager: FkPluginManager | None = None


def get_plugin_manager(refresh: bool = False) -> FkPluginManager:
    """The process-wide manager: built-ins first, then every ``fk`` entry point."""
    global _manager
    if _manager is None or refresh:
        from fk import builtin

        pm = FkPluginManager()
        pm.register_plugin(builtin, "core", "fk-core", _core_version(), builtin=True)
        pm.load_entrypoints()
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc
        _manager = pm
    return _manager


def set_plugin_manager(pm: FkPluginManager | None) -> None:
    """Swap the process-wide manager (tests use ``fk.testing.isolated_plugin_manager``)."""
    global _manager
    _manager = pm


def _core_version() -> str:
    from fk import __version__

    return __version__


def iter_components(stage: str | None = None) -> Iterable[Component]:
    seen: set[int] = set()
    for comp in get_plugin_manager().components.values():
        if id(comp) in seen or (stage and comp.stage != stage):
            continue
        seen.add(id(comp))
        yield comp
