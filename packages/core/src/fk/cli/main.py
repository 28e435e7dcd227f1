"""``fk``: run face pipelines from YAML recipes, and inspect plugins, components and models.

Exit codes (``fk.errors.ExitCode``): 0 ok · 1 a step failed · 2 usage error ·
3 invalid recipe · 4 missing plugin, asset or backend · 5 finished with item
failures (see failures.json) · 130 interrupted (rerun with --resume).
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


@plugins_app.command("list")
def plugins_list(json_: JsonOpt = False) -> None:
    """Every installed plugin, its distribution and version, what it provides per stage; broken ones too."""
    pm = _pm()
    plugins = pm.plugins()
    rows = [{"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
             "builtin": p.builtin, "provides": p.provides, "status": "ok"} for p in plugins]
    rows += [{"name": b.name, "distribution": b.distribution, "version": b.version, "module": None,
              "builtin": False, "provides": {}, "status": "broken", "error": b.error} for b in pm.broken]
    out = Output(json_)
    if json_:
        out.json(rows)
        return
    table_rows = []
    for r in rows:
        provides = "; ".join(f"{stage}: {', '.join(names)}" for stage, names in r["provides"].items()) or "-"
        if r["status"] == "broken":
            provides = f"[red]broken[/]: {r['error']}"
        table_rows.append([r["name"], r["distribution"], r["version"], provides])
    out.table("Plugins", ["name", "distribution", "version", "provides"], table_rows)


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
    resume: Annotated[bool, typer.Option("--resume", help="Skip items a previous run finished.")] = False,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Run a recipe over its inputs, item by item."""
    from fk.engine.runner import RunOptions, run_plan
    from fk.recipe import load_recipe

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
        from fk.errors import UsageError

        raise UsageError("--address names a dask or Ray cluster", hint="Add --executor dask or --executor ray.")
    for note in plan.notices:  # said once, before any item runs (also in --json and the manifest)
        output.note(f"[yellow]note:[/] {note}")
    summary = run_plan(plan, RunOptions(out_dir, resume=resume, workers=workers, executor=executor,
                                        address=address, retries=retries,
                                        progress=not (json_ or quiet) and sys.stderr.isatty()))
    if json_:
        output.json(summary.to_dict())
    elif not quiet:
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


def _mount_extensions() -> None:
    """Core's `fk models` sub-app, then every plugin's `fk_cli` additions."""
    try:
        from fk.cli.models import app as models_app

        app.add_typer(models_app, name="models")
    except ImportError:
        pass
    try:
        _pm().add_cli_commands(app)
    except FkError as exc:
        print_error(str(exc), exc.hint)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fk`` script: maps known errors to one line and an exit code."""
    try:
        _mount_extensions()
        rc = app(args=argv, prog_name="fk", standalone_mode=False)
        return int(rc) if isinstance(rc, int) else int(ExitCode.OK)
    except FkError as exc:
        print_error(str(exc), exc.hint)
        if os.environ.get("FK_DEBUG"):
            raise
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted", "Rerun with --resume to continue where it stopped.")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001
        name = type(exc).__name__
        if name == "Exit":  # typer.Exit(code)
            return int(getattr(exc, "exit_code", 0) or 0)
        if name in ("UsageError", "NoSuchOption", "BadParameter", "MissingParameter", "BadArgumentUsage",
                    "ClickException", "FileError", "BadOptionUsage"):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                print_error(str(exc))
            return int(getattr(exc, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)
        if name == "Abort":
            print_error("aborted")
            return int(ExitCode.INTERRUPTED)
        if os.environ.get("FK_DEBUG"):
            raise
        print_error(f"internal error: {name}: {exc}", "Set FK_DEBUG=1 for the full traceback, and report it.")
        return int(ExitCode.STEP_FAILED)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
