"""What each shipped model's deeper units respond to, shipped beside each checkpoint.

    python scripts/units.py                 # every shipped checkpoint
    python scripts/units.py --arch alexnet

For the layers `explorer.units.probe_layers` picks (the end of each resolution stage, a few
Transformer/Mixer blocks, and fc7 or the pre-logit layer), scans the whole val split (top-9
images per unit, where each peaks, mean activation per class, how often each unit fires) and
the shipped retrieval gallery's 1,000 train images (top-9 per unit, for machines without the
dataset). Writes checkpoints/<arch>/units.safetensors: indices, positions and values, no pixels.
Needs checkpoints/gallery.safetensors (`python scripts/build_index.py`) and the data set.
"""
from __future__ import annotations

import time
from pathlib import Path


import torch

from sidefiles import common
import models
from explorer import retrieval, units
from models import data


def batches(model, x_u8: torch.Tensor, y: torch.Tensor | None, batch: int = 100):
    for i, xb in data.eval_batches(x_u8, model.input_size, model.in_chans, batch):
        yield i, xb, (y[i:i + batch] if y is not None else None)


def build(checkpoints: Path, root: Path, archs: list[str] | None = None) -> dict:
    archs = archs or [s.name for s in models.list_architectures() if (checkpoints / s.name / "card.json").exists()]
    gallery = retrieval.load_gallery(checkpoints / retrieval.GALLERY)
    train_paths, _ = data.list_split(root, "train")
    where = {str(p.relative_to(root)): i for i, p in enumerate(train_paths)}
    missing = [f for f in gallery.files if f not in where]
    if missing:
        raise SystemExit(f"the gallery names {len(missing)} train images this data set does not have "
                         f"(first: {missing[0]}); rebuild it with `python scripts/build_index.py`")
    gidx = [where[f] for f in gallery.files]
    done = {}
    for arch in archs:
        t0 = time.time()
        model, card = models.load(arch, checkpoints)
        layers = units.probe_layers(arch, card["preset"])
        store = data.eval_store_size(model.input_size)
        vx, vy = data.load_split(root, "val", store)
        tx, _ = data.load_split(root, "train", store)
        val = units.scan(model, layers, batches(model, vx, vy))
        gal = units.scan(model, layers, batches(model, tx[gidx], None))
        out = checkpoints / arch / units.UNITS
        units.save(out, layers, val, gal, card, {"val_images": len(vy), "gallery_images": len(gidx),
                                                 "data_fingerprint": data.fingerprint(root)})
        u = units.load(out, card)
        summary = units.layer_summary(u)
        print(f"{arch}: {sum(ly.channels for ly in layers)} units in {len(layers)} layers, "
              f"{out.stat().st_size / 2**20:.2f} MiB, {time.time() - t0:.0f} s", flush=True)
        for row in summary:
            print(f"  {row['layer']:32s} {row['units']:5d} units, {row['nearly dead']:4d} nearly dead, "
                  f"mean selectivity {row['mean selectivity']:.3f}", flush=True)
        done[arch] = summary
    return done


def main() -> int:
    return common.main(__doc__, build)
