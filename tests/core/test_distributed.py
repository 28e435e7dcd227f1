"""fk.distributed: 2 gloo processes (torch.distributed.run, 127.0.0.1) with GlobalBatchNorm + DDP give the
gradients and BatchNorm statistics of one process on the whole batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import torch

WORKER = textwrap.dedent('''
    import os, sys, torch
    from torch import nn
    from fk.distributed import init_from_env, shutdown, sync_batchnorm

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    torch.manual_seed(1)
    x, t = torch.randn(4, 3, 10, 10), torch.randn(4, 3)
    world = init_from_env("cpu")
    model = net()
    run = model
    if world.distributed:
        model = sync_batchnorm(model, torch.device("cpu"))
        run = nn.parallel.DistributedDataParallel(model)
    n = 4 // world.size
    rows = slice(world.rank * n, (world.rank + 1) * n)
    loss = ((run(x[rows]) - t[rows]) ** 2).sum() / n
    loss.backward()
    if world.rank == 0:
        out = {k: p.grad for k, p in model.named_parameters()}
        out.update({k: b for k, b in model.named_buffers()})
        torch.save(out, sys.argv[1])
    shutdown()
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_whole_batch_gradients_and_statistics(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt")], env=env, check=True, timeout=300)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
                           str(tmp_path / "two.pt")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert set(one) == set(two) and len(one) >= 12
    # (with plain per-process BatchNorm instead of sync_batchnorm, the statistics and gradients differ: checked)
    for key, value in one.items():
        if value.is_floating_point():
            assert torch.allclose(two[key], value, rtol=1e-5, atol=1e-6), (key, float((two[key] - value).abs().max()))
        else:
            assert torch.equal(two[key], value), key
