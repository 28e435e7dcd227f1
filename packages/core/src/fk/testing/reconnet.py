"""Generated R-Net checkpoints in the released layout, and Deep3D's gated files under a test FK_HOME.

Usage::

    from fk.testing.reconnet import install_deep3d_assets, write_reconnet_checkpoint
    net = write_reconnet_checkpoint(tmp_path / "epoch_20.pth")      # {"net_recon": state_dict}
    net = install_deep3d_assets(fk_home)   # bfm/BFM_model_front.mat + deep3d/epoch_20.pth under the assets
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fk.nets.reconnet import DEEP3D, HeadLayout, ReconNet


def write_reconnet_checkpoint(path: str | Path, layout: HeadLayout = DEEP3D, seed: int = 0,
                              head_std: float = 1e-3, **extra: Any) -> ReconNet:
    """A random R-Net saved as ``{"net_recon": state_dict, **extra}``; returned in eval mode.

    The heads get small random weights (``head_std``) so the prediction is plausible (near the mean face,
    frontal) yet depends on the image.
    """
    path = Path(path)
    torch.manual_seed(seed)
    net = ReconNet(layout)
    with torch.no_grad():
        for head in net.final_layers:
            head.weight.normal_(0, head_std)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net_recon": net.state_dict(), **extra}, path)
    return net.eval()


def install_deep3d_assets(fk_home: str | Path, bfm_seed: int = 1, seed: int = 0) -> ReconNet:
    """A generated BFM09 (``bfm/BFM_model_front.mat``) and R-Net (``deep3d/epoch_20.pth``) in FK_HOME's assets."""
    from fk.models.synthetic import write_bfm_front

    assets = Path(fk_home) / "assets"
    bfm = assets / "bfm" / "BFM_model_front.mat"
    bfm.parent.mkdir(parents=True, exist_ok=True)
    write_bfm_front(bfm, seed=bfm_seed)
    return write_reconnet_checkpoint(assets / "deep3d" / "epoch_20.pth", seed=seed, epoch=20)
