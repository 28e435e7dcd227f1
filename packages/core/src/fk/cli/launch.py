"""The ``fk`` script's entry point: a run a warm server can take goes there (:mod:`fk.serve`, standard library
only, so this costs no typer or rich import), everything else starts fk's CLI in this process."""

from __future__ import annotations

import sys


def entry() -> None:
    from fk.serve import try_served

    code = try_served(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from fk.cli.main import entry as in_process

    in_process()


if __name__ == "__main__":
    entry()
