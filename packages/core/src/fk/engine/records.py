"""Run records that stream: every finished item's record is its own file, written (atomically) by
the worker that ran it, and the engine keeps only running totals while the run goes.

A 100k-item run holds O(1) records in memory (the item keys, the totals, the failures, and —
only when a run-scope step reads them — the values collected for it); a crash loses nothing
that finished, and ``manifest.json`` is assembled at the end by reading the records back one
at a time (``bench/bench_executors.py`` measures the engine's peak memory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fk import atomic

RECORDS_DIR = ".fk/items"


def record_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / RECORDS_DIR / f"{key}.json"


def read_record(run_dir: Path, key: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(record_path(run_dir, key).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    return atomic.write_json(record_path(run_dir, record["key"]), record)


class RunRecords:
    """Totals over the finished items of one run; the records themselves stay on disk.

    ``keep_leaves``: hold each item's collected values (only what run-scope steps read).
    """

    def __init__(self, run_dir: Path, keep_leaves: bool = False):
        self.run_dir = Path(run_dir)
        self.keep_leaves = keep_leaves
        self.keys: set[str] = set()
        self.succeeded = 0
        self.filtered = 0
        self.leaves: dict[str, dict[str, Any]] = {}
        self._failures: list[dict[str, Any]] = []
        self.timings: dict[str, dict[str, float]] = {}

    def add(self, rec: dict[str, Any]) -> None:
        key = rec["key"]
        if key in self.keys:  # the same item again (a retry that finished twice): count it once
            return
        self.keys.add(key)
        self.succeeded += rec["status"] == "ok"
        self.filtered += len(rec.get("filtered", []))
        self._failures.extend(rec.get("failures", []))
        for sid, (secs, count) in rec.get("timings", {}).items():
            t = self.timings.setdefault(sid, {"seconds": 0.0, "count": 0})
            t["seconds"] += secs
            t["count"] += count
        for sid, cpu in rec.get("cpu_seconds", {}).items():  # absent from records written before it was kept
            t = self.timings.setdefault(sid, {"seconds": 0.0, "count": 0})
            t["cpu_seconds"] = t.get("cpu_seconds", 0.0) + cpu
        if self.keep_leaves:
            self.leaves[key] = rec.get("leaves", {})

    def __setitem__(self, key: str, rec: dict[str, Any]) -> None:  # records[key] = rec, as a dict took it
        self.add({**rec, "key": key} if rec.get("key") != key else rec)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def failures(self) -> list[dict[str, Any]]:
        return sorted(self._failures, key=lambda f: (f["item"], f["step"]))

    def timing_summary(self) -> dict[str, dict[str, float]]:
        return {
            sid: {**t, "mean_seconds": t["seconds"] / max(1, t["count"])} for sid, t in self.timings.items()
        }

    def iter_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every finished item's record in key order, read back one at a time."""
        for key in sorted(self.keys):
            rec = read_record(self.run_dir, key)
            if rec is not None:
                yield key, rec


def manifest_item(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": rec["source"],
        "source_sha256": rec.get("source_sha256"),
        "status": rec["status"],
        "outputs": rec["outputs"],
        "messages": rec.get("messages", []),
        "filtered": rec.get("filtered", []),
    }


def write_json_streaming(
    path: Path,
    head: dict[str, Any],
    stream_key: str,
    entries: Iterator[tuple[str, Any]],
    tail: dict[str, Any],
) -> Path:
    """Write ``{**head, stream_key: {k: v for k, v in entries}, **tail}`` as indented JSON, atomically,
    without holding the streamed mapping: the same text ``json.dumps(..., indent=2)`` gives."""
    path = Path(path)
    with atomic.atomic_open(path, "w") as f:  # temp sibling, fsync, rename; open()'s mode
        f.write("{")
        first = True

        def field(name: str, value: Any) -> None:
            nonlocal first
            text = json.dumps(atomic.to_jsonable(value), indent=2).replace("\n", "\n  ")
            f.write(("\n  " if first else ",\n  ") + json.dumps(name) + ": " + text)
            first = False

        for k, v in head.items():
            field(k, v)
        f.write(("\n  " if first else ",\n  ") + json.dumps(stream_key) + ": {")
        first, any_entry = False, False
        for k, v in entries:
            text = json.dumps(atomic.to_jsonable(v), indent=2).replace("\n", "\n    ")
            f.write(("\n    " if not any_entry else ",\n    ") + json.dumps(k) + ": " + text)
            any_entry = True
        f.write("\n  }" if any_entry else "}")
        for k, v in tail.items():
            field(k, v)
        f.write("\n}\n")
    return path
