"""Imported once by the process pool's fork server (``fk.engine.executors.local``), before it forks
any worker: the modules named in ``FK_FORKSERVER_PRELOAD`` (comma-separated; the plan's step
factories), so every worker starts with them imported instead of importing torch, scipy, numba
and dlib again on its own (1.5-2 CPU-s per worker on the 2-core machine).

Only imports happen here, never a model load or a parallel kernel call: the fork server must stay a
single thread (its thread caps are set before the import, so OpenBLAS starts no pool either), since
a fork copies no other thread. A module that fails to import is skipped: the worker imports it again
and the step reports the error with its item.
"""

from __future__ import annotations

import importlib
import os

PRELOAD_ENV = "FK_FORKSERVER_PRELOAD"

for _name in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001, S112 - reported by the worker that needs it, with its item
        continue
