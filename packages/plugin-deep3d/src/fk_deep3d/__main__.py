"""``python -m fk_deep3d``: the ``fk deep3d`` commands without the ``fk`` launcher.

It is the module entry for launchers that start Python modules, e.g. several processes of training::

    torchrun --nproc_per_node=N -m fk_deep3d train DATA --out DIR
"""

from __future__ import annotations

from fk_deep3d.cli import app

if __name__ == "__main__":
    app(prog_name="python -m fk_deep3d")
