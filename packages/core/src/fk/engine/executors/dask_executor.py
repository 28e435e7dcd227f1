"""``--executor dask``: items as ``dask.distributed`` tasks, on an existing cluster
(``--address tcp://scheduler:8786``) or a ``LocalCluster`` of ``--workers`` processes bound to
127.0.0.1 (no dashboard). Needs ``pip install 'fk-core[dask]'``; imported only when chosen.

Results are collected with ``as_completed`` as they finish; dask itself retries a task that
raised (``retries=``) and reschedules one whose worker died. At most two tasks per worker
thread are in flight, so a 100k-item run is never submitted whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from fk.engine.executors.base import (
    ExecutorSettings,
    TaskFailed,
    WorkerCall,
    describe_failure,
    exception_type,
    is_fatal,
)
from fk.engine.executors.resources import WorkerCaps, local_workers, threads_per_worker, visible_gpus
from fk.errors import MissingError, UsageError

INSTALL = "pip install 'fk-core[dask]'  (dask and distributed; the same on every node)"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingError(
            "the dask executor needs dask.distributed, which is not installed", hint=INSTALL
        ) from None
    return distributed


def _run_on_dask_worker(call: WorkerCall, task: Any, host_slots: dict[str, int]) -> Any:
    """Worker side: caps from this host's share of the cores, GPU by the worker's name."""
    import os

    from distributed import get_worker

    worker = get_worker()
    host = urlparse(worker.address).hostname or ""
    slots = host_slots.get(host, worker.state.nthreads)
    if call.caps is None:
        call.caps = WorkerCaps(threads_per_worker(slots, os.cpu_count()), tuple(visible_gpus()))
    index = worker.name if isinstance(worker.name, int) else 0
    return call(task, index)


class DaskExecutor:
    def __init__(self, settings: ExecutorSettings):
        distributed = _import_distributed()
        self.retries = settings.retries
        self.cluster = None
        if settings.address:
            try:
                self.client = distributed.Client(settings.address, timeout="20s")
            except OSError as exc:
                raise UsageError(
                    f"cannot reach the dask scheduler at {settings.address} ({exc})",
                    hint="Start it with `dask scheduler` (and `dask worker ADDRESS` on each node), "
                    "or leave out --address for a cluster on this machine.",
                ) from None
        else:
            workers = local_workers(settings.workers)
            # threads capped from process start; each worker picks its own GPU on its first task
            caps = WorkerCaps(threads_per_worker(workers))
            self.cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
                env=caps.env(),
            )
            self.client = distributed.Client(self.cluster)
        self.futures: set[Any] = set()

    def _host_slots(self) -> dict[str, int]:
        """Worker threads per host: each task's thread pools get cores / slots on its host."""
        slots: dict[str, int] = {}
        for addr, info in self.client.scheduler_info(n_workers=-1).get("workers", {}).items():
            host = urlparse(addr).hostname or ""
            slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
        return slots

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        from distributed import as_completed

        host_slots = self._host_slots()
        call = WorkerCall(fn, None)
        in_flight = 2 * max(1, sum(host_slots.values()))
        it = iter(tasks)
        pending: dict[str, Any] = {}
        completed = as_completed()

        def submit_next() -> bool:
            try:
                task = next(it)
            except StopIteration:
                return False
            fut = self.client.submit(
                _run_on_dask_worker, call, task, host_slots, retries=self.retries, pure=False
            )
            pending[fut.key] = task
            self.futures.add(fut)
            completed.add(fut)
            return True

        while len(pending) < in_flight and submit_next():
            pass
        try:
            for fut in completed:
                task = pending.pop(fut.key)
                self.futures.discard(fut)
                if fut.status == "finished":
                    result = fut.result()
                    fut.release()
                    yield result
                else:
                    exc = fut.exception()
                    fut.release()
                    if is_fatal(exc):
                        raise exc
                    yield TaskFailed(task, describe_failure(exc), exception_type(exc), self.retries + 1)
                submit_next()
        finally:  # stopped early (Ctrl-C, a node missing a plugin): nothing stays in flight
            if self.futures:
                self.client.cancel(list(self.futures))
                self.futures.clear()

    def shutdown(self) -> None:
        try:
            if self.futures:
                self.client.cancel(list(self.futures))
                self.futures.clear()
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
