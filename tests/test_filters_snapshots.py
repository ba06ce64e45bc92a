"""First-layer snapshots saved while training, and the spectral measure of kernel structure."""
from __future__ import annotations

import math
import pickle
import runpy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import models
from explorer import filters
from training import config, schedule

REPO = Path(__file__).resolve().parent.parent
train_main = runpy.run_path(str(REPO / "scripts" / "train.py"))["main"]  # the script's main, run in this process


# --- snapshots ----------------------------------------------------------------------------

def test_snapshot_epochs():
    assert schedule.snapshot_epochs(6) == [0, 1, 2, 5, 6]
    assert schedule.snapshot_epochs(60) == [0, 1, 2, 5, 10, 20, 40, 60]
    assert schedule.snapshot_epochs(40) == [0, 1, 2, 5, 10, 20, 40]
    assert schedule.snapshot_epochs(1) == [0, 1]


@pytest.mark.training
def test_tiny_run_exports_snapshots_that_survive_resume(tiny_data, tmp_path):
    args = ["--arch", "lenet5", "--data", str(tiny_data), "--epochs", "6", "--out", str(tmp_path / "runs"),
            "--export", str(tmp_path / "ck"), "--batch_size", "20", "--progress", "false", "--ema", "0.5"]
    first = train_main(config.parse_config([*args, "--stop_after_epochs", "3"]))
    assert not first["finished"]
    state = torch.load(tmp_path / "runs" / "lenet5-explorer" / "state.pt", weights_only=True)
    assert sorted(state["filters"]) == [0, 1, 2]
    assert train_main(config.parse_config([*args, "--resume", "true"]))["finished"]

    path = tmp_path / "ck" / "lenet5" / filters.SNAPSHOTS
    snaps = filters.load_snapshots(path)
    assert [e for e, _ in snaps] == [0, 1, 2, 5, 6]
    assert all(w.shape == (6, 3, 5, 5) and w.dtype == torch.float16 for _, w in snaps)
    assert torch.equal(snaps[1][1], state["filters"][1])  # kept across the resume, not recomputed

    torch.manual_seed(0)  # what train_main seeds before building the model
    init = models.create("lenet5", num_classes=10).stem.weight.detach().half()
    assert torch.equal(snaps[0][1], init)
    model, card = models.load("lenet5", tmp_path / "ck")
    assert torch.equal(snaps[-1][1], model.stem.weight.detach().half())  # the exported (EMA) weights
    assert not torch.equal(snaps[0][1], snaps[-1][1])
    assert card["filter_snapshots"]["epochs"] == [0, 1, 2, 5, 6]
    assert card["filter_snapshots"]["layer"] == model.stem_path
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "lenet5" and meta["epochs"] == "[0, 1, 2, 5, 6]"


def test_load_snapshots_absent_and_never_unpickles(tmp_path):
    assert filters.load_snapshots(tmp_path / "missing.safetensors") == []
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "filters.safetensors"
    bad.write_bytes(pickle.dumps({"epoch_0": Payload()}))
    with pytest.raises(Exception):
        filters.load_snapshots(bad)
    assert not marker.exists()


def test_save_load_round_trip_sorted(tmp_path):
    snaps = {10: torch.randn(4, 3, 3, 3), 2: torch.randn(4, 3, 3, 3), 0: torch.randn(4, 3, 3, 3)}
    filters.save_snapshots(snaps, tmp_path / "f.safetensors", "x", "trunk.conv")
    out = filters.load_snapshots(tmp_path / "f.safetensors")
    assert [e for e, _ in out] == [0, 2, 10]
    assert all(torch.equal(w, snaps[e].half()) for e, w in out)


# --- low-frequency share, structure ratio -------------------------------------------------

def _blobs(n=64, k=11, sigma=2.0, seed=0):
    """Smooth colour blobs: a Gaussian at a random place, a random colour per channel."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(k).float(), torch.arange(k).float(), indexing="ij")
    c = 2 + (k - 4) * torch.rand(n, 2, generator=g)
    blob = torch.exp(-((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    return torch.randn(n, 3, 1, 1, generator=g) * blob[:, None]


def _gratings(n=64, k=11, freq=0.12, seed=0):
    """Oriented edges: a cosine grating at a random angle and phase under a Gaussian window."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(k).float() - k // 2, torch.arange(k).float() - k // 2, indexing="ij")
    th = math.pi * torch.rand(n, generator=g)[:, None, None]
    ph = 2 * math.pi * torch.rand(n, generator=g)[:, None, None]
    wave = torch.cos(2 * math.pi * freq * (xx * th.cos() + yy * th.sin()) + ph)
    window = torch.exp(-(xx ** 2 + yy ** 2) / (2 * 3.0 ** 2))
    return (wave * window)[:, None].expand(n, 3, k, k) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)


def _kaiming(shape, seed):
    w = torch.empty(shape)
    torch.nn.init.kaiming_normal_(w, generator=torch.Generator().manual_seed(seed))
    return w


def test_low_frequency_share_range_and_shape():
    w = torch.randn(32, 3, 7, 7)
    s = filters.low_frequency_share(w)
    assert s.shape == (32,) and bool(((s >= 0) & (s <= 1)).all())
    assert torch.allclose(filters.low_frequency_share(5 * w + 3), s, atol=1e-5)  # scale and offset free
    flat = torch.ones(2, 3, 5, 5)
    assert filters.low_frequency_share(flat).isnan().all()  # nothing left after removing the means


@pytest.mark.parametrize("make", [_blobs, _gratings])
def test_smooth_kernels_score_far_above_noise(make):
    w = make()
    assert filters.low_frequency_share(w).min() > 0.8
    assert filters.structure_ratio(w) > 3.5
    noise = torch.randn_like(w)
    assert 0.85 < filters.structure_ratio(noise) < 1.15


@pytest.mark.parametrize("shape", [(6, 3, 5, 5), (96, 3, 11, 11), (64, 3, 3, 3), (64, 3, 7, 7), (192, 3, 16, 16)])
def test_random_init_ratio_is_about_one(shape):
    # one init of a small layer scatters (LeNet's 6 kernels: s.d. about 0.1); on average it is 1
    ratios = torch.tensor([filters.structure_ratio(_kaiming(shape, seed)) for seed in range(20)])
    assert 0.92 < ratios.mean() < 1.08
    assert bool(((ratios > 0.6) & (ratios < 1.4)).all())
    if shape[0] >= 64:
        assert bool(((ratios > 0.85) & (ratios < 1.15)).all())


def test_checkerboard_scores_below_noise():
    k = 8
    board = ((torch.arange(k)[:, None] + torch.arange(k)[None, :]) % 2).float()
    assert filters.structure_ratio(board.expand(4, 3, k, k).clone()) < 0.2


def test_random_init_share_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = filters.random_init_share((64, 3, 7, 7))
    after = torch.rand(1)
    assert a == filters.random_init_share((64, 3, 7, 7)) and torch.equal(before, after)


def test_snapshots_keep_the_first_96_kernels(tmp_path):
    """A Mixer's 512 patch kernels at 8 epochs were 6 MB; snapshots keep AlexNet's 96."""
    w = torch.randn(512, 3, 16, 16)
    path = filters.save_snapshots({0: w, 5: w * 2}, tmp_path / "f.safetensors", "mlp_mixer", "trunk.stem.proj")
    snaps = filters.load_snapshots(path)
    assert [e for e, _ in snaps] == [0, 5] and all(s.shape == (96, 3, 16, 16) for _, s in snaps)
    assert torch.allclose(snaps[1][1].float(), (w * 2)[:96], atol=1e-2)
    assert path.stat().st_size < 2 * 96 * 3 * 16 * 16 * 2 + 4096


def test_filters_page_opens_on_alexnet_only_once_its_kernels_show_structure():
    from explorer.filters import teaching_default
    assert teaching_default({"alexnet": 1.1, "googlenet": 4.0, "zfnet": 2.4}) == "googlenet"
    assert teaching_default({"alexnet": 2.1, "googlenet": 4.0}) == "alexnet"
    assert teaching_default({"resnet18": 1.5, "vit": 1.2}) == "resnet18"
    assert teaching_default({}) is None
