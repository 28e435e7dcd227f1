"""Where a run's items execute: ``fk run --executor {serial,process,dask,ray}`` or a plugin's own.

Executors are a registered component kind (the ``fk_executors`` hook yields
:class:`fk.components.ExecutorBackend` descriptors), so a Slurm-array or Kubernetes executor
ships in its own distribution. The contract is in :mod:`fk.engine.executors.base`; dask and
Ray are optional extras, imported only when chosen.
"""

from __future__ import annotations

from typing import Any

from fk.components import ExecutorBackend, import_string
from fk.engine.executors.base import Executor, ExecutorSettings, TaskFailed, WorkerCall
from fk.engine.executors.local import ProcessExecutor, SerialExecutor
from fk.errors import MissingError, UsageError

__all__ = [
    "Executor",
    "ExecutorSettings",
    "TaskFailed",
    "WorkerCall",
    "SerialExecutor",
    "ProcessExecutor",
    "executor_backends",
    "describe_executors",
    "make_executor",
]


def executor_backends() -> dict[str, ExecutorBackend]:
    from fk.plugins import get_plugin_manager

    return {e.name: e for e in get_plugin_manager().executors()}


def describe_executors() -> list[dict[str, Any]]:
    """Every registered executor, whether it can run here and why (``fk doctor``)."""
    rows = []
    for e in executor_backends().values():
        try:
            ok, reason = e.probe()
        except Exception as exc:  # noqa: BLE001 - a broken probe reads as unavailable
            ok, reason = False, f"probe failed: {type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": e.name,
                "available": ok,
                "reason": reason,
                "summary": e.summary,
                "plugin": e.plugin,
                "install": e.install,
            }
        )
    return rows


def default_executor(settings: ExecutorSettings) -> str:
    return "process" if settings.workers > 1 else "serial"


def make_executor(name: str | int | None = None, settings: ExecutorSettings | None = None) -> Executor:
    """The executor ``name`` (``None``: serial, or process with several workers) built with ``settings``.

    A registered executor whose extra is missing raises :class:`MissingError` (exit 4) with the install line.
    """
    if isinstance(name, int):  # make_executor(workers): the engine's earlier signature
        settings, name = ExecutorSettings(workers=name), None
    settings = settings or ExecutorSettings()
    name = name or default_executor(settings)
    backends = executor_backends()
    if name not in backends:
        raise UsageError(
            f"unknown executor '{name}'", hint=f"choose one of: {', '.join(backends)}  (fk doctor)"
        )
    backend = backends[name]
    ok, reason = backend.probe()
    if not ok:
        raise MissingError(f"executor '{name}' is not available: {reason}", hint=backend.install or None)
    return import_string(backend.factory)(settings)
