"""The shared training protocol (issue 26): the schedule ends at zero at the fixed last step,
also after a resume; what ships is the EMA with its batch-norm statistics; norm and bias
parameters get no weight decay; progressive sizes per epoch as declared; the card's compute."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import models
import models.cost
from test_train import TINY, _rows, kill_after_epoch
from training import config, schedule, steps

REPO = Path(__file__).resolve().parent.parent
train_main = runpy.run_path(str(REPO / "scripts" / "train.py"))["main"]  # the script's main, run in this process


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("warmup,total", [(10, 100), (1, 7), (30, 31), (10, 10), (20, 10), (5, 1)])
def test_schedule_reaches_zero_exactly_at_the_last_step(kind, warmup, total):
    s = schedule.Schedule(warmup, total, kind)
    factors = [s(i) for i in range(total + 3)]
    assert factors[total] == 0.0 and factors[total + 2] == 0.0
    assert all(f > 0 for f in factors[:total])
    assert max(factors) == pytest.approx(1.0)
    decay = factors[min(warmup, total - 1):total + 1]  # a warm-up as long as the run ends a step early
    assert all(b <= a for a, b in zip(decay, decay[1:])), "the decay rises somewhere"


def test_linear_schedule_is_linear_after_warmup():
    s = schedule.Schedule(10, 110, "linear")
    assert [s(i) for i in (10, 35, 60, 85, 110)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert s(4) == pytest.approx(0.5)  # warm-up: (step + 1) / warmup


@pytest.mark.parametrize("epochs,sizes,want", [
    (16, "96,112,128", [96] * 6 + [112] * 5 + [128] * 5),
    (3, "96,112,128", [96, 112, 128]),
    (10, "96,128", [96] * 5 + [128] * 5),
    (7, "128", [128] * 7),
    (5, "", [64] * 5),
    (2, "96,112,128", [112, 128]),   # fewer epochs than sizes (a deadline refit): still ends at the last
    (1, "96,112,128", [128]),
])
def test_progressive_sizes_per_epoch_as_declared(epochs, sizes, want):
    cfg = config.Config(arch="resnet18", epochs=epochs, sizes=sizes, image_size=128)
    assert config.epoch_sizes(cfg, 64 if not sizes else 128) == want


def test_protocol_fields_apply_under_the_command_line():
    cfg = config.parse_config(["--arch", "resnet18", "--protocol", "short-cnn", "--epochs", "9"])
    assert (cfg.protocol, cfg.schedule, cfg.sizes, cfg.epochs, cfg.optimizer) == ("short-cnn", "linear",
                                                                                   "96,112,128", 9, "sgd")
    assert cfg.ema == 0 and cfg.augment == "none"   # the EMA lost on the held-out slice: dropped
    nobn = config.parse_config(["--arch", "nin", "--protocol", "short-cnn"])
    assert (nobn.optimizer, nobn.lr, nobn.weight_decay, nobn.sizes) == ("adamw", 1e-3, 0.05, "96,112,128")
    for arch in ("alexnet", "zfnet"):   # declared exceptions: their papers' SGD and conv1 init, a fixed fc6 input
        paper = config.parse_config(["--arch", arch, "--protocol", "short-cnn"])
        assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay, paper.stem_init_std) == (
            "sgd", 0.01, 0.9, 5e-4, 0.01)
        assert paper.schedule == "linear" and paper.sizes == "" and paper.epochs == 16
    assert "--protocol short-cnn --epochs 9" in config.command(cfg)
    vgg = config.parse_config(["--arch", "vgg16", "--protocol", "short-cnn"])   # the declared exception
    assert (vgg.lr, vgg.optimizer, vgg.schedule) == (0.02, "sgd", "linear") and cfg.lr == 0.1
    assert config.parse_config(["--arch", "vgg16", "--protocol", "short-cnn", "--lr", "0.05"]).lr == 0.05
    with pytest.raises(SystemExit):
        config.parse_config(["--arch", "resnet18", "--protocol", "no-such"])
    for arch in config.FIXED_INPUT:   # a classifier reading a fixed-size map trains at its one size
        cfg = config.parse_config(["--arch", arch, "--protocol", "short"])
        assert cfg.sizes == "" and cfg.image_size == 0
        config.check_config(cfg)


def test_one_flag_gives_each_family_its_protocol():
    vit = config.parse_config(["--arch", "vit", "--protocol", "short", "--teacher", "resnet18"])   # named: kept
    cnn = config.parse_config(["--arch", "densenet121", "--protocol", "short"])
    assert (vit.protocol, vit.optimizer, vit.schedule, vit.sizes) == ("short-token", "adamw", "linear", "")
    assert (cnn.protocol, cnn.optimizer, cnn.sizes) == ("short-cnn", "sgd", "96,112,128")
    assert "--protocol short-token" in config.command(vit) and "--teacher resnet18" in config.command(vit)
    for arch, wrong in (("vit", "short-cnn"), ("resnet18", "short-token")):
        with pytest.raises(SystemExit, match="not"):
            config.parse_config(["--arch", arch, "--protocol", wrong])


def test_the_token_mixers_distil_from_the_best_cnn_of_the_zoo(tmp_path):
    import json
    for arch, top1 in (("resnet18", 80.0), ("bn_convnet", 82.5), ("vit", 90.0), ("alexnet", None)):
        (tmp_path / arch).mkdir()
        (tmp_path / arch / "card.json").write_text(json.dumps({"arch": arch, "metrics": {"val_top1": top1}
                                                               if top1 else {}}))
    assert config.best_teacher(tmp_path) == "bn_convnet"          # the ViT's 90 does not count: it never teaches
    cfg = config.parse_config(["--arch", "mlp_mixer", "--protocol", "short", "--teacher_dir", str(tmp_path)])
    assert cfg.teacher == "bn_convnet" and "--teacher bn_convnet" in config.command(cfg)
    with pytest.raises(SystemExit, match="no CNN checkpoint"):
        config.best_teacher(tmp_path / "vit")


def test_sizes_a_network_cannot_take_are_refused_before_training():
    cfg = config.parse_config(["--arch", "vgg16", "--sizes", "96,128", "--image_size", "128"])
    with pytest.raises(SystemExit, match="fixed-size map"):
        config.check_config(cfg)
    assert config.accepts_sizes("resnet18", "explorer", [96, 112, 128])


@pytest.mark.parametrize("bad", [["--sizes", "96,112"], ["--sizes", "a,b"], ["--schedule", "step"]])
def test_bad_protocol_settings_are_refused(bad):
    cfg = config.parse_config(["--arch", "resnet18", "--image_size", "128", *bad])
    with pytest.raises(SystemExit):
        config.check_config(cfg)


def test_sizes_must_end_at_the_preset_size_when_no_image_size_is_given():
    """The card scores at the preset's input size (ResNet-18's explorer preset: 128 px), so a run
    whose crops end elsewhere would be scored at a size it never trained at."""
    with pytest.raises(SystemExit, match="128 px"):
        config.check_config(config.parse_config(["--arch", "resnet18", "--sizes", "96,112"]))
    config.check_config(config.parse_config(["--arch", "resnet18", "--sizes", "96,128"]))


def test_norm_and_bias_parameters_get_no_weight_decay():
    for arch in ("resnet18", "densenet121", "vit", "alexnet"):
        model = models.create(arch, "explorer", num_classes=10)
        decay, no_decay = steps.param_groups(model, 5e-4)
        assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
        names = {id(p): n for n, p in model.named_parameters()}
        for p in no_decay["params"]:
            assert p.ndim <= 1 or any(k in names[id(p)] for k in ("token", "pos_embed", "embed")), names[id(p)]
        for p in decay["params"]:
            assert p.ndim > 1, names[id(p)]
        norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))]
        in_no_decay = {id(p) for p in no_decay["params"]}
        assert all(id(m.weight) in in_no_decay and id(m.bias) in in_no_decay for m in norms if m.weight is not None)


def test_training_compute_of_resnet18_by_hand():
    """From torchvision's published count (ResNet-18 at 224 px: 1,814,073,344 multiply-adds, of
    which 512,000 are the 1000-class fc): every map of a stride-32 network at 128 px has (128/224)^2
    = 16/49 of its area at 224, so the convs cost 1,813,561,344 x 16/49 = 592,183,296 and a 10-class
    fc 5,120. One epoch of 147 batches of 64 at 128 px: 3 x 2 x 9,408 x 592,188,416 FLOPs."""
    assert models.cost.gmacs_at("resnet18", 128) * 1e9 == pytest.approx(592_188_416, rel=1e-9)
    assert models.cost.training_compute("resnet18", [128], 9408)["flops"] == pytest.approx(
        3 * 2 * 9408 * 592_188_416, rel=1e-9)


def test_training_compute_counts_each_epoch_at_its_size():
    g96, g128 = models.cost.gmacs_at("resnet18", 96), models.cost.gmacs_at("resnet18", 128)
    assert g128 > g96 * 1.6  # compute grows with the pixel count
    c = models.cost.training_compute("resnet18", [96, 96, 128], 1000)
    assert c["flops"] == pytest.approx(3 * 1000 * 2e9 * (2 * g96 + g128))
    d = models.cost.training_compute("vit", [128], 1000, teacher="resnet18", teacher_size=128)
    assert d["teacher_flops"] == pytest.approx(1000 * 2e9 * g128)


def _protocol_cmd(tiny_data, out, export, *extra):
    return [sys.executable, str(REPO / "scripts" / "train.py"), "--arch", "bn_convnet", "--data", str(tiny_data),
            "--protocol", "short-cnn", "--epochs", "4", "--out", str(out), "--export", str(export),
            "--deterministic", "true", *TINY, "--sizes", "48,64", "--image_size", "64", "--ema", "0.9",
            "--holdout", "0.34", "--evaluate", "false", *extra]


@pytest.mark.training
def test_protocol_run_resumes_to_zero_ships_the_ema_with_its_bn_statistics(tiny_data, tmp_path):
    """A protocol run killed after epoch 2 and resumed: the same rows as one uninterrupted run,
    the learning rate exactly 0 after the last step, sizes per epoch as declared, and the
    exported weights equal to the EMA's, batch-norm running statistics included."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_protocol_cmd(tiny_data, tmp_path / "a", tmp_path / "ck_a"), check=True, env=env,
                   capture_output=True)
    straight = _rows(tmp_path / "a" / "bn_convnet-explorer" / "metrics.csv")
    assert [int(r["size"]) for r in straight] == [48, 48, 64, 64]
    assert float(straight[-1]["lr"]) == 0.0 and float(straight[-2]["lr"]) > 0
    assert all(r["holdout_top1_raw"] != "" for r in straight)  # the raw weights scored beside the EMA

    state = tmp_path / "b" / "bn_convnet-explorer" / "state.pt"
    kill_after_epoch(_protocol_cmd(tiny_data, tmp_path / "b", tmp_path / "ck_b"), state, env)
    subprocess.run(_protocol_cmd(tiny_data, tmp_path / "b", tmp_path / "ck_b", "--resume", "true"), check=True,
                   env=env, capture_output=True)
    resumed = _rows(tmp_path / "b" / "bn_convnet-explorer" / "metrics.csv")
    keys = ("epoch", "train_loss", "holdout_top1", "holdout_top1_raw", "size", "lr")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in straight]

    st = torch.load(state, weights_only=True)
    ema = {k.removeprefix("module."): v for k, v in st["ema"].items() if k.startswith("module.")}
    raw = st["model"]
    bn_means = [k for k in raw if k.endswith("running_mean")]
    assert bn_means and any(not torch.equal(ema[k], raw[k]) for k in bn_means), "EMA statistics not tracked"
    model, card = models.load("bn_convnet", tmp_path / "ck_b")
    shipped = model.state_dict()
    for k in bn_means + [k for k in raw if k.endswith(".weight")][:3]:
        assert torch.allclose(shipped[k].float(), ema[k].float(), atol=2e-3 * (1 + ema[k].abs().max())), k
        if not torch.equal(ema[k], raw[k]):
            assert not torch.allclose(shipped[k].float(), raw[k].float(), atol=1e-6), f"{k}: the raw weights shipped"
    assert card["protocol"] == "short-cnn" and card["train_sizes"] == [48, 48, 64, 64]
    assert card["train_compute"]["epochs"] == 4 and card["train_compute"]["flops"] > 0
    assert card["holdout"]["top1_flip"] is not None
    assert "--protocol short-cnn" in card["command"]


@pytest.mark.training
def test_a_deadline_given_on_resume_refits_the_rest_and_still_ends_at_zero(tiny_data, tmp_path):
    """A run planned for 400 epochs stops after one, and is resumed with a deadline: the rest
    is refitted once (its larger crops counted), ends before the deadline, at learning rate 0
    and at the size the card scores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd_400 = lambda *extra: _protocol_cmd(tiny_data, tmp_path / "r", tmp_path / "ck", "--epochs", "400", *extra)  # noqa: E731
    subprocess.run(cmd_400("--stop_after_epochs", "1"), check=True, env=env, capture_output=True)
    deadline = time.time() + 45
    done = subprocess.run(cmd_400("--resume", "true", "--deadline", str(deadline)), env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.time() <= deadline, "the refitted run ended after its deadline"
    assert "refitted to the deadline after epoch 1" in done.stdout
    rows = _rows(tmp_path / "r" / "bn_convnet-explorer" / "metrics.csv")
    assert 2 <= len(rows) < 400
    assert float(rows[-1]["lr"]) == 0.0 and float(rows[-2]["lr"]) > 0
    sizes = [int(r["size"]) for r in rows]
    assert sizes[-1] == 64 and sizes == sorted(sizes)
    card = json.loads((tmp_path / "ck" / "bn_convnet" / "card.json").read_text())
    assert card["epochs"] == len(rows) and card["fitted_to_deadline"]["refit_after_epoch"] == 1


def test_a_refit_ends_every_parameter_groups_decay_at_the_new_last_step():
    """Weights and the no-weight-decay group (norms, biases) share one schedule, also after a state
    round trip: a refit on resume moves both ends (VGG-16's shipped run moved only the first)."""
    model = models.create("lenet5", "explorer", num_classes=10)
    cfg = config.parse_config(["--arch", "resnet18", "--protocol", "short-cnn", "--epochs", "10"])
    opt = steps.build_optimizer(model, cfg, torch.device("cpu"))
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["weight_decay"] == 0
    make = lambda: torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambda(2, 10 * 3, "linear"))  # noqa: E731
    first = make()
    for _ in range(12):
        opt.step()
        first.step()
    again = make()
    again.load_state_dict(first.state_dict())   # what --resume does
    schedule.refit(again, cfg, 6, steps_per_epoch=3)
    assert cfg.epochs == 6
    for _ in range(6):
        assert min(again.get_last_lr()) > 0
        opt.step()
        again.step()
    assert again.get_last_lr() == [0.0, 0.0]


def test_a_run_saved_before_the_layer_names_resumes(tmp_path):
    """Issue 28, point 4: a run state written while ConvNet + BN numbered its layers (`trunk.0.0`)
    resumes into today's named layers, the EMA's copy included, with every tensor in place."""
    from models.checkpoint import _renames
    from training import runstate
    torch.manual_seed(0)
    cfg = config.parse_config(["--arch", "bn_convnet", "--protocol", "short-cnn", "--epochs", "4"])
    model = models.create("bn_convnet", "explorer")
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9),
                                              use_buffers=True)
    opt = steps.build_optimizer(model, cfg, torch.device("cpu"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambda(1, 4 * 3, "linear"))
    old = {new: o for o, new in _renames("bn_convnet", "explorer").items()}

    def numbered(state):
        out = {}
        for k, v in state.items():
            pre, rest = ("module.", k[7:]) if k.startswith("module.") else ("", k)
            mod, leaf = rest.rsplit(".", 1) if "." in rest else ("", rest)
            out[pre + (f"{old.get(mod, mod)}.{leaf}" if mod else leaf)] = v
        return out

    runstate.save(tmp_path / "state.pt", model, opt, sched, ema, 2, [], {}, 1.0, cfg, None)
    st = torch.load(tmp_path / "state.pt", weights_only=True)
    st["model"], st["ema"] = numbered(st["model"]), numbered(st["ema"])
    assert "trunk.0.0.weight" in st["model"] and "module.trunk.0.0.weight" in st["ema"]
    torch.save(st, tmp_path / "state.pt")
    fresh = models.create("bn_convnet", "explorer")
    fresh_ema = torch.optim.swa_utils.AveragedModel(fresh, use_buffers=True)
    fresh_opt = steps.build_optimizer(fresh, cfg, torch.device("cpu"))
    fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, schedule.lr_lambda(1, 4 * 3, "linear"))
    done = runstate.resume(tmp_path / "state.pt", cfg, fresh, fresh_opt, fresh_sched, fresh_ema, 3, False)[0]
    assert done == 2
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    assert torch.equal(fresh_ema.module.trunk.conv1_1.conv.weight, ema.module.trunk.conv1_1.conv.weight)
