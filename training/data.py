"""Training's own data operations, on the device that trains: the decoded splits a run holds,
batched random-resized crop and flip, mixup and CutMix, and the held-out slice of train that
tuning scores instead of val. The app's preprocessing (the evaluation view) is models/data.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models import data


def train_store_size(input_size: int) -> int:
    """The side of the square a training image is stored at: random crops are taken from it."""
    return int(round(input_size * 1.25))


def load(cfg, size: int, rank: int = 0, world: int = 1, device=torch.device("cpu")):
    """(root, train_x, train_y, eval_x, eval_y, n_eval, split): train decoded once as uint8 on
    `device`; the split scored each epoch (val, or with --holdout a slice of train held out by
    its own seed, val then never read), this rank's shard of it."""
    root = data.resolve_root(cfg.data) if cfg.data else data.default_root()
    if root is None:
        raise SystemExit("no Imagenette data found: pass --data DIR or set VH_DATA "
                         "(scripts/download_data.py fetches it)")
    limit = cfg.limit_per_class or None
    train_x, train_y = data.load_split(root, "train", train_store_size(size), limit_per_class=limit)
    if cfg.holdout > 0:
        split = "holdout"
        keep, held = holdout_split(train_y, cfg.holdout, cfg.holdout_seed)
        eval_x, eval_y = data.load_split(root, "train", data.eval_store_size(size), limit_per_class=limit)
        eval_x, eval_y = eval_x[held], eval_y[held]
        train_x, train_y = train_x[keep], train_y[keep]
    else:
        split = "val"
        eval_x, eval_y = data.load_split(root, "val", data.eval_store_size(size),
                                         limit_per_class=cfg.val_limit_per_class or None)
    n_eval = len(eval_x)
    eval_x, eval_y = eval_x[rank::world], eval_y[rank::world]  # each rank scores a shard
    if device.type == "cuda":
        eval_x, eval_y = eval_x.to(device), eval_y.to(device)
    return root, train_x.to(device), train_y.to(device), eval_x, eval_y, n_eval, split


def random_resized_crop(x_uint8: torch.Tensor, size: int, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
                        flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random-resized crop + horizontal flip as one `grid_sample`, on x's device.

    Returns float in [0, 255]. Each sample draws its own area fraction, aspect ratio,
    position and flip, like torchvision's RandomResizedCrop (crops are clipped to the image).
    """
    b, dev = x_uint8.shape[0], x_uint8.device
    rnd = lambda *s: torch.rand(*s, device=dev, generator=generator)  # noqa: E731
    area = scale[0] + (scale[1] - scale[0]) * rnd(b)
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rnd(b)
    r = logr.exp()
    w = (area * r).sqrt().clamp(max=1.0)
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (1 - w) * (rnd(b) * 2 - 1)
    cy = (1 - h) * (rnd(b) * 2 - 1)
    sx = w * (torch.where(rnd(b) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta, [b, x_uint8.shape[1], size, size], align_corners=False)
    return F.grid_sample(x_uint8.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def mix_batch(x: torch.Tensor, y: torch.Tensor, mixup: float, cutmix: float):
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019), half the batches each when both are on.

    Returns (x, y_a, y_b, lam): the loss is lam * CE(y_a) + (1 - lam) * CE(y_b). The few
    scalar draws come from the CPU generator, so nothing waits on the device.
    """
    if mixup <= 0 and cutmix <= 0:
        return x, y, y, 1.0
    dev = x.device
    use_cut = cutmix > 0 and (mixup <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix if use_cut else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0]).to(dev, non_blocking=True)
    if use_cut:
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        t, b_ = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        l, r = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., t:b_, l:r] = x[perm][..., t:b_, l:r]
        lam = 1 - (b_ - t) * (r - l) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, y, y[perm], lam


# --- a held-out slice of train, for tuning without looking at val --------------------------

def holdout_split(labels, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices) into `labels`, both sorted: round(fraction * n) images of
    every class held out (at least one when fraction > 0, never a class's last image).

    Which images are held out depends only on the labels and `seed` (not on the training
    seed, the device or the call), so every run tuned against the slice sees the same one.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    labels = torch.as_tensor(labels).cpu()
    keys = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed))
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(1)
        k = min(len(idx) - 1, max(1, round(fraction * len(idx)))) if fraction > 0 else 0
        held[idx[keys[idx].argsort()[:k]]] = True
    return (~held).nonzero().squeeze(1), held.nonzero().squeeze(1)
