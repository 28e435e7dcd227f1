"""fk-plugin-deep3d's asset names and file names (a leaf module: imports nothing of the plugin).

The registration module (``plugin``), the runners, training and the ArcFace loader all read
these; keeping them here means none of those has to import another to learn a name.
"""

from __future__ import annotations

# Deep3DFaceRecon_pytorch's released R-Net checkpoint (dict with 'net_recon').
CHECKPOINT_ASSET = "deep3d/epoch_20.pth"
# insightface arcface_torch IResNet-50 backbone for the identity term (Deep3D's checkpoints/recog_model).
ARCFACE_ASSET = "deep3d/arcface_r50.pth"
# torchvision's ImageNet ResNet-50 (IMAGENET1K_V1), R-Net's starting point (Deep3D's checkpoints/init_model).
IMAGENET_RESNET50_FILE = "resnet50-0676ba61.pth"
IMAGENET_RESNET50_ASSET = f"deep3d/{IMAGENET_RESNET50_FILE}"
IMAGENET_RESNET50_URL = f"https://download.pytorch.org/models/{IMAGENET_RESNET50_FILE}"
