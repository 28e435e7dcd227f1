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


def _report(info: dict, out: Path) -> None:
    for note in info["notes"]:
        typer.echo(f"note: {note}", err=True)
    coeff = info["coefficients"] or "skipped"
    typer.echo(f"{info['images']} image(s): {len(info['no_face'])} without a face (detections/fail_list.txt), "
               f"{len(info['coefficient_failures'])} coefficient failure(s); coefficients by {coeff} -> {out}")


@app.command("prepare-ffhq")
def prepare_ffhq(
    zip_: Path = typer.Option(..., "--zip", help="StyleGAN2 dataset zip, e.g. ffhq256x256.zip"),
    out: Path = typer.Option(..., help="output folder (GMPI's mtcnn_ffhq_<R> and epoch_20_000000 layout)"),
    device: str = typer.Option("cpu", help="torch device for R-Net / the fit"),
    fit_iterations: int = typer.Option(40, help="iterations of the fallback fit (without epoch_20.pth)"),
    checkpoint: Optional[Path] = typer.Option(None, help="R-Net epoch_20.pth (default: the deep3d asset)"),  # noqa: UP007
    skip_coeffs: bool = typer.Option(False, "--skip-coeffs", help="landmarks only"),
) -> None:
    """MTCNN 5-point landmarks and Deep3D coefficients for every image of the zip, in GMPI's files."""
    from fk_gmpi.prepare import load_components
    from fk_gmpi.prepare import prepare_ffhq as run

    comps = load_components(device, fit_iterations, str(checkpoint) if checkpoint else None)
    info = run(zip_, out, comps, skip_coeffs=skip_coeffs)
    _report(info, out)
    if info["coefficient_failures"]:
        raise typer.Exit(5)


@app.command("prepare-metfaces")
def prepare_metfaces(
    data_dir: Path = typer.Option(..., help="MetFaces folder of *.png, e.g. metfaces1024x1024_xflip"),
    out: Path = typer.Option(..., help="output folder"),
    xflip: bool = typer.Option(False, "--xflip", help="also write <name>_xflip.png mirrors (into OUT/<folder>/) "
                               "and detect on both, as GMPI's two passes"),
    device: str = typer.Option("cpu", help="torch device for R-Net / the fit"),
    fit_iterations: int = typer.Option(40, help="iterations of the fallback fit (without epoch_20.pth)"),
    checkpoint: Optional[Path] = typer.Option(None, help="R-Net epoch_20.pth (default: the deep3d asset)"),  # noqa: UP007
    skip_coeffs: bool = typer.Option(False, "--skip-coeffs", help="landmarks only"),
) -> None:
    """MetFaces: optional mirrors, MTCNN landmarks and Deep3D coefficients, in GMPI's files."""
    from fk_gmpi.prepare import load_components
    from fk_gmpi.prepare import prepare_metfaces as run

    comps = load_components(device, fit_iterations, str(checkpoint) if checkpoint else None)
    info = run(data_dir, out, comps, xflip=xflip, skip_coeffs=skip_coeffs)
    _report(info, out)
    if info["coefficient_failures"]:
        raise typer.Exit(5)
