"""Train any vision-hist architecture on Imagenette, then export a checkpoint.

    python scripts/train.py --arch resnet18                      # the recipe's defaults
    python scripts/train.py --arch vit --epochs 100 --lr 2e-3    # any field overridable
    torchrun --nproc_per_node=8 scripts/train.py --arch resnet34 # DistributedDataParallel
    python scripts/train.py --arch resnet18 --resume             # continue after a kill

Reads top to bottom: config, data, model, optimiser, loop, export.

GPU fast path: the decoded train split lives on the GPU as uint8; random-resized crop,
flip, TrivialAugment-Wide, random erasing and mixup/cutmix run there in a few batched ops
(each sample drawing its own); bf16 autocast, channels_last, fused optimisers and optional
torch.compile; no host sync inside an epoch except the progress bar's refresh every
`log_every` steps. On a CPU the same code runs, slowly (tests, people without a GPU).

Tuning without looking at val: `--holdout 0.1` holds out 10% of every train class (chosen
by `--holdout_seed` alone), trains on the rest and scores the held-out slice each epoch
(metrics.csv columns `holdout_top1`, `holdout_top5`); val is not read at all, and the
exported card says so and leaves its val metrics to scripts/evaluate.py.

Every epoch writes runs/<arch>-<preset>/state.pt atomically (model, optimiser, scheduler,
EMA, RNG states, epoch, metrics, first-layer snapshots) and metrics.csv beside it;
`--resume` continues from there and, with the same seed, ends where an uninterrupted run
ends. At the end the model (its EMA if enabled) is exported to checkpoints/<arch>/ with
filters.safetensors (its first-layer kernels at epochs 0, 1, 2, 5, 10, 20, 40 and the last),
scripts/evaluate.py fills the card's metrics from the whole val split (not after a holdout
run), and runs/<arch>-<preset>/done.json marks the run finished.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import models  # noqa: E402
import models.cost  # noqa: E402
from explorer import filters  # noqa: E402
from models import augment, data  # noqa: E402
from models.checkpoint import sha256_file  # noqa: E402


# -----------------------------------------------------------------------------------------
# config

@dataclass
class Config:
    arch: str = "resnet18"
    preset: str = "explorer"
    data: str = ""                  # folder with train/ and val/ (default: $VH_DATA or ../shared/data)
    out: str = "runs"               # state.pt and metrics.csv go to <out>/<arch>-<preset>/
    export: str = "checkpoints"     # final checkpoint goes to <export>/<arch>/ ("" to skip)
    # schedule
    epochs: int = 60
    batch_size: int = 256           # global: split across DDP ranks
    optimizer: str = "sgd"          # sgd (Nesterov) | adamw
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4      # never applied to norms, biases, tokens and embeddings
    warmup_epochs: float = 2.0      # linear warm-up, then cosine decay to zero
    grad_clip: float = 0.0
    # regularisation
    label_smoothing: float = 0.1
    mixup: float = 0.0              # Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0
    crop_scale_min: float = 0.35    # random-resized crop area fraction range [min, 1]
    augment: str = "none"           # none | trivial (TrivialAugment-Wide: one op per sample, after the crop)
    erase: float = 0.0              # random-erasing probability per sample; 0 = off
    ema: float = 0.0                # EMA decay per step; 0 = off (evaluated and exported when on)
    zero_init_residual: bool = False  # zero each residual block's last BN gamma: blocks start as identity
    stem_init_std: float = 0.0      # >0: draw the first layer's weights from N(0, std), as AlexNet and ZFNet did (0.01)
    # data
    image_size: int = 0             # 0 = the preset's input size
    limit_per_class: int = 0        # tiny runs: first n train images of each class
    val_limit_per_class: int = 0
    holdout: float = 0.0            # fraction of each train class held out and scored instead of val
    holdout_seed: int = 0           # picks the held-out images; independent of `seed`
    # run
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda
    amp: bool = True                # bf16 autocast on CUDA
    channels_last: bool = True
    fused_optimizer: bool = False   # fused SGD/AdamW kernels; CUDA only (ignored on a CPU)
    compile: bool = False
    compile_mode: str = ""          # with --compile: "" (default), reduce-overhead, max-autotune, ...
    deterministic: bool = False     # deterministic algorithms (CPU resume tests)
    resume: bool = False
    stop_after_epochs: int = 0      # end this invocation after n epochs (resume later)
    time_budget_s: float = 0.0      # seconds from start (loading included); no epoch is begun that would end past it
    log_every: int = 25
    progress: bool = True
    evaluate: bool = True           # fill the exported card's metrics from the whole val split


# Fields that steer a run but not what it learns: left out of the card's recipe, of the
# reproducing command, and of the check that --resume continues the same recipe.
RUN_FIELDS = ("data", "out", "export", "resume", "progress", "log_every", "stop_after_epochs",
              "time_budget_s", "evaluate")
AUGMENTS = ("none", "trivial")
SNAPSHOT_EPOCHS = (0, 1, 2, 5, 10, 20, 40)  # plus the last: when the first-layer kernels are saved

# Per-architecture recipe defaults; the command line overrides any field. Held-out sweeps on an
# H100 (docs/sweeps.md) found TrivialAugment + erasing worth about 2 points for the CNNs, mixup
# 0.2 costing half a point at 80 epochs, and conv1 drawn from N(0, 0.01) (the AlexNet and ZFNet
# papers' init) the one change that made their first layer look like the paper's Figure 3.
_AUG = dict(augment="trivial", erase=0.25, fused_optimizer=True)
_CNN_NOBN = dict(_AUG, optimizer="adamw", lr=1e-3, weight_decay=0.05, warmup_epochs=3, epochs=80)
_RESIDUAL = dict(_AUG, epochs=80, zero_init_residual=True)
_TRANSFORMER = dict(optimizer="adamw", lr=1e-3, weight_decay=0.05, warmup_epochs=5, epochs=150,
                    mixup=0.8, cutmix=1.0, ema=0.999, crop_scale_min=0.25, grad_clip=1.0, fused_optimizer=True)
RECIPES: dict[str, dict] = {
    "lenet5": dict(_AUG, optimizer="adamw", lr=2e-3, weight_decay=0.0, epochs=30, label_smoothing=0.0,
                   crop_scale_min=0.5),
    "alexnet": dict(_CNN_NOBN, stem_init_std=0.01),
    "zfnet": dict(_CNN_NOBN, stem_init_std=0.01),
    "nin": dict(_CNN_NOBN, lr=5e-4),
    "vgg16": dict(_AUG, epochs=80, lr=0.1),
    "googlenet": dict(_AUG, epochs=80),
    "bn_convnet": dict(_AUG, epochs=60),
    "resnet18": _RESIDUAL,
    "resnet34": _RESIDUAL,
    "densenet121": dict(_AUG, epochs=80),
    "se_resnet18": _RESIDUAL,
    "mobilenet_v2": dict(_AUG, epochs=100, weight_decay=4e-5, lr=0.4),
    "vit": _TRANSFORMER,
    "mlp_mixer": _TRANSFORMER,
}


def parse_config(argv=None) -> Config:
    fields = {f.name: f for f in dataclasses.fields(Config)}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    for name, f in fields.items():
        kind = type(f.default)
        if kind is bool:
            p.add_argument(f"--{name}", nargs="?", const=True, type=_bool)
        else:
            p.add_argument(f"--{name}", type=kind)
    cli = vars(p.parse_args(argv))
    arch = cli.get("arch", Config.arch)
    if arch not in RECIPES:
        p.error(f"unknown --arch {arch!r}; choose from {', '.join(RECIPES)}")
    return Config(**{**RECIPES[arch], **cli})


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def check_config(cfg: Config) -> None:
    """Refuse settings that would otherwise be silently ignored or fail an hour in."""
    if cfg.augment not in AUGMENTS:
        raise SystemExit(f"unknown --augment {cfg.augment!r}: {' or '.join(AUGMENTS)}")
    if not 0 <= cfg.holdout < 1:
        raise SystemExit(f"--holdout must be in [0, 1), got {cfg.holdout}")
    if not 0 <= cfg.erase <= 1:
        raise SystemExit(f"--erase is a probability, got {cfg.erase}")
    if cfg.stem_init_std < 0:
        raise SystemExit(f"--stem_init_std is a standard deviation, got {cfg.stem_init_std}")
    if cfg.compile_mode and not cfg.compile:
        raise SystemExit("--compile_mode needs --compile true")


def recipe(cfg: Config) -> dict:
    """What shapes the trained weights: every field but RUN_FIELDS (the card's `recipe`)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUN_FIELDS}


# -----------------------------------------------------------------------------------------
# helpers

def setup_distributed(cfg: Config):
    """(rank, world, device). torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; otherwise one process."""
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return rank, world, device


def param_groups(model, weight_decay: float):
    """No weight decay on norms, biases, class/position tokens and other 1-D parameters."""
    skip = set()
    if hasattr(model.trunk, "no_weight_decay"):
        skip = {f"trunk.{n}" for n in model.trunk.no_weight_decay()}
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or n in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def zero_init_residual(model) -> int:
    """Zero the last BN gamma of every residual basic block (ResNet, SE-ResNet), so each block
    starts as the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD"). Returns how many."""
    from torchvision.models.resnet import BasicBlock
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    for b in blocks:
        torch.nn.init.zeros_(b.bn2.weight)
    return len(blocks)


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose first-layer kernels are kept: SNAPSHOT_EPOCHS up to `epochs`, and `epochs`."""
    return sorted({e for e in SNAPSHOT_EPOCHS if e <= epochs} | {epochs})


def stem_weights(model) -> torch.Tensor:
    """The first layer's weights as the checkpoint stores them: fp16, contiguous, on the CPU."""
    return model.stem.weight.detach().to("cpu", torch.float16, copy=True).contiguous()


def lr_lambda(warmup_steps: int, total_steps: int):
    def f(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def rng_state() -> dict:
    """Every generator training draws from: torch's CPU generator and each CUDA device's."""
    s = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_metrics(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def hardware(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        return f"{world}x {torch.cuda.get_device_name(device)}"
    return f"{world}x CPU ({torch.get_num_threads()} threads, {os.cpu_count()} cores, {platform.machine()})"


def code_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "models", "scripts"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_batch(train_x, train_y, idx, size: int, in_chans: int, cfg: Config):
    """One augmented batch, entirely on the data's device: crop + flip, TrivialAugment,
    random erasing, normalise, mix; every sample draws its own crop, op and rectangle."""
    xb = data.random_resized_crop(train_x[idx], size, scale=(cfg.crop_scale_min, 1.0))
    if cfg.augment == "trivial":
        xb = augment.trivial_augment(xb)
    xb = augment.random_erase(xb, cfg.erase)
    xb = data.normalize(xb, in_chans)
    xb, ya, yb2, lam = data.mix_batch(xb, train_y[idx], cfg.mixup, cfg.cutmix)
    if cfg.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, ya, yb2, lam


def train_step(step_fn, model, opt, xb, ya, yb2, lam, cfg: Config, amp: bool):
    """Forward (bf16 autocast on CUDA), mixed-label loss, backward, clip, optimiser step."""
    with torch.autocast(xb.device.type, torch.bfloat16, enabled=amp):
        logits = step_fn(xb)
    logits = logits.float()
    loss = lam * F.cross_entropy(logits, ya, label_smoothing=cfg.label_smoothing)
    if lam < 1.0:
        loss = loss + (1 - lam) * F.cross_entropy(logits, yb2, label_smoothing=cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss, logits


def build_optimizer(model, cfg: Config, device: torch.device):
    groups = param_groups(model, cfg.weight_decay)
    fused = {"fused": True} if cfg.fused_optimizer and device.type == "cuda" else {}  # one kernel per step
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), **fused)
    raise SystemExit(f"unknown --optimizer {cfg.optimizer!r}: sgd or adamw")


@torch.no_grad()
def evaluate_tensors(model, x_u8, y, size, in_chans, device, batch=500, amp=False):
    """(correct top-1, correct top-5, count) over uint8 eval squares, centre-cropped to `size`."""
    model.eval()
    c1 = c5 = torch.zeros((), device=device, dtype=torch.long)
    for i, xb in data.eval_batches(x_u8, size, in_chans, batch, device):
        yb = y[i:i + batch].to(device, non_blocking=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            logits = model(xb)
        top5 = logits.float().topk(min(5, logits.shape[-1]), -1).indices
        c1 = c1 + (top5[:, 0] == yb).sum()
        c5 = c5 + (top5 == yb[:, None]).any(-1).sum()
    return c1, c5, torch.tensor(len(x_u8), device=device)


# -----------------------------------------------------------------------------------------
# main

def main(cfg: Config) -> dict:
    t_main = time.time()  # --time_budget_s counts from here, data loading included
    check_config(cfg)
    rank, world, device = setup_distributed(cfg)
    master = rank == 0
    commit = code_commit()  # the code this run starts from, recorded in the card
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    amp = cfg.amp and device.type == "cuda"

    # --- data: decoded once, resident on the training device as uint8 -------------------
    spec = models.get_spec(cfg.arch)
    preset = spec.preset(cfg.preset)
    size = cfg.image_size or preset.input_size
    root = data.resolve_root(cfg.data) if cfg.data else data.default_root()
    if root is None:
        raise SystemExit("no Imagenette data found: pass --data DIR or set VH_DATA "
                         "(scripts/download_data.py fetches it)")
    train_x, train_y = data.load_split(root, "train", data.train_store_size(size),
                                       limit_per_class=cfg.limit_per_class or None)
    if cfg.holdout > 0:
        # score a slice of train held out by its own seed, in the evaluation view; never read val
        split = "holdout"
        keep, held = data.holdout_split(train_y, cfg.holdout, cfg.holdout_seed)
        eval_x, eval_y = data.load_split(root, "train", data.eval_store_size(size),
                                         limit_per_class=cfg.limit_per_class or None)
        eval_x, eval_y = eval_x[held], eval_y[held]
        train_x, train_y = train_x[keep], train_y[keep]
    else:
        split = "val"
        eval_x, eval_y = data.load_split(root, "val", data.eval_store_size(size),
                                         limit_per_class=cfg.val_limit_per_class or None)
    train_x, train_y = train_x.to(device), train_y.to(device)
    n_eval = len(eval_x)
    eval_x, eval_y = eval_x[rank::world], eval_y[rank::world]  # each rank scores a shard
    if device.type == "cuda":
        eval_x, eval_y = eval_x.to(device), eval_y.to(device)
    n_train = len(train_x)
    per_rank = cfg.batch_size // world
    steps_per_epoch = max(1, n_train // cfg.batch_size)

    # --- model, optimiser, schedule, EMA ------------------------------------------------
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = models.create(cfg.arch, cfg.preset, num_classes=len(data.CLASSES)).to(device)
    if cfg.zero_init_residual and not zero_init_residual(model):
        raise SystemExit(f"--zero_init_residual: {cfg.arch} has no residual basic blocks")
    if cfg.stem_init_std > 0:
        torch.nn.init.normal_(model.stem.weight, 0.0, cfg.stem_init_std)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    torch.manual_seed(cfg.seed + rank)  # but each rank draws its own augmentations
    opt = build_optimizer(model, cfg, device)
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(int(cfg.warmup_epochs * steps_per_epoch), total_steps))
    ema = None
    if cfg.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)

    run_dir = Path(cfg.out) / f"{cfg.arch}-{cfg.preset}"
    state_path, metrics_path = run_dir / "state.pt", run_dir / "metrics.csv"
    start_epoch, rows, wall_before, snapshots = 0, [], 0.0, {}
    if cfg.resume and state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        changed = {k: (st["config"][k], v) for k, v in recipe(cfg).items() if st["config"].get(k, v) != v}
        if changed:
            raise SystemExit(f"--resume: {state_path} was trained with a different recipe "
                             f"(field: (then, now): {changed}); pass the same flags, or another --out")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if ema is not None and st.get("ema") is not None:
            ema.load_state_dict(st["ema"])
        set_rng_state(st["rng"])
        start_epoch, rows, wall_before = st["epoch"], st["rows"], st["wall_s"]
        snapshots = st.get("filters", {})
        if master:
            print(f"resumed {cfg.arch} from {state_path} after epoch {start_epoch}", flush=True)
    elif cfg.resume and master:
        print(f"--resume: no {state_path} yet, starting fresh", flush=True)

    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(train_model, mode=cfg.compile_mode or None) if cfg.compile else train_model
    eval_model = ema.module if ema is not None else model
    keep_snapshots = snapshot_epochs(cfg.epochs)
    if start_epoch == 0:
        snapshots = {0: stem_weights(eval_model)}  # the initial kernels, before any step

    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        if start_epoch == 0:
            (run_dir / "done.json").unlink(missing_ok=True)  # a fresh run is not finished yet
        print(f"{spec.title} ({cfg.preset}, {size}px): {models.cost.count_params(model):,} params, "
              f"{n_train} train / {n_eval} {split} images, {world}x {device.type}, "
              f"{cfg.epochs} epochs x {steps_per_epoch} steps", flush=True)

    # --- loop ------------------------------------------------------------------------
    t_start = time.time()
    epochs_this_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        train_model.train()
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # same order on every rank
        order = torch.randperm(n_train, generator=g)[: steps_per_epoch * cfg.batch_size]
        order = order.view(steps_per_epoch, cfg.batch_size)[:, rank * per_rank:(rank + 1) * per_rank].to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        bar = _progress(cfg, master, steps_per_epoch, epoch)
        for step in range(steps_per_epoch):
            xb, ya, yb2, lam = make_batch(train_x, train_y, order[step], size, preset.in_chans, cfg)
            loss, logits = train_step(step_fn, model, opt, xb, ya, yb2, lam, cfg, amp)
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(-1) == ya).float().mean()
            if bar is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == steps_per_epoch):
                el = time.time() - t0
                bar.update((step + 1) - bar.n)
                bar.set_postfix(loss=f"{float(loss_sum) / (step + 1):.3f}",
                                acc=f"{float(correct) / (step + 1):.3f}",
                                img_s=f"{(step + 1) * cfg.batch_size / el:.0f}")
        if bar is not None:
            bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.time() - t0

        c1, c5, n = evaluate_tensors(eval_model, eval_x, eval_y, size, preset.in_chans, device, amp=amp)
        stats = torch.stack([loss_sum / steps_per_epoch, correct / steps_per_epoch, c1.float(), c5.float(),
                             n.float()])
        if world > 1:
            dist.all_reduce(stats)
            stats[:2] /= world
        tl, ta, c1, c5, n = stats.tolist()
        epochs_this_run += 1
        row = {"epoch": epoch + 1, "train_loss": round(tl, 4), "train_acc": round(ta, 4),
               f"{split}_top1": round(100 * c1 / n, 2), f"{split}_top5": round(100 * c5 / n, 2),
               "lr": f"{sched.get_last_lr()[0]:.6g}", "img_s": round(n_train / train_time, 1),
               "epoch_time_s": round(time.time() - t0, 2),
               "wall_time_s": round(wall_before + time.time() - t_start, 1)}
        rows.append(row)
        if epoch + 1 in keep_snapshots:
            snapshots[epoch + 1] = stem_weights(eval_model)
        if master:
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                         "rng": rng_state(), "epoch": epoch + 1, "rows": rows, "filters": snapshots,
                         "wall_s": wall_before + time.time() - t_start, "config": dataclasses.asdict(cfg)},
                        state_path)
            write_metrics(rows, metrics_path)
        # stop while another epoch like this one would still end inside the budget
        out_of_time = cfg.time_budget_s and time.time() - t_main + (time.time() - t0) > cfg.time_budget_s
        stop = torch.tensor(float(bool(cfg.stop_after_epochs and epochs_this_run >= cfg.stop_after_epochs)
                                  or bool(out_of_time)), device=device)
        if world > 1:
            dist.broadcast(stop, 0)  # rank 0's clock decides, so every rank leaves the loop together
        if stop:
            if master and epoch + 1 < cfg.epochs:
                print(f"stopping after epoch {epoch + 1} of {cfg.epochs}; continue with --resume", flush=True)
            break

    result = {"rows": rows, "finished": bool(rows) and rows[-1]["epoch"] == cfg.epochs}
    if master and result["finished"]:
        if cfg.export:
            result["checkpoint"] = export(cfg, eval_model, rows, root, device, world, commit,
                                          n_train, n_eval, snapshots)
        last = rows[-1]
        (run_dir / "done.json").write_text(json.dumps({
            "arch": cfg.arch, "epochs": last["epoch"], "eval_split": split,
            "top1": last[f"{split}_top1"], "top5": last[f"{split}_top5"], "wall_time_s": last["wall_time_s"],
            "checkpoint": str(result.get("checkpoint", "")), "recipe": recipe(cfg),
            "finished_at": time.strftime("%Y-%m-%d %H:%M")}, indent=1) + "\n")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def _progress(cfg, master, total, epoch):
    if not (cfg.progress and master):
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                dynamic_ncols=True, mininterval=1.0)


def export(cfg: Config, model, rows, root, device, world, commit: str, n_train: int, n_eval: int,
           snapshots: dict) -> Path:
    """Write checkpoints/<arch>/ (weights, card, metrics.csv, filters.safetensors); evaluate.py
    fills the val metrics, here unless the run held out part of train (then val stays unread)."""
    import shutil

    from evaluate import evaluate_checkpoint

    out = Path(cfg.export) / cfg.arch
    model = model.float().to(memory_format=torch.contiguous_format).cpu()
    model.arch, model.preset_name = cfg.arch, cfg.preset
    out.mkdir(parents=True, exist_ok=True)
    snaps = filters.save_snapshots(snapshots, out / filters.SNAPSHOTS, cfg.arch, model.stem_path)
    card = {
        "classes": [{"wnid": w, "name": n} for w, n in data.CLASSES],
        "num_classes": len(data.CLASSES),
        "mean": list(data.MEAN), "std": list(data.STD),
        "preprocess": data.describe_preprocess(model.input_size, model.in_chans),
        "recipe": recipe(cfg),
        "epochs": rows[-1]["epoch"],
        "wall_time_s": rows[-1]["wall_time_s"],
        "train_img_s": max(r["img_s"] for r in rows),
        "hardware": hardware(device, world),
        "code_commit": commit,
        "dataset": {"name": "imagenette", "folder": Path(root).name, "train_images": n_train,
                    **({"fingerprint": data.split_fingerprint(root, ["train"]), "fingerprint_splits": ["train"]}
                       if cfg.holdout > 0 else {"fingerprint": data.fingerprint(root)})},
        "filter_snapshots": {"file": snaps.name, "sha256": sha256_file(snaps), "layer": model.stem_path,
                             "epochs": sorted(snapshots)},
        "command": "python scripts/train.py " + " ".join(
            f"--{k} {v}" for k, v in _cli_diff(cfg).items()),
        "trained_at": time.strftime("%Y-%m-%d"),
    }
    if cfg.holdout > 0:
        card["holdout"] = {
            "fraction": cfg.holdout, "seed": cfg.holdout_seed, "images": n_eval,
            "top1": rows[-1]["holdout_top1"], "top5": rows[-1]["holdout_top5"],
            "note": "trained on train minus this held-out slice, which was scored every epoch instead of "
                    "val; val was not read: its metrics come from scripts/evaluate.py",
        }
    models.save(model, out, card)
    shutil.copyfile(Path(cfg.out) / f"{cfg.arch}-{cfg.preset}" / "metrics.csv", out / "metrics.csv")
    if cfg.holdout > 0:
        print(f"val not read (holdout run): fill the card's metrics with "
              f"python scripts/evaluate.py --arch {cfg.arch}", flush=True)
    elif cfg.evaluate:
        evaluate_checkpoint(cfg.arch, cfg.export, root, device=str(device),
                            limit_per_class=cfg.val_limit_per_class or None)
    print(f"exported {out}", flush=True)
    return out


def _cli_diff(cfg: Config) -> dict:
    """The fields that differ from Config's defaults: the shortest command reproducing the run."""
    base = Config(**RECIPES[cfg.arch], arch=cfg.arch)
    return {"arch": cfg.arch, **{k: v for k, v in recipe(cfg).items() if k != "arch" and getattr(base, k) != v}}


if __name__ == "__main__":
    main(parse_config())
