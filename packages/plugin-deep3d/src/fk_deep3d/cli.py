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
    epochs: int = typer.Option(20),
    batch_size: int = typer.Option(32, help="global batch; under torchrun each process takes batch/N"),
    lr: float = typer.Option(1e-4),
    max_steps: int = typer.Option(0, help="stop after this many steps (0: run all epochs)"),
    resume: bool = typer.Option(True, help="continue from the newest epoch_N.pth in --out"),
    device: str = typer.Option("cpu"), renderer: str = typer.Option("auto"),
    init: Path = typer.Option(None, help="start from this whole R-Net checkpoint"),
    init_path: str = typer.Option("auto", help="ImageNet ResNet-50 for the backbone (torchvision's "
                                  "resnet50-0676ba61.pth): auto (the deep3d/ asset when present), a path, or none"),
    arcface: Path = typer.Option(None, help="ArcFace r50 weights for the identity term "
                                 "(default: the deep3d/arcface_r50.pth asset; the term is off without it)"),
    augment: bool = typer.Option(True, help="Deep3D's shift/scale/rotate/flip augmentation"),
    seed: int = typer.Option(0), workers: int = typer.Option(0, help="data-loading worker processes"),
) -> None:
    """Train R-Net with Deep3D's losses. Several processes (GPUs or CPUs), one machine or many:
    torchrun --nproc_per_node=N -m fk_deep3d train DATA --out DIR (docs/scaling.md)."""
    import os

    from fk_deep3d.train import TrainConfig, train as run_train

    cfg = TrainConfig(data=data, out=out, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                      max_steps=max_steps, resume=resume, device=device, renderer=renderer, init=init,
                      init_path=init_path, arcface=arcface, augment=augment, seed=seed, workers=workers)
    result = run_train(cfg, progress=typer.echo)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"trained {result['steps']} steps; last loss {result['last_loss']:.4f}; {result['checkpoint']}")
