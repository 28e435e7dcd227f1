"""fk-plugin-uvfit's registrations (import-light: no torch or model code here).

Components:
    export:uvfit        per photo: FFHQ-UV's file set (stage3 OBJs/MTL/UV, coeffs, eyeballs), a GLB,
                        yaw renders; embedded path: a projected UV texture ("projected texture, no GAN")
    export:uvfit-page   run scope: one static index.html over every photo
CLI: ``fk uvfit fit PHOTOS --out DIR`` (runs the bundled recipe), ``fk uvfit blender DIR``.
"""

from __future__ import annotations

from fk.components import Component, Param, Port
from fk.hookspecs import hookimpl

_RENDERER = Param("renderer", "str", "auto", "rasteriser backend", choices=("auto", "cpu", "nvdiffrast"))


@hookimpl
def fk_crop():
    yield Component(
        stage="crop",
        name="uvfit-preprocess",
        summary="FFHQ-UV step 1 on a Deep3D crop: processed_data/<name>.npz (img, skin_mask, parse_mask, lm "
        "y-up, M, trans_params), .json and the vis strip; largest face only, 70x70 minimum",
        factory="fk_uvfit.preprocess:Preprocessor",
        params=(
            Param("largest_only", "bool", True, "fit only the largest face of each photo (upstream)"),
            Param("min_face", "int", 70, "reject face boxes of at most min_face x min_face pixels"),
        ),
        inputs=(Port("crop", "crop", "the 224² crop of crop:deep3d"),),
        outputs=(
            Port("crop", "crop", "the same crop (for the fit)"),
            Port("processed", "json", "{npz, json, vis}: paths relative to the run folder"),
        ),
    )


@hookimpl
def fk_export():
    yield Component(
        stage="export",
        name="uvfit",
        summary="FFHQ-UV's per-photo files from a fit: stage3 OBJs + MTL + 1024² UV texture (projected "
        "from the photo when no texture GAN is installed), coefficients, eyeballs, a GLB and yaw renders",
        factory="fk_uvfit.embedded:UVFitExporter",
        params=(
            Param("uv_size", "int", 1024, "side of stage3_uv.png (upstream: 1024)"),
            Param("yaws", "list", [-35.0, 0.0, 35.0], "yaw angles (degrees) of the textured-head renders"),
            Param("view_size", "int", 384, "side of each render in pixels"),
            Param("glb", "bool", True, "write <item>.glb with the head and both eyeballs"),
            Param("mirror", "bool", True, "fill texels seen only on the other side from their mirror"),
            Param(
                "face_mask",
                "bool",
                True,
                "copy only photo pixels inside the landmark polygon (jaw line "
                "closed over the raised brows: face, forehead, hairline), not the background beside it",
            ),
            _RENDERER,
            Param(
                "threads",
                "int",
                1,
                "torch CPU threads for this step, restored afterwards (0: keep the "
                "process setting); 1 avoids OpenMP's spin-wait collapse on a shared 2-core CPU",
            ),
        ),
        inputs=(
            Port("recon", "recon", "the fit (fit:deep3d)"),
            Port("image", "image", "the original photo (projected into the UV map)", optional=True),
        ),
        outputs=(
            Port("files", "json", "{name: path relative to the run folder}"),
            Port("info", "json", "labels, texel coverage and seconds per stage"),
        ),
    )
    yield Component(
        stage="export",
        name="uvfit-page",
        summary="A static index.html: each photo's textured head at three yaw angles, its UV map and files",
        factory="fk_uvfit.page:UVFitPage",
        scope="run",
        params=(Param("title", "str", "fk uvfit", "page title"),),
        inputs=(
            Port("files", "json", "{item key: export:uvfit files}"),
            Port("info", "json", "{item key: export:uvfit info}", optional=True),
        ),
        outputs=(Port("page", "path", "index.html, relative to the run folder"),),
    )


@hookimpl
def fk_cli(app):
    from fk_uvfit.cli import app as uvfit_app

    app.add_typer(uvfit_app, name="uvfit")


@hookimpl
def fk_assets():
    from fk_uvfit.assets import ASSETS

    yield from ASSETS
