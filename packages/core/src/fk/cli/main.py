"""``fk``: run face pipelines from YAML recipes, and inspect plugins, components and models.

Exit codes (``fk.errors.ExitCode``): 0 ok · 1 a step failed · 2 usage error ·
3 invalid recipe · 4 missing plugin, asset or backend · 5 finished with item
failures (see failures.json) · 6 another run holds the --out folder · 130
interrupted, 143 terminated by SIGTERM (rerun with --resume).

With ``--json`` every command prints exactly one JSON document on stdout, errors
included: ``{"ok": false, "error": {"type", "message", "hint", "exit_code"}}``.
"""

from __future__ import annotations

import os
import sys

# Idle OpenMP workers spin by default; on a small shared CPU that makes 2 torch threads
# 3-15x slower than 1 (measured in bench_deep3d --contend). Must be set before torch loads;
# spawned --workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
from typing import Annotated, Optional

import typer

from fk.cli.output import Output, print_error
from fk.cli.serve import app as serve_app
from fk.errors import ExitCode, FkError

app = typer.Typer(
    name="fk",
    help="fk: one toolkit for 3D face work. Run a pipeline with `fk run RECIPE.yaml`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
components_app = typer.Typer(help="Components (detectors, crops, fitters, ...) that recipes can use.",
                             no_args_is_help=True)
recipe_app = typer.Typer(help="Check recipes without running them.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(components_app, name="components")
app.add_typer(recipe_app, name="recipe")
app.add_typer(serve_app, name="serve")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP007 - typer needs Optional here
    "--set", help="Override a recipe value: renderer=cpu, STEP.PARAM=value, inputs.NAME=PATH.")]


def _pm():
    from fk.plugins import get_plugin_manager

    return get_plugin_manager()


@app.command()
def version(json_: JsonOpt = False) -> None:
    """Print fk's version and the installed plugins' versions."""
    from fk import __version__

    pm = _pm()
    info = {"fk": __version__, "plugins": {p.distribution: p.version for p in pm.plugins()}}
    if json_:
        Output(True).json(info)
    else:
        typer.echo(f"fk {__version__}")
        for dist, ver in sorted(info["plugins"].items()):
            if dist != "fk-core":
                typer.echo(f"  {dist} {ver}")


def _distribution_summary(distribution: str | None) -> str:
    """The one-line description a distribution's pyproject gives (``Summary`` in its metadata)."""
    if not distribution:
        return ""
    try:
        from importlib.metadata import PackageNotFoundError, metadata
    except ImportError:  # pragma: no cover
        return ""
    try:
        return metadata(distribution).get("Summary") or ""
    except PackageNotFoundError:
        return ""


@plugins_app.command("list")
def plugins_list(json_: JsonOpt = False) -> None:
    """Every installed plugin, its distribution and version, what it provides per stage; broken ones too."""
    pm = _pm()
    plugins = pm.plugins()
    errors: dict[str, list[str]] = {}
    for b in pm.broken:
        errors.setdefault(b.name, []).append(b.error)
    # One row per plugin: one that loaded but whose hook failed is that row, marked broken.
    rows = [{"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
             "builtin": p.builtin, "provides": p.provides,
             "status": "broken" if p.name in errors else "ok", **({"error": "; ".join(errors[p.name])}
                                                                   if p.name in errors else {})}
            for p in plugins]
    loaded = {p.name for p in plugins}
    rows += [{"name": b.name, "distribution": b.distribution, "version": b.version, "module": None,
              "builtin": False, "provides": {}, "status": "broken", "error": b.error}
             for b in pm.broken if b.name not in loaded]
    for r in rows:
        r["summary"] = _distribution_summary(r["distribution"])  # says what is not implemented yet, too
        mine = {ref: dists for ref, dists in pm.conflicts.items() if r["distribution"] in dists}
        if mine:
            r["conflicts"] = mine
    out = Output(json_)
    if json_:
        out.json(rows)
        return
    from rich.markup import escape

    table_rows = []
    for r in rows:
        provides = escape("; ".join(f"{stage}: {', '.join(names)}" for stage, names in r["provides"].items())
                          or "-")
        if r["status"] == "broken":
            provides = f"[red]broken[/]: {escape(r['error'])}" + (f" · {provides}" if r["provides"] else "")
        for ref, dists in r.get("conflicts", {}).items():
            others = ", ".join(d for d in dists if d != r["distribution"])
            provides += f" · [yellow]conflict[/]: {ref} also from {others}"
        summary = r["summary"].removeprefix("fk plugin: ").removeprefix("fk core: ")
        table_rows.append([r["name"], r["distribution"], r["version"], escape(summary), provides])
    out.table("Plugins", ["name", "distribution", "version", "what it is", "provides"], table_rows)
    if pm.conflicts:
        out.note(f"[yellow]{len(pm.conflicts)} component name(s) provided twice[/]: steps using them fail "
                 "until one plugin is uninstalled or blocked (FK_DISABLE_PLUGINS=<name>)")


@components_app.command("list")
def components_list(
    kind: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--kind", help="Only this stage: detect, crop, reconstruct, fit, render, evaluate, export.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every named component: one-line summary, parameters, inputs and outputs."""
    from fk.components import STAGES
    from fk.errors import UsageError
    from fk.plugins import iter_components

    if kind is not None and kind not in STAGES:
        raise UsageError(f"--kind {kind!r} is not a stage", hint=f"choose one of {', '.join(STAGES)}")
    comps = list(iter_components(kind))
    out = Output(json_)
    if json_:
        out.json([c.to_dict() for c in comps])
        return
    from rich.markup import escape

    if not comps:
        out.text("no components installed (fk plugins list shows what loaded)")
    for c in comps:
        fan = " (one item per element)" if c.fan_out else ""
        scope = " [dim]· once per run[/]" if c.scope == "run" else ""
        out.text(f"[bold cyan]{c.ref}[/]  [dim]{c.distribution}[/]{scope}\n    {escape(c.summary)}")
        ins = ", ".join(f"{p.name}:{p.kind}{'?' if p.optional else ''}" for p in c.inputs) or "-"
        outs = ", ".join(f"{p.name}:{p.kind}" for p in c.outputs) or "-"
        out.text(f"    in: {ins}   out: {outs}{fan}")
        if c.params:
            out.text("    with: " + ", ".join(escape(f"{p.name}={p.default!r}") for p in c.params))


@recipe_app.command("validate")
def recipe_validate(recipe: Annotated[Path, typer.Argument(help="The recipe YAML file.")],
                    set_: SetOpt = None, json_: JsonOpt = False) -> None:
    """Check a recipe (keys, components, wiring, cycles, inputs, assets) without running anything."""
    from fk.recipe import load_recipe

    plan = load_recipe(recipe, set_ or [])
    out = Output(json_)
    if json_:
        out.json({"valid": True, **plan.to_dict()})
    else:
        out.text(f"[green]✓[/] {recipe} is valid: {len(plan.steps)} steps "
                 f"({' → '.join(s.id for s in plan.steps)})")


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="The recipe YAML file, e.g. recipes/demo.yaml.")],
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP007
        "--out", help="Output folder (default: runs/<recipe name>).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish a previous run in --out: skip items it finished with the same inputs and "
                         "parameters, recompute the rest.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the run in --out: delete the files it recorded, then run from scratch.",
    )] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; run nothing.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Local worker processes.")] = 1,
    executor: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--executor", help="Where items run: serial, process, dask, ray, or a plugin's (fk doctor lists them); "
                           "default serial, or process with --workers > 1.")] = None,
    address: Annotated[Optional[str], typer.Option(  # noqa: UP007
        "--address", help="An existing cluster: the dask scheduler (tcp://host:8786) or the Ray head "
                          "(ray://host:10001, or auto). Without it, dask/ray start on this machine.")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0,
                                         help="Run an item again up to N times when its task raised "
                                              "(a lost worker, a transient error).")] = 0,
    json_: JsonOpt = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress (bar or lines) or summary.")] = False,
) -> None:
    """Run a recipe over its inputs, item by item."""
    from fk.engine.runner import RunOptions, run_plan
    from fk.errors import UsageError
    from fk.recipe import load_recipe

    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other", hint="Use one of them.")
    output = Output(json_, quiet)
    plan = load_recipe(recipe, set_ or [])
    out_dir = out or Path("runs") / plan.name
    if dry_run:
        info = plan.to_dict()
        iterated = plan.iterated_input
        info["items"] = [str(p) for p in iterated.items()] if iterated else []
        info["out"] = str(out_dir)
        if json_:
            output.json(info)
        else:
            output.text(f"[bold]{plan.name}[/]: {plan.description}")
            output.table(None, ["step", "component", "in", "with", "dir"],
                         [[s.id, s.component.ref, ", ".join(f"{k}←{v}" for k, v in s.wiring.items()),
                           ", ".join(f"{k}={v!r}" for k, v in s.params.items()), s.dir] for s in plan.steps])
            output.text(f"{len(info['items'])} item(s) → {out_dir}")
        return
    if address and executor is None:
        raise UsageError("--address names a dask or Ray cluster", hint="Add --executor dask or --executor ray.")
    for note in plan.notices:  # said once, before any item runs (also in --json and the manifest)
        output.note(f"[yellow]note:[/] {note}")
    # Progress goes to stderr (a bar on a terminal, plain lines otherwise), so --json stays clean.
    summary = run_plan(plan, RunOptions(out_dir, resume=resume, workers=workers, executor=executor,
                                        address=address, retries=retries, overwrite=overwrite,
                                        progress=not quiet))
    if json_:
        output.json(summary.to_dict())
    elif not quiet:
        if summary.recomputed:
            reasons = sorted({r["reason"] for r in summary.recomputed})
            output.note(f"{len(summary.recomputed)} item(s) recomputed because {'; '.join(reasons)} "
                        "(details in manifest.json)")
        skipped = f", {summary.skipped} already done" if summary.skipped else ""
        skipped += f", {summary.filtered} filtered out (see manifest.json)" if summary.filtered else ""
        colour = "green" if not summary.failures else "yellow"
        output.text(f"[{colour}]{summary.succeeded}/{summary.items} item(s) finished[/]{skipped} in "
                    f"{summary.seconds:.1f} s → {summary.out}")
        if summary.failures:
            hints = any(f.get("hint") for f in summary.failures)
            output.table(f"{len(summary.failures)} failure(s) (also in {summary.out / 'failures.json'})",
                         ["item", "step", "reason", *(["what to do"] if hints else [])],
                         [[f["item"], f["step"], f["error"], *([f.get("hint", "")] if hints else [])]
                          for f in summary.failures[:50]])
    code = summary.exit_code
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


@app.command()
def doctor(json_: JsonOpt = False) -> None:
    """Python, torch, device, renderer backend (and why), optional libraries, model assets, broken plugins."""
    from fk.cli.doctor import collect, show

    report = collect(_pm())
    if json_:
        Output(True).json(report)
    else:
        show(report, Output())


_mounted_for: object = None  # the plugin manager whose commands are mounted


def _mount_extensions() -> None:
    """Core's `fk models` sub-app, then every plugin's `fk_cli` additions; once per plugin manager (a run
    forked from the warm server, fk.serve, finds them mounted: 0.09 s)."""
    global _mounted_for
    pm = _pm()
    if _mounted_for is pm:
        return
    _mounted_for = pm
    try:
        from fk.cli.models import app as models_app

        app.add_typer(models_app, name="models")
    except ImportError:
        pass
    try:
        pm.add_cli_commands(app)
    except FkError as exc:
        print_error(str(exc), exc.hint)


def _wants_json(argv: list[str] | None) -> bool:
    args = list(sys.argv[1:] if argv is None else argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(json_mode: bool, message: str, hint: str | None, code: int, kind: str, **extra: object) -> int:
    """One error: a line (and hint) on stderr; with --json also the one JSON document on stdout."""
    print_error(message, hint)
    if json_mode and not Output.printed_json:
        Output(True).json({"ok": False, "error": {"type": kind, "message": message, "hint": hint,
                                                  "exit_code": int(code), **extra}})
    return int(code)


def _missing_command(argv: list[str] | None) -> tuple[str, str] | None:
    """``fk datasets`` with fk-plugin-datasets absent: (message, hint), else None."""
    from fk.plugins import FIRST_PARTY_COMMANDS, install_hint

    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    dist = FIRST_PARTY_COMMANDS.get(args[0]) if args else None
    if dist is None:
        return None
    return (f"`fk {args[0]}` is provided by {dist}, which is not installed "
            "(or failed to load: fk plugins list)",
            install_hint(dist))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fk`` script: maps known errors to one line and an exit code."""
    json_mode = _wants_json(argv)
    Output.printed_json = False
    try:
        _mount_extensions()
        rc = app(args=argv, prog_name="fk", standalone_mode=False)
        return int(rc) if isinstance(rc, int) else int(ExitCode.OK)
    except FkError as exc:
        if os.environ.get("FK_DEBUG"):
            print_error(str(exc), exc.hint)
            raise
        extra = {"problems": exc.problems} if getattr(exc, "problems", None) else {}
        return _fail(json_mode, str(exc), exc.hint, exc.exit_code, type(exc).__name__, **extra)
    except KeyboardInterrupt:
        return _fail(json_mode, "interrupted", "Rerun with --resume to continue where it stopped.",
                     ExitCode.INTERRUPTED, "Interrupted")
    except OSError as exc:
        # A full disk or a read-only/forbidden folder while writing: one line naming the path.
        if os.environ.get("FK_DEBUG"):
            raise
        where = exc.filename or "a file"
        return _fail(json_mode, f"cannot write {where}: {exc.strerror or exc}", _os_hint(exc),
                     ExitCode.STEP_FAILED, "OSError", errno=exc.errno, path=exc.filename)
    except Exception as exc:  # noqa: BLE001
        # typer vendors click (typer._click): match its exceptions by class name, subclasses included.
        if _is(exc, "NoArgsIsHelpError"):  # a bare group (`fk`, `fk plugins`): print its help, rc 0
            ctx = getattr(exc, "ctx", None)
            typer.echo(ctx.get_help() if ctx is not None else str(exc))
            return int(ExitCode.OK)
        if _is(exc, "Exit"):  # typer.Exit(code)
            return int(getattr(exc, "exit_code", 0) or 0)
        if _is(exc, "Abort"):
            return _fail(json_mode, "aborted", None, ExitCode.INTERRUPTED, "Abort")
        if _is(exc, "NoSuchCommand") or (_is(exc, "UsageError") and "No such command" in str(exc)):
            missing = _missing_command(argv)
            if missing:
                return _fail(json_mode, missing[0], missing[1], ExitCode.MISSING, "MissingPlugin")
        if _is(exc, "ClickException"):
            return _click_usage(json_mode, exc)
        if os.environ.get("FK_DEBUG"):
            raise
        name = type(exc).__name__
        return _fail(json_mode, f"internal error: {name}: {exc}",
                     "Set FK_DEBUG=1 for the full traceback, and report it.", ExitCode.STEP_FAILED, name)


def _is(exc: BaseException, class_name: str) -> bool:
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _os_hint(exc: OSError) -> str:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "The disk is full: free space (or choose another --out) and rerun with --resume."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "fk may not write there: fix the folder's permissions or choose another --out, then --resume."
    return "Check that path, then rerun (with --resume for fk run)."


def _click_usage(json_mode: bool, exc: object) -> int:
    code = int(getattr(exc, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)
    if json_mode:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return _fail(json_mode, message, "fk --help lists the commands and options.", code,
                     type(exc).__name__)
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        print_error(str(exc))
    return code


def entry() -> None:
    import atexit
    import gc

    # Registered first, so it runs last of the exit handlers (Ray's, dask's, multiprocessing's still
    # run, and files are still flushed): the interpreter's final garbage collection then skips the
    # objects alive now instead of walking torch's, numba's and sympy's module graphs, which took
    # 1.2-1.4 s of a 1.6 s exit after `import torch` on the 2-core machine (bench/bench_demo.py).
    atexit.register(gc.freeze)
    sys.exit(main())


if __name__ == "__main__":
    entry()
