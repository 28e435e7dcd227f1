"""``--executor ray``: items as Ray core tasks, on an existing cluster (``--address ray://head:10001``
or ``auto``) or a local Ray of ``--workers`` CPUs with no dashboard, no usage statistics and its
node IP set to 127.0.0.1, so nothing leaves the machine. Needs ``pip install 'fk-core[ray]'``;
imported only when chosen.

Ray retries a task that raised or whose worker died (``max_retries`` + ``retry_exceptions``);
results come back through a ``ray.wait`` loop, two tasks per CPU in flight at most. Each task
asks for one CPU (its thread pools get one thread, or the cores' share per ``--workers`` on a
local Ray) and, when the cluster has more than one GPU, one GPU: Ray sets
``CUDA_VISIBLE_DEVICES`` per task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

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

INSTALL = "pip install 'fk-core[ray]'  (the same Ray version on every node)"


def _import_ray(local: bool) -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        # Ray resolves "127.0.0.1" to the machine's outward address unless this is off; with it off
        # the node, its raylet and its workers all bind to the loopback interface.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise MissingError("the ray executor needs Ray, which is not installed", hint=INSTALL) from None
    return ray


def _run_on_ray_worker(call: WorkerCall, task: Any) -> Any:
    # one CPU per task: Ray runs as many at once on a node as it has CPUs, so one thread each
    # (a local Ray passes the cores' share per worker instead)
    if call.caps is None:
        call.caps = WorkerCaps(1)
    return call(task, 0)


def _unwrap(exc: BaseException) -> BaseException:
    """Ray wraps a task's exception in RayTaskError; the original (with its node tag) is its cause."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RayExecutor:
    def __init__(self, settings: ExecutorSettings):
        ray = _import_ray(local=not settings.address)
        self.ray = ray
        self.retries = settings.retries
        self.started = False
        self.caps: WorkerCaps | None = None
        if not ray.is_initialized():
            if settings.address:
                try:
                    ray.init(address=settings.address, log_to_driver=False, configure_logging=False)
                except (ConnectionError, RuntimeError) as exc:
                    raise UsageError(
                        f"cannot connect to the Ray cluster at {settings.address} ({exc})",
                        hint="Start it with `ray start --head` (and `ray start --address HEAD` on "
                        "each node), or leave out --address for Ray on this machine.",
                    ) from None
            else:
                workers = local_workers(settings.workers)
                self.caps = WorkerCaps(threads_per_worker(workers))
                gpus = visible_gpus()
                ray.init(
                    num_cpus=workers,
                    num_gpus=len(gpus),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    configure_logging=False,
                )
            self.started = True
        self.refs: dict[Any, Any] = {}

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        ray = self.ray
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gpus = int(ray.cluster_resources().get("GPU", 0))
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": self.retries, "retry_exceptions": True}
        if gpus > 1:  # several GPUs: one each, Ray sets CUDA_VISIBLE_DEVICES per task
            options["num_gpus"] = 1
            cpus = min(cpus, gpus)
        remote = ray.remote(_run_on_ray_worker).options(**options)
        call_ref = ray.put(WorkerCall(fn, self.caps))
        it = iter(tasks)

        def submit_next() -> bool:
            try:
                task = next(it)
            except StopIteration:
                return False
            self.refs[remote.remote(call_ref, task)] = task
            return True

        while len(self.refs) < 2 * cpus and submit_next():
            pass
        try:
            while self.refs:
                done, _ = ray.wait(list(self.refs), num_returns=1)
                for ref in done:
                    task = self.refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as wrapped:  # noqa: BLE001 - reported per task
                        exc = _unwrap(wrapped)
                        if is_fatal(exc):
                            raise exc from None
                        yield TaskFailed(task, describe_failure(exc), exception_type(exc), self.retries + 1)
                    else:
                        yield result
                    submit_next()
        finally:  # stopped early (Ctrl-C, a node missing a plugin): nothing stays in flight
            self._cancel_in_flight()

    def _cancel_in_flight(self) -> None:
        # Not force=True: killing the worker of a task whose reply is already on its way trips a RAY_CHECK
        # in Ray's driver (task_manager.cc, CompletePendingTask; seen with Ray 2.60 in CI), which ends the
        # whole driver process with exit 1 and no message. A polite cancel interrupts a running task
        # (KeyboardInterrupt in the worker) and drops a queued one.
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        self.refs.clear()

    def shutdown(self) -> None:
        self._cancel_in_flight()
        if self.started:
            self.ray.shutdown()
