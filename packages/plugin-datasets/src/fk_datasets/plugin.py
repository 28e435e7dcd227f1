"""fk-plugin-datasets's registrations (import-light: no torch or model code here).

Components:
    crop:lpff-realigned               realign crop -> (image, face) for the Deep3D crop
    crop:lpff-model-face              fitted model's 68 landmarks -> face (LPFF's lm_5p_pred)
    reconstruct:lpff-camera           R-Net unchanged with epoch_20.pth, else the labelled fit fallback
    evaluate:lpff-density             FFHQ density of a camera label; keep if < 0.4
    export:lpff-layout                one face into LPFF's folder tree
    export:lpff-camera-parameters     run scope: camera_parameters.json + density_filter.json
CLI: ``fk datasets review | merge-eg3d | merge-stylegan | rebalance | zip``.
"""

from __future__ import annotations

from fk.components import Component, Param, Port
from fk.hookspecs import hookimpl


@hookimpl
def fk_crop():
    yield Component(
        stage="crop", name="lpff-realigned",
        summary="Hand LPFF's 2400² realigned image on as (image, face with its landmarks) for crop:deep3d",
        factory="fk_datasets.components:RealignedFace",
        inputs=(Port("crop", "crop", "crop:lpff-realign's output"),),
        outputs=(Port("image", "image", "the 2400² realigned image"), Port("face", "face", "its 68 landmarks"),
                 Port("face5", "face", "its 5 points as LPFF's Deep3D step reads detections/*.txt (float32)")),
    )
    yield Component(
        stage="crop", name="lpff-model-face",
        summary="The fitted model's 68 landmarks in the realigned image (LPFF crops from these, not the detector's)",
        factory="fk_datasets.components:ModelFace",
        params=(Param("lm_map", "str", "lpff", "lpff: LPFF's approximate inverse_transformation; exact: the "
                      "crop's exact pixel map (fk option)", choices=("lpff", "exact")),),
        inputs=(Port("recon", "recon", "reconstruct:deep3d or fit:deep3d output on the realigned image"),
                Port("image", "image", "the realigned image")),
        outputs=(Port("face", "face", "landmarks in realigned pixels"),),
    )


@hookimpl
def fk_reconstruct():
    yield Component(
        stage="reconstruct", name="lpff-camera",
        summary="LPFF's camera: Deep3D R-Net's regression unchanged when deep3d/epoch_20.pth is present "
                "(reconstruct:deep3d); without it the named fallback fit:deep3d, labelled in "
                "camera_parameters/metadata.json; poor fits are flagged for review, never dropped",
        factory="fk_datasets.components:LpffCamera",
        params=(Param("checkpoint", "path", None, "R-Net checkpoint (default: the deep3d/epoch_20.pth asset)"),
                Param("fallback", "str", "fit", "without the checkpoint: fit (fk's fit:deep3d, labelled) or none "
                      "(fail, as LPFF cannot run)", choices=("fit", "none")),
                Param("fit_iterations", "int", 20, "photometric iterations of the fallback fit"),
                Param("flag_rmse", "float", 12.0, "flag fallback fits whose landmark RMS (crop px) is above this"),
                Param("model", "str", "auto", "face model for the reconstruction (auto: BFM09 when present)"),
                Param("renderer", "str", "auto", "renderer backend"),
                Param("device", "str", "cpu", "torch device"),
                Param("threads", "int", 1, "torch threads for the fallback fit")),
        inputs=(Port("crop", "crop", "the 224² Deep3D crop (crop:deep3d)"),
                Port("face", "face", "68 landmarks in the cropped image, for the fallback fit", optional=True)),
        outputs=(Port("recon", "recon", "coefficients, mesh, landmarks; extra.camera_source says which"),),
        devices=("cpu", "cuda"),
    )


@hookimpl
def fk_evaluate():
    yield Component(
        stage="evaluate", name="lpff-density",
        summary="LPFF's density filter: LPFF's kde.pkl or a Scott KDE of FFHQ-EG3D (theta, phi); keep faces with "
                "density < 0.4 (with neither: a documented ellipse approximation of that contour)",
        factory="fk_datasets.components:DensityStep",
        params=(Param("ffhq_kde", "path", None, "LPFF's kde.pkl (read safely; LPFF's exact density)"),
                Param("ffhq_labels", "path", None, "FFHQ-EG3D dataset.json (139,914 labels); neither: fallback"),
                Param("threshold", "float", 0.4, "keep faces whose density is below this (1/rad²)")),
        inputs=(Port("label", "label", "the face's EG3D camera label"),
                Port("realign", "crop", "the realigned photo, copied to bad_re_align/ when filtered", optional=True)),
        outputs=(Port("record", "json", "theta, phi, density, keep, criterion"), Port("keep", "json", "bool")),
    )


@hookimpl
def fk_export():
    yield Component(
        stage="export", name="lpff-layout",
        summary="Write a face into LPFF's folder tree (realign/, bad_re_align/, debug/, lm_5p_pred/, "
                "epoch_20_000000/, crop/eg3d/, crop/stylegan/, camera_parameters/)",
        factory="fk_datasets.components:LpffLayout",
        params=(Param("lm_map", "str", "lpff", "lm_5p_pred: lpff (LPFF's approximate inverse) or exact",
                      choices=("lpff", "exact")),),
        inputs=(Port("realign", "crop", "the 2400² realigned crop"), Port("recon", "recon"),
                Port("label", "label"), Port("density", "json", "evaluate:lpff-density's record"),
                Port("debug", "json", "export:deep3d's files (its 3-panel png)", optional=True),
                Port("eg3d", "crop", "512² EG3D crop", optional=True),
                Port("stylegan", "crop", "1024² StyleGAN crop", optional=True)),
        outputs=(Port("label", "label", "the label of a kept face, else null"), Port("record", "json")),
    )
    yield Component(
        stage="export", name="lpff-camera-parameters", scope="run",
        summary="camera_parameters/camera_parameters.json (kept faces minus review rejects) and density_filter.json",
        factory="fk_datasets.components:CameraParameters",
        params=(Param("rejects", "path", None, "reject list (default: <out>/review/rejects.json when present)"),),
        inputs=(Port("labels", "label", "{face: label or null}"), Port("records", "json", "{face: density record}"),
                Port("cameras", "json", "{face: export:lpff-layout record} (its camera source)", optional=True)),
        outputs=(Port("camera_parameters", "path"), Port("summary", "json")),
    )


@hookimpl
def fk_cli(app):
    from fk_datasets.cli import app as datasets_app

    app.add_typer(datasets_app, name="datasets")
