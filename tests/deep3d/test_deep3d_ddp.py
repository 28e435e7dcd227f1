"""`torchrun --nproc_per_node=2 -m fk_deep3d train` on CPU (gloo, 127.0.0.1 only) computes what one process
computes on the same global batch: the same losses and the same saved checkpoint, up to float rounding."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from fk_deep3d.train import TrainConfig, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(folder):
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path, make_dataset, fk_home):
    data = tmp_path / "data"
    make_dataset(data, n=4)
    # Global batch 2 over 4 images: 2 steps (one epoch). Augmentation on: it must not depend on the process.
    args = dict(model="demo", epochs=1, batch_size=2, lr=1e-4, renderer="cpu", init_path="none", seed=3)
    single = train(TrainConfig(data=data, out=tmp_path / "one", **args))

    env = {**os.environ, "FK_HOME": str(fk_home), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "fk_deep3d", "train", str(data), "--out", str(tmp_path / "two"), "--model", "demo",
           "--epochs", "1", "--batch-size", "2", "--lr", "1e-4", "--renderer", "cpu", "--init-path", "none",
           "--seed", "3"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("trained 2 steps") == 1  # rank 0 reports

    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2]
    for a, b in zip(one, two, strict=True):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)
    assert [r["loss"] for r in one] == pytest.approx(single["history"], rel=1e-12)

    ckpt_one = torch.load(tmp_path / "one" / "epoch_1.pth", weights_only=True)
    ckpt_two = torch.load(tmp_path / "two" / "epoch_1.pth", weights_only=True)
    assert ckpt_one["step"] == ckpt_two["step"] == 2
    net_one, net_two = ckpt_one["net_recon"], ckpt_two["net_recon"]
    assert set(net_one) == set(net_two)
    names = list(net_one)
    lr, steps = args["lr"], 2
    differing = total = 0
    for key, value in net_one.items():
        other = net_two[key]
        if not value.is_floating_point():
            assert torch.equal(other, value), key  # num_batches_tracked
        elif "running_" in key:  # BatchNorm statistics: those of the global batch
            assert torch.allclose(other, value, rtol=1e-4, atol=1e-6), (key, float((other - value).abs().max()))
        else:
            # Float32 rounding, amplified: the backbone's gradients are ill-conditioned (measured: two
            # single-process runs, oneDNN convolutions on and off, differ by 2.4% in them; DDP against one
            # process by 1.5%), and Adam moves each weight by about lr * sign(gradient) whatever its size, so an
            # element whose gradient is at rounding level may step either way. So: no element further apart
            # than Adam's step bound, and nearly all equal (measured: 0.3% differ).
            assert float((other - value).abs().max()) <= 2 * lr * steps, key
            differing += int((~torch.isclose(other, value, rtol=1e-4, atol=2e-6)).sum())
            total += value.numel()
    assert differing / total < 0.01, differing / total
    assert all(bool(net_one[f"final_layers.{i}.bias"].abs().sum() > 0) for i in range(7))  # trained, not zeros
    # Adam's first moments hold each step's gradient, averaged over the processes as over the global batch:
    # the heads' to 1e-3, the backbone's in direction (the rounding above; measured cosine >= 0.9998)
    state_one, state_two = ckpt_one["opt_00"]["state"], ckpt_two["opt_00"]["state"]
    for i, key in enumerate(name for name in names if not name.split(".")[-1].startswith(("running", "num_"))):
        m1, m2 = state_one[i]["exp_avg"], state_two[i]["exp_avg"]
        if key.startswith("final_layers"):
            assert torch.allclose(m2, m1, rtol=1e-3, atol=1e-3 * float(m1.abs().max())), key
        else:
            cos = torch.nn.functional.cosine_similarity(m1.flatten(), m2.flatten(), dim=0)
            assert cos > 0.998, (key, float(cos))
