"""Gated face-model files fk can use but never downloads (read by ``fk.builtin``'s ``fk_assets`` hook).

Import-light: only :class:`fk.components.Asset` descriptors. Paths are relative to the asset root
``$FK_HOME/assets`` (default ``~/.fk/assets``).
"""

from __future__ import annotations

from fk.components import Asset

BFM_FRONT = "bfm09-front"
HIFI3DPP_INFO = "hifi3dpp-model-info"
BFM_SOURCES = ("bfm09-morphable-model", "bfm09-exp-pca", "bfm09-std-exp", "bfm09-front-idx",
               "bfm09-exp-idx", "bfm09-facemodel-info")

_BFM_REGISTER = ("Register for the Basel Face Model 2009 at https://faces.dmi.unibas.ch/bfm/ "
                 "(Universität Basel; 'Download' after accepting the licence), unpack PublicMM1/01_MorphableModel.mat")
_DEEP3D_BFM = ("Copy it from the BFM/ folder of https://github.com/sicxu/Deep3DFaceRecon_pytorch "
               "(it ships there)")
_CONVERT = "fk models convert-bfm --src $FK_HOME/assets/bfm --out $FK_HOME/assets/bfm/BFM_model_front.mat"

ASSETS: tuple[Asset, ...] = (
    Asset(BFM_FRONT, "bfm/BFM_model_front.mat",
          "BFM09 cropped to Deep3D's 35,709-vertex front face (Deep3D's BFM_model_front.mat)",
          "Build it from the BFM09 originals (the files listed under bfm/) with fk models convert-bfm, "
          "or copy a BFM_model_front.mat that Deep3DFaceRecon_pytorch generated into bfm/",
          convert=_CONVERT),
    Asset("bfm09-morphable-model", "bfm/01_MorphableModel.mat",
          "Basel Face Model 2009 (gated; shape/texture PCA)", _BFM_REGISTER),
    Asset("bfm09-exp-pca", "bfm/Exp_Pca.bin",
          "Guo et al.'s expression basis for BFM09 (79 components)",
          "Download Exp_Pca.bin from the Google Drive link in the README of "
          "https://github.com/sicxu/Deep3DFaceRecon_pytorch ('Prepare prerequisite models', "
          "CoarseData from Guo et al.'s 3DFace repository)"),
    Asset("bfm09-std-exp", "bfm/std_exp.txt", "standard deviations of the 79 expression components", _DEEP3D_BFM),
    Asset("bfm09-front-idx", "bfm/BFM_front_idx.mat",
          "35,709 front-face vertex ids into the 53,215-vertex expression mesh", _DEEP3D_BFM),
    Asset("bfm09-exp-idx", "bfm/BFM_exp_idx.mat",
          "53,215 expression-mesh vertex ids into BFM09's 53,490 vertices", _DEEP3D_BFM),
    Asset("bfm09-facemodel-info", "bfm/facemodel_info.mat",
          "triangles, point_buf, 68 keypoints, front and skin masks for the 35,709-vertex face", _DEEP3D_BFM),
    Asset(HIFI3DPP_INFO, "hifi3dpp/hifi3dpp_model_info.mat",
          "HiFi3D++ morphable model (research use only) as FFHQ-UV uses it",
          "Download topo_assets from the Baidu Netdisk link in https://github.com/csbhr/FFHQ-UV "
          "(README_ckp_topo.md; HiFi3D++ itself: https://github.com/czh-98/REALY) and put "
          "hifi3dpp_model_info.mat into hifi3dpp/"),
    Asset("hifi3dpp-unwrap-info", "hifi3dpp/unwrap_1024_info.mat",
          "HiFi3D++ texel -> triangle/barycentric table for 1024² UV unwrapping (FFHQ-UV topo_assets)",
          "From FFHQ-UV's topo_assets (same download as hifi3dpp_model_info.mat), into hifi3dpp/"),
    Asset("hifi3dpp-unwrap-mask", "hifi3dpp/unwrap_1024_info_mask.png",
          "valid-texel mask of the 1024² HiFi3D++ UV map (FFHQ-UV topo_assets)",
          "From FFHQ-UV's topo_assets (same download as hifi3dpp_model_info.mat), into hifi3dpp/"),
)
