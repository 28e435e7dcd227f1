"""fk: one installable toolkit for 3D face work.

Importing ``fk`` is cheap on purpose: the CLI starts without torch. The heavy
modules (``fk.render``, ``fk.models``, ``fk.cameras``) import torch themselves.
"""

__version__ = "0.1.0"
# Bumped when a hook spec changes incompatibly; plugins may check it.
__hookspec_version__ = 1

import os as _os

# numba's compiled kernels (the CPU rasteriser's, cache=True) are kept under $FK_HOME/cache/numba,
# so every process after the first loads them instead of compiling (seconds), whether or not the
# installed sources are writable. Set before numba loads (fk imports it lazily); numba falls back
# to beside the sources when this folder cannot be created. An explicit NUMBA_CACHE_DIR wins.
_os.environ.setdefault("NUMBA_CACHE_DIR", _os.path.join(
    _os.path.expanduser(_os.environ.get("FK_HOME") or _os.path.join("~", ".fk")), "cache", "numba"))

# Two GNU OpenMP runtimes share a process: torch's bundled libgomp (its intra-op pool) and the system's
# (numba's parallel kernels: the CPU renderer). By default each runtime's idle threads spin after every
# parallel region, so a torch op then a numba kernel leave four busy threads on two cores: on the busy
# 2-core machine antialias at 224² took 134 ms instead of 13 ms that way (bench/bench_render.py,
# docs/performance.md). Passive: idle threads sleep at once. Read when each runtime loads (torch and numba
# load after this in `fk`'s own processes and its pool's workers); an explicit OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fk.errors import FkError, ShapeError  # noqa: E402  (light module, no torch)

__all__ = ["FkError", "ShapeError", "__version__", "__hookspec_version__"]
