"""The executor contract, shared by every backend.

An executor runs ``fn(task)`` for every task, on whatever workers it has, and yields each
result as it finishes (any order). A task whose call raises is run again, up to ``retries``
more times (fk's own components record their failures in the result instead of raising,
so what reaches the executor is a :class:`fk.errors.TransientError`, a lost worker or an
I/O error). Once its retries are spent it yields :class:`TaskFailed` for it and goes on.
A :class:`fk.errors.MissingError` (a node lacks a plugin or a model file) is not retried
on the same worker: it is raised, and the run stops with that one line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from fk.engine.executors.resources import WorkerCaps, apply_once


@dataclass(frozen=True)
class ExecutorSettings:
    workers: int = 1  # processes on this machine (process, and dask/ray without --address)
    address: str | None = None  # an existing cluster: dask's scheduler, ray's head
    retries: int = 0  # extra attempts for a task that raised
    # modules every worker needs (the plan's step factories): the process pool imports them once, in
    # its fork server, and each worker starts from that copy (other executors may ignore it)
    preload: tuple[str, ...] = ()


@dataclass
class TaskFailed:
    """A task that still raised after its retries; the engine records it as a failed item."""

    task: Any
    error: str  # one line, naming the node
    type: str
    attempts: int


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Run ``fn`` on every task; yield results (or :class:`TaskFailed`) as they finish."""

    def shutdown(self) -> None:
        """Stop: cancel what has not started, release the workers this executor started."""


def node_name() -> str:
    return socket.gethostname()


def describe_failure(exc: BaseException) -> str:
    """One line for a task's exception, naming the node it ran on when the worker said."""
    from fk.engine.runner import one_line

    node = getattr(exc, "fk_node", None)
    text = one_line(exc)
    return f"node {node}: {text}" if node and not text.startswith("node ") else text


class WorkerCall:
    """``fn`` as it runs on a worker: caps the worker's threads (and picks its GPU) before the
    first task, and tags an escaping exception with the node's name (kept through pickling)."""

    def __init__(self, fn: Callable[[Any], Any], caps: WorkerCaps | None = None):
        self.fn = fn
        self.caps = caps

    def __call__(self, task: Any, worker_index: int = 0) -> Any:
        apply_once(self.caps, worker_index)
        try:
            return self.fn(task)
        except Exception as exc:
            exc.fk_node = node_name()  # type: ignore[attr-defined]
            raise


def is_fatal(exc: BaseException) -> bool:
    from fk.errors import MissingError

    return isinstance(exc, MissingError)


def exception_type(exc: BaseException) -> str:
    return type(exc).__name__
