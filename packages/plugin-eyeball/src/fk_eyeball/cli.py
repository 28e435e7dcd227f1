"""``fk eyeball``: CoRA's Step-1 tools on fk's renderer (heavy imports inside the commands)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

app = typer.Typer(
    help="CoRA eyeballs: eye masks, eyeball landmarks, sphere fits, eyeball assets, hybrid-avatar "
    "training, a synthetic subject and a demo.",
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


def _eye_from_name(path: Path, eye: str | None) -> str:
    if eye:
        if eye not in ("left", "right"):
            raise typer.BadParameter("--eye must be left or right")
        return eye
    if "leye" in path.name:
        return "left"
    if "reye" in path.name:
        return "right"
    raise typer.BadParameter(f"cannot tell the eye from {path.name}; pass --eye left|right")


@app.command("uv-landmarks")
def uv_landmarks_cmd(
    ldm_img: Path = typer.Option(
        ..., "--ldm-img", help="diffuse_{l,r}eye_landmark.png: landmarks painted 0/255/0"
    ),
    coord: Path = typer.Option(..., "--coord", help="coord.npy or upstream's coord.pkl of the same export"),
    write_config: Path = typer.Option(
        None, "--write-config", help="config.yaml to update (data.<eye>_eye_ldm)"
    ),
    eye: str = typer.Option(
        None, "--eye", help="left (CoRA's leye, image-left) or right; default from the file name"
    ),
    expect: int = typer.Option(
        4, help="landmarks expected (0: any); a different count warns, and refuses --write-config"
    ),
) -> None:
    """Lift painted UV landmarks to 3D and print (or write) CoRA's config block."""
    from fk.errors import InputError

    from fk_eyeball.uv_landmarks import uv_landmarks, write_config_key, yaml_block

    points, rc = uv_landmarks(ldm_img, coord)
    known = eye or "leye" in ldm_img.name or "reye" in ldm_img.name
    side = _eye_from_name(ldm_img, eye) if known or write_config else "left"
    key = f"{side}_eye_ldm"
    if expect and len(points) != expect:
        msg = f"{ldm_img}: found {len(points)} green blobs, expected {expect}"
        if write_config:
            raise InputError(msg, hint="fix the painting, or pass --expect N to accept another count")
        warn(msg)
    typer.echo(
        f"# {len(points)} landmarks from {ldm_img.name} (blob centroids, texel row/col: "
        + ", ".join(f"({r:.1f}, {c:.1f})" for r, c in rc)
        + ")"
    )
    typer.echo(yaml_block(key, points), nl=False)
    if write_config:
        write_config_key(write_config, key, points)
        typer.echo(f"# wrote data.{key} to {write_config}")


@app.command("auto-eye-masks")
def auto_eye_masks_cmd(
    data_root: Path = typer.Option(..., "--data-root"),
    meta: str = typer.Option(None, help="camera file (default transforms.json)"),
    out: Path = typer.Option(None, "--out", help="where leye_mask/ and reye_mask/ go (default: --data-root)"),
    dilate: float = typer.Option(2.0, help="grow the eye-contour polygons by this many pixels"),
    detector: str = typer.Option("detect:dlib", help="any 68-point detect:* component (fk components list)"),
    method: str = typer.Option("auto", help="auto (bisenet when 79999_iter.pth is there), bisenet or landmarks"),
    weights: Path = typer.Option(None, help="79999_iter.pth (default: the eyeball/79999_iter.pth asset)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Per-frame eye masks: BiSeNet as CoRA's AutoEyeMask when its weights exist, else 68-point eye contours."""
    from fk_eyeball.auto import auto_eye_masks

    with progress("auto masks") as bar:
        s = auto_eye_masks(data_root, meta=meta, out=out, dilate_px=dilate, detector=detector, method=method,
                           weights=weights, device=device, progress=bar)  # fmt: skip
    if s["no_face"]:
        warn(
            f"no face in {len(s['no_face'])} frame(s): {', '.join(s['no_face'][:8])} (no mask written; CoRA loads zeros)"
        )
    typer.echo(
        f"{s['detector'].removeprefix('detect:')}: wrote leye_mask/ and reye_mask/ for {s['frames'] - len(s['no_face'])} of {s['frames']} frames to {s['out']}"
    )


@app.command("landmarks-2d")
def landmarks_2d_cmd(
    data_root: Path = typer.Option(..., "--data-root"),
    meta: str = typer.Option(None),
    frames: str = typer.Option(
        None, help="comma-separated frame names (default: near-frontal frames from the poses)"
    ),
    max_angle: float = typer.Option(
        25.0, help="near-frontal: optical axis within this many degrees of the mean"
    ),
    detector: str = typer.Option("detect:dlib"),
) -> None:
    """68 landmarks on near-frontal frames -> 2d_eyeball_landmarks.json and vis_landmarks/ overlays."""
    from fk_eyeball.auto import detect_2d_landmarks

    with progress("landmarks") as bar:
        s = detect_2d_landmarks(data_root, meta=meta, frames=frames.split(",") if frames else None,
                                max_angle_deg=max_angle, detector=detector, progress=bar)  # fmt: skip
    if s["no_face"]:
        warn(f"no face in {', '.join(s['no_face'])}")
    typer.echo(
        f"landmarks in {len(s['found'])} of {len(s['frames'])} near-frontal frames: {', '.join(s['found'])}"
    )


@app.command("landmarks-3d")
def landmarks_3d_cmd(
    data_root: Path = typer.Option(..., "--data-root"),
    meta: str = typer.Option(None),
    write_config: Path = typer.Option(
        None, "--write-config", help="config.yaml to update (left/right_eye_ldm)"
    ),
) -> None:
    """Triangulate landmarks 36-47 over the views in vis_landmarks/ (closed form, outliers dropped)."""
    from fk_eyeball.auto import triangulate_eye_landmarks
    from fk_eyeball.uv_landmarks import write_config_key, yaml_block

    r = triangulate_eye_landmarks(data_root, meta=meta)
    typer.echo(
        f"# {len(r['views'])} views; reprojection RMS per landmark (px): "
        + " ".join(f"{e:.2f}" for e in r["rms_px"])
    )
    typer.echo(
        yaml_block("left_eye_ldm", r["leye"]) + yaml_block("right_eye_ldm", r["reye"])[len("data:\n") :],
        nl=False,
    )
    if write_config:
        write_config_key(write_config, "left_eye_ldm", r["leye"])
        write_config_key(write_config, "right_eye_ldm", r["reye"])
        typer.echo(f"# wrote data.left_eye_ldm and data.right_eye_ldm to {write_config}")


def _config_landmarks(config: Path) -> tuple[dict, dict]:
    import yaml
    from fk.errors import InputError

    try:
        cfg = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{config}: cannot read config ({exc})") from None
    data = cfg.get("data") or {}
    pts = {}
    for eye, key in (("leye", "left_eye_ldm"), ("reye", "right_eye_ldm")):
        if not data.get(key):
            raise InputError(
                f"{config}: data.{key} is missing",
                hint="run `fk eyeball uv-landmarks --write-config` or `landmarks-3d --write-config`",
            )
        pts[eye] = data[key]
    return cfg, pts


@app.command("fit-spheres")
def fit_spheres_cmd(
    config: Path = typer.Option(..., "--config", help="config.yaml with data.left_eye_ldm / right_eye_ldm"),
    radius: float = typer.Option(None, help="fix the shared radius (world units)"),
    write_config: bool = typer.Option(
        False, "--write-config", help="write eyeball_{left,right}_center (/bound)"
    ),
) -> None:
    """Fit one sphere per eye with a shared radius to the config's eyeball landmarks."""
    import numpy as np

    from fk_eyeball.triangulate import fit_spheres
    from fk_eyeball.uv_landmarks import write_config_key

    cfg, pts = _config_landmarks(config)
    data = cfg.get("data") or {}
    bounds = (data["eyeball_min_size"], data["eyeball_max_size"]) if "eyeball_min_size" in data else None
    centres, r, resid = fit_spheres(pts, radius=radius, radius_bounds=bounds)
    bound = float(data.get("bound", 1.0))
    for eye, key in (("leye", "left"), ("reye", "right")):
        typer.echo(
            f"{key}: centre {np.round(centres[eye], 6).tolist()} (config units /bound: "
            f"{np.round(centres[eye] / bound, 6).tolist()}), residual RMS {np.sqrt(np.mean(resid[eye] ** 2)):.3g}"
        )
    typer.echo(f"shared radius {r:.6g}")
    if write_config:
        write_config_key(config, "eyeball_left_center", centres["leye"] / bound)
        write_config_key(config, "eyeball_right_center", centres["reye"] / bound)
        typer.echo(f"# wrote data.eyeball_left_center / eyeball_right_center (world / bound) to {config}")


@app.command("export-eyeballs")
def export_eyeballs_cmd(
    data_root: Path = typer.Option(..., "--data-root", help="subject folder (cameras, images, eye masks)"),
    config: Path = typer.Option(..., "--config", help="config.yaml with the eyeball landmarks"),
    out: Path = typer.Option(..., "--out", help="export folder: right/ (leye) and left/ (reye)"),
    meta: str = typer.Option(None),
) -> None:
    """CoRA's eyeball export (§10.2) from fitted spheres, textured by projecting the photos."""
    from fk_eyeball.dataset import load_subject
    from fk_eyeball.export import photo_albedo, write_eyeballs
    from fk_eyeball.triangulate import fit_spheres

    _, pts = _config_landmarks(config)
    subject = load_subject(data_root, meta)
    centres, r, _ = fit_spheres(pts)
    written = write_eyeballs(out, centres, r, subject.cam2world, subject.K, subject.size,
                             lambda eye, p: photo_albedo(subject, eye, centres[eye], p))  # fmt: skip
    for eye, s in written.items():
        typer.echo(f"{eye} -> {s['dir']}: {s['faces']} faces")


@app.command("export")
def export_cmd(
    ckpt: Path = typer.Option(..., "--ckpt", help="checkpoint written by `fk eyeball train`"),
    out: Path = typer.Option(..., "--out", help="export folder (CoRA's names; right/ and left/ eyeballs)"),
    uv_size: int = typer.Option(4096, "--uv-size", help="side of the UV maps and coord.pkl (CoRA: 4096)"),
    grid: int = typer.Option(256, "--grid", help="marching-cubes lattice per axis (CoRA: 256)"),
    decimation: float = typer.Option(0.5, help="share of the faces quadric decimation removes (CoRA: 0.5)"),
    fill_gutters: bool = typer.Option(
        False, "--fill-gutters", help="fk option: texels off the UV islands copy the nearest island texel "
        "(CoRA: the material at the world origin)"
    ),
    preview: bool = typer.Option(True, help="render the relit preview (preview/index.html)"),
    data_root: Path = typer.Option(
        None, "--data-root",
        help="subject folder whose cameras trim the eyeball caps (default: the config.yaml beside --ckpt)",
    ),
) -> None:
    """CoRA's relightable export (§10): head mesh + UV maps, eyeballs, GLB and a relit preview."""
    from fk.errors import InputError

    from fk_eyeball.export_avatar import export_avatar

    if not ckpt.is_file():
        raise InputError(
            f"{ckpt}: no such checkpoint file",
            hint="pass a checkpoint that `fk eyeball train` wrote (--ckpt)",
        )
    try:
        from fk_eyeball.avatar import load_avatar
    except ImportError:
        raise InputError(
            f"{ckpt}: this fk has no hybrid-avatar model to load it (fk_eyeball.avatar is missing)",
            hint="update fk-plugin-eyeball",
        ) from None
    avatar = load_avatar(ckpt)
    cameras = _capture_cameras(ckpt, data_root)
    with progress("bake") as bar:
        r = export_avatar(avatar, out, uv_size=uv_size, grid=grid, decimation=decimation, fill_gutters=fill_gutters,
                          cameras=cameras, preview=preview, log=lambda m: typer.echo(m, err=True),
                          progress=lambda _label: bar)  # fmt: skip
    typer.echo(
        f"wrote {out}: head {r.vertices} vertices / {r.faces} faces, {uv_size}² maps "
        f"({100 * r.uv_coverage:.0f}% of texels on the UV islands), "
        + ("right/ and left/ eyeballs, " if r.eyeballs else "no eyeballs (Step-1 model), ")
        + "avatar.glb"
        + (f", preview {out / 'preview' / 'index.html'}" if preview else "")
    )


def _capture_cameras(ckpt: Path, data_root: Path | None):
    """``(cam2world, K, (h, w))`` of the capture, for CoRA's eyeball trimming: ``--data-root``, else the
    ``data.meta_path`` of the ``config.yaml`` that ``fk eyeball train`` writes beside its checkpoints; None
    (one camera facing the eyes) with a warning when neither is there."""
    import yaml

    from fk_eyeball.dataset import load_subject

    meta = None
    if data_root is None:
        try:
            cfg = yaml.safe_load((ckpt.parent / "config.yaml").read_text()) or {}
            meta = Path((cfg.get("data") or {})["meta_path"])
            data_root = meta.parent
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            warn(f"no --data-root and no readable config.yaml beside {ckpt}: the eyeball caps are trimmed "
                 "for one camera facing the eyes, not for the capture's views")  # fmt: skip
            return None
    s = load_subject(data_root, meta.name if meta is not None else None)
    return s.cam2world, s.K, s.size


@app.command()
def train(
    config: Path = typer.Option(..., "--config", help="CoRA's config.yaml (config_wo-hybrid.yaml for Step 1)"),
    out: Path = typer.Option(..., "--out", help="folder for checkpoints, losses.jsonl and validation PNGs"),
    device: str = typer.Option("cpu", help="torch device: cpu, cuda, cuda:1 ..."),
    resume: bool = typer.Option(False, "--resume", help="continue from --out/latest.pth (same step and RNG)"),
    max_steps: int = typer.Option(None, "--max-steps", help="override train.max_steps"),
    threads: int = typer.Option(
        0, "--threads", help="torch CPU threads (0: torch's default; 1 is far faster on a busy machine)"
    ),
    accelerator: str = typer.Option(
        None, "--accelerator", help="auto|torch|tcnn (overrides train.accelerator; tcnn: tiny-cuda-nn and "
        "nerfacc 0.3.1 on CUDA, as CoRA; auto: each when importable on CUDA, else fk's torch code)",
    ),
) -> None:
    """Train CoRA's hybrid avatar (head SDF + eyeball spheres + materials) on a subject folder."""
    import torch

    from fk_eyeball.train import Trainer

    if threads > 0:
        torch.set_num_threads(threads)

    trainer = Trainer(config, out, device=device, resume=resume, log=lambda m: typer.echo(m, err=True),
                      accelerator=accelerator)  # fmt: skip
    if max_steps is not None:
        trainer.cfg["train"]["max_steps"] = max_steps
    with progress("train") as bar:
        summary = trainer.run(progress=bar)
    last = summary["last"]
    line = f"trained {summary['steps']} steps in {summary['seconds']:.1f} s to step {trainer.step}"
    if last:
        line += f" (loss {last['loss']:.4g}"
        if "val" in last:
            line += ", val PSNR " + ", ".join(f"{v['psnr']:.2f}" for v in last["val"]) + " dB"
        line += ")"
    typer.echo(f"{line}; checkpoint {summary['checkpoint']}")


@app.command()
def demo(
    out: Path = typer.Option(
        Path("runs/eyeball-demo"), "--out", help="folder for the subject, outputs and index.html"
    ),
    scale: float = typer.Option(0.5, help="frame size as a fraction of 720x960"),
    frames: int = typer.Option(24),
    auto: bool = typer.Option(True, help="also run the automatic path (dlib on every frame: slower)"),
) -> None:
    """Run every tool on a synthetic subject and report the errors against the truth (index.html)."""
    from fk_eyeball.demo import run_demo

    report = run_demo(out, scale=scale, n_frames=frames, auto=auto, log=lambda m: typer.echo(m, err=True))
    for line in report["lines"]:
        typer.echo(line)
    typer.echo(f"page: {report['page']}")


@app.command()
def inspect(
    data_root: Path = typer.Option(..., "--data-root", help="a CoRA subject folder"),
    meta: str = typer.Option(None, help="camera file (default transforms.json, else transforms_aligned.json)"),
) -> None:
    """Check a subject folder: cameras, every per-frame PNG's size, and the files CoRA would replace by zeros."""
    from fk_eyeball.dataset import load_subject

    s = load_subject(data_root, meta, check_sizes=True)
    h, w = s.size
    typer.echo(f"{len(s.frames)} frames of {w}x{h} in {s.meta_path.name} (focal {s.K[0, 0]:.1f} px); every PNG has "
               "the cameras' size")
    if s.warning():
        warn(s.warning())
