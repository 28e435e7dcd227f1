"""``fk uvfit``: run the bundled FFHQ-UV recipe on photos, hand results to Blender."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="FFHQ-UV fitting: textured heads with eyeballs from photos.", no_args_is_help=True)

RECIPE = Path(__file__).with_name("recipes") / "uvfit.yaml"
BLENDER_SCRIPT = Path(__file__).with_name("blender_script.py")


@app.command()
def fit(
    photos: Annotated[Path, typer.Argument(help="a photo or a folder of photos")],
    out: Annotated[Path, typer.Option("--out", help="output folder: one <out>/<photo>_<NN>/ per face")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="recipe override k=v (repeatable)")] = None,  # noqa: UP007
    resume: Annotated[bool, typer.Option("--resume", help="skip photos a previous run finished")] = False,
    json_: Annotated[bool, typer.Option("--json", help="print the run summary as JSON")] = False,
) -> None:
    """Run the bundled uvfit recipe (the same as `fk run recipes/uvfit.yaml --set inputs.photos=PHOTOS`)."""
    from fk.cli.main import run
    from fk.errors import InputError

    # checked here (builtin: inputs are the recipe's to resolve): its error would name the bundled recipe
    if not str(photos).startswith("builtin:") and not Path(photos).expanduser().exists():
        raise InputError(
            f"{photos}: no such photo or folder",
            hint="pass an existing photo or folder of photos: fk uvfit fit PHOTOS --out DIR",
        )

    run(
        RECIPE,
        set_=[f"inputs.photos={photos}", *(set_ or [])],
        out=out,
        resume=resume,
        dry_run=False,
        workers=1,
        json_=json_,
        quiet=False,
    )


def item_folders(folder: Path) -> list[Path]:
    """The uvfit output folders under ``folder`` (itself, or its children), absolute, no trailing slash."""
    root = Path(str(folder).rstrip("/\\") or str(folder)).expanduser().resolve()
    if (root / "stage3_mesh_id.obj").exists():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "stage3_mesh_id.obj").exists()) if root.is_dir() else []


def blender_command(item: Path, blender: str = "blender") -> list[str]:
    return [blender, "--background", "--python", str(BLENDER_SCRIPT), "--", str(item)]


@app.command()
def blender(
    folder: Annotated[Path, typer.Argument(help="a uvfit output folder (<out>/<item>) or the run folder")],
) -> None:
    """Write <item>/<item>.blend (head + eyeballs, materials assigned) with Blender in the background;
    without `blender` on PATH, print the exact command to run."""
    from fk.errors import InputError

    items = item_folders(folder)
    if not items:
        raise InputError(
            f"{folder}: no stage3_mesh_id.obj here or in its sub-folders",
            hint="pass the --out folder of `fk uvfit fit` or one of its <item> folders",
        )
    exe = shutil.which("blender")
    if exe is None:
        typer.echo("blender is not on PATH; run this for each folder (Blender 2.8+):", err=True)
        for item in items:
            typer.echo(shlex.join(blender_command(item)))
        raise typer.Exit(4)
    failed = 0
    for item in items:
        done = subprocess.run(blender_command(item, exe), capture_output=True, text=True)
        blend = item / f"{item.name}.blend"
        if done.returncode == 0 and blend.exists():
            typer.echo(f"wrote {blend}")
        else:
            failed += 1
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            typer.echo(f"{item}: blender failed (exit {done.returncode}): {tail[0]}", err=True)
    if failed:
        raise typer.Exit(5 if failed < len(items) else 1)
