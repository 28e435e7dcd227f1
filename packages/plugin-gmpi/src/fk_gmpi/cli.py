"""``fk gmpi``: GMPI's data preparation, generation from a checkpoint, and the photo MPI demo.

    fk gmpi prepare-ffhq --zip ffhq256x256.zip --out DIR
    fk gmpi prepare-metfaces --data-dir metfaces1024x1024_xflip --out DIR [--xflip]
    fk gmpi generate --ckpt CKPT --seeds 0-7 [--truncation 0.7] [--trajectory sphere|yaw] [--frames 60] --out DIR
    fk gmpi mpi-from-photo [--photo PATH] [--out DIR]

Heavy imports live inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="GMPI: data preparation, generation, and the photo MPI demo.", no_args_is_help=True)


def demo_recipe() -> Path:
    """The bundled recipe behind ``mpi-from-photo`` (package data)."""
    return Path(__file__).parent / "recipes" / "gmpi_demo.yaml"


@app.command("mpi-from-photo")
def mpi_from_photo(
    photo: Optional[str] = typer.Option(None, help="a photo or folder (default: builtin:astronaut)"),  # noqa: UP007
    out: Path = typer.Option(Path("runs/gmpi_demo"), help="output folder"),
    planes: int = typer.Option(32, help="MPI planes"),
    frames: int = typer.Option(30, help="novel views"),
    trajectory: str = typer.Option("sphere", help="sphere, yaw or pitch"),
    size: int = typer.Option(256, help="texture and view side in pixels"),
    iterations: int = typer.Option(20, help="face-fit iterations"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="recipe override k=v (repeatable)"),  # noqa: UP007
) -> None:
    """Photo -> fk's face fit -> depth -> MPI (alpha from depth) -> novel views, video and page (no weights)."""
    from fk.engine.runner import RunOptions, run_plan
    from fk.errors import ExitCode
    from fk.recipe import load_recipe

    overrides = [f"mpi.planes={planes}", f"mpi.frames={frames}", f"mpi.trajectory={trajectory}",
                 f"mpi.size={size}", f"fit.iterations={iterations}"]
    if photo:
        overrides.append(f"inputs.photos={photo}")
    plan = load_recipe(demo_recipe(), overrides + list(set_ or []))
    summary = run_plan(plan, RunOptions(out, progress=sys.stderr.isatty()))
    typer.echo(f"{summary.succeeded}/{summary.items} item(s) -> {summary.out / 'index.html'}")
    if summary.exit_code != ExitCode.OK:
        raise typer.Exit(int(summary.exit_code))
