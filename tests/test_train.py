"""The trainer on CPU: every architecture learns on tiny data, resumes after a kill, runs DDP;
the held-out slice, the augmentation on the device, the recipe knobs, and the zoo driver."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import runpy
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import models
from models import data
from training import augment, config, schedule, steps
from training import data as train_data

REPO = Path(__file__).resolve().parent.parent
train_main = runpy.run_path(str(REPO / "scripts" / "train.py"))["main"]  # the script's main, run in this process

ARCHS = [s.name for s in models.list_architectures()]
TINY = ["--batch_size", "20", "--warmup_epochs", "1", "--mixup", "0", "--cutmix", "0", "--augment", "none",
        "--erase", "0", "--progress", "false", "--seed", "0"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.training
def test_tiny_run_learns_and_exports(arch, tiny_data, tmp_path):
    # 60 images, 3 steps an epoch (VGG-16 trains at 4 img/s here: 20 images, 2 steps); one optimiser
    # for all, since this checks the trainer, not the recipes, which are tuned for the full data on a GPU
    epochs = {"lenet5": 12, "vit": 10, "mlp_mixer": 10, "vgg16": 8}.get(arch, 6)
    per_class = "2" if arch == "vgg16" else "0"
    cfg = config.parse_config(["--arch", arch, "--data", str(tiny_data), "--epochs", str(epochs),
                              "--out", str(tmp_path / "runs"), "--export", str(tmp_path / "ck"),
                              "--label_smoothing", "0", "--optimizer", "adamw", "--lr", "1e-3",
                              "--weight_decay", "0", "--ema", "0", "--crop_scale_min", "0.8",
                              "--limit_per_class", per_class, *TINY])
    if arch in ("vit", "mlp_mixer"):
        cfg.lr = 5e-4
    if arch == "vgg16":
        cfg.batch_size, cfg.lr, cfg.crop_scale_min = 10, 3e-4, 1.0
    result = train_main(cfg)
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


def kill_after_epoch(cmd: list[str], state: Path, env: dict, epoch: int = 2) -> None:
    """Start a training and SIGKILL it once its state file has `epoch` epochs in it."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and torch.load(state, weights_only=True)["epoch"] >= epoch:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.training
def test_kill_and_resume_matches_uninterrupted(tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(tiny_data, tmp_path / "a"), check=True, env=env, capture_output=True)
    straight = _rows(tmp_path / "a" / "bn_convnet-explorer" / "metrics.csv")

    state = tmp_path / "b" / "bn_convnet-explorer" / "state.pt"
    kill_after_epoch(_train_cmd(tiny_data, tmp_path / "b"), state, env)
    killed_at = torch.load(state, weights_only=True)["epoch"]
    assert 2 <= killed_at < 5
    subprocess.run(_train_cmd(tiny_data, tmp_path / "b", "--resume", "true"), check=True, env=env,
                   capture_output=True)
    resumed = _rows(tmp_path / "b" / "bn_convnet-explorer" / "metrics.csv")
    keys = ("epoch", "train_loss", "train_acc", "val_top1", "val_top5", "lr")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in straight]


@pytest.mark.ddp
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


# --- held-out slice -----------------------------------------------------------------------

def test_holdout_split_disjoint_per_class_and_stable():
    counts = [50, 37, 13, 6, 100, 1, 2, 40, 40, 40]
    labels = torch.arange(10).repeat_interleave(torch.tensor(counts))
    keep, held = train_data.holdout_split(labels, 0.1, seed=0)
    assert len(set(keep.tolist()) & set(held.tolist())) == 0
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(labels)))
    assert torch.equal(keep, keep.sort().values) and torch.equal(held, held.sort().values)
    for c, n in enumerate(counts):
        want = min(n - 1, max(1, round(0.1 * n)))
        assert int((labels[held] == c).sum()) == want, (c, n)
    torch.manual_seed(123)  # the training seed does not move it
    again = train_data.holdout_split(labels.tolist(), 0.1, seed=0)
    assert torch.equal(again[1], held)
    assert not torch.equal(train_data.holdout_split(labels, 0.1, seed=1)[1], held)
    assert len(train_data.holdout_split(labels, 0.0)[1]) == 0
    with pytest.raises(ValueError):
        train_data.holdout_split(labels, 1.0)


@pytest.mark.training
def test_holdout_run_never_reads_val(tiny_data, tmp_path, monkeypatch):
    splits = []
    real = data.load_split

    def spy(root, split, *a, **k):
        splits.append(split)
        return real(root, split, *a, **k)

    monkeypatch.setattr(data, "load_split", spy)
    only_train = tmp_path / "data"  # as on the GPU machine: the train split alone, val/ empty
    (only_train / "val").mkdir(parents=True)
    (only_train / "train").symlink_to(tiny_data / "train")
    cfg = config.parse_config(["--arch", "lenet5", "--data", str(only_train), "--epochs", "3", "--holdout", "0.2",
                              "--out", str(tmp_path / "runs"), "--export", str(tmp_path / "ck"), *TINY])
    assert train_main(cfg)["finished"]
    assert "val" not in splits, splits  # not for the epochs, not for the export
    rows = _rows(tmp_path / "runs" / "lenet5-explorer" / "metrics.csv")
    assert "holdout_top1" in rows[0] and "holdout_top5" in rows[0] and "val_top1" not in rows[0]
    card = models.read_card("lenet5", tmp_path / "ck")
    assert "metrics" not in card and card["recipe"]["holdout"] == 0.2
    assert card["holdout"]["images"] == 10 and card["dataset"]["train_images"] == 50
    assert card["dataset"]["fingerprint_splits"] == ["train"]
    assert card["holdout"]["top1"] == float(rows[-1]["holdout_top1"])
    assert json.loads((tmp_path / "runs" / "lenet5-explorer" / "done.json").read_text())["eval_split"] == "holdout"
    monkeypatch.setattr(data, "load_split", real)
    from training.evaluation import evaluate_checkpoint  # val metrics come later, from evaluate.py
    assert evaluate_checkpoint("lenet5", tmp_path / "ck", tiny_data)["val_images"] == 20


# --- augmentation on the device ---------------------------------------------------------------

def _batch(b=16, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, size // 4, size // 4), generator=g).float()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).round()  # smooth-ish


def test_trivial_augment_keeps_shape_dtype_range():
    x = _batch(64, 32)
    for seed in range(3):
        y = augment.trivial_augment(x, torch.Generator().manual_seed(seed))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 255
    # every op at five magnitudes, one sample each, in one call
    mags = torch.tensor([-1.0, -0.3, 0.0, 0.5, 1.0])
    op = torch.arange(len(augment.OPS)).repeat_interleave(len(mags))
    y = augment.apply_ops(_batch(len(op), 32), op, mags.repeat(len(augment.OPS)))
    assert y.shape == (len(op), 3, 32, 32) and y.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 255


def test_augment_identity_when_disabled(tiny_data):
    x = _batch()
    ident = augment.OPS.index("identity")
    assert torch.equal(augment.apply_ops(x, torch.full((16,), ident), torch.rand(16)), x)
    assert augment.random_erase(x, 0.0) is x
    # make_batch with augment none and erase 0 is exactly crop + flip + normalise, as before
    cfg = config.parse_config(["--arch", "lenet5", "--channels_last", "false", "--mixup", "0", "--cutmix", "0",
                              "--augment", "none", "--erase", "0"])
    u8 = x.to(torch.uint8)
    idx = torch.arange(16)
    torch.manual_seed(0)
    xb = steps.make_batch(u8, torch.zeros(16, dtype=torch.long), idx, 32, 3, cfg)[0]
    torch.manual_seed(0)
    assert torch.equal(xb, data.normalize(train_data.random_resized_crop(u8[idx], 32, scale=(cfg.crop_scale_min, 1.0))))


def test_trivial_augment_draws_per_sample_and_is_seeded():
    x = _batch(1).expand(64, -1, -1, -1).contiguous()  # the same image 64 times
    y = augment.trivial_augment(x, torch.Generator().manual_seed(0))
    distinct = {tuple(r.flatten()[::97].tolist()) for r in y}
    unchanged = int((y == x).flatten(1).all(1).sum())
    assert len(distinct) > 32 and 0 < unchanged < 32  # identity (or zero magnitude) for a few only
    assert torch.equal(y, augment.trivial_augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(y, augment.trivial_augment(x, torch.Generator().manual_seed(1)))
    e = augment.random_erase(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(e, augment.random_erase(x, 0.5, generator=torch.Generator().manual_seed(0)))


def test_colour_ops_match_torchvision_up_to_rounding():
    import torchvision.transforms.v2.functional as TF
    u8 = _batch(4).to(torch.uint8)
    cases = [("brightness", 0.5, lambda im: TF.adjust_brightness(im, 1 + 0.99 * 0.5)),
             ("color", -0.7, lambda im: TF.adjust_saturation(im, 1 - 0.99 * 0.7)),
             ("contrast", 0.4, lambda im: TF.adjust_contrast(im, 1 + 0.99 * 0.4)),
             ("sharpness", 0.8, lambda im: TF.adjust_sharpness(im, 1 + 0.99 * 0.8)),
             ("posterize", 0.5, lambda im: TF.posterize(im, 5)),
             ("solarize", 0.3, lambda im: TF.solarize(im, 255 * 0.7)),
             ("autocontrast", 0.0, TF.autocontrast),
             ("equalize", 0.0, TF.equalize)]
    for name, m, ref in cases:
        y = augment.apply_ops(u8.float(), torch.full((4,), augment.OPS.index(name)), torch.full((4,), m))
        want = torch.stack([ref(im) for im in u8]).float()
        assert (y - want).abs().max() <= 2, name  # torchvision rounds to uint8 between steps


def test_geometric_ops():
    x = _batch(2, 48)
    rot = augment.apply_ops(x, torch.full((2,), augment.OPS.index("rotate")), torch.full((2,), 90 / 135))
    assert min(float((rot - torch.rot90(x, k, (2, 3))).abs().max()) for k in (1, 3)) < 0.01
    big = _batch(2, 224)
    tx = augment.apply_ops(big, torch.full((2,), augment.OPS.index("translate_x")), torch.ones(2))
    assert min(float((tx[..., 32:] - big[..., :-32]).abs().max()),
               float((tx[..., :-32] - big[..., 32:]).abs().max())) < 0.01  # 32 px at 224 px


def test_random_erase_rectangles():
    x = _batch(200, 32)
    e = augment.random_erase(x, 0.5, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor(data.MEAN).view(1, 3, 1, 1) * 255
    erased = (e == fill).all(1)  # (B, H, W): pixels set to the mean colour
    hit = erased.flatten(1).any(1)
    assert 70 < int(hit.sum()) < 130
    frac = erased.flatten(1).float().mean(1)[hit]
    assert float(frac.min()) > 0 and float(frac.max()) <= 0.4
    assert torch.equal(e[~hit], x[~hit])


class _OpLog(TorchDispatchMode):
    """Records every aten op dispatched inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_augment_is_batched_without_host_syncs():
    logs = []
    for b in (2, 48):
        x = _batch(b, 32)
        with _OpLog() as log:
            augment.random_erase(augment.trivial_augment(x, torch.Generator().manual_seed(0)), 0.5,
                                 generator=torch.Generator().manual_seed(0))
        logs.append(log.ops)
    assert logs[0] == logs[1], "the op sequence depends on the batch size: a loop over samples?"
    syncs = {"aten._local_scalar_dense", "aten.nonzero", "aten.item", "aten.masked_select"}
    assert not syncs & set(logs[0]), "reads a value back to the host"


# --- other recipe knobs ---------------------------------------------------------------------

def test_recipe_knobs_are_flags():
    cfg = config.parse_config(["--arch", "resnet18", "--zero_init_residual", "true", "--fused_optimizer", "true",
                              "--compile", "true", "--compile_mode", "max-autotune", "--augment", "trivial",
                              "--erase", "0.25", "--holdout", "0.1", "--holdout_seed", "3"])
    assert (cfg.zero_init_residual, cfg.fused_optimizer, cfg.compile_mode, cfg.augment, cfg.erase, cfg.holdout,
            cfg.holdout_seed) == (True, True, "max-autotune", "trivial", 0.25, 0.1, 3)
    for bad in (["--augment", "autoaugment"], ["--compile_mode", "max-autotune"], ["--holdout", "1.0"]):
        with pytest.raises(SystemExit):
            config.check_config(config.parse_config(["--arch", "lenet5", *bad]))


def test_every_recipe_is_a_valid_config_and_its_command_reproduces_it():
    """Every recipe (and every recipe under the protocol) passes check_config, sets what RECIPES
    says, and the command written on its card parses back to the same recipe."""
    import shlex
    for arch in ARCHS:
        for extra in ([], ["--protocol", "short"]):
            cfg = config.parse_config(["--arch", arch, *extra])
            config.check_config(cfg)
            want = {**config.RECIPES[arch], **config.protocol_fields(cfg.protocol, arch)}
            if want.get("teacher") == config.BEST_TEACHER:   # resolved to an architecture when parsed
                want["teacher"] = config.best_teacher(REPO / "checkpoints")
            assert all(getattr(cfg, k) == v for k, v in want.items()), arch
            again = config.parse_config(shlex.split(config.command(cfg))[2:])
            assert config.recipe(again) == config.recipe(cfg), (arch, extra)


@pytest.mark.training
def test_stem_init_std_draws_the_first_layer_as_the_papers_did(tiny_data, tmp_path):
    """AlexNet's and ZFNet's recipes draw conv1 from N(0, 0.01); the epoch-0 snapshot shows it."""
    assert config.RECIPES["alexnet"]["stem_init_std"] == config.RECIPES["zfnet"]["stem_init_std"] == 0.01
    cfg = config.parse_config(["--arch", "alexnet", "--data", str(tiny_data), "--epochs", "1", "--limit_per_class", "2",
                              "--out", str(tmp_path), "--export", "", "--stop_after_epochs", "1", *TINY])
    train_main(cfg)
    st = torch.load(tmp_path / "alexnet-explorer" / "state.pt", map_location="cpu", weights_only=True)
    w0 = st["filters"][0].float()
    assert abs(float(w0.std()) - 0.01) < 0.001 and abs(float(w0.mean())) < 0.001
    kaiming = float(models.create("alexnet").stem.weight.detach().std())   # what it would be without the option
    assert kaiming > 0.02
    with pytest.raises(SystemExit):
        config.check_config(config.parse_config(["--arch", "alexnet", "--stem_init_std", "-1"]))


def test_zero_init_residual():
    for arch in ("resnet18", "se_resnet18"):
        m = models.create(arch)
        assert steps.zero_init_residual(m) == 8
        blocks = [b for b in m.modules() if hasattr(b, "bn2") and hasattr(b, "conv2")]
        assert blocks and all(float(b.bn2.weight.detach().abs().sum()) == 0 for b in blocks)
    assert steps.zero_init_residual(models.create("alexnet")) == 0


@pytest.mark.training
def test_zero_init_residual_refused_without_blocks(tiny_data, tmp_path):
    cfg = config.parse_config(["--arch", "lenet5", "--data", str(tiny_data), "--zero_init_residual", "true",
                              "--out", str(tmp_path), "--export", "", *TINY])
    with pytest.raises(SystemExit, match="no residual"):
        train_main(cfg)


def test_fused_optimizer_on_cuda_only():
    model = models.create("lenet5")
    for opt_name in ("sgd", "adamw"):
        cfg = config.parse_config(["--arch", "lenet5", "--optimizer", opt_name, "--fused_optimizer", "true"])
        assert not steps.build_optimizer(model, cfg, torch.device("cpu")).defaults.get("fused")
        assert steps.build_optimizer(model, cfg, torch.device("cuda")).defaults.get("fused") is True
        cfg.fused_optimizer = False
        assert not steps.build_optimizer(model, cfg, torch.device("cuda")).defaults.get("fused")


@pytest.mark.training
def test_compile_mode_reaches_torch_compile(tiny_data, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda m, mode=None: seen.append(mode) or m)
    cfg = config.parse_config(["--arch", "lenet5", "--data", str(tiny_data), "--epochs", "1", "--compile", "true",
                              "--compile_mode", "max-autotune", "--out", str(tmp_path), "--export", "", *TINY])
    # once for the trial batch that checks the fast paths (steps.probe_fast_paths), once for the run
    assert train_main(cfg)["finished"] and seen == ["max-autotune", "max-autotune"]


@pytest.mark.training
def test_resume_refuses_another_recipe(tiny_data, tmp_path):
    args = ["--arch", "lenet5", "--data", str(tiny_data), "--epochs", "3", "--out", str(tmp_path),
            "--export", "", *TINY]
    train_main(config.parse_config([*args, "--stop_after_epochs", "1"]))
    with pytest.raises(SystemExit, match="different recipe"):
        train_main(config.parse_config([*args, "--resume", "true", "--lr", "0.01"]))
    assert train_main(config.parse_config([*args, "--resume", "true", "--time_budget_s", "600"]))["finished"]


# --- the whole zoo, in invocations of bounded length -------------------------------------

def _zoo(tiny_data, tmp_path, *extra, timeout=600):
    cmd = [sys.executable, str(REPO / "scripts" / "train_zoo.py"), "--data", str(tiny_data), "--holdout", "0.2",
           "--out", str(tmp_path / "runs"), "--export", str(tmp_path / "ck"), "--batch_size", "20",
           "--warmup_epochs", "1", "--device", "cpu", "--augment", "trivial", "--erase", "0.25", *extra]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout, json.loads((tmp_path / "runs" / "zoo_status.json").read_text()), time.time() - t0


@pytest.mark.training
def test_train_zoo_continues_across_invocations(tiny_data, tmp_path):
    archs = ["--archs", "lenet5,mobilenet_v2", "--parallel", "2", "--epochs", "10"]
    # 1: each training may run for 1 s: mobilenet_v2 stops after an epoch or two, cleanly
    out, st, took = _zoo(tiny_data, tmp_path, *archs, "--time_budget_s", "60", "--margin_s", "59")
    assert took < 60 + 15, took
    runs = {r["arch"]: r for r in st["runs"]}
    assert runs["mobilenet_v2"]["state"] == "partial" and 1 <= runs["mobilenet_v2"]["epochs_done"] < 10
    assert runs["mobilenet_v2"]["split"] == "holdout" and runs["mobilenet_v2"]["top1"] is not None
    assert "mobilenet_v2" in out and "partial" in out  # the table
    # 2: it carries on from its state and both finish; lenet5's checkpoint fits the bundle, the other waits
    out, st, _ = _zoo(tiny_data, tmp_path, *archs, "--time_budget_s", "400", "--margin_s", "30",
                      "--bundle", str(tmp_path / "b2"), "--bundle_mib", "1", "--bundle_part_mib", "0.05")
    assert [(r["state"], r["epochs_done"]) for r in st["runs"]] == [("done", 10), ("done", 10)]
    assert "bundled lenet5 into" in out and "next time: mobilenet_v2" in out
    log = (tmp_path / "runs" / "mobilenet_v2-explorer" / "train.log").read_text()
    assert "resumed mobilenet_v2" in log and "after epoch" in log
    for arch in ("lenet5", "mobilenet_v2"):
        _, card = models.load(arch, tmp_path / "ck")
        assert card["epochs"] == 10 and card["recipe"]["augment"] == "trivial"
        assert (tmp_path / "ck" / arch / "filters.safetensors").exists()
    # 3: nothing left to do, whichever mark says so (a done marker, or the exported checkpoint)
    (tmp_path / "runs" / "lenet5-explorer" / "done.json").unlink()
    logs = {a: (tmp_path / "runs" / f"{a}-explorer" / "train.log").stat().st_size for a in ("lenet5", "mobilenet_v2")}
    out, st, _ = _zoo(tiny_data, tmp_path, *archs, "--time_budget_s", "400", "--bundle", str(tmp_path / "b3"))
    assert "skip lenet5: exported" in out and "skip mobilenet_v2: done" in out and "start" not in out
    assert [r["state"] for r in st["runs"]] == ["exported", "done"]
    assert logs == {a: (tmp_path / "runs" / f"{a}-explorer" / "train.log").stat().st_size for a in logs}
    assert "bundled mobilenet_v2 into" in out
    # the parts put back together: checkpoints/<arch>/ and runs/, verified by the loader
    for b, arch, part_mib in (("b2", "lenet5", 0.05), ("b3", "mobilenet_v2", 15)):
        parts = sorted((tmp_path / b).glob("zoo-*.tar.part*"))
        assert len(parts) >= (2 if b == "b2" else 1) and all(p.stat().st_size <= part_mib * 2 ** 20 for p in parts)
        dest = tmp_path / f"x-{b}"
        dest.mkdir()
        subprocess.run(["tar", "x", "-C", str(dest)], input=b"".join(p.read_bytes() for p in parts), check=True)
        assert sorted(p.name for p in (dest / "checkpoints").iterdir()) == [arch]
        assert models.load(arch, dest / "checkpoints")[1]["epochs"] == 10
        assert (dest / "runs" / "zoo_status.json").exists()


@pytest.mark.training
def test_train_zoo_stops_runs_at_its_deadline(tiny_data, tmp_path):
    # the training's own budget (25 s) outlasts the invocation's hard stop (budget - 10 s)
    out, st, took = _zoo(tiny_data, tmp_path, "--archs", "mobilenet_v2", "--epochs", "500",
                         "--time_budget_s", "25", "--margin_s", "0")
    assert took < 25 + 5, took
    assert "time is up" in out and st["runs"][0]["state"] == "stopped"
    assert st["runs"][0]["epochs_done"] < 500


@pytest.mark.training
def test_device_zoo_flow_fits_the_deadline_bundles_and_releases(tiny_data, tmp_path):
    """The GPU window rehearsed on the CPU: scripts/device_zoo.sh `run` says MPS is absent,
    starts every run at once, each fits its epochs to the shared deadline and its schedule
    reaches its end (learning rate 0 at the last epoch); the side files are made there
    (`release_zoo.py --device`) and come back with what is finished as tar parts; `fetch` hands
    back nothing twice; scripts/release_zoo.py unpacks the parts into a repository, re-scores val
    and takes the device's side files instead of making them again, stages and reports the
    counted size, and splits the release when it is over the limit; a checkpoint whose val
    figure is not the one measured here is refused."""
    env = {**os.environ, "VH_ZOO_DATA": str(tiny_data), "VH_ZOO_RUNS": str(tmp_path / "runs"),
           "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "VH_ZOO_FIT_S": "45", "VH_ZOO_WAIT_S": "120", "PATH": "/usr/bin:/bin",
           "VH_ZOO_SIDEFILES": "1"}
    flags = ["--archs", "lenet5,bn_convnet", "--epochs", "100000", "--min_epochs", "2",
             "--export", str(tmp_path / "ck"), *TINY]
    script = str(REPO / "scripts" / "device_zoo.sh")
    t0 = time.time()
    r = subprocess.run(["bash", script, "run", *flags], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "MPS: absent" in r.stdout and "plain time slicing" in r.stdout
    assert time.time() - t0 < 45 + 140 + 30
    for arch in ("lenet5", "bn_convnet"):
        _, card = models.load(arch, tmp_path / "ck")
        fit = card["fitted_to_deadline"]
        assert fit["recipe_epochs"] == 100000 and 2 <= card["epochs"] == fit["epochs"] < 100000
        rows = _rows(tmp_path / "runs" / f"{arch}-explorer" / "metrics.csv")
        assert len(rows) == card["epochs"] and float(rows[-1]["lr"]) < 1e-9  # the schedule ran to its end
        assert f"--epochs {card['epochs']}" in card["command"] and "deadline" not in card["command"]
        assert card["storage"] == "int8" and "val_top1" in card["full_precision"]
    parts = sorted((tmp_path / "out").glob("zoo-*.tar.part*"))
    assert parts and "bundled" in r.stdout
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        names = set(tar.getnames())
    for arch in ("lenet5", "bn_convnet"):   # made on the "device", beside the weights, and bundled
        assert {f"checkpoints/{arch}/{f}" for f in ("units.safetensors", "reliance.safetensors",
                                                      "retrieval.safetensors", "weights.safetensors")} <= names
    assert {"checkpoints/robustness.json", "checkpoints/transfer.json", "checkpoints/gallery.safetensors",
            "checkpoints/device_side_files.json"} <= names
    assert max(p.stat().st_size for p in parts) <= 15 * 2 ** 20 and len(parts) <= 8
    r2 = subprocess.run(["bash", script, "fetch", *flags], env=env, capture_output=True, text=True, timeout=200)
    assert "bundled no checkpoints" in r2.stdout and "has ended" in r2.stdout  # nothing is handed back twice

    # the release, into a scratch repository that ships an older lenet5
    repo = tmp_path / "repo"
    (repo / "checkpoints").mkdir(parents=True)
    (repo / "README.md").write_text("# zoo\n<!-- zoo:start -->\n<!-- zoo:end -->\n")
    torch.manual_seed(0)
    models.save(models.create("lenet5"), repo / "checkpoints" / "lenet5", {"num_classes": 10})
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "old zoo"], check=True)
    r3 = subprocess.run([sys.executable, str(REPO / "scripts" / "release_zoo.py"), "--from", str(tmp_path / "out"),
                         "--checkpoints", str(repo / "checkpoints"), "--data", str(tiny_data),
                         "--limit_mib", "0.3", "--hold", str(tmp_path / "hold"),
                         "--report", str(tmp_path / "report.json")],
                        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r3.returncode == 0, r3.stdout[-3000:] + r3.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "staged change counts" in r3.stdout and report["counted_mib"] > 0
    staged = subprocess.run([*git, "diff", "--binary", "--cached"], capture_output=True, check=True).stdout
    assert abs(len(staged) / 2 ** 20 - report["counted_mib"]) < 0.01
    # bn_convnet (1.2M parameters) does not fit 0.3 MiB: it waits outside the repository
    assert report["released"] == ["lenet5"] and report["held_back"] == ["bn_convnet"]
    assert (tmp_path / "hold" / "bn_convnet" / "card.json").exists()
    assert not (repo / "checkpoints" / "bn_convnet").exists()
    _, card = models.load("lenet5", repo / "checkpoints")
    assert card["storage"] == "int8" and (repo / "checkpoints" / "lenet5" / "retrieval.safetensors").exists()
    assert "LeNet-5" in (repo / "README.md").read_text()
    # the device's side files were taken, not made again here; val was scored again here
    assert "evaluation, before and after int8 (evaluate.py)" in report["timings"]
    for step in ("units", "reliance", "retrieval", "representations"):
        assert set(report["from_device"][step]) == {"lenet5", "bn_convnet"}, step
    assert not {"units (units.py)", "representations (representations.py)"} & set(report["timings"])
    assert report["shared_from_device"]["robustness"] == ["bn_convnet", "lenet5"]
    assert "refused" not in report

    # a checkpoint whose card says another val figure than the one measured here is refused
    bad = tmp_path / "tampered" / "lenet5"
    shutil.copytree(tmp_path / "ck" / "lenet5", bad)
    card = json.loads((bad / "card.json").read_text())
    card["metrics"]["val_top1"] += 5
    (bad / "card.json").write_text(json.dumps(card))
    r4 = subprocess.run([sys.executable, str(REPO / "scripts" / "release_zoo.py"), "--from", str(bad.parent),
                         "--checkpoints", str(repo / "checkpoints"), "--data", str(tiny_data),
                         "--hold", str(tmp_path / "hold"), "--report", str(tmp_path / "report4.json")],
                        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r4.returncode == 0, r4.stdout[-3000:] + r4.stderr[-3000:]
    report4 = json.loads((tmp_path / "report4.json").read_text())
    assert list(report4["refused"]) == ["lenet5"] and report4["released"] == []
    assert "refused (val top-1 here against the device's): lenet5" in r4.stdout
    assert (tmp_path / "hold" / "refused" / "lenet5" / "card.json").exists()
    head = subprocess.run([*git, "show", "HEAD:checkpoints/lenet5/card.json"], capture_output=True, text=True).stdout
    assert (repo / "checkpoints" / "lenet5" / "card.json").read_text() == head   # what the repository shipped


def test_fit_epochs_ends_the_schedule_by_the_deadline():
    cfg = config.parse_config(["--arch", "resnet18", "--deadline", "1000", "--min_epochs", "10"])
    assert cfg.epochs == 80
    fit = schedule.fit_epochs  # export kept aside: two evaluations and 20 s (export_allowance)
    assert fit(cfg, 1, epoch_s=10, now=600, eval_s=10, floor=10) == 37   # 1 done + 36 more in 360 s
    assert fit(cfg, 1, epoch_s=1, now=0, eval_s=0, floor=10) == 80       # capped at the recipe
    assert fit(cfg, 1, epoch_s=100, now=900, eval_s=0, floor=10) == 10   # never below the floor
    assert fit(cfg, 5, epoch_s=100, now=500, eval_s=0, floor=6) == 9     # a resume: 4 more fit in 480 s
    assert fit(cfg, 5, epoch_s=100, now=990, eval_s=0, floor=6) == 6     # a resume always runs one more
    s = schedule.Schedule(warmup_steps=10, total_steps=100)
    before = [s(i) for i in range(10)]
    s.total = 50                                                          # refitted while warming up
    assert [s(i) for i in range(10)] == before and s(49) > 0 and s(50) == 0


def test_fit_epochs_counts_the_larger_crops_to_come():
    """Under progressive resizing the first epoch (96 px) is the cheapest: a fit that took it as
    every epoch's cost would overshoot the deadline. Cost here is the crop's pixel count."""
    cfg = config.parse_config(["--arch", "resnet18", "--protocol", "short-cnn", "--deadline", "1000",
                               "--min_epochs", "2"])
    assert cfg.sizes == "96,112,128" and cfg.epochs == 16
    w = schedule.size_weights(lambda n: config.epoch_sizes(cfg, 128, n), lambda s: s * s, 96)
    assert w(16)[0] == 1.0 and w(16)[-1] == pytest.approx((128 / 96) ** 2)
    # 1 epoch of 100 s done at 96 px, 1000 - 0 - 20 s left: flat, 9 more would fit (10 in all) ...
    assert schedule.fit_epochs(cfg, 1, epoch_s=100, now=0, eval_s=0, floor=2) == 10
    n = schedule.fit_epochs(cfg, 1, epoch_s=100, now=0, eval_s=0, floor=2, weights=w)
    # ... weighted, fewer: the run of n epochs fits, one more would not
    assert n < 10 and sum(w(n)[1:]) * 100 <= 980 < sum(w(n + 1)[1:]) * 100
    s = config.epoch_sizes(cfg, 128, n)
    assert s[-1] == 128 and sorted(s) == s


def test_a_failing_fast_path_falls_back_instead_of_failing():
    cfg = config.parse_config(["--arch", "resnet18", "--compile", "false"])
    assert cfg.fused_optimizer and cfg.channels_last and cfg.amp
    tried = []

    def step(c):
        tried.append((c.fused_optimizer, c.channels_last, c.amp))
        if c.fused_optimizer:
            raise RuntimeError("fused kernels need CUDA\nmore")
    off = steps.probe_fast_paths(cfg, step)
    assert off == ["fused_optimizer: RuntimeError: fused kernels need CUDA"]
    assert tried == [(True, True, True), (False, True, True)] and cfg.channels_last and cfg.amp

    def broken(c):
        raise ValueError("the model itself is broken")
    with pytest.raises(ValueError):
        steps.probe_fast_paths(config.parse_config(["--arch", "resnet18"]), broken)  # after every fallback


def test_a_refitted_run_names_both_of_its_commands():
    cfg = config.parse_config(["--arch", "vit", "--epochs", "22", "--teacher", "se_resnet18"])
    assert config.command(cfg) == "python scripts/train.py --arch vit --epochs 22 --teacher se_resnet18"
    two = config.command(cfg, {"recipe_epochs": 30, "epochs": 22, "refit_after_epoch": 10})
    first, then = two.split("; then ")
    assert first == "python scripts/train.py --arch vit --epochs 30 --teacher se_resnet18 --stop_after_epochs 10"
    assert then.startswith("python scripts/train.py --arch vit --epochs 30 --teacher se_resnet18 --resume true "
                           "--deadline T") and "12 more epochs" in then


def test_release_places_only_the_models_asked_for(tmp_path):
    """`release_zoo.py --from DIR --arch A` replaces checkpoints/A only: a shipped model whose
    export also sits in DIR keeps its folder and side files (a release of ResNet-18 and GoogLeNet
    from a folder that also held the ViT's bare export once removed the ViT's side files)."""
    place = runpy.run_path(str(REPO / "scripts" / "release_zoo.py"))["place"]  # the script's function
    src, ck = tmp_path / "export", tmp_path / "checkpoints"
    for arch in ("lenet5", "alexnet"):
        (src / arch).mkdir(parents=True)
        (src / arch / "card.json").write_text("{}")
    (ck / "alexnet").mkdir(parents=True)
    (ck / "alexnet" / "units.safetensors").write_bytes(b"shipped side file")
    assert place(src, ck, ["lenet5"]) == ["lenet5"]
    assert (ck / "lenet5" / "card.json").exists()
    assert (ck / "alexnet" / "units.safetensors").read_bytes() == b"shipped side file"
    assert sorted(place(src, ck)) == ["alexnet", "lenet5"]
    assert not (ck / "alexnet" / "units.safetensors").exists()


def test_a_source_copy_names_its_commit(tmp_path, monkeypatch):
    """A long run trains from `git archive C | tar -x` (untouched by work on the repository):
    without .git, the card's code_commit comes from the copy's COMMIT file, not "unknown"."""
    from training import runstate
    monkeypatch.setattr(runstate, "REPO", tmp_path)
    assert runstate.code_commit() == "unknown"
    (tmp_path / "COMMIT").write_text("16d94c6\n")
    assert runstate.code_commit() == "16d94c6 (a copy)"
    monkeypatch.setattr(runstate, "REPO", REPO)
    assert runstate.code_commit().split("-")[0] == subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
