"""``fk deep3d``: training-data preparation and R-Net training (heavy imports inside commands)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Deep3D: prepare training data and train R-Net.", no_args_is_help=True)


@app.command()
def prepare(
    images: Path = typer.Argument(..., help="folder of face photos"),
    out: Path = typer.Option(..., "--out", help="dataset folder: crops, masks, landmarks and list files"),
    val_fraction: float = typer.Option(0.05, help="share of images listed for validation"),
    upsample: int = typer.Option(1, help="dlib's upsampling when detecting"),
) -> None:
    """Detect 68 landmarks, align 224² crops, write skin masks and the train/val lists."""
    from fk_deep3d.train import prepare_dataset

    summary = prepare_dataset(images, out, val_fraction=val_fraction, upsample=upsample)
    typer.echo(f"{summary['train']} train and {summary['val']} val crops in {out} ({summary['skipped']} skipped)")


@app.command()
def train(
    data: Path = typer.Argument(..., help="folder written by `fk deep3d prepare`"),
    out: Path = typer.Option(Path("checkpoints/deep3d"), "--out", help="checkpoint folder (epoch_N.pth)"),
    model: str = typer.Option("auto", help="face model: auto, demo or bfm09"),
    epochs: int = typer.Option(20), batch_size: int = typer.Option(32), lr: float = typer.Option(1e-4),
    max_steps: int = typer.Option(0, help="stop after this many steps (0: run all epochs)"),
    resume: bool = typer.Option(True, help="continue from the newest epoch_N.pth in --out"),
    device: str = typer.Option("cpu"), renderer: str = typer.Option("auto"),
    init: Path = typer.Option(None, help="start from this R-Net checkpoint"),
) -> None:
    """Train R-Net with Deep3D's losses; for several GPUs: torchrun --nproc_per_node=N -m fk_deep3d train ..."""
    from fk_deep3d.train import TrainConfig, train as run_train

    cfg = TrainConfig(data=data, out=out, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                      max_steps=max_steps, resume=resume, device=device, renderer=renderer, init=init)
    result = run_train(cfg)
    typer.echo(f"trained {result['steps']} steps; last loss {result['last_loss']:.4f}; {result['checkpoint']}")
