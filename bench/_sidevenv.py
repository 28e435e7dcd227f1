"""Throw-away venvs and source trees for the conformance scripts (run as `python bench/<name>.py`).

The originals' own code runs only in these venvs, never in fk's. A venv counts as ready only once its
packages installed: the list is written inside it after pip succeeds, so an interrupted install (or a
changed list) is redone instead of leaving a half-built venv that every later run trusts.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def side_venv(venv: Path, packages: Sequence[str]) -> Path:
    """The python of ``venv``, created and given ``packages`` (pip specifiers) on first use."""
    python, ready = venv / "bin" / "python", venv / "fk-side-venv.txt"
    wanted = "\n".join(packages) + "\n"
    if python.exists() and ready.is_file() and ready.read_text() == wanted:
        return python
    print(f"preparing the side venv {venv} ({', '.join(packages)}) ...", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    ready.write_text(wanted)
    return python


def source_tree(repo: Path, folders: Sequence[str], into: Path) -> Path:
    """``repo`` itself when it is a checkout holding ``folders[0]``; otherwise ``folders`` taken out of a
    bare git directory (the ``fetch`` tool's mirror) with ``git archive`` into ``into``."""
    if (repo / folders[0]).exists():
        return repo
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "--git-dir", str(repo), "archive", "HEAD", *folders], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
