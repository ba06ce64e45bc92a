"""The trainer on CPU: every architecture learns on tiny data, resumes after a kill, runs DDP."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import models

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import train  # noqa: E402

ARCHS = [s.name for s in models.list_architectures()]
TINY = ["--batch_size", "20", "--warmup_epochs", "1", "--mixup", "0", "--cutmix", "0",
        "--progress", "false", "--seed", "0"]


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_run_learns_and_exports(arch, tiny_data, tmp_path):
    # 60 images, 3 steps an epoch (VGG-16 trains at 4 img/s here: 20 images, 2 steps); one optimiser
    # for all, since this checks the trainer, not the recipes, which are tuned for the full data on a GPU
    epochs = {"lenet5": 12, "vit": 10, "mlp_mixer": 10, "vgg16": 8}.get(arch, 6)
    per_class = "2" if arch == "vgg16" else "0"
    cfg = train.parse_config(["--arch", arch, "--data", str(tiny_data), "--epochs", str(epochs),
                              "--out", str(tmp_path / "runs"), "--export", str(tmp_path / "ck"),
                              "--label_smoothing", "0", "--optimizer", "adamw", "--lr", "1e-3",
                              "--weight_decay", "0", "--ema", "0", "--crop_scale_min", "0.8",
                              "--limit_per_class", per_class, *TINY])
    if arch in ("vit", "mlp_mixer"):
        cfg.lr = 5e-4
    if arch == "vgg16":
        cfg.batch_size, cfg.lr, cfg.crop_scale_min = 10, 3e-4, 1.0
    result = train.main(cfg)
    rows = result["rows"]
    assert len(rows) == epochs and result["finished"]
    first, last = rows[0]["train_loss"], min(r["train_loss"] for r in rows[-2:])
    assert last < first, f"{arch}: train loss did not fall: {[r['train_loss'] for r in rows]}"
    model, card = models.load(arch, tmp_path / "ck")
    assert card["epochs"] == epochs and card["metrics"]["val_images"] == 20
    assert 0 <= card["metrics"]["val_top1"] <= 100 and len(card["metrics"]["confusion"]) == 10
    assert (tmp_path / "ck" / arch / "metrics.csv").exists()
    assert card["command"].startswith(f"python scripts/train.py --arch {arch}")


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _train_cmd(tiny_data, out, *extra):
    return [sys.executable, str(REPO / "scripts" / "train.py"), "--arch", "bn_convnet", "--data", str(tiny_data),
            "--epochs", "5", "--out", str(out), "--export", "", "--deterministic", "true", *TINY, *extra]


def test_kill_and_resume_matches_uninterrupted(tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(tiny_data, tmp_path / "a"), check=True, env=env, capture_output=True)
    straight = _rows(tmp_path / "a" / "bn_convnet-explorer" / "metrics.csv")

    state = tmp_path / "b" / "bn_convnet-explorer" / "state.pt"
    proc = subprocess.Popen(_train_cmd(tiny_data, tmp_path / "b"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and torch.load(state, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=True)["epoch"]
    assert 2 <= killed_at < 5
    subprocess.run(_train_cmd(tiny_data, tmp_path / "b", "--resume", "true"), check=True, env=env,
                   capture_output=True)
    resumed = _rows(tmp_path / "b" / "bn_convnet-explorer" / "metrics.csv")
    keys = ("epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in straight]


def test_ddp_two_processes_gloo(tiny_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           str(REPO / "scripts" / "train.py"), "--arch", "lenet5", "--data", str(tiny_data), "--epochs", "8",
           "--out", str(tmp_path / "runs"), "--export", str(tmp_path / "ck"), "--device", "cpu",
           "--batch_size", "20", "--progress", "false", "--lr", "0.005"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    _, card = models.load("lenet5", tmp_path / "ck")
    assert card["hardware"].startswith("2x") and card["epochs"] == 8
    rows = _rows(tmp_path / "runs" / "lenet5-explorer" / "metrics.csv")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
