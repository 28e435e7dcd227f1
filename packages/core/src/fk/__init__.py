"""fk: one installable toolkit for 3D face work.

Importing ``fk`` is cheap on purpose: the CLI starts without torch. The heavy
modules (``fk.render``, ``fk.models``, ``fk.cameras``) import torch themselves.
"""

__version__ = "0.1.0"
# Bumped when a hook spec changes incompatibly; plugins may check it.
__hookspec_version__ = 1

from fk.errors import FkError, ShapeError  # noqa: E402  (light module, no torch)

__all__ = ["FkError", "ShapeError", "__version__", "__hookspec_version__"]
