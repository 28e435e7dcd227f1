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

The asset names below are here so that plugin registrations can name them without importing torch.
"""

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_ASSET = f"inception/{INCEPTION_FILE}"
INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILE
