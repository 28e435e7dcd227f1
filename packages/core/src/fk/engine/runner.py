"""Run a validated :class:`fk.recipe.Plan`: item by item, on any executor, resumable, with a manifest.

Layout of a run folder (``--out``)::

    <out>/<step dir>/...        what the components write (atomically)
    <out>/.fk/items/<key>.json  one record per input item: status, outputs, digests
    <out>/failures.json         every failed item: which item, which step, the one-line reason
    <out>/manifest.json         components, plugin versions, resolved params, digests, timings
    <out>/.fk/lock              held (flock) while a run writes here: a second run on it exits 6

An item is one file of the recipe's iterated input. A step whose component fans
out (a detector finding two faces) turns it into child items ``{key}_{NN}`` for
the steps after it. One failing item (or child) is recorded and the rest go on.
``--resume`` skips items whose record says they finished with the same plan, whichever
executor wrote it (``fk.engine.executors``: serial, process, dask, ray). Records stream to disk
as items finish (``fk.engine.records``); the engine holds totals, not records.
A kept item also needs the same input file content (sha256) and the same content of the
recipe's other file inputs; any other item is recomputed, and the summary says why. A run
without ``--resume`` into a folder that holds a run refuses (``--overwrite`` removes what that
run recorded first). Every item and step is seeded from its key, so an interrupted and resumed
run writes the same bytes as one that was not interrupted (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import random
import signal
import sys
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fk import atomic
from fk.components import Component, outputs_of
from fk.engine.context import ItemContext
from fk.engine.executors import Executor, ExecutorSettings, TaskFailed, make_executor
from fk.engine.node_check import ensure_node_ready
from fk.engine.records import (RECORDS_DIR, RunRecords, manifest_item, read_record, write_json_streaming,
                               write_record)
from fk.errors import ExitCode, FkError, ItemFiltered, TransientError, UsageError
from fk.recipe import ITERATED_TYPES, Plan, StepPlan

LOCK_FILE = ".fk/lock"


class Interrupted(FkError):
    exit_code = ExitCode.INTERRUPTED


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same orderly stop as Ctrl-C (records and manifest are written)."""


class RunFolderBusy(FkError):
    exit_code = ExitCode.BUSY


@dataclass
class RunOptions:
    out: Path
    resume: bool = False
    workers: int = 1
    progress: bool = True
    executor: str | None = None  # serial, process, dask, ray or a plugin's (None: by --workers)
    address: str | None = None  # an existing dask scheduler / ray head
    retries: int = 0  # extra attempts for an item whose task raised (TransientError, lost worker)
    overwrite: bool = False  # replace what a previous run recorded in ``out`` (never other files)


@dataclass
class ItemTask:
    key: str
    source: str
    plan: Plan
    run_dir: str
    inputs_sha256: dict[str, str] = field(default_factory=dict)  # the recipe's other file inputs


@dataclass
class RunSummary:
    out: Path
    items: int
    succeeded: int
    failed: int
    skipped: int
    failures: list[dict[str, Any]]
    seconds: float
    filtered: int = 0
    interrupted: bool = False
    run_step_failed: bool = False
    manifest: Path | None = None
    run_outputs: list[dict[str, str]] = field(default_factory=list)
    run_timings: dict[str, float] = field(default_factory=dict)  # seconds of each run-scope step
    notices: list[str] = field(default_factory=list)  # the plan's preflight notices
    recomputed: list[dict[str, str]] = field(default_factory=list)  # --resume: items redone, and why
    terminated: bool = False  # stopped by SIGTERM rather than Ctrl-C

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.TERMINATED if self.terminated else ExitCode.INTERRUPTED
        if self.run_step_failed:
            return ExitCode.STEP_FAILED
        if any(f.get("type") != "SkippedInput" for f in self.failures):  # a skipped entry is reported only
            return ExitCode.ITEM_FAILURES
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "items": self.items, "succeeded": self.succeeded, "failed": self.failed,
                "skipped": self.skipped, "filtered": self.filtered, "failures": self.failures, "seconds": round(self.seconds, 3),
                "interrupted": self.interrupted, "exit_code": int(self.exit_code), "notices": self.notices,
                "recomputed": self.recomputed, "manifest": str(self.manifest) if self.manifest else None}


# ----------------------------------------------------------------------------- items
def item_keys(paths: list[Path]) -> list[tuple[str, Path]]:
    """Item names are file stems; stems shared by two files keep their suffix too."""
    stems: dict[str, int] = defaultdict(int)
    for p in paths:
        stems[p.stem] += 1
    return [(p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}", p) for p in paths]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, FkError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_RUNNERS: dict[tuple[str, str], Any] = {}


def _runner_for(plan: Plan, step: StepPlan) -> Any:
    """Build each step's runner once per process (models load once, not per item)."""
    key = (plan.digest(), step.id)
    if key not in _RUNNERS:
        factory = step.component.load_factory()
        _RUNNERS[key] = factory(**step.params)
    return _RUNNERS[key]


def step_modules(plan: Plan) -> tuple[str, ...]:
    """The modules of the item steps' factories (``module:attr``): what every worker imports first."""
    return tuple(dict.fromkeys(s.component.factory.split(":", 1)[0] for s in plan.item_steps
                               if isinstance(s.component.factory, str)))


_WARMED: set[str] = set()


def warm_runners(plan: Plan) -> None:
    """Build every item step's runner, in step order, and call its optional ``warm()`` once per process.

    ``warm()`` loads what the runner needs for every item (models, compiled kernels) before the first
    item, or starts loading it in the background and returns (dlib's detector, whose file reads release
    the GIL, overlaps with the fit step's torch import this way). Each worker process of a pool does
    this once, so per-process costs are paid per worker, not per item. Errors are not raised here: the
    step raises them when it runs and records them for the item as usual.
    """
    if plan.digest() in _WARMED:
        return
    _WARMED.add(plan.digest())
    for step in plan.item_steps:
        try:
            warm = getattr(_runner_for(plan, step), "warm", None)
            if callable(warm):
                warm()
        except Exception:  # noqa: BLE001 - the step reports it, per item
            continue


def close_runners() -> None:
    for runner in _RUNNERS.values():
        close = getattr(runner, "close", None)
        if callable(close):
            close()
    _RUNNERS.clear()
    _WARMED.clear()


def seed_everything(*parts: Any) -> int:
    """Seed Python, numpy and (if loaded) torch from ``parts`` (seed, item key, step id).

    Each step of each item starts from the same random state whatever ran before it in
    this process, so a resumed run and a fresh one compute the same numbers.
    """
    seed = int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return seed


def _hook() -> Any:
    from fk.plugins import get_plugin_manager

    return get_plugin_manager().hook


def _gather(step: StepPlan, values: dict[str, Any]) -> dict[str, Any]:
    return {port: values.get(ref) for port, ref in step.wiring.items()}


def collected_refs(plan: Plan) -> set[str]:
    """Item-step outputs that run-scope steps read: these are kept in item records."""
    item_ids = {s.id for s in plan.item_steps}
    return {ref for s in plan.run_steps for ref in s.wiring.values() if ref.split(".", 1)[0] in item_ids}


def _jsonable(value: Any, ref: str) -> Any:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    value = atomic.to_jsonable(value)
    try:
        json.dumps(value)
    except TypeError as exc:
        raise TypeError(f"{ref} feeds a run-scope step, so it must be JSON-able ({exc})") from None
    return value


def process_item(task: ItemTask) -> dict[str, Any]:
    """Run every item-scope step on one input item; return (and write) its record."""
    plan, run_dir = task.plan, Path(task.run_dir)
    # Once per process, in step order: the first step's models start loading (in the background where
    # they can) while the later steps' modules import; then a node that lacks a plugin or model file
    # stops the run with one line.
    warm_runners(plan)
    ensure_node_ready(plan)
    source = Path(task.source)
    keep = collected_refs(plan)
    record: dict[str, Any] = {"key": task.key, "source": str(source), "digest": plan.digest(),
                              "source_sha256": None, "inputs_sha256": task.inputs_sha256, "leaves": {},
                              "outputs": [], "failures": [], "timings": {}, "cpu_seconds": {}, "messages": [],
                              "filtered": []}
    try:
        record["source_sha256"] = atomic.sha256_file(source)
    except OSError:
        pass
    values: dict[str, Any] = {}
    for name, spec in plan.inputs.items():
        values[f"inputs.{name}"] = source if spec.type in ITERATED_TYPES else (
            spec.value if spec.type == "value" else spec.path)
    steps = plan.item_steps
    hook = _hook()

    def run_from(index: int, key: str, vals: dict[str, Any]) -> None:
        for i in range(index, len(steps)):
            step = steps[i]
            ctx = ItemContext(key=key, source=source, step_id=step.id, run_dir=run_dir,
                              step_dir=run_dir / step.dir, options=dict(plan.params))
            t0, cpu0 = time.perf_counter(), time.process_time()
            try:
                hook.fk_before_step(step_id=step.id, component=step.component, item_key=key)
                runner = _runner_for(plan, step)
                seed_everything(plan.params.get("seed", 0), key, step.id)
                result = outputs_of(step.component, runner(_gather(step, vals), ctx))
            except TransientError:
                raise  # the executor runs the whole item again (atomic writers leave no half file)
            except ItemFiltered as decision:  # dropped on purpose: not a failure
                record["outputs"].extend(ctx.written)
                record["filtered"].append({"item": key, "step": step.id, "reason": str(decision),
                                           **atomic.to_jsonable(decision.details)})
                vals.update({f"{step.id}.{port}": v for port, v in decision.outputs.items()})
                finish_leaf(key, vals, "filtered")
                return
            except Exception as exc:  # noqa: BLE001 - one bad item never stops the batch
                record["outputs"].extend(ctx.written)
                record["failures"].append({"item": key, "step": step.id, "component": step.component.ref,
                                           "error": one_line(exc), "type": type(exc).__name__})
                if getattr(exc, "hint", None):  # what to do about it travels with the failure
                    record["failures"][-1]["hint"] = str(exc.hint)
                if os.environ.get("FK_DEBUG"):
                    record["failures"][-1]["traceback"] = traceback.format_exc()
                record["leaves"][key] = {"status": "failed", "values": {}}
                hook.fk_on_step_error(step_id=step.id, component=step.component, item_key=key, error=exc)
                return
            seconds = time.perf_counter() - t0
            record["timings"].setdefault(step.id, [0.0, 0])
            record["timings"][step.id][0] += seconds
            record["timings"][step.id][1] += 1
            # the process's CPU (user + sys, all its threads) while the step ran: on a shared machine wall
            # time mostly measures waiting for a core, CPU time what the step cost (bench/bench_demo.py)
            cpu = record["cpu_seconds"]
            cpu[step.id] = cpu.get(step.id, 0.0) + time.process_time() - cpu0
            record["outputs"].extend(ctx.written)
            record["messages"].extend(f"{key}/{step.id}: {m}" for m in ctx.messages)
            hook.fk_after_step(step_id=step.id, component=step.component, item_key=key, seconds=seconds)
            for port, value in result.items():
                vals[f"{step.id}.{port}"] = value
            fan = step.component.fan_out
            if fan is not None:
                children = list(result[fan] or [])
                if not children:
                    record["failures"].append({"item": key, "step": step.id, "component": step.component.ref,
                                               "error": f"{step.component.ref} produced no {fan}",
                                               "type": "EmptyFanOut"})
                    record["leaves"][key] = {"status": "failed", "values": {}}
                    return
                for n, child in enumerate(children):
                    child_vals = dict(vals)
                    child_vals[f"{step.id}.{fan}"] = child
                    # a child may name itself (a detector's naming scheme); else its position
                    suffix = getattr(child, "key_suffix", "") or f"{n:02d}"
                    run_from(i + 1, f"{key}_{suffix}", child_vals)
                return
        finish_leaf(key, vals, "ok")

    def finish_leaf(key: str, vals: dict[str, Any], status: str) -> None:
        """Keep the JSON-able values run-scope steps read (a filtered leaf keeps what it computed)."""
        try:
            kept = {ref: _jsonable(vals[ref], ref) for ref in keep if ref in vals}
        except TypeError as exc:
            record["failures"].append({"item": key, "step": "(collect)", "component": "", "error": str(exc),
                                       "type": "TypeError"})
            record["leaves"][key] = {"status": "failed", "values": {}}
            return
        record["leaves"][key] = {"status": status, "values": kept}

    run_from(0, task.key, values)
    statuses = {leaf["status"] for leaf in record["leaves"].values()} - {"filtered"}
    record["status"] = "ok" if statuses <= {"ok"} else ("failed" if statuses <= {"failed"} else "partial")
    write_record(run_dir, record)
    return record


def failed_task_record(task: ItemTask, failed: TaskFailed) -> dict[str, Any]:
    """The record of an item whose task kept raising (its retries spent): failed, with the reason."""
    return {"key": task.key, "source": task.source, "digest": task.plan.digest(), "source_sha256": None,
            "leaves": {task.key: {"status": "failed", "values": {}}}, "outputs": [], "timings": {},
            "messages": [], "filtered": [], "status": "failed",
            "failures": [{"item": task.key, "step": "(task)", "component": "", "error": failed.error,
                          "type": failed.type, "attempts": failed.attempts}]}


def _stale_reason(rec: dict[str, Any], digest: str, source_sha256: str | None,
                  inputs_sha256: dict[str, str]) -> str | None:
    """Why a record cannot stand for this run's item (None: it can)."""
    if rec.get("digest") != digest:
        return "the recipe's steps, versions or parameters changed"
    if rec.get("source_sha256") != source_sha256:
        return "its input file changed"
    if rec.get("inputs_sha256", {}) != inputs_sha256:
        changed = sorted(k for k in set(inputs_sha256) | set(rec.get("inputs_sha256", {}))
                         if inputs_sha256.get(k) != rec.get("inputs_sha256", {}).get(k))
        return f"input {', '.join(changed)} changed"
    return None


def _finished_record(run_dir: Path, key: str, digest: str, source_sha256: str | None = None,
                     inputs_sha256: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) if ``key`` finished with this plan and these inputs, else (None, why it is redone)."""
    rec = read_record(run_dir, key)
    if rec is None:
        return None, None
    why = _stale_reason(rec, digest, source_sha256, inputs_sha256 or {})
    if why is None and rec.get("status") != "ok":
        why = "it failed last time"
    if why is None:
        missing = [o["path"] for o in rec.get("outputs", []) if not (run_dir / o["path"]).exists()]
        if missing:
            why = f"{missing[0]} is missing"
    return (None, why) if why else (rec, None)


def _sha256_or_none(path: Path) -> str | None:
    try:
        return atomic.sha256_file(path)
    except OSError:
        return None


def other_inputs_sha256(plan: Plan) -> dict[str, str]:
    """sha256 of the recipe's non-iterated file inputs (e.g. a labels file): a change there redoes items."""
    out: dict[str, str] = {}
    for name, spec in plan.inputs.items():
        if spec.type == "file" and spec.path is not None and spec.path.is_file():
            out[name] = atomic.sha256_file(spec.path)
    return out


# ----------------------------------------------------------------------------- the run
def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".fk-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FkError(f"output folder {out} is not writable ({exc.strerror or exc})",
                      hint="Choose another folder with --out DIR.") from None


@contextlib.contextmanager
def run_folder_lock(out: Path):
    """Hold an exclusive lock on ``out`` for the run; a second fk run on it fails at once (exit 6).

    ``flock`` is released by the kernel when the process dies, even by kill -9, so a stale
    lock never blocks a later run.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    path = out / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise RunFolderBusy(f"another fk run (pid {holder}) is writing to {out}",
                                hint="Wait for it to finish, or choose another folder with --out DIR.",
                                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def refuse_foreign_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """A non-empty folder that holds no fk run is someone's: write there only when asked to."""
    if resume or overwrite or (out / ".fk").exists():
        return
    others = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if others:
        raise UsageError(f"{out} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
                         "and holds no fk run",
                         hint="Choose a new or empty folder with --out DIR (or --overwrite to write into it "
                              "anyway; fk then replaces only the files it writes).")


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> list[str]:
    """Refuse to mix a new run into a used folder; with ``overwrite``, remove what the previous run
    recorded (its outputs, records, manifest) and nothing else. Returns the removed paths."""
    records = sorted((out / RECORDS_DIR).glob("*.json")) if (out / RECORDS_DIR).is_dir() else []
    used = bool(records) or (out / "manifest.json").exists()
    if used:  # we hold the lock: temporary files in here are leftovers of a killed run
        atomic.remove_stale_temps(out)
    if resume or not used:
        return []
    if not overwrite:
        raise UsageError(f"{out} already holds a run",
                         hint="Add --resume to finish it (changed inputs are recomputed), --overwrite to "
                              "replace it, or choose another folder with --out DIR.")
    from fk.engine.context import confine

    listed: set[str] = set()
    for path in records:
        rec = read_record(out, path.stem) or {}
        listed.update(o["path"] for o in rec.get("outputs", []))
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        listed.update(o["path"] for o in manifest.get("run_outputs", []))
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    removed = []
    bookkeeping = ["manifest.json", "failures.json"] + [str(p.relative_to(out)) for p in records]
    for rel in sorted(listed) + bookkeeping:
        path = out / rel
        try:
            confine(out, path.parent, rel)  # a tampered record never deletes outside --out
        except FkError:
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(rel)
    return removed


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (kill, a scheduler's time limit) stops the run like Ctrl-C: what finished is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _ignoring_interrupts():
    """Defer Ctrl-C/SIGTERM while the run's own bookkeeping is written (it is short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: got.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_plan(plan: Plan, options: RunOptions, executor: Executor | None = None, reporter: Any = None) -> RunSummary:
    """Execute ``plan``; never raises for item failures (see the summary), raises
    :class:`Interrupted` on Ctrl-C or SIGTERM after saving what finished."""
    out = Path(options.out).resolve()
    check_writable(out)
    refuse_foreign_folder(out, options.resume, options.overwrite)
    with run_folder_lock(out), sigterm_as_interrupt():
        prepare_run_folder(out, options.resume, options.overwrite)
        return _run_locked(plan, options, out, executor, reporter)


def _run_locked(plan: Plan, options: RunOptions, out: Path, executor: Executor | None,
                reporter: Any) -> RunSummary:
    from fk import __version__

    started = time.time()
    t0 = time.perf_counter()
    digest = plan.digest()
    iterated = plan.iterated_input
    sources = item_keys(iterated.items()) if iterated and plan.item_steps else []
    # entries of the input folder that are not read: a line each in failures.json, never silence
    skipped_inputs = [{"item": p.name, "step": "(inputs)", "component": "", "error": f"{p}: skipped: {why}",
                       "type": "SkippedInput"} for p, why in (iterated.skipped() if sources else [])]

    inputs_sha256 = other_inputs_sha256(plan)
    records = RunRecords(out, keep_leaves=bool(plan.run_steps))
    todo: list[ItemTask] = []
    recomputed: list[dict[str, str]] = []
    skipped = 0
    run_dir = str(out)  # one string shared by every task (a 100k-item queue holds 100k tasks)
    for key, src in sources:
        rec = None
        if options.resume:
            rec, why = _finished_record(out, key, digest, _sha256_or_none(src), inputs_sha256)
            if why:
                recomputed.append({"item": key, "reason": why})
        if rec is not None:
            records.add(rec)
            skipped += 1
        else:
            todo.append(ItemTask(key, str(src), plan, run_dir, inputs_sha256))

    mode = None if not options.progress else ("bar" if sys.stderr.isatty() else "lines")
    progress = _Progress(plan, len(sources), enabled=mode is not None, reporter=reporter, mode=mode or "bar")
    progress.start(len(todo), skipped, out)
    if options.progress:
        for _key, rec in records.iter_records():
            progress.item_done(rec)
    own_executor = executor is None
    settings = ExecutorSettings(workers=min(options.workers, max(1, len(todo))), address=options.address,
                                retries=options.retries, preload=step_modules(plan))
    executor = executor or make_executor(options.executor, settings)
    interrupted = False
    terminated = False
    run_step_failed = False
    failures: list[dict[str, Any]] = []
    run_outputs: list[dict[str, str]] = []
    run_timings: dict[str, float] = {}
    try:
        with progress:
            try:
                for rec in executor.map_unordered(process_item, todo):
                    if isinstance(rec, TaskFailed):
                        rec = failed_task_record(rec.task, rec)
                        write_record(out, rec)
                    records.add(rec)
                    progress.item_done(rec)
                if plan.run_steps:
                    run_step_failed = _run_scope_steps(plan, out, records, failures, run_outputs, progress,
                                                       run_timings)
            except KeyboardInterrupt as exc:
                interrupted, terminated = True, isinstance(exc, Terminated)
    finally:
        if own_executor:
            with _ignoring_interrupts():  # a second Ctrl-C while workers stop must not lose the manifest
                executor.shutdown()
        close_runners()  # models loaded by in-process steps are released with the run
    if interrupted:
        # Workers may have finished (and recorded) items whose results never reached us: count them.
        for task in todo:
            if task.key not in records:
                rec = read_record(out, task.key)
                if rec is not None and _stale_reason(rec, digest, _sha256_or_none(Path(task.source)),
                                                     inputs_sha256) is None:
                    records.add(rec)
    failures.extend(records.failures())
    failures.extend(skipped_inputs)
    failures.sort(key=lambda f: (f["item"], f["step"]))
    succeeded = records.succeeded
    filtered = records.filtered
    summary = RunSummary(out, len(sources), succeeded, len(records) - succeeded, skipped,
                         failures, time.perf_counter() - t0, filtered, interrupted, run_step_failed,
                         run_outputs=run_outputs, run_timings=run_timings, notices=list(plan.notices),
                         recomputed=recomputed, terminated=terminated)
    with _ignoring_interrupts():
        atomic.write_json(out / "failures.json", failures)
        summary.manifest = _write_manifest(plan, out, records, summary, started, __version__)
    if interrupted:
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        error = Interrupted(f"{what}: {len(records)} finished item(s) ({succeeded} ok) are kept in {out}",
                            hint=f"Run the same command with --resume to finish the other "
                                 f"{len(sources) - len(records)}.")
        error.exit_code = summary.exit_code
        raise error
    return summary


def _run_scope_steps(plan: Plan, out: Path, records: RunRecords, failures: list[dict[str, Any]],
                     written: list[dict[str, str]], progress: _Progress,
                     timings: dict[str, float] | None = None) -> bool:
    """Run the once-per-run steps on every item's collected values; True if one of them failed."""
    per_ref: dict[str, dict[str, Any]] = defaultdict(dict)
    for key in sorted(records.leaves):
        for leaf_key, leaf in sorted(records.leaves[key].items()):
            for ref, value in leaf.get("values", {}).items():
                per_ref[ref][leaf_key] = value
    values: dict[str, Any] = {}
    for name, spec in plan.inputs.items():
        values[f"inputs.{name}"] = spec.value if spec.type == "value" else spec.path
    values.update(per_ref)
    hook = _hook()
    failed = False
    item_failures = records.failures()
    for step in plan.run_steps:
        ctx = ItemContext(key="_run", source=None, step_id=step.id, run_dir=out, step_dir=out / step.dir,
                          options=dict(plan.params), failures=[dict(f) for f in item_failures])
        t0 = time.perf_counter()
        try:
            hook.fk_before_step(step_id=step.id, component=step.component, item_key="_run")
            inputs = {port: values.get(ref, {} if ref in collected_refs(plan) else None)
                      for port, ref in step.wiring.items()}
            result = outputs_of(step.component, _runner_for(plan, step)(inputs, ctx))
        except Exception as exc:  # noqa: BLE001
            failures.append({"item": "_run", "step": step.id, "component": step.component.ref,
                             "error": one_line(exc), "type": type(exc).__name__})
            hook.fk_on_step_error(step_id=step.id, component=step.component, item_key="_run", error=exc)
            failed = True
            written.extend(ctx.written)  # what it finished before raising is still accounted for
            progress.run_step_done(step.id)
            continue
        for port, value in result.items():
            values[f"{step.id}.{port}"] = value
        progress.run_step_done(step.id, time.perf_counter() - t0)
        if timings is not None:
            timings[step.id] = time.perf_counter() - t0
        hook.fk_after_step(step_id=step.id, component=step.component, item_key="_run",
                           seconds=time.perf_counter() - t0)
        written.extend(ctx.written)
    return failed


def _write_manifest(plan: Plan, out: Path, records: RunRecords, summary: RunSummary,
                    started: float, version: str) -> Path:
    """manifest.json, its per-item entries read back from the records one at a time."""
    from fk.plugins import get_plugin_manager

    timings = records.timing_summary()
    for sid, secs in summary.run_timings.items():  # run-scope steps ran once
        timings[sid] = {"seconds": secs, "count": 1, "mean_seconds": secs}
    plugins = [{"name": p.name, "distribution": p.distribution, "version": p.version}
               for p in get_plugin_manager().plugins()]
    try:
        recipe_sha = atomic.sha256_file(plan.path)
    except OSError:
        recipe_sha = None
    manifest = {
        "fk_version": version,
        "status": "interrupted" if summary.interrupted else ("failed" if summary.run_step_failed else (
            "finished_with_failures" if summary.failures else "ok")),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(summary.seconds, 3),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "recipe": {"path": str(plan.path), "sha256": recipe_sha},
        "plan": plan.to_dict(),
        "plugins": plugins,
        "counts": {"items": summary.items, "succeeded": summary.succeeded, "failed": summary.failed,
                   "skipped_by_resume": summary.skipped, "filtered": summary.filtered},
    }
    tail = {"run_outputs": summary.run_outputs, "timings": timings, "failures": summary.failures}
    items = ((k, manifest_item(r)) for k, r in records.iter_records())
    return write_json_streaming(out / "manifest.json", manifest, "items", items, tail)


# ----------------------------------------------------------------------------- progress
def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """Progress on stderr: one rich bar per step on a terminal (``mode="bar"``), plain lines
    otherwise (``mode="lines"``: CI, logs, nohup), nothing when disabled (``--quiet``, tests).

    Plain lines: one at the start, one per finished item (at most one per ``LINE_EVERY`` seconds,
    the last always), one per once-per-run step, each with the item count and an ETA.
    """

    LINE_EVERY = 5.0

    def __init__(self, plan: Plan, total_items: int, enabled: bool, reporter: Any = None, mode: str = "bar"):
        self.enabled = enabled
        self.mode = mode if enabled else None
        self.bars: dict[str, Any] = {}
        self.progress = None
        self.total = total_items
        self.done = 0
        self.todo = 0
        self.t0 = time.perf_counter()
        self.last_line = float("-inf")
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        for step in plan.steps:
            total = total_items if step.scope == "item" else 1
            self.bars[step.id] = self.progress.add_task(f"{step.id}", total=total)

    def _line(self, text: str) -> None:
        sys.stderr.write(f"fk: {text}\n")
        sys.stderr.flush()
        self.last_line = time.perf_counter()

    def start(self, todo: int, skipped: int, out: Path) -> None:
        self.todo = todo
        if self.mode == "lines":
            already = f" ({skipped} already done)" if skipped else ""
            self._line(f"{todo} item(s) to run{already} -> {out}")

    def __enter__(self) -> _Progress:
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def item_done(self, record: dict[str, Any]) -> None:
        """Advance the bar of every step this item reached (ran, or failed at); or print a line."""
        if self.mode == "lines":
            self.done += 1
            if self.done > self.total - self.todo:  # skip the lines of items --resume found done
                ran = self.done - (self.total - self.todo)
                now = time.perf_counter()
                if ran == self.todo or ran == 1 or now - self.last_line >= self.LINE_EVERY:
                    elapsed = now - self.t0
                    eta = elapsed / ran * (self.todo - ran)
                    key, status = record.get("key", ""), record.get("status", "?")
                    self._line(f"item {self.done}/{self.total} {key}: {status} · {_clock(elapsed)} elapsed · ETA {_clock(eta)}")
            return
        if not self.progress:
            return
        reached = set(record.get("timings", {})) | {f["step"] for f in record.get("failures", [])}
        for sid in reached & set(self.bars):
            self.progress.advance(self.bars[sid], 1)

    def run_step_done(self, step_id: str, seconds: float = 0.0) -> None:
        if self.mode == "lines":
            self._line(f"{step_id} (once per run) done in {seconds:.1f} s")
        if self.progress and step_id in self.bars:
            self.progress.advance(self.bars[step_id], 1)
