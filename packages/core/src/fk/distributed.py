"""Data-parallel training helpers for fk's trainers (``torchrun`` + DDP), on GPUs and on CPUs.

``torchrun`` starts one process per device and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process group it describes
(NCCL for CUDA, gloo otherwise). Deep3D converts R-Net's BatchNorm to ``torch.nn.SyncBatchNorm``
so the statistics are those of the global batch; torch's SyncBatchNorm runs on GPUs only, so
:func:`sync_batchnorm` uses :class:`GlobalBatchNorm` on the CPU: the same normalisation, with the
per-channel sums all-reduced (differentiably) over the processes.

With these, a run of N processes with per-process batch B computes what one process computes on
the global batch N·B, up to float summation order (``tests/deep3d/test_deep3d_ddp.py`` checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_from_env(device: str = "cpu") -> World:
    """Join the process group ``torchrun`` describes (no-op for a single process)."""
    world = World(int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
                  int(os.environ.get("LOCAL_RANK", "0")))
    if world.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend)
    return world


def shutdown() -> None:
    """Wait for every process, then leave the process group (no-op for a single process).

    A gloo process that exits with the group still open can abort in its C++ teardown
    ("terminate called without an active exception", SIGABRT) while a peer is still talking.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the processes, differentiable (the gradient is summed back); identity for one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x)


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a (detached) scalar over the processes, for logging."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x.detach()
    y = x.detach().clone()
    torch.distributed.all_reduce(y)
    return y / torch.distributed.get_world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch over all processes.

    Mean first, then the variance about it (two all-reduces, both differentiable); running
    statistics are updated as ``nn.BatchNorm`` does (unbiased variance, ``momentum``). In eval
    mode it is plain BatchNorm. Used on CPUs, where ``nn.SyncBatchNorm`` does not run.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        count = all_reduce_sum(x.new_tensor(float(x.numel() // x.shape[1])))
        mean = all_reduce_sum(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * count / torch.clamp(count - 1, min=1)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        y = centred / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _to_global(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias  # the same Parameters: optimisers keep them
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _to_global(child))
    return module


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers with global-batch statistics: ``nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm`
    elsewhere. Parameters and buffers are kept (same objects), so optimiser state and checkpoints carry over."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global(module)
