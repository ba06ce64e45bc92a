"""explorer.zoo: the one latency measurement every page shows."""
from __future__ import annotations

import threading
import time

import pytest
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


def _two_convnets() -> dict:
    import models
    torch.manual_seed(0)
    return {a: (models.create(a).eval().to(memory_format=torch.channels_last), {"title": a})
            for a in ("alexnet", "bn_convnet", "lenet5")}


def test_each_model_runs_side_by_side_one_thread_each_and_gives_the_same_answers(monkeypatch):
    """Two workers, one thread each, biggest model first; the answers are the in-turn ones
    (float rounding aside), in the zoo's order; the sessions' own threads keep every thread."""
    if torch.get_num_threads() < 2:
        monkeypatch.setenv("VH_MODEL_WORKERS", "2")
    loaded = _two_convnets()
    xs = {a: torch.rand(1, m.in_chans, m.input_size, m.input_size) for a, (m, _) in loaded.items()}
    seen = {}

    def forward(arch, model, card):
        seen[arch] = (torch.get_num_threads(), threading.current_thread().name)
        with torch.inference_mode():
            return model(xs[arch])

    before = torch.get_num_threads()
    side = zoo.each_model(loaded, forward)
    assert list(side) == list(loaded)
    assert all(n == 1 and name.startswith("vh-model") for n, name in seen.values()), seen
    monkeypatch.setenv("VH_MODEL_WORKERS", "1")
    in_turn = zoo.each_model(loaded, forward)
    assert all(n == before and not name.startswith("vh-model") for n, name in seen.values()), seen
    for a in loaded:
        torch.testing.assert_close(side[a], in_turn[a], rtol=1e-4, atol=1e-5)
    assert torch.get_num_threads() == before
    later = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start(), t.join()
    assert later == [before], "a thread started after the workers must not inherit their one thread"


def test_each_model_passes_a_models_failure_to_the_caller_and_keeps_working(monkeypatch):
    monkeypatch.setenv("VH_MODEL_WORKERS", "2")
    loaded = _two_convnets()

    def broken(arch, model, card):
        if arch == "alexnet":
            raise RuntimeError("this model failed")
        return arch

    with pytest.raises(RuntimeError, match="this model failed"):
        zoo.each_model(loaded, broken)
    assert zoo.each_model(loaded, lambda a, m, c: a) == {a: a for a in loaded}
    assert not zoo.LOCK._is_owned(), "the zoo is handed back after a failure"
