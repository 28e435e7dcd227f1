"""``fk eyeball``: CoRA's Step-1 tools on fk's renderer (heavy imports inside the commands)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

app = typer.Typer(
    help="CoRA eyeballs: eye masks, eyeball landmarks, sphere fits, eyeball assets, a synthetic "
    "subject and a demo.",
    no_args_is_help=True,
)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich bar on a TTY, plain ``label i/n`` lines (about every 10%) otherwise; on stderr."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn(f"[bold]{label:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task(label, total=None)

            def update(i: int, n: int) -> None:
                bar.update(task, completed=i, total=n)

            yield update
        return

    def plain(i: int, n: int) -> None:
        if i == n or i % max(1, n // 10) == 0:
            typer.echo(f"{label} {i}/{n}", err=True)

    yield plain


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="subject folder to write (CoRA's layout, answers in truth/)"),
    scale: float = typer.Option(0.5, help="frame size as a fraction of CoRA's 720x960"),
    frames: int = typer.Option(24, help="number of phone-like cameras"),
    uv_size: int = typer.Option(1024, help="side of coord.npy and the painted UV label images (CoRA: 4096)"),
) -> None:
    """Render a synthetic CoRA subject with two eyeballs at known centres (units: dm)."""
    from fk_eyeball.synth import write_subject

    with progress("synth") as bar:
        truth = write_subject(out, scale=scale, n_frames=frames, uv_size=uv_size, progress=bar)
    h, w = truth["size"]
    typer.echo(f"wrote {len(truth['frames'])} frames of {w}x{h} to {out} (answers in {out / 'truth'})")


@app.command("render-eye-masks")
def render_eye_masks_cmd(
    data_root: Path = typer.Option(..., "--data-root", help="subject folder with diffuse_{l,r}eye_mask.png"),
    mesh_uv: Path = typer.Option(..., "--mesh-uv", help="the Step-1 export mesh_uv.obj"),
    meta: str = typer.Option(
        None, help="camera file (default transforms.json, else transforms_aligned.json)"
    ),
    out: Path = typer.Option(None, "--out", help="where leye_mask/ and reye_mask/ go (default: --data-root)"),
    device: str = typer.Option("cpu", help="torch device: cpu, cuda, cuda:1 ..."),
    interpolation: str = typer.Option(
        "screen",
        help="UV interpolation: screen (upstream's pytorch3d default) or perspective (perspective-correct)",
    ),
) -> None:
    """Per-frame soft eye masks from painted UV masks (CoRA's render_uv_eye_mask.py)."""
    from fk_eyeball.masks import render_eye_masks

    with progress("eye masks") as bar:
        s = render_eye_masks(
            data_root, mesh_uv, meta=meta, out=out, device=device, interpolation=interpolation, progress=bar
        )
    if s["corner_white"]:
        warn(
            f"the bottom-left texel of diffuse_{s['corner_white'][0]}_mask.png is white: upstream would leak 0.25 "
            "into every background pixel; fk writes 0 there"
        )
    typer.echo(
        f"wrote leye_mask/ and reye_mask/ for {s['frames']} frames to {s['out']} (cameras: {s['meta']}; "
        f"mean eye area {s['mean_area_px'][0]:.0f} / {s['mean_area_px'][1]:.0f} px)"
    )
