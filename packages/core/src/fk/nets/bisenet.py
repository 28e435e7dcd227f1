"""BiSeNet face parsing: face-parsing.PyTorch's 19-class CelebAMask-HQ model (``79999_iter.pth``).

Written from the published architecture (ResNet-18 context path with attention refinement, feature
fusion, three output heads; parameter names as in the released ``79999_iter.pth`` state dict so it loads
strictly). Only the main head is used at inference. The weights are a gated asset, read with
``torch.load(weights_only=True)``: a file holding anything but tensors is refused, never executed.

Users: CoRA's AutoEyeMask (``fk_eyeball``: its own pad-and-resize rule, eye labels 4/5) and FFHQ-UV's
parse mask (``fk_uvfit``: :func:`parse_labels`, face-parsing.PyTorch's ``get_seg_img`` rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# CelebAMask-HQ's 19 classes in the network's output order (face-parsing.PyTorch's ``part_idx``).
CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
           "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")  # fmt: skip
INPUT_SIZE = 512
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(short + out)


def _layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class Resnet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _layer(64, 64, 1)
        self.layer2 = _layer(64, 128, 2)
        self.layer3 = _layer(128, 256, 2)
        self.layer4 = _layer(256, 512, 2)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        feat = self.conv(x)
        # global pooling with avg_pool2d, as upstream, not mean(): the same float32 sums, so the same logits
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(F.avg_pool2d(feat, feat.shape[2:]))))
        return feat * atten


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(F.avg_pool2d(feat32, feat32.shape[2:]))
        feat32_sum = self.arm32(feat32) + F.interpolate(avg, size=feat32.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, size=feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, size=feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp, fcp):
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(F.avg_pool2d(feat, feat.shape[2:])))))
        return feat * atten + feat


class Head(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, n_classes: int = 19) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = Head(256, 256, n_classes)
        self.conv_out16 = Head(128, 64, n_classes)  # training-time auxiliary heads: loaded, unused
        self.conv_out32 = Head(128, 64, n_classes)

    def forward(self, x):
        feat_res8, feat_cp8, _ = self.cp(x)
        out = self.conv_out(self.ffm(feat_res8, feat_cp8))
        return F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=True)


def load_bisenet(path: str | Path) -> BiSeNet:
    """BiSeNet with ``79999_iter.pth`` loaded strictly through torch's restricted unpickler.

    Every parameter and running statistic must be there with its shape; only BatchNorm's
    ``num_batches_tracked`` counters (absent from files saved by torch < 0.4.1, unused at inference) may
    be missing.
    """
    from fk.errors import InputError
    from fk.io.weights import load_torch_weights

    p = Path(path)
    state = load_torch_weights(
        p, "BiSeNet weight file", "use the released 79999_iter.pth (face-parsing.PyTorch)"
    )
    net = BiSeNet(len(CLASSES))
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"missing {missing[:3]}, unexpected {list(unexpected)[:3]}")
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{p}: not face-parsing.PyTorch's 19-class BiSeNet ({str(exc).splitlines()[0][:160]})",
            hint="use 79999_iter.pth from face-parsing.PyTorch",
        ) from None
    return net.eval()


def normalise(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised (torchvision's ``Normalize`` with MEAN, STD)."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def parse_labels(net: nn.Module, rgb: np.ndarray, device: str = "cpu", resize=None) -> np.ndarray:
    """(H, W) int64 class ids (:data:`CLASSES`) of a photo by face-parsing.PyTorch's ``get_seg_img`` rule.

    That rule, as FFHQ-UV runs it: the 0..255 photo resized to 512² (cv2's ``INTER_LINEAR``: half-pixel
    centres, no antialiasing), truncated to uint8, ``ToTensor`` + ImageNet normalisation; the 19 logit
    maps resized back to the photo's size the same way, then argmax. Memory: 19 float32 maps of the photo.

    ``resize``: ``cv2.resize`` (``f(array HxWxC float32, (width, height))``) for upstream's exact numbers;
    by default torch's bilinear ``interpolate``, whose rounding differs from OpenCV's by up to ~3e-4 on the
    logits, which can flip a label at a near-tie.
    """
    img = np.asarray(rgb, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb: expected (H, W, 3), got {tuple(img.shape)}")
    h, w = img.shape[:2]
    if resize is None:
        x = torch.as_tensor(np.ascontiguousarray(img), device=device).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = torch.floor(x.clamp(0, 255)) / 255.0  # astype(uint8) truncates
    else:
        small = np.asarray(resize(np.ascontiguousarray(img), (INPUT_SIZE, INPUT_SIZE))).astype(np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None].to(device).float() / 255.0
    with torch.no_grad():
        logits = net(normalise(x))
        if resize is None:
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            return logits[0].argmax(0).cpu().numpy()
    maps = np.ascontiguousarray(logits[0].permute(1, 2, 0).cpu().numpy())
    return np.asarray(resize(maps, (w, h))).argmax(2).astype(np.int64)
