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
