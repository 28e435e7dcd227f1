"""``fk gmpi``: GMPI's data preparation, training, generation, evaluation, and the photo MPI demo.

    fk gmpi prepare-ffhq --zip ffhq256x256.zip --out DIR
    fk gmpi prepare-metfaces --data-dir metfaces1024x1024_xflip --out DIR [--xflip]
    fk gmpi generate --ckpt CKPT --seeds 0-7 [--truncation 0.7] [--trajectory yaw] [--frames 60] --out DIR
    fk gmpi mpi-from-photo [--photo PATH] [--out DIR]
    fk gmpi train [--config gmpi.yml] --dataset FFHQ256 --data-root DIR --out EXP [--resume]
    fk gmpi train --demo --out EXP
    torchrun --nproc_per_node=8 -m fk_gmpi train ... --device cuda
    fk gmpi eval --ckpt CKPT --dataset FFHQ256 --data-root ffhq256x256.zip --out DIR [--num-fake N]

Heavy imports live inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="GMPI: data preparation, training, generation, evaluation, and the photo MPI demo.",
                  no_args_is_help=True)


def demo_recipe() -> Path:
    """The bundled recipe behind ``mpi-from-photo`` (package data)."""
    return Path(__file__).parent / "recipes" / "gmpi_demo.yaml"


@app.command("mpi-from-photo")
def mpi_from_photo(
    photo: str | None = typer.Option(None, help="a photo or folder (default: builtin:astronaut)"),  # noqa: UP007
    out: Path = typer.Option(Path("runs/gmpi_demo"), help="output folder"),
    planes: int = typer.Option(32, help="MPI planes"),
    frames: int = typer.Option(30, help="novel views"),
    trajectory: str = typer.Option("sphere", help="sphere, yaw or pitch"),
    size: int = typer.Option(256, help="texture and view side in pixels"),
    iterations: int = typer.Option(20, help="face-fit iterations"),
    set_: list[str] | None = typer.Option(None, "--set", help="recipe override k=v (repeatable)"),  # noqa: UP007
) -> None:
    """Photo -> fk's face fit -> depth -> MPI (alpha from depth) -> novel views, video, page (no weights)."""
    from fk.engine.runner import RunOptions, run_plan
    from fk.errors import ExitCode
    from fk.recipe import load_recipe

    overrides = [
        f"mpi.planes={planes}",
        f"mpi.frames={frames}",
        f"mpi.trajectory={trajectory}",
        f"mpi.size={size}",
        f"fit.iterations={iterations}",
    ]
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
    typer.echo(
        f"{info['images']} image(s): {len(info['no_face'])} without a face (detections/fail_list.txt), "
        f"{len(info['coefficient_failures'])} coefficient failure(s); coefficients by {coeff} -> {out}"
    )


@app.command("prepare-ffhq")
def prepare_ffhq(
    zip_: Path = typer.Option(..., "--zip", help="StyleGAN2 dataset zip, e.g. ffhq256x256.zip"),
    out: Path = typer.Option(..., help="output folder (GMPI's mtcnn_ffhq_<R> and epoch_20_000000 layout)"),
    device: str = typer.Option("cpu", help="torch device for R-Net / the fit"),
    fit_iterations: int = typer.Option(40, help="iterations of the fallback fit (without epoch_20.pth)"),
    checkpoint: Path | None = typer.Option(None, help="R-Net epoch_20.pth (default: the deep3d asset)"),  # noqa: UP007
    skip_coeffs: bool = typer.Option(False, "--skip-coeffs", help="landmarks only"),
    detector: str = typer.Option(
        "auto", help="auto (detect:mtcnn if it loads, else detect:dlib), detect:mtcnn or detect:dlib"
    ),
) -> None:
    """MTCNN 5-point landmarks and Deep3D coefficients for every image of the zip, in GMPI's files."""
    from fk_gmpi.prepare import load_components
    from fk_gmpi.prepare import prepare_ffhq as run

    comps = load_components(device, fit_iterations, str(checkpoint) if checkpoint else None, detector,
                            coefficients=not skip_coeffs)
    info = run(zip_, out, comps, skip_coeffs=skip_coeffs)
    _report(info, out)
    if info["coefficient_failures"]:
        raise typer.Exit(5)


@app.command("prepare-metfaces")
def prepare_metfaces(
    data_dir: Path = typer.Option(..., help="MetFaces folder of *.png, e.g. metfaces1024x1024_xflip"),
    out: Path = typer.Option(..., help="output folder"),
    xflip: bool = typer.Option(
        False,
        "--xflip",
        help="also write <name>_xflip.png mirrors (into OUT/<folder>/) "
        "and detect on both, as GMPI's two passes",
    ),
    device: str = typer.Option("cpu", help="torch device for R-Net / the fit"),
    fit_iterations: int = typer.Option(40, help="iterations of the fallback fit (without epoch_20.pth)"),
    checkpoint: Path | None = typer.Option(None, help="R-Net epoch_20.pth (default: the deep3d asset)"),  # noqa: UP007
    skip_coeffs: bool = typer.Option(False, "--skip-coeffs", help="landmarks only"),
    detector: str = typer.Option(
        "auto", help="auto (detect:mtcnn if it loads, else detect:dlib), detect:mtcnn or detect:dlib"
    ),
) -> None:
    """MetFaces: optional mirrors, MTCNN landmarks and Deep3D coefficients, in GMPI's files."""
    from fk_gmpi.prepare import load_components
    from fk_gmpi.prepare import prepare_metfaces as run

    comps = load_components(device, fit_iterations, str(checkpoint) if checkpoint else None, detector,
                            coefficients=not skip_coeffs)
    info = run(data_dir, out, comps, xflip=xflip, skip_coeffs=skip_coeffs)
    _report(info, out)
    if info["coefficient_failures"]:
        raise typer.Exit(5)


def resolve_generator(ckpt: str, dataset: str | None, config: Path | None, planes: int | None, w_avg: str):
    """CKPT: a GMPI checkpoint folder, a StyleGAN2-ADA .pkl, or a dataset name (its pickle asset)."""
    from fk.errors import InputError

    from fk_gmpi.checkpoint import load_from_stylegan2_pickle, load_gmpi_checkpoint
    from fk_gmpi.plugin import STYLEGAN2_PICKLES, pickle_asset

    if ckpt in STYLEGAN2_PICKLES:
        from fk.assets import require_asset

        path = require_asset(pickle_asset(ckpt))  # exits 4 naming the file and where it goes
        return load_from_stylegan2_pickle(path, ckpt, config, planes)
    p = Path(ckpt)
    if p.is_dir():
        return load_gmpi_checkpoint(p, planes, w_avg=w_avg, config_path=config, dataset=dataset)
    if p.suffix == ".pkl" and p.exists():
        return load_from_stylegan2_pickle(p, dataset or "FFHQ256", config, planes)
    raise InputError(
        f"{ckpt}: not a GMPI checkpoint folder, a .pkl or one of {', '.join(STYLEGAN2_PICKLES)}",
        hint="a GMPI run folder holds config.pth and ema.pth",
    )


@app.command()
def generate(
    ckpt: str = typer.Option(
        ...,
        help="GMPI checkpoint folder (config.pth, ema.pth), a StyleGAN2 .pkl, or "
        "FFHQ256/FFHQ512/FFHQ1024/AFHQCat/MetFaces (the pickle asset, see fk doctor)",
    ),
    seeds: str = typer.Option("0-7", help="seeds, e.g. 0-7 or 1,5,9-10"),
    out: Path = typer.Option(..., help="output folder"),
    truncation: float = typer.Option(1.0, help="truncation psi (GMPI's evaluation: 1.0)"),
    trajectory: str = typer.Option("yaw", help="yaw (GMPI's horizontal sweep), pitch, or sphere (a loop)"),
    frames: int = typer.Option(60, help="views per seed"),
    planes: int | None = typer.Option(
        None, help="MPI planes (default: the config's n_gen_planes; paper: 96)"
    ),  # noqa: UP007
    size: int | None = typer.Option(None, help="view side in pixels (default: the generator's)"),  # noqa: UP007
    dataset: str | None = typer.Option(None, help="dataset for a .pkl or to override the config"),  # noqa: UP007
    config: Path | None = typer.Option(None, help="GMPI config (configs/gmpi.yml or config.pth)"),  # noqa: UP007
    noise: str = typer.Option("random", help="random (GMPI) or const"),
    w_avg: str = typer.Option(
        "gmpi", help="gmpi (zero, as GMPI's evaluation) or checkpoint (generator.pth's)"
    ),
    fps: int = typer.Option(15, help="video frame rate"),
    device: str = typer.Option("cpu", help="torch device"),
) -> None:
    """MPIs from a GMPI generator: frames, video, depth, planes and an HTML page per seed."""
    from fk.errors import UsageError

    from fk_gmpi.generate import GenerateOptions, parse_seeds
    from fk_gmpi.generate import generate as run
    from fk_gmpi.views import TRAJECTORIES

    if trajectory not in TRAJECTORIES:
        raise UsageError(f"--trajectory {trajectory!r}: one of {', '.join(TRAJECTORIES)}")
    if noise not in ("random", "const"):
        raise UsageError(f"--noise {noise!r}: random or const")
    seed_list = parse_seeds(seeds)
    if not seed_list:
        raise UsageError("--seeds names no seed", hint="e.g. 0-7")
    loaded = resolve_generator(ckpt, dataset, config, planes, w_avg)
    if loaded.generator.variant == "vanilla" and planes not in (None, loaded.generator.n_planes):
        n_fixed = loaded.generator.n_planes
        raise UsageError(f"--planes {planes}: the vanilla variant outputs exactly its {n_fixed}",
                         hint="drop --planes; the depth-conditioned variants take any count")
    for note in loaded.notes:
        typer.echo(f"note: {note}", err=True)
    summary = run(
        loaded,
        out,
        GenerateOptions(seed_list, truncation, trajectory, frames, planes, size, fps, noise, device),
    )
    typer.echo(f"{len(summary['seeds'])} seed(s) -> {out / 'index.html'}")


@app.command()
def train(
    config: Path | None = typer.Option(  # noqa: UP007
        None, help="GMPI's configs/gmpi.yml (default: its values; unknown keys are refused)"
    ),
    dataset: str | None = typer.Option(  # noqa: UP007
        None, help="FFHQ256, FFHQ512, FFHQ1024, AFHQCat or MetFaces (default: the config's)"
    ),
    data_root: Path | None = typer.Option(  # noqa: UP007
        None, help="GMPI's runtime_dataset folder (ffhq256x256.zip + ffhq256_deep3dface_coeffs/, ...)"
    ),
    out: Path = typer.Option(..., help="experiment folder (checkpoints/, samples/, train_log.jsonl)"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoints/fk_state.pth"),
    pickle: Path | None = typer.Option(  # noqa: UP007
        None, help="StyleGAN2-ADA snapshot to start from (default: the dataset's asset, see fk doctor)"
    ),
    demo: bool = typer.Option(
        False, "--demo", help="the embedded demo: fk's demo head at known poses, a tiny StyleGAN2 (CPU)"
    ),
    iterations: int | None = typer.Option(None, help="override total_iters (GMPI: 5001)"),  # noqa: UP007
    batch_size: int | None = typer.Option(  # noqa: UP007
        None, help="images per process (GMPI's per-GPU batch: 8 at 256², 4 at 512²/1024²)"
    ),
    sample_interval: int | None = typer.Option(None, help="override sample_interval (200)"),  # noqa: UP007
    save_interval: int | None = typer.Option(None, help="override model_save_interval (500)"),  # noqa: UP007
    noise_mode: str = typer.Option(
        "random", help="random (GMPI) or const (noise-free, exactly reproducible DDP)"
    ),
    device: str = typer.Option("cpu", help="cpu or cuda (under torchrun: one GPU per process)"),
    workers: int = typer.Option(0, help="data loader worker processes"),
) -> None:
    """Train GMPI from a StyleGAN2 pickle, as GMPI does (several GPUs: torchrun -m fk_gmpi train ...)."""
    from fk.errors import UsageError

    if noise_mode not in ("random", "const"):
        raise UsageError(f"--noise-mode {noise_mode!r}: random or const")
    if demo:
        from fk_gmpi.train_demo import run_demo

        info = run_demo(out, iterations, resume, say=lambda line: typer.echo(line, err=True))
        gap = f"{info['mean_image_gap_start']:.4f} -> {info['mean_image_gap_end']:.4f}"
        typer.echo(f"demo: {info['iterations']} iteration(s); mean-image gap {gap}; -> {info['page']}")
        return
    from fk_gmpi.train import TrainOptions
    from fk_gmpi.train import train as run
    from fk_gmpi.train_config import read_train_config

    settings = read_train_config(config, dataset)
    if data_root is None:
        raise UsageError("--data-root is required (GMPI's runtime_dataset folder)", hint="or use --demo")
    if pickle is None:
        from fk.assets import require_asset

        from fk_gmpi.plugin import pickle_asset

        pickle = require_asset(pickle_asset(settings.cfg.dataset))  # exits 4 naming the file and its place
    opts = TrainOptions(
        dataset=settings.cfg.dataset, data_root=data_root, out=out, pickle=pickle, resume=resume,
        device=device, total_iters=iterations, batch_size=batch_size, sample_interval=sample_interval,
        model_save_interval=save_interval, noise_mode=noise_mode, workers=workers,
    )
    info = run(settings, opts, say=lambda line: typer.echo(line, err=True))
    if info["rank"] == 0:
        typer.echo(f"trained {info['iterations']} iteration(s) -> {info['checkpoint']}")
@app.command("eval")
def eval_(
    ckpt: str = typer.Option(..., help="GMPI checkpoint folder (config.pth, ema.pth) or a StyleGAN2 .pkl"),
    dataset: str = typer.Option(..., help="FFHQ256, FFHQ512, FFHQ1024, AFHQCat or MetFaces"),
    out: Path = typer.Option(..., help="output folder (metrics.json, index.html, samples/, cache/)"),
    data_root: Path | None = typer.Option(  # noqa: UP007
        None, help="real images for FID/KID: the StyleGAN2 dataset zip or an image folder"
    ),
    metrics: str = typer.Option("fid,kid,identity,depth,pose", help="comma-separated subset"),
    num_fake: int = typer.Option(50000, help="generated images for FID/KID (GMPI: 50,000)"),
    num_real: int = typer.Option(50000, help="real images for FID/KID (GMPI: 50,000; MetFaces 2,048)"),
    num_pairs: int = typer.Option(1024, help="latents for identity, two views each (GMPI: 1,024)"),
    num_geometry: int = typer.Option(1024, help="renders for depth and pose (GMPI: 1,024)"),
    planes: int = typer.Option(96, help="MPI planes (GMPI's evaluation: 96)"),
    truncation: float = typer.Option(1.0, help="truncation psi (GMPI's evaluation: 1.0)"),
    seed: int = typer.Option(123, help="seed of the camera draws and the real-image order"),
    batch: int = typer.Option(1, help="latents per generator call (GMPI: 1; memory grows with planes)"),
    kid_subsets: int = typer.Option(100, help="KID subsets (torch-fidelity: 100)"),
    kid_subset_size: int = typer.Option(1000, help="KID subset size (torch-fidelity: 1000)"),
    fid_trace_sqrt: str = typer.Option(
        "scipy", help="scipy (sqrtm of S1 S2, as the standard FID) or eigh (fk's faster symmetric form)"
    ),
    inception: Path | None = typer.Option(  # noqa: UP007
        None, help="FID Inception weights (default: the inception/pt_inception-2015-12-05-6726825d.pth asset)"
    ),
    identity: str = typer.Option(
        "auto", help="auto (ArcFace if its weights are present, else dlib), arcface, dlib"
    ),
    arcface: Path | None = typer.Option(  # noqa: UP007
        None, help="ArcFace IResNet-50 weights (default: the deep3d/arcface_r50.pth asset)"
    ),
    fit_iterations: int = typer.Option(40, help="iterations of fk's fit when R-Net (epoch_20.pth) is absent"),
    deep3d_checkpoint: Path | None = typer.Option(  # noqa: UP007
        None, help="R-Net epoch_20.pth (default: the deep3d asset)"
    ),
    config: Path | None = typer.Option(None, help="GMPI config (configs/gmpi.yml or config.pth)"),  # noqa: UP007
    device: str = typer.Option("cpu", help="torch device"),
) -> None:
    """GMPI's metrics (FID, KID, identity, depth, pose) -> metrics.json and an HTML page with samples."""
    from fk.errors import UsageError

    from fk_gmpi.eval import DATASETS, EvalOptions, evaluate

    if dataset not in DATASETS:
        raise UsageError(f"--dataset {dataset!r}: one of {', '.join(DATASETS)}")
    if fid_trace_sqrt not in ("scipy", "eigh"):
        raise UsageError(f"--fid-trace-sqrt {fid_trace_sqrt!r}: scipy or eigh")
    if identity not in ("auto", "arcface", "dlib"):
        raise UsageError(f"--identity {identity!r}: auto, arcface or dlib")
    chosen = tuple(m.strip() for m in metrics.split(",") if m.strip())
    for name, value in (("--num-fake", num_fake), ("--num-real", num_real), ("--num-pairs", num_pairs),
                        ("--num-geometry", num_geometry), ("--batch", batch), ("--planes", planes)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    opts = EvalOptions(dataset=dataset, out=out, data_root=data_root, metrics=chosen, num_fake=num_fake,
                       num_real=num_real, num_pairs=num_pairs, num_geometry=num_geometry, planes=planes,
                       truncation=truncation, seed=seed, batch=batch, kid_subsets=kid_subsets,
                       kid_subset_size=kid_subset_size, fid_trace_sqrt=fid_trace_sqrt, inception=inception,
                       identity=identity, arcface=arcface, device=device, fit_iterations=fit_iterations,
                       deep3d_checkpoint=deep3d_checkpoint)
    loaded = resolve_generator(ckpt, dataset, config, planes, "gmpi")
    if loaded.generator.variant == "vanilla" and planes != loaded.generator.n_planes:
        opts.planes = loaded.generator.n_planes
        opts.notes.append(f"vanilla variant: its own {opts.planes} planes (GMPI evaluates it so too)")
    result = evaluate(loaded, opts)
    shown = []
    if "fid" in result:
        shown.append(f"FID {result['fid']:.3f}")
    if "kid" in result:
        shown.append(f"KID {result['kid']['mean']:.5f}")
    for key in ("identity", "depth", "pose"):
        if key in result and result[key]["mean"] is not None:
            shown.append(f"{key} {result[key]['mean']:.4f} (n={result[key]['count']})")
    for note in result["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{'; '.join(shown) or 'no metric'} -> {out / 'metrics.json'}, {out / 'index.html'}")
