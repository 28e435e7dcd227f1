"""One place that prints: human tables (rich) or exactly one JSON document on stdout.

Logs, progress and errors go to stderr, so ``fk ... --json | jq`` always works.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class Output:
    printed_json = False  # one JSON document per process: errors after it print none

    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json_mode = json_mode
        self.quiet = quiet
        self._out = None
        self._err = None

    @property
    def out(self) -> Any:
        if self._out is None:
            from rich.console import Console

            self._out = Console(soft_wrap=True, highlight=False)
        return self._out

    @property
    def err(self) -> Any:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, soft_wrap=True, highlight=False)
        return self._err

    def json(self, obj: Any) -> None:
        from fk.atomic import to_jsonable

        sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
        sys.stdout.flush()
        Output.printed_json = True

    def text(self, message: str) -> None:
        if not self.quiet and not self.json_mode:
            self.out.print(message)

    def note(self, message: str) -> None:
        """Informational line on stderr (kept out of stdout so --json stays clean)."""
        if not self.quiet:
            self.err.print(message)

    def table(self, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
        from rich.table import Table

        table = Table(title=title, show_lines=False, title_justify="left")
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r))
        self.out.print(table)


def print_error(message: str, hint: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    err.print(f"[bold red]Error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]Hint:[/] {escape(hint)}")
