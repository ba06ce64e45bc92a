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

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import torch  # noqa: E402

import models  # noqa: E402
from models import data  # noqa: E402
from models.checkpoint import CARD, CheckpointError  # noqa: E402


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
        path = Path(checkpoints_dir) / arch / CARD
        full = json.loads(path.read_text())
        full["metrics"] = metrics
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(full, indent=1) + "\n")
        tmp.replace(path)
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", action="append", help="architecture (repeatable); default: every checkpoint")
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--data", default="", help="folder with train/ and val/")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--flip", action="store_true", help="also report flip test-time augmentation, apart")
    ap.add_argument("--check", action="store_true",
                    help="do not write; fail if top-1 differs from the card by more than 0.1 points")
    args = ap.parse_args(argv)
    archs = args.arch or [s.name for s in models.list_architectures()
                          if (Path(args.checkpoints) / s.name / CARD).exists()]
    if not archs:
        print(f"no checkpoints in {args.checkpoints}/")
        return 1
    failed = 0
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
