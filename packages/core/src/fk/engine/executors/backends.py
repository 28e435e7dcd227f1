"""Core's executors, as registered through the ``fk_executors`` hook (probing imports nothing heavy)."""

from __future__ import annotations

import importlib.util

from fk.components import ExecutorBackend


def _always() -> tuple[bool, str]:
    return True, "built in"


def _probe(module: str, what: str, install: str):
    def probe() -> tuple[bool, str]:
        if importlib.util.find_spec(module) is None:
            return False, f"{what} is not installed: {install}"
        from importlib.metadata import PackageNotFoundError, version

        try:
            return True, f"{what} {version(module)}"
        except PackageNotFoundError:
            return True, f"{what} is importable"

    return probe


EXECUTORS = (
    ExecutorBackend(
        "serial",
        "fk.engine.executors.local:SerialExecutor",
        _always,
        summary="one item after another, in this process (--workers 1)",
    ),
    ExecutorBackend(
        "process",
        "fk.engine.executors.local:ProcessExecutor",
        _always,
        summary="--workers N spawned processes on this machine",
    ),
    ExecutorBackend(
        "dask",
        "fk.engine.executors.dask_executor:DaskExecutor",
        _probe("distributed", "dask.distributed", "pip install 'fk-core[dask]'"),
        summary="dask.distributed: a scheduler at --address, or a LocalCluster of --workers",
        install="pip install 'fk-core[dask]'",
    ),
    ExecutorBackend(
        "ray",
        "fk.engine.executors.ray_executor:RayExecutor",
        _probe("ray", "Ray", "pip install 'fk-core[ray]'"),
        summary="Ray core tasks: a cluster at --address, or a local Ray of --workers CPUs",
        install="pip install 'fk-core[ray]'",
    ),
)
