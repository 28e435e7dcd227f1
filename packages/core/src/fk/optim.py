"""Adam in plain tensor operations, for per-photo fitting.

``torch.optim``'s first optimiser imports ``torch._dynamo`` (its ``add_param_group`` is wrapped in
``torch._disable_dynamo``): about 1.4 s and 70 MiB per process on a 2-core CPU, more than a whole
photo's fit. Fitters that run once per photo use this one; training loops keep ``torch.optim``.

The update is Adam (Kingma & Ba, 2015) with bias correction, exactly as torch's single-tensor path
computes it (``foreach=False``, no weight decay, no amsgrad), so results equal ``torch.optim.Adam``'s
to float rounding (pinned by a test).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """``Adam(params_or_groups, lr, betas, eps)``: ``zero_grad()`` then ``step()``, like ``torch.optim.Adam``.

    ``params_or_groups`` is an iterable of tensors, or of dicts ``{"params": [...], "lr": ...}``;
    ``param_groups`` keeps torch's layout, so a schedule can change ``group["lr"]`` between steps.
    """

    def __init__(self, params_or_groups: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        items = list(params_or_groups)
        groups = items if items and isinstance(items[0], dict) else [{"params": items}]
        self.param_groups = [{"lr": lr, "betas": betas, "eps": eps, **g, "params": list(g["params"])}
                             for g in groups]
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p),
                                          "exp_avg_sq": torch.zeros_like(p)}
                st["step"] += 1
                t = st["step"]
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = group["lr"] / (1 - beta1**t)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                p.addcdiv_(m, denom, value=-step_size)


__all__ = ["Adam"]
