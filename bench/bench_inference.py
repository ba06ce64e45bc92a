"""Ways to run every model once for one upload on this CPU, timed against each other.

    python bench/bench_inference.py               # all 14 architectures, random weights
    python bench/bench_inference.py --skip-compile

What Classify does for an upload is one forward pass of every model at batch 1. This times,
for the whole zoo (latency does not depend on the weights' values), in one process and
alternating round by round so that a busy moment lands on every way alike:

* fp32 eager, every model in turn on all threads (what the app did before);
* bf16 autocast eager for every model (on a CPU with AMX / AVX-512 BF16);
* bf16 where it is faster: each model in whichever of the two its own median favours
  (what `models.precision` serves, once a model's answers also agree);
* side by side: two Python threads, one thread of torch each, the models split into two
  halves of equal fp32 time (torch releases the GIL inside its ops);
* torch.compile (inductor) of every model, fp32 and bf16 autocast (compile time reported
  apart; skipped with --skip-compile).

Results go to bench/results/inference.json (medians of --rounds rounds, ms) and are printed.
Nothing here is asserted by a test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import torch

import models
from models import precision


def zoo() -> dict:
    torch.manual_seed(0)
    out = {}
    for s in models.list_architectures():
        m = models.create(s.name).eval().to(memory_format=torch.channels_last)
        x = torch.randn(1, m.in_chans, m.input_size, m.input_size).contiguous(memory_format=torch.channels_last)
        out[s.name] = (m, x)
    return out


def once(fn, x, bf16: bool) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        fn(x)
    return (time.perf_counter() - t0) * 1000


def side_by_side(halves: list[list[str]], fns: dict, xs: dict, bf16: dict) -> float:
    """Both halves at once, each in its own Python thread; torch at one thread each."""
    def run(names):
        for a in names:
            once(fns[a], xs[a], bf16[a])
    threads = [threading.Thread(target=run, args=(h,)) for h in halves]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "inference.json")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    z = zoo()
    fns = {a: m for a, (m, _) in z.items()}
    xs = {a: x for a, (_, x) in z.items()}
    has_bf16 = bool(precision.cpu_bf16())
    per = {mode: {a: [] for a in z} for mode in ("fp32", "bf16")}
    for r in range(args.rounds + 2):   # two warm-up rounds
        for a in z:
            for mode in ("fp32", "bf16") if has_bf16 else ("fp32",):
                t = once(fns[a], xs[a], mode == "bf16")
                if r >= 2:
                    per[mode][a].append(t)
    med = {mode: {a: statistics.median(v) for a, v in d.items() if v} for mode, d in per.items()}
    faster = {a: has_bf16 and med["bf16"][a] < med["fp32"][a] / precision.MIN_SPEEDUP for a in z}
    result = {"machine": {"cpu_cores": os.cpu_count(), "machine": platform.machine(), "threads": threads,
                          "cpu_bf16": precision.cpu_bf16(), "torch": torch.__version__},
              "date": time.strftime("%Y-%m-%d %H:%M"), "rounds": args.rounds,
              "per_model_ms": {a: {"fp32": round(med["fp32"][a], 2),
                                   **({"bf16": round(med["bf16"][a], 2)} if has_bf16 else {})} for a in z},
              "total_ms": {"fp32 eager": round(sum(med["fp32"].values()), 1)}}
    if has_bf16:
        result["total_ms"]["bf16 autocast eager, every model"] = round(sum(med["bf16"].values()), 1)
        result["total_ms"]["bf16 where faster (>= 1.05x), fp32 elsewhere"] = round(
            sum(med["bf16" if faster[a] else "fp32"][a] for a in z), 1)
        result["bf16_faster"] = [a for a in z if faster[a]]

    # side by side on the cores: two halves of about equal time, one torch thread each
    order = sorted(z, key=lambda a: -med["fp32"][a])
    halves, load = [[], []], [0.0, 0.0]
    for a in order:
        i = load.index(min(load))
        halves[i].append(a)
        load[i] += med["fp32"][a]
    torch.set_num_threads(1)
    for label, bf in (("fp32 side by side, 2 x 1 thread", {a: False for a in z}),
                      ("bf16 where faster, side by side, 2 x 1 thread", faster)):
        if label.startswith("bf16") and not has_bf16:
            continue
        side_by_side(halves, fns, xs, bf)  # warm-up at one thread
        result["total_ms"][label] = round(statistics.median(
            side_by_side(halves, fns, xs, bf) for _ in range(args.rounds)), 1)
    torch.set_num_threads(threads)

    if not args.skip_compile:
        for label, bf in (("torch.compile fp32", False), ("torch.compile bf16 autocast", True)):
            if bf and not has_bf16:
                continue
            t0 = time.perf_counter()
            compiled = {}
            for a, m in fns.items():
                try:
                    compiled[a] = torch.compile(m)
                    once(compiled[a], xs[a], bf)   # compiles here
                except Exception as e:  # noqa: BLE001 -- a model inductor cannot compile runs eager
                    compiled[a] = m
                    result.setdefault("compile_failed", {})[a] = f"{type(e).__name__}: {str(e)[:120]}"
            compile_s = time.perf_counter() - t0
            totals = []
            for r in range(args.rounds + 1):
                t = sum(once(compiled[a], xs[a], bf) for a in z)
                if r:
                    totals.append(t)
            result["total_ms"][label] = round(statistics.median(totals), 1)
            result.setdefault("compile_s", {})[label] = round(compile_s, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for k, v in result["total_ms"].items():
        print(f"{k:50s} {v:8.1f} ms")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
