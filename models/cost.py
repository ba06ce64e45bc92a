"""Cost figures, computed from the model, never typed in.

* parameters: trainable parameters (LeNet-5's fixed RBF codes are buffers, not counted);
* GMACs: multiply-accumulates of one forward pass on one image at the preset's input
  size, counted by `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2). It counts
  matrix products and convolutions (including attention's), not element-wise ops.
"""
from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gmacs(model: torch.nn.Module, input_size: int | None = None, in_chans: int | None = None) -> float:
    size = input_size or model.input_size
    chans = in_chans or getattr(model, "in_chans", 3)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, chans, size, size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


@functools.lru_cache(maxsize=None)
def arch_cost(name: str, preset: str = "explorer", num_classes: int = 10) -> dict:
    """{'params': int, 'gmacs': float, 'input_size': int} for a registered architecture."""
    from .registry import create
    m = create(name, preset, num_classes=num_classes)
    return {"params": count_params(m), "gmacs": round(gmacs(m), 4), "input_size": m.input_size}
