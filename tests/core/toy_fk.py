"""``fk`` in a real process with the core tests' toy plugin: ``python toy_fk.py run RECIPE ...``.

Process-level tests (signals, kill -9, locks, exit codes) run this instead of the
installed ``fk`` so they need no plugin but the toy one.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ToyPlugin  # noqa: E402
from fk.cli.main import main  # noqa: E402
from fk.testing import isolated_plugin_manager  # noqa: E402

if __name__ == "__main__":
    from fk.serve import try_served  # as the `fk` script does: a warm toy server (toy_serve.py) may take it

    served = try_served(sys.argv[1:])
    if served is not None:
        sys.exit(served)
    with isolated_plugin_manager(ToyPlugin()):
        sys.exit(main(sys.argv[1:]))
