"""Generated ``79999_iter.pth`` files: face-parsing.PyTorch's BiSeNet state dict, key for key.

The layout below is written out from face-parsing.PyTorch's ``model.py``/``resnet.py`` module tree (not
read off fk's :class:`fk.nets.bisenet.BiSeNet`), so a strict load of the generated file checks fk's
parameter names and shapes against the original's.

Usage::

    from fk.testing.bisenet import write_bisenet_checkpoint
    state = write_bisenet_checkpoint(tmp_path / "79999_iter.pth")            # torch's zip format
    write_bisenet_checkpoint(path, legacy=True, batch_counters=False)       # as saved by torch 0.4
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch


def original_layout(n_classes: int = 19) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every entry of the released state dict, in module order."""
    keys: list[tuple[str, tuple[int, ...]]] = []

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        keys.append((f"{name}.weight", (cout, cin, k, k)))

    def bn(name: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            keys.append((f"{name}.{leaf}", (c,)))
        keys.append((f"{name}.num_batches_tracked", ()))

    def conv_bn_relu(name: str, cin: int, cout: int, k: int) -> None:
        conv(f"{name}.conv", cout, cin, k)
        bn(f"{name}.bn", cout)

    conv("cp.resnet.conv1", 64, 3, 7)
    bn("cp.resnet.bn1", 64)
    for layer, (cin, cout, stride) in enumerate(((64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)), 1):
        for block in range(2):
            pre = f"cp.resnet.layer{layer}.{block}"
            c_in = cin if block == 0 else cout
            conv(f"{pre}.conv1", cout, c_in, 3)
            bn(f"{pre}.bn1", cout)
            conv(f"{pre}.conv2", cout, cout, 3)
            bn(f"{pre}.bn2", cout)
            if block == 0 and (cin != cout or stride != 1):
                conv(f"{pre}.downsample.0", cout, cin, 1)
                bn(f"{pre}.downsample.1", cout)
    for name, cin in (("arm16", 256), ("arm32", 512)):
        conv_bn_relu(f"cp.{name}.conv", cin, 128, 3)
        conv(f"cp.{name}.conv_atten", 128, 128, 1)
        bn(f"cp.{name}.bn_atten", 128)
    conv_bn_relu("cp.conv_head32", 128, 128, 3)
    conv_bn_relu("cp.conv_head16", 128, 128, 3)
    conv_bn_relu("cp.conv_avg", 512, 128, 1)
    conv_bn_relu("ffm.convblk", 256, 256, 1)
    conv("ffm.conv1", 64, 256, 1)
    conv("ffm.conv2", 256, 64, 1)
    for name, cin, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        conv_bn_relu(f"{name}.conv", cin, mid, 3)
        conv(f"{name}.conv_out", n_classes, mid, 1)
    return keys


def write_bisenet_checkpoint(
    path: str | Path, seed: int = 0, legacy: bool = False, batch_counters: bool = True
) -> OrderedDict:
    """A random state dict in the original layout saved with ``torch.save``; returned.

    Weights are He-scaled normals and BatchNorm statistics plausible (positive variances) so the
    network's outputs are finite and depend on the image. ``legacy`` writes torch's pre-1.6 format (the
    released file is from 2019); ``batch_counters=False`` leaves out ``num_batches_tracked`` as torch < 0.4.1
    did.
    """
    gen = torch.Generator().manual_seed(seed)
    state: OrderedDict = OrderedDict()
    for key, shape in original_layout():
        if key.endswith("num_batches_tracked"):
            if batch_counters:
                state[key] = torch.tensor(80000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # BatchNorm weight
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return state
