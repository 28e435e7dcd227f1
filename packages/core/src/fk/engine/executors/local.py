"""Executors on this machine: ``serial`` (in-process) and ``process`` (a process pool)."""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fk.engine.executors.base import (
    ExecutorSettings,
    TaskFailed,
    WorkerCall,
    describe_failure,
    exception_type,
    is_fatal,
    node_name,
)
from fk.engine.executors.resources import (
    THREAD_ENV,
    WorkerCaps,
    local_workers,
    threads_per_worker,
    visible_gpus,
)


class SerialExecutor:
    """In-process, one item after another (``--workers 1``, the default)."""

    def __init__(self, settings: ExecutorSettings | None = None):
        self.retries = (settings or ExecutorSettings()).retries

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        call = WorkerCall(fn)  # tags a failure with this node's name, as on the other executors
        for task in tasks:
            for attempt in range(self.retries + 1):
                try:
                    result = call(task)
                except Exception as exc:  # noqa: BLE001 - retried, then reported as TaskFailed
                    if is_fatal(exc):
                        raise
                    if attempt == self.retries:
                        yield TaskFailed(task, describe_failure(exc), exception_type(exc), attempt + 1)
                    continue
                yield result
                break

    def shutdown(self) -> None:
        pass


_worker_index = 0


def _init_worker(caps: WorkerCaps, counter: Any, environ: dict[str, str] | None = None) -> None:
    # Runs in each worker (forked or spawned) before any task: caps first, so what loads later is capped.
    # Ctrl-C reaches the whole process group; the parent alone handles it (it stops submitting and
    # lets the items in flight finish and record themselves), so a worker idle in its queue does not
    # print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if environ is not None:
        # A worker forked from the fork server starts with the server's environment (the parent's when
        # the server started); a spawned one had the parent's when the pool was made: keep that.
        os.environ.clear()
        os.environ.update(environ)
    # The same fast exit as `fk`'s own process (fk.cli.main.entry): a worker's final garbage collection
    # would walk torch's, numba's and scipy's module graphs (0.8-1 CPU-s per worker), and the parent
    # waits for every worker to exit before it writes the manifest.
    atexit.register(gc.freeze)
    global _worker_index
    with counter.get_lock():
        _worker_index = counter.value
        counter.value += 1
    caps.apply(_worker_index)


def _call_in_worker(call: WorkerCall, task: Any) -> Any:
    return call(task, _worker_index)


_forkserver_lock = threading.Lock()


def forks_served_workers() -> bool:
    """In a run forked from fk's warm server (:mod:`fk.serve`) that has no other thread yet, workers fork
    from the run itself: they start with everything the server imported and loaded (torch, numba's
    kernels, the recipe's models), not from a fork server that imports it all again (~3 CPU-s)."""
    from fk.serve import SERVED_ENV

    return bool(os.environ.get(SERVED_ENV)) and threading.active_count() == 1


def pool_context(caps: WorkerCaps, preload: tuple[str, ...] = ()) -> multiprocessing.context.BaseContext:
    """How the pool starts its workers: forked from a fork server on Linux, else spawned.

    A spawned worker is a fresh interpreter that imports torch, scipy, numba and dlib itself: 1.5-2 CPU-s
    per worker on the 2-core machine, paid again by every worker. The fork server is started once per
    process, single-threaded, with the workers' thread caps in its environment; it imports ``preload``
    (the plan's step factories) and nothing else, then forks each worker from that state, so the imports
    are paid once and their pages shared. Forking the parent itself is not safe (its threads: rich's
    refresher, dlib's loader, thread pools in a library caller's process); forking a fork server that
    only imported is. macOS keeps spawn (system frameworks are not fork-safe there) and so does a
    platform without fork. A fork server already running (an earlier pool in this process) is reused
    as it is; the worker initializer applies each pool's caps either way.
    """
    if not sys.platform.startswith("linux") or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    if forks_served_workers():
        return multiprocessing.get_context("fork")
    from multiprocessing import forkserver

    from fk.engine.executors.preload import PRELOAD_ENV

    ctx = multiprocessing.get_context("forkserver")
    env = {name: str(caps.threads) for name in THREAD_ENV}
    env[PRELOAD_ENV] = ",".join(preload)
    with _forkserver_lock:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # the fork server inherits this process's environment when it starts
        try:
            ctx.set_forkserver_preload(["fk.engine.executors.preload"])
            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return ctx


class ProcessExecutor:
    """``--workers N``: N worker processes (see :func:`pool_context` for how they start), never more
    than the cores, each with its share of the cores' threads and its own GPU when there are several.

    At most ``2 * N`` tasks are in flight, so a large dataset is never queued whole.
    """

    def __init__(self, settings: ExecutorSettings | int):
        settings = ExecutorSettings(workers=settings) if isinstance(settings, int) else settings
        self.workers = local_workers(settings.workers)
        self.retries = settings.retries
        self.caps = WorkerCaps(threads_per_worker(self.workers), tuple(visible_gpus()))
        self.preload = settings.preload
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = pool_context(self.caps, self.preload)
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.caps, ctx.Value("i", 0), dict(os.environ)),
        )
        if ctx.get_start_method() == "fork":
            # a fork pool starts all its workers at its first task: start them now, while this process
            # has one thread (the progress bar's starts later), so no lock is copied mid-use
            pool.submit(os.getpid).result()
        return pool

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        call = WorkerCall(fn, None)  # the pool's initializer applied the caps already
        pending: dict[Future[Any], tuple[Any, int, ProcessPoolExecutor]] = {}

        def submit(task: Any, attempt: int) -> None:
            pending[self.pool.submit(_call_in_worker, call, task)] = (task, attempt, self.pool)

        it = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    submit(next(it), 0)
                except StopIteration:
                    exhausted = True
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task, attempt, pool = pending.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield fut.result()
                    continue
                if is_fatal(exc):
                    raise exc
                if isinstance(exc, BrokenProcessPool):
                    if pool is not self.pool:  # lost with a pool already replaced: not its fault
                        submit(task, attempt)
                        continue
                    # a worker died (killed, out of memory): the pool is unusable, start a new one
                    self.pool.shutdown(wait=False, cancel_futures=True)
                    self.pool = self._new_pool()
                    exc = RuntimeError("its worker process died (killed, or out of memory?)")
                    exc.fk_node = node_name()  # type: ignore[attr-defined]
                if attempt < self.retries:
                    submit(task, attempt + 1)
                else:
                    yield TaskFailed(task, describe_failure(exc), exception_type(exc), attempt + 1)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
