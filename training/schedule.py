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
    exactly 0 from step `total` on. `total` may be refitted (--deadline) and the factor
    stays continuous at the step where it is."""

    def __init__(self, warmup_steps: int, total_steps: int, kind: str = "cosine"):
        self.warmup, self.total, self.kind = max(1, warmup_steps), total_steps, kind

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind == "linear":
            return 1.0 - t
        return 0.5 * (1 + math.cos(math.pi * t))


def lr_lambda(warmup_steps: int, total_steps: int, kind: str = "cosine") -> Schedule:
    return Schedule(warmup_steps, total_steps, kind)


def export_allowance(eval_s: float) -> float:
    """Seconds kept before a deadline for the export: two evaluations (before and after int8)
    and saving."""
    return 2 * eval_s + 20


def fit_epochs(cfg, done: int, epoch_s: float, now: float, eval_s: float, floor: int) -> int:
    """How many epochs in all end by cfg.deadline when `done` have run and each further one takes
    `epoch_s` (export kept aside: `export_allowance`): capped at the recipe's --epochs, at least
    `floor` (--min_epochs after the first epoch; one more than `done` on a resume)."""
    more = int(max(0.0, cfg.deadline - now - export_allowance(eval_s)) // max(epoch_s, 1e-6))
    return max(min(cfg.epochs, done + more), min(floor, cfg.epochs))


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
