"""Every FFHQ-UV file fk-plugin-uvfit can use and never downloads (listed by ``fk doctor``).

Import-light (descriptors only). Paths are relative to ``$FK_HOME/assets``; FFHQ-UV's own layout is kept
under ``ffhquv/`` (``checkpoints/``, ``topo_assets/``, ``eye_ball_assets/``) so a user can copy the
downloaded folders as they are. The HiFi3D++ model and its unwrap table are core's assets
(``hifi3dpp/``, see ``fk models list``). Upstream hosts checkpoints and topo_assets on Baidu Netdisk only
(the OneDrive links are dead, csbhr/FFHQ-UV issue #82).
"""

from __future__ import annotations

from fk.components import Asset

_REPO = "https://github.com/csbhr/FFHQ-UV"
_WHERE = f"({_REPO}, README_ckp_topo.md; Baidu Netdisk)"
_CKPT = f"From FFHQ-UV's checkpoints download {_WHERE}, into ffhquv/checkpoints/"
_TOPO = f"From FFHQ-UV's topo_assets download {_WHERE}, into ffhquv/topo_assets/"
_EYE = (
    f"From {_REPO}'s Mesh_Add_EyeBall/eye_ball_assets/ (in the git repository), into ffhquv/eye_ball_assets/"
)

TEXGAN = "ffhquv-texgan"
TEXGAN_CROPFACE = "ffhquv-texgan-cropface630"
# the topo_assets files the cropface630 variant blends with (fk_uvfit.cropface)
TOPO_ASSET_OF = {
    "template": "ffhquv-template-uv",
    "minor": "ffhquv-minor-valid-whole-mask",
    "major": "ffhquv-major-valid-whole-mask",
    "hair": "ffhquv-hair-mask",
}
RNET = "ffhquv-rnet"
ARCFACE = "ffhquv-arcface"
PARSING = "ffhquv-parsing"
VGG = "ffhquv-vgg16"
LM3D = "ffhquv-similarity-lm3d"
EYE_LEFT, EYE_RIGHT, EYE_TEX = "ffhquv-eye-left", "ffhquv-eye-right", "ffhquv-eye-texture"

_CROPFACE_MASKS = ("hair_mask", "major_valid_whole_mask", "minor_valid_whole_mask")

ASSETS: tuple[Asset, ...] = (
    Asset(
        TEXGAN,
        "ffhquv/checkpoints/texgan_model/texgan_ffhq_uv.pth",
        "FFHQ-UV texture GAN (StyleGAN2-ADA generator, 1024² UV maps) for stages 2-3",
        _CKPT,
    ),
    Asset(
        TEXGAN_CROPFACE,
        "ffhquv/checkpoints/texgan_model/texgan_cropface630resize1024_ffhq_uv_interpolate.pth",
        "the face-crop texture GAN of the cropface630resize1024 variant (fit:uvfit texgan_variant: "
        "cropface630; with template_base_uv, hair_mask, major/minor_valid_whole_mask)",
        _CKPT,
    ),
    Asset(
        RNET,
        "ffhquv/checkpoints/deep3d_model/epoch_latest.pth",
        "Deep3D R-Net retrained on HiFi3D++ (1049 coefficients; 'net_recon') for stage 1",
        _CKPT,
    ),
    Asset(
        ARCFACE,
        "ffhquv/checkpoints/arcface_model/ms1mv3_arcface_r50_fp16_backbone.pth",
        "ArcFace IResNet-50 for the identity loss",
        _CKPT,
    ),
    Asset(
        PARSING,
        "ffhquv/checkpoints/parsing_model/79999_iter.pth",
        "BiSeNet face parsing (face-parsing.PyTorch, 19 classes) for crop:uvfit-preprocess's parse mask; "
        "without it a landmark polygon is used (labelled)",
        f"{_CKPT}parsing_model/ (it is face-parsing.PyTorch's own 79999_iter.pth, also linked from "
        "github.com/zllrunning/face-parsing.PyTorch; the eyeball plugin's copy is the same file)",
    ),
    Asset(
        "ffhquv-parsing-backbone",
        "ffhquv/checkpoints/parsing_model/resnet18-5c106cde.pth",
        "ResNet-18 ImageNet weights BiSeNet's context path starts from (not needed by fk: 79999_iter.pth "
        "holds every BiSeNet weight)",
        _CKPT,
    ),
    Asset(
        VGG,
        "ffhquv/checkpoints/vgg_model/vgg16.pt",
        "StyleGAN2-ADA's VGG16 LPIPS network upstream's stage 2 uses (a TorchScript file: fk never executes "
        "it; fk runs the same LPIPS-VGG16 from lpips-vgg16 + lpips-vgg-lin instead)",
        _CKPT,
    ),
    Asset(
        "ffhquv-mtcnn",
        "ffhquv/checkpoints/mtcnn_model/mtcnn_model.pb",
        "upstream's MTCNN as a TensorFlow 1.15 graph: not usable by fk (no TensorFlow); fk uses detect:mtcnn "
        "(pip mtcnn) or dlib instead",
        _CKPT,
    ),
    Asset(
        "ffhquv-lm68",
        "ffhquv/checkpoints/lm_model/68lm_detector.pb",
        "Deep3D's TensorFlow 68-landmark detector: unusable without TensorFlow; fk uses dlib's 68 points",
        _CKPT,
    ),
    Asset(
        LM3D,
        "ffhquv/topo_assets/similarity_Lm3D_all.mat",
        "68 HiFi3D++ 3-D landmarks ('lm') crop:uvfit-preprocess aligns against (without it Deep3D's "
        "standard 3-D points, labelled)",
        _TOPO,
    ),
    Asset(
        "ffhquv-template-uv",
        "ffhquv/topo_assets/template_base_uv.png",
        "template UV texture the cropface630 variant pastes its face into and blends with",
        _TOPO,
    ),
    Asset(
        "ffhquv-mean-face", "ffhquv/topo_assets/hifi3dpp_mean_face.obj", "HiFi3D++ mean head with UVs", _TOPO
    ),
    *(
        Asset(
            f"ffhquv-{stem.replace('_', '-')}",
            f"ffhquv/topo_assets/{stem}.png",
            f"UV region mask {stem}.png"
            + (" (the cropface630 variant blends with it)" if stem in _CROPFACE_MASKS else ""),
            _TOPO,
        )
        for stem in (
            "hair_mask",
            "center_face_mask",
            "mouth_constract_mask",
            "nosal_base_mask",
            "nostril_mask",
            "major_valid_front_mask",
            "major_valid_left_mask",
            "major_valid_right_mask",
            "major_valid_whole_mask",
            "minor_valid_front_mask",
            "minor_valid_left_mask",
            "minor_valid_right_mask",
            "minor_valid_whole_mask",
        )
    ),
    Asset(
        EYE_LEFT,
        "ffhquv/eye_ball_assets/eyeLeft_mesh_move.obj",
        "template left eyeball in the HiFi3D++ head frame (770 vertices) (else a procedural one)",
        _EYE,
    ),
    Asset(EYE_RIGHT, "ffhquv/eye_ball_assets/eyeRight_mesh_move.obj", "template right eyeball", _EYE),
    Asset(
        EYE_TEX,
        "ffhquv/eye_ball_assets/eye_ball_tex.png",
        "the eyeball texture upstream copies verbatim (without it fk generates an iris texture)",
        _EYE,
    ),
)
