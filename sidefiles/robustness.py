"""How each shipped model fails: val top-1 under common corruptions, shipped as a small table.

    python scripts/robustness.py                  # every shipped checkpoint, 50 val images a class
    python scripts/robustness.py --per-class 100  # more images, slower

For every checkpoint, the first --per-class val images of each class are scored clean and
under each corruption of `explorer.robustness` at severities 1-3 (noise, blur, JPEG,
brightness, contrast, occlusion, rotation), applied to the evaluation square before the
centre crop, exactly as the Classify page applies them to a user's image. Writes
checkpoints/robustness.json: per model, clean top-1 on those images, top-1 per corruption and
severity, and the sha256 of the weights it was computed from. Severity 0 is the clean
image, so `clean_top1` equals the top-1 the card's per-image predictions give on the same
images (tests check it).
"""
from __future__ import annotations

import json
import time
from pathlib import Path


import torch

from sidefiles import common
import models
from explorer import robustness
from explorer.sidecar import weights_sha
from models import data


@torch.no_grad()
def top1(model, x_u8: torch.Tensor, y: torch.Tensor, corruption: str | None, severity: int,
         seeds: list[int], batch: int = 100) -> float:
    """Top-1 (%) on uint8 eval squares, each corrupted (seeded by its val index), centre-cropped."""
    correct = 0
    for i in range(0, len(x_u8), batch):
        xb = x_u8[i:i + batch]
        if corruption:
            xb = robustness.corrupt(xb, corruption, severity, seeds[i:i + batch])
        logits = model(data.normalize(data.center_crop(xb, model.input_size), model.in_chans))
        correct += int((logits.argmax(-1) == y[i:i + batch]).sum())
    return round(100 * correct / len(x_u8), 2)


def kept_entries(checkpoints: Path, per_class: int, root: Path) -> dict:
    """The entries of the existing file that are still true: same images, and made from the
    weights each checkpoint ships now (a release of some models keeps the others' rows)."""
    old = robustness.load(checkpoints / robustness.ROBUSTNESS) or {}
    if old.get("per_class") != per_class or old.get("data_fingerprint") != data.fingerprint(root):
        return {}
    kept = {}
    for arch, m in old.get("models", {}).items():
        try:
            if m.get("weights_sha256") == weights_sha(models.read_card(arch, checkpoints)):
                kept[arch] = m
        except (models.CheckpointError, KeyError):
            pass
    return kept


def build(checkpoints: Path, root: Path, archs: list[str] | None = None, per_class: int = 50) -> dict:
    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    out = {"per_class": per_class, "severities": list(robustness.SEVERITIES),
           "corruptions": {k: [robustness.describe(k, s) for s in robustness.SEVERITIES]
                           for k in robustness.CORRUPTIONS},
           "data_fingerprint": data.fingerprint(root), "models": kept_entries(checkpoints, per_class, root)}
    for arch in archs:
        t0 = time.time()
        model, card = models.load(arch, checkpoints)
        x_all, y_all = data.load_split(root, "val", data.eval_store_size(model.input_size))
        keep = robustness.subset(y_all, per_class)
        x, y = x_all[keep], y_all[keep]
        m = {"clean_top1": top1(model, x, y, None, 0, keep), "corrupted_top1": {},
             "weights_sha256": weights_sha(card), "images": len(keep)}
        for name in robustness.CORRUPTIONS:
            m["corrupted_top1"][name] = [top1(model, x, y, name, s, keep) for s in robustness.SEVERITIES]
        m["seconds"] = round(time.time() - t0, 1)
        out["models"][arch] = m
        out["images"] = len(keep)
        mean = sum(sum(v) for v in m["corrupted_top1"].values()) / (len(robustness.CORRUPTIONS) * 3)
        print(f"{arch:13s} clean {m['clean_top1']:6.2f}  corrupted mean {mean:6.2f}  "
              f"({len(keep)} images, {m['seconds']:.0f} s)", flush=True)
    order = [s.name for s in models.list_architectures()]
    out["models"] = dict(sorted(out["models"].items(), key=lambda kv: order.index(kv[0])))
    path = checkpoints / robustness.ROBUSTNESS
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return out


def main() -> int:
    return common.main(__doc__, build, per_class=50)
