"""Generated FID Inception weight files for tests: the real file's names and shapes, random values.

:func:`write_fid_inception_weights` saves a plain ``state_dict`` exactly as pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` is laid out (every conv/bn/fc tensor and the batch-norm
statistics, under the 2015-12-05 network's names); :func:`write_malicious_weights` a pickle whose
loading would call ``os.system``, which the loader must refuse.
"""

from __future__ import annotations

import pickle
from pathlib import Path


def write_fid_inception_weights(path: str | Path, seed: int = 0) -> Path:
    import torch

    from fk.nets.inception import FidInceptionV3

    torch.manual_seed(seed)
    net = FidInceptionV3()
    # batch-norm statistics measured on a few random images, so the features still vary after 94 layers
    # (random statistics would flatten them to a constant)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: the statistics of this one batch
    net.train()
    with torch.no_grad():
        net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def write_malicious_weights(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"Conv2d_1a_3x3.conv.weight": _Boom()}, fh, protocol=2)
    return path
