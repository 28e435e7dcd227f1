"""Shared neural networks that several plugins build on (import-light: submodules import torch).

- :mod:`fk.nets.stylegan2`: StyleGAN2-ADA's generator and discriminator with NVIDIA's parameter
  names, and a loader for NVIDIA's ``.pkl`` snapshots that never runs pickled code.
- :mod:`fk.nets.resnet`: ResNet-50 with torchvision's parameter names (and the ImageNet start).
- :mod:`fk.nets.reconnet`: R-Net, the ResNet-50 coefficient regressor of Deep3D and FFHQ-UV (two head
  layouts), loaded weights-only from the released checkpoints.
- :mod:`fk.nets.arcface`: ArcFace IResNet-50 and its five-point 112² warp (identity features for Deep3D's
  loss, FFHQ-UV's identity term and GMPI's identity metric).
- :mod:`fk.nets.inception`: the 2015-12-05 FID Inception-v3 (torch-fidelity's / pytorch-fid's network).
- :mod:`fk.nets.bisenet`: face-parsing.PyTorch's 19-class BiSeNet (``79999_iter.pth``; CoRA's eye masks,
  FFHQ-UV's parse mask).
- :mod:`fk.nets.lpips`: LPIPS-VGG16 (FFHQ-UV's perceptual term, CoRA's mesh stage and validation metric).

The asset names below are here so that plugin registrations can name them without importing torch;
the LPIPS files are core's assets (``fk.builtin``), since more than one plugin uses them.
"""

from fk.components import Asset

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_ASSET = f"inception/{INCEPTION_FILE}"
INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILE

LPIPS_VGG_ASSET, LPIPS_LIN_ASSET = "lpips-vgg16", "lpips-vgg-lin"

ASSETS: tuple[Asset, ...] = (
    Asset(
        LPIPS_VGG_ASSET,
        "lpips/vgg16-397923af.pth",
        "torchvision's VGG16 state dict: LPIPS's trunk (FFHQ-UV stage 2's perceptual term, CoRA's mesh "
        "stage; off without it)",
        "Download https://download.pytorch.org/models/vgg16-397923af.pth into lpips/",
    ),
    Asset(
        LPIPS_LIN_ASSET,
        "lpips/vgg.pth",
        "LPIPS v0.1 linear layers for VGG16 (lpips package, weights/v0.1/vgg.pth)",
        "Copy lpips/weights/v0.1/vgg.pth from https://github.com/richzhang/PerceptualSimilarity (or "
        "`pip download lpips`) into lpips/",
    ),
)
