"""fk gmpi train as a user runs it: killed and resumed, 2 gloo processes against 1, and the embedded demo
learning. Every run is a separate process with one torch thread, so runs compare exactly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from .conftest import TRAIN_TEST_CONFIG


def _env(fk_home):
    return {**os.environ, "FK_HOME": str(fk_home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}


def _args(data, pkl, out, config, *extra):
    return ["train", "--config", str(config), "--dataset", "FFHQ256", "--data-root", str(data), "--pickle",
            str(pkl), "--out", str(out), *extra]


def _log(folder):
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def _config(tmp_path, **train):
    cfg = json.loads(json.dumps(TRAIN_TEST_CONFIG))
    cfg["GMPI"]["TRAIN"].update(train)
    path = tmp_path / "gmpi.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_killed_run_resumes_with_identical_losses(tmp_path, tiny_train_data, fk_home):
    data, pkl = tiny_train_data
    config = _config(tmp_path, total_iters=11)
    cmd = [sys.executable, "-m", "fk_gmpi"]
    extra = ("--batch-size", "2")  # GMPI's random noise, shading from iteration 3: RNG state and counters matter
    whole = subprocess.run(cmd + _args(data, pkl, tmp_path / "whole", config, *extra), env=_env(fk_home),
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + _args(data, pkl, out, config, *extra), env=_env(fk_home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "train_log.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 8:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-training (8 or 9 of 12 iterations logged)
    state = torch.load(out / "checkpoints" / "fk_state.pth", weights_only=True)
    assert state["iteration"] == 7  # the last save was after iteration 6 (sample_interval 3)

    resumed = subprocess.run(cmd + _args(data, pkl, out, config, *extra, "--resume"), env=_env(fk_home),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "iterations 7..11 (resumed)" in resumed.stderr
    a, b = _log(tmp_path / "whole"), _log(out)
    assert [r["step"] for r in b] == list(range(12))
    assert b == a  # every loss of every iteration, bit for bit
    for name in ("generator.pth", "ema.pth", "optimizer_D.pth"):
        x = torch.load(tmp_path / "whole" / "checkpoints" / name, weights_only=True)
        y = torch.load(out / "checkpoints" / name, weights_only=True)
        assert str(x) == str(y), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path, tiny_train_data, fk_home):
    data, pkl = tiny_train_data
    config = _config(tmp_path, total_iters=3)
    common = ("--noise-mode", "const")  # per-layer noise is per process; const noise makes runs comparable
    one = subprocess.run([sys.executable, "-m", "fk_gmpi", *_args(data, pkl, tmp_path / "one", config,
                                                                   "--batch-size", "2", *common)],
                         env=_env(fk_home), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "fk_gmpi",
                          *_args(data, pkl, tmp_path / "two", config, "--batch-size", "1", *common)],
                         env=_env(fk_home), capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert two.stdout.count("trained 4 iteration(s)") == 1  # rank 0 reports
    assert "2 process(es) x batch 1" in two.stderr

    a, b = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for key in ra:
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    for name in ("generator.pth", "discriminator.pth"):
        x = torch.load(tmp_path / "one" / "checkpoints" / name, weights_only=True)
        y = torch.load(tmp_path / "two" / "checkpoints" / name, weights_only=True)
        moved = torch.load(tmp_path / "one" / "checkpoints" / name.replace(".pth", "_0.pth"), weights_only=True)
        changed = 0
        for key, value in x.items():
            # mapping.w_avg tracks each process's own batch (GMPI's DDP: broadcast_buffers=False); it only
            # matters for truncation psi < 1, which GMPI never trains or evaluates with
            if value.is_floating_point() and key != "mapping.w_avg":
                assert torch.allclose(y[key], value, rtol=1e-4, atol=1e-5), (name, key)
                changed += int(not torch.equal(value, moved[key]))
        assert changed > 10, name  # the networks trained
    ema_one = torch.load(tmp_path / "one" / "checkpoints" / "ema.pth", weights_only=True)["shadow_params"]
    ema_two = torch.load(tmp_path / "two" / "checkpoints" / "ema.pth", weights_only=True)["shadow_params"]
    assert all(torch.allclose(p, q, rtol=1e-4, atol=1e-5) for p, q in zip(ema_one, ema_two, strict=True))
