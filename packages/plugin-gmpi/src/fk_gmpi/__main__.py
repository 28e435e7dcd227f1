"""``python -m fk_gmpi``: the ``fk gmpi`` commands without the ``fk`` launcher.

The module entry for launchers that start Python modules, e.g. GMPI's 8-GPU training::

    torchrun --nproc_per_node=8 -m fk_gmpi train --dataset FFHQ256 --data-root runtime_dataset \
        --out experiments/ffhq256 --device cuda
"""

from __future__ import annotations

from fk_gmpi.cli import app

if __name__ == "__main__":
    app(prog_name="python -m fk_gmpi")
