"""explorer.zoo: the one latency measurement every page shows."""
from __future__ import annotations

import time

import torch

from explorer import zoo


class Busy:
    """A stand-in for the machine: forward passes number N..N+k (counted over every model,
    after the warm-up) run while something else holds the CPU, and take `extra_s` longer."""

    def __init__(self, first: int, count: int, extra_s: float):
        self.calls, self.first, self.count, self.extra_s = 0, first, count, extra_s


class Net(torch.nn.Module):
    input_size, in_chans = 32, 3

    def __init__(self, busy: Busy, warmup: int):
        super().__init__()
        self.busy, self.warmup, self.seen = busy, warmup, 0

    def forward(self, x):
        self.seen += 1
        if self.seen > self.warmup:  # a timed run
            b = self.busy
            if b.first <= b.calls < b.first + b.count:
                time.sleep(b.extra_s)
            b.calls += 1
        return x.mean()


def test_a_busy_moment_does_not_move_any_models_latency():
    """Five timed passes in a row hit a busy moment (+40 ms each). Timed one model after the
    other, they would all be one model's, and its median would carry the 40 ms; taking turns,
    no model gets more than two of its nine runs slowed, so every median stays near zero."""
    busy = Busy(first=2, count=5, extra_s=0.04)
    loaded = {f"m{i}": (Net(busy, zoo.LATENCY_WARMUP), {}) for i in range(3)}
    lat = zoo.latencies(loaded)
    assert set(lat["ms"]) == set(loaded)
    assert max(lat["ms"].values()) < 20, lat          # the median of each model's 9 runs: not slowed
    assert max(hi for _, hi in lat["spread"].values()) >= 40, lat   # the busy moment was there
    assert all(n.seen == zoo.LATENCY_WARMUP + zoo.LATENCY_RUNS for n, _ in loaded.values())
    assert "take turns" in lat["note"] and "batch of one" in lat["note"]
