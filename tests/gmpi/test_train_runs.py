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
    # GMPI's random noise, shading from iteration 3: RNG states and counters matter
    extra = ("--batch-size", "2")
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
        start = name.replace(".pth", "_0.pth")
        moved = torch.load(tmp_path / "one" / "checkpoints" / start, weights_only=True)
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


@pytest.mark.slow
def test_embedded_demo_training_learns(tmp_path, tiny_train_data, one_thread):
    """40 iterations on the demo head (16², 8 poses) from a random tiny StyleGAN2, fixed seed.

    Two signals, each justified: (1) D's loss softplus(-D(real)) + softplus(D(fake)) starts at 2 ln 2 (D's
    logits are ~0 on images it never saw) and falls as D learns to separate real from fake, so its mean over
    the last 10 iterations is clearly lower; (2) the mean-image gap (MSE between the mean of 32 EMA samples
    and the mean real image, ``fk_gmpi.train_demo.mean_image_gap``): the real images are one head under
    small pose changes, so their mean is a face on grey; a random StyleGAN2 is far from it, and G must move
    towards it to fool D. (Shading starts at iteration 1000 as in GMPI, so none of it here.)
    """
    from fk_gmpi.train import Trainer, TrainOptions, train
    from fk_gmpi.train_config import settings_from_raw
    from fk_gmpi.train_demo import mean_image_gap

    data, pkl = tiny_train_data
    raw = {"GMPI": {"TRAIN": {"total_iters": 39, "sample_interval": 1000, "model_save_interval": 1000,
                              "n_view_per_z_in_train": 2}, "MPI": {"n_gen_planes": 4}}}
    opts = TrainOptions(dataset="FFHQ256", data_root=data, out=tmp_path / "demo", pickle=pkl, batch_size=4,
                        demo=True, progress=False)
    settings = settings_from_raw(raw, "test")
    trainer = Trainer(settings, opts)
    before = mean_image_gap(trainer)
    train(settings, opts, say=lambda line: None, trainer=trainer)
    after = mean_image_gap(trainer)
    log = _log(tmp_path / "demo")
    first = sum(r["d_loss"] for r in log[:3]) / 3
    last = sum(r["d_loss"] for r in log[-10:]) / 10
    assert abs(log[0]["d_loss"] - 2 * 0.6931) < 0.3
    assert last < first - 0.25, (first, last)
    assert after < 0.85 * before, (before, after)


@pytest.mark.slow
def test_demo_command_writes_plot_samples_and_page(tmp_path, fk_home, one_thread):
    from fk_gmpi.train_demo import DEMO_NOTE, run_demo

    info = run_demo(tmp_path / "demo", iterations=2, say=lambda line: None)
    out = tmp_path / "demo"
    assert info["iterations"] == 3
    for rel in ("losses.png", "samples/000000.png", "samples/000002.png", "demo_data_preview.png",
                "checkpoints/ema.pth", "signal.json", "demo_data/ffhq32x32.zip"):
        assert (out / rel).is_file(), rel
    page = (out / "index.html").read_text()
    assert "DEMO" in DEMO_NOTE
    assert DEMO_NOTE.replace("'", "&#x27;") in page
    assert "losses.png" in page
    assert "samples/000002.png" in page
