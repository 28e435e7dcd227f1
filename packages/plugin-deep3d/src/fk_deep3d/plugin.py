"""fk-plugin-deep3d's registrations (import-light: no torch or model code here).

Components:
    reconstruct:deep3d   R-Net regression from the 224 Deep3D crop (needs epoch_20.pth)
    fit:deep3d           fk's own per-image fitting method (Deep3DFaceRecon has none: it only
                         regresses): PnP pose, landmark Levenberg-Marquardt, photometric Adam with
                         Deep3D's loss terms; R-Net start when a checkpoint exists; BFM09 or the demo head
    export:deep3d        per face: Deep3D .mat, posed .obj, 3-panel .png, EG3D label,
                         LPFF .npy dict, full-photo overlay, yaw-swing frames
    export:demo-page     run scope: one static index.html over every face's exports
CLI: ``fk deep3d prepare`` and ``fk deep3d train``.
"""

from __future__ import annotations

from fk.components import Asset, Component, Param, Port
from fk.hookspecs import hookimpl
from fk_deep3d.constants import ARCFACE_ASSET, CHECKPOINT_ASSET, IMAGENET_RESNET50_ASSET, IMAGENET_RESNET50_URL

_MODEL = Param("model", "str", "auto", "face model: auto (bfm09 when its file is present, else demo), demo, "
               "bfm09 or hifi3dpp (FFHQ-UV's model; needs hifi3dpp/hifi3dpp_model_info.mat)",
               choices=("auto", "demo", "bfm09", "hifi3dpp"), role="face-model")
_RENDERER = Param("renderer", "str", "auto", "rasteriser backend", choices=("auto", "cpu", "nvdiffrast"))
_DEVICE = Param("device", "str", "cpu", "torch device (cpu, cuda, cuda:1...)", role="device")
_THREADS = Param("threads", "int", 1, "torch CPU threads for this step's R-Net and fit, restored afterwards "
                 "(0: keep the process setting); 1 is fastest for the fit on small CPUs, and safe when other "
                 "processes share the cores (bench/bench_deep3d.py)")
_CROP_IN = Port("crop", "crop", "the 224² Deep3D crop (crop:deep3d)")
_RECON_OUT = Port("recon", "recon", "coefficients, posed mesh, landmarks and EG3D camera label")


@hookimpl
def fk_reconstruct():
    yield Component(
        stage="reconstruct", name="deep3d",
        summary="Deep3DFaceRecon's R-Net: 224² crop -> 257 BFM coefficients (needs deep3d/epoch_20.pth; "
                "fallback: fit stands in fk's fit:deep3d without it, labelled)",
        factory="fk_deep3d.runners:ReconstructRunner",
        params=(_MODEL, _RENDERER, _DEVICE, _THREADS,
                Param("iterations", "int", 0, "photometric refinement steps after regression (0: none)"),
                Param("checkpoint", "path", None, "R-Net checkpoint (default: the deep3d/epoch_20.pth asset)"),
                Param("fallback", "str", "none", "without the checkpoint: none (stop and say where it goes, as "
                      "Deep3D's test.py cannot run) or fit (fk's fit:deep3d from the mean face, labelled "
                      "'fit-fallback' in each reconstruction)", choices=("none", "fit")),
                Param("fit_iterations", "int", 40, "photometric iterations of the fallback fit")),
        inputs=(_CROP_IN,), outputs=(_RECON_OUT,),
        preflight="fk_deep3d.runners:reconstruct_preflight", devices=("cpu", "cuda"),
    )


@hookimpl
def fk_fit():
    yield Component(
        stage="fit", name="deep3d",
        summary="fk's own fitting method, not Deep3DFaceRecon's (which only regresses with R-Net): PnP pose, "
                "landmark Levenberg-Marquardt, then photometric Adam with Deep3D's loss terms on the 224² crop; "
                "starts from R-Net when its checkpoint is present",
        factory="fk_deep3d.runners:FitRunner",
        params=(_MODEL, _RENDERER, _DEVICE, _THREADS,
                Param("iterations", "int", 40, "photometric iterations (the landmark stage runs before)"),
                Param("init", "str", "auto", "start: auto (R-Net if its checkpoint exists), rnet, mean",
                      choices=("auto", "rnet", "mean")),
                Param("checkpoint", "path", None, "R-Net checkpoint (default: the deep3d/epoch_20.pth asset)"),
                Param("arcface", "path", None, "ArcFace r50 weights for the identity term "
                      "(default: the deep3d/arcface_r50.pth asset; the term is skipped when absent)"),
                Param("max_rmse", "float", 12.0, "fail faces whose landmark RMS (crop px) is above this "
                      "(0: keep every finite fit)")),
        inputs=(_CROP_IN,), outputs=(_RECON_OUT,), devices=("cpu", "cuda"),
    )


@hookimpl
def fk_export():
    yield Component(
        stage="export", name="deep3d",
        summary="Write a reconstruction: Deep3D .mat, posed .obj, 3-panel .png, EG3D label, LPFF .npy, "
                "photo overlay, yaw-swing frames",
        factory="fk_deep3d.export:Deep3DExporter",
        params=(Param("formats", "list", ["mat", "obj", "png", "label", "npy", "overlay"],
                      "any of mat, obj, glb, png, label, npy, overlay, swing, input"),
                Param("texture", "bool", True, "obj/glb carry the photo projected into the model's UV layout "
                      "(a 1024² texture) when the photo is given; vertex colours otherwise"),
                Param("swing_frames", "int", 12, "distinct frames of the yaw swing (played back and forth)"),
                Param("swing_size", "int", 256, "side of a swing frame in pixels"),
                _RENDERER),
        inputs=(Port("recon", "recon"), Port("image", "image", "the original photo (for the overlay)", optional=True)),
        outputs=(Port("files", "json", "{format: path relative to the run folder}"),
                 Port("label", "label", "EG3D 25-float camera label")),
    )
    yield Component(
        stage="export", name="demo-page",
        summary="A static index.html showing each input, its overlay, a yaw swing of the mesh, and the photos "
                "where no face was reconstructed, with the reason (no network)",
        factory="fk_deep3d.page:DemoPage", scope="run",
        params=(Param("title", "str", "fk demo", "page title"),),
        inputs=(Port("files", "json", "{item key: export:deep3d files}"),),
        outputs=(Port("page", "path", "index.html, relative to the run folder"),),
    )


@hookimpl
def fk_assets():
    yield Asset(
        name=CHECKPOINT_ASSET, path=CHECKPOINT_ASSET,
        summary="Deep3DFaceRecon_pytorch R-Net checkpoint (ResNet-50, 257 coefficients)",
        instructions="Download the released model (face_recon_feat0.2_augment or facerecon_20230425) from the "
                     "links in github.com/sicxu/Deep3DFaceRecon_pytorch's README and copy its epoch_20.pth here. "
                     "It also needs BFM09 (bfm/BFM_model_front.mat, see `fk models list`).",
    )
    yield Asset(
        name=ARCFACE_ASSET, path=ARCFACE_ASSET,
        summary="ArcFace IResNet-50 backbone for Deep3D's identity loss (optional)",
        instructions="Copy insightface arcface_torch ms1mv3_arcface_r50_fp16/backbone.pth here "
                     "(as Deep3DFaceRecon's checkpoints/recog_model). Without it the identity term is skipped.",
    )
    yield Asset(
        name=IMAGENET_RESNET50_ASSET, path=IMAGENET_RESNET50_ASSET,
        summary="torchvision's ImageNet ResNet-50, R-Net's starting point for `fk deep3d train` (optional)",
        instructions=f"Download {IMAGENET_RESNET50_URL} (torchvision's IMAGENET1K_V1, as Deep3DFaceRecon's "
                     "checkpoints/init_model) and copy it here; `fk deep3d train` then starts from it "
                     "(--init-path overrides, --init-path none starts from random weights).",
    )


@hookimpl
def fk_cli(app):
    from fk_deep3d.cli import app as deep3d_app

    app.add_typer(deep3d_app, name="deep3d")
