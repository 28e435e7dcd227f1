"""Where items run. The engine only needs ``map_unordered``; a distributed engine
(Ray, Dask, Slurm arrays...) plugs in by implementing the same two methods.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Run ``fn`` on every task; yield results as they finish (any order)."""

    def shutdown(self) -> None:
        """Stop: cancel what has not started, wait for nothing else."""


class SerialExecutor:
    """In-process, one item after another (``--workers 1``, the default)."""

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        for task in tasks:
            yield fn(task)

    def shutdown(self) -> None:
        pass


def _init_worker(threads: int) -> None:
    # Each worker gets its share of the cores instead of oversubscribing them.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


class ProcessExecutor:
    """``--workers N``: N spawned processes (spawn, not fork: torch and fork don't mix).

    At most ``2 * N`` tasks are in flight, so a large dataset is never queued whole.
    """

    def __init__(self, workers: int):
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(threads,))

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        pending: set[Future[Any]] = set()
        it = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    pending.add(self.pool.submit(fn, next(it)))
                except StopIteration:
                    exhausted = True
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_executor(workers: int) -> Executor:
    return SerialExecutor() if workers <= 1 else ProcessExecutor(workers)
