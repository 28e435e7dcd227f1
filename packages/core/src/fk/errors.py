"""Errors that reach users, each with an exit code and a one-line fix.

The CLI prints ``str(error)`` and, when there is one, ``error.hint`` on a second
line; ``FK_DEBUG=1`` adds the traceback. Library code raises these instead of
bare ``assert`` so that messages survive ``python -O`` and name the file.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``fk`` (documented in the README, tested)."""

    OK = 0
    STEP_FAILED = 1  # a whole-run step raised, or an internal error
    USAGE = 2  # bad command line (typer/click's own convention)
    INVALID_RECIPE = 3  # the recipe failed validation; nothing ran
    MISSING = 4  # a plugin, model asset or renderer backend is not installed
    ITEM_FAILURES = 5  # the run finished, but some items failed (see failures.json)
    BUSY = 6  # another fk run holds the lock on this --out folder; nothing ran
    INTERRUPTED = 130  # Ctrl-C; finished items are kept, rerun with --resume
    TERMINATED = 143  # SIGTERM (kill, a scheduler's time limit): handled like Ctrl-C


class FkError(Exception):
    """Base class for errors shown to users as one line plus an optional hint."""

    exit_code: ExitCode = ExitCode.STEP_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class UsageError(FkError):
    exit_code = ExitCode.USAGE


class RecipeError(FkError):
    """The recipe is invalid. ``problems`` holds every problem found, each located."""

    exit_code = ExitCode.INVALID_RECIPE

    def __init__(self, problems: list[str], hint: str | None = None):
        self.problems = list(problems)
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems), hint)


class MissingError(FkError):
    """A plugin, asset or backend the work needs is not installed."""

    exit_code = ExitCode.MISSING


class AssetMissingError(MissingError):
    pass


class PluginError(FkError):
    """A plugin is broken or two plugins conflict; names the distributions."""

    exit_code = ExitCode.MISSING


class InputError(FkError):
    """A bad input file (unreadable image, malformed model file...). Names the file."""


class NoFaceError(InputError):
    """No face was found in an image: the item is recorded as failed, the batch goes on."""


class TransientError(FkError):
    """Raised by a component for a failure worth another attempt (a network file system hiccup,
    a lost GPU): the item leaves the worker unrecorded and the executor runs it again, up to
    ``fk run --retries N`` times; after that it is recorded as failed with this reason."""


class ItemFiltered(Exception):  # noqa: N818 - a decision, not an error
    """Raised by a component to drop an item on purpose (a density filter, a review reject).

    The item's later steps do not run, it is not a failure, and the reason is kept in
    the manifest (``filtered``) so the decision can be audited. ``outputs`` are the
    step's output values for run-scope steps that report on every decision.
    """

    def __init__(self, reason: str, details: dict | None = None, outputs: dict | None = None):
        super().__init__(reason)
        self.details = details or {}
        self.outputs = outputs or {}


class ShapeError(ValueError):
    """A tensor argument has the wrong shape; the message names the argument."""
