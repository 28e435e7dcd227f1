"""fk's warm server (:mod:`fk.serve`) with the core tests' toy plugin: ``python -P toy_serve.py RECIPE``.

``toy_fk.py`` is its client, as the ``fk`` script is the real server's.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ToyPlugin  # noqa: E402
from fk.serve import main  # noqa: E402
from fk.testing import isolated_plugin_manager  # noqa: E402

if __name__ == "__main__":
    with isolated_plugin_manager(ToyPlugin()):
        main(sys.argv[1:])
