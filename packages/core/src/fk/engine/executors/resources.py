"""Cores and GPUs per worker: every executor caps each worker's thread pools to its share of
the cores and gives it one GPU of its own when the machine has several.

Thread pools are capped at every layer fk's code reaches: OpenMP (torch's intra-op pool,
OpenCV, scikit-image), the BLAS libraries, numba's parallel loops (the CPU rasteriser) and
torch's own setting. The environment variables only bind a library loaded after they are set,
so workers apply them first thing, before any task imports torch or numba.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


# Set in each pool worker to its share of the cores: code that sizes its own threads or helper processes
# (a second thread, a child process, ``workers=-1``) reads it through :func:`thread_share`.
SHARE_ENV = "FK_WORKER_THREADS"


def cores() -> int:
    """Cores this process may use (the affinity mask, so a container or taskset limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def thread_share() -> int:
    """Threads this process should keep busy: its pool worker's share of the cores when it runs in one
    (every executor's workers get ``FK_WORKER_THREADS``), else its cores. Two pool workers on two cores
    each get 1: a step that would add a thread or a helper process for the idle core has none there."""
    try:
        return max(1, int(os.environ[SHARE_ENV]))
    except (KeyError, ValueError):
        return cores()


def local_workers(requested: int, available: int | None = None) -> int:
    """``--workers N`` on this machine, never more processes than cores."""
    return max(1, min(requested, available or cores()))


def threads_per_worker(workers: int, available: int | None = None) -> int:
    return max(1, (available or cores()) // max(1, workers))


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """GPU ids this process may use, without importing torch: ``CUDA_VISIBLE_DEVICES`` if set,
    else the NVIDIA driver's list of devices."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def gpu_for_worker(index: int, gpus: list[str] | tuple[str, ...]) -> str | None:
    """Worker ``index`` gets one GPU of its own (round robin) when there are several; with one
    GPU or none, workers keep the environment as it is."""
    return gpus[index % len(gpus)] if len(gpus) > 1 else None


@dataclass(frozen=True)
class WorkerCaps:
    """What one worker may use: ``threads`` per pool, and the GPUs handed out by worker index."""

    threads: int
    gpus: tuple[str, ...] = ()

    def env(self, index: int = 0) -> dict[str, str]:
        env = {name: str(self.threads) for name in THREAD_ENV}
        env[SHARE_ENV] = str(self.threads)
        gpu = gpu_for_worker(index, self.gpus)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def apply(self, index: int = 0) -> None:
        """Set the caps in this (worker) process; libraries already loaded are capped directly."""
        os.environ.update(self.env(index))
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(self.threads)
        numba = sys.modules.get("numba")
        if numba is not None:
            # numba's pool was sized at its first parallel call; it can only shrink below that size
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        if "numpy" in sys.modules or "scipy" in sys.modules:
            # a BLAS loaded before the variables were set keeps its own count: cap it directly
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads, user_api="blas")


_applied: WorkerCaps | None = None


def apply_once(caps: WorkerCaps | None, index: int = 0) -> None:
    """Apply ``caps`` the first time a task runs in this process (a worker serves many tasks)."""
    global _applied
    if caps is not None and _applied != caps:
        caps.apply(index)
        _applied = caps
