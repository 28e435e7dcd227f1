"""``fk datasets``: review LPFF faces, merge them into FFHQ, rebalance and zip (heavy imports inside commands).

Typical order after ``fk run recipes/lpff.yaml --out LPFF``::

    fk datasets review LPFF                                   # accept/reject, writes LPFF/review/rejects.json
    fk datasets merge-eg3d --ffhq FFHQ_EG3D --lpff LPFF --out FFHQ_LPFF_EG3D
    fk datasets merge-stylegan --ffhq FFHQ_1024 --lpff LPFF --out FFHQ_LPFF_SG
    fk datasets rebalance --eg3d FFHQ_LPFF_EG3D --stylegan FFHQ_LPFF_SG --num-replicas num_replicas.json --work files
    fk datasets zip FFHQ_LPFF_EG3D --kind eg3d --dest ffhq_lpff_eg3d_512.zip
    fk datasets zip FFHQ_LPFF_SG --kind stylegan --dest ffhq_lpff_stylegan_1024.zip
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="LPFF datasets: review, merge into FFHQ, rebalance, zip.", no_args_is_help=True)


def _lpff_faces(lpff: Path, kind: str, rejects: Path | None) -> tuple[list[str], Path, set[str]]:
    from fk.errors import InputError
    from fk_datasets.labels import read_rejects

    realign = lpff / "realign" if (lpff / "realign" / "crop").is_dir() else lpff
    crops = realign / "crop" / kind
    if not crops.is_dir():
        raise InputError(f"{lpff}: no realign/crop/{kind} folder", hint="Pass the --out folder of recipes/lpff.yaml.")
    rejected = read_rejects(rejects if rejects else lpff / "review" / "rejects.json")
    faces = sorted(p.stem for p in crops.glob("*.png") if not p.name.startswith("."))
    return [f for f in faces if f not in rejected], crops, rejected & set(faces)


@app.command()
def review(
    folder: Path = typer.Argument(..., help="the LPFF folder (holding realign/debug)"),
    port: int = typer.Option(8765, help="port on 127.0.0.1 (0: any free port)"),
    lm_threshold: float = typer.Option(0.10, help="flag faces whose model landmarks miss by more eye distances"),
    blur_threshold: float = typer.Option(20.0, help="flag EG3D crops whose Laplacian variance is below this"),
) -> None:
    """Serve a local page of every debug render; decisions go to FOLDER/review/rejects.json."""
    from fk_datasets.review import ReviewState, make_server

    state = ReviewState(folder, lm_threshold=lm_threshold, blur_threshold=blur_threshold)
    server = make_server(state, port)
    items = state.items()
    flagged = sum(1 for it in items if it["flags"])
    typer.echo(f"{len(items)} faces ({flagged} flagged) at http://127.0.0.1:{server.server_address[1]}/ "
               f"- Ctrl-C to stop; decisions: {state.file}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("merge-eg3d")
def merge_eg3d(
    ffhq: Path = typer.Option(..., help="FFHQ-EG3D folder (its images, and dataset.json unless --ffhq-labels)"),
    lpff: Path = typer.Option(..., help="the LPFF folder (realign/crop/eg3d, realign/camera_parameters)"),
    out: Path = typer.Option(..., help="output folder (FFHQ images are hard-linked, not copied)"),
    ffhq_labels: Path = typer.Option(None, help="FFHQ labels (default: FFHQ/dataset.json; LPFF's dataset-ffhq.json)"),
    camera_parameters: Path = typer.Option(None, help="default: LPFF/realign/camera_parameters/camera_parameters.json"),
    rejects: Path = typer.Option(None, help="reject list (default: LPFF/review/rejects.json when present)"),
    link: str = typer.Option("hardlink", help="hardlink, symlink or copy for unchanged images"),
    size: int = typer.Option(512, help="expected image side"),
) -> None:
    """FFHQ-EG3D + LPFF with mirrors: IDs F+2i / F+2i+1 in name order, dataset.json with every label."""
    from fk_datasets.labels import read_camera_parameters, read_dataset_labels
    from fk_datasets.merge import execute_merge, plan_eg3d_merge

    faces, crops, rejected = _lpff_faces(lpff, "eg3d", rejects)
    cams_path = camera_parameters or crops.parent.parent / "camera_parameters" / "camera_parameters.json"
    names, labels = read_dataset_labels(ffhq_labels or ffhq / "dataset.json")
    plan = plan_eg3d_merge(names, labels, faces, read_camera_parameters(cams_path), ffhq, crops, image_size=size)
    report = execute_merge(plan, out, link=link)
    typer.echo(f"{plan.total} images ({plan.ffhq_count} FFHQ + 2 x {len(faces)} LPFF; {len(rejected)} rejected in "
               f"review left out) in {out}: {report['written']} written, {report['skipped']} already there")


@app.command("merge-stylegan")
def merge_stylegan(
    lpff: Path = typer.Option(..., help="the LPFF folder (realign/crop/stylegan)"),
    out: Path = typer.Option(..., help="output folder"),
    ffhq: Path = typer.Option(None, help="FFHQ images1024x1024 folder (omit to write the LPFF part only)"),
    ffhq_count: int = typer.Option(70_000, help="FFHQ images when --ffhq is omitted"),
    rejects: Path = typer.Option(None, help="reject list (default: LPFF/review/rejects.json when present)"),
    link: str = typer.Option("hardlink", help="hardlink, symlink or copy"),
    size: int = typer.Option(1024, help="expected image side"),
) -> None:
    """FFHQ-StyleGAN + LPFF: IDs after FFHQ's in name order, FFHQ's native layout, no labels."""
    from fk_datasets.merge import execute_merge, list_images, plan_stylegan_merge

    faces, crops, rejected = _lpff_faces(lpff, "stylegan", rejects)
    plan = plan_stylegan_merge(list_images(ffhq) if ffhq else None, faces, crops, ffhq, ffhq_count, size)
    report = execute_merge(plan, out, link=link)
    typer.echo(f"{plan.total} images ({len(faces)} LPFF after {plan.ffhq_count} FFHQ; {len(rejected)} rejected "
               f"left out) in {out}: {report['written']} written, {report['skipped']} already there")


@app.command()
def rebalance(
    eg3d: Path = typer.Option(..., help="merged FFHQ-LPFF EG3D folder (dataset.json)"),
    work: Path = typer.Option(Path("."), help="where files/*.npy, imgs/*.png and rebalance.json go"),
    stylegan: Path = typer.Option(None, help="merged FFHQ-LPFF StyleGAN folder (gets its list files)"),
    num_replicas: Path = typer.Option(None, help="EG3D's num_replicas.json, for FFHQ_rebalanced.json"),
    ffhq_count: int = typer.Option(None, help="FFHQ labels in the EG3D set (default: from the merge, else 139,914)"),
) -> None:
    """theta/phi, joint KDE density, n(d) copies, every list file, and before/after plots."""
    from fk_datasets.rebalance_run import rebalance as run

    summary = run(eg3d, stylegan, work, num_replicas, ffhq_count)
    typer.echo(json.dumps({"eg3d_lists": summary["eg3d_lists"], "stylegan_lists": summary["stylegan_lists"]},
                          indent=1))


@app.command("zip")
def zip_dataset(
    folder: Path = typer.Argument(..., help="a merged dataset folder"),
    kind: str = typer.Option(..., help="eg3d (512², labels) or stylegan (native 1024², no labels)"),
    dest: Path = typer.Option(..., help="the .zip to write (refuses to overwrite a different one)"),
    resolution: int = typer.Option(None, help="EG3D: side after Lanczos resizing (default 512)"),
    resize_filter: str = typer.Option("lanczos", help="lanczos or box"),
) -> None:
    """An uncompressed-PNG zip for the EG3D / StyleGAN2-ADA loaders, with the list files at its root."""
    from fk_datasets.labels import read_dataset_labels
    from fk_datasets.merge import list_images
    from fk_datasets.zips import plan_zip, write_zip

    labels = None
    if kind == "eg3d":
        names, arr = read_dataset_labels(folder / "dataset.json")
        labels = dict(zip(names, arr, strict=True))
    wanted = ("FFHQ", "LPFF", "FFHQ_rebalanced", "FFHQ_LPFF", "FFHQ_LPFF_rebalanced")
    lists = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem in wanted}
    plan = plan_zip(kind, list_images(folder), labels, lists, resolution)
    report = write_zip(plan, folder, dest, resize_filter)
    typer.echo(f"{dest}: {report['images']} images, lists {sorted(lists)}"
               + (" (already built, skipped)" if report["skipped"] else ""))
