"""fk-plugin-uvfit's registrations (import-light: no torch or model code here).

Components:
    crop:uvfit-preprocess  FFHQ-UV step 1: processed_data/<name>.npz + vis strip
    fit:uvfit           FFHQ-UV stage 1 (R-Net) -> 2 -> 3 with the texture GAN when its files are present,
                        else the embedded fit (fit:deep3d), labelled
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
        summary="FFHQ-UV step 1: Deep3D's align_img (crop:deep3d) against HiFi3D++'s similarity_Lm3D_all.mat "
        "when installed, skin and BiSeNet parse masks on the photo (landmark polygon without BiSeNet) -> "
        "processed_data/<name>.npz (img, skin_mask, parse_mask, lm y-up, M, trans_params), .json and the "
        "vis strip; largest face only, 70x70 minimum",
        factory="fk_uvfit.preprocess:Preprocessor",
        params=(
            Param("largest_only", "bool", True, "fit only the largest face of each photo (upstream)"),
            Param("min_face", "int", 70, "reject face boxes of at most min_face x min_face pixels"),
            Param(
                "parsing",
                "str",
                "auto",
                "parse mask: bisenet (upstream; needs ffhquv-parsing), landmarks (fk's polygon) or auto "
                "(bisenet when its weights are installed)",
                choices=("auto", "bisenet", "landmarks"),
            ),
            Param("parsing_weights", "path", None, "79999_iter.pth (default: the ffhquv-parsing asset)"),
            Param(
                "lm3d",
                "str",
                "auto",
                "3-D reference points of the alignment: auto (the ffhquv-similarity-lm3d asset when "
                "installed, else Deep3D's standard points), deep3d, or a similarity_Lm3D_all.mat path",
            ),
            Param("device", "str", "cpu", "torch device of BiSeNet", role="device"),
        ),
        inputs=(
            Port("image", "image", "the photo (masks are made on it, as upstream)", optional=True),
            Port("face", "face", "a detected face with 68 landmarks (detect:dlib)", optional=True),
            Port("crop", "crop", "or a ready 224² crop of crop:deep3d", optional=True),
        ),
        outputs=(
            Port("crop", "crop", "the aligned 224² crop (for the fit)"),
            Port("processed", "json", "{npz, json, vis}: paths relative to the run folder"),
        ),
    )


def _stage_param(name: str, default) -> Param:
    kind = {bool: "bool", int: "int", float: "float", list: "list"}[type(default)]
    stage, key = name.split("_", 1)
    return Param(name, kind, default, f"stage {stage[1]} {key} (upstream: {default})")


@hookimpl
def fk_fit():
    from fk_uvfit.schedules import STAGE2, STAGE3

    stage = [_stage_param(f"s2_{k}", list(v) if isinstance(v, tuple) else v) for k, v in STAGE2.items()]
    stage += [_stage_param(f"s3_{k}", list(v) if isinstance(v, tuple) else v) for k, v in STAGE3.items()]
    yield Component(
        stage="fit",
        name="uvfit",
        summary="FFHQ-UV's RGB fitting: stage 1 HiFi3D++ R-Net, stage 2 texture-GAN latent search, stage 3 "
        "joint W+/shape/pose/light (upstream's files and names) when the texture GAN, R-Net and HiFi3D++ "
        "are installed; otherwise the embedded fit (fit:deep3d), labelled",
        factory="fk_uvfit.full:UVFitter",
        preflight="fk_uvfit.full:preflight",
        params=(
            Param(
                "path",
                "str",
                "auto",
                "auto: the full path when its files are present, else embedded",
                choices=("auto", "full", "embedded"),
            ),
            Param(
                "texgan",
                "path",
                None,
                "texture GAN state dict (default: the ffhquv-texgan asset, or ffhquv-texgan-cropface630 "
                "for that variant)",
            ),
            Param("rnet", "path", None, "HiFi3D++ R-Net checkpoint (default: the ffhquv-rnet asset)"),
            Param(
                "arcface",
                "path",
                None,
                "ArcFace r50 weights (default: the ffhquv-arcface asset; the "
                "identity term is skipped, weight 0, when absent)",
            ),
            Param(
                "texgan_variant",
                "str",
                "ffhq_uv",
                "texture GAN: ffhq_uv (texgan_ffhq_uv.pth, upstream's default) or cropface630 (the face-crop "
                "GAN pasted into template_base_uv.png and blended; needs the topo_assets masks)",
                choices=("ffhq_uv", "cropface630"),
            ),
            Param(
                "uv_sampling",
                "str",
                "nearest",
                "texel lookup: nearest (upstream) or bilinear (fk option)",
                choices=("nearest", "bilinear"),
            ),
            Param("w_stat_samples", "int", 100_000, "mapped z samples for the W mean/std (upstream: 100000)"),
            Param("seed", "int", 123, "seed of torch, numpy and random at the start of each face (upstream)"),
            *stage,
            Param("iterations", "int", 30, "embedded path: fit:deep3d's photometric iterations"),
            Param("model", "str", "auto", "embedded path: face model of fit:deep3d"),
            _RENDERER,
            Param(
                "device",
                "str",
                "cpu",
                "torch device of every model, tensor and the renderer, both paths (cpu, cuda, cuda:N, auto: "
                "CUDA when torch sees a GPU)",
                role="device",
            ),
            Param("threads", "int", 1, "torch CPU threads for this step (0: keep the process setting)"),
        ),
        inputs=(
            Port("crop", "crop", "the 224² crop with 68 landmarks (crop:uvfit-preprocess)"),
            Port("processed", "json", "crop:uvfit-preprocess's processed-data paths", optional=True),
        ),
        outputs=(Port("recon", "recon", "the fit; extra.uvfit says which path ran and lists its files"),),
        devices=("cpu", "cuda"),
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
