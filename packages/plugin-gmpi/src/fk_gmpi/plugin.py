"""fk-plugin-gmpi's registrations (import-light: no torch or model code here).

Components:
    export:gmpi-photo-mpi   an MPI from one photo + fk's face fit, rendered to novel views (no weights)
    export:gmpi-page        run scope: index.html over the photo MPIs
Assets: the StyleGAN2-ADA pickles GMPI starts from (``gmpi/stylegan2/*.pkl``).
CLI: ``fk gmpi prepare-ffhq | prepare-metfaces | generate | mpi-from-photo | train | eval``.
Assets also: the FID Inception weights (``inception/pt_inception-2015-12-05-6726825d.pth``).
"""

from __future__ import annotations

from fk.components import Asset, Component, Param, Port
from fk.hookspecs import hookimpl

# GMPI's configs/gmpi.yml pretrained_ckpts: dataset -> NVIDIA's file name (gmpi.md §3.1)
STYLEGAN2_PICKLES = {
    "FFHQ256": "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl",
    "FFHQ512": "transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl",
    "FFHQ1024": "transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl",
    "AFHQCat": "afhqcat.pkl",
    "MetFaces": "metfaces.pkl",
}
_NVIDIA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"


def pickle_asset(dataset: str) -> str:
    return f"gmpi/stylegan2/{STYLEGAN2_PICKLES[dataset].rsplit('/', 1)[-1]}"


@hookimpl
def fk_export():
    yield Component(
        stage="export",
        name="gmpi-photo-mpi",
        summary="MPI from a photo and fk's face fit (depth -> per-plane alpha), novel views by GMPI's "
        "MPI renderer: frames, depth, planes, video (no StyleGAN2 weights needed)",
        factory="fk_gmpi.photo:PhotoMpi",
        params=(
            Param("planes", "int", 32, "MPI planes"),
            Param("size", "int", 256, "texture and view side"),
            Param("frames", "int", 30, "views along the trajectory"),
            Param("trajectory", "str", "sphere", "camera path", choices=("sphere", "yaw", "pitch")),
            Param("fps", "int", 15, "video frame rate"),
            Param(
                "renderer",
                "str",
                "auto",
                "rasteriser for the fitted depth",
                choices=("auto", "cpu", "nvdiffrast"),
            ),
        ),
        inputs=(Port("recon", "recon", "fit:deep3d's reconstruction"), Port("image", "image", "the photo")),
        outputs=(Port("files", "json", "written files, relative to the run folder"),),
    )
    yield Component(
        stage="export",
        name="gmpi-page",
        scope="run",
        summary="A static index.html with each photo MPI's novel-view video, depth video and planes",
        factory="fk_gmpi.photo:PhotoPage",
        params=(Param("title", "str", "fk gmpi: MPI from a photo", "page title"),),
        inputs=(Port("files", "json", "{item: export:gmpi-photo-mpi files}"),),
        outputs=(Port("page", "path", "index.html, relative to the run folder"),),
    )


@hookimpl
def fk_assets():
    for dataset, name in STYLEGAN2_PICKLES.items():
        yield Asset(
            name=pickle_asset(dataset),
            path=pickle_asset(dataset),
            summary=f"StyleGAN2-ADA pickle GMPI fine-tunes for {dataset} (read without running its code)",
            instructions=f"download {_NVIDIA}/{name} (NVIDIA Source Code License-NC) and put it here; "
            f"`fk gmpi generate --ckpt {dataset}` then uses it",
        )
    from fk.nets import INCEPTION_ASSET, INCEPTION_URL

    yield Asset(
        name=INCEPTION_ASSET,
        path=INCEPTION_ASSET,
        summary="FID Inception-v3 (TensorFlow's 2015-12-05 graph) for `fk gmpi eval`'s FID and KID",
        instructions=f"download {INCEPTION_URL} (pytorch-fid's conversion of the TF graph; torch-fidelity's "
        "weights-inception-2015-12-05-6726825d.pth has the same names: rename it) and put it here",
    )


@hookimpl
def fk_cli(app):
    from fk_gmpi.cli import app as gmpi_app

    app.add_typer(gmpi_app, name="gmpi")
