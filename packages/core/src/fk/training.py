"""Small pieces every fk trainer needs: random-number states that survive a weights-only checkpoint, and a
JSON-lines log.

:func:`rng_states` / :func:`restore_rng_states`: the global states of torch (CPU, and CUDA when used),
NumPy's legacy ``np.random`` and Python's ``random``, as tensors, ints and lists only, so a resume file
written with ``torch.save`` loads back with ``torch.load(weights_only=True)`` (no pickled objects).

:class:`JsonlLog`: one JSON object per line, appended and flushed per record, so a killed run keeps every
line it wrote; :meth:`JsonlLog.truncate_after` drops records past a step on resume, so the log of a resumed
run reads as if it had never stopped.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """The global RNG states as plain tensors and numbers (``torch.load(weights_only=True)`` reads them)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": [int(x) for x in internal],
            "gauss": None if gauss is None else float(gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_states(state: dict[str, Any]) -> None:
    """Set the global RNGs back to what :func:`rng_states` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class JsonlLog:
    """Append-only JSON lines (``{"step": ..., ...}`` per record), flushed per write."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int, key: str = "step") -> None:
        """Keep only records with ``record[key] < step`` (a resume restarts at ``step``)."""
        if not self.path.exists():
            return
        kept = [r for r in self.read() if r.get(key, -1) < step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
