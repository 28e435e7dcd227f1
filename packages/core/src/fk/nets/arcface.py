"""ArcFace IResNet-50 (insightface ``arcface_torch`` naming) and its five-point 112² face warp.

Identity features shared by Deep3D's perceptual loss (deep3d.md §3.3), FFHQ-UV's identity term and
GMPI's identity metric: the face is warped to the 112² ArcFace template by a similarity fitted on five
landmarks, then embedded. The weights (insightface's ``ms1mv3_arcface_r50_fp16/backbone.pth``) are an
asset each plugin declares where its original keeps them; :func:`load_identity` returns None when absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fk.errors import InputError
from fk.landmarks import five_from_68 as five_points

# ArcFace's 112×112 five-point template (x, y): eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet50(nn.Module):
    """(B, 3, 112, 112) in [−1, 1] -> (B, 512) embedding."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 14, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self._in = 64
        self.layer1 = self._stage(64, layers[0])
        self.layer2 = self._stage(128, layers[1])
        self.layer3 = self._stage(256, layers[2])
        self.layer4 = self._stage(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512, eps=1e-5)

    def _stage(self, planes: int, blocks: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(self._in, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        mods = [IBasicBlock(self._in, planes, 2, down)] + [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
        self._in = planes
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


def similarity_to_template(points5: torch.Tensor) -> torch.Tensor:
    """(B, 5, 2) image points -> (B, 2, 3) least-squares similarity onto ARCFACE_TEMPLATE."""
    dst = points5.new_tensor(ARCFACE_TEMPLATE)
    b = points5.shape[0]
    x, y = points5[..., 0], points5[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # [x -y 1 0; y x 0 1] [a b tx ty]^T = [u; v]
    rows = torch.cat([torch.stack([x, -y, one, zero], -1), torch.stack([y, x, zero, one], -1)], 1)
    rhs = torch.cat([dst[:, 0].expand(b, 5), dst[:, 1].expand(b, 5)], 1)[..., None]
    a, bb, tx, ty = torch.linalg.lstsq(rows, rhs).solution[..., 0].unbind(-1)
    return torch.stack([torch.stack([a, -bb, tx], -1), torch.stack([bb, a, ty], -1)], 1)


def warp_112(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) in [0, 1] and (B, 2, 3) image->template similarity -> (B, 3, 112, 112), differentiable."""
    b, h, w, _ = image.shape
    full = torch.cat([matrix, matrix.new_tensor([0.0, 0.0, 1.0]).expand(b, 1, 3)], 1)
    inv = torch.linalg.inv(full)  # template pixel -> image pixel
    # Normalised coordinates (align_corners=True): pixel p <-> 2p/(n-1) − 1.
    to_norm = lambda n: matrix.new_tensor([[2 / (n[0] - 1), 0, -1], [0, 2 / (n[1] - 1), -1], [0, 0, 1]])  # noqa: E731
    from_norm_112 = torch.linalg.inv(to_norm((112, 112)))
    theta = (to_norm((w, h)) @ inv @ from_norm_112)[:, :2]
    grid = F.affine_grid(theta, (b, 3, 112, 112), align_corners=True)
    return F.grid_sample(image.permute(0, 3, 1, 2), grid, align_corners=True)


class IdentityFeatures(nn.Module):
    """image (B,H,W,3) in [0,1] + landmarks (B,68,2) -> L2-normalised (B,512) ArcFace features."""

    def __init__(self, net: IResNet50):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, image: torch.Tensor, landmarks68: torch.Tensor) -> torch.Tensor:
        m = similarity_to_template(five_points(landmarks68.to(image.dtype)))
        face = warp_112(image, m) * 2.0 - 1.0
        return F.normalize(self.net(face), dim=-1)


def load_identity(path: str | Path | None, device: torch.device | str = "cpu",
                  asset: str | None = None) -> IdentityFeatures | None:
    """ArcFace features from ``path``, else from the ``asset`` (a name under fk's asset folder).

    None when no path is given and the asset is absent (or no asset is named); a given path that does
    not exist is an error.
    """
    from fk.assets import asset_path

    if not path and asset is None:
        return None
    p = Path(path).expanduser() if path else asset_path(asset)
    if not p.exists():
        if path:
            raise InputError(f"{p}: ArcFace weights not found", hint="fix the arcface path or leave it empty")
        return None
    from fk.io.weights import load_torch_weights

    state = load_torch_weights(p, "ArcFace weight file",
                               "use insightface arcface_torch's ms1mv3_arcface_r50 backbone.pth")
    net = IResNet50()
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"{p}: not an ArcFace IResNet-50 state dict ({str(exc).splitlines()[0][:120]})",
                         hint="use insightface arcface_torch's ms1mv3_arcface_r50 backbone.pth") from None
    return IdentityFeatures(net).to(device)
