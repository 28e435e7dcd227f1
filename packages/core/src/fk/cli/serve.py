"""``fk serve start|stop|status``: the warm server that ``fk run`` uses when it runs (:mod:`fk.serve`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fk.cli.output import Output
from fk.errors import ExitCode, FkError, UsageError

app = typer.Typer(help="A warm fk process: `fk run` skips the imports and model loads (Linux).",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
START_TIMEOUT_S = 300.0


def _describe(info: dict) -> list[list[str]]:
    return [["pid", str(info["pid"])], ["socket", info["socket"]],
            ["up", f"{time.time() - info['started']:.0f} s"],
            ["warmed", ", ".join(info["warmed"]) or "nothing"],
            ["runs served", str(info["served"])], ["running now", str(info["running"])],
            ["stops when idle for", f"{info['idle_s'] / 60:g} min"], ["python", info["python"]],
            ["CUDA context (serves nothing)", "yes" if info.get("cuda_context") else "no"]]


@app.command()
def start(
    recipes: Annotated[Optional[list[Path]], typer.Argument(  # noqa: UP007, UP045 - typer needs Optional here
        help="Recipes whose steps to warm (models loaded, kernels compiled): recipes/demo.yaml.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(  # noqa: UP007, UP045
        "--set", help="Override a recipe value, as in `fk run` (other values warm after their first run).",
    )] = None,
    idle_minutes: Annotated[float, typer.Option("--idle-minutes", min=0.1,
                                                help="Stop after this long with no run.")] = 60.0,
    json_: JsonOpt = False,
) -> None:
    """Start the server in the background and wait until it is warm: `fk run` then uses it (same outputs,
    no start-up cost). After a served run it also warms that run's recipe for the next one (up to 8).
    FK_NO_SERVER=1 runs without it; `fk serve stop` stops it."""
    from fk import serve
    from fk.recipe import load_recipe

    out = Output(json_)
    if not sys.platform.startswith("linux"):
        raise FkError("fk serve needs Linux (it forks a warm process, passing terminals over a Unix socket)",
                      hint="Run `fk run` directly; it does the same work, with its start-up cost.")
    running = serve.request({"status": True})
    if running is not None:
        raise UsageError(f"an fk server is already running (pid {running['pid']}, {running['socket']})",
                         hint="`fk serve stop` first to start one with other recipes.")
    paths = [Path(r).resolve() for r in recipes or []]
    for path in paths:  # a bad recipe fails here, with its one-line error, not in the background
        load_recipe(path, set_ or [])
    log = serve.serve_dir() / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(log.parent, 0o700)
    args = [*map(str, paths), *(f"--set={s}" for s in set_ or []), f"--idle-minutes={idle_minutes:g}"]
    env = {k: v for k, v in os.environ.items() if k != serve.SERVED_ENV}
    import subprocess

    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-P", "-m", "fk.serve", *args], stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    what = f"warming the fk server (pid {proc.pid}): imports, models, compiled kernels; log {log}"
    if json_ or not sys.stderr.isatty():  # one plain line off a terminal (the first run compiles: minutes)
        waiting: Any = contextlib.nullcontext()
        if not json_:
            out.note(f"fk: {what}")
    else:
        waiting = out.err.status(what)
    info = None
    with waiting:
        while info is None:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty)"]
                raise FkError(f"the fk server stopped while warming (exit {proc.returncode}): {tail[0]}",
                              hint=f"The whole log is {log}.")
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                proc.terminate()
                raise FkError(f"the fk server did not get ready in {START_TIMEOUT_S:.0f} s",
                              hint=f"See {log}.")
            time.sleep(0.1)
            info = serve.request({"status": True})
    if json_:
        out.json({"ok": True, "seconds": round(time.perf_counter() - t0, 2), "log": str(log), **info})
        return
    warmed = ", ".join(info["warmed"]) or "nothing yet (each recipe is warmed after its first served run)"
    seconds = time.perf_counter() - t0
    out.text(f"[green]✓[/] fk server ready in {seconds:.1f} s (pid {info['pid']}), warmed: {warmed}")
    out.text(f"`fk run` now runs in it; `fk serve stop` stops it; log: {log}")
    if info.get("cuda_context"):
        out.note("[yellow]note:[/] warming made a CUDA context, which a forked run cannot use: every run "
                 "will run in its own process. Start the server with recipes that run on the CPU.")


@app.command()
def stop(json_: JsonOpt = False) -> None:
    """Stop the running server (runs it is serving are stopped as by SIGTERM: finished items are kept)."""
    from fk import serve

    info = serve.request({"stop": True})
    deadline = time.monotonic() + 40  # the server stops its runs (SIGTERM, 30 s at most), then leaves
    while info is not None and serve.socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # so `fk serve stop && fk serve start` finds none running
    if json_:
        Output(True).json({"ok": True, "stopped": info is not None, **(info or {})})
    elif info is None:
        Output().text("no fk server is running")
    else:
        Output().text(f"stopped the fk server (pid {info['pid']}, {info['served']} run(s) served)")


@app.command()
def status(json_: JsonOpt = False) -> None:
    """Whether a server is running, what it warmed and how many runs it served. Exit 1 when none runs."""
    from fk import serve

    info = serve.request({"status": True})
    if json_:
        Output(True).json({"ok": True, "running": info is not None, **(info or {})})
    elif info is None:
        Output().text(f"no fk server is running (socket {serve.socket_path()})")
    else:
        Output().table("fk server", ["", ""], _describe(info))
    if info is None:
        raise typer.Exit(int(ExitCode.STEP_FAILED))
