"""One training step and what it needs: the optimiser (no weight decay on norms and biases),
the augmented batch, the distillation teacher, the step itself, scoring held-out tensors, and
the probe that turns off a fast path that fails on this machine.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import models
from models import data
from training import augment
from training.config import REPO, Config
from training.data import mix_batch, random_resized_crop


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



FAST_PATHS = ("compile", "fused_optimizer", "channels_last", "amp")  # given up in this order


def probe_fast_paths(cfg: Config, try_step) -> list[str]:
    """Run `try_step(cfg)` (one training step on a throwaway copy); while it raises, turn off
    the next fast path that is on (FAST_PATHS order) and try again. Returns what was turned
    off, each with its error, so a GPU-only path that fails costs one batch instead of the
    run. Raises when the plain path fails too."""
    off = []
    while True:
        try:
            try_step(cfg)
            return off
        except Exception as e:  # noqa: BLE001 -- whatever a fast path breaks: fall back
            on = [p for p in FAST_PATHS if getattr(cfg, p)]
            if not on:
                raise
            setattr(cfg, on[0], False)
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            off.append(f"{on[0]}: {type(e).__name__}: {first}")
            print(f"fast path {on[0]} failed on a trial batch ({type(e).__name__}: {first}); "
                  "going on without it", flush=True)



def make_batch(train_x, train_y, idx, size: int, in_chans: int, cfg: Config):
    """One augmented batch, entirely on the data's device: crop + flip, TrivialAugment,
    random erasing, normalise, mix; every sample draws its own crop, op and rectangle."""
    xb = random_resized_crop(train_x[idx], size, scale=(cfg.crop_scale_min, 1.0))
    if cfg.augment == "trivial":
        xb = augment.trivial_augment(xb)
    xb = augment.random_erase(xb, cfg.erase)
    xb = data.normalize(xb, in_chans)
    xb, ya, yb2, lam = mix_batch(xb, train_y[idx], cfg.mixup, cfg.cutmix)
    if cfg.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, ya, yb2, lam


def load_teacher(cfg: Config, device: torch.device, size: int, in_chans: int):
    """The shipped checkpoint --teacher names, frozen, and what the card says of it."""
    if not cfg.teacher:
        return None, None
    try:
        teacher, card = models.load(cfg.teacher, cfg.teacher_dir or REPO / "checkpoints", device=str(device))
    except models.CheckpointError as e:
        raise SystemExit(f"--teacher: {e}") from None
    if teacher.in_chans != in_chans:
        raise SystemExit(f"--teacher {cfg.teacher} sees {teacher.in_chans} channels, {cfg.arch} {in_chans}")
    teacher.requires_grad_(False)
    if cfg.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    about = {"arch": cfg.teacher, "title": card.get("title", cfg.teacher),
             "val_top1": card.get("metrics", {}).get("val_top1"),
             "weights_sha256": [w["sha256"] for w in card["weights"]],
             "kind": "hard (DeiT): the loss mixes the true label and the teacher's top-1 on the same "
                     f"augmented batch, weight {cfg.distill_alpha} on the teacher"}
    if teacher.input_size != size:
        about["resized_to"] = teacher.input_size
    return teacher, about


def train_step(step_fn, model, opt, xb, ya, yb2, lam, cfg: Config, amp: bool, teacher=None):
    """Forward (bf16 autocast where native), mixed-label loss (plus the teacher's label when
    distilling), backward, clip, optimiser step."""
    with torch.autocast(xb.device.type, torch.bfloat16, enabled=amp):
        logits = step_fn(xb)
        if teacher is not None:
            with torch.no_grad():
                tx = xb if teacher.input_size == xb.shape[-1] else F.interpolate(
                    xb, size=teacher.input_size, mode="bilinear", antialias=True, align_corners=False)
                t_label = teacher(tx).float().argmax(-1)
    logits = logits.float()
    loss = lam * F.cross_entropy(logits, ya, label_smoothing=cfg.label_smoothing)
    if lam < 1.0:
        loss = loss + (1 - lam) * F.cross_entropy(logits, yb2, label_smoothing=cfg.label_smoothing)
    if teacher is not None:
        loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * F.cross_entropy(logits, t_label)
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
def evaluate_tensors(model, x_u8, y, size, in_chans, device, batch=500, amp=False, flip=False):
    """(correct top-1, correct top-5, count) over uint8 eval squares, centre-cropped to `size`;
    with `flip`, of the mean softmax of each image and its mirror (reported apart, never instead)."""
    model.eval()
    c1 = c5 = torch.zeros((), device=device, dtype=torch.long)
    for i, xb in data.eval_batches(x_u8, size, in_chans, batch, device):
        yb = y[i:i + batch].to(device, non_blocking=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            logits = model(xb).float().softmax(-1)
            if flip:
                logits = logits + model(xb.flip(-1)).float().softmax(-1)
        top5 = logits.float().topk(min(5, logits.shape[-1]), -1).indices
        c1 = c1 + (top5[:, 0] == yb).sum()
        c5 = c5 + (top5 == yb[:, None]).any(-1).sum()
    return c1, c5, torch.tensor(len(x_u8), device=device)

