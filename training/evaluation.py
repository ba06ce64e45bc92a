"""Evaluate shipped checkpoints on the whole Imagenette val split and write the card's metrics.

    python scripts/evaluate.py                       # every checkpoint in checkpoints/
    python scripts/evaluate.py --arch alexnet --flip # one, plus flip TTA (reported apart)
    python scripts/evaluate.py --check               # recompute and compare with the cards

Single centre view (the app's exact preprocessing): top-1, top-5, per-class accuracy and
the confusion matrix. With --flip, the average of the image and its mirror is reported
separately as `val_top1_flip`; it never replaces the single-view figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import models
from models import data
from models.checkpoint import CARD, CheckpointError


@torch.no_grad()
def predict(model, x_u8: torch.Tensor, size: int, in_chans: int, device: str = "cpu", batch: int = 250,
            flip: bool = False) -> torch.Tensor:
    """Softmax probabilities (N, classes) for uint8 eval squares, centre-cropped to `size`."""
    model = model.to(device).eval()
    out = []
    for _, xb in data.eval_batches(x_u8, size, in_chans, batch, device):
        p = model(xb).float().softmax(-1)
        if flip:
            p = (p + model(xb.flip(-1)).float().softmax(-1)) / 2
        out.append(p.cpu())
    return torch.cat(out)


def scores(probs: torch.Tensor, y: torch.Tensor) -> dict:
    k = probs.shape[1]
    top5 = probs.topk(min(5, k), -1).indices
    pred = top5[:, 0]
    conf = torch.zeros(k, k, dtype=torch.long)
    conf.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    per_class = (conf.diag().float() / conf.sum(1).clamp(min=1)).tolist()
    return {
        "val_top1": round(100 * (pred == y).float().mean().item(), 2),
        "val_top5": round(100 * (top5 == y[:, None]).any(-1).float().mean().item(), 2),
        "per_class_top1": {data.NAMES[i]: round(100 * a, 2) for i, a in enumerate(per_class)},
        "confusion": conf.tolist(),
        "val_images": int(len(y)),
        # top-1 class of every val image in sorted path order: the app finds disagreements from it
        "val_pred": pred.tolist(),
    }


def evaluate_checkpoint(arch: str, checkpoints_dir="checkpoints", root=None, device: str = "cpu",
                        flip: bool = False, write: bool = True, limit_per_class: int | None = None) -> dict:
    """Load `arch`, score it on val, and (write=True) store the metrics in its card."""
    model, card = models.load(arch, checkpoints_dir, device=device)
    root = data.resolve_root(root) if root else data.default_root()
    if root is None:
        raise SystemExit("no Imagenette data found: pass --data DIR or set VH_DATA")
    x, y = data.load_split(root, "val", data.eval_store_size(model.input_size), limit_per_class=limit_per_class)
    t0 = time.time()
    metrics = scores(predict(model, x, model.input_size, model.in_chans, device), y)
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    metrics["eval_data_fingerprint"] = data.fingerprint(root)
    metrics["view"] = "single centre crop"
    if flip:
        metrics["val_top1_flip"] = scores(predict(model, x, model.input_size, model.in_chans, device, flip=True),
                                          y)["val_top1"]
    if write:
        update_card(arch, checkpoints_dir, metrics=metrics)
    return metrics


def update_card(arch: str, checkpoints_dir, **fields) -> None:
    """Set `fields` in `arch`'s card, atomically (the weights and their hashes are untouched)."""
    path = Path(checkpoints_dir) / arch / CARD
    full = json.loads(path.read_text())
    full.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(full, indent=1) + "\n")
    tmp.replace(path)


def measure_bf16(arch: str, checkpoints_dir="checkpoints", root=None, write: bool = True) -> dict:
    """How far bf16 autocast moves `arch`'s answers and how much faster it is, on this CPU:
    top-1 agreement with the fp32 top-1 of every val image (the card's `val_pred`), bf16 top-1,
    and batch-1 latency both ways (median of 15 after 3 warm-up runs). Stored as card["bf16"];
    models.precision.serve_bf16 reads it."""
    import statistics

    from models import precision
    if not precision.cpu_bf16():
        raise SystemExit("this CPU has no native bf16 (AMX or AVX-512 BF16): nothing to measure")
    model, card = models.load(arch, checkpoints_dir)
    fp32 = card.get("metrics", {}).get("val_pred")
    if not fp32:
        raise SystemExit(f"{arch}: the card has no fp32 predictions yet; run scripts/evaluate.py --arch {arch} first")
    root = data.resolve_root(root) if root else data.default_root()
    x, y = data.load_split(root, "val", data.eval_store_size(model.input_size))
    model = model.to(memory_format=torch.channels_last)
    preds = []
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        for _, xb in data.eval_batches(x, model.input_size, model.in_chans, 250, "cpu"):
            preds.append(model(xb.contiguous(memory_format=torch.channels_last)).float().argmax(-1))
    pred = torch.cat(preds)
    one = next(data.eval_batches(x[:1], model.input_size, model.in_chans, 1, "cpu"))[1].contiguous(
        memory_format=torch.channels_last)
    ms = {}
    with torch.inference_mode():
        for name, bf16 in (("fp32", False), ("bf16", True), ("fp32 again", False), ("bf16 again", True)):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                t = []
                for i in range(18):
                    t0 = time.perf_counter()
                    model(one)
                    if i >= 3:
                        t.append(time.perf_counter() - t0)
            ms[name] = statistics.median(t) * 1000
    fp32_ms, bf16_ms = min(ms["fp32"], ms["fp32 again"]), min(ms["bf16"], ms["bf16 again"])
    out = {"agreement": round(100 * (pred == torch.tensor(fp32)).float().mean().item(), 2),
           "top1_bf16": round(100 * (pred == y).float().mean().item(), 2),
           "top1_fp32": card["metrics"]["val_top1"], "images": len(y),
           "latency_ms_fp32": round(fp32_ms, 2), "latency_ms_bf16": round(bf16_ms, 2),
           "speedup": round(fp32_ms / bf16_ms, 3), "cpu": precision.cpu_bf16(), "threads": torch.get_num_threads(),
           "weights_sha256": [w["sha256"] for w in card["weights"]], "measured": time.strftime("%Y-%m-%d")}
    out["served"] = "bf16" if (out["agreement"] >= precision.AGREEMENT_BAR
                               and out["speedup"] >= precision.MIN_SPEEDUP) else "fp32"
    if write:
        update_card(arch, checkpoints_dir, bf16=out)
    return out


def quantize_checkpoint(arch: str, checkpoints_dir="checkpoints", root=None, device: str = "cpu",
                        limit_per_class: int | None = None) -> dict:
    """Store `arch` as int8 (models.checkpoint): score the weights as they are first (the
    full-precision figure), then rewrite them int8 and score exactly what now ships. The card
    keeps both: `metrics` (what ships) and `full_precision` (before quantising)."""
    card = models.read_card(arch, checkpoints_dir)
    if card.get("storage") == "int8":
        raise SystemExit(f"{arch} is stored as int8 already; quantising twice would measure nothing")
    before = evaluate_checkpoint(arch, checkpoints_dir, root, device, write=False, limit_per_class=limit_per_class)
    model, card = models.load(arch, checkpoints_dir)
    keep = {k: v for k, v in card.items() if k not in ("weights", "storage", "dtype", "metrics")}
    keep["full_precision"] = {"storage": card.get("storage", card.get("dtype", "float16")),
                              "val_top1": before["val_top1"], "val_top5": before["val_top5"],
                              "per_class_top1": before["per_class_top1"],
                              "eval_data_fingerprint": before["eval_data_fingerprint"]}
    models.save(model, Path(checkpoints_dir) / arch, keep, storage="int8")
    after = evaluate_checkpoint(arch, checkpoints_dir, root, device, limit_per_class=limit_per_class)
    print(f"{arch:13s} int8 top-1 {after['val_top1']:6.2f} (before quantising {before['val_top1']:6.2f}, "
          f"{after['val_top1'] - before['val_top1']:+.2f})", flush=True)
    return {"before": before["val_top1"], "after": after["val_top1"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", help="architecture (repeatable); default: every checkpoint")
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--data", default="", help="folder with train/ and val/")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--flip", action="store_true", help="also report flip test-time augmentation, apart")
    ap.add_argument("--bf16", action="store_true",
                    help="measure bf16 autocast against fp32 (top-1 agreement on val, batch-1 latency) into the card")
    ap.add_argument("--check", action="store_true",
                    help="do not write; fail if top-1 differs from the card by more than 0.1 points")
    args = ap.parse_args(argv)
    archs = args.arch or [s.name for s in models.list_architectures()
                          if (Path(args.checkpoints) / s.name / CARD).exists()]
    if not archs:
        print(f"no checkpoints in {args.checkpoints}/")
        return 1
    failed = 0
    if args.bf16:
        for arch in archs:
            b = measure_bf16(arch, args.checkpoints, args.data or None)
            print(f"{arch:13s} bf16 agrees with fp32 on {b['agreement']:6.2f}% of {b['images']} val images "
                  f"(top-1 {b['top1_bf16']:.2f} vs {b['top1_fp32']:.2f}); batch-1 {b['latency_ms_fp32']:.2f} -> "
                  f"{b['latency_ms_bf16']:.2f} ms ({b['speedup']:.2f}x): served in {b['served']}", flush=True)
        return 0
    for arch in archs:
        try:
            old = models.read_card(arch, args.checkpoints).get("metrics", {})
            m = evaluate_checkpoint(arch, args.checkpoints, args.data or None, args.device, args.flip,
                                    write=not args.check)
        except CheckpointError as e:
            print(f"{arch}: {e}")
            failed += 1
            continue
        line = f"{arch:13s} top-1 {m['val_top1']:6.2f}  top-5 {m['val_top5']:6.2f}  ({m['val_images']} images)"
        if "val_top1_flip" in m:
            line += f"  flip TTA top-1 {m['val_top1_flip']:.2f}"
        if args.check:
            diff = abs(m["val_top1"] - old.get("val_top1", float("nan")))
            ok = diff <= 0.1
            failed += not ok
            line += f"  card {old.get('val_top1')}  {'OK' if ok else 'MISMATCH'}"
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
