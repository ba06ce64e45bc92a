"""The learning-rate schedule and its one refit to a deadline, and when first-layer kernels are kept.

A schedule is a step count fixed up front: linear warm-up, then cosine or linear decay to
exactly zero at the last step. `--deadline T` refits that last step once, so the decay still
reaches zero, never a schedule cut short: after the first epoch (timed under the full load),
or on a resume that brings a deadline the run did not start with (timed by its latest epoch).
"""
from __future__ import annotations

import math

SNAPSHOT_EPOCHS = (0, 1, 2, 5, 10, 20, 40)  # plus the last: when the first-layer kernels are saved


class Schedule:
    """Linear warm-up, then cosine or linear decay to zero at `total` steps: the factor is
    exactly 0 from step `total` on, also when the warm-up would be as long as the run (it is then
    cut to end one step before `total`). `total` may be refitted (--deadline): the decay then
    follows the new end from where it is, so the factor steps down once, at the refit (a
    linear decay planned over 10 epochs and refitted to 9 after the 5th: 0.556 to 0.5)."""

    def __init__(self, warmup_steps: int, total_steps: int, kind: str = "cosine"):
        self.warmup, self.total, self.kind = max(1, warmup_steps), total_steps, kind

    def __call__(self, step: int) -> float:
        warmup = max(0, min(self.warmup, self.total - 1))
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, self.total - warmup))
        if self.kind == "linear":
            return 1.0 - t
        return 0.5 * (1 + math.cos(math.pi * t))


def lr_lambda(warmup_steps: int, total_steps: int, kind: str = "cosine") -> Schedule:
    return Schedule(warmup_steps, total_steps, kind)


def export_allowance(eval_s: float) -> float:
    """Seconds kept before a deadline for the export: two evaluations (before and after int8)
    and saving."""
    return 2 * eval_s + 20


def fit_epochs(cfg, done: int, epoch_s: float, now: float, eval_s: float, floor: int,
               weights=None) -> int:
    """How many epochs in all end by cfg.deadline when `done` have run and the latest took
    `epoch_s` (export kept aside: `export_allowance`): capped at the recipe's --epochs, at least
    `floor` (--min_epochs after the first epoch; one more than `done` on a resume).
    `weights(n)` gives each epoch's cost in a run of n epochs relative to the one timed (under
    progressive resizing a 128 px epoch costs about 1.8x a 96 px one); without it every further
    epoch costs the same."""
    left = max(0.0, cfg.deadline - now - export_allowance(eval_s))
    if weights is None:
        return max(min(cfg.epochs, done + int(left // max(epoch_s, 1e-6))), min(floor, cfg.epochs))
    # the cost of the epochs after `done` grows with the epoch count: the largest that fits, by bisection
    lo, hi = done, cfg.epochs
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(weights(mid)[done:]) * epoch_s <= left:
            lo = mid
        else:
            hi = mid - 1
    return max(lo, min(floor, cfg.epochs))


def size_weights(epoch_sizes, cost_at, timed_size: int):
    """`fit_epochs`'s weights under progressive resizing: `epoch_sizes(n)` the crop of each epoch
    of an n-epoch run, `cost_at(size)` a forward pass's cost at that size (MACs), relative to the
    epoch timed at `timed_size`."""
    cache: dict[int, float] = {}

    def cost(size: int) -> float:
        if size not in cache:
            cache[size] = cost_at(size)
        return cache[size]
    return lambda n: [cost(s) / cost(timed_size) for s in epoch_sizes(n)]


def refit(scheduler, cfg, epochs: int, steps_per_epoch: int) -> None:
    """End the schedule (and cfg.epochs) at `epochs`: every parameter group's decay reaches zero at
    its last step. (Until 2026-12-05 a refit on resume replaced the first group's schedule only, so
    the norms and biases, the group without weight decay, kept decaying toward the planned end.)"""
    cfg.epochs = epochs
    for schedule in scheduler.lr_lambdas:
        schedule.total = epochs * steps_per_epoch


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose first-layer kernels are kept: SNAPSHOT_EPOCHS up to `epochs`, and `epochs`."""
    return sorted({e for e in SNAPSHOT_EPOCHS if e <= epochs} | {epochs})
