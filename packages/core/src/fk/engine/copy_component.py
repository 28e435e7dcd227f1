"""``export:copy``: copy each item's input file into the step folder, unchanged.

The smallest real component: it reads, hashes and atomically writes one file per item, so a
recipe made of it measures the engine itself (``bench/bench_executors.py`` runs 100k items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CopyInput:
    def __call__(self, inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
        source = Path(inputs["file"])
        path = ctx.write_bytes(f"{ctx.key}{source.suffix}", source.read_bytes())
        return {"copy": str(path)}
