"""Run a validated :class:`fk.recipe.Plan`: item by item, on any executor, resumable, with a manifest.

Layout of a run folder (``--out``)::

    <out>/<step dir>/...        what the components write (atomically)
    <out>/.fk/items/<key>.json  one record per input item: status, outputs, digests
    <out>/failures.json         every failed item: which item, which step, the one-line reason
    <out>/manifest.json         components, plugin versions, resolved params, digests, timings

An item is one file of the recipe's iterated input. A step whose component fans
out (a detector finding two faces) turns it into child items ``{key}_{NN}`` for
the steps after it. One failing item (or child) is recorded and the rest go on.
``--resume`` skips items whose record says they finished with the same plan, whichever
executor wrote it (``fk.engine.executors``: serial, process, dask, ray). Records stream to disk
as items finish (``fk.engine.records``); the engine holds totals, not records.
"""

from __future__ import annotations

import json
import os
import platform
import sys
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
from fk.engine.records import RECORDS_DIR, RunRecords, manifest_item, write_json_streaming, write_record
from fk.errors import ExitCode, FkError, ItemFiltered, TransientError
from fk.recipe import Plan, StepPlan


class Interrupted(FkError):
    exit_code = ExitCode.INTERRUPTED


@dataclass
class RunOptions:
    out: Path
    resume: bool = False
    workers: int = 1
    progress: bool = True
    executor: str | None = None  # serial, process, dask, ray or a plugin's (None: by --workers)
    address: str | None = None  # an existing dask scheduler / ray head
    retries: int = 0  # extra attempts for an item whose task raised (TransientError, lost worker)


@dataclass
class ItemTask:
    key: str
    source: str
    plan: Plan
    run_dir: str


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

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.run_step_failed:
            return ExitCode.STEP_FAILED
        if self.failures:
            return ExitCode.ITEM_FAILURES
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "items": self.items, "succeeded": self.succeeded, "failed": self.failed,
                "skipped": self.skipped, "filtered": self.filtered, "failures": self.failures, "seconds": round(self.seconds, 3),
                "interrupted": self.interrupted, "exit_code": int(self.exit_code), "notices": self.notices,
                "manifest": str(self.manifest) if self.manifest else None}


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


def close_runners() -> None:
    for runner in _RUNNERS.values():
        close = getattr(runner, "close", None)
        if callable(close):
            close()
    _RUNNERS.clear()


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
    ensure_node_ready(plan)  # a worker without the plugins or model files stops the run with one line
    source = Path(task.source)
    keep = collected_refs(plan)
    record: dict[str, Any] = {"key": task.key, "source": str(source), "digest": plan.digest(),
                              "source_sha256": None, "leaves": {}, "outputs": [], "failures": [],
                              "timings": {}, "messages": [], "filtered": []}
    try:
        record["source_sha256"] = atomic.sha256_file(source)
    except OSError:
        pass
    values: dict[str, Any] = {}
    for name, spec in plan.inputs.items():
        values[f"inputs.{name}"] = source if spec.type in ("images", "files") else (
            spec.value if spec.type == "value" else spec.path)
    steps = plan.item_steps
    hook = _hook()

    def run_from(index: int, key: str, vals: dict[str, Any]) -> None:
        for i in range(index, len(steps)):
            step = steps[i]
            ctx = ItemContext(key=key, source=source, step_id=step.id, run_dir=run_dir,
                              step_dir=run_dir / step.dir, options=dict(plan.params))
            t0 = time.perf_counter()
            try:
                hook.fk_before_step(step_id=step.id, component=step.component, item_key=key)
                runner = _runner_for(plan, step)
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


def _finished_record(run_dir: Path, key: str, digest: str) -> dict[str, Any] | None:
    path = run_dir / RECORDS_DIR / f"{key}.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("digest") != digest or rec.get("status") != "ok":
        return None
    if not all((run_dir / o["path"]).exists() for o in rec.get("outputs", [])):
        return None
    return rec


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


def run_plan(plan: Plan, options: RunOptions, executor: Executor | None = None, reporter: Any = None) -> RunSummary:
    """Execute ``plan``; never raises for item failures (see the summary), raises
    :class:`Interrupted` on Ctrl-C after saving what finished."""
    from fk import __version__

    out = Path(options.out).resolve()
    check_writable(out)
    started = time.time()
    t0 = time.perf_counter()
    digest = plan.digest()
    iterated = plan.iterated_input
    sources = item_keys(iterated.items()) if iterated and plan.item_steps else []

    records = RunRecords(out, keep_leaves=bool(plan.run_steps))
    todo: list[ItemTask] = []
    skipped = 0
    for key, src in sources:
        rec = _finished_record(out, key, digest) if options.resume else None
        if rec is not None:
            records.add(rec)
            skipped += 1
        else:
            todo.append(ItemTask(key, str(src), plan, str(out)))

    progress = _Progress(plan, len(sources), enabled=options.progress, reporter=reporter)
    if options.progress:
        for _key, rec in records.iter_records():
            progress.item_done(rec)
    own_executor = executor is None
    settings = ExecutorSettings(workers=min(options.workers, max(1, len(todo))), address=options.address,
                                retries=options.retries)
    executor = executor or make_executor(options.executor, settings)
    interrupted = False
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
            except KeyboardInterrupt:
                interrupted = True
    finally:
        if own_executor:
            executor.shutdown()
        close_runners()  # models loaded by in-process steps are released with the run
    failures.extend(records.failures())
    failures.sort(key=lambda f: (f["item"], f["step"]))
    succeeded = records.succeeded
    filtered = records.filtered
    summary = RunSummary(out, len(sources), succeeded, len(records) - succeeded, skipped,
                         failures, time.perf_counter() - t0, filtered, interrupted, run_step_failed,
                         run_outputs=run_outputs, run_timings=run_timings, notices=list(plan.notices))
    atomic.write_json(out / "failures.json", failures)
    summary.manifest = _write_manifest(plan, out, records, summary, started, __version__)
    if interrupted:
        raise Interrupted(f"interrupted: {succeeded} finished item(s) are kept in {out}",
                          hint=f"Run the same command with --resume to finish the other {len(sources) - len(records)}.")
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
class _Progress:
    """One rich bar per step, on stderr; silent when disabled (--json, -q, tests)."""

    def __init__(self, plan: Plan, total_items: int, enabled: bool, reporter: Any = None):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        for step in plan.steps:
            total = total_items if step.scope == "item" else 1
            self.bars[step.id] = self.progress.add_task(f"{step.id}", total=total)

    def __enter__(self) -> _Progress:
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def item_done(self, record: dict[str, Any]) -> None:
        """Advance the bar of every step this item reached (ran, or failed at)."""
        if not self.progress:
            return
        reached = set(record.get("timings", {})) | {f["step"] for f in record.get("failures", [])}
        for sid in reached & set(self.bars):
            self.progress.advance(self.bars[sid], 1)

    def run_step_done(self, step_id: str, seconds: float = 0.0) -> None:
        if self.progress and step_id in self.bars:
            self.progress.advance(self.bars[step_id], 1)
