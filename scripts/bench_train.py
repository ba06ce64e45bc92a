"""Training throughput and model FLOPs utilisation, against a plain baseline, in one run.

    python scripts/bench_train.py                          # a default set of architectures
    python scripts/bench_train.py --arch resnet18 --steps 30 --compile
    python scripts/bench_train.py --arch all --augment trivial --fused_optimizer true

For each architecture (`--arch all`: every one), on whatever device this runs on:

* fast path: scripts/train.py's own step (`make_batch` + `train_step`) with the arch's
  recipe: uint8 images resident on the device, random-resized crop + flip (and whatever
  augmentation the recipe adds) on the device, bf16 autocast where native (CUDA, or a CPU
  with AMX / AVX-512 BF16: then the same step in fp32 too, `bf16_speedup`), channels_last,
  optional torch.compile; flags this script does not know go to train.py's config
  (`--augment trivial`, `--fused_optimizer true`, `--compile_mode max-autotune`, ...);
* baseline, same model, batch and device: torchvision `ImageFolder` + `DataLoader` with CPU
  transforms (RandomResizedCrop, flip, ToTensor, Normalize), fp32, eager: how the
  vision-hist blog's scripts trained.

img/s counts optimiser steps after warm-up. MFU = img/s x 3 x forward FLOPs per image /
peak: on CUDA the device's dense bf16 peak (table below); on a CPU, the fp32 matmul rate
measured in this same run (an "achievable peak", stated as such). Results go to
bench/results/train-<device>.json, rewritten after every architecture (a run cut short
keeps what it measured; an architecture that fails is recorded with its error), and a
markdown table of img/s and MFU per architecture is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import models
from models import data, precision
from models.cost import gmacs
from training import config
from training.steps import build_optimizer, make_batch, train_step
from training.data import train_store_size

REPO = Path(__file__).resolve().parent.parent

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0}  # dense, vendor sheets
DEFAULT_ARCHS = ["alexnet", "resnet18", "vit"]


def peak_flops(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tf in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tf * 1e12, f"{name} dense bf16 peak ({tf} TFLOP/s, vendor figure)"
        return float("nan"), f"{name}: peak unknown"
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    rate = 5 * 2 * n ** 3 / (time.perf_counter() - t0)
    return rate, f"measured fp32 {n}x{n} matmul on this CPU ({rate / 1e9:.0f} GFLOP/s, {torch.get_num_threads()} threads)"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fast_path(arch: str, root: Path, device, batch: int, steps: int, warmup: int, compile_: bool,
              train_args: list[str], amp: bool) -> float:
    cfg = config.parse_config(["--arch", arch, "--batch_size", str(batch), "--compile", str(compile_), *train_args])
    size = models.get_spec(arch).preset(cfg.preset).input_size
    x, y = data.load_split(root, "train", train_store_size(size))
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = models.create(arch).to(device).to(memory_format=torch.channels_last).train()
    opt = build_optimizer(model, cfg, device)
    step_fn = torch.compile(model, mode=cfg.compile_mode or None) if compile_ else model
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(len(x), (batch,), device=device)
        xb, ya, yb2, lam = make_batch(x, y, idx, size, model.in_chans, cfg)
        train_step(step_fn, model, opt, xb, ya, yb2, lam, cfg, amp)
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def baseline(arch: str, root: Path, device, batch: int, steps: int, warmup: int, workers: int) -> float:
    from torchvision import datasets, transforms
    spec = models.get_spec(arch)
    size = spec.presets["explorer"].input_size
    tf = transforms.Compose([transforms.RandomResizedCrop(size, scale=(0.35, 1.0)),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(data.MEAN, data.STD)])
    ds = datasets.ImageFolder(str(Path(root) / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = models.create(arch).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    done = 0
    while done < warmup + steps:
        for xb, yb in loader:
            if done == warmup:
                sync(device)
                t0 = time.perf_counter()
            xb, yb = xb.to(device), yb.to(device)
            if model.in_chans == 1:
                xb = xb.mean(1, keepdim=True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= warmup + steps:
                break
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", help="repeatable; 'all' for every architecture")
    ap.add_argument("--data", default="")
    ap.add_argument("--batch", type=int, default=0, help="default: 256 on CUDA, 32 on CPU")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: 50 on CUDA, 4 on CPU)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed steps (default: 10 on CUDA, 1 on CPU)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="baseline DataLoader workers")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args, train_args = ap.parse_known_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    batch = args.batch or (256 if cuda else 32)
    steps = args.steps or (50 if cuda else 4)
    warmup = args.warmup or (10 if cuda else 1)
    root = data.resolve_root(args.data) if args.data else data.default_root()
    archs = args.arch or DEFAULT_ARCHS
    if "all" in archs:
        archs = [s.name for s in models.list_architectures()]
    config.check_config(config.parse_config(["--arch", archs[0], *train_args]))  # a bad flag fails here, once
    peak, peak_note = peak_flops(device)
    amp = precision.autocast_ok(device)  # bf16 autocast where native: CUDA, or an AMX / AVX-512 BF16 CPU
    name = torch.cuda.get_device_name(device) if cuda else f"CPU {os.cpu_count()} cores {platform.machine()}"
    out = args.out or REPO / "bench" / "results" / f"train-{'cuda' if cuda else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in archs:
        flops = 2 * gmacs(models.create(arch)) * 1e9
        try:
            fast = fast_path(arch, root, device, batch, steps, warmup, args.compile, train_args, amp)
            row = {"arch": arch, "fast_img_s": round(fast, 1)}
            if amp and not cuda:  # the same step in fp32, to show what bf16 buys on this CPU
                fp32 = fast_path(arch, root, device, batch, steps, warmup, args.compile, train_args, False)
                row.update(fast_fp32_img_s=round(fp32, 1), bf16_speedup=round(fast / fp32, 2))
            base = baseline(arch, root, device, batch, steps, warmup, args.workers)
            row.update(baseline_img_s=round(base, 1), speedup=round(fast / base, 2),
                       fast_mfu=round(fast * 3 * flops / peak, 4), baseline_mfu=round(base * 3 * flops / peak, 4))
            rows.append(row)
        except RuntimeError as e:  # out of memory, a compile failure: record it, measure the rest
            rows.append({"arch": arch, "error": (str(e).splitlines() or [type(e).__name__])[0][:300]})
            if cuda:
                torch.cuda.empty_cache()
        print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
        out.write_text(json.dumps({"device": name, "peak": peak_note, "precision": precision.describe(device, amp), "batch": batch, "steps": steps,
                                   "warmup": warmup, "compile": args.compile, "train_args": train_args,
                                   "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                                   "results": rows}, indent=1) + "\n")
    print(f"\nfast path: {precision.describe(device, amp)}")
    print("\n| arch | fast path img/s | same in fp32 | bf16 gain | DataLoader img/s | speed-up | fast-path MFU "
          f"| DataLoader MFU |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['arch']} | failed: {r['error'][:60]} | | | | | | |")
        else:
            print(f"| {r['arch']} | {r['fast_img_s']} | {r.get('fast_fp32_img_s', '')} | "
                  f"{str(r['bf16_speedup']) + 'x' if 'bf16_speedup' in r else ''} | {r['baseline_img_s']} | "
                  f"{r['speedup']}x | {100 * r['fast_mfu']:.1f}% | {100 * r['baseline_mfu']:.1f}% |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
