"""Cost figures, computed from the model, never typed in.

* parameters: trainable parameters (LeNet-5's fixed RBF codes are buffers, not counted);
* GMACs: multiply-accumulates of one forward pass on one image at the preset's input
  size, counted by `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2). It counts
  matrix products and convolutions, not element-wise ops. Attention runs unfused while
  counting, so its two matrix products are counted too (the counter does not see inside
  the fused CPU kernel). `arch_cost` builds the model on the meta device: shapes only,
  no weights, so costing the whole zoo takes a couple of seconds.
"""
from __future__ import annotations

import functools
import threading

import torch
from torch.utils.flop_counter import FlopCounterMode

# FlopCounterMode tracks modules with *global* module hooks: while a count runs, every forward
# pass in the process, in any thread, goes through them (and autograd.grad in another thread
# then fails: "A leaf node was passed to _will_engine_execute_node"). So counting and every use
# of a shared model in the app hold this one lock (explorer.zoo.LOCK is the same object).
MODEL_LOCK = threading.RLock()


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gmacs(model: torch.nn.Module, input_size: int | None = None, in_chans: int | None = None) -> float:
    from .probes import unfused_attention
    size = input_size or model.input_size
    chans = in_chans or getattr(model, "in_chans", 3)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with MODEL_LOCK, unfused_attention(model), counter, torch.no_grad():
            model(torch.zeros(1, chans, size, size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


@functools.lru_cache(maxsize=None)
def arch_cost(name: str, preset: str = "explorer", num_classes: int = 10) -> dict:
    """{'params': int, 'gmacs': float, 'input_size': int} for a registered architecture."""
    from .registry import create
    with torch.device("meta"):
        m = create(name, preset, num_classes=num_classes)
    return {"params": count_params(m), "gmacs": round(gmacs(m), 4), "input_size": m.input_size}


@functools.lru_cache(maxsize=None)
def gmacs_at(name: str, size: int, preset: str = "explorer", num_classes: int = 10) -> float:
    """GMACs of one forward pass of a registered architecture at `size` px (meta device)."""
    from .registry import create
    with torch.device("meta"):
        m = create(name, preset, num_classes=num_classes)
    return gmacs(m, size)


def training_compute(name: str, sizes: list[int], images: int, preset: str = "explorer",
                     teacher: str | None = None, teacher_size: int | None = None) -> dict:
    """The compute a training run spent, counted as the papers' scaling studies do: per epoch,
    images x 3 x forward FLOPs at that epoch's crop size (a backward pass costs about two
    forwards), plus one forward pass of the teacher per image when distilling. Evaluation
    passes are not counted. `sizes` holds one crop size per epoch."""
    per_size = {s: 2e9 * gmacs_at(name, s, preset) for s in set(sizes)}  # FLOPs = 2 x MACs
    flops = sum(3 * images * per_size[s] for s in sizes)
    out = {"flops": flops, "epochs": len(sizes), "images_per_epoch": images,
           "rule": "epochs x images x 3 x forward FLOPs at each epoch's size"}
    if teacher:
        t_flops = len(sizes) * images * 2e9 * gmacs_at(teacher, teacher_size or arch_cost(teacher)["input_size"])
        out.update(flops=flops + t_flops, teacher_flops=t_flops,
                   rule=out["rule"] + ", plus one teacher forward pass per image")
    out["pflops"] = round(out["flops"] / 1e15, 3)
    return out
