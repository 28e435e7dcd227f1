"""fk-plugin-align's registrations (import-light: no torch, dlib, cv2 or model code here)."""

from __future__ import annotations

from fk.components import Asset, Component, Param, Port
from fk.hookspecs import hookimpl

# Weights of the face-alignment package, which would otherwise be downloaded at first use.
FAN_FOLDER = "face_alignment"
FAN_FILES = {"2DFAN-4": "2DFAN4-11f355bf06.pth.tar", "s3fd": "s3fd-619a316812.pth"}
FAN_URLS = {
    "2DFAN-4": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}

_IMAGE_IN = Port("image", "image", "a photo: path or HxWx3 uint8 RGB array")
_FACE_IN = Port("face", "face", "one detected face with 68 landmarks")
_FACES_OUT = Port("faces", "faces", "list[Face]; one child item {key}_{NN} per face (see naming)")
_CROP_OUT = Port("crop", "crop", "the aligned image, crop_from_source (3x3) and landmarks in crop pixels")

_DETECT_PARAMS = (
    Param("min_face", "int", 0, "drop faces whose box is shorter than this many pixels"),
    Param("max_faces", "int", 0, "keep at most this many faces, largest first (0: all)"),
    Param(
        "write_landmarks",
        "bool",
        False,
        "write {key}_{NN}.npy (68x2) and detections/{key}_{NN}.txt (5 points)",
    ),
    Param("debug", "bool", False, "write debug/{key}.png: boxes and landmarks on the photo"),
    Param(
        "naming",
        "str",
        "fk",
        "face order and names: fk = largest first, {key}_00, _01...; lpff = detector order, {key}_01, _02... "
        "(LPFF's names)",
        choices=("fk", "lpff"),
    ),
)
_CROP_PARAMS = (
    Param("save", "bool", True, "write {key}.png"),
    Param("debug", "bool", False, "write debug/{key}.png: landmarks and crop outline on the photo"),
)
_FAN_PARAMS = (
    Param(
        "weights_dir",
        "path",
        None,
        f"folder with {FAN_FILES['2DFAN-4']} and {FAN_FILES['s3fd']} "
        f"(default: $FK_HOME/assets/{FAN_FOLDER}, then torch's hub cache)",
    ),
    Param(
        "device",
        "str",
        None,
        "torch device for 2D-FAN (default: the recipe's device, else cpu)",
        role="device",
    ),
)


def _detector(name: str, summary: str, factory: str, params: tuple[Param, ...], **kw: object) -> Component:
    return Component(
        stage="detect",
        name=name,
        summary=summary,
        factory=factory,
        params=params + _DETECT_PARAMS,
        inputs=(_IMAGE_IN,),
        outputs=(_FACES_OUT,),
        fan_out="faces",
        **kw,
    )


def _crop(name: str, summary: str, factory: str, params: tuple[Param, ...]) -> Component:
    return Component(
        stage="crop",
        name=name,
        summary=summary,
        factory=factory,
        params=params + _CROP_PARAMS,
        inputs=(_IMAGE_IN, _FACE_IN),
        outputs=(_CROP_OUT,),
    )


@hookimpl
def fk_detect():
    yield _detector(
        "dlib",
        "dlib HOG face detector + 68-point landmarks (LPFF's primary detector); models from "
        "face_recognition_models",
        "fk_align.dlib_detect:DlibDetector",
        (
            Param(
                "upsample",
                "int",
                1,
                "upsample the image this many times before detecting (finds smaller faces)",
            ),
            Param("min_score", "float", 0.0, "dlib's adjust_threshold: raise to drop weak detections"),
        ),
    )
    yield _detector(
        "dlib-cnn",
        "dlib MMOD CNN face detector + 68-point landmarks; slow on CPU (about 10 s per 512^2 photo "
        "at upsample 1)",
        "fk_align.dlib_detect:DlibCnnDetector",
        (
            Param("upsample", "int", 1, "upsample the image this many times before detecting"),
            Param("min_score", "float", 0.0, "drop detections whose CNN confidence is below this"),
        ),
    )
    yield _detector(
        "face-alignment",
        "2D-FAN landmarks with the S3FD face detector (face-alignment package); weights must be "
        "placed offline (fk doctor)",
        "fk_align.fan_detect:FanDetector",
        _FAN_PARAMS + (Param("min_score", "float", 0.5, "S3FD confidence threshold"),),
        requires_assets=("face-alignment-2dfan4", "face-alignment-s3fd"),
        devices=("cpu", "cuda"),
    )
    yield _detector(
        "mtcnn",
        "MTCNN cascade with 5 keypoints (GMPI's detector), in torch on the weights shipped by PyPI's "
        "mtcnn package; no TensorFlow",
        "fk_align.mtcnn_detect:MtcnnDetector",
        (
            Param("min_face_size", "float", 20.0, "smallest face searched for, in pixels (mtcnn's default)"),
            Param("scale_factor", "float", 0.709, "ratio between image pyramid levels"),
            Param(
                "variant",
                "str",
                "1.0",
                "which mtcnn release to reproduce: 1.0 (today's package) or 0.1.1 (GMPI's pinned version: "
                "OpenCV resizing, integer boxes and keypoints)",
                choices=("1.0", "0.1.1"),
            ),
            Param("threshold_pnet", "float", 0.6, "P-Net face probability threshold"),
            Param("threshold_rnet", "float", 0.7, "R-Net face probability threshold"),
            Param(
                "threshold_onet",
                "float",
                None,
                "O-Net face probability threshold (default: 0.8 for 1.0, 0.7 for 0.1.1)",
            ),
            Param(
                "order",
                "str",
                "area",
                "face order: area (largest first, like every fk detector) or confidence (the mtcnn "
                "package's order; GMPI takes its first face)",
                choices=("area", "confidence"),
            ),
            Param("threads", "int", 0, "torch threads while detecting (0: leave torch's setting)"),
        ),
    )
    yield _detector(
        "lpff",
        "LPFF's cascade: dlib HOG first, 2D-FAN on a copy shrunk to <= 600 px only when dlib finds nothing",
        "fk_align.fan_detect:LpffDetector",
        (
            Param("upsample", "int", 1, "dlib's upsampling"),
            Param("fallback", "bool", True, "run face-alignment when dlib finds nothing"),
            Param("max_side", "int", 600, "the fallback runs on a copy whose longer side is at most this"),
        )
        + _FAN_PARAMS,
        devices=("cpu", "cuda"),
        preflight="fk_align.fan_detect:lpff_preflight",
    )


    yield Component(
        stage="detect",
        name="five-points",
        summary="Deep3D's test.py landmarks: the 5 points of detections/{stem}.txt beside each image "
        "(read as float32, as test.py does); one face per image, keyed by the image's name",
        factory="fk_align.detection:FivePointFile",
        params=(Param("folder", "str", "detections", "sub-folder of the image's folder holding {stem}.txt"),),
        inputs=(_IMAGE_IN,),
        outputs=(Port("face", "face", "5 landmarks (float32) from the detections file"),),
    )


@hookimpl
def fk_crop():
    yield _crop(
        "ffhq",
        "FFHQ/StyleGAN alignment from 68 landmarks (1024 px); border 'lpff' gives LPFF's "
        "StyleGAN-crop variant",
        "fk_align.crops:FfhqCrop",
        (
            Param("size", "int", 1024, "output side in pixels"),
            Param("transform_size", "int", 4096, "side of the warp before the final resize"),
            Param(
                "border",
                "str",
                "ffhq",
                "crop border: ffhq = max(0.1 qsize, 3), lpff = max(0.2 qsize, 100)",
                choices=("ffhq", "lpff"),
            ),
            Param("padding", "bool", True, "reflect-pad and blur where the quad leaves the photo"),
        ),
    )
    yield _crop(
        "lpff-realign",
        "LPFF's 2400^2 realignment (FFHQ quad x1.8, blurred reflect padding); writes detections/{key}.txt",
        "fk_align.crops:LpffRealignCrop",
        (
            Param("size", "int", 2400, "output side in pixels"),
            Param("min_crop", "int", 512, "reject faces whose crop is below this on both sides (0: never)"),
            Param("write_detections", "bool", True, "write detections/{key}.txt: 5 points in output pixels"),
        ),
    )
    yield _crop(
        "deep3d",
        "Deep3DFaceRecon's align_img: 5-point POS fit, 102 px/dm, 224 crop; keeps trans_params",
        "fk_align.crops:Deep3DCrop",
        (
            Param("size", "int", 224, "crop side (Deep3D's target_size)"),
            Param("rescale_factor", "float", 102.0, "pixels per decimetre after resizing"),
            Param("lm3d", "path", None, "a similarity_Lm3D_all.mat (key lm, 68x3) to align against "
                  "instead of Deep3D's standard 3-D points (FFHQ-UV: its topo_assets copy)"),  # fmt: skip
        ),
    )
    yield _crop(
        "eg3d",
        "EG3D's in-the-wild crop: align_img at 1024 with rescale 300, centre 700, Lanczos to 512",
        "fk_align.crops:Eg3dCrop",
        (Param("size", "int", 512, "output side in pixels"),),
    )


@hookimpl
def fk_assets():
    for name, key in (("face-alignment-2dfan4", "2DFAN-4"), ("face-alignment-s3fd", "s3fd")):
        yield Asset(
            name=name,
            path=f"{FAN_FOLDER}/{FAN_FILES[key]}",
            summary=f"face-alignment's {key} weights (detect:face-alignment, detect:lpff's fallback)",
            instructions=f"download {FAN_URLS[key]} and put it in $FK_HOME/assets/{FAN_FOLDER}/ "
            "(or pass weights_dir)",
        )
